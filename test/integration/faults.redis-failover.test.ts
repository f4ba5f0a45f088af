import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../src/platform/db';
import {
  expectCleanRun,
  faultSeed,
  spawnApiAndWorker,
  figures,
  orderBody,
  printFigures,
  rng,
  runIntake,
  SETTLED,
  settlement,
  setupShop,
  waitSettled,
} from '../helpers/fault-kit';
import { createHarness, createTestDatabase, waitFor, type Harness } from '../helpers/harness';
import { startSentinelGroup, type SentinelGroup } from '../helpers/private-sentinel';

/** Orders before the fault; then rounds of BATCH until LOAD_AFTER_PROMOTION_MS after the promotion. */
const BEFORE = 200;
const BATCH = 24;
const LOAD_AFTER_PROMOTION_MS = 3_000;
const MAX_TOTAL = 4_000;
/** Replication is cut this long before the primary is killed: what it acknowledged meanwhile is lost. */
const UNREPLICATED_MS = 1_500;

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let group: SentinelGroup;
let h: Harness;
let direct: Knex;

beforeAll(async () => {
  testDb = await createTestDatabase();
  group = await startSentinelGroup({ sentinels: 3 });
  // Every process finds the master through the sentinels; REDIS_URL's host and port are not used.
  h = await createHarness(testDb.url, {
    http: false,
    env: {
      REDIS_URL: `redis://127.0.0.1:${group.primaryPort}`,
      REDIS_SENTINELS: group.sentinelList,
      REDIS_SENTINEL_NAME: group.name,
      // The reconciler rebuilds what the failover dropped: orders `received` for 2 s with no live job.
      RECONCILE_AFTER_SECONDS: '2',
      MAINTENANCE_INTERVAL_MS: '1000',
    },
  });
  direct = createDb(testDb.url, 4);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await group?.stop();
  await direct?.destroy();
  await testDb?.drop();
});

describe('fault: the Redis primary behind Sentinel is SIGKILLed under load', () => {
  it('when the primary dies with writes not yet replicated, then the replica is promoted, the API and worker carry on without a restart, and every accepted order settles once', async () => {
    const seed = faultSeed();
    const r = rng(seed);
    // info: the reconciler's "re-enqueued work" lines say how much it rebuilt.
    const { baseUrl, apiProc, worker, api } = await spawnApiAndWorker(h, { LOG_LEVEL: 'info' });
    const shop = await setupShop({ ...h, baseUrl, api }, { skus: 20, hot: 5, hotStock: 6, coldStock: 300 });

    const t = { cut: 0, killed: 0, promoted: 0 };
    const body = () => orderBody(r, shop);
    const statuses: Record<string, number> = {};
    const afterPromotion: Record<string, number> = {};
    const onAttempt = (a: { startedAt: number; status: number }) => {
      if (t.cut && !t.promoted) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
      if (t.promoted && a.startedAt > t.promoted) afterPromotion[a.status] = (afterPromotion[a.status] ?? 0) + 1;
    };
    const failover = async () => {
      // Asynchronous replication, made visible: the replica stops receiving while the primary
      // goes on acknowledging jobs added, taken and completed, then the primary dies.
      await group.cutReplication();
      t.cut = Date.now();
      // The orders queue is paused on the primary alone (the pause is never replicated), so the
      // jobs of the orders accepted from now on wait there and die with it: only the reconciler,
      // reading PostgreSQL, can give them back. The promoted replica is not paused.
      await h.ctx.queues.orders.pause();
      await new Promise((res) => setTimeout(res, UNREPLICATED_MS));
      await group.killPrimary();
      t.killed = Date.now();
      await waitFor(async () => (await group.masterPort()) === group.replicaPort, {
        timeout: 30_000,
        interval: 50,
        what: 'the sentinels to promote the replica',
      });
      t.promoted = Date.now();
    };
    // Load before the fault, then in rounds of BATCH orders for as long as the failover lasts and
    // LOAD_AFTER_PROMOTION_MS more (a count alone would end early on a quiet machine, late on a busy one).
    const stats = await runIntake({ baseUrl: () => baseUrl, total: BEFORE, concurrency: 6, body, onAttempt });
    let attempted = BEFORE;
    const failing = failover();
    failing.catch(() => undefined);
    while (attempted < MAX_TOTAL && (!t.promoted || Date.now() < t.promoted + LOAD_AFTER_PROMOTION_MS)) {
      const round = await runIntake({ baseUrl: () => baseUrl, total: BATCH, concurrency: 6, body, onAttempt });
      attempted += BATCH;
      stats.accepted.push(...round.accepted);
      stats.unavailable += round.unavailable;
      stats.unavailableWithoutRetryAfter += round.unavailableWithoutRetryAfter;
      stats.networkErrors += round.networkErrors;
      stats.replayed += round.replayed;
      stats.unexpected.push(...round.unexpected);
    }
    await failing;
    // The pause stayed on the dead primary: proof that the cut lost writes (else nothing would run now).
    const pausedAfterFailover = await h.ctx.queues.orders.isPaused();

    // Stock arrives after the failover: backorders are served by the same worker, via the new master.
    const restock = await api('POST', '/v1/restocks', {
      role: 'feed',
      body: { events: shop.hot.map((sku) => ({ event_id: `after-failover-${sku}`, sku, quantity: 15 })) },
    });
    expect(restock.status).toBe(202);

    const settled = await waitSettled(direct, stats.accepted, 60_000);
    const allSettledAt = Date.now();
    if (settled.unsettled.length) {
      const q = h.ctx.queues.orders;
      const diag = {
        paused: await q.isPaused().catch((e) => String(e)),
        workers: await q.getWorkers().catch((e) => String(e)),
        counts: await q.getJobCounts().catch((e) => String(e)),
      };
      process.stdout.write(`DIAG ${JSON.stringify(diag)}\n`);
    }
    await new Promise((res) => setTimeout(res, 1500)); // let allocation after the last transition finish
    const f = await figures(direct, stats.accepted, h.ctx.queues);
    const inDb = await direct('orders').whereIn('customer_id', shop.customers).count({ n: '*' }).first();
    // Processing resumed: the first order accepted after the kill (its job can only go through the
    // new master) left `received`.
    const resumed = await direct.raw(
      `SELECT extract(epoch FROM min(oh.at)) * 1000 AS at FROM order_history oh JOIN orders o ON o.id = oh.order_id
        WHERE o.created_at > ? AND oh.status = ANY(?)`,
      [new Date(t.killed), SETTLED],
    );
    const resumedAt = Number(resumed.rows[0].at);
    // Orders whose job the failover dropped (or never published), put back from PostgreSQL.
    const rebuilt = [...worker.output().matchAll(/"orders":(\d+)[^\n]*reconciler re-enqueued work/g)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
    const unreplicated = await direct('orders')
      .where('created_at', '>=', new Date(t.cut))
      .where('created_at', '<', new Date(t.killed))
      .count({ n: '*' })
      .first();
    const processedTwice = await direct.raw(
      `SELECT COUNT(*)::int AS n FROM (SELECT order_id FROM processing_attempts WHERE outcome <> 'error'
        GROUP BY order_id HAVING COUNT(*) > 1) x`,
    );

    printFigures('redis-failover', seed, f, {
      ordersInDb: Number(inDb?.n),
      attempted,
      answersDuringFailover: statuses,
      answersAfterPromotion: afterPromotion,
      networkErrors: stats.networkErrors,
      unavailable503: stats.unavailable,
      unreplicatedMs: t.killed - t.cut,
      promotedAfterKillMs: t.promoted - t.killed,
      processingResumedAfterKillMs: Math.round(resumedAt - t.killed),
      allSettledAfterKillMs: allSettledAt - t.killed,
      acceptedWhileUnreplicated: Number(unreplicated?.n),
      rebuiltByReconciler: rebuilt,
      ordersProcessedMoreThanOnce: processedTwice.rows[0].n,
    });
    // Still serving new work, through the promoted replica, without a restart.
    const late = await api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: shop.customers[0], lines: [{ sku: shop.skus[10], quantity: 1 }] },
    });
    expect(late.status).toBe(202);
    await waitFor(async () => (await settlement(direct, [late.body.id])).settled === 1, {
      timeout: 30_000,
      what: 'an order placed after the failover settled',
    }).catch(async (err) => {
      const counts = await h.ctx.queues.orders.getJobCounts().catch((e) => String(e));
      throw new Error(`${(err as Error).message} ${JSON.stringify(counts)}\n${worker.output().slice(-3000)}`);
    });

    if (settled.unsettled.length) process.stdout.write(`worker output:\n${worker.output().slice(-4000)}\n`);

    expect(await group.masterPort()).toBe(group.replicaPort);
    expect(pausedAfterFailover).toBe(false);
    expect(stats.networkErrors).toBe(0);
    expect(stats.unavailableWithoutRetryAfter).toBe(0);
    expect(resumedAt).toBeGreaterThan(t.killed);
    expect(afterPromotion[202]).toBeGreaterThan(0); // the load went on past the promotion
    expect(Number(unreplicated?.n)).toBeGreaterThan(0); // the failover did drop jobs…
    expect(rebuilt).toBeGreaterThan(0); // … and the reconciler put them back from PostgreSQL
    expect(processedTwice.rows[0].n).toBe(0);
    expectCleanRun({ stats, ordersInDb: Number(inDb?.n), unsettled: settled.unsettled, f, total: attempted });
    expect(f.byStatus.failed ?? 0).toBe(0);
    expect(apiProc.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
    expect(`${apiProc.output()}${worker.output()}`).not.toMatch(/unhandled rejection|failed to start/);
  }, 180_000);
});
