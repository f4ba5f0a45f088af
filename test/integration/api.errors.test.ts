import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { bearer, createHarness, KEYS, rawRequest, useHarness, waitFor, type Harness } from '../helpers/harness';
import { expectError, expectNothingChanged } from '../helpers/snapshot';

const h = useHarness({ workers: false });

const MiB = 1024 * 1024;
const UUID = '0190d6c1-0000-7000-8000-000000000000';

const raw = (method: string, url: string, opts?: Parameters<typeof rawRequest>[3]) =>
  rawRequest(h(), method, url, opts);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A harness whose Redis or PostgreSQL is a closed port; closed without touching the dead server. */
async function withDeadDependency(env: Record<string, string>, fn: (d: Harness) => Promise<void>) {
  const dead = await createHarness(h().env.DATABASE_URL, { env });
  try {
    await fn(dead);
  } finally {
    const timeout = new Promise((r) => setTimeout(r, 5000));
    await Promise.race([dead.close().catch(() => undefined), timeout]);
  }
}

describe('error model', () => {
  it('when requests fail in every way the contract lists, then each body is {error:{code,message,details}} with X-Request-Id', async () => {
    const cases: [string, () => Promise<any>, number, string][] = [
      ['unknown route', () => raw('GET', '/v1/nothing-here'), 404, 'not_found'],
      ['no key', () => raw('GET', `/v1/customers/${UUID}`), 401, 'unauthorized'],
      [
        'unknown key',
        () => raw('GET', `/v1/customers/${UUID}`, { headers: { authorization: 'Bearer not-a-key-at-all' } }),
        401,
        'unauthorized',
      ],
      [
        'wrong role',
        () =>
          raw('POST', '/v1/products', {
            headers: { ...bearer('intake'), 'content-type': 'application/json' },
            body: '{}',
          }),
        403,
        'forbidden',
      ],
      ['unknown customer', () => raw('GET', `/v1/customers/${UUID}`, { headers: bearer('intake') }), 404, 'not_found'],
      [
        'bad field',
        () =>
          raw('POST', '/v1/customers', {
            headers: { ...bearer('intake'), 'content-type': 'application/json' },
            body: '{"email":"x"}',
          }),
        400,
        'validation_failed',
      ],
      [
        'broken JSON',
        () =>
          raw('POST', '/v1/customers', {
            headers: { ...bearer('intake'), 'content-type': 'application/json' },
            body: '{"email":',
          }),
        400,
        'invalid_json',
      ],
      [
        'text body',
        () =>
          raw('POST', '/v1/customers', {
            headers: { ...bearer('intake'), 'content-type': 'text/plain' },
            body: 'hello',
          }),
        415,
        'unsupported_media_type',
      ],
      [
        'huge body',
        () =>
          raw('POST', '/v1/customers', {
            headers: { ...bearer('intake'), 'content-type': 'application/json' },
            body: `{"name":"${'a'.repeat(MiB)}"}`,
          }),
        413,
        'payload_too_large',
      ],
      [
        'invalid state',
        async () => {
          const c = await makeCustomer(h());
          const p = await makeProduct(h(), 1);
          const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
          return raw('POST', `/v1/orders/${o.id}/fulfill`, { headers: bearer('feed') });
        },
        409,
        'invalid_state',
      ],
    ];
    for (const [what, act, status, code] of cases) {
      const res = await act();
      expect.soft({ what, status: res.status, code: res.body?.error?.code }).toEqual({ what, status, code });
      expectError(res, status, code);
    }
  });

  it('when a field is bad, then details list {path, message} for each bad field', async () => {
    const res = await h().api('POST', '/v1/customers', {
      role: 'intake',
      body: { email: 'not-an-email', name: '', webhook_url: 'ftp://x' },
    });
    expectError(res, 400, 'validation_failed');
    const paths = res.body.error.details.map((d: any) => d.path).sort();
    expect(paths).toEqual(['body.email', 'body.name', 'body.webhook_url']);
  });

  it("when a list is given a cursor it did not issue (garbage, another list's, a forged value), then 400 names query.cursor with one message; its own next_cursor pages on", async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    for (let i = 0; i < 3; i++) await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const ep = await h().api('POST', '/v1/webhook-endpoints', {
      body: { url: 'https://example.test/x', types: ['*'] },
    });
    expect(ep.status, ep.text).toBe(201);
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const lists: [string, 'intake' | 'operator' | 'feed'][] = [
      ['/v1/orders', 'intake'],
      ['/v1/customers', 'intake'],
      [`/v1/customers/${c.id}/orders`, 'intake'],
      ['/v1/inventory', 'operator'],
      ['/v1/inbound', 'feed'],
      [`/v1/webhook-endpoints/${ep.body.id}/deliveries`, 'operator'],
    ];
    const bad = [
      'garbage',
      b64(-1), // "LTE": valid JSON, never issued
      b64(5), // a bare value: how cursors looked before they named their list
      b64({ id: 'x' }),
      b64([1, 2, 3]),
      `${b64(1)}!!`, // an issued cursor with characters the base64url decoder would skip
    ];
    // Real cursors of two lists: each is refused by every other list.
    await makeCustomer(h());
    const ofCustomers = (await h().api('GET', '/v1/customers?limit=1', { role: 'intake' })).body.next_cursor;
    const ofOrders = (await h().api('GET', '/v1/orders?limit=1', { role: 'intake' })).body.next_cursor;
    expect(typeof ofCustomers).toBe('string');
    expect(typeof ofOrders).toBe('string');
    for (const [path, role] of lists) {
      const foreign = path.includes('/customers') && !path.endsWith('/orders') ? [ofOrders] : [ofCustomers];
      if (!path.startsWith('/v1/orders') && !path.endsWith('/orders')) foreign.push(ofOrders);
      for (const cursor of [...bad, ...new Set(foreign)]) {
        const r = await h().api('GET', `${path}?cursor=${encodeURIComponent(cursor)}`, { role });
        expectError(r, 400, 'validation_failed');
        expect(r.body.error.details, `${path} ${cursor}`).toEqual([
          { path: 'query.cursor', message: 'not a cursor this list issued: pass next_cursor back as it came' },
        ]);
      }
    }
    const first = await h().api('GET', `/v1/customers/${c.id}/orders?limit=2`, { role: 'intake' });
    expect(first.body.data).toHaveLength(2);
    const next = await h().api('GET', `/v1/customers/${c.id}/orders?limit=2&cursor=${first.body.next_cursor}`, {
      role: 'intake',
    });
    expect(next.status, next.text).toBe(200);
    expect(next.body.data).toHaveLength(1);
  });

  it('when any response is sent, then it carries X-Request-Id; a safe caller id is echoed, an unsafe one replaced', async () => {
    for (const res of [
      await raw('GET', '/healthz'),
      await raw('GET', '/readyz'),
      await h().api('POST', '/v1/customers', { role: 'intake', body: { email: 'rid@example.test', name: 'R' } }),
    ]) {
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
    const a = await raw('GET', '/healthz', { headers: { 'x-request-id': 'caller-id.123_ABC' } });
    expect(a.headers.get('x-request-id')).toBe('caller-id.123_ABC');
    const b = await raw('GET', '/healthz', { headers: { 'x-request-id': 'evil id\twith spaces' } });
    expect(b.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const c = await raw('GET', '/nope', { headers: { 'x-request-id': 'x'.repeat(500) } });
    expect(c.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('request bodies', () => {
  it('when a body is not JSON (text, form, none declared, xml), then 415 unsupported_media_type and nothing is stored', async () => {
    const body = JSON.stringify({ email: 'media@example.test', name: 'Media' });
    const variants: Record<string, string>[] = [
      { 'content-type': 'text/plain' },
      { 'content-type': 'application/x-www-form-urlencoded' },
      { 'content-type': 'application/xml' },
      {},
    ];
    for (const headers of variants) {
      const res = await expectNothingChanged(h(), () =>
        raw('POST', '/v1/customers', {
          headers: { ...bearer('intake'), ...headers },
          body: new TextEncoder().encode(body),
        }),
      );
      expectError(res, 415, 'unsupported_media_type');
    }
  });

  it('when the body is JSON with a +json or charset suffix, then it is accepted', async () => {
    const a = await raw('POST', '/v1/customers', {
      headers: { ...bearer('intake'), 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ email: 'suffix@example.test', name: 'S' }),
    });
    expect(a.status).toBe(201);
    const b = await raw('POST', '/v1/customers', {
      headers: { ...bearer('intake'), 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ email: 'charset@example.test', name: 'C' }),
    });
    expect(b.status).toBe(201);
  });

  it('when a string holds a NUL, in UTF-8 or UTF-16, then 400 names the field; a literal backslash-u0000 text is stored as written', async () => {
    const json = JSON.stringify({ email: 'nul@example.test', name: 'a\u0000b' });
    for (const [charset, bytes] of [
      ['utf-8', Buffer.from(json, 'utf8')],
      ['utf-16le', Buffer.from(json, 'utf16le')],
    ] as const) {
      const res = await expectNothingChanged(h(), () =>
        raw('POST', '/v1/customers', {
          headers: { ...bearer('intake'), 'content-type': `application/json; charset=${charset}` },
          body: bytes,
        }),
      );
      expectError(res, 400, 'validation_failed');
      expect(res.body.error.details, charset).toEqual([
        { path: 'body.name', message: 'must not contain a NUL character' },
      ]);
    }
    // An escaped backslash followed by u0000 is six ordinary characters, not a NUL.
    const literal = await raw('POST', '/v1/customers', {
      headers: { ...bearer('intake'), 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'lit@example.test', name: 'a\\u0000b' }),
    });
    expect(literal.status, literal.text).toBe(201);
    expect(literal.body.name).toBe('a\\u0000b');
  });

  it('when the JSON is broken, then 400 invalid_json and nothing is stored', async () => {
    for (const body of ['{"email":', '{email: "x"}', "{'a':1}", '[1,2', 'nul']) {
      const res = await expectNothingChanged(h(), () =>
        raw('POST', '/v1/customers', { headers: { ...bearer('intake'), 'content-type': 'application/json' }, body }),
      );
      expectError(res, 400, 'invalid_json');
    }
  });

  it('when the JSON is valid but not an object (array, string, null, number), then 400 validation_failed and nothing is stored', async () => {
    for (const body of ['[]', '"x"', 'null', '42', 'true']) {
      const res = await expectNothingChanged(h(), () =>
        raw('POST', '/v1/customers', { headers: { ...bearer('intake'), 'content-type': 'application/json' }, body }),
      );
      expectError(res, 400, 'validation_failed');
    }
  });

  it('when the JSON is nested very deeply or uses odd values (1e400, __proto__), then a 4xx (never 500) and nothing is stored', async () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    const deepObject = `{"email":"deep@example.test","name":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`;
    const bodies = [deep, deepObject, '{"email":"x@example.test","name":1e400}'];
    for (const body of bodies) {
      const res = await expectNothingChanged(h(), () =>
        raw('POST', '/v1/customers', { headers: { ...bearer('intake'), 'content-type': 'application/json' }, body }),
      );
      expect(res.status, `${body.slice(0, 40)}: ${res.text}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${body.slice(0, 40)}: ${res.text}`).toBeLessThan(500);
    }
    const order = await expectNothingChanged(h(), () =>
      raw('POST', '/v1/orders', {
        headers: { ...bearer('intake'), 'content-type': 'application/json' },
        body: `{"customer_id":"${UUID}","lines":[{"sku":"A","quantity":1e400}]}`,
      }),
    );
    expectError(order, 400, 'validation_failed');
    const proto = await raw('POST', '/v1/customers', {
      headers: { ...bearer('intake'), 'content-type': 'application/json' },
      body: '{"email":"proto@example.test","name":"n","__proto__":{"blocked":true,"name":"evil"}}',
    });
    // An own `__proto__` key is an unknown field like any other (change 10): 400, nothing stored.
    expectError(proto, 400, 'validation_failed');
    expect(proto.body.error.details.map((d: { path: string }) => d.path)).toEqual(['body.__proto__']);
    expect(await h().ctx.db('customers').where({ email: 'proto@example.test' })).toEqual([]);
  });

  it('when a body is over 1 MiB, then 413 payload_too_large; exactly 1 MiB is read and validated', async () => {
    const over = `{"email":"big@example.test","name":"${'a'.repeat(MiB)}"}`;
    const res = await expectNothingChanged(h(), () =>
      raw('POST', '/v1/customers', {
        headers: { ...bearer('intake'), 'content-type': 'application/json' },
        body: over,
      }),
    );
    expectError(res, 413, 'payload_too_large');
    const head = '{"email":"big@example.test","name":"';
    const exact = `${head}${'a'.repeat(MiB - head.length - 2)}"}`;
    expect(Buffer.byteLength(exact)).toBe(MiB);
    const ok = await expectNothingChanged(h(), () =>
      raw('POST', '/v1/customers', {
        headers: { ...bearer('intake'), 'content-type': 'application/json' },
        body: exact,
      }),
    );
    expectError(ok, 400, 'validation_failed');
    // An order with a body over the limit is not stored either.
    const c = await makeCustomer(h());
    const lines = Array.from({ length: 100 }, (_, i) => ({ sku: `S-${i}-${'x'.repeat(50)}`, quantity: 1 }));
    const big = JSON.stringify({ customer_id: c.id, lines, external_ref: 'r'.repeat(MiB) });
    const order = await expectNothingChanged(h(), () =>
      raw('POST', '/v1/orders', { headers: { ...bearer('intake'), 'content-type': 'application/json' }, body: big }),
    );
    expectError(order, 413, 'payload_too_large');
  });

  it('when the content encoding or charset is unsupported, then 415', async () => {
    const a = await expectNothingChanged(h(), () =>
      raw('POST', '/v1/customers', {
        headers: { ...bearer('intake'), 'content-type': 'application/json', 'content-encoding': 'x-unknown' },
        body: '{}',
      }),
    );
    expectError(a, 415, 'unsupported_media_type');
    const b = await expectNothingChanged(h(), () =>
      raw('POST', '/v1/customers', {
        headers: { ...bearer('intake'), 'content-type': 'application/json; charset=latin1' },
        body: '{}',
      }),
    );
    expectError(b, 415, 'unsupported_media_type');
  });

  it('when cancel is posted with no body at all (no content type), then the order is cancelled', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 3);
    const o1 = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const a = await raw('POST', `/v1/orders/${o1.id}/cancel`, { headers: bearer('intake') });
    expect(a.status, a.text).toBe(200);
    expect(a.body.status).toBe('cancelled');
    const o2 = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const b = await raw('POST', `/v1/orders/${o2.id}/cancel`, {
      headers: { ...bearer('intake'), 'content-type': 'application/json' },
      body: '',
    });
    expect(b.status, b.text).toBe(200);
    const o3 = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const d = await raw('DELETE', `/v1/orders/${o3.id}`, { headers: bearer('intake') });
    expect(d.status, d.text).toBe(200);
    expect(d.body.status).toBe('cancelled');
    // ...and with a body that is not JSON, 415 and the order stays as it is.
    const o4 = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const e = await expectNothingChanged(h(), () =>
      raw('POST', `/v1/orders/${o4.id}/cancel`, {
        headers: { ...bearer('intake'), 'content-type': 'text/plain' },
        body: 'please',
      }),
    );
    expectError(e, 415, 'unsupported_media_type');
  });

  it('when fulfil is posted with an empty body, then a confirmed order is completed', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 3);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), o.id, 'confirmed', { what: 'confirmed' });
    const res = await raw('POST', `/v1/orders/${o.id}/fulfill`, { headers: bearer('feed') });
    expect(res.status, res.text).toBe(200);
    expect(res.body.status).toBe('completed');
  });

  it('when retry is posted with an empty body, then a failed order is received again', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 3);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    // Arrange: a `failed` order (reaching it for real needs PostgreSQL down for every attempt).
    await h().ctx.db('orders').where({ id: o.id }).update({ status: 'failed', status_reason: 'test' });
    const res = await raw('POST', `/v1/orders/${o.id}/retry`, { headers: bearer('operator') });
    expect(res.status, res.text).toBe(202);
    expect(res.body.status).toBe('received');
  });
});

describe('routes and ids', () => {
  it('when a route does not exist (any method, with or without key), then 404 not_found', async () => {
    for (const [m, u] of [
      ['GET', '/'],
      ['GET', '/v1'],
      ['GET', '/v1/widgets'],
      ['POST', '/v2/orders'],
      ['PUT', `/v1/customers/${UUID}`],
      ['GET', '/healthz/extra'],
    ]) {
      expectError(await raw(m, u), 404, 'not_found');
      expectError(await raw(m, u, { headers: bearer('operator') }), 404, 'not_found');
    }
  });

  it('when a path has broken percent-encoding or odd bytes, then a 4xx (never 500) and nothing changes', async () => {
    for (const [m, u] of [
      ['GET', '/v1/customers/%E0%A4%A'],
      ['GET', '/v1/orders/%ZZ'],
      ['GET', '/v1/products/%'],
      ['POST', '/v1/orders/%C0%AF/cancel'],
      ['GET', '/v1/products/a%00b'],
      ['GET', `/v1/orders/${'9'.repeat(5000)}`],
    ]) {
      const res = await expectNothingChanged(h(), () => raw(m, u, { headers: bearer('operator') }));
      expect(res.status, `${m} ${u}: ${res.text}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${m} ${u}: ${res.text}`).toBeLessThan(500);
      expectError(res, res.status, res.body?.error?.code);
    }
  });

  it('when an unexpected error happens, then 500 carries the request id and no stack or SQL', async () => {
    const c = await makeCustomer(h());
    await h().ctx.db.raw('ALTER TABLE customers RENAME TO customers_away');
    try {
      const res = await raw('GET', `/v1/customers/${c.id}`, {
        headers: { ...bearer('intake'), 'x-request-id': 'trace-500' },
      });
      expectError(res, 500, 'internal');
      expect(res.body.error.message).toContain('trace-500');
      expect(res.text).not.toMatch(/customers_away|relation|\bat .*\.ts|stack/i);
    } finally {
      await h().ctx.db.raw('ALTER TABLE customers_away RENAME TO customers');
    }
  });
  it('when the headers or URL exceed what Node parses (16 KiB), then the refusal is still a JSON error', async () => {
    const res = await raw('GET', `/v1/orders?x=${'a'.repeat(20_000)}`, {
      headers: { authorization: `Bearer ${KEYS.operator}` },
    });
    expect(res.status).toBe(431);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(res.body.error).toMatchObject({ code: 'validation_failed', details: [] });
  });
});

describe('health', () => {
  it('when the process is up, then /healthz and /readyz answer 200 without a key', async () => {
    // A fresh producer connection reports Redis down until it has connected (see the report to the lead).
    await waitFor(async () => h().ctx.redis.status === 'ready', { timeout: 5000, what: 'redis ready' });
    const a = await raw('GET', '/healthz');
    expect(a.status).toBe(200);
    const b = await raw('GET', '/readyz');
    expect(b.status).toBe(200);
    expect(b.body.checks).toEqual({ postgresql: 'ok', redis: 'ok' });
  });

  it('when Redis is unreachable, then /readyz is 503 naming redis with Retry-After, and /healthz stays 200', async () => {
    const port = await freePort();
    await withDeadDependency({ REDIS_URL: `redis://127.0.0.1:${port}` }, async (d) => {
      const t0 = Date.now();
      const res = await fetch(`${d.baseUrl}/readyz`);
      const body = await res.json();
      expect(res.status).toBe(503);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(res.headers.get('x-request-id')).toBeTruthy();
      expect(body.error.code).toBe('unavailable');
      expect(body.error.message).toMatch(/redis/i);
      expect(body.error.message).not.toMatch(/postgres/i);
      expect(body.checks).toEqual({ postgresql: 'ok', redis: 'down' });
      expect((await fetch(`${d.baseUrl}/healthz`)).status).toBe(200);
    });
  });

  it('when PostgreSQL is unreachable, then /readyz is 503 naming postgresql', async () => {
    const port = await freePort();
    await withDeadDependency({ DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/nothing` }, async (d) => {
      // Redis is fine here; let the producer connection finish connecting (a fresh one reports down until then).
      await waitFor(async () => d.ctx.redis.status === 'ready', { timeout: 5000, what: 'redis ready' });
      const res = await fetch(`${d.baseUrl}/readyz`);
      const body = await res.json();
      expect(res.status).toBe(503);
      expect(body.error.code).toBe('unavailable');
      expect(body.error.message).toMatch(/postgresql/i);
      expect(body.checks).toEqual({ postgresql: 'down', redis: 'ok' });
    });
  });
});
