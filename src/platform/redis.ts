import { Redis, type RedisOptions } from 'ioredis';
import { logger } from './logger';

/**
 * Producers fail fast (no offline queue, one retry per request) so that intake never waits on a dead
 * Redis: the outbox relay publishes later. Workers use maxRetriesPerRequest: null, as BullMQ requires.
 */
export function createRedis(url: string, kind: 'producer' | 'worker'): Redis {
  const opts: RedisOptions =
    kind === 'producer'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false }
      : { maxRetriesPerRequest: null, enableOfflineQueue: true, connectTimeout: 5000 };
  const redis = new Redis(url, {
    ...opts,
    retryStrategy: (times) => Math.min(200 * 2 ** Math.min(times, 5), 5000),
  });
  let lastLogged = 0;
  redis.on('error', (err) => {
    // A down Redis emits an error per reconnect attempt; log at most every 10 s.
    if (Date.now() - lastLogged > 10000) {
      lastLogged = Date.now();
      logger.warn({ err: err.message, kind }, 'redis connection error');
    }
  });
  return redis;
}

/** Removes every key under `prefix:` (a test's or a benchmark's queues); a Redis that is not there has nothing to remove. */
export async function deleteKeysWithPrefix(redisUrl: string, prefix: string): Promise<void> {
  const r = new Redis(redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.unlink(...keys);
    } while (cursor !== '0');
  } catch {
    /* nothing to clean on a Redis that is not there */
  } finally {
    r.disconnect();
  }
}
