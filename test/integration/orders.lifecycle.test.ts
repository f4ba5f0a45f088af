import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { processOrders } from '../../src/orders';
import { relayOutbox } from '../../src/jobs/relay';
import { pruneRecords } from '../../src/jobs/reconciler';
import { runUnitOfWork } from '../../src/platform/unit-of-work';
import { createRedis } from '../../src/platform/redis';
import { JOB, QUEUES } from '../../src/jobs/queues';
import { makeCustomer, makeProduct, placeOrder, ledgerOnHand, stockOf, untilStatus } from '../helpers/factories';
import { createHarness, createTestDatabase, useHarness, waitFor } from '../helpers/harness';
import { freePort, startPrivateRedis } from '../helpers/private-redis';

const h = useHarness();

describe('idempotent intake', () => {
  it('when 10 requests share one Idempotency-Key, then one order exists with one reservation and the rest are replays', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const body = { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] };
    const responses = await Promise.all(
      Array.from({ length: 10 }, () =>
        h().api('POST', '/v1/orders', { role: 'intake', body, headers: { 'idempotency-key': 'order-abc-1' } }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(202));
    expect(new Set(responses.map((r) => r.body.id)).size).toBe(1);
    expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(9);
    expect(Number((await h().ctx.db('orders').count({ n: '*' }).where({ customer_id: c.id }).first())?.n)).toBe(1);
    await untilStatus(h(), responses[0].body.id, 'confirmed');
    expect(await stockOf(h(), p.sku)).toMatchObject({ reserved: 1 });
    expect(await h().ctx.db('stock_movements').where({ sku: p.sku, type: 'reservation' })).toHaveLength(1);
  });

  it('when a key is reused with another body, then 422 idempotency_key_reused and nothing new is stored', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const first = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] },
      headers: { 'idempotency-key': 'k2' },
    });
    expect(first.status).toBe(202);
    const reordered = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { lines: [{ quantity: 1, sku: p.sku }], customer_id: c.id },
      headers: { 'idempotency-key': 'k2' },
    });
    expect(reordered.status).toBe(202); // same body in another key order is the same request
    expect(reordered.body).toEqual(first.body);
    // The same order written another way: the customer id in capitals, an explicit null external_ref.
    const spelled = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.id.toUpperCase(), lines: [{ sku: p.sku, quantity: 1 }], external_ref: null },
      headers: { 'idempotency-key': 'k2' },
    });
    expect(spelled.status).toBe(202);
    expect(spelled.body).toEqual(first.body);
    expect(spelled.headers.get('idempotent-replayed')).toBe('true');
    const other = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 2 }] },
      headers: { 'idempotency-key': 'k2' },
    });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    expect(await h().ctx.db('orders').where({ customer_id: c.id })).toHaveLength(1);
  });
});

describe('idempotency key retention', () => {
  it('when old records are pruned, then keys younger than 24 h are kept and replay, and only keys past 48 h are dropped', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const body = { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] };
    const young = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body,
      headers: { 'idempotency-key': 'keep-me' },
    });
    const old = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body,
      headers: { 'idempotency-key': 'drop-me' },
    });
    await h()
      .ctx.db('idempotency_keys')
      .where({ key: 'keep-me' })
      .update({ created_at: h().ctx.db.raw("now() - interval '30 hours'") });
    await h()
      .ctx.db('idempotency_keys')
      .where({ key: 'drop-me' })
      .update({ created_at: h().ctx.db.raw("now() - interval '49 hours'") });
    expect((await pruneRecords(h().ctx)).keys).toBe(1);
    const replay = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body,
      headers: { 'idempotency-key': 'keep-me' },
    });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body.id).toBe(young.body.id);
    const fresh = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body,
      headers: { 'idempotency-key': 'drop-me' },
    });
    expect(fresh.status).toBe(202);
    expect(fresh.body.id).not.toBe(old.body.id);
  });
});

describe('status machine and stock effects', () => {
  it('when a confirmed order is fulfilled, then a sale lowers on_hand and reserved and it is completed', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 3 }]);
    await untilStatus(h(), o.id, 'confirmed');
    const intakeTry = await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'intake' });
    expect(intakeTry.status).toBe(403);
    const res = await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('completed');
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 2, reserved: 0 });
    expect(await ledgerOnHand(h(), p.sku)).toBe(2);
    const again = await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('invalid_state');
    const cancel = await h().api('POST', `/v1/orders/${o.id}/cancel`, { role: 'intake' });
    expect(cancel.body.error.code).toBe('invalid_state');
    expect(res.body.history.map((x: any) => x.status)).toEqual(['received', 'confirmed', 'completed']);
  });

  it('when a confirmed order is cancelled (DELETE too), then its stock is released and the history says so', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const a = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    const b = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await untilStatus(h(), a.id, 'confirmed');
    await untilStatus(h(), b.id, 'confirmed');
    const r1 = await h().api('POST', `/v1/orders/${a.id}/cancel`, {
      role: 'intake',
      body: { reason: 'customer changed mind' },
    });
    expect(r1.status).toBe(200);
    expect(r1.body).toMatchObject({ status: 'cancelled', status_reason: 'customer changed mind' });
    const r2 = await h().api('DELETE', `/v1/orders/${b.id}`, { role: 'intake' });
    expect(r2.body.status).toBe('cancelled');
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 5, reserved: 0 });
    const releases = await h().ctx.db('stock_movements').where({ sku: p.sku, type: 'release' }).orderBy('id');
    expect(releases.map((m) => m.quantity)).toEqual([-2, -1]);
  });

  it('when a confirmed order is edited, then everything is released in one step and it is processed again with its seq', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const q = await makeProduct(h(), 5, { price_cents: 300 });
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 4 }]);
    await untilStatus(h(), o.id, 'confirmed');
    const res = await h().api('PATCH', `/v1/orders/${o.id}`, {
      role: 'intake',
      body: { lines: [{ sku: q.sku, quantity: 2 }] },
    });
    expect(res.status).toBe(202);
    expect(res.body.seq).toBe(o.seq);
    const after = await untilStatus(h(), o.id, 'confirmed');
    expect(after.lines).toEqual([
      expect.objectContaining({ sku: q.sku, quantity: 2, reserved: 2, unit_price_cents: 300 }),
    ]);
    expect(after.total_cents).toBe(600);
    expect(await stockOf(h(), p.sku)).toMatchObject({ reserved: 0 });
    expect(await stockOf(h(), q.sku)).toMatchObject({ reserved: 2 });
    expect(after.history.map((x: any) => x.status)).toEqual(['received', 'confirmed', 'received', 'confirmed']);
    const done = await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
    const edit = await h().api('PATCH', `/v1/orders/${o.id}`, {
      role: 'intake',
      body: { on_insufficient_stock: 'reject' },
    });
    expect(done.status).toBe(200);
    expect(edit.status).toBe(409);
    expect(edit.body.error.code).toBe('invalid_state');
  });

  it('when the customer or a SKU is unknown, then the order is rejected with the reason', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const ghost = await placeOrder(h(), '01900000-0000-7000-8000-000000000000', [{ sku: p.sku, quantity: 1 }]);
    const badSku = await placeOrder(h(), c.id, [
      { sku: p.sku, quantity: 1 },
      { sku: 'NO-SUCH-SKU', quantity: 1 },
    ]);
    expect((await untilStatus(h(), ghost.id, 'rejected')).status_reason).toBe('unknown customer');
    expect((await untilStatus(h(), badSku.id, 'rejected')).status_reason).toBe('unknown SKU NO-SUCH-SKU');
    expect(await stockOf(h(), p.sku)).toMatchObject({ reserved: 0 });
    // Rejected is not failed (change 16): the job completed, its result names the rejection, and no
    // failed job shows in BullMQ, the queues report or the metrics gauge.
    const job = await waitFor(async () => {
      const j = await h().ctx.queues.orders.getJob(ghost.id);
      return j && (await j.getState()) === 'completed' && j;
    });
    expect(job.returnvalue).toMatchObject({ status: 'rejected', rejected: 'unknown customer' });
    expect(await h().ctx.queues.orders.getJobCountByTypes('failed')).toBe(0);
    const queues = await h().api('GET', '/v1/reports/queues');
    expect(queues.body.data.find((q: { name: string }) => q.name === 'orders')).toMatchObject({ failed: 0 });
    const metrics = await h().api('GET', '/metrics');
    expect(metrics.text).toMatch(/orderflow_queue_jobs\{queue="orders",state="failed"\} 0/);
  });

  it('when an operator blocks a customer, then its new orders are rejected as blocked; unblocked, they go through again', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const block = await h().api('PATCH', `/v1/customers/${c.id}`, { role: 'operator', body: { blocked: true } });
    expect(block.status).toBe(200);
    expect(block.body.blocked).toBe(true);
    const refused = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    expect((await untilStatus(h(), refused.id, 'rejected')).status_reason).toBe('customer is blocked');
    const unblock = await h().api('PATCH', `/v1/customers/${c.id}`, { role: 'operator', body: { blocked: false } });
    expect(unblock.body.blocked).toBe(false);
    expect((await h().api('GET', `/v1/customers/${c.id}`, { role: 'intake' })).body.blocked).toBe(false);
    const ok = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await untilStatus(h(), ok.id, 'confirmed');
    expect(await stockOf(h(), p.sku)).toMatchObject({ reserved: 1 });
  });

  it('when price × quantity passes the largest exact total, then that order is rejected at once (not failed after retries) and the others of its batch go on', async () => {
    const c = await makeCustomer(h());
    const sku = `MAXPRICE-${Date.now()}`;
    const created = await h().api('POST', '/v1/products', {
      role: 'operator',
      body: { sku, name: 'priceless', price_cents: Number.MAX_SAFE_INTEGER, initial_stock: 2000 },
    });
    expect(created.status).toBe(201);
    const huge = await placeOrder(h(), c.id, [{ sku, quantity: 1025 }]);
    const one = await placeOrder(h(), c.id, [{ sku, quantity: 1 }]);
    await h().startWorkers();
    const rejected = await untilStatus(h(), huge.id, 'rejected');
    expect(rejected.status_reason).toBe(`order total exceeds ${Number.MAX_SAFE_INTEGER} cents`);
    expect(rejected.attempts).toBeLessThanOrEqual(1);
    const confirmed = await untilStatus(h(), one.id, 'confirmed');
    expect(confirmed.total_cents).toBe(Number.MAX_SAFE_INTEGER);
    expect(await stockOf(h(), sku)).toMatchObject({ on_hand: 2000, reserved: 1 });
  });
});

describe('a job published while the job of the same id is running', () => {
  it("when an edit commits while its order's job still runs, then its outbox row stays unpublished and the relay adds the job once that run has ended", async () => {
    // The race the chaos run found: the edit waited for the order's row lock while the job processed
    // the order, committed `received` after it, and its publish met the still-active job and did
    // nothing, so the edited order sat in `received` until the reconciler (30–70 s). A running job
    // may be past the point where it read the order, so its publish must wait for that run to end.
    const q = h().ctx.queues.orders;
    const jobId = randomUUID();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const runs: string[] = [];
    const connection = createRedis(h().config, 'worker');
    const worker = new Worker(
      q.name,
      async (job) => {
        runs.push(String(job.id));
        if (runs.length === 1) await gate;
      },
      { connection, prefix: h().config.QUEUE_PREFIX },
    );
    try {
      await q.add(JOB.processOrder, { orderId: jobId }, { jobId });
      await waitFor(async () => runs.length === 1, { what: 'the first run active' });
      // A unit of work asks for the job; the publish after its commit meets the running job and leaves the row.
      await runUnitOfWork(h().ctx, 'test', (uow) =>
        uow.addJobs([
          {
            queue: QUEUES.orders,
            job_name: JOB.processOrder,
            job_id: jobId,
            data: { orderId: jobId },
            replace_finished: true,
          },
        ]),
      );
      const rows = await h().ctx.db('outbox').where({ job_id: jobId }).select('id');
      expect(rows).toHaveLength(1);
      await h().ctx.published.flush();
      expect((await h().ctx.db('outbox').where({ id: rows[0].id }).first()).published_at).toBeNull();
      expect(await relayOutbox(h().ctx, { olderThanMs: 0 })).toBe(0); // still running: still not published

      release();
      await waitFor(async () => (await q.getJobState(jobId)) === 'completed', { what: 'the first run completed' });
      expect(await relayOutbox(h().ctx, { olderThanMs: 0 })).toBe(1);
      expect((await h().ctx.db('outbox').where({ id: rows[0].id }).first()).published_at).not.toBeNull();
      await waitFor(async () => runs.length === 2, { what: 'the job run again' });
      expect(runs).toEqual([jobId, jobId]);
    } finally {
      release();
      await worker.close();
      await connection.quit();
    }
  });
});

describe('exactly-once effect', () => {
  it('when the same order is processed twice, concurrently and again later, then it reserves once and writes one event per transition', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    const results = await Promise.all([
      processOrders(h().ctx, [o.id]),
      processOrders(h().ctx, [o.id]),
      processOrders(h().ctx, [o.id]),
    ]);
    expect(results.filter((r) => r.get(o.id)?.processed)).toHaveLength(1);
    await processOrders(h().ctx, [o.id]);
    expect(await stockOf(h(), p.sku)).toMatchObject({ reserved: 2 });
    expect(await h().ctx.db('stock_movements').where({ order_id: o.id, type: 'reservation' })).toHaveLength(1);
    const events = await h().ctx.db('events').where({ order_id: o.id });
    expect(events.map((e) => e.type)).toEqual(['order.confirmed']);
    expect(events[0].payload).toMatchObject({
      id: events[0].id,
      type: 'order.confirmed',
      data: { order: { id: o.id, status: 'confirmed' } },
    });
  });
});

describe('failures and operator retry', () => {
  it('when processing keeps failing, then after the last attempt the order is failed with its reason; retry processes it again and a failed order can be cancelled', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const dbName = h().env.DATABASE_URL.split('/').pop();
    // Every new connection gives up on a lock after 300 ms; then the stock row is held from outside.
    await h().ctx.db.raw(`ALTER DATABASE ${dbName} SET lock_timeout = '300ms'`);
    const hh = await createHarness(h().env.DATABASE_URL, {
      env: { ...h().env, ORDER_ATTEMPTS: '2', ORDER_BACKOFF_MS: '50' },
    });
    const blocker = await hh.ctx.db.transaction();
    try {
      await blocker.raw('SELECT * FROM stock WHERE sku = ? FOR UPDATE', [p.sku]);
      await hh.startWorkers(['orders']);
      const o = await placeOrder(hh, c.id, [{ sku: p.sku, quantity: 1 }]);
      const dropped = await placeOrder(hh, c.id, [{ sku: p.sku, quantity: 1 }]);
      const failed = await untilStatus(hh, o.id, 'failed');
      expect(failed.status_reason).toMatch(/^failed after 2 attempts: canceling statement due to lock timeout/);
      expect(failed.attempts).toBe(2);
      await untilStatus(hh, dropped.id, 'failed');
      await blocker.rollback();
      // failed → cancelled is allowed too; it held nothing, so nothing moves.
      const cancelled = await hh.api('POST', `/v1/orders/${dropped.id}/cancel`, {
        role: 'intake',
        body: { reason: 'gave up' },
      });
      expect(cancelled.status, cancelled.text).toBe(200);
      expect(cancelled.body).toMatchObject({ status: 'cancelled', status_reason: 'gave up' });
      expect(await hh.ctx.db('stock_movements').where({ order_id: dropped.id })).toEqual([]);
      const retried = await hh.api('POST', `/v1/orders/${o.id}/retry`, { role: 'operator' });
      expect(retried.status).toBe(202);
      const ok = await untilStatus(hh, o.id, 'confirmed');
      expect(ok.history.map((x: any) => x.status)).toEqual(['received', 'failed', 'received', 'confirmed']);
      expect(await stockOf(hh, p.sku)).toMatchObject({ reserved: 1 });
      const notOperator = await hh.api('POST', `/v1/orders/${o.id}/retry`, { role: 'intake' });
      expect(notOperator.status).toBe(403);
    } finally {
      if (!blocker.isCompleted()) await blocker.rollback();
      await h().ctx.db.raw(`ALTER DATABASE ${dbName} RESET lock_timeout`);
      await hh.close();
    }
  });
});

describe('intake group commit', () => {
  it('when one order of a group fails to insert, then it alone gets an error; the rest of its group is stored and answered 202', async () => {
    // A trigger that refuses one order stands in for any per-order failure of the group statement.
    await h().ctx.db.raw(`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.external_ref = 'poison' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$`);
    await h().ctx.db.raw(
      'CREATE TRIGGER refuse_poison BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_poison()',
    );
    const blocker = await h().ctx.db.transaction();
    try {
      const c = await makeCustomer(h());
      const p = await makeProduct(h(), 100);
      const body = (ref: string) => ({ customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }], external_ref: ref });
      // Hold the first insert on a table lock, so the next 30 requests queue up and go in as ONE group.
      await blocker.raw('LOCK TABLE outbox IN EXCLUSIVE MODE');
      const first = h().api('POST', '/v1/orders', { role: 'intake', body: body('first') });
      await waitFor(
        async () =>
          (await h().ctx.db.raw(`SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'outbox'::regclass`)).rows
            .length > 0,
        { what: 'first insert waiting' },
      );
      const refs = Array.from({ length: 30 }, (_, i) => (i === 17 ? 'poison' : `ok-${i}`));
      const rest = refs.map((ref) => h().api('POST', '/v1/orders', { role: 'intake', body: body(ref) }));
      await new Promise((r) => setTimeout(r, 300)); // all 30 parsed and waiting in the batcher
      await blocker.commit();
      expect((await first).status).toBe(202);
      const answers = await Promise.all(rest);
      expect(answers.map((a, i) => [refs[i], a.status]).filter(([, st]) => st !== 202)).toEqual([['poison', 500]]);
      const stored = await h().ctx.db('orders').where({ customer_id: c.id }).pluck('external_ref');
      expect(stored.sort()).toEqual(['first', ...refs.filter((r) => r !== 'poison')].sort());
      const ids = answers.filter((a) => a.status === 202).map((a) => a.body.id);
      expect(Number((await h().ctx.db('outbox').whereIn('job_id', ids).count({ n: '*' }).first())?.n)).toBe(29);
    } finally {
      if (!blocker.isCompleted()) await blocker.rollback();
      await h().ctx.db.raw('DROP TRIGGER IF EXISTS refuse_poison ON orders');
      await h().ctx.db.raw('DROP FUNCTION IF EXISTS refuse_poison()');
    }
  });
});

describe('Redis is transport, PostgreSQL the record', () => {
  it('when Redis is unreachable at intake, then orders are still accepted and the relay publishes them once Redis is back', async () => {
    const dead = await freePort();
    const intake = await createHarness(h().env.DATABASE_URL, {
      env: { ...h().env, REDIS_URL: `redis://127.0.0.1:${dead}`, REDIS_CLUSTER_NODES: '' },
    });
    try {
      const c = await makeCustomer(intake);
      const p = await makeProduct(intake, 5);
      const o = await placeOrder(intake, c.id, [{ sku: p.sku, quantity: 1 }]);
      const outbox = await h().ctx.db('outbox').where({ job_id: o.id }).first();
      expect(outbox.published_at).toBeNull();
      await h().startWorkers(); // same database and prefix, a Redis that answers
      await untilStatus(h(), o.id, 'confirmed');
    } finally {
      await intake.close();
    }
  });

  it('when the API is shut down right after its last 202, then every job it was still adding is in the queue and every outbox row is marked', async () => {
    // Intake answers at the commit and adds the jobs in the background; closing the context
    // (what SIGTERM does after the HTTP server drained) must wait for those publishes and mark them.
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 500);
    const orders = await Promise.all(
      Array.from({ length: 60 }, () => placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }])),
    );
    await h().ctx.published.close();
    const ids = orders.map((o) => o.id);
    const states = await Promise.all(ids.map((id) => h().ctx.queues.orders.getJobState(id)));
    expect(states.filter((s) => s !== 'waiting')).toEqual([]);
    expect(await h().ctx.db('outbox').whereIn('job_id', ids).whereNull('published_at').count({ n: '*' })).toEqual([
      { n: 0 },
    ]);
  });

  it('when Redis loses all its data after orders were accepted, then every one of them still settles', async () => {
    const redis = await startPrivateRedis();
    const db = await createTestDatabase();
    const hh = await createHarness(db.url, { env: { REDIS_URL: redis.url } });
    try {
      const c = await makeCustomer(hh);
      const p = await makeProduct(hh, 30);
      const orders = await Promise.all(
        Array.from({ length: 60 }, () => placeOrder(hh, c.id, [{ sku: p.sku, quantity: 1 }])),
      );
      const r = new Redis(redis.url);
      expect(await r.dbsize()).toBeGreaterThan(0);
      await r.flushall();
      r.disconnect();
      await hh.startWorkers();
      await waitFor(
        async () =>
          Number(
            (
              await hh.ctx
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
        { timeout: 60000, what: 'all settled after FLUSHALL' },
      );
      const s = await stockOf(hh, p.sku);
      expect(s).toMatchObject({ reserved: 30, backordered: 30 });
      // Then Redis restarts empty mid-run: still nothing lost.
      const more = await Promise.all(
        Array.from({ length: 20 }, () => placeOrder(hh, c.id, [{ sku: p.sku, quantity: 1 }])),
      );
      await redis.restart();
      await waitFor(
        async () =>
          Number(
            (
              await hh.ctx
                .db('orders')
                .whereIn(
                  'id',
                  more.map((o) => o.id),
                )
                .where('status', 'received')
                .count({ n: '*' })
                .first()
            )?.n,
          ) === 0,
        { timeout: 60000, what: 'all settled after a Redis restart' },
      );
    } finally {
      await hh.close().catch(() => undefined);
      await redis.stop();
      await db.drop();
    }
  });

  it('when PostgreSQL is unreachable, then intake answers 503 with Retry-After and stores nothing', async () => {
    const dead = await freePort();
    const down = await createHarness(`postgres://postgres@127.0.0.1:${dead}/nowhere`, {
      env: { ...h().env, DATABASE_URL: `postgres://postgres@127.0.0.1:${dead}/nowhere` },
    });
    try {
      const res = await down.api('POST', '/v1/orders', {
        role: 'intake',
        body: { customer_id: '01900000-0000-7000-8000-000000000000', lines: [{ sku: 'A', quantity: 1 }] },
      });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('unavailable');
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      const ready = await down.api('GET', '/readyz', { role: null });
      expect(ready.status).toBe(503);
      expect(ready.text).toMatch(/postgresql/);
    } finally {
      await down.close();
    }
  });
});
