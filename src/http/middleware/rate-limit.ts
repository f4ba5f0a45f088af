import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../../platform/config';
import { AppError } from '../../platform/errors';
import { makeKeyLookup } from './auth';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Per-key limit on writes (RATE_LIMIT_RPS; 0 = off): a token bucket per API key holding at most
 * one second of requests, refilled continuously. Over it → 429 `rate_limited` with Retry-After.
 *
 * The buckets live in this process's memory: with N API processes a key may write up to N × RPS
 * per second in all. Buckets are keyed by a digest of the key (never the key itself) and only known
 * keys get one, so unknown keys cannot grow the table; a request with no key or an unknown key
 * passes on and the route's auth answers 401.
 */
export function rateLimit(config: Config, now: () => number = Date.now) {
  const rps = config.RATE_LIMIT_RPS;
  if (rps <= 0) return (_req: Request, _res: Response, next: NextFunction) => next();
  const lookup = makeKeyLookup(config.API_KEYS);
  const buckets = new Map<string, Bucket>();
  return (req: Request, res: Response, next: NextFunction) => {
    if (!WRITES.has(req.method)) return next();
    const [scheme, value] = (req.headers.authorization ?? '').split(/\s+/, 2);
    if (!/^bearer$/i.test(scheme ?? '') || !value) return next();
    const principal = lookup(value);
    if (!principal) return next();
    const t = now();
    const b = buckets.get(principal.id) ?? { tokens: rps, at: t };
    b.tokens = Math.min(rps, b.tokens + ((t - b.at) / 1000) * rps);
    b.at = t;
    buckets.set(principal.id, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return next();
    }
    const waitSeconds = Math.max(1, Math.ceil((1 - b.tokens) / rps));
    res.setHeader('Retry-After', String(waitSeconds));
    next(
      new AppError(
        'rate_limited',
        `more than ${rps} writes per second with this API key; retry after ${waitSeconds} s`,
      ),
    );
  };
}
