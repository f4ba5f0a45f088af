import { Redis, type RedisOptions } from 'ioredis';
import { logger } from './logger';

export interface SentinelOptions {
  sentinels: { host: string; port: number }[];
  name: string;
}

/** The sentinels of a configuration (REDIS_SENTINELS, REDIS_SENTINEL_NAME), or undefined for a plain REDIS_URL. */
export function sentinelsOf(config: {
  REDIS_SENTINELS?: { host: string; port: number }[];
  REDIS_SENTINEL_NAME: string;
}): SentinelOptions | undefined {
  return config.REDIS_SENTINELS ? { sentinels: config.REDIS_SENTINELS, name: config.REDIS_SENTINEL_NAME } : undefined;
}

/**
 * Sentinel mode: ioredis asks the sentinels for the master of `name` on every (re)connect, so after
 * a failover the next reconnect reaches the promoted replica. Host and port of REDIS_URL are then
 * ignored (its password and database number still apply). A server that answers READONLY (a
 * demoted master seen before the sentinels reconfigured it) makes the client reconnect and ask again.
 */
function sentinelOptions(s: SentinelOptions): RedisOptions {
  return {
    sentinels: s.sentinels,
    name: s.name,
    sentinelRetryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    // Each reconnect asks the sentinels first, so it is cheap: retry at most every second, so that
    // the promoted replica is reached within about a second of its promotion (not up to 5 s later).
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 4), 1000),
    failoverDetector: true,
    reconnectOnError: (err) => (/^READONLY/.test(err.message) ? 2 : false),
  };
}

/**
 * Producers fail fast (no offline queue, one retry per request) so that intake never waits on a dead
 * Redis: the outbox relay publishes later. Workers use maxRetriesPerRequest: null, as BullMQ requires.
 */
export function createRedis(url: string, kind: 'producer' | 'worker', sentinel?: SentinelOptions): Redis {
  const opts: RedisOptions =
    kind === 'producer'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false }
      : { maxRetriesPerRequest: null, enableOfflineQueue: true, connectTimeout: 5000 };
  const retryStrategy = (times: number) => Math.min(200 * 2 ** Math.min(times, 5), 5000);
  const redis = sentinel
    ? new Redis(url, { ...opts, retryStrategy, ...sentinelOptions(sentinel) })
    : new Redis(url, { ...opts, retryStrategy });
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
