import { describe, expect, it } from 'vitest';
import { statsKey, metrics } from '../../src/platform/metrics';
import { applyStockChanges, readStockRows } from '../../src/inventory';
import { processOrders } from '../../src/orders';
import { runUnitOfWork } from '../../src/platform/unit-of-work';
import { ledgerOnHand, makeCustomer, makeProduct, placeOrder, stockOf } from '../helpers/factories';
import { useHarness, waitFor } from '../helpers/harness';

// A pool as wide as the burst, so that the 50 requests really race for the row instead of queueing for connections.
const h = useHarness({ workers: false, env: { DB_POOL_MAX: '50' } });

async function conflictCount(op: string): Promise<number> {
  const { values } = await metrics.optimisticConflicts.get();
  return values.filter((v) => v.labels.op === op).reduce((s, v) => s + v.value, 0);
}

async function redisStat(field: string): Promise<number> {
  await h().ctx.stats.flush();
  return Number((await h().ctx.redis.hget(statsKey(h().config.QUEUE_PREFIX), field)) ?? 0);
}

describe('stock row under concurrent adjustments', () => {
  it('when 50 adjustments hit one SKU at once, then each lands exactly once, on_hand equals the ledger, version +50, and conflicts were retried', async () => {
    const initial = 1000;
    const p = await makeProduct(h(), initial);
    const deltas = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? (i % 5) + 1 : -((i % 7) + 1)));
    const conflictsBefore = await conflictCount('adjustment');
    const retriesBefore = (await metrics.optimisticRetries.get()).values
      .filter((v) => v.labels.op === 'adjustment')
      .reduce((s, v) => s + v.value, 0);

    const t0 = Date.now();
    const results = await Promise.all(
      deltas.map((delta, i) =>
        h().api('POST', `/v1/inventory/${p.sku}/adjustments`, { body: { delta, reason: `parallel ${i}` } }),
      ),
    );
    const elapsed = Date.now() - t0;

    expect(
      results.map((r) => r.status),
      results.find((r) => r.status !== 201)?.text,
    ).toEqual(deltas.map(() => 201));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(50);
    // Every request's movement is its own: reason i carries delta i.
    const moves = await h()
      .ctx.db('stock_movements')
      .where({ sku: p.sku, type: 'adjustment' })
      .select('quantity', 'reason');
    expect(moves).toHaveLength(50);
    expect(Object.fromEntries(moves.map((m) => [m.reason, m.quantity]))).toEqual(
      Object.fromEntries(deltas.map((d, i) => [`parallel ${i}`, d])),
    );

    const expected = initial + deltas.reduce((s, d) => s + d, 0);
    const row = await stockOf(h(), p.sku);
    expect(row).toMatchObject({ on_hand: expected, reserved: 0, backordered: 0, version: 50 });
    expect(await ledgerOnHand(h(), p.sku)).toBe(row.on_hand);
    // A removal answers with the row its own update wrote: no two of them were applied on the same version.
    // (An addition answers with the row as it is after serving backorders, which may already be newer.)
    const own = results.filter((_, i) => deltas[i] < 0).map((r) => r.body.stock.version);
    expect(new Set(own).size).toBe(own.length);
    expect(own.every((v) => v >= 1 && v <= 50)).toBe(true);

    const conflicts = (await conflictCount('adjustment')) - conflictsBefore;
    const retries =
      (await metrics.optimisticRetries.get()).values
        .filter((v) => v.labels.op === 'adjustment')
        .reduce((s, v) => s + v.value, 0) - retriesBefore;
    expect(conflicts).toBeGreaterThan(0);
    expect(retries).toBeGreaterThanOrEqual(conflicts);
    expect(await redisStat('optimistic_conflicts')).toBe(conflicts);
    // /metrics shows the same counter (process-wide, so at least this test's share).
    const text = (await h().api('GET', '/metrics')).text;
    const m = text.match(/^orderflow_optimistic_conflicts_total\{op="adjustment"\} (\d+)/m);
    expect(Number(m?.[1] ?? 0)).toBeGreaterThanOrEqual(conflicts);
    console.info(`50 parallel adjustments: ${conflicts} optimistic conflicts, ${retries} retries, ${elapsed} ms`);
  });

  it('when 30 parallel removals of 1 race for 10 units, then exactly 10 land, 20 get 409, and on_hand never goes below 0', async () => {
    const p = await makeProduct(h(), 10);
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        h().api('POST', `/v1/inventory/${p.sku}/adjustments`, { body: { delta: -1, reason: `take ${i}` } }),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(10);
    expect(statuses.filter((s) => s === 409)).toHaveLength(20);
    expect(results.filter((r) => r.status === 409).every((r) => r.body.error.code === 'conflict')).toBe(true);
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 0, reserved: 0, version: 10 });
    expect(await ledgerOnHand(h(), p.sku)).toBe(0);
    expect(
      await h().ctx.db('stock_movements').where({ sku: p.sku, type: 'adjustment' }).count({ n: '*' }).first(),
    ).toEqual({ n: 10 });
  });
});

describe('stock row that never stops moving', () => {
  it('when every optimistic update of a row is lost, then the bounded retries end in 503 unavailable with Retry-After and nothing changes', async () => {
    const p = await makeProduct(h(), 5);
    // Arrange: a trigger that silently skips every update of this row, exactly what a lost version check looks like.
    await h().ctx.db.raw(
      `CREATE FUNCTION skip_stock_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`,
    );
    await h().ctx.db.raw(
      `CREATE TRIGGER skip_stock_update BEFORE UPDATE ON stock FOR EACH ROW WHEN (OLD.sku = '${p.sku}') EXECUTE FUNCTION skip_stock_update()`,
    );
    try {
      const conflictsBefore = await conflictCount('adjustment');
      const res = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, {
        body: { delta: 1, reason: 'never lands' },
      });
      expect(res.status, res.text).toBe(503);
      expect(res.body.error.code).toBe('unavailable');
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect((await conflictCount('adjustment')) - conflictsBefore).toBeGreaterThanOrEqual(29); // 30 attempts, each lost
      expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 5, version: 0 });
      expect(
        await h().ctx.db('stock_movements').where({ sku: p.sku, type: 'adjustment' }).count({ n: '*' }).first(),
      ).toEqual({ n: 0 });
    } finally {
      await h().ctx.db.raw('DROP TRIGGER skip_stock_update ON stock');
      await h().ctx.db.raw('DROP FUNCTION skip_stock_update()');
    }
  });
});

describe('a worker batch under a stream of single-order writes', () => {
  it('when adjustments keep landing on the SKUs of a batch being reserved, then the batch is redone at most once and every order is confirmed', async () => {
    const skus = await Promise.all([1, 2, 3, 4].map(() => makeProduct(h(), 1000)));
    const c = await makeCustomer(h());
    const orders = [];
    for (let i = 0; i < 120; i++)
      orders.push(await placeOrder(h(), c.id, [{ sku: skus[i % skus.length].sku, quantity: 1 }]));
    const before = await conflictCount('reserve');
    // Adjustments of +1 on the batch's SKUs, 8 at a time, until the batch has committed.
    let done = false;
    let adjusted = 0;
    const hammer = Promise.all(
      Array.from({ length: 8 }, async (_, k) => {
        for (let i = 0; !done; i++) {
          const r = await h().api('POST', `/v1/inventory/${skus[(k + i) % skus.length].sku}/adjustments`, {
            body: { delta: 1, reason: `hammer ${k}/${i}` },
          });
          expect(r.status, r.text).toBe(201);
          adjusted += 1;
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 200)); // the hammer is running
    let outcomes;
    try {
      outcomes = await processOrders(
        h().ctx,
        orders.map((o) => o.id),
      );
    } finally {
      done = true;
      await hammer;
    }
    expect([...outcomes.values()].every((o) => o.status === 'confirmed')).toBe(true);
    expect(outcomes.size).toBe(120);
    expect(adjusted).toBeGreaterThan(8);
    // Optimistic first; its retry locks the rows it reads, so it cannot lose a second time.
    expect((await conflictCount('reserve')) - before).toBeLessThanOrEqual(1);
    for (const s of skus) {
      const row = await stockOf(h(), s.sku);
      expect(row.reserved).toBe(30);
      expect(await ledgerOnHand(h(), s.sku)).toBe(row.on_hand);
    }
  });
});

describe('stock rows are locked in SKU order', () => {
  it('when a write to two SKUs finds the first locked, then it waits holding neither, so a transaction locking both in SKU order cannot deadlock with it', async () => {
    const id = Math.random().toString(36).slice(2, 8).toUpperCase();
    // The higher SKU is created first, so a plan that scans the table meets its row first.
    const hi = await makeProduct(h(), 10, { sku: `LOCKORDER-B-${id}` });
    const lo = await makeProduct(h(), 10, { sku: `LOCKORDER-A-${id}` });
    const db = h().ctx.db;
    const holder = await db.transaction();
    try {
      await holder.raw('SELECT 1 FROM stock WHERE sku = ? FOR NO KEY UPDATE', [lo.sku]);
      let writerPid = 0;
      const writer = runUnitOfWork(
        h().ctx,
        'adjustment',
        async (uow) => {
          writerPid = (await uow.trx.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid;
          // The plan the workers' batches got under load: the table scanned, the arrays hashed.
          await uow.trx.raw('SET LOCAL enable_indexscan = off');
          await uow.trx.raw('SET LOCAL enable_bitmapscan = off');
          await uow.trx.raw('SET LOCAL enable_nestloop = off');
          const rows = [...(await readStockRows(uow.trx, [lo.sku, hi.sku])).values()];
          const location = rows[0].levels[0].location;
          await applyStockChanges(
            uow,
            rows.map((row) => ({ row, levels: [{ location, on_hand: 1 }] })),
            rows.map((row) => ({ sku: row.sku, location, type: 'adjustment', quantity: 1, reason: 'lock order' })),
            'adjustment',
          );
        },
        { retry: false },
      );
      await waitFor(
        async () =>
          writerPid > 0 &&
          (await db.raw(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = ?`, [writerPid])).rows[0]
            ?.wait_event_type === 'Lock',
        { what: 'the write to wait for the first SKU' },
      );
      // Waiting for the lower SKU, the write holds no lock on the higher one: NOWAIT gets it at once
      // (were it held, this would fail with lock_not_available; without NOWAIT, a deadlock).
      await holder.raw('SELECT 1 FROM stock WHERE sku = ? FOR NO KEY UPDATE NOWAIT', [hi.sku]);
      await holder.commit();
      await writer;
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
    }
    for (const p of [lo, hi]) {
      const row = await stockOf(h(), p.sku);
      expect(row).toMatchObject({ on_hand: 11, version: 1 });
      expect(await ledgerOnHand(h(), p.sku)).toBe(11);
    }
  });
});
