import type { NextFunction, Request, Response } from 'express';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, RLWrapperTimeouts } from 'rate-limiter-flexible';
import type { Config } from '../../platform/config';
import { AppError } from '../../platform/errors';
import { logger } from '../../platform/logger';
import { redisKey, type RedisClient } from '../../platform/redis';
import { makeKeyLookup } from './auth';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** How long one Redis round trip of the limiter may take before the in-memory insurance decides. */
export const RATE_LIMIT_REDIS_TIMEOUT_MS = 250;

/**
 * The Redis key prefix of the write limiter's counters: `${QUEUE_PREFIX}:ratelimit`, so each
 * counter is `${QUEUE_PREFIX}:ratelimit:<key id>`. Named through redisKey, so with QUEUE_PREFIX a
 * hash tag such as `{orderflow}` every counter lives in the same Redis Cluster slot as the queues.
 */
export function rateLimitKeyPrefix(queuePrefix: string): string {
  return redisKey({ QUEUE_PREFIX: queuePrefix }, 'ratelimit');
}

const CONNECTING = new Set(['wait', 'connecting', 'connect']);

/**
 * Resolves once a Redis that is in the middle of connecting is ready, closed, or has taken longer
 * than RATE_LIMIT_REDIS_TIMEOUT_MS (a process just started: its first writes count in Redis too).
 * At once when it is ready, or down and waiting to reconnect (then the insurance decides).
 */
function connecting(redis: RedisClient): Promise<void> {
  if (!CONNECTING.has(redis.status)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      redis.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, RATE_LIMIT_REDIS_TIMEOUT_MS);
    redis.once('ready', done);
    redis.once('close', done);
  });
}

/**
 * Per-key limit on writes (RATE_LIMIT_RPS; 0 = off), shared by every API process: a fixed
 * one-second window per API key, counted in Redis by rate-limiter-flexible (one atomic Lua
 * INCR+PEXPIRE per write). Over it → 429 `rate_limited` with Retry-After (whole seconds until the
 * window ends).
 *
 * Redis unreachable, not ready or slower than RATE_LIMIT_REDIS_TIMEOUT_MS: the write is counted in
 * this process's memory instead (the insurance limiter, same figure), so the API keeps answering and
 * each process still holds a key to RATE_LIMIT_RPS — N processes then allow up to N × in all until
 * Redis answers again. Counters are keyed by a digest of the key (never the key itself); only known
 * keys are counted; a request with no key or an unknown key passes on and the route's auth answers 401.
 */
export function rateLimit(config: Config, redis: RedisClient) {
  const rps = config.RATE_LIMIT_RPS;
  if (rps <= 0) return (_req: Request, _res: Response, next: NextFunction) => next();
  const lookup = makeKeyLookup(config.API_KEYS);
  const keyPrefix = rateLimitKeyPrefix(config.QUEUE_PREFIX);
  let lastWarned = 0;
  const insurance = new (class extends RateLimiterMemory {
    override consume(key: string | number, points?: number, options?: { [key: string]: any }) {
      if (Date.now() - lastWarned > 10_000) {
        lastWarned = Date.now();
        logger.warn('rate limiter: Redis did not answer; counting writes in this process until it does');
      }
      return super.consume(key, points, options);
    }
  })({ points: rps, duration: 1, keyPrefix });
  const shared = new RateLimiterRedis({
    storeClient: redis,
    points: rps,
    duration: 1,
    keyPrefix,
    // Not connected → straight to the insurance (no wait for a reconnect).
    rejectIfRedisNotReady: true,
    insuranceLimiter: insurance,
  });
  // A Redis that is connected but stalled: give up on it after the timeout (insurance decides).
  const limiter = new RLWrapperTimeouts({ limiter: shared, timeoutMs: RATE_LIMIT_REDIS_TIMEOUT_MS });
  return (req: Request, res: Response, next: NextFunction) => {
    if (!WRITES.has(req.method)) return next();
    const [scheme, value] = (req.headers.authorization ?? '').split(/\s+/, 2);
    if (!/^bearer$/i.test(scheme ?? '') || !value) return next();
    const principal = lookup(value);
    if (!principal) return next();
    connecting(redis)
      .then(() => limiter.consume(principal.id))
      .then(
        () => next(),
        (rejected: unknown) => {
          // Not a verdict (both stores failed): let the write through rather than fail it.
          if (!(rejected instanceof RateLimiterRes)) return next();
          const waitSeconds = Math.max(1, Math.ceil(rejected.msBeforeNext / 1000));
          res.setHeader('Retry-After', String(waitSeconds));
          next(
            new AppError(
              'rate_limited',
              `more than ${rps} writes per second with this API key; retry after ${waitSeconds} s`,
            ),
          );
        },
      );
  };
}
