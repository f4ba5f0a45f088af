import type { NextFunction, Request, Response } from 'express';
import { logger } from '../../logger';
import { metrics } from '../../metrics';

/**
 * Observes each request once when it ends: the HTTP duration histogram (by route and status) and
 * one JSON log line per request: {requestId, method, route, path, status, ms}. `route` is the matched
 * pattern (e.g. /v1/orders/:id), so lines group by endpoint; `path` has no query string. 5xx are
 * logged as errors, requests the client dropped before the answer as warnings.
 */
export function requestLog(req: Request, res: Response, next: NextFunction): void {
  const started = process.hrtime.bigint();
  let logged = false;
  const log = () => {
    if (logged) return;
    logged = true;
    const line = {
      requestId: req.requestId, method: req.method,
      route: req.route?.path ? `${req.baseUrl}${req.route.path}` : req.baseUrl || 'unmatched',
      path: req.originalUrl.split('?')[0], status: res.statusCode,
      ms: Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100,
    };
    metrics.httpDuration.observe({ method: req.method, route: line.route, status: String(res.statusCode) }, line.ms / 1000);
    if (!res.writableFinished) logger.warn({ ...line, aborted: true }, 'request aborted');
    else if (res.statusCode >= 500) logger.error(line, 'request');
    else logger.info(line, 'request');
  };
  res.once('finish', log);
  res.once('close', log);
  next();
}
