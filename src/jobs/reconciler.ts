import type { Queue } from 'bullmq';
import type { AppContext } from '../app/context';
import { runningBulkActions } from '../bulk';
import { pruneEvents } from '../events';
import { logger } from '../platform/logger';
import type { RedisClient } from '../platform/redis';
import { allocateWhereStockIsFree } from '../orders';
import { restockJobId } from '../restocks';
import { enqueueReplacingFinished } from './publisher';
import { relayOutbox } from './relay';
import { JOB } from './queues';

/**
 * Whether each job still has work to do: its hash exists (every job hash has `timestamp`) and has
 * no `finishedOn` (set only when it completes or fails for good; a job waiting, active, delayed
 * for a retry or prioritized has none). One HMGET per job in one pipeline: O(1) each, where
 * BullMQ's getJobState searches the wait list (LPOS), so 5,000 checks against a 60,000-job backlog
 * cost Redis seconds per pass and slowed the very workers that drain it (the soak, docs/benchmarks.md).
 */
async function liveJobs(redis: RedisClient, queue: Queue, jobIds: string[]): Promise<boolean[]> {
  if (!jobIds.length) return [];
  const pipeline = redis.pipeline();
  for (const id of jobIds) pipeline.hmget(queue.toKey(id), 'timestamp', 'finishedOn');
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([err, v]: [Error | null, unknown]) => {
    if (err) throw err;
    const [created, finished] = v as (string | null)[];
    return created !== null && finished === null;
  });
}

/** Re-adds the jobs whose state is gone or finished; returns how many it added. */
async function requeueIfNotLive(
  redis: RedisClient,
  queue: Queue,
  name: string,
  items: { jobId: string; data: object }[],
): Promise<number> {
  let added = 0;
  for (let i = 0; i < items.length; i += 500) {
    const chunk = items.slice(i, i + 500);
    const live = await liveJobs(
      redis,
      queue,
      chunk.map((it) => it.jobId),
    );
    for (const [k, it] of chunk.entries()) {
      if (live[k]) continue;
      await enqueueReplacingFinished(queue, name, it.data, it.jobId);
      added++;
    }
  }
  return added;
}

/**
 * PostgreSQL is the record, Redis only transport: whatever the database says still needs work and
 * has no live job gets one again. This is what survives Redis losing all its data.
 */
export async function reconcile(ctx: AppContext): Promise<Record<string, number>> {
  const after = ctx.config.RECONCILE_AFTER_SECONDS;
  const older = (col: string) => ctx.db.raw(`${col} < now() - make_interval(secs => ?)`, [after]);
  const relayed = await relayOutbox(ctx, { limit: 5000 });
  const orders: string[] = await ctx
    .db('orders')
    .where('status', 'received')
    .where(older('updated_at'))
    .orderBy('seq')
    .limit(5000)
    .pluck('id');
  const restocks: string[] = await ctx
    .db('restock_events')
    .whereNull('applied_at')
    .where(older('received_at'))
    .limit(5000)
    .pluck('event_id');
  const events: string[] = await ctx
    .db('events')
    .whereNull('settled_at')
    .where(older('created_at'))
    .orderBy('created_at')
    .limit(5000)
    .pluck('id');
  const result = {
    relayed,
    orders: await requeueIfNotLive(
      ctx.redis,
      ctx.queues.orders,
      JOB.processOrder,
      orders.map((id) => ({ jobId: id, data: { orderId: id } })),
    ),
    restocks: await requeueIfNotLive(
      ctx.redis,
      ctx.queues.restocks,
      JOB.applyRestock,
      restocks.map((e) => ({ jobId: restockJobId(e), data: { eventId: e } })),
    ),
    notifications: await requeueIfNotLive(
      ctx.redis,
      ctx.queues.notifications,
      JOB.deliver,
      events.map((id) => ({ jobId: id, data: { eventId: id } })),
    ),
    allocated: await allocateWhereStockIsFree(ctx),
    bulk: await requeueIfNotLive(
      ctx.redis,
      ctx.queues.bulk,
      JOB.runBulkAction,
      (await runningBulkActions(ctx.db)).map((id) => ({ jobId: id, data: { bulkId: id } })),
    ),
  };
  if (result.orders || result.restocks || result.notifications || result.allocated || result.bulk)
    logger.info(result, 'reconciler re-enqueued work');
  return result;
}

/**
 * Old records go: published outbox rows after a day, idempotency keys after 48 hours, settled
 * events (with their deliveries) after EVENT_RETENTION_DAYS.
 */
export async function pruneRecords(ctx: Pick<AppContext, 'db' | 'config'>): Promise<Record<string, number>> {
  const outbox = await ctx
    .db('outbox')
    .whereNotNull('published_at')
    .where('published_at', '<', ctx.db.raw("now() - interval '1 day'"))
    .delete();
  const keys = await ctx
    .db('idempotency_keys')
    .where('created_at', '<', ctx.db.raw("now() - interval '48 hours'"))
    .delete();
  const events = await pruneEvents(ctx.db, ctx.config.EVENT_RETENTION_DAYS);
  return { outbox, keys, events };
}
