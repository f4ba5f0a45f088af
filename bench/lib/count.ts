import { v7 as uuidv7 } from 'uuid';
import type { AppContext } from '../../src/app/context';
import { startWorkers } from '../../src/app/workers';
import { checkInvariants as checkAll } from '../../src/invariants';
import { applyCount } from '../../src/orders';
import { checkInvariants, orderMix, seedProducts, submitOrders, until } from './setup';

export interface CountRoundResult {
  count: boolean;
  orders: number;
  seconds: number;
  ops: number;
}
export interface CountResult {
  items: number;
  orders_per_round: number;
  /** The count of `items` SKUs, posted while the orders of its round were being processed. */
  count_ms: number;
  count_variances: number;
  /** How many of the round's orders were confirmed when the count started and when it committed. */
  confirmed_at_count_start: number;
  confirmed_at_count_end: number;
  /** Orders/s of the round with the count, and the mean of the rounds without it (before and after). */
  ops_with_count: number;
  ops_without_count: number;
  ratio: number;
  rounds: CountRoundResult[];
  invariants_ok: boolean;
  problems: string[];
}

const confirmedIn = async (ctx: AppContext, s: { minSeq: number; maxSeq: number }) =>
  Number(
    (
      await ctx
        .db('orders')
        .whereBetween('seq', [s.minSeq, s.maxSeq])
        .where('status', 'confirmed')
        .count({ n: '*' })
        .first()
    )?.n,
  );

/**
 * A stock count of `items` SKUs under a running order load, against the same load without it, in
 * one process: three rounds (without, with, without), each `orders` one-unit orders over `items`
 * SKUs of its own, submitted with the orders queue paused and timed from resume until every order
 * is confirmed. In the middle round, once a tenth of its orders are confirmed, ONE count of all its
 * SKUs is applied (applyCount, as POST /v1/inventory/counts does: counted_at 1 s back, two thirds
 * of the items 1 or 2 units short, so a count movement each) and timed on its own; its locks on
 * the 1,000 stock rows hold the orders on them back meanwhile. No item leaves a location short.
 */
export async function runCount(
  ctx: AppContext,
  customers: string[],
  opts: { orders: number; items: number; timeoutMs: number },
): Promise<CountResult> {
  const running = await startWorkers(ctx, ['orders', 'restocks', 'maintenance']);
  await Promise.all(running.workers.map((w) => w.waitUntilReady()));
  const rounds: CountRoundResult[] = [];
  const all: string[] = [];
  let countMs = 0;
  let variances = 0;
  let atStart = 0;
  let atEnd = 0;
  try {
    for (const [k, withCount] of [false, true, false].entries()) {
      const skus = await seedProducts(ctx.db, `COUNT${k}`, opts.items, Math.ceil(opts.orders / opts.items) * 4 + 10);
      all.push(...skus);
      const orders = orderMix(opts.orders, skus).map((sku, i) => ({
        customer_id: customers[i % customers.length],
        sku,
        quantity: 1,
      }));
      await ctx.queues.orders.pause();
      const submitted = await submitOrders(ctx, orders);
      const t0 = performance.now();
      await ctx.queues.orders.resume();
      let counting: Promise<void> = Promise.resolve();
      if (withCount) {
        await until(async () => (await confirmedIn(ctx, submitted)) >= opts.orders / 10, opts.timeoutMs, 'a tenth');
        const onHand = new Map<string, number>(
          (await ctx.db('stock_levels').whereIn('sku', skus).where({ location: 'main' }).select('sku', 'on_hand')).map(
            (r: any) => [r.sku, Number(r.on_hand)],
          ),
        );
        const items = skus.map((sku, i) => ({ sku, on_hand: onHand.get(sku)! - (i % 3) }));
        variances = items.filter((_, i) => i % 3 !== 0).length;
        atStart = await confirmedIn(ctx, submitted);
        counting = (async () => {
          const c0 = performance.now();
          await applyCount(
            ctx,
            { count_id: `bench-${uuidv7()}`, counted_at: new Date(Date.now() - 1000).toISOString(), items },
            { role: 'feed', name: 'bench' },
          );
          countMs = performance.now() - c0;
          atEnd = await confirmedIn(ctx, submitted);
        })();
      }
      const t1 = await until(
        async () => (await confirmedIn(ctx, submitted)) >= opts.orders,
        opts.timeoutMs,
        `${opts.orders} confirmed (round ${k + 1})`,
      );
      await counting;
      const seconds = (t1 - t0) / 1000;
      rounds.push({ count: withCount, orders: opts.orders, seconds, ops: opts.orders / seconds });
    }
  } finally {
    await running.close();
  }
  const inv = await checkInvariants(ctx.db, all);
  const full = await checkAll(ctx.db);
  const without = rounds.filter((r) => !r.count);
  const opsWithout = without.reduce((s, r) => s + r.ops, 0) / without.length;
  const opsWith = rounds.find((r) => r.count)!.ops;
  return {
    items: opts.items,
    orders_per_round: opts.orders,
    count_ms: countMs,
    count_variances: variances,
    confirmed_at_count_start: atStart,
    confirmed_at_count_end: atEnd,
    ops_with_count: opsWith,
    ops_without_count: opsWithout,
    ratio: opsWith / opsWithout,
    rounds,
    invariants_ok: inv.ok && full.ok,
    problems: [...inv.problems, ...full.problems].slice(0, 10),
  };
}
