import { v7 as uuidv7 } from 'uuid';
import type { AppContext } from '../../src/app/context';
import { metrics } from '../../src/platform/metrics';
import { receiveRestocks } from '../../src/restocks';
import type { QueueName } from '../../src/jobs/queues';
import { startWorkers, type RunningWorkers } from '../../src/app/workers';
import { benchLocations, checkInvariants, countByStatus, orderMix, seedProducts, submitOrders, until } from './setup';

/**
 * The workers running while the clock runs. By default every worker of the order pipeline
 * (orders, restocks, maintenance, and the outbox relay that startWorkers runs) but not the
 * notifications worker: the figure ends when the order is confirmed and its event written; the
 * deliveries are then drained and timed apart (notify_*). `withNotifications` runs them all.
 */
export function timedQueues(withNotifications: boolean): QueueName[] | undefined {
  return withNotifications ? undefined : ['orders', 'restocks', 'maintenance'];
}

export interface PipelineResult {
  orders: number;
  skus: number;
  seconds: number;
  ops: number;
  submit_seconds: number;
  workers: string;
  notify_drain_seconds: number | null;
  notify_ops: number | null;
  stock_attempts: number;
  optimistic_conflicts: number;
  conflict_rate: number;
  confirmed_events: number;
  invariants_ok: boolean;
  problems: string[];
}

async function counterTotal(c: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await c.get()).values.reduce((s, v) => s + v.value, 0);
}

/** Starts every real worker in this process with the orders queue paused; returns once they are ready. */
async function startPaused(ctx: AppContext, only: QueueName[] | undefined): Promise<RunningWorkers> {
  await ctx.queues.orders.pause();
  const running = await startWorkers(ctx, only);
  await Promise.all(running.workers.map((w) => w.waitUntilReady()));
  return running;
}

/** Starts the notifications worker and times until every event of these orders is settled. */
async function drainNotifications(
  ctx: AppContext,
  minSeq: number,
  maxSeq: number,
  timeoutMs: number,
): Promise<{ seconds: number; events: number }> {
  const unsettled = async () =>
    Number(
      (
        await ctx.db.raw(
          `SELECT count(*) AS n FROM events e JOIN orders o ON o.id = e.order_id WHERE o.seq BETWEEN ? AND ? AND e.settled_at IS NULL`,
          [minSeq, maxSeq],
        )
      ).rows[0].n,
    );
  const events = await unsettled();
  const t0 = performance.now();
  const running = await startWorkers(ctx, ['notifications']);
  try {
    const t1 = await until(async () => (await unsettled()) === 0, timeoutMs, 'notifications settled', 100);
    return { seconds: (t1 - t0) / 1000, events };
  } finally {
    await running.close();
  }
}

/** Resolves (with until's clock) once `n` orders of the submitted seq range are `confirmed`. */
function untilConfirmed(
  ctx: AppContext,
  submitted: { minSeq: number; maxSeq: number },
  n: number,
  timeoutMs: number,
  what: string,
) {
  return until(
    async () => {
      const c = await ctx
        .db('orders')
        .whereBetween('seq', [submitted.minSeq, submitted.maxSeq])
        .where('status', 'confirmed')
        .count({ n: '*' })
        .first();
      return Number(c?.n) >= n;
    },
    timeoutMs,
    what,
  );
}

async function confirmedEvents(ctx: AppContext, minSeq: number, maxSeq: number): Promise<number> {
  const { rows } = await ctx.db.raw(
    `SELECT count(*)::int AS n FROM events e JOIN orders o ON o.id = e.order_id
      WHERE o.seq BETWEEN ? AND ? AND e.type = 'order.confirmed'`,
    [minSeq, maxSeq],
  );
  return rows[0].n;
}

/**
 * Our pipeline, submission to `confirmed`: `orders` one-line orders (quantity 1) spread over
 * `skus` SKUs (1 = the hot SKU) with ample stock are submitted through placeOrder while the
 * orders queue is paused; then every real worker runs in this process (startWorkers(ctx):
 * orders, restocks, notifications, maintenance, outbox relay) and the clock runs from resume
 * until every order is `confirmed` with its `order.confirmed` event written.
 */
export async function runPipeline(
  ctx: AppContext,
  customers: string[],
  opts: {
    orders: number;
    skus: number;
    tag: string;
    timeoutMs: number;
    withNotifications: boolean;
    drainNotifications: boolean;
    /** Stock spread over this many locations (default 1: main only). */
    locations?: number;
  },
): Promise<PipelineResult> {
  const perSku = Math.ceil(opts.orders / opts.skus) * 4 + 10;
  const skus = await seedProducts(
    ctx.db,
    opts.tag,
    opts.skus,
    perSku,
    await benchLocations(ctx.db, opts.locations ?? 1),
  );
  const orders = orderMix(opts.orders, skus).map((sku, i) => ({
    customer_id: customers[i % customers.length],
    sku,
    quantity: 1,
  }));
  // Paused while the orders go in, so that the clock below sees the whole backlog drain.
  await ctx.queues.orders.pause();
  const submitted = await submitOrders(ctx, orders);
  const only = timedQueues(opts.withNotifications);
  const running = await startPaused(ctx, only);
  let result: PipelineResult;
  try {
    const attempts0 = await counterTotal(metrics.stockAttempts);
    const conflicts0 = await counterTotal(metrics.optimisticConflicts);
    const t0 = performance.now();
    await ctx.queues.orders.resume();
    let last: Record<string, number> = {};
    const t1 = await untilConfirmed(
      ctx,
      submitted,
      opts.orders,
      opts.timeoutMs,
      `${opts.orders} confirmed orders (${opts.tag})`,
    ).catch(async (err) => {
      last = await countByStatus(ctx.db, submitted.minSeq, submitted.maxSeq);
      throw new Error(`${(err as Error).message}; statuses ${JSON.stringify(last)}`);
    });
    const attempts = (await counterTotal(metrics.stockAttempts)) - attempts0;
    const conflicts = (await counterTotal(metrics.optimisticConflicts)) - conflicts0;
    const seconds = (t1 - t0) / 1000;
    const inv = await checkInvariants(ctx.db, skus);
    result = {
      orders: opts.orders,
      skus: opts.skus,
      seconds,
      ops: opts.orders / seconds,
      submit_seconds: submitted.seconds,
      workers: only ? only.join(',') : 'all',
      notify_drain_seconds: null,
      notify_ops: null,
      stock_attempts: attempts,
      optimistic_conflicts: conflicts,
      conflict_rate: attempts ? conflicts / attempts : 0,
      confirmed_events: await confirmedEvents(ctx, submitted.minSeq, submitted.maxSeq),
      invariants_ok: inv.ok,
      problems: inv.problems,
    };
  } finally {
    await running.close();
  }
  if (only && opts.drainNotifications) {
    const d = await drainNotifications(ctx, submitted.minSeq, submitted.maxSeq, opts.timeoutMs);
    result.notify_drain_seconds = d.seconds;
    result.notify_ops = d.events / d.seconds;
  }
  return result;
}

export interface RestockResult {
  orders: number;
  seconds: number;
  prepare_seconds: number;
  confirmed_events: number;
  fifo_ok: boolean;
  invariants_ok: boolean;
  problems: string[];
}

/**
 * `orders` one-unit orders wait on one SKU with no stock (all `awaiting_stock`, workers running);
 * then ONE restock of `orders` units is received (receiveRestocks, as POST /v1/restocks does) and
 * the clock runs until every order is `confirmed`.
 */
export async function runRestock(
  ctx: AppContext,
  customers: string[],
  opts: { orders: number; tag: string; timeoutMs: number; withNotifications: boolean },
): Promise<RestockResult> {
  const [sku] = await seedProducts(ctx.db, opts.tag, 1, 0);
  const running = await startWorkers(ctx, timedQueues(opts.withNotifications));
  try {
    const p0 = performance.now();
    const submitted = await submitOrders(
      ctx,
      Array.from({ length: opts.orders }, (_, i) => ({
        customer_id: customers[i % customers.length],
        sku,
        quantity: 1,
      })),
    );
    await until(
      async () => (await countByStatus(ctx.db, submitted.minSeq, submitted.maxSeq)).awaiting_stock === opts.orders,
      opts.timeoutMs,
      `${opts.orders} awaiting_stock orders`,
      100,
    );
    const prepare = (performance.now() - p0) / 1000;
    const t0 = performance.now();
    await receiveRestocks(ctx, [{ event_id: `bench-${uuidv7()}`, sku, quantity: opts.orders }]);
    const t1 = await untilConfirmed(ctx, submitted, opts.orders, opts.timeoutMs, `${opts.orders} backorders confirmed`);
    // FIFO: the reservation movements were written in seq order.
    const { rows } = await ctx.db.raw(
      `SELECT bool_and(ordered) AS ok FROM (
         SELECT o.seq >= lag(o.seq, 1, 0::bigint) OVER (ORDER BY m.id) AS ordered
           FROM stock_movements m JOIN orders o ON o.id = m.order_id WHERE m.sku = ? AND m.type = 'reservation') x`,
      [sku],
    );
    const inv = await checkInvariants(ctx.db, [sku]);
    return {
      orders: opts.orders,
      seconds: (t1 - t0) / 1000,
      prepare_seconds: prepare,
      confirmed_events: await confirmedEvents(ctx, submitted.minSeq, submitted.maxSeq),
      fifo_ok: rows[0].ok === true,
      invariants_ok: inv.ok,
      problems: inv.problems,
    };
  } finally {
    await running.close();
  }
}
