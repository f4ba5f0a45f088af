import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder, statusCounts, stockOf } from '../helpers/factories';
import { useHarness, waitFor, type Harness } from '../helpers/harness';

const h = useHarness();

const SETTLED = ['confirmed', 'awaiting_stock', 'rejected', 'failed', 'cancelled', 'completed'];

async function settled(hh: Harness, ids: string[], timeout = 90_000) {
  return waitFor(
    async () => {
      const open = await hh.ctx.db('orders').whereIn('id', ids).whereNotIn('status', SETTLED).count({ n: '*' }).first();
      return Number(open?.n) === 0;
    },
    { timeout, interval: 250, what: 'every order settled' },
  );
}

async function conflicts(hh: Harness): Promise<number> {
  const v = await hh.ctx.redis.hget(`${hh.config.QUEUE_PREFIX}:stats`, 'optimistic_conflicts');
  return Number(v ?? 0);
}

async function storm(hh: Harness, n: number, sku: string, customerId: string, mode: 'backorder' | 'reject') {
  return Promise.all(
    Array.from({ length: n }, () =>
      placeOrder(hh, customerId, [{ sku, quantity: 1 }], { on_insufficient_stock: mode }),
    ),
  );
}

describe('storm: many concurrent orders on one scarce SKU, two worker processes', () => {
  it('when 300 single-unit orders hit a SKU holding 10, then exactly 10 are confirmed and 290 wait', async () => {
    const w1 = h().spawnWorker({ ORDER_CONCURRENCY: '8' });
    const w2 = h().spawnWorker({ ORDER_CONCURRENCY: '8' });
    // Both connected before the storm, so they race for the row (one still booting would leave it uncontested).
    await waitFor(async () => (await h().ctx.queues.orders.getWorkersCount()) >= 2, {
      timeout: 60_000,
      what: 'two workers connected',
    });
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const orders = await storm(h(), 300, p.sku, c.id, 'backorder');
    expect(new Set(orders.map((o) => o.id)).size).toBe(300);
    await settled(
      h(),
      orders.map((o) => o.id),
    );

    expect(
      await statusCounts(
        h(),
        orders.map((o) => o.id),
      ),
    ).toEqual({ confirmed: 10, awaiting_stock: 290 });
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 10, reserved: 10, backordered: 290 });
    // Exactly ten reservation movements in the ledger, and the optimistic check was really exercised.
    const reservations = await h()
      .ctx.db('stock_movements')
      .where({ sku: p.sku, type: 'reservation' })
      .count({ n: '*' })
      .first();
    expect(Number(reservations?.n)).toBe(10);
    await h().ctx.stats.flush();
    await waitFor(async () => (await conflicts(h())) > 0, { timeout: 5000, what: 'conflict counter above zero' });
    // Every one of the 290 short lines sits in the SKU's queue.
    const waiting = await h()
      .ctx.db('order_lines')
      .where({ sku: p.sku, waiting: true, reserved: false })
      .count({ n: '*' })
      .first();
    expect(Number(waiting?.n)).toBe(290);
    w1.kill();
    w2.kill();
  });

  it('when the same storm asks to reject short orders, then 10 are confirmed and 290 rejected', async () => {
    h().spawnWorker({ ORDER_CONCURRENCY: '8' });
    h().spawnWorker({ ORDER_CONCURRENCY: '8' });
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const orders = await storm(h(), 300, p.sku, c.id, 'reject');
    await settled(
      h(),
      orders.map((o) => o.id),
    );
    expect(
      await statusCounts(
        h(),
        orders.map((o) => o.id),
      ),
    ).toEqual({ confirmed: 10, rejected: 290 });
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 10, reserved: 10, backordered: 0 });
    const rejected = await h().api('GET', `/v1/orders?status=rejected&limit=1`, { role: 'intake' });
    expect(rejected.body.data[0].status_reason).toMatch(/insufficient stock/);
  });

  it('when a worker process is SIGKILLed mid-storm and restarted, then every order settles and nothing is reserved twice', async () => {
    const c = await makeCustomer(h());
    const skus = await Promise.all([makeProduct(h(), 40), makeProduct(h(), 400)]);
    const victim = h().spawnWorker({ ORDER_CONCURRENCY: '8' });
    h().spawnWorker({ ORDER_CONCURRENCY: '8' });
    const first = await Promise.all(
      Array.from({ length: 200 }, (_, i) => placeOrder(h(), c.id, [{ sku: skus[i % 2].sku, quantity: 1 + (i % 3) }])),
    );
    // Kill as soon as the victim has started reserving.
    await waitFor(
      async () =>
        Number(
          (
            await h()
              .ctx.db('orders')
              .whereIn(
                'id',
                first.map((o) => o.id),
              )
              .whereNot('status', 'received')
              .count({ n: '*' })
              .first()
          )?.n,
        ) > 5,
      { timeout: 30000, interval: 20, what: 'processing started' },
    );
    victim.kill('SIGKILL');
    expect(await victim.exited).toBe(null);
    const second = await Promise.all(
      Array.from({ length: 200 }, (_, i) => placeOrder(h(), c.id, [{ sku: skus[i % 2].sku, quantity: 1 + (i % 3) }])),
    );
    h().spawnWorker({ ORDER_CONCURRENCY: '8' });
    const ids = [...first, ...second].map((o) => o.id);
    await settled(h(), ids);

    // One snapshot for all the figures: a settled order may still be served by the allocation that
    // follows its commit (it joined its SKU's queue at its own seq while stock was free), and reading
    // the stock row and the ledger at two moments could straddle that transaction.
    await h().ctx.db.transaction(
      async (trx) => {
        for (const p of skus) {
          const s = await trx('stock').where({ sku: p.sku }).first();
          const confirmedQty = await trx('order_lines as l')
            .join('orders as o', 'o.id', 'l.order_id')
            .where('l.sku', p.sku)
            .whereIn('o.status', ['confirmed', 'awaiting_stock'])
            .where('l.reserved', true)
            .sum({ q: 'l.quantity' })
            .first();
          expect(s.reserved).toBe(Number(confirmedQty?.q ?? 0));
          expect(s.reserved).toBeLessThanOrEqual(s.on_hand);
          const ledger = await trx('stock_movements')
            .where({ sku: p.sku })
            .whereIn('type', ['initial', 'receipt', 'sale', 'adjustment'])
            .sum({ q: 'quantity' })
            .first();
          expect(s.on_hand).toBe(Number(ledger?.q ?? 0));
          const reservations = await trx('stock_movements')
            .where({ sku: p.sku })
            .whereIn('type', ['reservation', 'release'])
            .sum({ q: 'quantity' })
            .first();
          expect(Number(reservations?.q ?? 0)).toBe(s.reserved);
        }
      },
      { isolationLevel: 'repeatable read' },
    );
    // Exactly one event per transition, never two for the same one.
    const dupEvents = await h()
      .ctx.db('events')
      .whereIn('order_id', ids)
      .groupBy('order_id', 'transition_no')
      .havingRaw('count(*) > 1')
      .select('order_id');
    expect(dupEvents).toHaveLength(0);
    const counts = await statusCounts(h(), ids);
    expect((counts.confirmed ?? 0) + (counts.awaiting_stock ?? 0)).toBe(400);
  });
});
