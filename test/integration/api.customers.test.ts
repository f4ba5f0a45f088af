import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { useHarness, type ApiResponse, type Page } from '../helpers/harness';
import { expectError, expectNothingChanged } from '../helpers/snapshot';

const h = useHarness({ workers: false });

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const MISSING = '0190d6c1-0000-7000-8000-000000000000';
let n = 0;
const email = () => `cust-${Date.now()}-${++n}@example.test`;

describe('POST /v1/customers', () => {
  it('when intake creates a customer, then 201 with the contract shape and the row is stored', async () => {
    const body = {
      email: email(),
      name: 'Grace Hopper',
      phone: '+1 (555) 010-0000',
      webhook_url: 'https://hooks.example.test/orders',
    };
    const res = await h().api('POST', '/v1/customers', { role: 'intake', body });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ ...body });
    expect(res.body.id).toMatch(UUID_V7);
    expect(res.body.created_at).toMatch(ISO_UTC);
    for (const k of ['id', 'email', 'name', 'phone', 'webhook_url', 'created_at']) expect(res.body).toHaveProperty(k);
    const row = await h().ctx.db('customers').where({ id: res.body.id }).first();
    expect(row).toMatchObject({ email: body.email, name: body.name, phone: body.phone, webhook_url: body.webhook_url });
  });

  it('when only email and name are given, then phone and webhook_url are null', async () => {
    const res = await h().api('POST', '/v1/customers', { role: 'intake', body: { email: email(), name: 'Minimal' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ phone: null, webhook_url: null });
  });

  it('when a field is missing or malformed, then 400 validation_failed naming it and no customer is stored', async () => {
    const good = { email: email(), name: 'Valid Name' };
    const cases: [string, unknown, string][] = [
      ['no email', { name: 'x' }, 'body.email'],
      ['no name', { email: email() }, 'body.name'],
      ['bad email', { ...good, email: 'not-an-email' }, 'body.email'],
      ['email number', { ...good, email: 42 }, 'body.email'],
      ['email too long', { ...good, email: `${'a'.repeat(250)}@example.test` }, 'body.email'],
      ['empty name', { ...good, name: '   ' }, 'body.name'],
      ['name too long', { ...good, name: 'n'.repeat(201) }, 'body.name'],
      ['name null', { ...good, name: null }, 'body.name'],
      ['phone letters', { ...good, phone: 'call me' }, 'body.phone'],
      ['phone too long', { ...good, phone: '1'.repeat(41) }, 'body.phone'],
      ['webhook ftp', { ...good, webhook_url: 'ftp://files.example.test/x' }, 'body.webhook_url'],
      ['webhook not a url', { ...good, webhook_url: 'hooks' }, 'body.webhook_url'],
      ['webhook number', { ...good, webhook_url: 5 }, 'body.webhook_url'],
      ['webhook too long', { ...good, webhook_url: `https://x.example.test/${'p'.repeat(2050)}` }, 'body.webhook_url'],
      ['NUL in name', { ...good, name: 'a\u0000b' }, 'body.name'],
    ];
    for (const [what, body, path] of cases) {
      const res = await expectNothingChanged(h(), () => h().api('POST', '/v1/customers', { role: 'intake', body }));
      expectError(res, 400, 'validation_failed');
      expect(
        res.body.error.details.map((d: any) => d.path),
        what,
      ).toContain(path);
    }
  });

  it('when the e-mail is taken (in any letter case), then 409 conflict and nothing is stored', async () => {
    const first = await makeCustomer(h());
    for (const e of [first.email, first.email.toUpperCase()]) {
      const res = await expectNothingChanged(h(), () =>
        h().api('POST', '/v1/customers', { role: 'intake', body: { email: e, name: 'Twin' } }),
      );
      expectError(res, 409, 'conflict');
      expect(res.body.error.details).toEqual([{ path: 'body.email', message: expect.any(String) }]);
    }
  });
});

describe('GET /v1/customers/:id', () => {
  it('when the customer exists, then 200 with the same fields as at creation', async () => {
    const c = await makeCustomer(h(), { phone: '123', webhook_url: 'http://localhost:9/x' });
    const res = await h().api('GET', `/v1/customers/${c.id}`, { role: 'intake' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject(c);
  });

  it('when the id is well-formed but unknown, or malformed, then 404 not_found (never 500)', async () => {
    expectError(await h().api('GET', `/v1/customers/${MISSING}`, { role: 'intake' }), 404, 'not_found');
    for (const bad of ['123', 'not-a-uuid', `${MISSING}x`, MISSING.replace(/-/g, ''), "'%20OR%201=1"]) {
      const res = await h().api('GET', `/v1/customers/${bad}`, { role: 'intake' });
      expect([400, 404], `${bad}: ${res.text}`).toContain(res.status);
      expectError(res, res.status, res.status === 404 ? 'not_found' : 'validation_failed');
    }
  });

  it('when the id is upper case, then the same customer is found', async () => {
    const c = await makeCustomer(h());
    const res = await h().api('GET', `/v1/customers/${c.id.toUpperCase()}`, { role: 'intake' });
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(c.id);
  });
});

describe('PATCH /v1/customers/:id', () => {
  it('when fields are changed, then 200 with the new values, stored, and the others kept', async () => {
    const c = await makeCustomer(h(), { phone: '555', webhook_url: 'https://a.example.test/h' });
    const newEmail = email();
    const res = await h().api('PATCH', `/v1/customers/${c.id}`, {
      body: { name: 'Renamed', email: newEmail, webhook_url: null },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: c.id, name: 'Renamed', email: newEmail, phone: '555', webhook_url: null });
    expect(await h().ctx.db('customers').where({ id: c.id }).first()).toMatchObject({
      name: 'Renamed',
      email: newEmail,
      phone: '555',
      webhook_url: null,
    });
    const again = await h().api('PATCH', `/v1/customers/${c.id}`, { body: { phone: null } });
    expect(again.body).toMatchObject({ name: 'Renamed', phone: null });
  });

  it('when the patch is empty or malformed, then 400 and the customer is unchanged', async () => {
    const c = await makeCustomer(h());
    for (const body of [
      {},
      { email: 'nope' },
      { name: '' },
      { webhook_url: 'mailto:x@y.z' },
      { phone: 'abc' },
      { unknown_field: 1 },
      { blocked: 'yes' },
      { blocked: null },
    ]) {
      const res = await expectNothingChanged(h(), () => h().api('PATCH', `/v1/customers/${c.id}`, { body }));
      expectError(res, 400, 'validation_failed');
    }
    const empty = await expectNothingChanged(h(), () => h().api('PATCH', `/v1/customers/${c.id}`, {}));
    expectError(empty, 400, 'validation_failed');
  });

  it('when the new e-mail belongs to another customer, then 409 conflict and nothing changes', async () => {
    const a = await makeCustomer(h());
    const b = await makeCustomer(h());
    const res = await expectNothingChanged(h(), () =>
      h().api('PATCH', `/v1/customers/${b.id}`, { body: { email: a.email.toUpperCase() } }),
    );
    expectError(res, 409, 'conflict');
  });

  it('when the customer does not exist, then 404 and nothing is created', async () => {
    const res = await expectNothingChanged(h(), () =>
      h().api('PATCH', `/v1/customers/${MISSING}`, { body: { name: 'Ghost' } }),
    );
    expectError(res, 404, 'not_found');
    expectError(await h().api('PATCH', '/v1/customers/xyz', { body: { name: 'Ghost' } }), 404, 'not_found');
  });
});

describe('GET /v1/customers/:id/orders', () => {
  it('when a customer has orders, then they are listed newest first, paginated, and only theirs', async () => {
    const c = await makeCustomer(h());
    const other = await makeCustomer(h());
    const p = await makeProduct(h(), 100);
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) mine.push((await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }])).id);
    await placeOrder(h(), other.id, [{ sku: p.sku, quantity: 1 }]);

    const seen: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url = `/v1/customers/${c.id}/orders?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const res: ApiResponse<Page<{ id: string; customer_id: string; seq: number }>> = await h().api('GET', url, {
        role: 'intake',
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body.data.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.data);
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen.map((o) => o.id)).toEqual([...mine].reverse());
    expect(seen.every((o) => o.customer_id === c.id)).toBe(true);
    const seqs = seen.map((o) => o.seq);
    expect([...seqs].sort((x, y) => y - x)).toEqual(seqs);
    expect(seen[0]).toMatchObject({ status: 'received', lines: [{ sku: p.sku, quantity: 1 }] });
  });

  it('when the customer has no orders, then an empty page', async () => {
    const c = await makeCustomer(h());
    const res = await h().api('GET', `/v1/customers/${c.id}/orders`, { role: 'intake' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [], next_cursor: null });
  });

  it('when the customer is unknown or the query is bad, then 404 / 400', async () => {
    const c = await makeCustomer(h());
    expectError(await h().api('GET', `/v1/customers/${MISSING}/orders`, { role: 'intake' }), 404, 'not_found');
    expectError(await h().api('GET', '/v1/customers/abc/orders', { role: 'intake' }), 404, 'not_found');
    for (const q of [
      'limit=0',
      'limit=201',
      'limit=abc',
      'limit=1.5',
      'cursor=@@@',
      'cursor=eyJ4IjoxfQ',
      'status=shipped',
    ]) {
      const res = await h().api('GET', `/v1/customers/${c.id}/orders?${q}`, { role: 'intake' });
      expectError(res, 400, 'validation_failed');
    }
  });
});
