import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct } from '../helpers/factories';
import { useHarness } from '../helpers/harness';

// The API's shared pool is tiny here, so three blocked requests take every connection of it.
const h = useHarness({ workers: false, env: { DB_POOL_MAX: '3' } });

/** Backends of this database waiting for a lock (read on a connection of its own: the pool is full). */
const blockedOnLocks = async () => {
  const c = new pg.Client({ connectionString: h().config.DATABASE_URL });
  await c.connect();
  try {
    const { rows } = await c.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    return rows[0].n as number;
  } finally {
    await c.end();
  }
};

describe('intake has connections of its own', () => {
  it('when every connection of the shared pool is held by writes blocked on a stock row, then an order is still accepted at once', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 100);
    const other = await makeProduct(h(), 100);
    // A transaction elsewhere holds the SKU's stock row, as a worker's batch does while it commits.
    const holder = new pg.Client({ connectionString: h().config.DATABASE_URL });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT sku FROM stock WHERE sku = $1 FOR UPDATE', [p.sku]);
    let released = false;
    try {
      // Three counts of that SKU (one per pool connection) wait on the row.
      const counts = [1, 2, 3].map((i) =>
        h()
          .api('POST', '/v1/inventory/counts', {
            role: 'feed',
            body: {
              count_id: `bulkhead-${randomBytes(4).toString('hex')}-${i}`,
              counted_at: new Date().toISOString(),
              items: [{ sku: p.sku, on_hand: 100 }],
            },
          })
          .then((r) => ({ status: r.status, afterRelease: released })),
      );
      for (let t = Date.now(); (await blockedOnLocks()) < 3;) {
        if (Date.now() - t > 10_000) throw new Error('the counts did not block on the stock row');
        await new Promise((r) => setTimeout(r, 50));
      }
      // The shared pool is exhausted: a plain read through it waits too.
      const read = h()
        .api('GET', `/v1/products/${other.sku}`, { role: 'operator' })
        .then((r) => ({ status: r.status, afterRelease: released }));

      const order = await h().api('POST', '/v1/orders', {
        role: 'intake',
        body: { customer_id: c.id, lines: [{ sku: other.sku, quantity: 1 }] },
      });
      expect(order.status, order.text).toBe(202);
      expect(released).toBe(false); // answered while the row was still held
      // The counts are still waiting: they answer only after the row is released.
      expect(await blockedOnLocks()).toBe(3);

      released = true;
      await holder.query('COMMIT');
      const results = await Promise.all(counts);
      for (const r of results) expect(r.afterRelease).toBe(true);
      expect(results.map((r) => r.status)).toEqual([202, 202, 202]);
      expect((await read).status).toBe(200);
      expect((await read).afterRelease).toBe(true);
      expect(await h().ctx.db('orders').where({ id: order.body.id }).first()).toMatchObject({
        status: 'received',
        customer_id: c.id,
      });
    } finally {
      if (!released) await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
  });
});
