import { spawn, type ChildProcess } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import path from 'node:path';
import { Cluster } from 'ioredis';
import { deleteKeysWithPrefix as deletePrefix, type RedisClient, type RedisTarget } from '../../src/platform/redis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, inject } from 'vitest';
import { loadConfig, type Config } from '../../src/platform/config';
import { closeContext, createContext, type AppContext } from '../../src/app/context';
import { withDatabase } from '../../src/platform/db';
import { createApp } from '../../src/http/app';
import { listen } from '../../src/http/server';
import type { QueueName } from '../../src/jobs/queues';
import { startWorkers, type RunningWorkers } from '../../src/app/workers';

export const KEYS = {
  intake: 'test-intake-key',
  feed: 'test-feed-key',
  operator: 'test-operator-key',
  viewer: 'test-viewer-key',
} as const;
export const API_KEYS = `intake:${KEYS.intake},feed:${KEYS.feed},operator:${KEYS.operator},viewer:${KEYS.viewer}`;
export const ROOT = path.resolve(__dirname, '..', '..');

let counter = 0;
const unique = () => `${inject('runId')}_${process.pid}_${++counter}`;

/** True under `npm run test:cluster` (TEST_REDIS_CLUSTER=1): the harness talks to a 3-master Redis Cluster. */
export const onRedisCluster = () => inject('redisClusterNodes') !== '';

/**
 * A queue prefix of a test's own. On the cluster it is a hash tag (`{oft_…}`), as QUEUE_PREFIX must be
 * there: each test's keys then live in one slot, and different tests spread over the masters.
 */
export function testPrefix(tag = unique()): string {
  return onRedisCluster() ? `{oft_${tag}}` : `oft_${tag}`;
}

/** The Redis part of a test process's environment: REDIS_URL, and REDIS_CLUSTER_NODES on the cluster. */
export function testRedisEnv(): { REDIS_URL: string; REDIS_CLUSTER_NODES: string } {
  return { REDIS_URL: inject('redisUrl'), REDIS_CLUSTER_NODES: inject('redisClusterNodes') };
}

/** The test Redis (single or cluster) as deletePrefix / createRedis take it. */
export function testRedisTarget(): RedisTarget {
  return loadConfig({ ...testRedisEnv(), QUEUE_PREFIX: testPrefix('target') });
}

/**
 * An env that names its own REDIS_URL (a private redis-server, a dead port, a proxy) means that
 * single Redis, also on a cluster run: REDIS_CLUSTER_NODES is cleared unless it is named too.
 */
export function ownRedis(env: Record<string, string | undefined>): Record<string, string> {
  const out = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<string, string>;
  return 'REDIS_URL' in out && !('REDIS_CLUSTER_NODES' in out) ? { ...out, REDIS_CLUSTER_NODES: '' } : out;
}

/** A database of this test file's own, cloned from the migrated template. */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `of_${unique()}`;
  const admin = new pg.Client({ connectionString: inject('pgUrl') });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDb')}`);
  await admin.end();
  return {
    url: withDatabase(inject('pgUrl'), name),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: inject('pgUrl') });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await c.end();
    },
  };
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
  text: string;
}
/** A list endpoint's page (contract: `data` plus the opaque `next_cursor`, null on the last page). */
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}
export type Role = keyof typeof KEYS;

export interface Harness {
  config: Config;
  ctx: AppContext;
  baseUrl: string;
  env: Record<string, string>;
  api<T = any>(
    method: string,
    url: string,
    opts?: { body?: unknown; role?: Role | null; headers?: Record<string, string>; raw?: string },
  ): Promise<ApiResponse<T>>;
  startWorkers(only?: QueueName[]): Promise<RunningWorkers>;
  spawnWorker(extraEnv?: Record<string, string>, mode?: 'worker' | 'api' | 'all'): WorkerProcess;
  close(): Promise<void>;
}

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

export interface HarnessOptions {
  env?: Record<string, string>;
  workers?: boolean | QueueName[];
  http?: boolean;
}

/** The app on an ephemeral port, a context on its own queue prefix, and (optionally) in-process workers. */
export async function createHarness(databaseUrl: string, opts: HarnessOptions = {}): Promise<Harness> {
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
    DATABASE_URL: databaseUrl,
    ...testRedisEnv(),
    QUEUE_PREFIX: testPrefix(),
    API_KEYS,
    RECONCILE_AFTER_SECONDS: '2',
    MAINTENANCE_INTERVAL_MS: '1000',
    RELAY_INTERVAL_MS: '200',
    ORDER_BACKOFF_MS: '200',
    NOTIFY_BACKOFF_MS: '100',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...ownRedis(opts.env ?? {}),
  };
  const config = loadConfig(env);
  const ctx = createContext(config);
  const running: RunningWorkers[] = [];
  const procs: WorkerProcess[] = [];
  let server: Server | undefined;
  let baseUrl = '';
  if (opts.http !== false) {
    const app = createApp(ctx);
    server = await listen(app, 0, '127.0.0.1');
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  const h: Harness = {
    config,
    ctx,
    baseUrl,
    env,
    async api(method, url, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      const role = o.role === undefined ? 'operator' : o.role;
      if (role) headers.authorization = `Bearer ${KEYS[role]}`;
      let body: string | undefined = o.raw;
      if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(`${baseUrl}${url}`, { method, headers, body });
      const text = await res.text();
      let parsed: any = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed, headers: res.headers, text };
    },
    async startWorkers(only) {
      const w = await startWorkers(ctx, only);
      running.push(w);
      return w;
    },
    spawnWorker(extraEnv = {}, mode = 'worker') {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/app/main.ts', mode], {
        cwd: ROOT,
        env: { ...process.env, ...env, ...ownRedis(extraEnv) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
      });
      child.stderr!.on('data', (d) => {
        out += d;
      });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const p: WorkerProcess = {
        child,
        output: () => out,
        exited,
        kill: (s = 'SIGKILL') => {
          if (child.exitCode === null) child.kill(s);
        },
      };
      procs.push(p);
      return p;
    },
    async close() {
      for (const p of procs) p.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.exited));
      for (const w of running) await w.close();
      if (server) {
        server.closeAllConnections();
        await new Promise((r) => server!.close(r));
      }
      await closeContext(ctx);
      await deletePrefix(config, config.QUEUE_PREFIX);
    },
  };
  return h;
}

export { deletePrefix };

/**
 * Test-file wiring: one database per file (cloned from the template), one harness (own Redis
 * prefix) per test. `h()` returns the current test's harness.
 */
export function useHarness(opts: HarnessOptions = {}): () => Harness {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let current: Harness | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  beforeEach(async () => {
    current = await createHarness(db.url, opts);
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  afterAll(async () => {
    await db?.drop();
  });
  return () => {
    if (!current) throw new Error('no harness outside a test');
    return current;
  };
}

export async function waitFor<T>(
  fn: () => Promise<T | undefined | false | null>,
  opts: { timeout?: number; interval?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeout ?? 30000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, opts.interval ?? 100));
  }
}

/** Every key under `prefix:`, on a single Redis or on every master of a cluster (SCAN is per node). */
export async function keysUnder(redis: RedisClient, prefix: string): Promise<string[]> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const out: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
  }
  return out;
}

/** Bearer header for a test role. */
export const bearer = (role: keyof typeof KEYS) => ({ authorization: `Bearer ${KEYS[role]}` });

/** fetch without the harness's conveniences: exact headers and body bytes. */
export async function rawRequest(
  h: Harness,
  method: string,
  url: string,
  opts: { headers?: Record<string, string>; body?: string | Uint8Array } = {},
) {
  const res = await fetch(`${h.baseUrl}${url}`, { method, headers: opts.headers, body: opts.body as any });
  const text = await res.text();
  let body: any;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}
