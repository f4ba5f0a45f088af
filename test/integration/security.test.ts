import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { KEYS, keysUnder, useHarness, waitFor } from '../helpers/harness';
import { freePort } from '../helpers/private-redis';

const h = useHarness();

describe('security headers (helmet)', () => {
  it('when any response is sent — success, error, public or not — then it carries the security headers and no X-Powered-By', async () => {
    const responses = [
      await h().api('GET', '/healthz', { role: null }),
      await h().api('GET', '/v1/orders', { role: 'intake' }),
      await h().api('GET', '/v1/orders', { role: null }),
      await h().api('POST', '/v1/customers', { role: 'intake', body: { email: 'nope' } }),
      await h().api('GET', '/v1/nothing-here', { role: 'operator' }),
    ];
    for (const r of responses) {
      const hd = r.headers;
      expect({ status: r.status, nosniff: hd.get('x-content-type-options') }).toEqual({
        status: r.status,
        nosniff: 'nosniff',
      });
      expect(hd.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(hd.get('strict-transport-security')).toMatch(/max-age=\d+/);
      expect(hd.get('referrer-policy')).toBe('no-referrer');
      expect(hd.get('cross-origin-opener-policy')).toBe('same-origin');
      expect(hd.get('cross-origin-resource-policy')).toBe('same-origin');
      expect(hd.get('x-permitted-cross-domain-policies')).toBe('none');
      expect(hd.get('x-dns-prefetch-control')).toBe('off');
      expect(hd.get('x-powered-by')).toBeNull();
    }
  });
});

describe('CSRF on the board', () => {
  it("when another site makes a browser POST or PUT to the board with the operator's Basic credentials, then it is refused and no queue changes", async () => {
    await h().ctx.queues.orders.add(
      'process-order',
      { orderId: '0190d6c1-0000-7000-8000-000000000000' },
      { jobId: 'csrf-probe' },
    );
    const basic = `Basic ${Buffer.from(`op:${KEYS.operator}`).toString('base64')}`;
    const board = (method: string, path: string, headers: Record<string, string>, body?: unknown) =>
      fetch(`${h().baseUrl}/admin/queues/api/queues/orders${path}`, {
        method,
        body: body === undefined ? undefined : JSON.stringify(body),
        headers: {
          authorization: basic,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
      });
    const foreign: Record<string, string>[] = [
      { origin: 'https://evil.example' },
      { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
      { origin: 'null' },
    ];
    for (const headers of foreign) {
      const add = await board('POST', '/add', headers, { name: 'process-order', data: { orderId: 'x' } });
      expect(add.status).toBe(403);
      expect((await add.json()).error.code).toBe('forbidden');
      expect((await board('PUT', '/empty', headers)).status).toBe(403);
      expect((await board('PUT', '/pause', headers)).status).toBe(403);
    }
    // BullMQ 6 keeps a paused queue's jobs in `wait` (there is no paused list): isPaused() says it.
    expect(await h().ctx.queues.orders.getJobCounts('waiting')).toEqual({ waiting: 1 });
    expect(await h().ctx.queues.orders.isPaused()).toBe(false);
    // The board itself (same origin) may.
    expect((await board('PUT', '/empty', { 'sec-fetch-site': 'same-origin', origin: h().baseUrl })).status).toBe(200);
    expect(await h().ctx.queues.orders.getJobCounts('waiting')).toEqual({ waiting: 0 });
  });
});

/** Every key and value stored under a BullMQ prefix, as text. */
async function dumpRedis(hh: ReturnType<typeof h>): Promise<{ text: string; jobs: { key: string; data: any }[] }> {
  const r = hh.ctx.redis;
  const parts: string[] = [];
  const jobs: { key: string; data: any }[] = [];
  for (const key of await keysUnder(r, hh.config.QUEUE_PREFIX)) {
    const type = await r.type(key);
    parts.push(key);
    if (type === 'string') parts.push(String(await r.get(key)));
    else if (type === 'hash') {
      const all = await r.hgetall(key);
      parts.push(...Object.entries(all).flat());
      if ('data' in all && 'name' in all) jobs.push({ key, data: JSON.parse(all.data) });
    } else if (type === 'list') parts.push(...(await r.lrange(key, 0, -1)));
    else if (type === 'set') parts.push(...(await r.smembers(key)));
    else if (type === 'zset') parts.push(...(await r.zrange(key, 0, -1)));
    else if (type === 'stream') parts.push(JSON.stringify(await r.xrange(key, '-', '+')));
  }
  return { text: parts.join('\n'), jobs };
}

describe('no secret in logs, job data or the record', () => {
  it('when a real process runs a busy day at LOG_LEVEL=trace with API keys, a webhook secret and an SMTP password set, then none of them (nor a presented wrong key) appears in its output, in Redis or in the database, and job data holds only ids', async () => {
    const secrets = {
      intake: 'intake-SECRET-k3y-7f1e2d',
      feed: 'feed-SECRET-k3y-0c9b8a',
      operator: 'operator-SECRET-k3y-55aa11',
      webhookB64: Buffer.from('orderflow-test-webhook-signing-secret-9f8e7d').toString('base64'),
      smtpPassword: 'smtp-SECRET-pa55-9d8c7b',
      wrongKey: 'presented-WRONG-k3y-123abc',
    };
    const webhookSecret = `whsec_${secrets.webhookB64}`;
    const needles = [
      ...Object.values(secrets),
      webhookSecret,
      Buffer.from(`\u0000mailer\u0000${secrets.smtpPassword}`).toString('base64'), // AUTH PLAIN on the wire
      Buffer.from(secrets.smtpPassword).toString('base64'), // AUTH LOGIN on the wire
      Buffer.from(`x:${secrets.operator}`).toString('base64'),
    ]; // the Basic header a browser sends

    // A receiver that refuses each event's first delivery (so failures are logged), and an SMTP server that wants the password.
    const seen = new Map<string, number>();
    const receiver = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const id = String(req.headers['webhook-id']);
        seen.set(id, (seen.get(id) ?? 0) + 1);
        res.writeHead(seen.get(id)! === 1 ? 500 : 204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    let mails = 0;
    const smtp = new SMTPServer({
      logger: false,
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth(auth, _s, cb) {
        return auth.password === secrets.smtpPassword
          ? cb(null, { user: auth.username })
          : cb(new Error('bad credentials'));
      },
      onData(stream, _s, cb) {
        stream.resume();
        stream.on('end', () => {
          mails++;
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    const smtpPort = (smtp.server.address() as AddressInfo).port;

    const port = await freePort();
    const proc = h().spawnWorker(
      {
        PORT: String(port),
        LOG_LEVEL: 'trace',
        API_KEYS: `intake:${secrets.intake},feed:${secrets.feed},operator:${secrets.operator}`,
        WEBHOOK_SECRET: webhookSecret,
        SMTP_URL: `smtp://mailer:${secrets.smtpPassword}@127.0.0.1:${smtpPort}`,
        NOTIFY_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`,
        NOTIFY_BACKOFF_MS: '100',
      },
      'all',
    );
    const base = `http://127.0.0.1:${port}`;
    const call = async (
      method: string,
      path: string,
      key: string | null,
      body?: unknown,
      headers: Record<string, string> = {},
    ) => {
      const res = await fetch(`${base}${path}`, {
        method,
        body: body === undefined ? undefined : JSON.stringify(body),
        headers: {
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
      });
      return { status: res.status, body: await res.json().catch(() => undefined) };
    };
    const ids: string[] = [];
    try {
      await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok, {
        timeout: 30_000,
        what: 'process up',
      });
      const customer = await call('POST', '/v1/customers', secrets.intake, {
        email: 'secret-test@example.test',
        name: 'S',
      });
      expect(customer.status).toBe(201);
      expect(
        (
          await call('POST', '/v1/products', secrets.operator, {
            sku: 'SEC-1',
            name: 'S',
            price_cents: 100,
            initial_stock: 3,
          })
        ).status,
      ).toBe(201);
      for (let i = 0; i < 5; i++) {
        const o = await call(
          'POST',
          '/v1/orders',
          secrets.intake,
          { customer_id: customer.body.id, lines: [{ sku: 'SEC-1', quantity: 1 }] },
          { 'idempotency-key': `sec-${i}` },
        );
        expect(o.status).toBe(202);
        ids.push(o.body.id);
      }
      expect(
        (await call('POST', '/v1/restocks', secrets.feed, { event_id: 'sec-restock-1', sku: 'SEC-1', quantity: 4 }))
          .status,
      ).toBe(202);
      // Refused attempts: a wrong key, a key of the wrong role, a bad body, a Basic login to the operator pages.
      expect((await call('GET', '/v1/orders', secrets.wrongKey)).status).toBe(401);
      expect((await call('POST', '/v1/products', secrets.intake, { sku: 'NOPE' })).status).toBe(403);
      expect((await call('POST', '/v1/orders', secrets.intake, { customer_id: 'x', lines: [] })).status).toBe(400);
      await fetch(`${base}/metrics`, {
        headers: { authorization: `Basic ${Buffer.from(`x:${secrets.operator}`).toString('base64')}` },
      });
      await fetch(`${base}/metrics`, {
        headers: { authorization: `Basic ${Buffer.from(`x:${secrets.wrongKey}`).toString('base64')}` },
      });
      // Every event delivered by webhook (after a refused first try) and by e-mail.
      await waitFor(
        async () => {
          // 3 in stock + 4 restocked: all five end confirmed (some may wait first), every event settled.
          const confirmed = await h()
            .ctx.db('orders')
            .whereIn('id', ids)
            .where('status', 'confirmed')
            .count({ n: '*' })
            .first();
          const open = await h()
            .ctx.db('events')
            .whereIn('order_id', ids)
            .whereNull('settled_at')
            .count({ n: '*' })
            .first();
          return Number(confirmed?.n) === 5 && Number(open?.n) === 0;
        },
        { timeout: 60_000, what: 'events delivered' },
      ).catch(async (err) => {
        const rows = await h()
          .ctx.db('events as e')
          .leftJoin('notifications as n', 'n.event_id', 'e.id')
          .whereIn('e.order_id', ids)
          .select('e.type', 'e.settled_at', 'n.channel', 'n.status', 'n.attempts', 'n.last_error');
        throw new Error(`${(err as Error).message}: ${JSON.stringify(rows)}`);
      });
      const order = await call('GET', `/v1/orders/${ids[0]}`, secrets.intake);
      if (order.body.status === 'confirmed')
        expect((await call('POST', `/v1/orders/${ids[0]}/fulfill`, secrets.feed)).status).toBe(200);
      expect((await call('POST', `/v1/orders/${ids[1]}/cancel`, secrets.intake, { reason: 'test' })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      proc.kill('SIGTERM');
      await proc.exited;
      receiver.closeAllConnections();
      await new Promise((r) => receiver.close(r));
      await new Promise<void>((r) => smtp.close(() => r()));
    }

    const output = proc.output();
    // The run really logged (trace level, requests, delivery failures) and really used every secret.
    expect(output.split('\n').length).toBeGreaterThan(30); // ~50 on a quiet machine; fewer retries when it is busy
    expect(output).toMatch(/"msg":"request"/);
    expect(output).toContain(ids[0]); // job lines carry ids: the grep below would see a secret if one were logged
    expect([...seen.values()].some((n) => n >= 2)).toBe(true);
    expect(mails).toBeGreaterThan(0);
    for (const n of needles) expect(output.includes(n), `output contains ${n}`).toBe(false);

    const redis = await dumpRedis(h());
    expect(redis.jobs.length).toBeGreaterThan(10);
    for (const n of needles) expect(redis.text.includes(n), `Redis contains ${n}`).toBe(false);
    const ALLOWED = [['orderId'], ['eventId'], ['sku'], []];
    const ID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|sec-restock-\d+|SEC-\d+)$/;
    for (const job of redis.jobs) {
      expect(ALLOWED.map((a) => a.join())).toContain(Object.keys(job.data).sort().join());
      for (const v of Object.values(job.data)) expect(String(v), job.key).toMatch(ID);
    }

    const tables = [
      'notifications',
      'events',
      'outbox',
      'order_history',
      'idempotency_keys',
      'stock_movements',
      'orders',
      'customers',
    ];
    for (const t of tables) {
      const { rows } = await h().ctx.db.raw(`SELECT COALESCE(string_agg(x::text, '\n'), '') AS t FROM ?? x`, [t]);
      for (const n of needles) expect(rows[0].t.includes(n), `${t} contains ${n}`).toBe(false);
    }
  }, 120_000);
});
