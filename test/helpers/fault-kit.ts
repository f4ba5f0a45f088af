import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { expect } from 'vitest';
import { checkInvariants, type InvariantReport } from '../../src/invariants';
import type { Queues } from '../../src/jobs/queues';
import { KEYS, waitFor, type ApiResponse, type Harness } from './harness';
import { freePort } from './private-redis';

/** A small seeded PRNG (mulberry32) so that a failing fault run can be replayed with FAULT_SEED. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
  };
}
export type Rng = ReturnType<typeof rng>;

export function faultSeed(): number {
  return process.env.FAULT_SEED ? Number(process.env.FAULT_SEED) : Math.floor(Math.random() * 2 ** 31);
}

export interface Shop {
  customers: string[];
  skus: string[];
  hot: string[];
}

/** Customers and SKUs made through the API; `hot` SKUs have only a few units, the rest plenty. */
export async function setupShop(
  h: Harness,
  opts: { skus?: number; hot?: number; hotStock?: number; coldStock?: number; customers?: number } = {},
): Promise<Shop> {
  const tag = randomUUID().slice(0, 8);
  const n = opts.skus ?? 20;
  const hotCount = opts.hot ?? 5;
  const skus: string[] = [];
  for (let i = 0; i < n; i++) {
    const sku = `F-${tag}-${String(i).padStart(2, '0')}`;
    const hot = i < hotCount;
    const res = await h.api('POST', '/v1/products', {
      body: {
        sku,
        name: `Fault ${i}`,
        price_cents: 100 + i,
        initial_stock: hot ? (opts.hotStock ?? 5) : (opts.coldStock ?? 400),
      },
    });
    if (res.status !== 201) throw new Error(`product: ${res.status} ${res.text}`);
    skus.push(sku);
  }
  const customers: string[] = [];
  for (let i = 0; i < (opts.customers ?? 10); i++) {
    const res = await h.api('POST', '/v1/customers', {
      body: { email: `f-${tag}-${i}@example.test`, name: `Fault ${i}` },
    });
    if (res.status !== 201) throw new Error(`customer: ${res.status} ${res.text}`);
    customers.push(res.body.id);
  }
  return { customers, skus, hot: skus.slice(0, hotCount) };
}

/** 1–3 distinct SKUs, hot ones half the time; mostly backorder, some reject. */
export function orderBody(r: Rng, shop: Shop) {
  const lines = new Map<string, number>();
  const count = r.int(1, 3);
  while (lines.size < count) lines.set(r.next() < 0.5 ? r.pick(shop.hot) : r.pick(shop.skus), r.int(1, 3));
  return {
    customer_id: r.pick(shop.customers),
    lines: [...lines].map(([sku, quantity]) => ({ sku, quantity })),
    on_insufficient_stock: r.next() < 0.8 ? 'backorder' : 'reject',
  };
}

export interface IntakeStats {
  /** Order ids answered 202 (each logical order once). */
  accepted: string[];
  /** 503 answers (each carried Retry-After), retried with the same Idempotency-Key. */
  unavailable: number;
  /** 503 answers without a Retry-After header (must stay 0). */
  unavailableWithoutRetryAfter: number;
  /** Connection errors (the server went away mid-request), retried with the same key. */
  networkErrors: number;
  /** Idempotent replays seen on retries. */
  replayed: number;
  /** Any other status, as `status code` strings (must stay empty). */
  unexpected: string[];
}

/**
 * Places `total` orders with `concurrency` clients, each with its own Idempotency-Key. A 503 or a
 * dropped connection is retried with the same key (as a careful client does) after a short pause,
 * against `baseUrl()` — which may change between attempts (a second API process).
 */
export async function runIntake(opts: {
  baseUrl: () => string;
  total: number;
  concurrency?: number;
  body: (i: number) => unknown;
  onAccepted?: (n: number) => void | Promise<void>;
  retryPauseMs?: number;
  giveUpAfterMs?: number;
  /** Called after every attempt: where it went, when, and how it ended (`status` 0 = connection error). */
  onAttempt?: (a: { baseUrl: string; startedAt: number; endedAt: number; status: number }) => void;
}): Promise<IntakeStats> {
  const stats: IntakeStats = {
    accepted: [],
    unavailable: 0,
    unavailableWithoutRetryAfter: 0,
    networkErrors: 0,
    replayed: 0,
    unexpected: [],
  };
  let next = 0;
  const client = async () => {
    for (;;) {
      const i = next++;
      if (i >= opts.total) return;
      const key = `fault-${randomUUID()}`;
      // external_ref carries the key too, so that a key that made two orders shows up in the figures.
      const payload = JSON.stringify({ ...(opts.body(i) as object), external_ref: key });
      const deadline = Date.now() + (opts.giveUpAfterMs ?? 120_000);
      for (;;) {
        let res: Response | undefined;
        const baseUrl = opts.baseUrl();
        const startedAt = Date.now();
        try {
          res = await fetch(`${baseUrl}/v1/orders`, {
            method: 'POST',
            body: payload,
            headers: {
              authorization: `Bearer ${KEYS.intake}`,
              'content-type': 'application/json',
              'idempotency-key': key,
            },
          });
        } catch {
          stats.networkErrors++;
        }
        const text = res ? await res.text().catch(() => undefined) : undefined;
        if (res && text === undefined) {
          stats.networkErrors++;
          res = undefined;
        }
        opts.onAttempt?.({ baseUrl, startedAt, endedAt: Date.now(), status: res?.status ?? 0 });
        if (res && text !== undefined) {
          if (res.status === 202) {
            if (res.headers.get('idempotent-replayed') === 'true') stats.replayed++;
            stats.accepted.push(JSON.parse(text).id);
            await opts.onAccepted?.(stats.accepted.length);
            break;
          }
          if (res.status === 503) {
            stats.unavailable++;
            if (!res.headers.get('retry-after')) stats.unavailableWithoutRetryAfter++;
          } else if (res.status === 409 && text.includes('idempotency_in_progress')) {
            // The first attempt is still being committed: wait and ask again.
          } else {
            stats.unexpected.push(`${res.status} ${text.slice(0, 200)}`);
            break;
          }
        }
        if (Date.now() > deadline) {
          stats.unexpected.push(`gave up on order ${i}`);
          break;
        }
        await new Promise((r) => setTimeout(r, opts.retryPauseMs ?? 250));
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 8 }, client));
  return stats;
}

export const SETTLED = ['confirmed', 'awaiting_stock', 'rejected', 'failed', 'cancelled', 'completed'];

/** How the accepted orders stand: found in the database, settled, by status. */
export async function settlement(db: Knex, ids: string[]) {
  const rows: { id: string; status: string }[] = [];
  for (let i = 0; i < ids.length; i += 5000)
    rows.push(
      ...(await db('orders')
        .whereIn('id', ids.slice(i, i + 5000))
        .select('id', 'status')),
    );
  const byStatus: Record<string, number> = {};
  for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  const settled = rows.filter((r) => SETTLED.includes(r.status)).length;
  return {
    accepted: ids.length,
    found: rows.length,
    settled,
    lost: ids.length - settled,
    byStatus,
    unsettled: rows.filter((r) => !SETTLED.includes(r.status)).map((r) => r.id),
  };
}

/** Waits until every accepted order is settled (or the timeout passes) and returns how they stand. */
export async function waitSettled(db: Knex, ids: string[], timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await settlement(db, ids);
    if (s.settled === s.accepted || Date.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 500));
  }
}

export interface Figures {
  accepted: number;
  settled: number;
  lost: number;
  oversoldUnits: number;
  duplicateEffects: number;
  byStatus: Record<string, number>;
  invariants: InvariantReport;
}

/**
 * The closing figures of a fault run: lost = accepted orders not settled (or not found);
 * oversold units = Σ max(0, reserved − on_hand); duplicate effects = ledger lines that reserve or
 * sell more than once, restocks applied twice, orders whose events outnumber their transitions,
 * and idempotency keys that made more than one order.
 */
export async function figures(db: Knex, ids: string[], queues?: Pick<Queues, 'orders'>): Promise<Figures> {
  const s = await settlement(db, ids);
  const invariants = await checkInvariants(db, { queues, graceSeconds: 5 });
  const oversold = await db.raw(`SELECT COALESCE(SUM(GREATEST(reserved - on_hand, 0)), 0)::int AS n FROM stock`);
  const doubleOrders = await db.raw(
    `SELECT COUNT(*)::int AS n FROM (SELECT external_ref FROM orders WHERE external_ref IS NOT NULL GROUP BY external_ref HAVING COUNT(*) > 1) x`,
  );
  const c = invariants.counts;
  return {
    accepted: s.accepted,
    settled: s.settled,
    lost: s.lost + (s.accepted - s.found),
    byStatus: s.byStatus,
    oversoldUnits: oversold.rows[0].n,
    duplicateEffects: (c['line-ledger'] ?? 0) + (c['receipts-once'] ?? 0) + (c.events ?? 0) + doubleOrders.rows[0].n,
    invariants,
  };
}

export function printFigures(name: string, seed: number, f: Figures, extra: Record<string, unknown> = {}): void {
  const { invariants, ...rest } = f;
  process.stdout.write(
    `FAULT-FIGURES ${name} ${JSON.stringify({ seed, ...rest, ...extra, problems: invariants.problems.slice(0, 10) })}\n`,
  );
}

/**
 * The closing verdict every fault run shares: each logical order accepted once and stored once,
 * all settled, nothing lost, oversold or applied twice, and the invariant checker green.
 */
export function expectCleanRun(r: {
  stats: IntakeStats;
  ordersInDb: number;
  unsettled: string[];
  f: Figures;
  total: number;
}): void {
  expect(r.stats.unexpected).toEqual([]);
  expect(r.stats.accepted).toHaveLength(r.total);
  expect(r.ordersInDb).toBe(r.total); // a 503 or a retried request stored nothing extra
  expect(r.unsettled).toEqual([]);
  expect(r.f.lost).toBe(0);
  expect(r.f.oversoldUnits).toBe(0);
  expect(r.f.duplicateEffects).toBe(0);
  expect(r.f.invariants.problems).toEqual([]);
}

/** The harness's request helper, aimed at another base URL (an API process the test spawned). */
export function apiAt(baseUrl: string): Harness['api'] {
  return async (method, url, o = {}) => {
    const headers: Record<string, string> = { ...o.headers };
    const role = o.role === undefined ? 'operator' : o.role;
    if (role) headers.authorization = `Bearer ${KEYS[role]}`;
    const body = o.body !== undefined ? JSON.stringify(o.body) : o.raw;
    if (o.body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(`${baseUrl}${url}`, { method, headers, body });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, headers: res.headers, text } as ApiResponse;
  };
}

/**
 * An API process on a free port and a worker process, both spawned from the harness's env, once the
 * API answers /readyz and the worker is connected to the orders queue; with a request helper aimed
 * at that API. `workerEnv` is added to the worker's env (a log level, say).
 */
export async function spawnApiAndWorker(h: Harness, workerEnv: Record<string, string> = {}) {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const apiProc = h.spawnWorker({ PORT: String(port), HOST: '127.0.0.1' }, 'api');
  const worker = h.spawnWorker(workerEnv);
  await waitFor(async () => (await fetch(`${baseUrl}/readyz`).catch(() => undefined))?.status === 200, {
    timeout: 60_000,
    what: 'the API process ready',
  }).catch((err) => {
    throw new Error(`${(err as Error).message}\n${apiProc.output().slice(-3000)}`);
  });
  await waitFor(async () => (await h.ctx.queues.orders.getWorkersCount()) > 0, {
    timeout: 60_000,
    what: 'the worker connected',
  });
  return { baseUrl, apiProc, worker, api: apiAt(baseUrl) };
}
