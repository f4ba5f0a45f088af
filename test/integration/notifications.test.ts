import { randomBytes } from 'node:crypto';
import http, { type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Job, Queue } from 'bullmq';
import { SMTPServer } from 'smtp-server';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../src/platform/db';
import { metrics } from '../../src/platform/metrics';
import { DEV_WEBHOOK_SECRET, DeliveryBusyError } from '../../src/notifications';
import { enqueueReplacingFinished } from '../../src/jobs/publisher';
import { JOB } from '../../src/jobs/queues';
import { createNotificationProcessor } from '../../src/jobs/processors/notification.processor';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { createHarness, createTestDatabase, waitFor, type Harness } from '../helpers/harness';

// ---------------------------------------------------------------- receivers

interface Delivery {
  path: string;
  webhookId: string;
  timestamp: string;
  signature: string;
  body: string;
  json: any;
  verified: boolean;
  verifyError?: string;
  /** ms since epoch when the request arrived / when its connection closed. */
  at: number;
  closedAt?: number;
}
type Answer = number | 'hang' | { status: number; delayMs: number };

/** A real HTTP receiver on 127.0.0.1 (on `port`, else a free one) that verifies every delivery with the `standardwebhooks` package. */
async function startReceiver(
  secret: string,
  answer: (d: Delivery, nthForThisId: number) => Answer = () => 200,
  port = 0,
) {
  const deliveries: Delivery[] = [];
  const hung = new Set<ServerResponse>();
  const verifier = new Webhook(secret);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const h = req.headers as IncomingHttpHeaders & Record<string, string>;
      const d: Delivery = {
        path: req.url ?? '',
        webhookId: h['webhook-id'],
        timestamp: h['webhook-timestamp'],
        signature: h['webhook-signature'],
        body,
        json: undefined,
        verified: false,
        at: Date.now(),
      };
      try {
        d.json = verifier.verify(body, h);
        d.verified = true;
      } catch (err) {
        d.verifyError = (err as Error).message;
      }
      deliveries.push(d);
      const a = answer(d, deliveries.filter((x) => x.webhookId === d.webhookId).length);
      req.socket.once('close', () => {
        d.closedAt = Date.now();
      });
      if (a === 'hang') {
        hung.add(res);
        return;
      }
      const { status, delayMs } = typeof a === 'number' ? { status: a, delayMs: 0 } : a;
      const reply = () => res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'no');
      if (delayMs > 0) setTimeout(reply, delayMs);
      else reply();
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  return {
    url,
    deliveries,
    byId: (id: string) => deliveries.filter((d) => d.webhookId === id),
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

interface Mail {
  from: string;
  to: string[];
  raw: string;
  decoded: string;
}

/** A real SMTP server (`smtp-server`) on 127.0.0.1; `reject(n)` can refuse the n-th message with a 4xx. */
async function startSmtp(reject: (n: number) => boolean = () => false) {
  const mails: Mail[] = [];
  let n = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        n += 1;
        if (reject(n)) {
          const e: any = new Error('try again later');
          e.responseCode = 451;
          return cb(e);
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        // Undo quoted-printable soft breaks and escapes so assertions can read the text.
        const decoded = raw
          .replace(/=\r?\n/g, '')
          .replace(/=([0-9A-F]{2})/g, (_, x) => String.fromCharCode(parseInt(x, 16)));
        mails.push({
          from: (session.envelope.mailFrom || { address: '' }).address,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          decoded,
        });
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    attempts: () => n,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// ---------------------------------------------------------------- harness per test (env differs per test)

let db: Awaited<ReturnType<typeof createTestDatabase>>;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});
afterAll(async () => {
  await db?.drop();
});

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

async function harness(env: Record<string, string>): Promise<Harness> {
  const h = await createHarness(db.url, { env });
  cleanups.push(() => h.close());
  return h;
}
function track<T extends { close(): Promise<unknown> }>(x: T): T {
  cleanups.push(() => x.close());
  return x;
}

async function confirmedOrder(h: Harness, customer: Record<string, unknown> = {}) {
  const c = await makeCustomer(h, customer);
  const p = await makeProduct(h, 10);
  const o = await placeOrder(h, c.id, [{ sku: p.sku, quantity: 2 }]);
  return { customer: c, product: p, order: o };
}

/**
 * As confirmedOrder, for a customer whose webhook_url was stored before WEBHOOK_PRIVATE_TARGETS=deny
 * (under deny the API refuses it at create and PATCH; a stored one is still checked at each send).
 */
async function confirmedOrderStoredBefore(h: Harness, webhookUrl: string) {
  const c = await makeCustomer(h);
  await h.ctx.db('customers').where({ id: c.id }).update({ webhook_url: webhookUrl });
  const p = await makeProduct(h, 10);
  const o = await placeOrder(h, c.id, [{ sku: p.sku, quantity: 2 }]);
  return { customer: { ...c, webhook_url: webhookUrl }, product: p, order: o };
}

async function eventsOf(h: Harness, orderId: string) {
  return h.ctx
    .db('events')
    .where({ order_id: orderId })
    .orderBy('transition_no')
    .select('id', 'type', 'payload', 'settled_at', 'subject_id', 'subject_sequence', 'previous_event_id')
    .then((rows) =>
      rows.map(({ subject_id, subject_sequence, previous_event_id, ...e }) => ({
        ...e,
        // What is sent: the payload written with the event, and its place in the order's numbering.
        body: { ...e.payload, subject: { type: 'order', id: subject_id }, subject_sequence, previous_event_id },
      })),
    );
}

/** The order's events once all are settled (settling follows the last channel's row update by a moment). */
async function settledEvents(h: Harness, orderId: string) {
  return waitFor(
    async () => {
      const e = await eventsOf(h, orderId);
      return e.length > 0 && e.every((x) => x.settled_at) && e;
    },
    { what: 'settled events', timeout: 5000 },
  );
}

async function log(h: Harness, orderId: string) {
  const r = await h.api('GET', `/v1/orders/${orderId}/notifications`, { role: 'intake' });
  expect(r.status).toBe(200);
  return r.body.data as any[];
}

const counter = async (channel: string, outcome: string) =>
  (await metrics.notificationOutcomes.get()).values.find(
    (v) => v.labels.channel === channel && v.labels.outcome === outcome,
  )?.value ?? 0;

/** A BullMQ-shaped job for calling the processor directly, as a second (stalled) run would. */
const fakeJob = (eventId: string, attemptsMade = 0, attempts = 12) => {
  const job = {
    id: eventId,
    name: JOB.deliver,
    data: { eventId } as Record<string, unknown>,
    attemptsMade,
    opts: { attempts },
    async updateData(data: Record<string, unknown>) {
      job.data = data;
    },
  };
  return job as unknown as Job<{ eventId: string }>;
};

// ---------------------------------------------------------------- tests

describe('webhook notifications', () => {
  it('when an order is confirmed, then its webhook arrives signed per Standard Webhooks with the event payload as body, and the log says delivered', async () => {
    const secret = newSecret();
    const rx = track(await startReceiver(secret));
    const h = await harness({ WEBHOOK_SECRET: secret });
    const deliveredBefore = await counter('webhook', 'delivered');
    await h.startWorkers();
    const { order, customer } = await confirmedOrder(h, { webhook_url: rx.url });

    const [event] = await waitFor(
      async () => {
        const e = await eventsOf(h, order.id);
        return e.length === 1 && e[0].settled_at && e;
      },
      { what: 'settled event' },
    );
    expect(event.type).toBe('order.confirmed');
    const got = rx.byId(event.id);
    expect(got).toHaveLength(1);
    expect(got[0].verified).toBe(true);
    expect(got[0].verifyError).toBeUndefined();
    // The body is exactly the stored event {id, type, created_at, subject, subject_sequence, previous_event_id, data: {order}}.
    expect(JSON.parse(got[0].body)).toEqual(event.body);
    expect(event.body.subject_sequence).toBe(1);
    expect(event.body.previous_event_id).toBeNull();
    expect(Object.keys(JSON.parse(got[0].body))).toEqual([
      'id',
      'type',
      'created_at',
      'subject',
      'subject_sequence',
      'previous_event_id',
      'data',
    ]);
    expect(got[0].json.data.order).toMatchObject({ id: order.id, status: 'confirmed', customer_id: customer.id });
    const asShown = await h.api('GET', `/v1/orders/${order.id}`, { role: 'intake' });
    expect(got[0].json.data.order).toEqual(asShown.body);
    // A receiver holding another secret rejects it: the signature really depends on the secret.
    expect(() =>
      new Webhook(newSecret()).verify(got[0].body, {
        'webhook-id': got[0].webhookId,
        'webhook-timestamp': got[0].timestamp,
        'webhook-signature': 'x',
      }),
    ).toThrow();

    const rows = await log(h, order.id);
    expect(rows).toEqual([
      expect.objectContaining({
        event_id: event.id,
        event_type: 'order.confirmed',
        channel: 'webhook',
        target: rx.url,
        status: 'delivered',
        attempts: 1,
        last_error: null,
      }),
    ]);
    expect(rows[0].delivered_at).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
    expect(await counter('webhook', 'delivered')).toBeGreaterThan(deliveredBefore);
  });

  it('when the receiver answers 503 three times and then 200, then it is delivered on the 4th attempt with the same webhook-id, attempts = 4', async () => {
    const secret = newSecret();
    const rx = track(await startReceiver(secret, (_d, nth) => (nth <= 3 ? 503 : 200)));
    const h = await harness({ WEBHOOK_SECRET: secret, NOTIFY_MAX_ATTEMPTS: '6', NOTIFY_BACKOFF_MS: '100' });
    await h.startWorkers();
    const { order } = await confirmedOrder(h, { webhook_url: rx.url });

    const rows = await waitFor(
      async () => {
        const r = await log(h, order.id);
        return r[0]?.status === 'delivered' && r;
      },
      { what: 'delivered' },
    );
    const [event] = await settledEvents(h, order.id);
    const got = rx.byId(event.id);
    expect(got).toHaveLength(4);
    expect(new Set(got.map((d) => d.webhookId))).toEqual(new Set([event.id]));
    expect(got.every((d) => d.verified)).toBe(true);
    expect(new Set(got.map((d) => d.body)).size).toBe(1); // the same body every time; only the timestamp is fresh
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ channel: 'webhook', status: 'delivered', attempts: 4 });
    expect(rows[0].last_error).toMatch(/HTTP 503/);
    // Retries backed off: each attempt came after the previous one, and the gaps grew.
    const gaps = got.slice(1).map((d, i) => d.at - got[i].at);
    expect(gaps.every((g) => g >= 50)).toBe(true);
    expect(event.settled_at).not.toBeNull();
    expect(rx.deliveries).toHaveLength(4);
  });

  it('when some receivers hang past NOTIFY_TIMEOUT_MS, then another customer still gets its webhook before they even time out', async () => {
    const secret = newSecret();
    const dead = track(await startReceiver(secret, () => 'hang'));
    const alive = track(await startReceiver(secret));
    const timeout = 2000;
    const h = await harness({
      WEBHOOK_SECRET: secret,
      NOTIFY_TIMEOUT_MS: String(timeout),
      NOTIFY_MAX_ATTEMPTS: '2',
      NOTIFY_BACKOFF_MS: '100',
    });
    await h.startWorkers();
    const stuck = await Promise.all([1, 2, 3].map(() => confirmedOrder(h, { webhook_url: dead.url })));
    await waitFor(async () => dead.deliveries.length >= 3, { what: 'three hanging deliveries' });
    const firstHangAt = Math.min(...dead.deliveries.map((d) => d.at));

    const placedAt = Date.now();
    const { order } = await confirmedOrder(h, { webhook_url: alive.url });
    const d = await waitFor(async () => alive.deliveries.find((x) => x.json?.data?.order?.id === order.id), {
      what: 'live delivery',
      interval: 10,
    });
    if (process.env.SHOW_FIGURES)
      console.info(
        `healthy delivery ${d.at - placedAt} ms after its order was placed; ${d.at - firstHangAt} ms after the first hang began; timeout ${timeout} ms`,
      );

    // The healthy customer's webhook arrived while every dead receiver's first attempt was still open.
    expect(d.verified).toBe(true);
    expect(d.at - placedAt).toBeLessThan(timeout);
    expect(d.at - firstHangAt).toBeLessThan(timeout);
    expect(dead.deliveries.slice(0, 3).every((x) => x.closedAt === undefined || x.closedAt > d.at)).toBe(true);

    // The hanging ones time out, are retried, and end up failed with the reason in the log.
    const rows = await waitFor(
      async () => {
        const all = (await Promise.all(stuck.map((s) => log(h, s.order.id)))).flat();
        return all.length === 3 && all.every((r) => r.status === 'failed') && all;
      },
      { what: 'timed-out notifications failed', timeout: 20000 },
    );
    for (const r of rows) expect(r).toMatchObject({ attempts: 2, last_error: `timed out after ${timeout} ms` });
    expect((await log(h, order.id))[0]).toMatchObject({ status: 'delivered', attempts: 1 });
    const closed = dead.deliveries.filter((x) => x.closedAt !== undefined);
    for (const x of closed) expect(x.closedAt! - x.at).toBeGreaterThanOrEqual(timeout - 100);
  });

  it('when a notification job runs twice (again after delivery, or twice at once), then the customer gets one delivery of one event id', async () => {
    const secret = newSecret();
    const rx = track(await startReceiver(secret));
    const h = await harness({ WEBHOOK_SECRET: secret });
    const workers = await h.startWorkers();
    const { order } = await confirmedOrder(h, { webhook_url: rx.url });
    const [event] = await waitFor(
      async () => {
        const e = await eventsOf(h, order.id);
        return e[0]?.settled_at && e;
      },
      { what: 'delivered' },
    );

    // 1. Run again after delivery: the processor directly, twice, then a real job of the same id.
    const processor = createNotificationProcessor(h.ctx);
    expect(await processor(fakeJob(event.id))).toMatchObject({ skipped: 'settled' });
    expect(await processor(fakeJob(event.id, 3))).toMatchObject({ skipped: 'settled' });
    const ranAgain = async (queue: Queue, jobId: string, name: string, data: object) => {
      await waitFor(async () => (await queue.getJobState(jobId)) === 'completed', { what: `${jobId} finished` });
      const before = (await queue.getJob(jobId))!.timestamp;
      await enqueueReplacingFinished(queue, name, data, jobId);
      return waitFor(
        async () => {
          const j = await queue.getJob(jobId);
          return j && j.timestamp > before && j.finishedOn ? j : undefined;
        },
        { what: `${jobId} ran again` },
      );
    };
    const again = await ranAgain(h.ctx.queues.notifications, event.id, JOB.deliver, { eventId: event.id });
    expect(again.returnvalue).toMatchObject({ skipped: 'settled' });
    // The order job running again (a stalled order job) writes no second event either.
    const orderAgain = await ranAgain(h.ctx.queues.orders, order.id, JOB.processOrder, { orderId: order.id });
    expect(orderAgain.failedReason ?? null).toBeNull();
    await new Promise((r) => setTimeout(r, 300));
    expect(await eventsOf(h, order.id)).toHaveLength(1);
    expect(rx.deliveries).toHaveLength(1);
    expect(rx.deliveries[0]).toMatchObject({ webhookId: event.id, verified: true });
    expect((await log(h, order.id))[0]).toMatchObject({ status: 'delivered', attempts: 1 });

    // 2. Two runs at the same time (a stalled job picked up while the first run still sends).
    await workers.close(); // no worker competes with the two runs below
    // The receiver takes 400 ms to answer, so the two runs overlap.
    const slowRx = track(await startReceiver(secret, () => ({ status: 200, delayMs: 400 })));
    const second = await confirmedOrderWithoutNotifier(h, slowRx.url);
    const runs = await Promise.allSettled([processor(fakeJob(second)), processor(fakeJob(second))]);
    const ok = runs.filter((r) => r.status === 'fulfilled');
    const busy = runs.filter((r) => r.status === 'rejected');
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const b of busy) expect((b as PromiseRejectedResult).reason).toBeInstanceOf(DeliveryBusyError);
    expect(await processor(fakeJob(second))).toMatchObject({ skipped: 'settled' });
    expect(slowRx.byId(second)).toEqual([expect.objectContaining({ verified: true })]);
    expect(slowRx.deliveries).toHaveLength(1);
    expect(busy).toHaveLength(1); // the runs did overlap, and the second one backed off
    expect(
      (await log(h, (await h.ctx.db('events').where({ id: second }).first('order_id')).order_id))[0],
    ).toMatchObject({ status: 'delivered', attempts: 1 });
  });

  it('when every attempt fails, then after NOTIFY_MAX_ATTEMPTS it is failed and settled, and an operator resend delivers it', async () => {
    const secret = newSecret();
    let healthy = false;
    const rx = track(await startReceiver(secret, () => (healthy ? 200 : 500)));
    const h = await harness({ WEBHOOK_SECRET: secret, NOTIFY_MAX_ATTEMPTS: '3', NOTIFY_BACKOFF_MS: '50' });
    await h.startWorkers();
    const failedBefore = await counter('webhook', 'failed');
    const { order } = await confirmedOrder(h, { webhook_url: rx.url });

    const [row] = await waitFor(
      async () => {
        const r = await log(h, order.id);
        return r[0]?.status === 'failed' && r;
      },
      { what: 'failed' },
    );
    expect(row).toMatchObject({
      status: 'failed',
      attempts: 3,
      last_error: 'HTTP 500 Internal Server Error',
      delivered_at: null,
    });
    // The event is settled (the reconciler leaves it alone) and the job ends failed, right after the row.
    const [event] = await waitFor(
      async () => {
        const e = await eventsOf(h, order.id);
        return e[0]?.settled_at && e;
      },
      { what: 'settled', timeout: 5000 },
    );
    await waitFor(async () => (await h.ctx.queues.notifications.getJobState(event.id)) === 'failed', {
      what: 'job failed',
      timeout: 5000,
    });
    expect(rx.byId(event.id)).toHaveLength(3);
    expect(await counter('webhook', 'failed')).toBe(failedBefore + 1);

    // Only an operator may resend; unknown ids are 404; a pending one is not resent twice.
    expect((await h.api('POST', `/v1/notifications/${row.id}/resend`, { role: 'intake' })).status).toBe(403);
    expect(
      (
        await h.api(
          'POST',
          `/v1/notifications/${event.id.replace(/.$/, (c: string) => (c === '0' ? '1' : '0'))}/resend`,
        )
      ).status,
    ).toBe(404);
    expect((await h.api('POST', '/v1/notifications/not-a-uuid/resend')).status).toBe(404);

    healthy = true;
    const resend = await h.api('POST', `/v1/notifications/${row.id}/resend`, { role: 'operator' });
    expect(resend.status).toBe(202);
    expect(resend.body).toMatchObject({ id: row.id, status: 'pending', attempts: 3 });
    const again = await h.api('POST', `/v1/notifications/${row.id}/resend`);
    expect([202, 409]).toContain(again.status); // 409 invalid_state while pending, 202 if already delivered again
    if (again.status === 409) expect(again.body.error.code).toBe('invalid_state');

    const [done] = await waitFor(
      async () => {
        const r = await log(h, order.id);
        return r[0]?.status === 'delivered' && r;
      },
      { what: 'resent' },
    );
    expect(done.attempts).toBeGreaterThanOrEqual(4);
    const got = rx.byId(event.id);
    expect(got.filter((d) => d.verified)).toHaveLength(got.length);
    expect(got.at(-1)!.json).toEqual(event.body);
    await waitFor(async () => (await eventsOf(h, order.id))[0].settled_at, { what: 'settled again', timeout: 5000 });
  });

  it('when the receiver refuses connections, then the error says so; with WEBHOOK_SECRET unset deliveries verify with the published development secret', async () => {
    const closed = await startReceiver(DEV_WEBHOOK_SECRET);
    const deadUrl = closed.url;
    await closed.close();
    const rx = track(await startReceiver(DEV_WEBHOOK_SECRET));
    const h = await harness({ NOTIFY_MAX_ATTEMPTS: '2', NOTIFY_BACKOFF_MS: '50' });
    await h.startWorkers();
    const refused = await confirmedOrder(h, { webhook_url: deadUrl });
    const fine = await confirmedOrder(h, { webhook_url: rx.url });

    const [row] = await waitFor(
      async () => {
        const r = await log(h, refused.order.id);
        return r[0]?.status === 'failed' && r;
      },
      { what: 'refused → failed' },
    );
    expect(row).toMatchObject({ attempts: 2, last_error: 'connection refused' });
    const d = await waitFor(async () => rx.deliveries.find((x) => x.json?.data?.order?.id === fine.order.id), {
      what: 'dev-signed delivery',
    });
    expect(d.verified).toBe(true);
  });
});

describe('fallback target, no target, and the log endpoint', () => {
  it('when a customer has no webhook_url, then NOTIFY_WEBHOOK_URL gets it; with no target at all the event is settled with no channel', async () => {
    const secret = newSecret();
    const fallback = track(await startReceiver(secret));
    const own = track(await startReceiver(secret));
    const h = await harness({ WEBHOOK_SECRET: secret, NOTIFY_WEBHOOK_URL: fallback.url });
    await h.startWorkers();
    const a = await confirmedOrder(h);
    const b = await confirmedOrder(h, { webhook_url: own.url });
    await waitFor(
      async () =>
        (await log(h, a.order.id))[0]?.status === 'delivered' && (await log(h, b.order.id))[0]?.status === 'delivered',
      { what: 'both delivered' },
    );
    expect(fallback.deliveries.map((d) => d.json.data.order.id)).toEqual([a.order.id]);
    expect(own.deliveries.map((d) => d.json.data.order.id)).toEqual([b.order.id]);
    expect((await log(h, a.order.id))[0]).toMatchObject({ target: fallback.url, channel: 'webhook' });

    const bare = await harness({ WEBHOOK_SECRET: secret });
    await bare.startWorkers();
    const c = await confirmedOrder(bare);
    const [event] = await waitFor(
      async () => {
        const e = await eventsOf(bare, c.order.id);
        return e[0]?.settled_at && e;
      },
      { what: 'settled without channels' },
    );
    expect(event.type).toBe('order.confirmed');
    expect(await log(bare, c.order.id)).toEqual([]);
  });

  it("when WEBHOOK_PRIVATE_TARGETS=deny, then a customer's webhook_url on a private address is failed at once, unsent, while the operator's NOTIFY_WEBHOOK_URL still delivers", async () => {
    const secret = newSecret();
    const fallback = track(await startReceiver(secret));
    const internal = track(await startReceiver(secret));
    const h = await harness({
      WEBHOOK_SECRET: secret,
      NOTIFY_WEBHOOK_URL: fallback.url,
      WEBHOOK_PRIVATE_TARGETS: 'deny',
      NOTIFY_BACKOFF_MS: '50',
    });
    await h.startWorkers();
    const viaOperator = await confirmedOrder(h);
    const sneaky = await confirmedOrderStoredBefore(h, internal.url.replace('127.0.0.1', 'localhost'));
    const [row] = await waitFor(
      async () => {
        const r = await log(h, sneaky.order.id);
        return r[0]?.status === 'failed' && r;
      },
      { what: 'private target failed' },
    );
    expect(row.attempts).toBe(1);
    expect(row.last_error).toMatch(/^refused: localhost is a non-public address \((127\.0\.0\.1|::1)\)/);
    await waitFor(async () => (await log(h, viaOperator.order.id))[0]?.status === 'delivered', {
      what: 'fallback delivered',
    });
    const [event] = await settledEvents(h, sneaky.order.id);
    expect(internal.deliveries).toEqual([]);
    expect(fallback.deliveries.map((d) => d.json.data.order.id)).toEqual([viaOperator.order.id]);
    // No retry can reach a refused target: the job fails at once, its attempts left unspent, so the
    // board's failed list shows it (and not a completed job beside a failed delivery).
    const queue = h.ctx.queues.notifications;
    await waitFor(async () => (await queue.getJobState(event.id)) === 'failed', { what: 'job failed' });
    const job = (await queue.getJob(event.id))!;
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toMatch(/^webhook: refused: localhost is a non-public address/);
    // A retry from the board is seen as one (the job's attempts are not used up) and sends it again: refused again.
    expect((await h.api('PUT', '/admin/queues/api/queues/notifications/retry/failed')).body).toMatchObject({
      retried: 1,
    });
    await waitFor(async () => (await log(h, sneaky.order.id))[0]?.attempts === 2, { what: 'sent again' });
    await waitFor(async () => (await queue.getJobState(event.id)) === 'failed', { what: 'failed again' });
    expect(await log(h, sneaky.order.id)).toEqual([expect.objectContaining({ status: 'failed', attempts: 2 })]);
    expect(internal.deliveries).toEqual([]);
  });

  it('when a refused webhook fails at once but the e-mail of the same event needs a retry, then the event settles delivered by e-mail and its job still ends failed', async () => {
    const smtp = track(await startSmtp((n) => n === 1));
    const internal = track(await startReceiver(newSecret()));
    const h = await harness({ SMTP_URL: smtp.url, WEBHOOK_PRIVATE_TARGETS: 'deny', NOTIFY_BACKOFF_MS: '50' });
    await h.startWorkers();
    const { order } = await confirmedOrderStoredBefore(h, internal.url.replace('127.0.0.1', 'localhost'));
    const [event] = await settledEvents(h, order.id);
    const rows = await log(h, order.id);
    expect(rows.map((r) => [r.channel, r.status, r.attempts])).toEqual([
      ['email', 'delivered', 2],
      ['webhook', 'failed', 1],
    ]);
    expect(smtp.mails).toHaveLength(1);
    const queue = h.ctx.queues.notifications;
    await waitFor(async () => (await queue.getJobState(event.id)) === 'failed', { what: 'job failed' });
    const job = (await queue.getJob(event.id))!;
    expect(job.attemptsMade).toBe(2);
    expect(job.failedReason).toMatch(/^settled with failed deliveries: webhook: refused: localhost/);
    expect(internal.deliveries).toEqual([]);
  });

  it('when the log is asked for an unknown or malformed order, or by the feed role or no key, then 404 / 404 / 200 / 401', async () => {
    const h = await harness({});
    expect(
      (await h.api('GET', '/v1/orders/0190a8f0-0000-7000-8000-000000000000/notifications', { role: 'intake' })).status,
    ).toBe(404);
    expect((await h.api('GET', '/v1/orders/nope/notifications', { role: 'intake' })).body.error.code).toBe('not_found');
    const { order } = await confirmedOrder(h);
    // feed reads orders, their notifications too (change 15); only a key of no role is refused.
    expect((await h.api('GET', `/v1/orders/${order.id}/notifications`, { role: 'feed' })).status).toBe(200);
    expect((await h.api('GET', `/v1/orders/${order.id}/notifications`, { role: null })).status).toBe(401);
  });
});

describe('e-mail notifications', () => {
  it('when SMTP_URL is set and an order is confirmed, then the customer gets an e-mail naming the order (a 4xx from the server is retried)', async () => {
    const smtp = track(await startSmtp((n) => n === 1));
    const h = await harness({
      SMTP_URL: smtp.url,
      SMTP_FROM: 'Shop <shop@example.test>',
      NOTIFY_MAX_ATTEMPTS: '4',
      NOTIFY_BACKOFF_MS: '50',
    });
    const before = await counter('email', 'delivered');
    await h.startWorkers();
    const { order, customer } = await confirmedOrder(h);

    const rows = await waitFor(
      async () => {
        const r = await log(h, order.id);
        return r[0]?.status === 'delivered' && r;
      },
      { what: 'mail delivered' },
    );
    expect(rows).toHaveLength(1); // no webhook target: e-mail only
    expect(rows[0]).toMatchObject({ channel: 'email', target: customer.email, status: 'delivered', attempts: 2 });
    expect(rows[0].last_error).toMatch(/451/);
    expect(smtp.mails).toHaveLength(1);
    const [mail] = smtp.mails;
    expect(mail.to).toEqual([customer.email]);
    expect(mail.from).toBe('shop@example.test');
    expect(mail.decoded).toMatch(new RegExp(`^Subject: Order ${order.id}: confirmed`, 'm'));
    expect(mail.decoded).toContain(`Your order ${order.id} is confirmed`);
    expect(mail.decoded).toMatch(/Content-Type: text\/plain/);
    expect(mail.decoded).toMatch(/Content-Type: text\/html/);
    expect(mail.decoded).toContain(`<strong>${order.id}</strong>`);
    const [event] = await settledEvents(h, order.id);
    expect(mail.decoded).toContain(`Message-ID: <${event.id}@orderflow>`);
    expect(event.settled_at).not.toBeNull();
    expect(await counter('email', 'delivered')).toBe(before + 1);
  });
});

describe('several channels', () => {
  it('when the webhook fails twice but the e-mail goes through, then a retry re-sends only the webhook', async () => {
    const secret = newSecret();
    const smtp = track(await startSmtp());
    const rx = track(await startReceiver(secret, (_d, nth) => (nth <= 2 ? 502 : 204)));
    const h = await harness({
      WEBHOOK_SECRET: secret,
      SMTP_URL: smtp.url,
      NOTIFY_MAX_ATTEMPTS: '5',
      NOTIFY_BACKOFF_MS: '50',
    });
    await h.startWorkers();
    const { order, customer } = await confirmedOrder(h, { webhook_url: rx.url });

    const rows = await waitFor(
      async () => {
        const r = await log(h, order.id);
        return r.length === 2 && r.every((x) => x.status === 'delivered') && r;
      },
      { what: 'both channels delivered' },
    );
    const [event] = await settledEvents(h, order.id);
    expect(rows.map((r) => [r.channel, r.attempts, r.target])).toEqual([
      ['email', 1, customer.email],
      ['webhook', 3, rx.url],
    ]);
    // This event's mails only (Message-ID <event id@orderflow>; the server accepts every attempt): the
    // reconciler of this test's workers may also serve an event an earlier test of this file left
    // unsettled in the shared database, and would e-mail it here too (seen once, under load).
    const mine = smtp.mails.filter((m) => m.raw.includes(`<${event.id}@orderflow>`));
    expect(mine).toHaveLength(1);
    expect(rx.byId(event.id)).toHaveLength(3);
    expect(event.settled_at).not.toBeNull();
  });
});

/** An order confirmed with only the orders worker running, so its notification job waits; returns the event id. */
async function confirmedOrderWithoutNotifier(h: Harness, webhookUrl: string): Promise<string> {
  const w = await h.startWorkers(['orders']);
  const { order } = await confirmedOrder(h, { webhook_url: webhookUrl });
  const [event] = await waitFor(
    async () => {
      const e = await eventsOf(h, order.id);
      return e.length === 1 && e;
    },
    { what: 'event written' },
  );
  await w.close();
  return event.id;
}

describe('deliveries under a backlog', () => {
  /** Index rows read through `index` so far in the test database (flushed: read after the harness closed). */
  const indexRowsRead = async (index: string) => {
    const c = createDb(db.url, 1);
    try {
      const { rows } = await c.raw(
        'SELECT idx_tup_read::bigint AS n FROM pg_stat_user_indexes WHERE indexrelname = ?',
        [index],
      );
      return Number(rows[0].n);
    } finally {
      await c.destroy();
    }
  };

  it('when 150 deliveries wait and the statistics say none do, then each claim and outcome finds its rows by key and none reads the waiting ones', async () => {
    const secret = newSecret();
    let down = false;
    const rx = track(await startReceiver(secret, () => (down ? 503 : 200)));
    const before = { pending: await indexRowsRead('notifications_pending') };
    const h = await harness({ WEBHOOK_SECRET: secret, NOTIFY_BACKOFF_MS: '100', NOTIFY_MAX_ATTEMPTS: '50' });
    // Statistics taken while nothing waits, as on a large table between autovacuum's analyses.
    await h.ctx.db.raw('ALTER TABLE notifications SET (autovacuum_enabled = false)');
    await h.ctx.db.raw('ALTER TABLE events SET (autovacuum_enabled = false)');
    cleanups.push(async () => {
      const c = createDb(db.url, 1);
      await c.raw('ALTER TABLE notifications RESET (autovacuum_enabled)');
      await c.raw('ALTER TABLE events RESET (autovacuum_enabled)');
      await c.destroy();
    });
    await h.startWorkers();
    const c = await makeCustomer(h, { webhook_url: rx.url });
    const p = await makeProduct(h, 1000);
    const settledCount = () =>
      h.ctx
        .db('events')
        .whereNotNull('settled_at')
        .where({ type: 'order.confirmed' })
        .count<{ n: string }[]>({ n: '*' })
        .then((r) => Number(r[0].n));
    const base = await settledCount();
    for (let i = 0; i < 60; i++) await placeOrder(h, c.id, [{ sku: p.sku, quantity: 1 }]);
    await waitFor(async () => (await settledCount()) >= base + 60, { what: '60 delivered', timeout: 30000 });
    await h.ctx.db.raw('ANALYZE notifications');
    await h.ctx.db.raw('ANALYZE events');

    down = true;
    const sentBefore = rx.deliveries.length;
    await Promise.all(Array.from({ length: 150 }, () => placeOrder(h, c.id, [{ sku: p.sku, quantity: 1 }])));
    const pending = () =>
      h.ctx
        .db('notifications')
        .whereRaw("(status = 'pending') IS TRUE") // not through the index this test counts reads of
        .count<{ n: string }[]>({ n: '*' })
        .then((r) => Number(r[0].n));
    await waitFor(async () => (await pending()) >= 150 && rx.deliveries.length - sentBefore >= 300, {
      what: '150 waiting, each tried twice',
      timeout: 60000,
    });
    down = false;
    await waitFor(async () => (await settledCount()) >= base + 210, { what: 'the backlog delivered', timeout: 60000 });
    await h.close(); // its connections end, so PostgreSQL has their index counts (closing again at cleanup is harmless)

    // Every claim and outcome of a waiting event read the whole backlog through the partial index
    // before: ~150 index rows per statement, tens of thousands in all. By key: none.
    const read = (await indexRowsRead('notifications_pending')) - before.pending;
    expect(read).toBeLessThan(150);
  }, 120000);
});

/** A webhook endpoint (operator API) that this test deletes when it ends, so later tests' events are not planned for it. */
async function endpointFor(h: Harness, url: string, types: string[]) {
  const r = await h.api('POST', '/v1/webhook-endpoints', { body: { url, types } });
  expect(r.status, r.text).toBe(201);
  cleanups.push(() => h.api('DELETE', `/v1/webhook-endpoints/${r.body.id}`));
  return r.body as { id: string; secret: string };
}

/** True when the `standardwebhooks` package accepts the delivery with this secret. */
const verifiesWith = (secret: string, d: Delivery) => {
  try {
    new Webhook(secret).verify(d.body, {
      'webhook-id': d.webhookId,
      'webhook-timestamp': d.timestamp,
      'webhook-signature': d.signature,
    });
    return true;
  } catch {
    return false;
  }
};

describe('a failed job retried from the board', () => {
  it("when the customer's receiver answers 500 to every attempt, then the notification is failed after NOTIFY_MAX_ATTEMPTS and so is its job, which the queue report and the board count", async () => {
    const secret = newSecret();
    const rx = track(await startReceiver(secret, () => 500));
    const h = await harness({ WEBHOOK_SECRET: secret, NOTIFY_MAX_ATTEMPTS: '4', NOTIFY_BACKOFF_MS: '50' });
    await h.startWorkers();
    const { order } = await confirmedOrder(h, { webhook_url: rx.url });
    const [row] = await waitFor(
      async () => {
        const r = await log(h, order.id);
        return r[0]?.status === 'failed' && r;
      },
      { what: 'notification failed' },
    );
    expect(row).toMatchObject({ attempts: 4, last_error: expect.stringMatching(/^HTTP 500/) });
    const [event] = await settledEvents(h, order.id);
    expect(rx.byId(event.id)).toHaveLength(4);
    const queue = h.ctx.queues.notifications;
    await waitFor(async () => (await queue.getJobState(event.id)) === 'failed', { what: 'job failed', timeout: 5000 });
    // The queue report counts it among the failed jobs, as BullMQ (the board) does.
    const report = await h.api('GET', '/v1/reports/queues', { role: 'viewer' });
    const failedJobs = (await queue.getJobCounts('failed')).failed;
    expect(failedJobs).toBeGreaterThanOrEqual(1);
    expect(report.body.data.find((q: { name: string }) => q.name === 'notifications')).toMatchObject({
      failed: failedJobs,
    });
  });

  it('when a notification and an endpoint delivery failed at NOTIFY_MAX_ATTEMPTS and an operator retries the failed job in the board, then each is sent again with a fresh budget, once, and a stale run sends nothing', async () => {
    const secret = newSecret();
    // A port with nothing listening on it: every attempt is a refused connection.
    const gone = await startReceiver(secret);
    const port = Number(new URL(gone.url).port);
    await gone.close();
    const h = await harness({ WEBHOOK_SECRET: secret, NOTIFY_MAX_ATTEMPTS: '3', NOTIFY_BACKOFF_MS: '50' });
    await h.startWorkers();
    const ep = await endpointFor(h, `http://127.0.0.1:${port}/endpoint`, ['order.confirmed']);
    const { order } = await confirmedOrder(h, { webhook_url: `http://127.0.0.1:${port}/hooks` });

    const [failed] = await waitFor(
      async () => {
        const r = await log(h, order.id);
        return r[0]?.status === 'failed' && r;
      },
      { what: 'notification failed' },
    );
    expect(failed).toMatchObject({ status: 'failed', attempts: 3, last_error: 'connection refused' });
    const [event] = await settledEvents(h, order.id);
    const delivery = () => h.ctx.db('endpoint_deliveries').where({ event_id: event.id, endpoint_id: ep.id }).first();
    expect(await delivery()).toMatchObject({ status: 'failed', attempts: 3 });
    const queue = h.ctx.queues.notifications;
    await waitFor(async () => (await queue.getJobState(event.id)) === 'failed', { what: 'job failed', timeout: 5000 });
    expect((await queue.getJob(event.id))!.attemptsMade).toBe(3);

    // The receiver is back; it refuses each target's first two requests, so one attempt would not do.
    const rx = track(await startReceiver(secret, (_d, nth) => (nth <= 4 ? 503 : 200), port));
    const sent = (path: string) => rx.byId(event.id).filter((d) => d.path === path);

    // A stale duplicate of the last run (not a retry: attemptsMade 2 of 3) sends nothing, and fails as the job did.
    const processor = createNotificationProcessor(h.ctx);
    await expect(processor(fakeJob(event.id, 2, 3))).rejects.toThrow(
      /^settled with failed deliveries: endpoint [0-9a-f-]{36}: connection refused; webhook: connection refused$/,
    );
    expect(rx.deliveries).toEqual([]);

    const retry = await h.api('PUT', '/admin/queues/api/queues/notifications/retry/failed');
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body).toMatchObject({ retried: 1 });

    const [done] = await waitFor(
      async () => {
        const r = await log(h, order.id);
        return r[0]?.status === 'delivered' && r;
      },
      { what: 'delivered after the retry', timeout: 15_000 },
    );
    // Three more attempts (503, 503, 200): a fresh budget of NOTIFY_MAX_ATTEMPTS, not the one the job had used up.
    expect(done).toMatchObject({ status: 'delivered', attempts: 6 });
    await waitFor(async () => (await delivery())?.status === 'delivered', {
      what: 'endpoint delivered',
      timeout: 15_000,
    });
    expect(await delivery()).toMatchObject({ status: 'delivered', attempts: 6 });
    await settledEvents(h, order.id);
    await waitFor(async () => (await queue.getJobState(event.id)) === 'completed', { what: 'job completed' });
    expect(sent('/hooks').map((d) => d.verified)).toEqual([true, true, true]);
    expect(sent('/endpoint').map((d) => verifiesWith(ep.secret, d))).toEqual([true, true, true]);

    // Run again now, as a stale run or as a retry of the completed job from the board: nothing delivered is sent again.
    expect(await processor(fakeJob(event.id, 2, 3))).toMatchObject({ skipped: 'settled' });
    expect(await processor(fakeJob(event.id, 3, 3))).toMatchObject({ skipped: 'settled' });
    expect((await h.api('PUT', '/admin/queues/api/queues/notifications/retry/failed')).body).toMatchObject({
      retried: 0,
    });
    expect((await h.api('PUT', '/admin/queues/api/queues/notifications/retry/completed')).status).toBe(200);
    await waitFor(async () => (await queue.getJobState(event.id)) === 'completed', { what: 'completed again' });
    await new Promise((r) => setTimeout(r, 2500)); // past the outbox relay's 2 s
    expect(rx.byId(event.id)).toHaveLength(6);
    expect(await log(h, order.id)).toEqual([expect.objectContaining({ status: 'delivered', attempts: 6 })]);
    expect(await delivery()).toMatchObject({ status: 'delivered', attempts: 6 });
  }, 60_000);
});

describe('metadata in events', () => {
  it('when an order is placed with metadata {"channel":"web","a":"b"}, then the webhook body, the endpoint body and GET /v1/events carry its keys in that order', async () => {
    const secret = newSecret();
    const rx = track(await startReceiver(secret));
    const h = await harness({ WEBHOOK_SECRET: secret });
    await h.startWorkers();
    const ep = await endpointFor(h, rx.url.replace('/hooks', '/endpoint'), ['order.confirmed']);
    const c = await makeCustomer(h, { webhook_url: rx.url });
    const p = await makeProduct(h, 10);
    const o = await placeOrder(h, c.id, [{ sku: p.sku, quantity: 1 }], { metadata: { channel: 'web', a: 'b' } });
    const [event] = await settledEvents(h, o.id);
    const asGiven = '"metadata":{"channel":"web","a":"b"}';

    const shown = await h.api('GET', `/v1/orders/${o.id}`, { role: 'intake' });
    expect(shown.text).toContain(asGiven);
    const got = rx.byId(event.id);
    expect(got.map((d) => d.path).sort()).toEqual(['/endpoint', '/hooks']);
    for (const d of got) {
      expect(d.body).toContain(asGiven);
      expect(Object.keys(JSON.parse(d.body).data.order.metadata)).toEqual(['channel', 'a']);
    }
    expect(
      verifiesWith(
        ep.secret,
        got.find((d) => d.path === '/endpoint')!,
      ),
    ).toBe(true);
    // The body's order is the order as GET showed it, key for key and in the same order.
    expect(JSON.stringify(JSON.parse(got[0].body).data.order)).toBe(JSON.stringify(shown.body));

    const feed = await waitFor(
      async () => {
        const r = await h.api('GET', `/v1/events?subject=${o.id}`, { role: 'intake' });
        return r.body.data.length > 0 && r;
      },
      { what: 'the event in the feed' },
    );
    expect(feed.text).toContain(asGiven);
    expect(Object.keys(feed.body.data[0].data.order.metadata)).toEqual(['channel', 'a']);
    expect(Object.keys(feed.body.data[0])).toEqual([
      'id',
      'type',
      'sequence',
      'created_at',
      'subject',
      'subject_sequence',
      'previous_event_id',
      'data',
    ]);
  });
});
