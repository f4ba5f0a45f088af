import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDb } from '../../src/platform/db';
import { prepareDatabase } from '../../src/platform/prepare-database';
import {
  expectCleanRun,
  faultSeed,
  spawnApiAndWorker,
  figures,
  orderBody,
  printFigures,
  rng,
  runIntake,
  settlement,
  SETTLED,
  setupShop,
  waitSettled,
} from '../helpers/fault-kit';
import { createHarness, waitFor, type Harness } from '../helpers/harness';
import { startPrivatePostgres, type PrivatePostgres } from '../../bench/lib/private-postgres';

const TOTAL = 600;
const CRASH_AT = 200;
const PAUSED_BEFORE_CRASH = 40;
const OUTAGE_MS = 5_000;

let pgsrv: PrivatePostgres;
let h: Harness;
let direct: Knex;
let dbUrl: string;

beforeAll(async () => {
  // knex and pg print every refused connection on the console during the outage.
  const log = console.log.bind(console);
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    if (/^(Acquire connection error|Connection Error)/.test(String(args[0]))) return;
    log(...args);
  });
  pgsrv = await startPrivatePostgres();
  dbUrl = pgsrv.url('orderflow');
  // What every process does at start (npm run migrate too): create the database, migrate to latest.
  await prepareDatabase(dbUrl);
  // The harness's own context (no HTTP) is only for the queues and the checker; the API and the
  // worker are real processes.
  h = await createHarness(dbUrl, { http: false, env: { DB_POOL_MAX: '10' } });
  direct = createDb(dbUrl, 4);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await direct?.destroy();
  await pgsrv?.destroy();
});

describe('fault: PostgreSQL crashes (pg_ctl -m immediate) under load and starts again', () => {
  it('when PostgreSQL crashes mid-load, then intake answers 503 with Retry-After until it is back, every order answered 202 before the crash exists and settles, and the API and worker recover without a restart', async () => {
    const seed = faultSeed();
    const r = rng(seed);
    const { baseUrl, apiProc, worker, api } = await spawnApiAndWorker(h);
    const shop = await setupShop({ ...h, baseUrl, api }, { skus: 20, hot: 5, hotStock: 6, coldStock: 300 });

    const t = { crashed: 0, startCalled: 0, ready: 0 };
    let acceptedBeforeCrash: string[] = [];
    const accepted: string[] = [];
    const during: Record<string, number> = {};
    let first202AfterStart = 0;
    let crash: Promise<void> | undefined;
    let readyzDuring = 0;
    let preCrashSettledAt = 0;
    const stats = await runIntake({
      baseUrl: () => baseUrl,
      total: TOTAL,
      concurrency: 6,
      body: () => orderBody(r, shop),
      onAttempt: (a) => {
        // Requests sent wholly between the crash and the restart: the outage's answers.
        if (t.crashed && a.startedAt > t.crashed && (!t.startCalled || a.endedAt < t.startCalled))
          during[a.status] = (during[a.status] ?? 0) + 1;
        if (a.status === 202 && t.ready && a.startedAt >= t.startCalled && !first202AfterStart)
          first202AfterStart = a.endedAt;
      },
      onAccepted: async (n) => {
        // Jobs must be waiting (and some in flight) when the server dies: pause the queue for the
        // last orders before the crash and resume it once PostgreSQL is down.
        if (n === CRASH_AT - PAUSED_BEFORE_CRASH) void h.ctx.queues.orders.pause();
        if (n !== CRASH_AT) return;
        crash = (async () => {
          await pgsrv.stop('immediate');
          t.crashed = Date.now();
          await h.ctx.queues.orders.resume();
          await new Promise((res) => setTimeout(res, 2000));
          readyzDuring = (await fetch(`${baseUrl}/readyz`)).status;
          await new Promise((res) => setTimeout(res, OUTAGE_MS - 2000));
          t.startCalled = Date.now();
          await pgsrv.start();
          t.ready = Date.now();
          // From here: how long until the orders accepted before the crash have all settled.
          // (Orders created before the crash and not yet settled, counted in the recovered database.)
          void (async () => {
            while (!preCrashSettledAt && Date.now() - t.ready < 90_000) {
              const left = await direct('orders')
                .where('created_at', '<', new Date(t.crashed))
                .whereNotIn('status', SETTLED)
                .count({ n: '*' })
                .first()
                .catch(() => undefined);
              if (left && Number(left.n) === 0) preCrashSettledAt = Date.now();
              else await new Promise((res) => setTimeout(res, 200));
            }
          })();
        })();
      },
    });
    accepted.push(...stats.accepted);
    await crash;
    // Which orders had their 202 before the crash: those whose row the crashed server had committed.
    acceptedBeforeCrash = stats.accepted.slice(0, CRASH_AT);

    // Stock arrives after the crash: backorders are served (FIFO) by the recovered worker.
    const restock = await api('POST', '/v1/restocks', {
      role: 'feed',
      body: { events: shop.hot.map((sku) => ({ event_id: `after-crash-${sku}`, sku, quantity: 15 })) },
    });
    expect(restock.status).toBe(202);

    const beforeCrash = await waitSettled(direct, acceptedBeforeCrash, 60_000);
    await waitFor(async () => preCrashSettledAt > 0, { timeout: 30_000, what: 'the pre-crash backlog drained' });
    const settled = await waitSettled(direct, accepted, 60_000);
    const allSettledAt = Date.now();
    await new Promise((res) => setTimeout(res, 1500)); // let allocation after the last transition finish
    const f = await figures(direct, accepted, h.ctx.queues);
    const inDb = await direct('orders').whereIn('customer_id', shop.customers).count({ n: '*' }).first();
    const completedJobs = await h.ctx.queues.orders.getJobs(['completed'], 0, -1);
    const retriedJobs = completedJobs.filter((j) => j.attemptsMade > 1).length;
    // The worker still serves new work after the crash (no restart): one more order, confirmed.
    const late = await api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: shop.customers[0], lines: [{ sku: shop.skus[10], quantity: 1 }] },
    });
    expect(late.status).toBe(202);
    await waitFor(async () => (await settlement(direct, [late.body.id])).settled === 1, {
      timeout: 30_000,
      what: 'an order placed after recovery settled',
    });

    printFigures('postgres-crash', seed, f, {
      ordersInDb: Number(inDb?.n),
      acceptedBeforeCrash: acceptedBeforeCrash.length,
      acceptedBeforeCrashFound: beforeCrash.found,
      answersDuringOutage: during,
      unavailable503: stats.unavailable,
      networkErrors: stats.networkErrors,
      replayed: stats.replayed,
      readyzDuring,
      outageMs: t.startCalled - t.crashed,
      pgStartMs: t.ready - t.startCalled,
      first202AfterPgReadyMs: first202AfterStart - t.ready,
      preCrashBacklogDrainedAfterPgReadyMs: preCrashSettledAt - t.ready,
      allSettledAfterPgReadyMs: allSettledAt - t.ready,
      retriedJobs,
    });
    if (settled.unsettled.length) process.stdout.write(`worker output:\n${worker.output().slice(-4000)}\n`);

    // The restart really was a crash recovery (WAL replayed), not a clean start.
    expect(await pgsrv.log()).toMatch(/not properly shut down; automatic recovery in progress/);
    expect(beforeCrash.found).toBe(CRASH_AT); // every 202 before the crash survived it
    expect(beforeCrash.unsettled).toEqual([]);
    expect(Object.keys(during)).toEqual(['503']); // only 503 while PostgreSQL was down: no 500, no 202
    expect(stats.unavailableWithoutRetryAfter).toBe(0);
    expect(stats.networkErrors).toBe(0); // the API process stayed up
    expect(readyzDuring).toBe(503);
    expect(first202AfterStart).toBeGreaterThan(0);
    expectCleanRun({ stats, ordersInDb: Number(inDb?.n), unsettled: settled.unsettled, f, total: TOTAL });
    expect(f.byStatus.failed ?? 0).toBe(0);
    expect(apiProc.child.exitCode).toBeNull();
    expect(`${apiProc.output()}${worker.output()}`).not.toMatch(/unhandled|failed to start/);
    expect(worker.child.exitCode).toBeNull();
  }, 180_000);
});
