import type { NextFunction, Request, Response } from 'express';
import {
  AppError,
  ConflictError,
  isDatabaseUnavailable,
  isRetryableTxError,
  UnavailableError,
} from '../../platform/errors';
import { logger } from '../../platform/logger';
import { sendError, STATUS_OF } from '../error-envelope';
import { OPERATIONS } from '../openapi';

/** Each documented path as a pattern (a `{param}` is one segment), with the methods it takes. */
const PATHS = [...new Set(OPERATIONS.map((op) => op.path))].map((p) => ({
  re: new RegExp(`^${p.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}/?$`),
  methods: [...new Set(OPERATIONS.filter((op) => op.path === p).map((op) => op.method.toUpperCase()))].sort(),
}));

const BODY_PARSER: Record<string, [number, string, string]> = {
  'entity.too.large': [413, 'payload_too_large', 'request body is larger than 1 MiB'],
  'entity.parse.failed': [400, 'invalid_json', 'request body is not valid JSON'],
  'encoding.unsupported': [415, 'unsupported_media_type', 'unsupported content encoding'],
  'charset.unsupported': [415, 'unsupported_media_type', 'unsupported charset'],
  'request.aborted': [400, 'invalid_json', 'request aborted'],
  'request.size.invalid': [400, 'invalid_json', 'request size did not match content length'],
  'stream.encoding.set': [500, 'internal', 'internal error'],
};

const HTTP_4XX: Record<number, [string, string]> = {
  400: ['validation_failed', 'the request is malformed (e.g. broken percent-encoding in the path)'],
  404: ['not_found', 'not found'],
  413: ['payload_too_large', 'request body is larger than 1 MiB'],
  415: ['unsupported_media_type', 'request body must be application/json'],
};

/** The one place that maps errors to HTTP. Unknown errors: 500 with the request id, stack only in the log. */
export function errorHandler(err: unknown, req: Request, res: Response, _next: NextFunction): void {
  const e = err as any;
  if (err instanceof AppError) {
    if (err instanceof UnavailableError) res.setHeader('Retry-After', String(err.retryAfterSeconds));
    if (err instanceof ConflictError && err.location) res.setHeader('Location', err.location);
    return sendError(res, STATUS_OF[err.code], err.code, err.message, err.details);
  }
  if (e && typeof e.type === 'string' && BODY_PARSER[e.type]) {
    const [status, code, message] = BODY_PARSER[e.type];
    const named = typeof e.encoding === 'string' && /^[\w.+-]{1,40}$/.test(e.encoding) ? ` "${e.encoding}"` : '';
    if (e.type === 'encoding.unsupported')
      return sendError(res, status, code, `${message}${named}: send gzip, deflate, br or none`);
    if (status < 500) return sendError(res, status, code, message);
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && HTTP_4XX[e.status]) {
    // Client errors raised by express itself, e.g. a path with broken percent-encoding (URIError, 400).
    const [code, message] = HTTP_4XX[e.status];
    return sendError(res, e.status, code, message);
  }
  if (isRetryableTxError(err)) {
    // Optimistic conflicts (or serialization failures) outlasted every bounded retry: busy, not broken.
    res.setHeader('Retry-After', '1');
    return sendError(
      res,
      503,
      'unavailable',
      'the stock row is too busy right now; nothing was changed, retry shortly',
    );
  }
  if (isDatabaseUnavailable(err)) {
    res.setHeader('Retry-After', '5');
    return sendError(res, 503, 'unavailable', 'PostgreSQL is unavailable; nothing was stored, retry later');
  }
  if (e?.code === '22P02' || e?.code === '22003' || e?.code === '22021' || e?.code === '22001') {
    // Malformed value that slipped past validation (bad uuid text, number out of range, NUL byte).
    return sendError(res, 400, 'validation_failed', 'a value is malformed or out of range');
  }
  logger.error({ err, requestId: req.requestId, route: req.originalUrl }, 'unhandled error');
  sendError(res, 500, 'internal', `internal error (request id ${req.requestId})`);
}

/**
 * No route. A documented path asked with a method it does not take is still 404 `not_found` (the
 * contract's codes have no 405), but says which methods it takes, in the message and in `Allow`.
 */
export function notFoundHandler(req: Request, res: Response): void {
  const takes = PATHS.filter((p) => p.re.test(req.path)).flatMap((p) => p.methods);
  if (takes.length === 0) return sendError(res, 404, 'not_found', `no route for ${req.method} ${req.path}`);
  const allow = [...new Set(takes.includes('GET') ? [...takes, 'HEAD'] : takes)].sort();
  res.setHeader('Allow', allow.join(', '));
  sendError(res, 404, 'not_found', `no route for ${req.method} ${req.path}: it takes ${allow.join(', ')}`);
}
