import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { AppError, ValidationError } from '../../platform/errors';

const SAFE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Every response carries X-Request-Id (the caller's, when it is safe to echo, else a new one). */
export function requestId(req: Request, res: Response, next: NextFunction): void {
  const incoming = req.headers['x-request-id'];
  req.requestId = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', req.requestId);
  next();
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const hasBody = (req: Request) =>
  req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/** PostgreSQL text cannot hold U+0000: a string carrying one is a bad field, named like any other. */
function nulPaths(v: unknown, path: string[], out: string[], depth = 0): string[] {
  if (out.length >= 50 || depth > 64) return out;
  if (typeof v === 'string') {
    if (v.includes('\u0000')) out.push(['body', ...path].join('.'));
  } else if (Array.isArray(v)) v.forEach((x, i) => nulPaths(x, [...path, String(i)], out, depth + 1));
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) nulPaths(x, [...path, k], out, depth + 1);
  return out;
}

/**
 * JSON text can only carry U+0000 as the escape `\u0000` (a raw control character is a parse
 * error), so a body whose bytes lack that escape needs no walk. The check is conservative: an
 * escaped backslash before `u0000` also triggers the (exact) walk.
 */
const NUL_ESCAPE = Buffer.from('\\u0000');
const MAY_HOLD_NUL = Symbol('mayHoldNul');
const jsonParser = express.json({
  limit: '1mb',
  strict: false,
  type: () => true,
  // Bytes in another charset (UTF-16/32) are not searched: such a body is always walked.
  verify: (req, _res, buf, encoding) => {
    (req as any)[MAY_HOLD_NUL] = encoding !== 'utf-8' || buf.includes(NUL_ESCAPE);
  },
});

/** The header is the client's: named back only when it is a plain token. */
const token = (v: unknown) => (typeof v === 'string' && /^[\w.+-]{1,40}$/.test(v) ? v : undefined);

const undecodable = (encoding: unknown) =>
  `request body could not be decoded as its Content-Encoding${token(encoding) ? ` (${encoding})` : ''} says`;

/**
 * A chunked body's length is known only by reading it: true when it ends without a byte, false at
 * the first byte (the rest then drains unread, as Node does with any body a route left alone).
 */
function isEmptyStream(req: Request): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const settle = (fn: () => void) => {
      req.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onGone);
      fn();
    };
    const onData = (chunk: Buffer) => {
      if (chunk.length > 0) settle(() => resolve(false));
    };
    const onEnd = () => settle(() => resolve(true));
    const onGone = () => settle(() => reject(new AppError('invalid_json', 'request aborted')));
    req.on('data', onData).on('end', onEnd).on('error', onGone).on('close', onGone);
  });
}

/**
 * JSON only: a body of another type is 415; an empty body becomes {} (cancel, fulfil, retry need
 * none), whether it is sent as Content-Length: 0 or as a chunked body with no bytes in it.
 */
export function jsonBody(req: Request, res: Response, next: NextFunction): void {
  if (!BODY_METHODS.has(req.method) || !hasBody(req)) {
    req.body = {};
    return next();
  }
  const type = req.headers['content-type'];
  if (!type || !/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
    const unsupported = new AppError('unsupported_media_type', 'request body must be application/json');
    if (req.headers['content-length'] !== undefined) return next(unsupported);
    isEmptyStream(req).then((empty) => {
      if (!empty) return next(unsupported);
      req.body = {};
      next();
    }, next);
    return;
  }
  jsonParser(req, res, (err?: any) => {
    // body-parser types every error of its own; an untyped one came from the decompression stream.
    if (err && err.type === undefined)
      return next(new AppError('invalid_json', undecodable(req.headers['content-encoding'])));
    if (err) return next(err);
    if (req.body === undefined) req.body = {};
    const bad = (req as any)[MAY_HOLD_NUL] ? nulPaths(req.body, [], []) : [];
    if (bad.length)
      return next(
        new ValidationError(
          `invalid body: ${bad[0]}: must not contain a NUL character`,
          bad.map((p) => ({ path: p, message: 'must not contain a NUL character' })),
        ),
      );
    next();
  });
}
