import type { Express } from 'express';
import client from 'prom-client';
import type { AppContext } from '../app/context';
import { registry } from '../platform/metrics';
import { baseApp } from './app';
import { createGuards } from './guards';
import { SCRAPE_TIME_SERIES } from './metrics-scrape';
import { errorHandler, notFoundHandler } from './middleware/errors';
import { requestId } from './middleware/request';

/**
 * What a worker process serves on METRICS_PORT: GET /metrics, this process's own series (job
 * durations, notification outcomes, optimistic conflicts, Node's process metrics), guarded like the
 * API's /metrics (an operator's or viewer's key, as Bearer or as a Basic password). The series read
 * at scrape time for the whole deployment (queue depths, cluster counters, alert readings) are the
 * API's: scraping them from every worker too would count them once per process.
 */
export function createWorkerMetricsApp(ctx: AppContext): Express {
  const app = baseApp();
  const g = createGuards(ctx.config.API_KEYS);
  app.use(requestId);
  // This process's series: the shared registry without the scrape-time ones (a metric may be in
  // several registries; all of them exist once the modules are loaded).
  const own = new client.Registry();
  for (const m of registry.getMetricsAsArray())
    if (!SCRAPE_TIME_SERIES.has(m.name)) own.registerMetric(m as unknown as client.Metric);
  app.get('/metrics', g.browser, async (_req, res) => {
    res.type(own.contentType).send(await own.metrics());
  });
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
