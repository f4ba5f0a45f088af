import { randomBytes } from 'node:crypto';
import { deleteKeysWithPrefix as deletePrefix } from '../../src/platform/redis';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, loadConfig, type Config } from '../../src/platform/config';
import { closeContext, createContext, type AppContext } from '../../src/app/context';
import { createDb, databaseName, ensureDatabase, migrateLatest, withDatabase, type Db } from '../../src/platform/db';
import { setStatsSink } from '../../src/platform/metrics';
import { placeOrder } from '../../src/orders';

export const BENCH_KEYS = {
  intake: 'bench-intake-key',
  feed: 'bench-feed-key',
  operator: 'bench-operator-key',
} as const;
const API_KEYS = Object.entries(BENCH_KEYS)
  .map(([role, key]) => `${role}:${key}`)
  .join(',');

/**
 * The bench's own databases and Redis prefixes; everything is removed by `cleanup`. A template
 * database is created from scratch (ensureDatabase + migrateLatest, as `npm start` does) and each
 * phase gets a fresh clone of it, so that no phase runs on the tables (and the autovacuum) that an
 * earlier phase left behind.
 */
export interface BenchEnv {
  runId: string;
  redisUrl: string;
  /** A fresh migrated database for one phase (a clone of `template` when given, a database name). */
  database(phase: string, template?: string): Promise<string>;
  /** Drops one of those databases at once (its dirty pages and pending autovacuum go with it). */
  dropDatabase(url: string): Promise<void>;
  /** Environment for a process (or a config) of this bench on queue prefix `prefix`. */
  env(prefix: string, extra?: Record<string, string>): Record<string, string>;
  config(prefix: string, extra?: Record<string, string>): Config;
  prefix(phase: string): string;
  /** Deletes the Redis keys of every prefix handed out so far (between phases). */
  dropPrefixes(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function createBenchEnv(): Promise<BenchEnv> {
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const base = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  const templateUrl = withDatabase(base, `ofbench_${runId}`);
  const redisUrl = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
  await ensureDatabase(templateUrl);
  const db = createDb(templateUrl, 2);
  try {
    await migrateLatest(db);
  } finally {
    await db.destroy();
  }
  const prefixes: string[] = [];
  const databases: string[] = [];
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: withDatabase(base, 'postgres') });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const env = (prefix: string, extra: Record<string, string> = {}): Record<string, string> => ({
    ...(process.env as Record<string, string>),
    NODE_ENV: 'production',
    DATABASE_URL: templateUrl,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    API_KEYS,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    ...extra,
  });
  const dropPrefixes = async () => {
    for (const p of prefixes.splice(0)) await deletePrefix(redisUrl, p).catch(() => undefined);
  };
  return {
    runId,
    redisUrl,
    env,
    dropPrefixes,
    config: (prefix, extra) => loadConfig(env(prefix, extra)),
    async database(phase, template) {
      const name = `ofbench_${runId}_${phase}`;
      await admin(async (c) => {
        // A clone of a large database (the growth phase's 9 GiB): PostgreSQL 15's default strategy
        // (WAL_LOG) writes every page through shared buffers and the WAL, and the checkpoints that
        // starts go on writing for minutes into the run measured on the clone. FILE_COPY copies the
        // files and syncs them before it returns. The CHECKPOINT leaves nothing dirty behind, so
        // each phase starts as clean as the one it is compared with (an empty clone after a grown one too).
        const v = Number((await c.query('SHOW server_version_num')).rows[0].server_version_num);
        const strategy = template && v >= 150000 ? ' STRATEGY FILE_COPY' : '';
        await c.query(`CREATE DATABASE "${name}" TEMPLATE "${template ?? databaseName(templateUrl)}"${strategy}`);
        await c.query('CHECKPOINT');
      });
      databases.push(name);
      return withDatabase(base, name);
    },
    async dropDatabase(url) {
      const name = databaseName(url);
      await admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
      databases.splice(databases.indexOf(name), 1);
    },
    prefix(phase) {
      const p = `ofb_${runId}_${phase}`;
      prefixes.push(p);
      return p;
    },
    async cleanup() {
      await dropPrefixes();
      await admin(async (c) => {
        for (const name of [...databases, databaseName(templateUrl)]) {
          await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
        }
      });
    },
  };
}

export { deletePrefix };

/** A context on its own prefix and the given database; closing it also unsets its stats sink. */
export async function withContext<T>(
  bench: BenchEnv,
  phase: string,
  databaseUrl: string,
  fn: (ctx: AppContext) => Promise<T>,
  extra: Record<string, string> = {},
): Promise<T> {
  const ctx = createContext(bench.config(bench.prefix(phase), { DATABASE_URL: databaseUrl, ...extra }));
  try {
    return await fn(ctx);
  } finally {
    await closeContext(ctx);
    setStatsSink(undefined);
  }
}

/** Customers straight into the table (the bench seeds; the load generator uses the API). */
export async function seedCustomers(db: Db, n: number): Promise<string[]> {
  const rows = Array.from({ length: n }, (_, i) => ({
    id: uuidv7(),
    email: `bench-${uuidv7()}-${i}@example.test`,
    name: `Bench ${i}`,
  }));
  for (let i = 0; i < rows.length; i += 1000) await db('customers').insert(rows.slice(i, i + 1000));
  return rows.map((r) => r.id);
}

/** Products with their stock row and `initial` ledger movement, as createProduct writes them, in bulk. */
/**
 * `n` products with `stock` units each, spread evenly over `locations` (the first gets the
 * remainder): the SKU's totals row, one level per location and an `initial` movement per level.
 */
export async function seedProducts(
  db: Db,
  prefix: string,
  n: number,
  stock: number,
  locations: string[] = ['main'],
): Promise<string[]> {
  const skus = Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(6, '0')}`);
  const share = (k: number) => Math.floor(stock / locations.length) + (k === 0 ? stock % locations.length : 0);
  for (let i = 0; i < skus.length; i += 1000) {
    const chunk = skus.slice(i, i + 1000);
    await db.transaction(async (trx) => {
      await trx('products').insert(chunk.map((sku) => ({ sku, name: `Bench ${sku}`, price_cents: 1000 })));
      await trx('stock').insert(chunk.map((sku) => ({ sku, on_hand: stock })));
      const levels = chunk.flatMap((sku) => locations.map((location, k) => ({ sku, location, on_hand: share(k) })));
      await trx('stock_levels').insert(levels);
      const initial = levels.filter((l) => l.on_hand > 0);
      if (initial.length > 0)
        await trx('stock_movements').insert(
          initial.map((l) => ({
            sku: l.sku,
            location: l.location,
            type: 'initial',
            quantity: l.on_hand,
            reason: 'initial stock',
          })),
        );
    });
  }
  return skus;
}

/** `main` and `count − 1` more locations (B1, B2, …, preferred after main), created if missing. */
export async function benchLocations(db: Db, count: number): Promise<string[]> {
  const extra = Array.from({ length: Math.max(0, count - 1) }, (_, i) => ({
    code: `B${i + 1}`,
    name: `Bench ${i + 1}`,
    priority: 110 + i,
  }));
  if (extra.length) await db('locations').insert(extra).onConflict('code').ignore();
  return ['main', ...extra.map((l) => l.code)];
}

/** Deterministic pseudo-random numbers (same order mix on every run). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The SKU of each order: uniform over `skus`, the same sequence on every run and for ours and the ceiling. */
export function orderMix(orders: number, skus: string[]): string[] {
  const rand = rng(orders * 31 + skus.length);
  return Array.from({ length: orders }, () => skus[Math.floor(rand() * skus.length)]);
}

/**
 * Submits orders through the real intake use case (placeOrder: order rows + outbox in PostgreSQL,
 * then the job added), `concurrency` at a time. Returns the ids and the seq range.
 */
export async function submitOrders(
  ctx: AppContext,
  orders: { customer_id: string; sku: string; quantity: number }[],
  concurrency = 32,
): Promise<{ ids: string[]; minSeq: number; maxSeq: number; seconds: number }> {
  const ids: string[] = new Array(orders.length);
  let minSeq = Infinity;
  let maxSeq = -Infinity;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, orders.length) }, async () => {
      while (next < orders.length) {
        const i = next++;
        const o = orders[i];
        const input = {
          customer_id: o.customer_id,
          lines: [{ sku: o.sku, quantity: o.quantity }],
          on_insufficient_stock: 'backorder' as const,
        };
        const { body } = await placeOrder(ctx, 'intake#bench', input);
        ids[i] = body.id;
        minSeq = Math.min(minSeq, body.seq);
        maxSeq = Math.max(maxSeq, body.seq);
      }
    }),
  );
  return { ids, minSeq, maxSeq, seconds: (performance.now() - t0) / 1000 };
}

/** Orders with seq in [minSeq, maxSeq] by status. */
export async function countByStatus(db: Db, minSeq: number, maxSeq: number): Promise<Record<string, number>> {
  const rows = await db('orders')
    .whereBetween('seq', [minSeq, maxSeq])
    .groupBy('status')
    .select('status')
    .count({ n: '*' });
  return Object.fromEntries(rows.map((r: any) => [r.status, Number(r.n)]));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `fn` is true; returns the time (performance.now) at which it was first seen true. */
export async function until(
  fn: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await fn()) return performance.now();
    if (performance.now() > deadline)
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Guarantees 1 and 2 over the given SKUs: 0 <= reserved <= on_hand and on_hand equals its ledger. */
export async function checkInvariants(db: Db, skus: string[]): Promise<{ ok: boolean; problems: string[] }> {
  const { rows } = await db.raw(
    `SELECT s.sku, s.on_hand, s.reserved,
            COALESCE((SELECT sum(m.quantity) FROM stock_movements m WHERE m.sku = s.sku AND m.type IN ('initial','receipt','sale','adjustment','return','count','transfer_out','transfer_in')), 0)::bigint AS ledger,
            COALESCE((SELECT sum(m.quantity) FROM stock_movements m WHERE m.sku = s.sku AND m.type IN ('reservation','release','sale')), 0)::bigint AS reserved_ledger
       FROM stock s WHERE s.sku = ANY(?::text[])`,
    [skus],
  );
  const problems: string[] = [];
  for (const r of rows) {
    if (r.reserved < 0 || r.reserved > r.on_hand)
      problems.push(`${r.sku}: reserved ${r.reserved} outside 0..${r.on_hand}`);
    if (r.on_hand !== r.ledger) problems.push(`${r.sku}: on_hand ${r.on_hand} but ledger says ${r.ledger}`);
    if (r.reserved !== r.reserved_ledger)
      problems.push(`${r.sku}: reserved ${r.reserved} but movements say ${r.reserved_ledger}`);
  }
  return { ok: problems.length === 0, problems: problems.slice(0, 10) };
}
