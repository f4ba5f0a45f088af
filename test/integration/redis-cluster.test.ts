import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Cluster } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { deleteKeysWithPrefix, redisKey } from '../../src/platform/redis';
import { makeCustomer, makeProduct, placeOrder, stockOf, untilStatus } from '../helpers/factories';
import { createHarness, createTestDatabase, KEYS, keysUnder, ROOT, waitFor, type Harness } from '../helpers/harness';
import { freePort } from '../helpers/private-redis';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster';

/**
 * The cluster subset that every `npm test` runs: a private 3-master Redis Cluster of this file's own,
 * an API process and worker processes on it (REDIS_CLUSTER_NODES, QUEUE_PREFIX with a hash tag).
 * `npm run test:cluster` runs the whole suite on a cluster; this file proves the same in one minute.
 */
describe('on a 3-master Redis Cluster', () => {
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const verifier = new Webhook(secret);
  const deliveries: { id: string; body: any }[] = [];
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      try {
        deliveries.push({ id: String(req.headers['webhook-id']), body: verifier.verify(body, req.headers as any) });
        res.writeHead(200).end('ok');
      } catch {
        res.writeHead(400).end('bad signature');
      }
    });
  });
  let cluster: RedisClusterHandle;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let h: Harness;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    db = await createTestDatabase();
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    h = await createHarness(db.url, {
      env: {
        REDIS_CLUSTER_NODES: cluster.nodes,
        QUEUE_PREFIX: `{oft_${inject('runId')}_${process.pid}_cluster}`,
        WEBHOOK_SECRET: secret,
        NOTIFY_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`,
      },
    });
  });
  afterAll(async () => {
    await h?.close().catch(() => undefined);
    receiver.closeAllConnections();
    await new Promise((r) => receiver.close(r));
    await cluster?.stop();
    await db?.drop();
  });

  it('when an order goes through an API process and a worker process, then it is confirmed, its webhook is delivered signed, and every key sits in one slot', async () => {
    expect(h.ctx.redis).toBeInstanceOf(Cluster);
    const port = await freePort();
    h.spawnWorker({ PORT: String(port) }, 'api');
    const worker = h.spawnWorker();
    const base = `http://127.0.0.1:${port}`;
    const ready = await waitFor(
      async () => {
        const r = await fetch(`${base}/readyz`);
        return r.ok && ((await r.json()) as any);
      },
      { what: 'the API process ready on the cluster', timeout: 45_000 },
    );
    expect(ready.checks).toEqual({ postgresql: 'ok', redis: 'ok' });

    const customer = await makeCustomer(h);
    const product = await makeProduct(h, 5);
    const res = await fetch(`${base}/v1/orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.intake}`, 'content-type': 'application/json', 'idempotency-key': 'c-1' },
      body: JSON.stringify({ customer_id: customer.id, lines: [{ sku: product.sku, quantity: 2 }] }),
    });
    expect(res.status).toBe(202);
    const order = (await res.json()) as { id: string };
    const confirmed = await untilStatus(h, order.id, 'confirmed', { timeout: 45_000 });
    expect(confirmed.lines[0]).toMatchObject({ sku: product.sku, quantity: 2, reserved: 2 });
    expect(await stockOf(h, product.sku)).toMatchObject({ on_hand: 5, reserved: 2 });

    const delivered = await waitFor(
      async () => deliveries.find((d) => d.body.type === 'order.confirmed' && d.body.data.order.id === order.id),
      { what: 'the order.confirmed webhook', timeout: 30_000 },
    );
    expect(delivered.body.data.order).toMatchObject({ id: order.id, status: 'confirmed' });
    const settled = await waitFor(
      async () =>
        (await h.ctx.db('events').where({ id: delivered.body.id }).whereNotNull('settled_at').first()) as
          { id: string } | undefined,
      { what: 'the event settled' },
    );
    expect(settled.id).toBe(delivered.body.id);

    // BullMQ's keys, the stats hash and the delivery leases hash to one slot, on one master.
    const keys = await keysUnder(h.ctx.redis, h.config.QUEUE_PREFIX);
    expect(keys.some((k) => k.endsWith(':orders:meta'))).toBe(true);
    const redis = h.ctx.redis as Cluster;
    const slotOf = async (k: string) => Number(await redis.call('CLUSTER', 'KEYSLOT', k));
    const slot = await slotOf(`${h.config.QUEUE_PREFIX}:orders:wait`);
    const names = [
      ...keys,
      redisKey(h.config, 'stats'),
      redisKey(h.config, 'notify-lease:x'),
      redisKey(h.config, 'rl:x'),
    ];
    expect(new Set(await Promise.all(names.map(slotOf)))).toEqual(new Set([slot]));
    const holding = [];
    for (const node of redis.nodes('master')) if ((await node.dbsize()) > 0) holding.push(node);
    expect(holding).toHaveLength(1);
    worker.kill('SIGKILL');
    await worker.exited;
  });

  it('when every master loses its data after orders were accepted, then a new worker process still settles each one (the reconciler) and npm run check finds nothing wrong', async () => {
    const customer = await makeCustomer(h);
    const product = await makeProduct(h, 6);
    // No worker is running: the jobs wait in the cluster.
    const orders = await Promise.all(
      Array.from({ length: 10 }, () => placeOrder(h, customer.id, [{ sku: product.sku, quantity: 1 }])),
    );
    await waitFor(async () => (await h.ctx.queues.orders.getJobCounts('waiting')).waiting >= 10, {
      what: '10 jobs waiting',
    });
    const redis = h.ctx.redis as Cluster;
    for (const node of redis.nodes('master')) await node.flushall();
    expect(await h.ctx.queues.orders.getJobCounts('waiting')).toEqual({ waiting: 0 });

    h.spawnWorker();
    await waitFor(
      async () =>
        Number(
          (
            await h.ctx
              .db('orders')
              .whereIn(
                'id',
                orders.map((o) => o.id),
              )
              .where('status', 'received')
              .count({ n: '*' })
              .first()
          )?.n,
        ) === 0,
      { timeout: 60_000, what: 'all settled after FLUSHALL on every master' },
    );
    expect(await stockOf(h, product.sku)).toMatchObject({ on_hand: 6, reserved: 6, backordered: 4 });
    // npm run check reads the orders queue on the cluster too.
    const check = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/check-invariants.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...h.env, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
    });
    expect(check.stdout).not.toMatch(/unreachable/);
    expect(check.stdout).toContain('all invariants hold');
    expect(check.status).toBe(0);
  });

  it('when QUEUE_PREFIX has no hash tag, then a worker process on the cluster refuses to start with one line naming QUEUE_PREFIX', async () => {
    const w = h.spawnWorker({ QUEUE_PREFIX: 'orderflow' });
    expect(await w.exited).toBe(1);
    expect(w.output().trim()).toMatch(/^invalid configuration: QUEUE_PREFIX: must contain a Redis Cluster hash tag/);
    expect(w.output().trim().split('\n')).toHaveLength(1);
  });

  it('when a prefix without a hash tag has keys on every master, then deleteKeysWithPrefix removes them all (and nothing else)', async () => {
    const redis = h.ctx.redis as Cluster;
    const prefix = `oft_${inject('runId')}_${process.pid}_spread`;
    const names = Array.from({ length: 30 }, (_, i) => `${prefix}:k${i}`);
    for (const k of names) await redis.set(k, '1');
    await redis.set(`${prefix}-other`, 'kept');
    const perMaster = await Promise.all(redis.nodes('master').map((n) => keysUnder(n, prefix)));
    expect(perMaster.every((keys) => keys.length > 0)).toBe(true);
    await deleteKeysWithPrefix(h.config, prefix);
    expect(await keysUnder(redis, prefix)).toEqual([]);
    expect(await redis.get(`${prefix}-other`)).toBe('kept');
    await redis.del(`${prefix}-other`);
  });

  // Last: it stops the cluster.
  it('when the whole cluster is gone, then /readyz names Redis and intake still accepts orders (the outbox keeps them)', async () => {
    const customer = await makeCustomer(h);
    const product = await makeProduct(h, 1);
    await cluster.stop();
    const ready = await waitFor(
      async () => {
        const r = await h.api('GET', '/readyz', { role: null });
        return r.status === 503 && r;
      },
      { what: '/readyz 503', timeout: 15_000 },
    );
    expect(ready.body.checks).toEqual({ postgresql: 'ok', redis: 'down' });
    const order = await placeOrder(h, customer.id, [{ sku: product.sku, quantity: 1 }]);
    expect(order.status).toBe('received');
    const rows = await h.ctx.db('outbox').where({ job_id: order.id }).select('published_at');
    expect(rows).toEqual([{ published_at: null }]);
  });
});
