import type { NextFunction, Request, Response } from 'express';
import { logger } from '../../platform/logger';
import { metrics } from '../../platform/metrics';

/**
 * Observes each request once when it ends: the HTTP duration histogram (by route and status) and
 * one JSON log line per request: {requestId, method, route, path, status, ms}. `route` is the matched
 * pattern (e.g. /v1/orders/:id), so lines group by endpoint; `path` has no query string. 5xx are
 * logged as errors, requests the client dropped before the answer as warnings.
 *
 * One 'close' listener does it: Node emits 'close' on every response, after 'finish' when the
 * answer was sent and alone when the client went away first (`writableFinished` tells which).
 * The log line is only built when its level is on.
 */
export function requestLog(req: Request, res: Response, next: NextFunction): void {
  const started = process.hrtime.bigint();
  res.once('close', () => {
    const ms = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100;
    const base = (res.locals.mountPath as string | undefined) ?? req.baseUrl;
    // A router's own root is its mount path: /v1/orders, not /v1/orders/ (as the OpenAPI paths read).
    const route = req.route?.path ? `${base}${req.route.path}`.replace(/(.)\/$/, '$1') : base || 'unmatched';
    const status = res.statusCode;
    metrics.httpDuration.observe({ method: req.method, route, status: String(status) }, ms / 1000);
    const level = !res.writableFinished ? 'warn' : status >= 500 ? 'error' : 'info';
    if (!logger.isLevelEnabled(level)) return;
    const line = {
      requestId: req.requestId,
      method: req.method,
      route,
      path: req.originalUrl.split('?')[0],
      status,
      ms,
    };
    if (level === 'warn') logger.warn({ ...line, aborted: true }, 'request aborted');
    else logger[level](line, 'request');
  });
  next();
}

/**
 * Remembers where the router being entered is mounted. Express resets `req.baseUrl` when a request
 * leaves a router, so by the time an error answer closes the response (a 422 from POST /v1/orders)
 * it is '' and the route would read "/"; the last router entered is the one whose route matched.
 */
export function keepMountPath(req: Request, res: Response, next: NextFunction): void {
  res.locals.mountPath = req.baseUrl;
  next();
}
