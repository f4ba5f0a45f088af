import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config, RedisNodeSettings } from './config';
import { logger } from './logger';

/** A single Redis or a Redis Cluster: BullMQ and every key of orderflow work on both. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: REDIS_URL, or the cluster of REDIS_CLUSTER_NODES when that is set. */
export type RedisTarget = Pick<Config, 'REDIS_URL' | 'redisCluster'> &
  Partial<Pick<Config, 'REDIS_SENTINELS' | 'REDIS_SENTINEL_NAME' | 'redisTlsCa'>>;

/** TLS options for a connection that uses TLS: the configured authorities, or Node's own list. */
const tlsWith = (t: RedisTarget) => (t.redisTlsCa ? { ca: t.redisTlsCa } : {});

const asTarget = (t: string | RedisTarget): RedisTarget =>
  typeof t === 'string' ? { REDIS_URL: t, redisCluster: undefined } : t;

const retry = (times: number) => Math.min(200 * 2 ** Math.min(times, 5), 5000);

/**
 * The name of one of orderflow's own Redis keys (stats hash, delivery leases, rate limits, …):
 * `QUEUE_PREFIX:name`. On Redis Cluster QUEUE_PREFIX carries a hash tag (`{orderflow}`), so every
 * such key lands in the slot of BullMQ's queues and scripts or MULTI over several of them work.
 */
export function redisKey(config: Pick<Config, 'QUEUE_PREFIX'>, name: string): string {
  return `${config.QUEUE_PREFIX}:${name}`;
}

export interface SentinelOptions {
  sentinels: { host: string; port: number }[];
  name: string;
  /** The sentinels' own credentials (their `requirepass` / ACL user), not the master's. */
  username?: string;
  password?: string;
  /** TLS to the sentinels. */
  tls?: boolean;
}

/** The sentinels of a configuration (REDIS_SENTINELS, REDIS_SENTINEL_NAME), or undefined for a plain REDIS_URL. */
export function sentinelsOf(config: {
  REDIS_SENTINELS?: RedisNodeSettings;
  REDIS_SENTINEL_NAME: string;
}): SentinelOptions | undefined {
  const s = config.REDIS_SENTINELS;
  if (!s) return undefined;
  return {
    sentinels: s.nodes,
    name: config.REDIS_SENTINEL_NAME,
    ...(s.username ? { username: s.username } : {}),
    ...(s.password ? { password: s.password } : {}),
    tls: s.tls,
  };
}

/**
 * Sentinel mode: ioredis asks the sentinels for the master of `name` on every (re)connect, so after
 * a failover the next reconnect reaches the promoted replica. Host and port of REDIS_URL are then
 * ignored (its password, username, database number and rediss:// still apply, to the master). A
 * server that answers READONLY (a demoted master seen before the sentinels reconfigured it) makes
 * the client reconnect and ask again.
 */
function sentinelOptions(s: SentinelOptions, masterTls: boolean, tls: { ca?: string }): RedisOptions {
  return {
    sentinels: s.sentinels,
    name: s.name,
    sentinelUsername: s.username,
    sentinelPassword: s.password,
    sentinelTLS: s.tls ? tls : undefined,
    // Without this ioredis speaks plain TCP to the master it was given, even for rediss://.
    enableTLSForSentinelMode: masterTls,
    ...(masterTls ? { tls } : {}),
    sentinelRetryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    // Each reconnect asks the sentinels first, so it is cheap: retry at most every second, so that
    // the promoted replica is reached within about a second of its promotion (not up to 5 s later).
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 4), 1000),
    // No failoverDetector (ioredis's +switch-master subscription; off by default there): it can
    // disconnect the connector while a reconnect is resolving the master, and ioredis then ends the
    // client for good ("Connection is closed." forever). Seen with TLS to the sentinels, where each
    // resolve takes a new handshake: 3 of 8 runs of redis-sentinel-secure.test.ts left the worker's
    // clients ended. A failover is still seen: the dead master's connections close, and a demoted
    // one answers READONLY (below) or is disconnected by Redis itself when it is reconfigured.
    reconnectOnError: (err) => (/^READONLY/.test(err.message) ? 2 : false),
  };
}

/**
 * Producers fail fast (no offline queue, one retry per request) so that intake never waits on a dead
 * Redis: the outbox relay publishes later. Workers use maxRetriesPerRequest: null, as BullMQ requires.
 * With REDIS_CLUSTER_NODES an ioredis Cluster is returned, with the same per-node options
 * (BullMQ reads `redisOptions.maxRetriesPerRequest` of a cluster).
 */
export function createRedis(target: string | RedisTarget, kind: 'producer' | 'worker'): RedisClient {
  const t = asTarget(target);
  const { REDIS_URL: url, redisCluster } = t;
  const sentinel = t.REDIS_SENTINELS
    ? sentinelsOf({ REDIS_SENTINELS: t.REDIS_SENTINELS, REDIS_SENTINEL_NAME: t.REDIS_SENTINEL_NAME ?? 'mymaster' })
    : undefined;
  const opts: RedisOptions =
    kind === 'producer'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false }
      : { maxRetriesPerRequest: null, enableOfflineQueue: true, connectTimeout: 5000 };
  let redis: RedisClient;
  if (redisCluster) {
    const clusterOpts: ClusterOptions = {
      enableReadyCheck: true,
      enableOfflineQueue: opts.enableOfflineQueue,
      clusterRetryStrategy: retry,
      slotsRefreshTimeout: 2000,
      // Managed clusters (TLS certificates name the host, not its address) need the host name kept.
      dnsLookup: (address, callback) => callback(null, address),
      // Per node (the cluster itself owns reconnects and the offline queue).
      redisOptions: {
        maxRetriesPerRequest: opts.maxRetriesPerRequest,
        connectTimeout: opts.connectTimeout,
        username: redisCluster.username,
        password: redisCluster.password,
        tls: redisCluster.tls ? tlsWith(t) : undefined,
      },
    };
    redis = new Cluster(redisCluster.nodes, clusterOpts);
  } else if (sentinel) {
    const masterTls = /^rediss:/i.test(url);
    redis = new Redis(url, { ...opts, retryStrategy: retry, ...sentinelOptions(sentinel, masterTls, tlsWith(t)) });
  } else {
    redis = new Redis(url, { ...opts, retryStrategy: retry, ...(/^rediss:/i.test(url) ? { tls: tlsWith(t) } : {}) });
  }
  let lastLogged = 0;
  redis.on('error', (err: Error) => {
    // A down Redis emits an error per reconnect attempt; log at most every 10 s.
    if (Date.now() - lastLogged > 10000) {
      lastLogged = Date.now();
      logger.warn({ err: err.message, kind, cluster: Boolean(redisCluster) }, 'redis connection error');
    }
  });
  return redis;
}

/**
 * Removes every key under `prefix:` (a test's or a benchmark's queues); a Redis that is not there has nothing to remove.
 * On a cluster every master is scanned and each key is unlinked on its own.
 */
export async function deleteKeysWithPrefix(target: string | RedisTarget, prefix: string): Promise<void> {
  const t = asTarget(target);
  const { REDIS_URL: url, redisCluster } = t;
  const r: RedisClient = redisCluster
    ? new Cluster(redisCluster.nodes, {
        clusterRetryStrategy: () => null,
        redisOptions: {
          maxRetriesPerRequest: 1,
          username: redisCluster.username,
          password: redisCluster.password,
          tls: redisCluster.tls ? tlsWith(t) : undefined,
        },
      })
    : new Redis(url, {
        maxRetriesPerRequest: 1,
        retryStrategy: () => null,
        ...(/^rediss:/i.test(url) ? { tls: tlsWith(t) } : {}),
      });
  r.on('error', () => undefined);
  try {
    const nodes = r instanceof Cluster ? await clusterMasters(r) : [r];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        // A cluster pipeline must stay in one slot, and a prefix without a hash tag spans several.
        if (keys.length && r instanceof Cluster) await Promise.all(keys.map((k) => r.unlink(k)));
        else if (keys.length) await r.unlink(...keys);
      } while (cursor !== '0');
    }
  } catch {
    /* nothing to clean on a Redis that is not there */
  } finally {
    r.disconnect();
  }
}

/** The master nodes of a cluster, once it has its slot table. */
async function clusterMasters(c: Cluster): Promise<Redis[]> {
  if (c.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      c.once('ready', resolve);
      c.once('end', () => reject(new Error('cluster connection ended')));
      setTimeout(() => reject(new Error('cluster not ready')), 5000).unref();
    });
  }
  return c.nodes('master');
}
