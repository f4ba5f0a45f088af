import client from 'prom-client';
import type { Cluster, Redis } from 'ioredis';
import { redisKey } from './redis';

/** Process-wide Prometheus registry. Counters shared across processes are also summed in Redis (see StatsSink). */
export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

export const metrics = {
  httpDuration: new client.Histogram({
    name: 'orderflow_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  }),
  orderTransitions: new client.Counter({
    name: 'orderflow_order_transitions_total',
    help: 'Order status transitions',
    labelNames: ['from', 'to'],
    registers: [registry],
  }),
  optimisticConflicts: new client.Counter({
    name: 'orderflow_optimistic_conflicts_total',
    help: 'Stock row updates that lost the optimistic version check',
    labelNames: ['op'],
    registers: [registry],
  }),
  optimisticRetries: new client.Counter({
    name: 'orderflow_optimistic_retries_total',
    help: 'Transactions retried after a conflict, serialization failure or deadlock',
    labelNames: ['op'],
    registers: [registry],
  }),
  stockAttempts: new client.Counter({
    name: 'orderflow_stock_update_attempts_total',
    help: 'Optimistic stock-row update attempts',
    labelNames: ['op'],
    registers: [registry],
  }),
  jobDuration: new client.Histogram({
    name: 'orderflow_job_duration_seconds',
    help: 'Job processing time by queue and outcome',
    labelNames: ['queue', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10],
    registers: [registry],
  }),
  notificationOutcomes: new client.Counter({
    name: 'orderflow_notification_outcomes_total',
    help: 'Notification delivery attempts by channel and outcome',
    labelNames: ['channel', 'outcome'],
    registers: [registry],
  }),
  endpointsDisabledTotal: new client.Counter({
    name: 'orderflow_webhook_endpoints_auto_disabled_total',
    help: 'Webhook endpoints disabled by this process because every delivery failed for ENDPOINT_DISABLE_AFTER_HOURS',
    registers: [registry],
  }),
  endpointsDisabled: new client.Gauge({
    name: 'orderflow_webhook_endpoints_disabled',
    help: 'Webhook endpoints disabled now (by an operator or after failing), read at scrape time',
    labelNames: ['reason'],
    registers: [registry],
  }),
  queueDepth: new client.Gauge({
    name: 'orderflow_queue_jobs',
    help: 'BullMQ jobs by queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
  }),
};

/**
 * Sums counters across processes in one Redis hash (telemetry, not a record: losing it loses nothing).
 * Increments are buffered and flushed every 500 ms.
 */
export class StatsSink {
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout;
  constructor(
    private redis: Redis | Cluster,
    private key: string,
  ) {
    this.timer = setInterval(() => void this.flush(), 500);
    this.timer.unref();
  }
  incr(field: string, by = 1): void {
    this.pending.set(field, (this.pending.get(field) ?? 0) + by);
  }
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const multi = this.redis.multi();
    for (const [f, n] of batch) multi.hincrby(this.key, f, n);
    await multi.exec().catch(() => undefined);
  }
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}

let sink: StatsSink | undefined;
export function setStatsSink(s: StatsSink | undefined): void {
  sink = s;
}
export function countStat(field: string, by = 1): void {
  sink?.incr(field, by);
}
/** The stats hash, `QUEUE_PREFIX:stats` (in the queues' slot on Redis Cluster). */
export function statsKey(prefix: string): string {
  return redisKey({ QUEUE_PREFIX: prefix }, 'stats');
}
