import { UnrecoverableError, type Job } from 'bullmq';
import type { Context } from '../../app/context';
import { isDatabaseUnavailable } from '../../platform/errors';
import { logger } from '../../platform/logger';
import { markOrderFailed, processOrders, type Outcome } from '../../orders';
import type { OrderJob } from '../queues';

interface Waiter { id: string; resolve: (o: Outcome | undefined) => void; reject: (e: unknown) => void; skus?: string[] }

/**
 * Group commit: jobs that arrive while transactions run are served together by the next one (up
 * to `maxBatch` orders per transaction). Up to `maxInFlight` transactions run at once, and two of
 * them never share a SKU: each waiting order's SKUs are read from its lines, orders are taken in
 * arrival order, and an order whose SKU is in flight waits (holding back the orders behind it on
 * its SKUs), so concurrent batches do not lose version checks to each other. A hot SKU therefore
 * gets one transaction at a time, reserving a whole batch's demand in one version bump. Stock rows
 * are still version-checked; this only avoids the conflicts this process would cause itself.
 * If a batch fails, each order is tried alone so one bad order fails only its job (unless the
 * database is unreachable: then every job of the batch fails at once and backs off).
 */
export class OrderBatcher {
  private queue: Waiter[] = [];
  private running = 0;
  private planning = false;
  /** SKU → batches in flight that touch it. */
  private busy = new Map<string, number>();
  constructor(private ctx: Context, private maxBatch = ctx.config.ORDER_BATCH_MAX, private maxInFlight = ctx.config.ORDER_BATCH_IN_FLIGHT) {}

  run(id: string): Promise<Outcome | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, resolve, reject });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.planning) return;
    this.planning = true;
    try {
      while (this.running < this.maxInFlight && this.queue.length > 0) {
        const batch = await this.take();
        if (batch.length === 0) break; // what waits touches a SKU in flight: the end of that batch pumps again
        this.start(batch);
      }
    } finally {
      this.planning = false;
    }
  }

  /** The next batch: in arrival order, none of its SKUs in flight. */
  private async take(): Promise<Waiter[]> {
    if (this.maxInFlight === 1) return this.queue.splice(0, this.maxBatch);
    const window = this.queue.slice(0, this.maxBatch * this.maxInFlight);
    const unknown = [...new Set(window.filter((w) => !w.skus).map((w) => w.id))];
    if (unknown.length > 0) {
      try {
        const rows: { order_id: string; sku: string }[] = await this.ctx.db('order_lines').whereIn('order_id', unknown).select('order_id', 'sku');
        const byOrder = new Map<string, string[]>();
        for (const r of rows) byOrder.set(r.order_id, [...(byOrder.get(r.order_id) ?? []), r.sku]);
        for (const w of window) w.skus ??= byOrder.get(w.id) ?? [];
      } catch {
        // Database unreachable: one batch at a time, whose failure takes the usual retry path.
        return this.running === 0 ? this.queue.splice(0, this.maxBatch) : [];
      }
    }
    const held = new Set<string>();
    const taken = new Set<Waiter>();
    for (const w of window) {
      if (taken.size >= this.maxBatch) break;
      const skus = w.skus ?? [];
      if (skus.some((s) => this.busy.has(s) || held.has(s))) { for (const s of skus) held.add(s); continue; }
      taken.add(w);
    }
    this.queue = this.queue.filter((w) => !taken.has(w));
    return [...taken];
  }

  private start(batch: Waiter[]): void {
    const skus = [...new Set(batch.flatMap((w) => w.skus ?? []))];
    for (const s of skus) this.busy.set(s, (this.busy.get(s) ?? 0) + 1);
    this.running++;
    void this.flush(batch).finally(() => {
      for (const s of skus) {
        const n = this.busy.get(s)! - 1;
        if (n > 0) this.busy.set(s, n); else this.busy.delete(s);
      }
      this.running--;
      void this.pump();
    });
  }

  private async flush(batch: Waiter[]): Promise<void> {
    const ids = [...new Set(batch.map((w) => w.id))];
    try {
      const outcomes = await processOrders(this.ctx, ids);
      for (const w of batch) w.resolve(outcomes.get(w.id));
    } catch (err) {
      // One order at a time finds the bad one; an unreachable database fails them all alike (each job backs off).
      if (ids.length === 1 || isDatabaseUnavailable(err)) { for (const w of batch) w.reject(err); return; }
      for (const id of ids) {
        const mine = batch.filter((w) => w.id === id);
        try {
          const outcome = (await processOrders(this.ctx, [id])).get(id);
          for (const w of mine) w.resolve(outcome);
        } catch (e) { for (const w of mine) w.reject(e); }
      }
    }
  }
}

/** The `orders` job: validate → reserve → persist → outbox, via the batcher. */
export function createOrderProcessor(ctx: Context, batcher = new OrderBatcher(ctx)) {
  return async (job: Job<OrderJob>) => {
    const orderId = job.data?.orderId;
    if (typeof orderId !== 'string') throw new UnrecoverableError('job has no orderId');
    try {
      const outcome = await batcher.run(orderId);
      if (!outcome) throw new UnrecoverableError(`order ${orderId} does not exist`);
      if (outcome.processed && outcome.status === 'rejected') throw new UnrecoverableError(`order rejected: ${outcome.reason}`);
      return { status: outcome.status, processed: outcome.processed };
    } catch (err) {
      if (err instanceof UnrecoverableError) throw err;
      const attempts = job.opts.attempts ?? 1;
      if (job.attemptsMade + 1 >= attempts) {
        // knex prefixes the SQL to the driver's message; the reason keeps only the driver's words.
        const reason = `failed after ${attempts} attempts: ${String((err as Error).message).split(' - ').pop()}`.slice(0, 500);
        await markOrderFailed(ctx, orderId, reason, attempts).catch((e) =>
          logger.warn({ orderId, err: (e as Error).message }, 'could not mark order failed; the reconciler will enqueue it again'));
      }
      throw err;
    }
  };
}
