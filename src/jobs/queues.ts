import { Queue, type DefaultJobOptions, type WorkerOptions } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Config } from '../platform/config';
import { QUEUES, type QueueName } from '../platform/job-catalog';

export {
  JOB,
  QUEUES,
  type NotificationJob,
  type OrderJob,
  type QueueName,
  type RecoverEndpointJob,
  type RestockJob,
} from '../platform/job-catalog';

/**
 * Per-job options: retries and backoff only. Retention (bounded by age and count) is set on the
 * Workers (`retention`), so it is not stored in every job's hash (~90 bytes of Redis per queued job).
 */
export function jobOptions(config: Config, queue: QueueName): DefaultJobOptions {
  switch (queue) {
    case 'orders':
      return {
        attempts: config.ORDER_ATTEMPTS,
        backoff: { type: 'exponential', delay: config.ORDER_BACKOFF_MS, jitter: 0.5 },
      };
    case 'restocks':
      return { attempts: 10, backoff: { type: 'exponential', delay: 500, jitter: 0.5 } };
    case 'notifications':
      return {
        attempts: config.NOTIFY_MAX_ATTEMPTS,
        backoff: { type: 'exponential', delay: config.NOTIFY_BACKOFF_MS, jitter: 0.25 },
      };
    case 'maintenance':
      return { attempts: 3, backoff: { type: 'fixed', delay: 1000 } };
    case 'bulk':
      // A run that dies is resumed by the next attempt (or the reconciler): it picks up the pending items.
      return { attempts: 100, backoff: { type: 'fixed', delay: 1000 } };
  }
}

/**
 * How long finished jobs stay visible in the board: bounded by age and count, per queue. Completed
 * jobs are only for looking back (the record is in PostgreSQL): the last 5,000 orders and
 * notifications, the last 1,000 restocks and bulk actions (a restock job is rarer than an order but
 * a feed sends them for hours, so 5,000 would keep filling Redis for most of an hour before the cap
 * holds), all within an hour. Failed ones stay a week for a person to look at.
 */
export function retention(queue: QueueName): Pick<WorkerOptions, 'removeOnComplete' | 'removeOnFail'> {
  if (queue === 'maintenance') return { removeOnComplete: { count: 100 }, removeOnFail: { count: 500 } };
  const completed = queue === 'orders' || queue === 'notifications' ? 5000 : 1000;
  return { removeOnComplete: { age: 3600, count: completed }, removeOnFail: { age: 7 * 24 * 3600, count: 20000 } };
}

export type Queues = Record<keyof typeof QUEUES, Queue>;

export function createQueues(config: Config, connection: Redis | Cluster): Queues {
  const make = (name: QueueName) => {
    const q = new Queue(name, { connection, prefix: config.QUEUE_PREFIX, defaultJobOptions: jobOptions(config, name) });
    q.on('error', () => undefined); // the connection logs its own errors (rate-limited) in connection.ts
    return q;
  };
  return {
    orders: make('orders'),
    restocks: make('restocks'),
    notifications: make('notifications'),
    maintenance: make('maintenance'),
    bulk: make('bulk'),
  };
}

export async function closeQueues(queues: Queues): Promise<void> {
  // With Redis gone, close() could wait for a connection forever: bound it.
  const closing = Promise.allSettled(Object.values(queues).map((q) => q.close()));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    closing,
    new Promise((r) => {
      timer = setTimeout(r, 2000);
    }),
  ]);
  clearTimeout(timer);
}
