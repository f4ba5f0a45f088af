import { Queue, type DefaultJobOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config';

/** Every queue's name and payload in one place. Payloads carry ids only: PostgreSQL holds the data. */
export const QUEUES = {
  orders: 'orders',
  restocks: 'restocks',
  notifications: 'notifications',
  maintenance: 'maintenance',
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export interface OrderJob { orderId: string }
export type RestockJob = { eventId: string } | { sku: string };
export interface NotificationJob { eventId: string }
export type MaintenanceJob = Record<string, never>;

export const JOB = {
  processOrder: 'process-order',
  applyRestock: 'apply-restock',
  allocate: 'allocate',
  deliver: 'deliver',
  reconcile: 'reconcile',
  expireBackorders: 'expire-backorders',
} as const;

export function jobOptions(config: Config, queue: QueueName): DefaultJobOptions {
  const keep = { removeOnComplete: { age: 3600, count: 5000 }, removeOnFail: { age: 7 * 24 * 3600, count: 20000 } };
  switch (queue) {
    case 'orders':
      return { ...keep, attempts: config.ORDER_ATTEMPTS, backoff: { type: 'exponential', delay: config.ORDER_BACKOFF_MS, jitter: 0.5 } };
    case 'restocks':
      return { ...keep, attempts: 10, backoff: { type: 'exponential', delay: 500, jitter: 0.5 } };
    case 'notifications':
      return { ...keep, attempts: config.NOTIFY_MAX_ATTEMPTS, backoff: { type: 'exponential', delay: config.NOTIFY_BACKOFF_MS, jitter: 0.25 } };
    case 'maintenance':
      return { removeOnComplete: { count: 100 }, removeOnFail: { count: 500 }, attempts: 3, backoff: { type: 'fixed', delay: 1000 } };
  }
}

export type Queues = Record<keyof typeof QUEUES, Queue>;

export function createQueues(config: Config, connection: Redis): Queues {
  const make = (name: QueueName) => {
    const q = new Queue(name, { connection, prefix: config.QUEUE_PREFIX, defaultJobOptions: jobOptions(config, name) });
    q.on('error', () => undefined); // the connection logs its own errors (rate-limited) in connection.ts
    return q;
  };
  return { orders: make('orders'), restocks: make('restocks'), notifications: make('notifications'), maintenance: make('maintenance') };
}

export async function closeQueues(queues: Queues): Promise<void> {
  // With Redis gone, close() could wait for a connection forever: bound it.
  const closing = Promise.allSettled(Object.values(queues).map((q) => q.close()));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closing, new Promise((r) => { timer = setTimeout(r, 2000); })]);
  clearTimeout(timer);
}
