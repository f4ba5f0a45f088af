import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { checkInvariants } from '../../src/invariants';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { createHarness, createTestDatabase, waitFor, type Harness } from '../helpers/harness';

// ---------------------------------------------------------------- a receiver

interface Received {
  webhookId: string;
  timestamp: string;
  signature: string;
  body: string;
  headers: Record<string, string>;
  answered: number;
  at: number;
}

/** A real HTTP receiver on 127.0.0.1; `answer` decides each status (200 by default). */
async function startReceiver(answer: (r: Received) => number = () => 200) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const h = req.headers as IncomingHttpHeaders & Record<string, string>;
      const r: Received = {
        webhookId: h['webhook-id'],
        timestamp: h['webhook-timestamp'],
        signature: h['webhook-signature'],
        body: Buffer.concat(chunks).toString('utf8'),
        headers: {
          'webhook-id': h['webhook-id'],
          'webhook-timestamp': h['webhook-timestamp'],
          'webhook-signature': h['webhook-signature'],
        },
        answered: 0,
        at: Date.now(),
      };
      r.answered = answer(r);
      received.push(r);
      res.writeHead(r.answered, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    /** Deliveries answered 2xx. */
    accepted: () => received.filter((r) => r.answered < 300),
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** True when the `standardwebhooks` package accepts the delivery with this secret. */
function verifies(secret: string, r: Received): boolean {
  try {
    new Webhook(secret).verify(r.body, r.headers);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- a database and harness per test

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
function track<T extends { close(): Promise<unknown> }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}
async function harness(env: Record<string, string> = {}): Promise<Harness> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const h = await createHarness(db.url, { env });
  cleanups.push(() => h.close());
  return h;
}

async function createEndpoint(h: Harness, body: Record<string, unknown>) {
  const r = await h.api('POST', '/v1/webhook-endpoints', { role: 'operator', body });
  expect(r.status, r.text).toBe(201);
  return r.body as { id: string; secret: string; url: string; types: string[]; status: string };
}

/** An order that confirms (its event order.confirmed), from a customer with no webhook of its own. */
async function confirmedOrder(h: Harness) {
  const c = await makeCustomer(h);
  const p = await makeProduct(h, 10);
  const o = await placeOrder(h, c.id, [{ sku: p.sku, quantity: 1 }]);
  await untilStatus(h, o.id, 'confirmed');
  return o;
}

async function eventOf(h: Harness, orderId: string, type: string) {
  return waitFor<{ id: string; type: string; payload: unknown }>(
    () =>
      h.ctx
        .db('events')
        .where({ order_id: orderId, type })
        .first(
          'id',
          'type',
          h.ctx.db
            .raw(`payload::jsonb || jsonb_build_object('subject', jsonb_build_object('type', subject_type, 'id', subject_id),
            'subject_sequence', subject_sequence, 'previous_event_id', previous_event_id) AS payload`),
        ),
    { what: `${type} of ${orderId}` },
  );
}

const settled = (h: Harness) =>
  waitFor(async () => !(await h.ctx.db('events').whereNull('settled_at').first('id')), {
    what: 'every event settled',
    timeout: 20_000,
  });

// ---------------------------------------------------------------- tests

describe('webhook endpoints: the resource', () => {
  it('when an operator creates, reads, lists, changes and deletes an endpoint, then the secret is shown once and every answer has the documented shape', async () => {
    const h = await harness();
    const created = await createEndpoint(h, {
      url: 'https://hooks.example.com/of',
      types: ['order.confirmed', 'order.confirmed', 'order.cancelled'],
      description: 'ERP',
    });
    expect(created).toMatchObject({
      url: 'https://hooks.example.com/of',
      types: ['order.confirmed', 'order.cancelled'],
      description: 'ERP',
      status: 'active',
    });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(created.secret.slice(6), 'base64')).toHaveLength(32);

    const one = await h.api('GET', `/v1/webhook-endpoints/${created.id}`, { role: 'viewer' });
    expect(one.status).toBe(200);
    expect(one.body).not.toHaveProperty('secret');
    expect(one.body).toMatchObject({ id: created.id, status: 'active', disabled_at: null });
    const list = await h.api('GET', '/v1/webhook-endpoints', { role: 'operator' });
    expect(list.body.data.map((e: any) => e.id)).toEqual([created.id]);
    expect(JSON.stringify(list.body)).not.toContain(created.secret);

    const patched = await h.api('PATCH', `/v1/webhook-endpoints/${created.id}`, {
      role: 'operator',
      body: { types: ['*'], status: 'disabled', description: null },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      types: ['*'],
      status: 'disabled',
      disabled_reason: 'operator',
      description: null,
    });
    const active = await h.api('PATCH', `/v1/webhook-endpoints/${created.id}`, {
      role: 'operator',
      body: { status: 'active' },
    });
    expect(active.body).toMatchObject({ status: 'active', disabled_at: null, disabled_reason: null });

    // Refused input: an unknown type, "*" beside others, no types, an unknown field, an empty patch.
    for (const body of [
      { url: 'https://x.example.com', types: ['order.shipped'] },
      { url: 'https://x.example.com', types: ['*', 'order.confirmed'] },
      { url: 'https://x.example.com', types: [] },
      { url: 'ftp://x.example.com', types: ['*'] },
      { url: 'https://x.example.com', types: ['*'], secret: 'mine' },
    ]) {
      const r = await h.api('POST', '/v1/webhook-endpoints', { role: 'operator', body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe('validation_failed');
    }
    expect((await h.api('PATCH', `/v1/webhook-endpoints/${created.id}`, { role: 'operator', body: {} })).status).toBe(
      400,
    );
    // Writes are the operator's; a viewer reads.
    expect(
      (
        await h.api('POST', '/v1/webhook-endpoints', {
          role: 'viewer',
          body: { url: 'https://x.example.com', types: ['*'] },
        })
      ).status,
    ).toBe(403);

    const del = await h.api('DELETE', `/v1/webhook-endpoints/${created.id}`, { role: 'operator' });
    expect(del.status).toBe(204);
    expect((await h.api('GET', `/v1/webhook-endpoints/${created.id}`, { role: 'operator' })).status).toBe(404);
    expect((await h.api('DELETE', `/v1/webhook-endpoints/${created.id}`, { role: 'operator' })).status).toBe(404);
  });

  it('when WEBHOOK_PRIVATE_TARGETS=deny, then an endpoint on a loopback or private address is refused at create and at patch', async () => {
    const h = await harness({ WEBHOOK_PRIVATE_TARGETS: 'deny' });
    for (const url of [
      'http://127.0.0.1:9/x',
      'http://10.1.2.3/x',
      'http://[::1]/x',
      'http://169.254.169.254/latest',
    ]) {
      const r = await h.api('POST', '/v1/webhook-endpoints', { role: 'operator', body: { url, types: ['*'] } });
      expect(r.status, url).toBe(400);
      expect(r.body.error.details).toEqual([expect.objectContaining({ path: 'body.url' })]);
    }
    const ok = await createEndpoint(h, { url: 'https://93.184.215.14/hook', types: ['*'] });
    const r = await h.api('PATCH', `/v1/webhook-endpoints/${ok.id}`, {
      role: 'operator',
      body: { url: 'http://192.168.1.1/x' },
    });
    expect(r.status).toBe(400);
    expect((await h.api('GET', `/v1/webhook-endpoints/${ok.id}`, { role: 'operator' })).body.url).toBe(
      'https://93.184.215.14/hook',
    );
  });

  it("when WEBHOOK_PRIVATE_TARGETS=deny, then a customer's webhook_url on a private address is refused at create and at PATCH too, and nothing changes", async () => {
    const h = await harness({ WEBHOOK_PRIVATE_TARGETS: 'deny' });
    const email = `deny-${Date.now()}@example.test`;
    for (const url of ['http://127.0.0.1:3918/cust', 'http://10.0.0.7/x', 'http://[::ffff:192.168.0.1]/x']) {
      const r = await h.api('POST', '/v1/customers', { role: 'intake', body: { email, name: 'D', webhook_url: url } });
      expect(r.status, url).toBe(400);
      expect(r.body.error.details).toEqual([
        { path: 'body.webhook_url', message: expect.stringMatching(/^refused: .* is a non-public address/) },
      ]);
    }
    expect(await h.ctx.db('customers').where({ email }).first()).toBeUndefined();
    const made = await h.api('POST', '/v1/customers', {
      role: 'intake',
      body: { email, name: 'D', webhook_url: 'https://93.184.215.14/hook' },
    });
    expect(made.status, made.text).toBe(201);
    const patched = await h.api('PATCH', `/v1/customers/${made.body.id}`, {
      body: { webhook_url: 'http://169.254.169.254/' },
    });
    expect(patched.status).toBe(400);
    expect(patched.body.error.details[0].path).toBe('body.webhook_url');
    expect((await h.api('GET', `/v1/customers/${made.body.id}`)).body.webhook_url).toBe('https://93.184.215.14/hook');
  });

  it('when an endpoint made on a private address under allow is turned active again under deny, then 400 names its status (recover: its url) and it stays disabled; with a public url in the same patch it is active', async () => {
    const allow = await harness();
    const made = await createEndpoint(allow, { url: 'http://127.0.0.1:9/x', types: ['*'] });
    const off = await allow.api('PATCH', `/v1/webhook-endpoints/${made.id}`, { body: { status: 'disabled' } });
    expect(off.status, off.text).toBe(200);
    // The same database, now served under deny.
    const deny = track(await createHarness(allow.env.DATABASE_URL, { env: { WEBHOOK_PRIVATE_TARGETS: 'deny' } }));
    const again = await deny.api('PATCH', `/v1/webhook-endpoints/${made.id}`, { body: { status: 'active' } });
    expect(again.status, again.text).toBe(400);
    expect(again.body.error.details).toEqual([
      {
        path: 'body.status',
        message: expect.stringMatching(/^the endpoint's url is refused: .*give it a public url$/),
      },
    ]);
    expect((await deny.api('GET', `/v1/webhook-endpoints/${made.id}`)).body.status).toBe('disabled');
    // Nor does recover make it active at that url, or queue its backlog for it.
    const jobs = await deny.ctx.queues.notifications.getJobCounts('waiting', 'delayed', 'prioritized');
    const recover = await deny.api('POST', `/v1/webhook-endpoints/${made.id}/recover`, {
      body: { since: new Date(Date.now() - 3600_000).toISOString() },
    });
    expect(recover.status, recover.text).toBe(400);
    expect(recover.body.error.details).toEqual([
      {
        path: 'url',
        message: expect.stringMatching(/^the endpoint's url is refused: .*give it a public url \(PATCH\) first$/),
      },
    ]);
    expect((await deny.api('GET', `/v1/webhook-endpoints/${made.id}`)).body.status).toBe('disabled');
    expect(await deny.ctx.queues.notifications.getJobCounts('waiting', 'delayed', 'prioritized')).toEqual(jobs);
    const fixed = await deny.api('PATCH', `/v1/webhook-endpoints/${made.id}`, {
      body: { status: 'active', url: 'https://93.184.215.14/hook' },
    });
    expect(fixed.status, fixed.text).toBe(200);
    expect(fixed.body).toMatchObject({ status: 'active', url: 'https://93.184.215.14/hook' });
  });
});

describe('webhook endpoints: delivery', () => {
  it('when one endpoint takes order.confirmed and another "*", then each gets exactly its events, once, signed with its own secret, and the log shows them', async () => {
    const rxA = track(await startReceiver());
    const rxB = track(await startReceiver());
    const h = await harness();
    await h.startWorkers();
    const a = await createEndpoint(h, { url: rxA.url, types: ['order.confirmed'] });
    const b = await createEndpoint(h, { url: rxB.url, types: ['*'] });

    const o = await confirmedOrder(h);
    const cancel = await h.api('POST', `/v1/orders/${o.id}/cancel`, { role: 'intake', body: {} });
    expect(cancel.status).toBe(200);
    const confirmed = await eventOf(h, o.id, 'order.confirmed');
    const cancelled = await eventOf(h, o.id, 'order.cancelled');
    await settled(h);

    expect(rxA.received.map((r) => r.webhookId)).toEqual([confirmed.id]);
    expect(rxB.received.map((r) => r.webhookId).sort()).toEqual([confirmed.id, cancelled.id].sort());
    for (const r of rxA.received) {
      expect(verifies(a.secret, r)).toBe(true);
      expect(verifies(b.secret, r)).toBe(false);
    }
    for (const r of rxB.received) expect(verifies(b.secret, r)).toBe(true);
    // The body is the event (its payload and its place in the order's numbering), as the customer channel sends it.
    expect(JSON.parse(rxA.received[0].body)).toEqual(confirmed.payload);

    const log = await h.api('GET', `/v1/webhook-endpoints/${b.id}/deliveries`, { role: 'viewer' });
    expect(log.status).toBe(200);
    expect(log.body.next_cursor).toBeNull();
    expect(log.body.data).toHaveLength(2);
    for (const d of log.body.data)
      expect(d).toMatchObject({ status: 'delivered', attempts: 1, last_status_code: 200, last_error: null });
    expect(log.body.data.map((d: any) => d.event_type).sort()).toEqual(['order.cancelled', 'order.confirmed']);
    // Paginated: one per page, the cursor leads to the other, then no cursor.
    const p1 = await h.api('GET', `/v1/webhook-endpoints/${b.id}/deliveries?limit=1&status=delivered`, {
      role: 'operator',
    });
    expect(p1.body.data).toHaveLength(1);
    const p2 = await h.api('GET', `/v1/webhook-endpoints/${b.id}/deliveries?limit=1&cursor=${p1.body.next_cursor}`, {
      role: 'operator',
    });
    expect(p2.body.data).toHaveLength(1);
    expect(p2.body.next_cursor).toBeNull();
    expect(new Set([p1.body.data[0].id, p2.body.data[0].id]).size).toBe(2);
    // A cursor names its endpoint: another endpoint's list refuses it (400), as every list refuses a foreign cursor.
    const foreign = await h.api(
      'GET',
      `/v1/webhook-endpoints/${a.id}/deliveries?limit=1&cursor=${p1.body.next_cursor}`,
    );
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.details).toEqual([
      { path: 'query.cursor', message: 'not a cursor this list issued: pass next_cursor back as it came' },
    ]);
    const none = await h.api('GET', `/v1/webhook-endpoints/${b.id}/deliveries?status=failed`, { role: 'operator' });
    expect(none.body.data).toEqual([]);
    // Every attempt is recorded: three endpoint deliveries, one attempt each, status 200.
    const attempts = await h.ctx
      .db('delivery_attempts')
      .where({ kind: 'endpoint' })
      .select('status_code', 'attempt_no');
    expect(attempts).toEqual([
      { status_code: 200, attempt_no: 1 },
      { status_code: 200, attempt_no: 1 },
      { status_code: 200, attempt_no: 1 },
    ]);
  });

  it('when the receiver answers 503 twice, then the third attempt delivers with the same webhook-id and the attempts are recorded', async () => {
    const seen = new Map<string, number>();
    const rx = track(
      await startReceiver((r) => {
        seen.set(r.webhookId, (seen.get(r.webhookId) ?? 0) + 1);
        return seen.get(r.webhookId)! <= 2 ? 503 : 200;
      }),
    );
    const h = await harness({ NOTIFY_BACKOFF_MS: '100', NOTIFY_MAX_ATTEMPTS: '5' });
    await h.startWorkers();
    const e = await createEndpoint(h, { url: rx.url, types: ['order.confirmed'] });
    const o = await confirmedOrder(h);
    const ev = await eventOf(h, o.id, 'order.confirmed');
    await settled(h);
    expect(rx.received.map((r) => [r.webhookId, r.answered])).toEqual([
      [ev.id, 503],
      [ev.id, 503],
      [ev.id, 200],
    ]);
    expect(rx.received.every((r) => verifies(e.secret, r))).toBe(true);
    const log = await h.api('GET', `/v1/webhook-endpoints/${e.id}/deliveries`, { role: 'operator' });
    expect(log.body.data).toEqual([
      expect.objectContaining({ event_id: ev.id, status: 'delivered', attempts: 3, last_status_code: 200 }),
    ]);
    const attempts = await h.ctx.db('delivery_attempts').where({ kind: 'endpoint' }).orderBy('attempt_no');
    expect(attempts.map((a) => [a.attempt_no, a.status_code, a.error])).toEqual([
      [1, 503, 'HTTP 503 Service Unavailable'],
      [2, 503, 'HTTP 503 Service Unavailable'],
      [3, 200, null],
    ]);
  });

  it('when the secret is rotated, then deliveries carry both signatures for the overlap (each verifies), and after it only the new one (the old is refused)', async () => {
    const rx = track(await startReceiver());
    const h = await harness();
    await h.startWorkers();
    const e = await createEndpoint(h, { url: rx.url, types: ['order.confirmed'] });
    const oldSecret = e.secret;

    await confirmedOrder(h);
    await settled(h);
    const before = rx.received[0];
    expect(before.signature.split(' ')).toHaveLength(1);
    expect(verifies(oldSecret, before)).toBe(true);

    const rot = await h.api('POST', `/v1/webhook-endpoints/${e.id}/rotate-secret`, { role: 'operator' });
    expect(rot.status).toBe(200);
    const newSecret = rot.body.secret as string;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(oldSecret);

    await confirmedOrder(h);
    await settled(h);
    const during = rx.received[1];
    expect(during.signature).toMatch(/^v1,\S+ v1,\S+$/);
    expect(verifies(newSecret, during)).toBe(true);
    expect(verifies(oldSecret, during)).toBe(true);
    // The new signature comes first.
    const onlyFirst = {
      ...during,
      headers: { ...during.headers, 'webhook-signature': during.signature.split(' ')[0] },
    };
    expect(verifies(newSecret, onlyFirst)).toBe(true);
    expect(verifies(oldSecret, onlyFirst)).toBe(false);

    // 24 hours later (the clock of the row moved): the old secret no longer signs.
    await h.ctx
      .db('webhook_endpoints')
      .where({ id: e.id })
      .update({
        previous_secret_expires_at: h.ctx.db.raw("now() - interval '1 second'"),
      });
    await confirmedOrder(h);
    await settled(h);
    const after = rx.received[2];
    expect(after.signature.split(' ')).toHaveLength(1);
    expect(verifies(newSecret, after)).toBe(true);
    expect(verifies(oldSecret, after)).toBe(false);
    expect(rx.received).toHaveLength(3);
  });

  it('when an endpoint is down for ENDPOINT_DISABLE_AFTER_HOURS, then it is disabled (metrics say so) and gets nothing new; recovered, it gets every missed event once, in order', async () => {
    let up = true;
    const rx = track(await startReceiver(() => (up ? 200 : 503)));
    // 0.001 h = 3.6 s of failures; retries every 100 ms doubling, enough attempts to outlast it.
    const h = await harness({
      ENDPOINT_DISABLE_AFTER_HOURS: '0.001',
      NOTIFY_BACKOFF_MS: '100',
      NOTIFY_MAX_ATTEMPTS: '30',
    });
    await h.startWorkers();
    const e = await createEndpoint(h, { url: rx.url, types: ['*'] });
    const since = new Date(Date.now() - 1000).toISOString();

    const first = await confirmedOrder(h);
    await settled(h);
    const firstEvent = await eventOf(h, first.id, 'order.confirmed');
    expect(rx.accepted().map((r) => r.webhookId)).toEqual([firstEvent.id]);

    const before = (await h.api('GET', `/v1/webhook-endpoints/${e.id}`, { role: 'operator' })).body;
    up = false;
    await confirmedOrder(h);
    await confirmedOrder(h);
    const disabled = await waitFor(
      async () => {
        const r = await h.api('GET', `/v1/webhook-endpoints/${e.id}`, { role: 'operator' });
        return r.body.status === 'disabled' && r.body;
      },
      { what: 'endpoint disabled', timeout: 30_000 },
    );
    expect(disabled.disabled_reason).toBe('failing');
    // Disabling changes the endpoint: updated_at moves with disabled_at (one statement, one now()).
    expect(disabled.updated_at).toBe(disabled.disabled_at);
    expect(Date.parse(disabled.updated_at)).toBeGreaterThan(Date.parse(before.updated_at));
    const metricsText = (await h.api('GET', '/metrics', { role: 'operator' })).text;
    expect(metricsText).toMatch(/orderflow_webhook_endpoints_disabled\{reason="failing"\} 1/);
    await settled(h);

    // While disabled: new events are not planned for it at all.
    const duringOrders = [await confirmedOrder(h), await confirmedOrder(h)];
    await settled(h);
    for (const o of duringOrders) {
      const ev = await eventOf(h, o.id, 'order.confirmed');
      expect(await h.ctx.db('endpoint_deliveries').where({ event_id: ev.id }).first()).toBeUndefined();
    }
    const sentWhileDown = rx.received.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(rx.received.length).toBe(sentWhileDown);

    up = true;
    const recoveredAt = Date.now();
    const rec = await h.api('POST', `/v1/webhook-endpoints/${e.id}/recover`, { role: 'operator', body: { since } });
    expect(rec.status).toBe(202);
    expect(rec.body).toMatchObject({ id: e.id, status: 'active', disabled_at: null });

    const missed: string[] = await h.ctx
      .db('events')
      .where('created_at', '>=', since)
      .whereNot('id', firstEvent.id)
      .orderBy([{ column: 'created_at' }, { column: 'id' }])
      .pluck('id');
    expect(missed).toHaveLength(4);
    await waitFor(async () => rx.accepted().length === 5, { what: 'the missed events delivered', timeout: 20_000 });
    const recovered = rx.received.filter((r) => r.at >= recoveredAt);
    expect(recovered.map((r) => r.webhookId)).toEqual(missed);
    expect(recovered.every((r) => r.answered === 200 && verifies(e.secret, r))).toBe(true);
    // Each event accepted once; the one delivered before the outage was not sent again.
    expect(rx.accepted().map((r) => r.webhookId)).toEqual([firstEvent.id, ...missed]);
    const log = await h.api('GET', `/v1/webhook-endpoints/${e.id}/deliveries?status=delivered`, { role: 'operator' });
    expect(log.body.data).toHaveLength(5);
    expect((await h.api('GET', '/metrics', { role: 'operator' })).text).toMatch(
      /orderflow_webhook_endpoints_disabled\{reason="failing"\} 0/,
    );
    await settled(h);
    const report = await checkInvariants(h.ctx.db, { graceSeconds: 3600 });
    expect(report.problems).toEqual([]);
    expect(report.counts['endpoint-deliveries']).toBe(0);
    // The checker can fail: a second accepted attempt of one delivery (sent again once delivered) is named.
    const d = await h.ctx.db('endpoint_deliveries').where({ endpoint_id: e.id, status: 'delivered' }).first();
    await h.ctx
      .db('endpoint_deliveries')
      .where({ id: d.id })
      .update({ attempts: d.attempts + 1 });
    await h.ctx.db('delivery_attempts').insert({
      delivery_id: d.id,
      kind: 'endpoint',
      event_id: d.event_id,
      attempt_no: d.attempts + 1,
      at: new Date(),
      status_code: 200,
      duration_ms: 1,
    });
    expect((await checkInvariants(h.ctx.db, { graceSeconds: 3600 })).counts['endpoint-deliveries']).toBe(1);
  });
});

describe('webhook endpoints: a recovery retried from the board', () => {
  it('when a recovery gave up on its last attempt and an operator retries its job in the board, then it runs again as a new job with a fresh budget and delivers', async () => {
    let failures = Infinity;
    const rx = track(await startReceiver(() => (failures-- > 0 ? 503 : 200)));
    const h = await harness({ NOTIFY_BACKOFF_MS: '50', NOTIFY_MAX_ATTEMPTS: '2' });
    await h.startWorkers();
    const e = await createEndpoint(h, { url: rx.url, types: ['order.confirmed'] });
    const since = new Date(Date.now() - 1000).toISOString();
    const o = await confirmedOrder(h);
    const ev = await eventOf(h, o.id, 'order.confirmed');
    await settled(h);
    const delivery = () => h.ctx.db('endpoint_deliveries').where({ event_id: ev.id, endpoint_id: e.id }).first();
    expect(await delivery()).toMatchObject({ status: 'failed', attempts: 2 });

    // The recovery tries twice (NOTIFY_MAX_ATTEMPTS) and gives up: its job ends failed, the delivery marked failed.
    expect((await h.api('POST', `/v1/webhook-endpoints/${e.id}/recover`, { body: { since } })).status).toBe(202);
    const queue = h.ctx.queues.notifications;
    const gaveUp = await waitFor(
      async () =>
        (await queue.getJobs(['completed', 'failed'])).find(
          (j) => j.name === 'recover-endpoint' && j.attemptsMade >= 2,
        ),
      { what: 'the recovery gave up' },
    );
    expect(await queue.getJobState(gaveUp.id!)).toBe('failed');
    expect(gaveUp.failedReason).toBe(`recovery of endpoint ${e.id}: 1 deliveries failed, 0 delivered`);
    expect(await delivery()).toMatchObject({ status: 'failed', attempts: 4 });

    // The receiver fails once more, then takes it: one attempt (the budget used up) would not do.
    failures = 1;
    const retry = await h.api('PUT', `/admin/queues/api/queues/notifications/${gaveUp.id}/retry`);
    expect(retry.status, retry.text).toBeLessThan(300);
    await waitFor(async () => (await delivery())?.status === 'delivered', { what: 'delivered', timeout: 15_000 });
    expect(await delivery()).toMatchObject({ status: 'delivered', attempts: 6 });
    expect(rx.accepted().map((r) => r.webhookId)).toEqual([ev.id]);
    expect(rx.received.slice(-2).map((r) => r.answered)).toEqual([503, 200]);
    const retried = await waitFor(async () => {
      const j = await queue.getJob(gaveUp.id!);
      return j?.finishedOn ? j : undefined;
    });
    expect(retried.returnvalue).toMatchObject({ endpoint_id: e.id, requeued: expect.stringMatching(/^recover-/) });
  });
});

describe('webhook deliveries under a SIGKILL', () => {
  it('when the worker is SIGKILLed mid-delivery and restarted, then every event reaches the customer channel and the endpoint, and no row was sent more often than its attempts count', async () => {
    const secret = `whsec_${Buffer.from('kill-test-webhook-secret-0123456789').toString('base64')}`;
    // Slow answers (40 ms), so the kill lands while deliveries are in flight.
    const arrivals: { target: string; id: string; verified: boolean }[] = [];
    let endpointSecret = '';
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const target = req.url === '/endpoint' ? 'endpoint' : 'customer';
        const h = req.headers as Record<string, string>;
        let verified = true;
        try {
          new Webhook(target === 'endpoint' ? endpointSecret : secret).verify(
            Buffer.concat(chunks).toString('utf8'),
            h,
          );
        } catch {
          verified = false;
        }
        arrivals.push({ target, id: h['webhook-id'], verified });
        setTimeout(() => res.writeHead(204).end(), 40);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const h = await harness();
    endpointSecret = (await createEndpoint(h, { url: `${base}/endpoint`, types: ['*'] })).secret;
    const env = {
      NOTIFY_WEBHOOK_URL: `${base}/customer`,
      WEBHOOK_SECRET: secret,
      NOTIFY_BACKOFF_MS: '200',
      NOTIFY_TIMEOUT_MS: '2000',
      NOTIFY_CONCURRENCY: '20',
    };
    const first = h.spawnWorker(env);
    const c = await makeCustomer(h);
    const p = await makeProduct(h, 1000);
    const orders = await Promise.all(
      Array.from({ length: 120 }, () => placeOrder(h, c.id, [{ sku: p.sku, quantity: 1 }])),
    );
    await waitFor(async () => arrivals.length >= 30, { what: '30 deliveries begun', timeout: 30_000 });
    first.kill('SIGKILL');
    await first.exited;
    const killedAt = arrivals.length;
    h.spawnWorker(env);
    await waitFor(
      async () => {
        const open = await h.ctx.db('events').whereNull('settled_at').count<{ n: string }[]>({ n: '*' });
        const confirmed = await h.ctx
          .db('events')
          .where({ type: 'order.confirmed' })
          .count<{ n: string }[]>({ n: '*' });
        return Number(open[0].n) === 0 && Number(confirmed[0].n) === orders.length;
      },
      { what: 'every event settled after the restart', timeout: 90_000 },
    );
    expect(killedAt).toBeLessThan(orders.length * 2);

    const events: string[] = await h.ctx.db('events').where({ type: 'order.confirmed' }).pluck('id');
    const channels = await h.ctx.db('notifications').select('event_id', 'status', 'attempts');
    const deliveries = await h.ctx.db('endpoint_deliveries').select('event_id', 'status', 'attempts');
    expect(channels.filter((r) => events.includes(r.event_id)).every((r) => r.status === 'delivered')).toBe(true);
    expect(deliveries.filter((r) => events.includes(r.event_id)).every((r) => r.status === 'delivered')).toBe(true);
    expect(arrivals.every((a) => a.verified)).toBe(true);
    for (const [target, rows] of [
      ['customer', channels],
      ['endpoint', deliveries],
    ] as const) {
      for (const row of rows) {
        const sent = arrivals.filter((a) => a.target === target && a.id === row.event_id).length;
        // Every event arrived; a send is always a counted attempt (a retry after the kill may repeat one).
        expect(sent, `${target} ${row.event_id}`).toBeGreaterThanOrEqual(1);
        expect(sent, `${target} ${row.event_id}`).toBeLessThanOrEqual(row.attempts);
      }
    }
    const report = await checkInvariants(h.ctx.db, { graceSeconds: 3600 });
    expect(report.counts['endpoint-deliveries']).toBe(0);
  });
});
