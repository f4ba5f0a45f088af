import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder, stockOf, untilStatus } from '../helpers/factories';
import { useHarness, type ApiResponse, type Page } from '../helpers/harness';
import { expectError, expectNothingChanged } from '../helpers/snapshot';

const h = useHarness({ workers: false });

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const MISSING = '0190d6c1-0000-7000-8000-000000000000';
const statusOf = async (id: string) => (await h().ctx.db('orders').where({ id }).first()).status as string;

describe('POST /v1/orders (intake shape)', () => {
  it('when a valid order is posted, then 202 {id, seq, status, created_at} with Location, and the order is stored before the response', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const res = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 2 }], external_ref: 'PO-1' },
    });
    expect(res.status, res.text).toBe(202);
    expect(Object.keys(res.body).sort()).toEqual(['created_at', 'id', 'seq', 'status']);
    expect(res.body.id).toMatch(UUID_V7);
    expect(res.body.status).toBe('received');
    expect(Number.isInteger(res.body.seq)).toBe(true);
    expect(res.body.created_at).toMatch(ISO_UTC);
    expect(res.headers.get('location')).toBe(`/v1/orders/${res.body.id}`);
    expect(await h().ctx.db('orders').where({ id: res.body.id }).first()).toMatchObject({
      customer_id: c.id,
      status: 'received',
      on_insufficient_stock: 'backorder',
      external_ref: 'PO-1',
      seq: res.body.seq,
    });
    expect(await h().ctx.db('order_lines').where({ order_id: res.body.id }).select('sku', 'quantity')).toEqual([
      { sku: p.sku, quantity: 2 },
    ]);
  });

  it('when the order is read back, then it has the contract fields', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }], { on_insufficient_stock: 'reject' });
    const res = await h().api('GET', `/v1/orders/${o.id}`, { role: 'intake' });
    expect(res.status).toBe(200);
    for (const k of [
      'id',
      'seq',
      'customer_id',
      'status',
      'status_reason',
      'lines',
      'total_cents',
      'attempts',
      'history',
      'created_at',
      'updated_at',
    ]) {
      expect(res.body, k).toHaveProperty(k);
    }
    expect(res.body).toMatchObject({
      id: o.id,
      seq: o.seq,
      customer_id: c.id,
      status: 'received',
      status_reason: null,
      attempts: 0,
    });
    expect(res.body.lines).toEqual([expect.objectContaining({ sku: p.sku, quantity: 2, reserved: 0 })]);
    expect(res.body.lines[0]).toHaveProperty('unit_price_cents');
    expect(res.body.history).toEqual([
      {
        status: 'received',
        at: expect.stringMatching(ISO_UTC),
        detail: expect.anything(),
        actor: { role: 'intake', name: 'intake' },
      },
    ]);
    expect(res.body.created_at).toMatch(ISO_UTC);
    expect(res.body.updated_at).toMatch(ISO_UTC);
  });

  it('when lines are at the limits (100 lines, quantity 10000), then the order is accepted', async () => {
    const c = await makeCustomer(h());
    const lines = Array.from({ length: 100 }, (_, i) => ({ sku: `EDGE-${i}`, quantity: i === 0 ? 10000 : 1 }));
    const res = await h().api('POST', '/v1/orders', { role: 'intake', body: { customer_id: c.id, lines } });
    expect(res.status, res.text).toBe(202);
    expect(
      Number((await h().ctx.db('order_lines').where({ order_id: res.body.id }).count({ n: '*' }).first())!.n),
    ).toBe(100);
  });

  it('when the body is malformed in any way, then 400 validation_failed naming the field, and no order, line, history or outbox row is stored', async () => {
    const c = await makeCustomer(h());
    const line = { sku: 'SKU-A', quantity: 1 };
    const ok = { customer_id: c.id, lines: [line] };
    const cases: [string, unknown, string][] = [
      ['no customer', { lines: [line] }, 'body.customer_id'],
      ['customer not a uuid', { ...ok, customer_id: 'c-1' }, 'body.customer_id'],
      ['customer number', { ...ok, customer_id: 7 }, 'body.customer_id'],
      ['no lines', { customer_id: c.id }, 'body.lines'],
      ['lines empty', { ...ok, lines: [] }, 'body.lines'],
      ['lines object', { ...ok, lines: { sku: 'A', quantity: 1 } }, 'body.lines'],
      [
        '101 lines',
        { ...ok, lines: Array.from({ length: 101 }, (_, i) => ({ sku: `L${i}`, quantity: 1 })) },
        'body.lines',
      ],
      ['duplicate SKU', { ...ok, lines: [line, { ...line, quantity: 2 }] }, 'body.lines.1.sku'],
      ['quantity 0', { ...ok, lines: [{ sku: 'A', quantity: 0 }] }, 'body.lines.0.quantity'],
      ['quantity negative', { ...ok, lines: [{ sku: 'A', quantity: -1 }] }, 'body.lines.0.quantity'],
      ['quantity 10001', { ...ok, lines: [{ sku: 'A', quantity: 10001 }] }, 'body.lines.0.quantity'],
      ['quantity fraction', { ...ok, lines: [{ sku: 'A', quantity: 1.5 }] }, 'body.lines.0.quantity'],
      ['quantity string', { ...ok, lines: [{ sku: 'A', quantity: '2' }] }, 'body.lines.0.quantity'],
      ['no quantity', { ...ok, lines: [{ sku: 'A' }] }, 'body.lines.0.quantity'],
      ['bad sku', { ...ok, lines: [{ sku: 'a b', quantity: 1 }] }, 'body.lines.0.sku'],
      ['empty sku', { ...ok, lines: [{ sku: '', quantity: 1 }] }, 'body.lines.0.sku'],
      ['long sku', { ...ok, lines: [{ sku: 'x'.repeat(65), quantity: 1 }] }, 'body.lines.0.sku'],
      ['line null', { ...ok, lines: [null] }, 'body.lines.0'],
      ['bad policy', { ...ok, on_insufficient_stock: 'wait' }, 'body.on_insufficient_stock'],
      ['external_ref long', { ...ok, external_ref: 'r'.repeat(256) }, 'body.external_ref'],
      ['external_ref number', { ...ok, external_ref: 12 }, 'body.external_ref'],
    ];
    for (const [what, body, path] of cases) {
      const res = await expectNothingChanged(h(), () => h().api('POST', '/v1/orders', { role: 'intake', body }));
      expectError(res, 400, 'validation_failed');
      expect(
        res.body.error.details.map((d: any) => d.path),
        what,
      ).toContain(path);
    }
    for (const body of [[], 'order', null, 1]) {
      expectError(
        await expectNothingChanged(h(), () => h().api('POST', '/v1/orders', { role: 'intake', body })),
        400,
        'validation_failed',
      );
    }
    expectError(
      await expectNothingChanged(h(), () => h().api('POST', '/v1/orders', { role: 'intake' })),
      400,
      'validation_failed',
    );
  });

  it('when the Idempotency-Key header is empty or longer than 255, then 400 and nothing is stored', async () => {
    const c = await makeCustomer(h());
    const body = { customer_id: c.id, lines: [{ sku: 'A', quantity: 1 }] };
    for (const key of ['', 'k'.repeat(256)]) {
      const res = await expectNothingChanged(h(), () =>
        h().api('POST', '/v1/orders', { role: 'intake', body, headers: { 'idempotency-key': key } }),
      );
      expectError(res, 400, 'validation_failed');
    }
    const edge = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body,
      headers: { 'idempotency-key': 'k'.repeat(255) },
    });
    expect(edge.status, edge.text).toBe(202);
  });
});

describe('GET /v1/orders/:id and the list', () => {
  it('when the id is unknown or malformed, then 404 (or 400), never 500', async () => {
    expectError(await h().api('GET', `/v1/orders/${MISSING}`, { role: 'intake' }), 404, 'not_found');
    for (const bad of ['1', 'abc', `${MISSING}0`, MISSING.slice(1), 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz']) {
      const res = await h().api('GET', `/v1/orders/${bad}`, { role: 'intake' });
      expect([400, 404], res.text).toContain(res.status);
      expectError(res, res.status, res.status === 404 ? 'not_found' : 'validation_failed');
    }
  });

  it('when listed with filters and a small limit, then pages are newest first, complete, and filtered by status, customer and sku', async () => {
    const c1 = await makeCustomer(h());
    const c2 = await makeCustomer(h());
    const a = await makeProduct(h(), 100);
    const b = await makeProduct(h(), 100);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await placeOrder(h(), c1.id, [{ sku: a.sku, quantity: 1 }])).id);
    const other = await placeOrder(h(), c2.id, [
      { sku: b.sku, quantity: 1 },
      { sku: a.sku, quantity: 1 },
    ]);
    const cancelled = await placeOrder(h(), c1.id, [{ sku: b.sku, quantity: 1 }]);
    expect((await h().api('POST', `/v1/orders/${cancelled.id}/cancel`, { role: 'intake' })).status).toBe(200);

    const pageAll = async (q: string) => {
      const out: any[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 50; i++) {
        const res: ApiResponse<Page<{ id: string; status: string }>> = await h().api(
          'GET',
          `/v1/orders?${q}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
          { role: 'intake' },
        );
        expect(res.status, res.text).toBe(200);
        expect(res.body.data.length).toBeLessThanOrEqual(2);
        out.push(...res.body.data);
        cursor = res.body.next_cursor;
        if (!cursor) break;
      }
      return out;
    };
    const byC1 = await pageAll(`customer_id=${c1.id}`);
    expect(byC1.map((o) => o.id)).toEqual([cancelled.id, ...[...ids].reverse()]);
    const bySku = await pageAll(`sku=${b.sku}`);
    expect(bySku.map((o) => o.id)).toEqual([cancelled.id, other.id]);
    const c1Received = await pageAll(`customer_id=${c1.id}&status=received`);
    expect(c1Received.map((o) => o.id)).toEqual([...ids].reverse());
    const cancelledAll = await pageAll('status=cancelled');
    expect(cancelledAll.map((o) => o.id)).toContain(cancelled.id);
    expect(cancelledAll.every((o) => o.status === 'cancelled')).toBe(true);
    const everything = await pageAll('');
    const seqs = everything.map((o) => o.seq);
    expect([...seqs].sort((x, y) => y - x)).toEqual(seqs);
    expect(new Set(everything.map((o) => o.id)).size).toBe(
      Number((await h().ctx.db('orders').count({ n: '*' }).first())!.n),
    );
    const max = await h().api('GET', '/v1/orders?limit=200', { role: 'intake' });
    expect(max.status).toBe(200);
  });

  it('when the list query is malformed, then 400 validation_failed', async () => {
    for (const q of [
      'limit=0',
      'limit=201',
      'limit=ten',
      'status=shipped',
      'customer_id=123',
      'sku=a%20b',
      'cursor=%%%',
      'cursor=InN0cmluZyI',
      `cursor=${'A'.repeat(600)}`,
    ]) {
      expectError(await h().api('GET', `/v1/orders?${q}`, { role: 'intake' }), 400, 'validation_failed');
    }
  });
});

describe('order actions: state checks and bad input', () => {
  it('when an action names an unknown or malformed order, then 404 and nothing changes', async () => {
    const acts: [string, string, 'intake' | 'feed' | 'operator', unknown?][] = [
      ['POST', '/cancel', 'intake'],
      ['POST', '/fulfill', 'feed'],
      ['POST', '/retry', 'operator'],
      ['DELETE', '', 'intake'],
      ['PATCH', '', 'intake', { on_insufficient_stock: 'reject' }],
    ];
    for (const id of [MISSING, 'not-an-id']) {
      for (const [m, suffix, role, body] of acts) {
        const res = await expectNothingChanged(h(), () => h().api(m, `/v1/orders/${id}${suffix}`, { role, body }));
        expectError(res, 404, 'not_found');
      }
    }
  });

  it('when a received order is fulfilled or retried, then 409 invalid_state and nothing changes', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    expectError(
      await expectNothingChanged(h(), () => h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' })),
      409,
      'invalid_state',
    );
    expectError(
      await expectNothingChanged(h(), () => h().api('POST', `/v1/orders/${o.id}/retry`, { role: 'operator' })),
      409,
      'invalid_state',
    );
  });

  it('when a received order is edited, then 202, new lines, same seq, still received', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const q = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const res = await h().api('PATCH', `/v1/orders/${o.id}`, {
      role: 'intake',
      body: { lines: [{ sku: q.sku, quantity: 3 }], on_insufficient_stock: 'reject' },
    });
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({
      id: o.id,
      seq: o.seq,
      status: 'received',
      lines: [expect.objectContaining({ sku: q.sku, quantity: 3 })],
    });
    expect((await h().ctx.db('orders').where({ id: o.id }).first()).on_insufficient_stock).toBe('reject');
  });

  it('when an edit or cancel body is malformed, then 400 naming the field and the order is unchanged', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const edits: unknown[] = [
      {},
      { lines: [] },
      {
        lines: [
          { sku: p.sku, quantity: 1 },
          { sku: p.sku, quantity: 2 },
        ],
      },
      { lines: [{ sku: p.sku, quantity: 0 }] },
      { on_insufficient_stock: 'maybe' },
      { lines: 'all' },
    ];
    for (const body of edits) {
      expectError(
        await expectNothingChanged(h(), () => h().api('PATCH', `/v1/orders/${o.id}`, { role: 'intake', body })),
        400,
        'validation_failed',
      );
    }
    for (const body of [{ reason: '' }, { reason: 'r'.repeat(501) }, { reason: 42 }, []]) {
      expectError(
        await expectNothingChanged(h(), () => h().api('POST', `/v1/orders/${o.id}/cancel`, { role: 'intake', body })),
        400,
        'validation_failed',
      );
    }
    expect(await statusOf(o.id)).toBe('received');
  });

  it('when a cancelled order is cancelled, edited, fulfilled or retried again, then 409 invalid_state and nothing changes', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const cancel = await h().api('POST', `/v1/orders/${o.id}/cancel`, {
      role: 'intake',
      body: { reason: 'customer changed mind' },
    });
    expect(cancel.status, cancel.text).toBe(200);
    expect(cancel.body).toMatchObject({ status: 'cancelled', status_reason: 'customer changed mind' });
    for (const [m, suffix, role, body] of [
      ['POST', '/cancel', 'intake'],
      ['DELETE', '', 'intake'],
      ['POST', '/fulfill', 'feed'],
      ['POST', '/retry', 'operator'],
      ['PATCH', '', 'intake', { on_insufficient_stock: 'reject' }],
    ] as const) {
      const res = await expectNothingChanged(h(), () => h().api(m, `/v1/orders/${o.id}${suffix}`, { role, body }));
      expectError(res, 409, 'invalid_state');
    }
  });

  it('when a confirmed order is retried, then 409; once completed, every action is 409 and stock stays', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), o.id, 'confirmed', { what: 'confirmed' });
    expectError(
      await expectNothingChanged(h(), () => h().api('POST', `/v1/orders/${o.id}/retry`, { role: 'operator' })),
      409,
      'invalid_state',
    );
    const done = await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
    expect(done.status, done.text).toBe(200);
    expect(done.body.status).toBe('completed');
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 3, reserved: 0 });
    for (const [m, suffix, role, body] of [
      ['POST', '/cancel', 'intake'],
      ['DELETE', '', 'intake'],
      ['POST', '/fulfill', 'operator'],
      ['POST', '/retry', 'operator'],
      ['PATCH', '', 'intake', { lines: [{ sku: p.sku, quantity: 1 }] }],
    ] as const) {
      const res = await expectNothingChanged(h(), () => h().api(m, `/v1/orders/${o.id}${suffix}`, { role, body }));
      expectError(res, 409, 'invalid_state');
    }
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 3, reserved: 0 });
  });

  it('when an order waits for stock, then retry is 409 and nothing changes (retry is for failed orders only)', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 0);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), o.id, 'awaiting_stock', { what: 'awaiting_stock' });
    await h().ctx.published.flush();
    expectError(
      await expectNothingChanged(h(), () => h().api('POST', `/v1/orders/${o.id}/retry`, { role: 'operator' })),
      409,
      'invalid_state',
    );
  });

  it('when an order has failed, then edit is 409 and nothing changes; retry brings it back to received', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    // Arrange: `failed` for real needs PostgreSQL down through every attempt; the state is what matters here.
    await h().ctx.db('orders').where({ id: o.id }).update({ status: 'failed', status_reason: 'database unavailable' });
    await h().ctx.published.flush();
    expectError(
      await expectNothingChanged(h(), () =>
        h().api('PATCH', `/v1/orders/${o.id}`, { role: 'intake', body: { lines: [{ sku: p.sku, quantity: 2 }] } }),
      ),
      409,
      'invalid_state',
    );
    const retry = await h().api('POST', `/v1/orders/${o.id}/retry`, { role: 'operator' });
    expect(retry.status, retry.text).toBe(202);
    expect(retry.body.status).toBe('received');
  });

  it('when serving the waiting lines fails after a cancel or edit committed, then the answer is still the committed order, not a 500', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 2);
    const holder = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), holder.id, 'confirmed', { what: 'holder confirmed' });
    const waiter = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), waiter.id, 'awaiting_stock', { what: 'waiter awaiting' });
    const editor = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await untilStatus(h(), editor.id, 'awaiting_stock', { what: 'editor awaiting' });
    // Arrange: allocation to the first waiting order breaks (it marks that order's lines reserved).
    await h().ctx.db.raw(
      `CREATE FUNCTION break_allocation() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'allocation broken'; END $$`,
    );
    await h().ctx.db.raw(
      `CREATE TRIGGER break_allocation BEFORE UPDATE ON order_lines FOR EACH ROW WHEN (OLD.order_id = '${waiter.id}' AND NEW.reserved) EXECUTE FUNCTION break_allocation()`,
    );
    try {
      const cancel = await h().api('POST', `/v1/orders/${holder.id}/cancel`, { role: 'intake' });
      expect(cancel.status, cancel.text).toBe(200);
      expect(cancel.body.status).toBe('cancelled');
      const edit = await h().api('PATCH', `/v1/orders/${editor.id}`, {
        role: 'intake',
        body: { on_insufficient_stock: 'reject' },
      });
      expect(edit.status, edit.text).toBe(202);
      expect(await statusOf(waiter.id)).toBe('awaiting_stock');
    } finally {
      await h().ctx.db.raw('DROP TRIGGER break_allocation ON order_lines');
      await h().ctx.db.raw('DROP FUNCTION break_allocation()');
    }
  });

  it('when a rejected order is cancelled, edited or fulfilled, then 409 invalid_state', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 1);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }], { on_insufficient_stock: 'reject' });
    await untilStatus(h(), o.id, 'rejected', { what: 'rejected' });
    await h().ctx.published.flush();
    for (const [m, suffix, role, body] of [
      ['POST', '/cancel', 'intake'],
      ['POST', '/fulfill', 'feed'],
      ['PATCH', '', 'intake', { on_insufficient_stock: 'backorder' }],
    ] as const) {
      const res = await expectNothingChanged(h(), () => h().api(m, `/v1/orders/${o.id}${suffix}`, { role, body }));
      expectError(res, 409, 'invalid_state');
    }
  });

  it('when an unknown or blocked customer or an unknown SKU is ordered, then intake accepts the shape and the worker rejects it, saying why', async () => {
    await h().startWorkers(['orders']);
    const p = await makeProduct(h(), 5);
    const noCustomer = await placeOrder(h(), MISSING, [{ sku: p.sku, quantity: 1 }]);
    const c = await makeCustomer(h());
    const ghost = `GHOST-${randomBytes(3).toString('hex')}`;
    const noSku = await placeOrder(h(), c.id, [{ sku: ghost, quantity: 1 }]);
    const blocked = await makeCustomer(h());
    await h().ctx.db('customers').where({ id: blocked.id }).update({ blocked: true });
    const fromBlocked = await placeOrder(h(), blocked.id, [{ sku: p.sku, quantity: 1 }]);
    const reasons = await Promise.all(
      [noCustomer, noSku, fromBlocked].map(async (o) => (await untilStatus(h(), o.id, 'rejected')).status_reason),
    );
    expect(reasons).toEqual(['unknown customer', `unknown SKU ${ghost}`, 'customer is blocked']);
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 5, reserved: 0 });
  });
});
