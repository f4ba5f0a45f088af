import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { failedOrders, makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { createHarness, createTestDatabase, waitFor, type Harness } from '../helpers/harness';

const bulkRetries = (h: Harness, bulkId: string) =>
  h.ctx
    .db('order_history')
    .where({ status: 'received', detail: `retried by bulk action ${bulkId}` })
    .select('order_id');

describe('bulk actions', () => {
  it('when failed orders are retried in bulk, then the dry run counts them, the run acts on the set matched at creation, and an order that moved on meanwhile is skipped', async () => {
    const db = await createTestDatabase();
    const h = await createHarness(db.url);
    try {
      const { ids, sku, customer } = await failedOrders(h, 6, 10);
      const fine = await placeOrder(h, customer, [{ sku, quantity: 1 }]);
      const dry = await h.api('POST', '/v1/bulk-actions', {
        body: { action: 'retry_orders', filter: { sku, reason: 'SIMULATED OUTAGE' }, dry_run: true },
      });
      expect(dry.status, dry.text).toBe(200);
      expect(dry.body.matched).toBe(6);
      expect([...dry.body.sample].sort()).toEqual([...ids].sort());
      // Dates bound the creation time as GET /v1/orders takes them: a day, created_to the whole day.
      const first = await h.ctx.db('orders').whereIn('id', ids).min({ t: 'created_at' }).first();
      const day = new Date(first!.t).toISOString().slice(0, 10);
      const dayBefore = new Date(Date.parse(`${day}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
      for (const [filter, matched] of [
        [{ sku, created_from: day, created_to: day }, 6],
        [{ sku, created_to: dayBefore }, 0],
      ] as const) {
        const r = await h.api('POST', '/v1/bulk-actions', { body: { action: 'retry_orders', filter, dry_run: true } });
        expect(r.status, r.text).toBe(200);
        expect(r.body.matched, JSON.stringify(filter)).toBe(matched);
      }
      // Nothing runs yet (no worker): the action is created on the six, then one is retried by hand.
      const started = await h.api('POST', '/v1/bulk-actions', {
        body: { action: 'retry_orders', filter: { sku }, reason: 'after the outage' },
      });
      expect(started.status, started.text).toBe(202);
      expect(started.headers.get('location')).toBe(`/v1/bulk-actions/${started.body.id}`);
      expect(started.body).toMatchObject({ action: 'retry_orders', matched: 6, done: 0, status: 'running' });
      expect((await h.api('POST', `/v1/orders/${ids[0]}/retry`)).status).toBe(202);
      await h.startWorkers();
      const done = await waitFor(
        async () => {
          const r = await h.api('GET', `/v1/bulk-actions/${started.body.id}`, { role: 'viewer' });
          return r.body.status === 'completed' && r.body;
        },
        { what: 'the bulk action completed' },
      );
      expect(done).toMatchObject({ matched: 6, done: 5, skipped: 1, failed: 0 });
      for (const id of [...ids, fine.id]) await untilStatus(h, id, 'confirmed');
      expect((await bulkRetries(h, started.body.id)).map((r) => r.order_id).sort()).toEqual(ids.slice(1).sort());

      expect(
        (await h.api('POST', '/v1/bulk-actions', { body: { action: 'cancel_orders', filter: { ids: [fine.id] } } }))
          .body,
      ).toMatchObject({ matched: 1 });
      await untilStatus(h, fine.id, 'cancelled');
      for (const bad of [
        { action: 'retry_orders', filter: { colour: 'red' } },
        { action: 'explode' },
        { action: 'resend_deliveries', filter: {} },
        { action: 'retry_orders', filter: {}, dry_run: 'yes' },
        { action: 'retry_orders', filter: { created_from: '2026-02-30' } },
        // An event type that does not exist is 400, as in /v1/events and webhook-endpoints.
        { action: 'resend_deliveries', filter: { status: 'failed', type: 'order.bogus' } },
      ])
        expect((await h.api('POST', '/v1/bulk-actions', { body: bad })).status, JSON.stringify(bad)).toBe(400);
      // No filter is not "every order": 400 naming it, for a run and a dry run alike, and nothing is stored.
      const before = await h.ctx.db('bulk_actions').count({ n: '*' }).first();
      for (const body of [{ action: 'cancel_orders' }, { action: 'retry_orders', dry_run: true }]) {
        const r = await h.api('POST', '/v1/bulk-actions', { body });
        expect(r.status, r.text).toBe(400);
        expect(r.body.error.details).toEqual([expect.objectContaining({ path: 'body.filter' })]);
      }
      expect(await h.ctx.db('bulk_actions').count({ n: '*' }).first()).toEqual(before);
      expect((await h.api('GET', `/v1/orders/${fine.id}`)).body.status).toBe('cancelled');
      expect(
        (await h.api('POST', '/v1/bulk-actions', { role: 'viewer', body: { action: 'retry_orders', filter: {} } }))
          .status,
      ).toBe(403);
      expect((await h.api('GET', `/v1/bulk-actions/0190d6c1-0000-7000-8000-00000000dead`)).status).toBe(404);
    } finally {
      await h.close();
      await db.drop();
    }
  }, 120_000);

  it('when failed orders are cancelled, one by hand and one in bulk, then their failed jobs leave the failed count (the order queue shows only the one still failed), and a board retry of that one names the operator', async () => {
    const db = await createTestDatabase();
    const h = await createHarness(db.url, { env: { ORDER_ATTEMPTS: '1' } });
    try {
      // Three orders whose single attempt fails (a trigger refuses their reservations), their jobs
      // left failed in this harness's own queues.
      const c = await makeCustomer(h);
      const p = await makeProduct(h, 10);
      await h.ctx.db.raw(`CREATE OR REPLACE FUNCTION refuse_reservations() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'simulated outage'; END $$`);
      await h.ctx.db.raw(`CREATE TRIGGER refuse_reservations BEFORE INSERT ON stock_movements
        FOR EACH ROW WHEN (NEW.type = 'reservation') EXECUTE FUNCTION refuse_reservations()`);
      await h.startWorkers();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await placeOrder(h, c.id, [{ sku: p.sku, quantity: 1 }])).id);
      const orders = h.ctx.queues.orders;
      await waitFor(async () => (await orders.getJobCounts('failed')).failed === 3, { what: 'three failed jobs' });
      await h.ctx.db.raw('DROP TRIGGER refuse_reservations ON stock_movements');
      for (const id of ids) expect((await h.api('GET', `/v1/orders/${id}`)).body.status).toBe('failed');
      expect((await h.api('POST', `/v1/orders/${ids[0]}/cancel`, { body: { reason: 'gave up' } })).status).toBe(200);
      const bulk = await h.api('POST', '/v1/bulk-actions', {
        body: { action: 'cancel_orders', filter: { ids: [ids[1]] } },
      });
      expect(bulk.status, bulk.text).toBe(202);
      await h.startWorkers();
      await untilStatus(h, ids[1], 'cancelled');
      await waitFor(
        async () =>
          (await orders.getJobState(ids[0])) === 'completed' && (await orders.getJobState(ids[1])) === 'completed',
        { what: "the cancelled orders' jobs completed" },
      );
      expect(await orders.getJobState(ids[2])).toBe('failed');
      expect((await orders.getJobCounts('failed')).failed).toBe(1);
      const report = await h.api('GET', '/v1/reports/queues', { role: 'viewer' });
      expect(report.body.data.find((q: { name: string }) => q.name === 'orders')).toMatchObject({ failed: 1 });
      for (const id of ids.slice(0, 2)) expect((await h.api('GET', `/v1/orders/${id}`)).body.status).toBe('cancelled');
      // The one left, retried with the board's "retry all": its history names the operator who asked.
      const all = await h.api('PUT', '/admin/queues/api/queues/orders/retry/failed');
      expect(all.status, all.text).toBe(200);
      expect(all.body).toMatchObject({ retried: 1 });
      const back = await untilStatus(h, ids[2], 'confirmed');
      expect(back.history.find((e: { detail: string }) => e.detail === 'retried from the board')).toMatchObject({
        status: 'received',
        actor: { role: 'operator', name: 'operator' },
      });
    } finally {
      await h.close();
      await db.drop();
    }
  }, 120_000);

  it('when bulk actions are listed, then they come newest first, page by keyset with limit and cursor, to operators and viewers only, and a bad query is 400', async () => {
    const db = await createTestDatabase();
    const h = await createHarness(db.url);
    try {
      const nothing = { ids: ['0190d6c1-0000-7000-8000-00000000dead'] };
      // 52 actions (none matches anything): more than the default page of 50. Each answers running, as
      // every bulk action does, and no worker runs here to complete them.
      const made: string[] = [];
      for (let i = 0; i < 52; i++) {
        const r = await h.api('POST', '/v1/bulk-actions', {
          body: { action: i % 2 ? 'cancel_orders' : 'retry_orders', filter: nothing, reason: `run ${i}` },
        });
        expect(r.status, r.text).toBe(202);
        made.push(r.body.id);
      }
      const newestFirst = [...made].reverse();

      const first = await h.api('GET', '/v1/bulk-actions', { role: 'viewer' });
      expect(first.status, first.text).toBe(200);
      expect(first.body.data).toHaveLength(50);
      expect(first.body.data.map((b: { id: string }) => b.id)).toEqual(newestFirst.slice(0, 50));
      expect(first.body.data[0]).toEqual({
        id: made[51],
        action: 'cancel_orders',
        filter: nothing,
        reason: 'run 51',
        matched: 0,
        done: 0,
        skipped: 0,
        failed: 0,
        status: 'running',
        actor: { role: 'operator', name: 'operator' },
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        completed_at: null,
      });
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const rest = await h.api('GET', `/v1/bulk-actions?cursor=${first.body.next_cursor}`);
      expect(rest.body.data.map((b: { id: string }) => b.id)).toEqual(newestFirst.slice(50));
      expect(rest.body.next_cursor).toBeNull();

      // Pages of 5, followed to the end, are the whole list once, in order.
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const url: string = `/v1/bulk-actions?limit=5${cursor ? `&cursor=${cursor}` : ''}`;
        const r = await h.api('GET', url);
        expect(r.status, r.text).toBe(200);
        expect(r.body.data.length).toBeLessThanOrEqual(5);
        seen.push(...r.body.data.map((b: { id: string }) => b.id));
        cursor = r.body.next_cursor;
      } while (cursor);
      expect(seen).toEqual(newestFirst);
      expect((await h.api('GET', '/v1/bulk-actions?limit=200')).body.data).toHaveLength(52);

      // One started later is first: the list is the one to come back to.
      const later = await h.api('POST', '/v1/bulk-actions', { body: { action: 'retry_orders', filter: nothing } });
      expect((await h.api('GET', '/v1/bulk-actions?limit=1')).body.data[0].id).toBe(later.body.id);

      expect((await h.api('GET', '/v1/bulk-actions', { role: null })).status).toBe(401);
      for (const role of ['intake', 'feed'] as const)
        expect((await h.api('GET', '/v1/bulk-actions', { role })).status, role).toBe(403);
      for (const bad of ['bogus=1', 'limit=0', 'limit=201', 'limit=ten', 'cursor=not-a-cursor', 'status=running']) {
        const r = await h.api('GET', `/v1/bulk-actions?${bad}`);
        expect(r.status, bad).toBe(400);
        expect(r.body.error.code, bad).toBe('validation_failed');
      }
      // Once a worker runs, each of them completes with nothing done.
      await h.startWorkers();
      const last = await waitFor(
        async () => {
          const r = await h.api('GET', `/v1/bulk-actions/${made[51]}`);
          return r.body.status === 'completed' && r.body;
        },
        { what: 'the empty action completed' },
      );
      expect(last).toMatchObject({ matched: 0, done: 0, skipped: 0, failed: 0, completed_at: expect.any(String) });
    } finally {
      await h.close();
      await db.drop();
    }
  }, 120_000);

  it('when deliveries to a webhook endpoint failed while it was down, then a bulk resend of its failed deliveries delivers each once it is back', async () => {
    let up = false;
    const got: string[] = [];
    const rx = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (up) got.push(JSON.parse(body).id);
        res.statusCode = up ? 204 : 500;
        res.end();
      });
    });
    await new Promise<void>((r) => rx.listen(0, '127.0.0.1', r));
    const db = await createTestDatabase();
    const h = await createHarness(db.url, { env: { NOTIFY_MAX_ATTEMPTS: '1' } });
    try {
      const endpoint = await h.api('POST', '/v1/webhook-endpoints', {
        body: { url: `http://127.0.0.1:${(rx.address() as AddressInfo).port}/hook`, types: ['order.confirmed'] },
      });
      expect(endpoint.status, endpoint.text).toBe(201);
      await h.startWorkers();
      const c = await makeCustomer(h);
      const p = await makeProduct(h, 10);
      const orders = [];
      for (let i = 0; i < 4; i++) orders.push(await placeOrder(h, c.id, [{ sku: p.sku, quantity: 1 }]));
      const filter = { status: 'failed', endpoint_id: endpoint.body.id };
      await waitFor(
        async () =>
          (await h.api('POST', '/v1/bulk-actions', { body: { action: 'resend_deliveries', filter, dry_run: true } }))
            .body.matched === 4,
        { what: '4 failed deliveries' },
      );
      up = true;
      const bulk = await h.api('POST', '/v1/bulk-actions', { body: { action: 'resend_deliveries', filter } });
      expect(bulk.status, bulk.text).toBe(202);
      const done = await waitFor(async () => {
        const r = await h.api('GET', `/v1/bulk-actions/${bulk.body.id}`);
        return r.body.status === 'completed' && r.body;
      });
      expect(done).toMatchObject({ matched: 4, done: 4, skipped: 0, failed: 0 });
      await waitFor(async () => got.length >= 4, { what: '4 deliveries received' });
      const events = await h.ctx
        .db('events')
        .whereIn(
          'order_id',
          orders.map((o) => o.id),
        )
        .where({ type: 'order.confirmed' })
        .pluck('id');
      expect([...got].sort()).toEqual([...events].sort());
    } finally {
      await h.close();
      await db.drop();
      await new Promise((r) => rx.close(r));
    }
  }, 120_000);

  it('when a bulk retry of 2,000 failed orders loses its worker to SIGKILL mid-way, then another worker finishes it and each order was retried exactly once', async () => {
    const db = await createTestDatabase();
    const h = await createHarness(db.url);
    try {
      const t0 = Date.now();
      const { ids } = await failedOrders(h, 2000, 2000);
      const t1 = Date.now();
      const first = h.spawnWorker();
      const started = await h.api('POST', '/v1/bulk-actions', { body: { action: 'retry_orders', filter: {} } });
      expect(started.body.matched).toBe(2000);
      const progress = async () => (await h.api('GET', `/v1/bulk-actions/${started.body.id}`)).body;
      await waitFor(async () => (await progress()).done >= 300, { what: '300 done', timeout: 120_000 });
      const t2 = Date.now();
      first.kill('SIGKILL');
      await first.exited;
      const killedAt = (await progress()).done;
      expect(killedAt).toBeLessThan(2000);
      h.spawnWorker();
      const done = await waitFor(async () => (await progress()).status === 'completed' && progress(), {
        what: 'the bulk action completed after the kill',
        timeout: 180_000,
      });
      const t3 = Date.now();
      expect(done.done + done.skipped + done.failed).toBe(done.matched);
      expect(done).toMatchObject({ matched: 2000, done: 2000, skipped: 0, failed: 0 });
      const retried = (await bulkRetries(h, started.body.id)).map((r) => r.order_id);
      expect(retried.length, 'one retry per order').toBe(2000);
      expect(new Set(retried)).toEqual(new Set(ids));
      await waitFor(
        async () =>
          Number((await h.ctx.db('orders').where({ status: 'confirmed' }).count({ n: '*' }).first())?.n) === 2000,
        { what: '2000 confirmed', timeout: 120_000 },
      );
      console.log(
        `bulk retry: 2000 failed orders in ${t1 - t0} ms; SIGKILL at ${killedAt}/2000 done after ${t2 - t1} ms; ` +
          `finished by a second worker ${t3 - t2} ms later; all confirmed ${Date.now() - t3} ms after`,
      );
    } finally {
      await h.close();
      await db.drop();
    }
  }, 400_000);
});
