import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { inject } from 'vitest';
import { createDb } from '../../src/platform/db';
import {
  faultSeed,
  figures,
  orderBody,
  printFigures,
  rng,
  runIntake,
  setupShop,
  waitSettled,
  expectCleanRun,
} from '../helpers/fault-kit';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { createHarness, createTestDatabase, waitFor, type Harness } from '../helpers/harness';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

const OUTAGE_MS = 10_000;
const TOTAL = 800;
const DROP_AT = 250;
const PAUSED_BEFORE_DROP = 40;

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let proxy: TcpProxy;
let h: Harness;
let direct: Knex;

beforeAll(async () => {
  // knex and pg print every refused connection on the console during the outage: hundreds of lines, none useful here.
  const log = console.log.bind(console);
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    if (/^(Acquire connection error|Connection Error)/.test(String(args[0]))) return;
    log(...args);
  });
  testDb = await createTestDatabase();
  const pg = new URL(inject('pgUrl'));
  proxy = await startTcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  // The API (in this process) and the worker process both reach PostgreSQL only through the proxy.
  h = await createHarness(proxy.rewrite(testDb.url), { env: { DB_POOL_MAX: '10' } });
  direct = createDb(testDb.url, 4);
});

afterAll(async () => {
  await proxy?.restore();
  await h?.close();
  await proxy?.close();
  await direct?.destroy();
  await testDb?.drop();
});

describe('fault: PostgreSQL unreachable for 10 s mid-run', () => {
  it('when the database drops for 10 s, then intake answers 503 with Retry-After, workers back off, and every accepted order settles with the invariants green', async () => {
    const seed = faultSeed();
    const r = rng(seed);
    const shop = await setupShop(h, { skus: 20, hot: 5, hotStock: 6, coldStock: 300, customers: 10 });
    const worker = h.spawnWorker();
    // A worker still booting when the database goes (a loaded machine, tsx compiling) meets no outage at all.
    await waitFor(async () => (await h.ctx.queues.orders.getWorkersCount()) > 0, {
      timeout: 60_000,
      what: 'the worker connected',
    });

    let outage: Promise<void> | undefined;
    const during = { readyz: 0, readyzBody: '' };
    const stats = await runIntake({
      baseUrl: () => h.baseUrl,
      total: TOTAL,
      concurrency: 6,
      body: () => orderBody(r, shop),
      onAccepted: (n) => {
        // Jobs must be waiting when the database goes: a fast worker keeps up with intake, and with
        // intake answering 503 during the outage no new job would meet it. So the queue is paused for
        // the last orders before the drop and resumed once PostgreSQL is unreachable.
        if (n === DROP_AT - PAUSED_BEFORE_DROP) void h.ctx.queues.orders.pause();
        if (n !== DROP_AT) return;
        outage = (async () => {
          await proxy.drop();
          await h.ctx.queues.orders.resume();
          await new Promise((res) => setTimeout(res, 2000));
          const ready = await h.api('GET', '/readyz', { role: null });
          during.readyz = ready.status;
          during.readyzBody = ready.text;
          await new Promise((res) => setTimeout(res, OUTAGE_MS - 2000));
          await proxy.restore();
        })();
      },
    });
    await outage;
    // Stock arrives after the outage: backorders are served (FIFO) through the same proxy.
    const restock = await h.api('POST', '/v1/restocks', {
      role: 'feed',
      body: { events: shop.hot.map((sku) => ({ event_id: `after-outage-${sku}`, sku, quantity: 15 })) },
    });
    expect(restock.status).toBe(202);

    const settled = await waitSettled(direct, stats.accepted, 90_000);
    await new Promise((res) => setTimeout(res, 1500)); // let allocation after the last transition finish
    const f = await figures(direct, stats.accepted, h.ctx.queues);
    // Jobs that failed at least once and then completed: the workers met the outage and backed off.
    const completedJobs = await h.ctx.queues.orders.getJobs(['completed'], 0, -1);
    const retriedJobs = completedJobs.filter((j) => j.attemptsMade > 1).length; // attemptsMade counts the successful run too
    const inDb = await direct('orders').whereIn('customer_id', shop.customers).count({ n: '*' }).first();
    printFigures('postgres-down', seed, f, {
      unavailable503: stats.unavailable,
      replayed: stats.replayed,
      networkErrors: stats.networkErrors,
      ordersInDb: Number(inDb?.n),
      readyzDuringOutage: during.readyz,
      retriedJobs,
      completedJobs: completedJobs.length,
    });

    if (settled.unsettled.length) process.stdout.write(`worker output:\n${worker.output().slice(-4000)}\n`);
    expect(during.readyz).toBe(503);
    expect(during.readyzBody).toContain('postgresql');
    expect(stats.unavailable).toBeGreaterThan(0);
    expect(stats.unavailableWithoutRetryAfter).toBe(0);
    expectCleanRun({ stats, ordersInDb: Number(inDb?.n), unsettled: settled.unsettled, f, total: TOTAL });
    expect(f.byStatus.failed ?? 0).toBe(0); // backoff outlasts a 10 s outage
    expect(retriedJobs).toBeGreaterThan(0);
    expect(worker.child.exitCode).toBeNull(); // the worker rode it out
  }, 240_000);
  it('when a worker process starts while PostgreSQL is unreachable, then it waits for the database and then processes orders', async () => {
    const hh = await createHarness(proxy.rewrite(testDb.url), { env: { DB_POOL_MAX: '4' } });
    try {
      await proxy.drop();
      const worker = hh.spawnWorker({ LOG_LEVEL: 'warn' });
      await waitFor(async () => /PostgreSQL unreachable at start-up/.test(worker.output()), {
        timeout: 30_000,
        what: 'the worker meeting the outage',
      });
      await new Promise((res) => setTimeout(res, 1000));
      expect(worker.child.exitCode).toBeNull(); // it did not give up
      await proxy.restore();
      const c = await makeCustomer(hh);
      const p = await makeProduct(hh, 3);
      const o = await placeOrder(hh, c.id, [{ sku: p.sku, quantity: 1 }]);
      await waitFor(async () => (await direct('orders').where({ id: o.id }).first())?.status === 'confirmed', {
        timeout: 60_000,
        what: 'order confirmed by that worker',
      });
      expect(worker.child.exitCode).toBeNull();
    } finally {
      await proxy.restore();
      await hh.close();
    }
  }, 120_000);
});
