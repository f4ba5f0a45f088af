import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { checkInvariants } from '../../src/invariants';
import { API_KEYS, rawRequest, useHarness, type Harness } from '../helpers/harness';
import { expectError, expectNothingChanged } from '../helpers/snapshot';

// Two keys share the name shop-a (a rotation); shop-b is another caller.
const h = useHarness({
  workers: false,
  env: { API_KEYS: `${API_KEYS},shop-a@intake:key-shop-a,shop-a@intake:key-shop-a2,shop-b@intake:key-shop-b` },
});
const as = (key: string) => ({ role: null, headers: { authorization: `Bearer ${key}` } }) as const;
let n = 0;
const ref = () => `ref-${Date.now()}-${++n}`;
const orderCount = async (x: Harness) => Number((await x.ctx.db('orders').count('* as n'))[0].n);

describe('change 10: strict input', () => {
  it('when a body carries an unknown field, top-level or nested, then 400 naming it and nothing is stored', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const order = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const cases: [string, string, unknown, string[]][] = [
      [
        'POST',
        '/v1/orders',
        { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }], shipping_address: { city: 'x' }, notes: 'n' },
        ['body.shipping_address', 'body.notes'],
      ],
      [
        'POST',
        '/v1/orders',
        { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1, gift: true }] },
        ['body.lines.0.gift'],
      ],
      ['PATCH', `/v1/orders/${order.id}`, { on_insufficient_stock: 'reject', priority: 1 }, ['body.priority']],
      ['POST', `/v1/orders/${order.id}/cancel`, { reason: 'x', force: true }, ['body.force']],
      ['POST', '/v1/customers', { email: 'a@example.test', name: 'A', nickname: 'x' }, ['body.nickname']],
      ['PATCH', `/v1/customers/${c.id}`, { name: 'B', vip: true }, ['body.vip']],
      ['POST', '/v1/products', { sku: 'SKU-STRICT', name: 'W', price_cents: 1, colour: 'red' }, ['body.colour']],
      ['POST', `/v1/inventory/${p.sku}/adjustments`, { delta: 1, reason: 'r', by: 'me' }, ['body.by']],
      ['POST', `/v1/inventory/${p.sku}/transfers`, { from: 'main', to: 'main', quantity: 1, x: 1 }, ['body.x']],
      ['POST', '/v1/locations', { code: 'L-STRICT', name: 'L', city: 'x' }, ['body.city']],
      ['POST', '/v1/restocks', { event_id: 'e1', sku: p.sku, quantity: 1, supplier: 's' }, ['body.supplier']],
      [
        'POST',
        '/v1/restocks',
        { events: [{ event_id: 'e2', sku: p.sku, quantity: 1, lot: 'l' }] },
        ['body.events.0.lot'],
      ],
      [
        'POST',
        `/v1/orders/${order.id}/shipments`,
        { lines: [{ sku: p.sku, quantity: 1, box: 1 }], weight: 2 },
        ['body.lines.0.box', 'body.weight'],
      ],
      ['POST', `/v1/orders/${order.id}/fulfill`, { now: true }, ['body.now']],
    ];
    for (const [method, url, body, paths] of cases) {
      const res = await expectNothingChanged(h(), () => h().api(method, url, { role: 'operator', body }));
      expectError(res, 400, 'validation_failed');
      const named = res.body.error.details.map((d: any) => d.path);
      for (const path of paths) expect(named, `${method} ${url}`).toContain(path);
    }
  });

  it('when a query carries an unknown parameter, then 400 naming it (also where an operation takes no query)', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const order = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    for (const url of [
      '/v1/orders?externalref=x',
      `/v1/orders/${order.id}?expand=lines`,
      `/v1/customers/${c.id}?x=1`,
      '/v1/customers?mail=a',
      `/v1/products/${p.sku}?fields=name`,
      '/v1/inventory?sku=x',
      '/v1/locations?active=true',
      '/v1/reports/queues?x=1',
      // The operations' routes too, public or not (the OpenAPI document declares 400 for each).
      '/healthz?probe=1',
      '/readyz?probe=1',
      '/docs/openapi.json?v=2',
      '/metrics?name=x',
      '/dashboard?range=7',
      '/console?q=x',
    ]) {
      const res = await h().api('GET', url, { role: 'operator' });
      expectError(res, 400, 'validation_failed');
      const name = new URL(url, 'http://x').searchParams.keys().next().value;
      // Named the same way whether the operation takes a query or not (docs/api.md).
      expect(res.body.error.details, url).toContainEqual({ path: `query.${name}`, message: 'unknown parameter' });
    }
    // A write's query too, and nothing is stored.
    const res = await expectNothingChanged(h(), () =>
      h().api('POST', '/v1/orders?dry_run=1', {
        role: 'intake',
        body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] },
      }),
    );
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details[0].path).toBe('query.dry_run');
  });

  it('when a string is not well-formed Unicode (a lone surrogate, or bytes that are not UTF-8), then 400 and nothing is stored', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const bodies: [string, string, string][] = [
      [
        '/v1/orders',
        `{"customer_id":"${c.id}","lines":[{"sku":"${p.sku}","quantity":1}],"external_ref":"a\\ud800b"}`,
        'body.external_ref',
      ],
      [
        '/v1/orders',
        `{"customer_id":"${c.id}","lines":[{"sku":"${p.sku}","quantity":1}],"metadata":{"k":"\\udc00"}}`,
        'body.metadata.k',
      ],
      ['/v1/customers', `{"email":"s@example.test","name":"A\\uD83D"}`, 'body.name'],
    ];
    for (const [url, raw, path] of bodies) {
      const res = await expectNothingChanged(h(), () =>
        h().api('POST', url, { role: 'intake', raw, headers: { 'content-type': 'application/json' } }),
      );
      expectError(res, 400, 'validation_failed');
      expect(res.body.error.details.map((d: any) => d.path)).toContain(path);
    }
    // A well-formed pair is fine and stored exactly.
    const ok = await h().api('POST', '/v1/customers', {
      role: 'intake',
      raw: `{"email":"pair-${ref()}@example.test","name":"A\\ud83d\\ude00"}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.name).toBe('A😀');
    // Raw bytes that are not UTF-8.
    const bytes = Buffer.concat([
      Buffer.from('{"email":"b@example.test","name":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    const bad = await expectNothingChanged(h(), () =>
      rawRequest(h(), 'POST', '/v1/customers', {
        headers: { authorization: 'Bearer test-intake-key', 'content-type': 'application/json' },
        body: bytes,
      }),
    );
    expect(bad.status).toBe(400);
    // A query value that decodes to a lone surrogate (%ED%A0%80) is refused, not made U+FFFD.
    const q = await h().api('GET', '/v1/orders?external_ref=%ED%A0%80', { role: 'intake' });
    expectError(q, 400, 'validation_failed');
    expect(q.body.error.details[0].path).toBe('query.external_ref');
    const fffd = await h().ctx.db('customers').whereRaw(`name LIKE '%' || chr(65533) || '%'`).count('* as n');
    expect(Number(fffd[0].n)).toBe(0);
  });

  it('when an internationalised e-mail address is given, then it is accepted and stored as given', async () => {
    const res = await h().api('POST', '/v1/customers', {
      role: 'intake',
      body: { email: 'zoë@exämple.com', name: 'Zoë' },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.email).toBe('zoë@exämple.com');
    expect((await h().ctx.db('customers').where({ id: res.body.id }).first()).email).toBe('zoë@exämple.com');
    for (const email of ['用户@例子.广告', 'δοκιμή@παράδειγμα.δοκιμή', 'ada+tag@example.co.uk'])
      expect(
        (await h().api('POST', '/v1/customers', { role: 'intake', body: { email, name: 'I' } })).status,
        email,
      ).toBe(201);
    for (const email of ['zoë@', '@exämple.com', 'a b@x.com', 'a@@x.com', 'a@x'])
      expectError(
        await h().api('POST', '/v1/customers', { role: 'intake', body: { email, name: 'I' } }),
        400,
        'validation_failed',
      );
  });
});

describe('change 11: metadata', () => {
  it('when an order and a customer carry metadata, then it is stored and returned as given; out of bounds is 400', async () => {
    const metadata = { zeta: '1', alpha: 'two', ключ: 'значение' };
    const c = await h().api('POST', '/v1/customers', {
      role: 'intake',
      body: { email: `m-${ref()}@example.test`, name: 'M', metadata },
    });
    expect(c.status, c.text).toBe(201);
    expect(JSON.stringify(c.body.metadata)).toBe(JSON.stringify(metadata));
    expect(JSON.stringify((await h().api('GET', `/v1/customers/${c.body.id}`)).body.metadata)).toBe(
      JSON.stringify(metadata),
    );
    const p = await makeProduct(h(), 5);
    // A replay (same Idempotency-Key) answers the same body, keys in the same order.
    const key = { 'Idempotency-Key': `meta-${ref()}` };
    const customerBody = { email: `mr-${ref()}@example.test`, name: 'M', metadata };
    const first = await h().api('POST', '/v1/customers', { role: 'intake', body: customerBody, headers: key });
    const replay = await h().api('POST', '/v1/customers', { role: 'intake', body: customerBody, headers: key });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(JSON.stringify(replay.body)).toBe(JSON.stringify(first.body));
    const o = await placeOrder(h(), c.body.id, [{ sku: p.sku, quantity: 1 }], { metadata });
    const got = await h().api('GET', `/v1/orders/${o.id}`);
    expect(JSON.stringify(got.body.metadata)).toBe(JSON.stringify(metadata));
    const plain = await placeOrder(h(), c.body.id, [{ sku: p.sku, quantity: 1 }]);
    expect((await h().api('GET', `/v1/orders/${plain.id}`)).body.metadata).toEqual({});

    const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
    const bad: [unknown, string][] = [
      [many, 'body.metadata'],
      [{ ['k'.repeat(41)]: 'v' }, `body.metadata.${'k'.repeat(41)}`],
      [{ ['😀'.repeat(41)]: 'v' }, `body.metadata.${'😀'.repeat(41)}`],
      [{ '': 'v' }, 'body.metadata'],
      [{ k: 'v'.repeat(501) }, 'body.metadata.k'],
      [{ k: 1 }, 'body.metadata.k'],
      [{ k: { nested: 'x' } }, 'body.metadata.k'],
      [['a'], 'body.metadata'],
    ];
    for (const [m, path] of bad) {
      const res = await expectNothingChanged(h(), () =>
        h().api('POST', '/v1/orders', {
          role: 'intake',
          body: { customer_id: c.body.id, lines: [{ sku: p.sku, quantity: 1 }], metadata: m },
        }),
      );
      expectError(res, 400, 'validation_failed');
      expect(res.body.error.details.map((d: any) => d.path)).toContain(path);
    }
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`.padEnd(40, 'x'), 'v'.repeat(500)]));
    expect(
      (
        await h().api('POST', '/v1/orders', {
          role: 'intake',
          body: { customer_id: c.body.id, lines: [{ sku: p.sku, quantity: 1 }], metadata: fifty },
        })
      ).status,
    ).toBe(202);
    // Characters are code points, in keys as in values: 40 emoji (80 UTF-16 units) is a key of 40.
    const emoji = { ['😀'.repeat(40)]: '😀'.repeat(500) };
    const wide = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.body.id, lines: [{ sku: p.sku, quantity: 1 }], metadata: emoji },
    });
    expect(wide.status).toBe(202);
    expect((await h().api('GET', `/v1/orders/${wide.body.id}`)).body.metadata).toEqual(emoji);
  });

  it('when metadata has a key "__proto__" (written out or escaped), then 400 naming metadata and nothing is stored; "constructor" is kept', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const order = (m: string) => `{"customer_id":"${c.id}","lines":[{"sku":"${p.sku}","quantity":1}],"metadata":${m}}`;
    const bodies: [string, string, string][] = [
      ['/v1/orders', order('{"z":"1","__proto__":"p"}'), 'body.metadata.__proto__'],
      ['/v1/orders', order('{"\\u005f_proto\\u005f_":"p"}'), 'body.metadata.__proto__'],
      [
        '/v1/customers',
        `{"email":"proto-${ref()}@example.test","name":"P","metadata":{"__proto__":"x"}}`,
        'body.metadata.__proto__',
      ],
    ];
    for (const [url, raw, path] of bodies) {
      const res = await expectNothingChanged(h(), () =>
        h().api('POST', url, { role: 'intake', raw, headers: { 'content-type': 'application/json' } }),
      );
      expectError(res, 400, 'validation_failed');
      expect(res.body.error.details.map((d: any) => d.path)).toContain(path);
      expect(res.body.error.message).toContain('__proto__');
    }
    const kept = await h().api('POST', '/v1/orders', {
      role: 'intake',
      raw: order('{"constructor":"y","toString":"z"}'),
      headers: { 'content-type': 'application/json' },
    });
    expect(kept.status).toBe(202);
    expect(JSON.stringify((await h().api('GET', `/v1/orders/${kept.body.id}`)).body.metadata)).toBe(
      '{"constructor":"y","toString":"z"}',
    );
  });

  it('when an Idempotency-Key is reused with other metadata, then 422; with the same metadata, a replay', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const body = { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }], metadata: { a: '1', b: '2' } };
    const key = { 'Idempotency-Key': `k-${ref()}` };
    const first = await h().api('POST', '/v1/orders', { role: 'intake', body, headers: key });
    expect(first.status).toBe(202);
    const again = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { ...body, metadata: { b: '2', a: '1' } },
      headers: key,
    });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.id).toBe(first.body.id);
    const other = await expectNothingChanged(h(), () =>
      h().api('POST', '/v1/orders', { role: 'intake', body: { ...body, metadata: { a: '1', b: '3' } }, headers: key }),
    );
    expectError(other, 422, 'idempotency_key_reused');
    expect(other.body.error.details).toEqual([
      { path: 'Idempotency-Key', message: 'already used with a different body' },
    ]);
  });
});

describe('change 12: customers', () => {
  it('when POST /v1/customers is sent again with its Idempotency-Key, then the same body replays and another is 422', async () => {
    const body = { email: `idem-${ref()}@example.test`, name: 'Idem', metadata: { crm: '42' } };
    const key = { 'Idempotency-Key': `c-${ref()}` };
    const first = await h().api('POST', '/v1/customers', { role: 'intake', body, headers: key });
    expect(first.status, first.text).toBe(201);
    expect(first.headers.get('location')).toBe(`/v1/customers/${first.body.id}`);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await expectNothingChanged(h(), () =>
      h().api('POST', '/v1/customers', { role: 'intake', body, headers: key }),
    );
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    const other = await expectNothingChanged(h(), () =>
      h().api('POST', '/v1/customers', { role: 'intake', body: { ...body, name: 'Other' }, headers: key }),
    );
    expectError(other, 422, 'idempotency_key_reused');
    // The same key string for an order is another request.
    const p = await makeProduct(h(), 1);
    expect(
      (
        await h().api('POST', '/v1/orders', {
          role: 'intake',
          body: { customer_id: first.body.id, lines: [{ sku: p.sku, quantity: 1 }] },
          headers: key,
        })
      ).status,
    ).toBe(202);
    const same = await h().ctx.db('customers').whereRaw('lower(email) = lower(?)', [body.email]).count('* as n');
    expect(Number(same[0].n)).toBe(1);
  });

  it('when an e-mail is taken (any letter case), then 409 conflict with Location and details naming that customer', async () => {
    const email = `Taken-${ref()}@Example.test`;
    const first = await h().api('POST', '/v1/customers', { role: 'intake', body: { email, name: 'First' } });
    expect(first.status).toBe(201);
    for (const headers of [{}, { 'Idempotency-Key': `t-${ref()}` }] as Record<string, string>[]) {
      const res = await expectNothingChanged(h(), () =>
        h().api('POST', '/v1/customers', {
          role: 'intake',
          body: { email: email.toLowerCase(), name: 'Second' },
          headers,
        }),
      );
      expectError(res, 409, 'conflict');
      expect(res.headers.get('location')).toBe(`/v1/customers/${first.body.id}`);
      expect(res.body.error.details[0].path).toBe('body.email');
      expect(res.body.error.details[0].message).toContain(first.body.id);
    }
    const other = await makeCustomer(h());
    const patch = await expectNothingChanged(h(), () =>
      h().api('PATCH', `/v1/customers/${other.id}`, { body: { email: email.toUpperCase() } }),
    );
    expectError(patch, 409, 'conflict');
    expect(patch.headers.get('location')).toBe(`/v1/customers/${first.body.id}`);
  });

  it('when customers are listed, then newest first, paginated, and email matches case-insensitively; readers per the access rules', async () => {
    const made = [];
    for (let i = 0; i < 3; i++)
      made.push(
        (
          await h().api('POST', '/v1/customers', {
            role: 'intake',
            body: { email: `list-${i}-${ref()}@Example.test`, name: `L${i}` },
          })
        ).body,
      );
    const found = await h().api('GET', `/v1/customers?email=${encodeURIComponent(made[1].email.toUpperCase())}`, {
      role: 'intake',
    });
    expect(found.status, found.text).toBe(200);
    expect(found.body).toEqual({ data: [made[1]], next_cursor: null });
    expect((await h().api('GET', '/v1/customers?email=nobody@example.test', { role: 'viewer' })).body).toEqual({
      data: [],
      next_cursor: null,
    });
    const all: any[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page: any = await h().api('GET', `/v1/customers?limit=2${cursor ? `&cursor=${cursor}` : ''}`, {
        role: 'intake',
      });
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(2);
      all.push(...page.body.data);
      cursor = page.body.next_cursor;
    }
    const ids = all.map((c) => c.id);
    expect(ids).toEqual([...ids].sort().reverse());
    for (const m of made) expect(ids).toContain(m.id);
    expect((await h().api('GET', '/v1/customers', { role: 'feed' })).status).toBe(403);
    expectError(await h().api('GET', '/v1/customers?limit=0', { role: 'intake' }), 400, 'validation_failed');
    expectError(await h().api('GET', '/v1/customers?cursor=nonsense', { role: 'intake' }), 400, 'validation_failed');
  });
});

describe('change 7: external_ref unique per key name', () => {
  it('when 20 POSTs of one external_ref race, then exactly one order, and 19 × 409 each with Location naming it', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 100);
    const r = ref();
    const res = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        h().api('POST', '/v1/orders', {
          ...as(i % 2 ? 'key-shop-a' : 'key-shop-a2'),
          body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }], external_ref: r },
          // half with an Idempotency-Key (the transaction path), half without (group commit)
          headers: {
            authorization: `Bearer ${i % 2 ? 'key-shop-a' : 'key-shop-a2'}`,
            ...(i % 4 < 2 ? { 'Idempotency-Key': `race-${r}-${i}` } : {}),
          },
        }),
      ),
    );
    const won = res.filter((x) => x.status === 202);
    const lost = res.filter((x) => x.status === 409);
    expect(won.length, res.map((x) => x.status).join(',')).toBe(1);
    expect(lost.length).toBe(19);
    const rows = await h().ctx.db('orders').where({ external_ref: r });
    expect(rows.map((o) => o.id)).toEqual([won[0].body.id]);
    expect(rows[0].key_name).toBe('shop-a');
    for (const l of lost) {
      expectError(l, 409, 'conflict');
      expect(l.headers.get('location')).toBe(`/v1/orders/${won[0].body.id}`);
      expect(l.body.error.details[0].path).toBe('external_ref');
    }
    // Each refused order left nothing behind: one order's lines, history and outbox row.
    expect(Number((await h().ctx.db('order_lines').where({ order_id: won[0].body.id }).count('* as n'))[0].n)).toBe(1);
    expect(Number((await h().ctx.db('outbox').where({ job_id: won[0].body.id }).count('* as n'))[0].n)).toBe(1);
    const report = await checkInvariants(h().ctx.db);
    expect(report.counts['external-ref-once']).toBe(0);
    // The rule can fail: without the index, a second order of that key name with the ref is reported.
    const other = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await h().ctx.db.raw('DROP INDEX orders_external_ref_per_key');
    try {
      await h().ctx.db('orders').where({ id: other.id }).update({ key_name: 'shop-a', external_ref: r });
      expect((await checkInvariants(h().ctx.db)).counts['external-ref-once']).toBe(1);
    } finally {
      await h().ctx.db('orders').where({ id: other.id }).update({ external_ref: null });
      await h().ctx.db.raw(`CREATE UNIQUE INDEX orders_external_ref_per_key ON orders (key_name, external_ref)
        WHERE key_name IS NOT NULL AND external_ref IS NOT NULL`);
    }
  });

  it('when external_ref is empty, then 400 naming it and nothing is stored (it would be a reference usable once); null means none', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const body = { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] };
    const res = await expectNothingChanged(h(), () =>
      h().api('POST', '/v1/orders', { role: 'intake', body: { ...body, external_ref: '' } }),
    );
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.map((d: any) => d.path)).toEqual(['body.external_ref']);
    for (let i = 0; i < 2; i++) {
      const none = await h().api('POST', '/v1/orders', { role: 'intake', body: { ...body, external_ref: null } });
      expect(none.status).toBe(202);
    }
  });

  it('when the same external_ref comes from another key name, or again as a true replay, then it is accepted or replayed', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const r = ref();
    const body = { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }], external_ref: r };
    const key = { 'Idempotency-Key': `k-${r}` };
    const a = await h().api('POST', '/v1/orders', {
      ...as('key-shop-a'),
      body,
      headers: { ...as('key-shop-a').headers, ...key },
    });
    expect(a.status).toBe(202);
    const replay = await h().api('POST', '/v1/orders', {
      ...as('key-shop-a'),
      body,
      headers: { ...as('key-shop-a').headers, ...key },
    });
    expect(replay.status).toBe(202);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body.id).toBe(a.body.id);
    const b = await h().api('POST', '/v1/orders', { ...as('key-shop-b'), body });
    expect(b.status).toBe(202);
    const before = await orderCount(h());
    const dup = await h().api('POST', '/v1/orders', {
      ...as('key-shop-b'),
      body: { ...body, lines: [{ sku: p.sku, quantity: 2 }] },
    });
    expectError(dup, 409, 'conflict');
    expect(dup.headers.get('location')).toBe(`/v1/orders/${b.body.id}`);
    expect(await orderCount(h())).toBe(before);
    // Orders without external_ref are never in each other's way.
    await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
  });

  it('when old orders (no key name) share an external_ref, then the index ignores them and a new order with it is accepted', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const r = ref();
    for (let i = 0; i < 2; i++) {
      const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
      await h().ctx.db('orders').where({ id: o.id }).update({ external_ref: r, key_name: null });
    }
    const res = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }], external_ref: r },
    });
    expect(res.status, res.text).toBe(202);
  });
});

describe('change 14: edits are checked at once', () => {
  it('when a PATCH names an unknown or inactive SKU, then 400 naming that line and the order is unchanged', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const off = await makeProduct(h(), 5);
    await h().api('PATCH', `/v1/products/${off.sku}`, { body: { active: false } });
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    for (const [lines, path, msg] of [
      [
        [
          { sku: p.sku, quantity: 2 },
          { sku: 'SKU-NOPE', quantity: 1 },
        ],
        'body.lines.1.sku',
        'unknown',
      ],
      [[{ sku: off.sku, quantity: 1 }], 'body.lines.0.sku', 'not active'],
    ] as const) {
      const res = await expectNothingChanged(h(), () =>
        h().api('PATCH', `/v1/orders/${o.id}`, { role: 'intake', body: { lines } }),
      );
      expectError(res, 400, 'validation_failed');
      expect(res.body.error.details).toEqual([{ path, message: expect.stringContaining(msg) }]);
    }
    const ok = await h().api('PATCH', `/v1/orders/${o.id}`, {
      role: 'intake',
      body: { lines: [{ sku: p.sku, quantity: 2 }] },
    });
    expect(ok.status, ok.text).toBe(202);
  });
});

describe('change 9: order queries', () => {
  it('when orders are filtered by external_ref, q, reason, created and updated times, then each filter is honoured', async () => {
    const ca = await makeCustomer(h(), { email: `Query-${ref()}@Example.test` });
    const cb = await makeCustomer(h());
    const pa = await makeProduct(h(), 5);
    const pb = await makeProduct(h(), 5);
    const r = ref();
    const o1 = await placeOrder(h(), ca.id, [{ sku: pa.sku, quantity: 1 }], { external_ref: r });
    const o2 = await placeOrder(h(), cb.id, [{ sku: pb.sku, quantity: 1 }]);
    const o3 = await placeOrder(h(), cb.id, [{ sku: pa.sku, quantity: 1 }]);
    await h()
      .ctx.db('orders')
      .where({ id: o2.id })
      .update({
        status: 'rejected',
        status_reason: 'SKU X is Not Active',
        created_at: new Date('2026-01-15T10:00:00Z'),
        updated_at: new Date('2026-01-15T10:00:00Z'),
      });
    await h()
      .ctx.db('orders')
      .where({ id: o3.id })
      .update({ status_reason: '100%_done', created_at: new Date('2026-01-16T10:00:00Z') });
    const ids = async (qs: string) => {
      const res = await h().api('GET', `/v1/orders?${qs}`, { role: 'intake' });
      expect(res.status, `${qs}: ${res.text}`).toBe(200);
      return res.body.data.map((o: any) => o.id);
    };
    expect(await ids(`external_ref=${r}`)).toEqual([o1.id]);
    expect(await ids(`q=${r}`)).toEqual([o1.id]);
    expect(await ids(`q=${o2.id.slice(0, 13)}`)).toContain(o2.id);
    expect(await ids(`q=${o2.id.toUpperCase()}`)).toEqual([o2.id]);
    expect(await ids(`q=${encodeURIComponent(ca.email.toLowerCase())}`)).toEqual([o1.id]);
    expect(await ids(`q=${pb.sku}`)).toEqual([o2.id]);
    expect(await ids(`q=${pa.sku}`)).toEqual([o3.id, o1.id]);
    expect(await ids('reason=not%20active')).toEqual([o2.id]);
    expect(await ids('reason=100%25_')).toEqual([o3.id]);
    expect(await ids('reason=0%25d')).toEqual([]); // % and _ are literal
    expect(await ids('created_from=2026-01-15&created_to=2026-01-15')).toEqual([o2.id]);
    expect(await ids('created_from=2026-01-15T12:00:00Z&created_to=2026-01-17')).toEqual([o3.id]);
    expect((await ids(`updated_since=2026-06-01&sku=${pa.sku}`)).sort()).toEqual([o1.id, o3.id].sort());
    expect(await ids(`q=${pa.sku}&customer_id=${cb.id}`)).toEqual([o3.id]);
    for (const qs of [
      'external_ref=',
      'created_from=yesterday',
      'updated_since=2026-13-01',
      'q=',
      'reason=',
      'status_reason=x',
    ])
      expectError(await h().api('GET', `/v1/orders?${qs}`, { role: 'intake' }), 400, 'validation_failed');
  });
});
