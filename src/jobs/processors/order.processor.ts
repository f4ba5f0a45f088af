import { UnrecoverableError, type Job } from 'bullmq';
import {
  markOrderFailed,
  processOrders,
  recordFailedRun,
  retriedFromBoard,
  skusOfOrders,
  type Outcome,
} from '../../orders';
import type { Context } from '../../platform/context';
import { GroupCommit } from '../../platform/group-commit';
import { logger } from '../../platform/logger';
import type { OrderJob } from '../queues';

/**
 * Group commit for processing: jobs that arrive while transactions run are served together by the
 * next one (up to ORDER_BATCH_MAX orders per transaction). Up to ORDER_BATCH_IN_FLIGHT transactions
 * run at once, and two of them never share a SKU: each waiting order's SKUs are read from its
 * lines, orders are taken in arrival order, and an order whose SKU is in flight waits (holding back
 * the orders behind it on its SKUs), so concurrent batches do not lose version checks to each
 * other. A hot SKU therefore gets one transaction at a time, reserving a whole batch's demand in
 * one version bump. Stock rows are still version-checked; this only avoids the conflicts this
 * process would cause itself.
 */
export function createOrderBatcher(
  ctx: Context,
  maxBatch = ctx.config.ORDER_BATCH_MAX,
  maxInFlight = ctx.config.ORDER_BATCH_IN_FLIGHT,
) {
  const skusOf = new Map<string, string[]>();
  /** SKU → groups in flight that touch it. */
  const busy = new Map<string, number>();
  const skusIn = (ids: string[]) => [...new Set(ids.flatMap((id) => skusOf.get(id) ?? []))];
  return new GroupCommit<string, Outcome | undefined>({
    maxBatch,
    maxInFlight,
    lingerMs: ctx.config.WORKER_BATCH_LINGER_MS,
    key: (id) => id,
    commit: async (ids) => {
      const outcomes = await processOrders(ctx, [...new Set(ids)]);
      return ids.map((id) => outcomes.get(id));
    },
    select: async (waiting, limit, running) => {
      if (maxInFlight === 1) return waiting.slice(0, limit);
      const window = waiting.slice(0, limit * maxInFlight);
      const unknown = [...new Set(window.filter((id) => !skusOf.has(id)))];
      if (unknown.length > 0) {
        try {
          const found = await skusOfOrders(ctx.db, unknown);
          for (const id of unknown) skusOf.set(id, found.get(id) ?? []);
        } catch {
          // Database unreachable: one group at a time, whose failure takes the usual retry path.
          return running === 0 ? waiting.slice(0, limit) : [];
        }
      }
      const held = new Set<string>();
      const taken: string[] = [];
      for (const id of window) {
        if (taken.length >= limit) break;
        const skus = skusOf.get(id) ?? [];
        if (skus.some((s) => busy.has(s) || held.has(s))) {
          for (const s of skus) held.add(s);
          continue;
        }
        taken.push(id);
      }
      return taken;
    },
    onStart: (ids) => {
      for (const s of skusIn(ids)) busy.set(s, (busy.get(s) ?? 0) + 1);
    },
    onEnd: (ids) => {
      for (const s of skusIn(ids)) {
        const n = busy.get(s)! - 1;
        if (n > 0) busy.set(s, n);
        else busy.delete(s);
      }
      for (const id of ids) skusOf.delete(id);
    },
  });
}

/** The `orders` job: validate → reserve → persist → outbox, via the group commit. */
export function createOrderProcessor(ctx: Context, batcher = createOrderBatcher(ctx)) {
  return async (job: Job<OrderJob>) => {
    const orderId = job.data?.orderId;
    if (typeof orderId !== 'string') throw new UnrecoverableError('job has no orderId');
    const started = Date.now();
    try {
      // Retried in the board by an operator: the history names them (without the mark, processing
      // still takes a failed order back to received, as the system).
      const by = job.data.retriedBy;
      if (by && typeof by.role === 'string' && typeof by.name === 'string')
        await retriedFromBoard(ctx, orderId, { role: by.role, name: by.name });
      const outcome = await batcher.submit(orderId);
      if (!outcome) throw new UnrecoverableError(`order ${orderId} does not exist`);
      // A rejection is the order's answer, not the job's failure: the job completes and says so
      // (a failed job always means something a person may need to look at).
      if (outcome.processed && outcome.status === 'rejected')
        return { status: 'rejected', processed: true, rejected: outcome.reason };
      return { status: outcome.status, processed: outcome.processed };
    } catch (err) {
      if (err instanceof UnrecoverableError) throw err;
      const attempts = job.opts.attempts ?? 1;
      const last = job.attemptsMade + 1 >= attempts;
      // knex prefixes the SQL to the driver's message; the record keeps only the driver's words.
      const message = String((err as Error).message)
        .split(' - ')
        .pop()!;
      // The run is remembered in PostgreSQL (the timeline), unless the database is what failed.
      await recordFailedRun(ctx.db, orderId, last ? 'failed' : 'error', message, Date.now() - started).catch(
        () => undefined,
      );
      if (last) {
        const reason = `failed after ${attempts} attempts: ${message}`.slice(0, 500);
        await markOrderFailed(ctx, orderId, reason, attempts).catch((e) =>
          logger.warn(
            { orderId, err: (e as Error).message },
            'could not mark order failed; the reconciler will enqueue it again',
          ),
        );
      }
      throw err;
    }
  };
}
