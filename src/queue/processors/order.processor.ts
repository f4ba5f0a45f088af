import { UnrecoverableError, type Job } from 'bullmq';
import type { Context } from '../../context';
import { logger } from '../../logger';
import { markOrderFailed, processOrders, type Outcome } from '../../modules/orders';
import type { OrderJob } from '../queues';

interface Waiter { id: string; resolve: (o: Outcome | undefined) => void; reject: (e: unknown) => void }

/**
 * Group commit: jobs that arrive while a transaction runs are served together by the next one
 * (up to `maxBatch`). If a batch fails, each order is tried alone so one bad order fails only its job.
 */
export class OrderBatcher {
  private queue: Waiter[] = [];
  private running = 0;
  constructor(private ctx: Context, private maxBatch = 100, private maxInFlight = 1) {}

  run(id: string): Promise<Outcome | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.running++;
      void this.flush(batch).finally(() => { this.running--; this.pump(); });
    }
  }

  private async flush(batch: Waiter[]): Promise<void> {
    const ids = [...new Set(batch.map((w) => w.id))];
    try {
      const outcomes = await processOrders(this.ctx, ids);
      for (const w of batch) w.resolve(outcomes.get(w.id));
    } catch (err) {
      if (ids.length === 1) { for (const w of batch) w.reject(err); return; }
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
