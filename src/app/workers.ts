import { writeFile } from 'node:fs/promises';
import { Worker, type Job, type Processor } from 'bullmq';
import type { AppContext } from './context';
import { logger } from '../platform/logger';
import { metrics } from '../platform/metrics';
import { createRedis, sentinelsOf } from '../platform/redis';
import { relayOutbox } from '../jobs/relay';
import { startSequencer } from '../events';
import { JOB, QUEUES, retention, type QueueName } from '../jobs/queues';
import { createBulkProcessor } from '../jobs/processors/bulk.processor';
import { createMaintenanceProcessor } from '../jobs/processors/maintenance.processor';
import { createNotificationProcessor } from '../jobs/processors/notification.processor';
import { createOrderProcessor } from '../jobs/processors/order.processor';
import { createRestockProcessor } from '../jobs/processors/restock.processor';

export interface RunningWorkers {
  workers: Worker[];
  close(): Promise<void>;
}

/** Wraps a processor with a scoped logger and a duration metric; errors still reach BullMQ. */
function instrument(queue: QueueName, fn: Processor): Processor {
  return async (job: Job) => {
    const end = metrics.jobDuration.startTimer({ queue });
    const log = logger.child({ queue, jobId: job.id, orderId: (job.data as any)?.orderId });
    try {
      const result = await fn(job);
      end({ outcome: 'completed' });
      log.debug({ result }, 'job done');
      return result;
    } catch (err) {
      end({ outcome: 'failed' });
      log.warn({ err: (err as Error).message, attempt: job.attemptsMade + 1 }, 'job failed');
      throw err;
    }
  };
}

/**
 * Every worker of orderflow in this process, wired as BullMQ's production guide says:
 * `maxRetriesPerRequest: null`, error listeners, bounded job retention (in the queue defaults),
 * schedulers for the reconciler, and a graceful close with a timeout.
 */
export async function startWorkers(ctx: AppContext, only?: QueueName[]): Promise<RunningWorkers> {
  const { config } = ctx;
  const connection = createRedis(config.REDIS_URL, 'worker', sentinelsOf(config));
  const want = (q: QueueName) => !only || only.includes(q);
  const make = (name: QueueName, processor: Processor, concurrency: number) => {
    const w = new Worker(name, instrument(name, processor), {
      connection,
      prefix: config.QUEUE_PREFIX,
      concurrency,
      ...retention(name),
      maxStalledCount: 5,
      stalledInterval: 5000,
      lockDuration: 15000,
      autorun: true,
    });
    w.on('error', (err) => logger.warn({ queue: name, err: err.message }, 'worker error'));
    return w;
  };
  const workers: Worker[] = [];
  if (want('orders')) workers.push(make(QUEUES.orders, createOrderProcessor(ctx), config.ORDER_CONCURRENCY));
  if (want('restocks')) workers.push(make(QUEUES.restocks, createRestockProcessor(ctx), 4));
  if (want('notifications'))
    workers.push(make(QUEUES.notifications, createNotificationProcessor(ctx), config.NOTIFY_CONCURRENCY));
  if (want('maintenance')) workers.push(make(QUEUES.maintenance, createMaintenanceProcessor(ctx), 1));
  if (want('bulk')) workers.push(make(QUEUES.bulk, createBulkProcessor(ctx), 2));

  const reconcileEvery = Math.max(250, Math.min(config.MAINTENANCE_INTERVAL_MS, config.RECONCILE_AFTER_SECONDS * 500));
  const schedules: [string, number][] = [
    [JOB.reconcile, reconcileEvery],
    [JOB.expireBackorders, Math.max(1000, config.MAINTENANCE_INTERVAL_MS)],
    [JOB.pruneRecords, Math.max(1000, config.MAINTENANCE_INTERVAL_MS)],
  ];
  /**
   * Schedulers live in Redis. At start each is written as this configuration says (a restart with
   * another MAINTENANCE_INTERVAL_MS changes it); afterwards, on each tick, one Redis lost is put back.
   */
  const ensureSchedulers = async (force: boolean) => {
    if (!want('maintenance')) return;
    const q = ctx.queues.maintenance;
    for (const [name, every] of schedules) {
      const current = force ? undefined : await q.getJobScheduler(name);
      if (force || !current) await q.upsertJobScheduler(name, { every }, { name });
    }
  };
  await ensureSchedulers(true).catch((err) => logger.warn({ err: err.message }, 'could not set up job schedulers yet'));

  let stopping = false;
  let relaying: Promise<unknown> = Promise.resolve();
  const relayTimer = setInterval(() => {
    if (stopping) return;
    if (config.HEARTBEAT_FILE) writeFile(config.HEARTBEAT_FILE, String(Date.now())).catch(() => undefined);
    relaying = relayOutbox(ctx).catch((err) => logger.warn({ err: err.message }, 'outbox relay failed; will retry'));
  }, config.RELAY_INTERVAL_MS);
  // Numbers committed events for the feed; one process at a time does it (the others find the lock taken).
  const sequencer = startSequencer(ctx.db, config.SEQUENCER_INTERVAL_MS, (err) =>
    logger.warn({ err: (err as Error).message }, 'event sequencer failed; will retry'),
  );
  const schedulerTimer = setInterval(() => {
    void ensureSchedulers(false).catch(() => undefined);
  }, reconcileEvery);

  return {
    workers,
    async close() {
      stopping = true;
      clearInterval(relayTimer);
      clearInterval(schedulerTimer);
      await relaying;
      await sequencer.stop();
      // Active jobs finish; if they do not within the timeout, they are handed back (stalled → retried).
      const graceful = Promise.all(workers.map((w) => w.close()));
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), config.SHUTDOWN_TIMEOUT_MS).unref());
      if ((await Promise.race([graceful, timeout])) === 'timeout') {
        logger.warn('workers did not finish in time; closing with force, their jobs will be retried');
        await Promise.all(workers.map((w) => w.close(true)));
      }
      connection.disconnect();
    },
  };
}
