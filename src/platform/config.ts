import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';

export const ROLES = ['intake', 'feed', 'operator', 'viewer'] as const;
export type Role = (typeof ROLES)[number];
export interface ApiKey {
  role: Role;
  key: string;
  name: string;
}

/** Decimal integers only ("0x10", "1e3" and "" are refused, not coerced). */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'must be a decimal integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
const optionalUrl = (protocols: string[]) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v) => (v === '' ? undefined : v))
    .refine((v) => v === undefined || protocols.some((p) => v.startsWith(`${p}://`)), {
      message: `must be a ${protocols.join(' or ')} URL`,
    });

const apiKeys = z
  .string()
  .optional()
  .transform((raw, ctx): ApiKey[] | undefined => {
    if (raw === undefined || raw.trim() === '') return undefined;
    const keys: ApiKey[] = [];
    for (const [i, pair] of raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .entries()) {
      // `role:key` or `name@role:key`; the name (1–64 of [A-Za-z0-9._-]) is who the key is, by default its role.
      const m = /^(?:([A-Za-z0-9._-]{1,64})@)?([a-z]+):(.+)$/.exec(pair);
      const name = m?.[1];
      const role = m?.[2] ?? '';
      const key = m?.[3] ?? '';
      // Any non-empty key is taken, as the contract says (`role:key`); a short one is warned
      // about at start-up (shortApiKeys), not refused: refusing would stop a process that the
      // operator configured exactly as documented.
      if (!m || !(ROLES as readonly string[]).includes(role) || key.trim() === '') {
        ctx.addIssue({
          code: 'custom',
          message: `entry ${i + 1} must be role:key or name@role:key with role ${ROLES.join('|')}, a name of 1–64 of A-Z a-z 0-9 . _ - and a non-empty key`,
        });
        return z.NEVER;
      }
      if (keys.some((k) => k.key === key)) {
        ctx.addIssue({ code: 'custom', message: `entry ${i + 1} repeats a key already given to another entry` });
        return z.NEVER;
      }
      keys.push({ role: role as Role, key, name: name ?? role });
    }
    return keys;
  });

/** A list of Redis nodes (cluster seeds, or sentinels) and the credentials and TLS that apply to each. */
export interface RedisNodeSettings {
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  /** rediss:// entries: TLS to every node (managed services). */
  tls: boolean;
}

/**
 * A node list: `host:port,host:port,…`, or `redis://` / `rediss://` URLs whose user, password and
 * TLS (those of the first entry) apply to every node. REDIS_CLUSTER_NODES (any subset of the
 * cluster: the rest is discovered) and REDIS_SENTINELS take this form.
 */
const nodeList = (defaultPort: number) =>
  z
    .string()
    .optional()
    .transform((raw, ctx): RedisNodeSettings | undefined => {
      if (raw === undefined || raw.trim() === '') return undefined;
      const out: RedisNodeSettings = { nodes: [], tls: false };
      for (const [i, entry] of raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .entries()) {
        let host = '';
        let port = NaN;
        if (/^rediss?:\/\//.test(entry)) {
          try {
            const u = new URL(entry);
            host = u.hostname.replace(/^\[(.*)\]$/, '$1');
            port = u.port ? Number(u.port) : defaultPort;
            if (i === 0) {
              out.tls = u.protocol === 'rediss:';
              if (u.username) out.username = decodeURIComponent(u.username);
              if (u.password) out.password = decodeURIComponent(u.password);
            }
          } catch {
            /* reported below */
          }
        } else {
          const m = /^([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(entry);
          host = (m?.[1] ?? '').replace(/^\[(.*)\]$/, '$1');
          port = Number(m?.[2]);
        }
        if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
          ctx.addIssue({
            code: 'custom',
            message: `entry ${i + 1} must be host:port or a redis:// or rediss:// URL with a port of 1–65535`,
          });
          return z.NEVER;
        }
        out.nodes.push({ host, port });
      }
      return out.nodes.length ? out : undefined;
    });

/** The hash tag of a key prefix as Redis Cluster reads it (text between the first `{` and the next `}`), if any. */
export function hashTagOf(prefix: string): string | undefined {
  const open = prefix.indexOf('{');
  if (open < 0) return undefined;
  const close = prefix.indexOf('}', open + 1);
  return close > open + 1 ? prefix.slice(open + 1, close) : undefined;
}

// One schema over process.env, parsed once. Every contract variable, plus a few tuning knobs.
const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// URL')
    .optional(),
  // Set: Redis Cluster mode, REDIS_URL is not used (see nodeList).
  REDIS_CLUSTER_NODES: nodeList(6379),
  // Redis behind Sentinel: the sentinels (a node list as REDIS_CLUSTER_NODES takes it; a URL's user
  // and password are the sentinels' own, rediss:// is TLS to them) and the master's name there. The
  // master is found through them (and again after a failover); REDIS_URL then only gives the
  // master's password, username, database number and TLS (rediss://).
  REDIS_SENTINELS: nodeList(26379),
  REDIS_SENTINEL_NAME: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1–64 of A-Z a-z 0-9 . _ -')
    .default('mymaster'),
  // A PEM file of the certificate authorities that sign the Redis servers' TLS certificates
  // (rediss:// to a master, sentinels or cluster nodes with a private CA). Unset: Node's own list.
  // Read once at start-up: a file that is missing or holds no certificate stops the start.
  REDIS_TLS_CA_FILE: z
    .string()
    .trim()
    .optional()
    .transform((file, ctx): string | undefined => {
      if (!file) return undefined;
      let pem = '';
      try {
        pem = readFileSync(file, 'utf8');
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `cannot read ${file} (${(err as NodeJS.ErrnoException).code})` });
        return z.NEVER;
      }
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
        ctx.addIssue({ code: 'custom', message: `${file} holds no PEM certificate` });
        return z.NEVER;
      }
      return pem;
    }),
  PORT: int(0, 65535).default(3000),
  // The interface the API listens on. Default: 0.0.0.0 under NODE_ENV=production (a container's port
  // must be reachable from outside it), 127.0.0.1 otherwise (development keys are published).
  HOST: z
    .string()
    .trim()
    .refine(
      (v) =>
        isIP(v) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(v),
      { message: 'must be an IP address (such as 127.0.0.1, 0.0.0.0 or ::) or a host name' },
    )
    .optional(),
  API_KEYS: apiKeys,
  WEBHOOK_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/=]{8,}$/, 'must be whsec_ followed by base64')
    .optional(),
  NOTIFY_WEBHOOK_URL: optionalUrl(['http', 'https']),
  SMTP_URL: optionalUrl(['smtp', 'smtps']),
  SMTP_FROM: z.string().default('orderflow <orders@orderflow.local>'),
  QUEUE_PREFIX: z.string().min(1).default('orderflow'),
  BACKORDER_TTL_SECONDS: int(1).default(604800),
  RECONCILE_AFTER_SECONDS: int(1).default(30),
  NOTIFY_MAX_ATTEMPTS: int(1, 100).default(12),
  NOTIFY_BACKOFF_MS: int(1).default(10000),
  NOTIFY_TIMEOUT_MS: int(1).default(5000),
  // Customers' own webhook_url pointing at loopback, private, link-local (cloud metadata) or other
  // non-public addresses: `deny` refuses them (NOTIFY_WEBHOOK_URL, the operator's, is always allowed).
  // Default: deny under NODE_ENV=production, allow otherwise (local receivers in development).
  WEBHOOK_PRIVATE_TARGETS: z.enum(['allow', 'deny']).optional(),
  RATE_LIMIT_RPS: int(0).default(0),
  // Events are kept at least this long (GET /v1/events starts at the oldest kept).
  EVENT_RETENTION_DAYS: int(1, 3650).default(30),
  // Webhook endpoints: one whose every delivery attempt has failed for this long is disabled (fractions allowed).
  ENDPOINT_DISABLE_AFTER_HOURS: z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'must be a positive number of hours')
    .transform(Number)
    .pipe(z.number().positive().max(10000))
    .default(72),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Tuning (not in the contract; documented in docs/operations.md).
  ORDER_ATTEMPTS: int(1, 50).default(8),
  ORDER_BACKOFF_MS: int(1).default(1000),
  // Active order jobs per worker process: enough to fill ORDER_BATCH_IN_FLIGHT batches of ORDER_BATCH_MAX.
  ORDER_CONCURRENCY: int(1, 1000).default(500),
  // Orders per reservation transaction, and transactions in flight per worker process (on disjoint SKUs).
  ORDER_BATCH_MAX: int(1, 1000).default(250),
  ORDER_BATCH_IN_FLIGHT: int(1, 16).default(2),
  // How long a worker's group commit that is not full waits for company (reservations, delivery claims and outcomes).
  WORKER_BATCH_LINGER_MS: int(0, 1000).default(20),
  // Intake group commit: orders per INSERT and INSERTs in flight per API process.
  INTAKE_BATCH_MAX: int(1, 1000).default(100),
  INTAKE_IN_FLIGHT: int(1, 64).default(1),
  NOTIFY_CONCURRENCY: int(1, 1000).default(200),
  RELAY_INTERVAL_MS: int(10).default(500),
  // How often the sequencer numbers committed events for the feed (sooner while there is a backlog).
  SEQUENCER_INTERVAL_MS: int(5).default(50),
  MAINTENANCE_INTERVAL_MS: int(100).default(10000),
  DB_POOL_MAX: int(1, 200).default(20),
  SHUTDOWN_TIMEOUT_MS: int(100).default(10000),
  EMBEDDED_DATA_DIR: z.string().optional(),
  HEARTBEAT_FILE: z.string().optional(),
  // A worker process (`main.ts worker`) serves its own /metrics on this port when set (on HOST).
  METRICS_PORT: int(0, 65535).optional(),
});

export type Config = Omit<
  z.infer<typeof schema>,
  | 'API_KEYS'
  | 'DATABASE_URL'
  | 'REDIS_URL'
  | 'REDIS_CLUSTER_NODES'
  | 'REDIS_TLS_CA_FILE'
  | 'WEBHOOK_PRIVATE_TARGETS'
  | 'HOST'
> & {
  HOST: string;
  API_KEYS: ApiKey[];
  WEBHOOK_PRIVATE_TARGETS: 'allow' | 'deny';
  DATABASE_URL: string;
  REDIS_URL: string;
  /** Redis Cluster mode (REDIS_CLUSTER_NODES set): the seed nodes and their credentials; REDIS_URL is then unused. */
  redisCluster: RedisNodeSettings | undefined;
  /** The PEM of REDIS_TLS_CA_FILE: the authorities trusted for every TLS connection to Redis. */
  redisTlsCa: string | undefined;
  /** true when API_KEYS was not set and development keys were generated. */
  devKeys: boolean;
  /** true when DATABASE_URL / REDIS_URL were not set (the embedded fallback may apply). */
  databaseUrlDefaulted: boolean;
  redisUrlDefaulted: boolean;
};

export class ConfigError extends Error {}

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/orderflow';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Fixed development keys (the README shows them); refused under NODE_ENV=production. */
export function devApiKeys(): ApiKey[] {
  return ROLES.map((role) => ({ role, key: `dev-${role}-key`, name: role }));
}

/** Below this length a configured key is warned about at start-up (it is still taken). */
export const SHORT_API_KEY = 16;

/** The configured keys shorter than SHORT_API_KEY, named as `name@role` (never the key itself). */
export function shortApiKeys(config: Pick<Config, 'API_KEYS' | 'devKeys'>): string[] {
  if (config.devKeys) return [];
  return config.API_KEYS.filter((k) => k.key.length < SHORT_API_KEY).map((k) => `${k.name}@${k.role}`);
}

/** Parses an environment; throws ConfigError whose message is one line naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // A variable set to blanks counts as unset (so `PORT=` takes the default instead of port 0).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v === undefined || v.trim() !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`invalid configuration: ${issue.path.join('.')}: ${issue.message}`);
  }
  const c = parsed.data;
  if (!c.API_KEYS && c.NODE_ENV === 'production') {
    throw new ConfigError('invalid configuration: API_KEYS: required when NODE_ENV=production');
  }
  // BullMQ's scripts and the app's own keys touch several keys at once: in a cluster they must share one slot.
  if (c.REDIS_CLUSTER_NODES && !hashTagOf(c.QUEUE_PREFIX)) {
    throw new ConfigError(
      `invalid configuration: QUEUE_PREFIX: must contain a Redis Cluster hash tag such as {${c.QUEUE_PREFIX.replace(/[{}]/g, '') || 'orderflow'}} when REDIS_CLUSTER_NODES is set (every key of orderflow then lives in one slot)`,
    );
  }
  if (c.REDIS_CLUSTER_NODES && c.REDIS_SENTINELS) {
    throw new ConfigError(
      'invalid configuration: REDIS_SENTINELS: set either REDIS_CLUSTER_NODES (Redis Cluster) or REDIS_SENTINELS (a primary behind Sentinel), not both',
    );
  }
  const { REDIS_CLUSTER_NODES: redisCluster, REDIS_TLS_CA_FILE: redisTlsCa, ...rest } = c;
  return Object.freeze({
    ...rest,
    redisCluster,
    redisTlsCa,
    API_KEYS: c.API_KEYS ?? devApiKeys(),
    WEBHOOK_PRIVATE_TARGETS: c.WEBHOOK_PRIVATE_TARGETS ?? (c.NODE_ENV === 'production' ? 'deny' : 'allow'),
    HOST: c.HOST ?? (c.NODE_ENV === 'production' ? '0.0.0.0' : '127.0.0.1'),
    devKeys: !c.API_KEYS,
    DATABASE_URL: c.DATABASE_URL ?? DEFAULT_DATABASE_URL,
    REDIS_URL: c.REDIS_URL ?? DEFAULT_REDIS_URL,
    databaseUrlDefaulted: !c.DATABASE_URL,
    // In cluster mode no local redis-server is started in place of the cluster.
    redisUrlDefaulted: !c.REDIS_URL && !redisCluster,
  });
}

/** For process entry points: parse or print one line and exit 1. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
