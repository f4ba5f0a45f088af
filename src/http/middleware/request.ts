import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
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

const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/**
 * PostgreSQL text cannot hold U+0000, and a string that is not well-formed Unicode (a lone
 * surrogate, which JSON.parse makes of "\ud800") would be stored as U+FFFD: either is a bad
 * field, named like any other (a key that is not well-formed names its parent).
 */
function badStrings(v: unknown, path: string[], out: Detail[], depth = 0): Detail[] {
  if (out.length >= 50 || depth > 64) return out;
  const at = (p: string[]) => ['body', ...p].join('.');
  if (typeof v === 'string') {
    if (v.includes('\u0000')) out.push({ path: at(path), message: 'must not contain a NUL character' });
    else if (!wellFormed(v)) out.push({ path: at(path), message: 'must be well-formed Unicode (no lone surrogate)' });
  } else if (Array.isArray(v)) v.forEach((x, i) => badStrings(x, [...path, String(i)], out, depth + 1));
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) {
      if (!wellFormed(k) || k.includes('\u0000'))
        out.push({ path: at(path), message: 'has a key that is not well-formed Unicode or holds a NUL' });
      else if (k === '__proto__') out.push({ path: at([...path, k]), message: 'the key "__proto__" is not accepted' });
      else badStrings(x, [...path, k], out, depth + 1);
    }
  return out;
}
type Detail = { path: string; message: string };

/**
 * JSON text can only carry U+0000 as the escape `\u0000` (a raw control character is a parse
 * error), and a lone surrogate only as an escape `\uD800`–`\uDFFF` (raw UTF-8 cannot encode one);
 * a key `__proto__` is either written out or holds an escape. So a body whose bytes hold neither
 * `\u` nor `__proto__` needs no walk (almost every body: JSON.stringify escapes neither). Bytes
 * that are not UTF-8 are refused outright: the decoder would turn them into U+FFFD.
 *
 * `__proto__` is refused as a key anywhere: zod's records drop it from what they return (it would
 * set the prototype of a plain object), so a `metadata` key of that name would be lost after a
 * 2xx; a 400 naming it keeps "stored and returned as given" true for every key that is accepted.
 */
const MAY_HOLD_BAD = Symbol('mayHoldBad');
const NOT_UTF8 = Symbol('notUtf8');
const jsonParser = express.json({
  limit: '1mb',
  strict: false,
  type: () => true,
  // Bytes in another charset (UTF-16/32) are not searched: such a body is always walked.
  verify: (req, _res, buf, encoding) => {
    const utf8 = encoding === 'utf-8';
    (req as any)[NOT_UTF8] = utf8 && !isUtf8(buf);
    // Byte searches, with no string made of the body, decide.
    (req as any)[MAY_HOLD_BAD] = !utf8 || buf.includes('\\u') || buf.includes('__proto__');
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
    if ((req as any)[NOT_UTF8])
      return next(
        new ValidationError('invalid body: the body is not well-formed UTF-8', [
          { path: 'body', message: 'must be well-formed UTF-8' },
        ]),
      );
    const bad = (req as any)[MAY_HOLD_BAD] ? badStrings(req.body, [], []) : [];
    if (bad.length) return next(new ValidationError(`invalid body: ${bad[0].path}: ${bad[0].message}`, bad));
    next();
  });
}

/**
 * The query of a request, checked before its route runs: every value must be well-formed UTF-8
 * once percent-decoded (the query parser would make U+FFFD of `%ED%A0%80`, a lone surrogate) and
 * without NUL, and a route that takes no query (`allowed` empty) refuses any parameter. A route
 * that takes a query parses it strictly with its schema (platform/validation parseInput), which
 * names unknown parameters itself.
 */
export function checkQuery(req: Request, takesQuery: boolean): void {
  const q = req.originalUrl.indexOf('?');
  if (q < 0) return;
  const details: Detail[] = [];
  for (const pair of req.originalUrl.slice(q + 1).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const decode = (s: string) => {
      try {
        const v = decodeURIComponent(s.replace(/\+/g, ' '));
        return v.includes('\u0000') ? undefined : v;
      } catch {
        return undefined;
      }
    };
    const name = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1));
    if (name === undefined || value === undefined) {
      details.push({
        path: name === undefined ? 'query' : `query.${name}`,
        message: 'must be well-formed percent-encoded UTF-8 without NUL',
      });
    } else if (!takesQuery) details.push({ path: `query.${name}`, message: 'unknown parameter' });
    if (details.length >= 50) break;
  }
  if (details.length) throw new ValidationError(`invalid query: ${details[0].path}: ${details[0].message}`, details);
}

/** For the public routes that take no query and have no guard (health, the OpenAPI document): 400 on any parameter. */
export const noQuery: RequestHandler = (req, _res, next) => {
  try {
    checkQuery(req, false);
  } catch (e) {
    return next(e);
  }
  next();
};
