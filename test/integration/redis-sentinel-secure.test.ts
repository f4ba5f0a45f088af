import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/platform/config';
import { createDb } from '../../src/platform/db';
import { createRedis, type RedisClient } from '../../src/platform/redis';
import {
  expectCleanRun,
  faultSeed,
  figures,
  orderBody,
  printFigures,
  rng,
  runIntake,
  setupShop,
  spawnApiAndWorker,
  waitSettled,
} from '../helpers/fault-kit';
import { createHarness, createTestDatabase, waitFor, type Harness } from '../helpers/harness';
import { startSentinelGroup, type SentinelGroup } from '../helpers/private-sentinel';

/**
 * Sentinel as a managed or hardened deployment runs it: every server and sentinel speaks TLS only,
 * with certificates of a private CA, the primary and replica ask for one password and the sentinels
 * for another. The processes get nothing but configuration (REDIS_URL rediss:// with the master's
 * password, REDIS_SENTINELS rediss:// with the sentinels', REDIS_TLS_CA_FILE).
 */
const MASTER_PASSWORD = 'master-secret-1';
const SENTINEL_PASSWORD = 'sentinel-secret-2';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let group: SentinelGroup;
let h: Harness;
let direct: Knex;

beforeAll(async () => {
  testDb = await createTestDatabase();
  group = await startSentinelGroup({
    sentinels: 3,
    password: MASTER_PASSWORD,
    sentinelPassword: SENTINEL_PASSWORD,
    tls: true,
  });
  h = await createHarness(testDb.url, {
    http: false,
    env: { ...group.env, RECONCILE_AFTER_SECONDS: '2', MAINTENANCE_INTERVAL_MS: '1000' },
  });
  direct = createDb(testDb.url, 4);
}, 120_000);

afterAll(async () => {
  await h?.close();
  await group?.stop();
  await direct?.destroy();
  await testDb?.drop();
});

/** A client from configuration; resolves with PONG or rejects with what went wrong (within 5 s). */
async function ping(env: Record<string, string>): Promise<string> {
  const r: RedisClient = createRedis(loadConfig({ ...env, QUEUE_PREFIX: 'secure-probe' }), 'producer');
  const failures: string[] = [];
  r.on('error', (e: Error) => failures.push(e.message));
  try {
    return await Promise.race([
      (async () => {
        for (;;) {
          try {
            return await r.ping();
          } catch (err) {
            failures.push((err as Error).message);
            await new Promise((res) => setTimeout(res, 200));
          }
        }
      })(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error([...new Set(failures)].join(' | ') || 'no answer in 5 s')), 5000).unref(),
      ),
    ]);
  } finally {
    r.disconnect();
  }
}

describe('Redis behind Sentinel with passwords and TLS (a private CA)', () => {
  it('when a setting is missing or wrong, then no connection is made: the passwords and the CA are really required', async () => {
    expect(await ping(group.env)).toBe('PONG');
    // Without the sentinels' password they refuse to name the master.
    const noSentinelAuth = {
      ...group.env,
      REDIS_SENTINELS: group.env.REDIS_SENTINELS.replace(`:${SENTINEL_PASSWORD}@`, ''),
    };
    await expect(ping(noSentinelAuth)).rejects.toThrow(/NOAUTH|All sentinels are unreachable|auth/i);
    // The master's password is its own: the sentinels' is not enough.
    const noMasterAuth = { ...group.env, REDIS_URL: group.env.REDIS_URL.replace(`:${MASTER_PASSWORD}@`, '') };
    await expect(ping(noMasterAuth)).rejects.toThrow(/NOAUTH|auth/i);
    // Without the CA the certificates are not trusted.
    const { REDIS_TLS_CA_FILE: _ca, ...noCa } = group.env;
    await expect(ping(noCa)).rejects.toThrow(/certificate|sentinels are unreachable/i);
  }, 60_000);

  it('when the primary is SIGKILLed under load, then the API and worker follow the promoted replica over TLS and every accepted order settles once', async () => {
    const seed = faultSeed();
    const r = rng(seed);
    const { baseUrl, apiProc, worker, api } = await spawnApiAndWorker(h, { LOG_LEVEL: 'info' });
    const shop = await setupShop({ ...h, baseUrl, api }, { skus: 12, hot: 4, hotStock: 8, coldStock: 300 });
    const body = () => orderBody(r, shop);
    const stats = await runIntake({ baseUrl: () => baseUrl, total: 120, concurrency: 6, body });

    await group.killPrimary();
    const killed = Date.now();
    await waitFor(async () => (await group.masterPort()) === group.replicaPort, {
      timeout: 30_000,
      interval: 50,
      what: 'the sentinels to promote the replica',
    });
    const promotedMs = Date.now() - killed;
    // Orders during and after the failover: a 503 is retried with the same key, as a client does.
    const after = await runIntake({ baseUrl: () => baseUrl, total: 120, concurrency: 6, body });
    stats.accepted.push(...after.accepted);
    stats.unexpected.push(...after.unexpected);
    stats.unavailableWithoutRetryAfter += after.unavailableWithoutRetryAfter;

    const settled = await waitSettled(direct, stats.accepted, 60_000);
    if (settled.unsettled.length) {
      // Where the jobs are, asked of the master the sentinels name now, on a connection of our own.
      const probe = createRedis(loadConfig({ ...group.env, QUEUE_PREFIX: h.config.QUEUE_PREFIX }), 'worker');
      const keys = await probe.keys(`${h.config.QUEUE_PREFIX}:orders:*`).catch((e: Error) => e.message);
      const waiting = await probe.llen(`${h.config.QUEUE_PREFIX}:orders:wait`).catch((e: Error) => e.message);
      probe.disconnect();
      process.stdout.write(
        `DIAG ${JSON.stringify({ master: await group.masterPort(), keys: Array.isArray(keys) ? keys.length : keys, waiting })}\n` +
          `worker output:\n${worker.output().slice(-6000)}\napi output:\n${apiProc.output().slice(-3000)}\n`,
      );
    }
    await new Promise((res) => setTimeout(res, 1000));
    const f = await figures(direct, stats.accepted, h.ctx.queues);
    const inDb = await direct('orders').whereIn('customer_id', shop.customers).count({ n: '*' }).first();
    printFigures('redis-sentinel-tls', seed, f, { promotedMs, unavailable503: stats.unavailable + after.unavailable });

    expect(await group.masterPort()).toBe(group.replicaPort);
    expect(stats.unavailableWithoutRetryAfter).toBe(0);
    expectCleanRun({ stats, ordersInDb: Number(inDb?.n), unsettled: settled.unsettled, f, total: 240 });
    expect(apiProc.child.exitCode).toBeNull();
  }, 180_000);
});
