import client from 'prom-client';
import type { AppContext } from '../app/context';
import { countDisabledEndpoints } from '../notifications';
import { logger } from '../platform/logger';
import { alertReadings } from '../reports';
import { metrics, registry, statsKey } from '../platform/metrics';

const STATES = ['waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed', 'waiting-children'] as const;

/**
 * The series set at scrape time from PostgreSQL and Redis, for the whole deployment: the API's
 * /metrics collects them; a worker's own /metrics leaves them out (they would read 0 there).
 */
export const SCRAPE_TIME_SERIES = new Set([
  'orderflow_cluster_counter',
  'orderflow_queue_jobs',
  'orderflow_webhook_endpoints_disabled',
  'orderflow_orders_waiting',
  'orderflow_backorder_oldest_age_seconds',
  'orderflow_sku_waiting_lines',
  'orderflow_sku_backorder_oldest_age_seconds',
  'orderflow_outbox_backlog',
  'orderflow_outbox_oldest_age_seconds',
  'orderflow_deliveries',
]);

/** Counters that every process adds to one Redis hash (StatsSink): the whole deployment, not this process. */
const clusterCounters = new client.Gauge({
  name: 'orderflow_cluster_counter',
  help: 'Counters summed across every API and worker process (via Redis)',
  labelNames: ['counter'],
  registers: [registry],
});

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<T>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const gauge = (name: string, help: string, labelNames: string[] = []) =>
  new client.Gauge({ name, help, labelNames, registers: [registry] });
const alerts = {
  waitingOrders: gauge('orderflow_orders_waiting', 'Orders awaiting stock'),
  oldestBackorder: gauge('orderflow_backorder_oldest_age_seconds', 'Age of the oldest wait for stock, over all SKUs'),
  skuWaiting: gauge('orderflow_sku_waiting_lines', 'Waiting lines of the SKUs whose oldest wait is oldest (top 20)', [
    'sku',
  ]),
  skuOldest: gauge('orderflow_sku_backorder_oldest_age_seconds', 'Age of the oldest wait, per SKU (top 20)', ['sku']),
  outboxBacklog: gauge('orderflow_outbox_backlog', 'Outbox rows not yet published to Redis'),
  outboxOldest: gauge('orderflow_outbox_oldest_age_seconds', 'Age of the oldest unpublished outbox row'),
  deliveries: gauge('orderflow_deliveries', 'Customer notifications by state (pending, failed)', ['state']),
};

/** Readings from PostgreSQL an operator alerts on (see alertReadings); left out when it does not answer. */
async function collectAlertGauges(ctx: AppContext): Promise<void> {
  for (const g of Object.values(alerts)) g.reset();
  try {
    const r = await within(2000, alertReadings(ctx.db));
    alerts.waitingOrders.set(r.waitingOrders);
    alerts.oldestBackorder.set(r.oldestBackorderSeconds);
    for (const s of r.skus) {
      alerts.skuWaiting.set({ sku: s.sku }, s.waiting);
      alerts.skuOldest.set({ sku: s.sku }, s.oldestSeconds);
    }
    alerts.outboxBacklog.set(r.outboxBacklog);
    alerts.outboxOldest.set(r.outboxOldestSeconds);
    alerts.deliveries.set({ state: 'pending' }, r.deliveries.pending);
    alerts.deliveries.set({ state: 'failed' }, r.deliveries.failed);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'metrics: PostgreSQL readings skipped');
  }
}

/**
 * Readings taken at scrape time: queue depths by state from BullMQ and the deployment-wide counters.
 * When Redis does not answer, those series are left out (the rest of the scrape still works).
 */
export async function collectScrapeGauges(ctx: AppContext): Promise<void> {
  await collectAlertGauges(ctx);
  metrics.queueDepth.reset();
  metrics.endpointsDisabled.reset();
  try {
    const disabled = await within(2000, countDisabledEndpoints(ctx.db));
    for (const [reason, n] of Object.entries(disabled)) metrics.endpointsDisabled.set({ reason }, n);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'metrics: PostgreSQL readings skipped');
  }
  clusterCounters.reset();
  try {
    await within(
      2000,
      Promise.all([
        ...Object.values(ctx.queues).map(async (q) => {
          const counts = await q.getJobCounts(...STATES);
          for (const state of STATES) metrics.queueDepth.set({ queue: q.name, state }, counts[state] ?? 0);
        }),
        ctx.redis.hgetall(statsKey(ctx.config.QUEUE_PREFIX)).then((all) => {
          for (const [counter, value] of Object.entries(all)) clusterCounters.set({ counter }, Number(value));
        }),
      ]),
    );
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'metrics: Redis readings skipped');
  }
}
