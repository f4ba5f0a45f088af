import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ledgerOnHand, makeCustomer, makeProduct, placeOrder, stockOf, untilStatus } from '../helpers/factories';
import { useHarness, waitFor, type ApiResponse, type Page } from '../helpers/harness';
import { expectError, expectNothingChanged } from '../helpers/snapshot';

const h = useHarness({ workers: false });

const sku = (p = 'P') => `${p}-${randomBytes(4).toString('hex')}`;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const movements = (s: string) =>
  h().ctx.db('stock_movements').where({ sku: s }).orderBy('id').select('type', 'quantity', 'reason');

describe('POST /v1/products', () => {
  it('when an operator creates a product with initial stock, then 201 with stock figures, Location, and an `initial` movement', async () => {
    const s = sku();
    const res = await h().api('POST', '/v1/products', {
      body: { sku: s, name: 'Gadget', price_cents: 1999, initial_stock: 7 },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('location')).toBe(`/v1/products/${s}`);
    expect(res.body).toMatchObject({
      sku: s,
      name: 'Gadget',
      price_cents: 1999,
      stock: { on_hand: 7, reserved: 0, available: 7, backordered: 0, version: 0 },
    });
    expect(res.body.created_at).toMatch(ISO_UTC);
    expect(await movements(s)).toEqual([{ type: 'initial', quantity: 7, reason: expect.any(String) }]);
    expect(await ledgerOnHand(h(), s)).toBe(7);
  });

  it('when initial_stock is omitted or 0, then on_hand is 0 and the ledger is empty', async () => {
    for (const extra of [{}, { initial_stock: 0 }]) {
      const s = sku();
      const res = await h().api('POST', '/v1/products', { body: { sku: s, name: 'Empty', price_cents: 0, ...extra } });
      expect(res.status).toBe(201);
      expect(res.body.stock).toEqual({ on_hand: 0, reserved: 0, available: 0, backordered: 0, version: 0 });
      expect(await movements(s)).toEqual([]);
    }
  });

  it('when the SKU is at the edges of its alphabet and length, then it is accepted', async () => {
    for (const s of [
      'a',
      `${'Z'.repeat(60)}${randomBytes(2).toString('hex')}`,
      `a.b_c-${randomBytes(2).toString('hex')}`,
    ]) {
      const res = await h().api('POST', '/v1/products', { body: { sku: s, name: 'Edge', price_cents: 1 } });
      expect(res.status, `${s}: ${res.text}`).toBe(201);
      expect((await h().api('GET', `/v1/products/${s}`)).body.sku).toBe(s);
    }
  });

  it('when a field is bad, then 400 validation_failed naming it and no product, stock or movement is stored', async () => {
    const good = { sku: sku(), name: 'Widget', price_cents: 100, initial_stock: 5 };
    const cases: [unknown, string][] = [
      [{ ...good, sku: '' }, 'body.sku'],
      [{ ...good, sku: 'has space' }, 'body.sku'],
      [{ ...good, sku: 'slash/sku' }, 'body.sku'],
      [{ ...good, sku: 'ümlaut' }, 'body.sku'],
      [{ ...good, sku: 'x'.repeat(65) }, 'body.sku'],
      [{ ...good, sku: 12345 }, 'body.sku'],
      [{ ...good, name: '' }, 'body.name'],
      [{ sku: good.sku, price_cents: 1 }, 'body.name'],
      [{ ...good, price_cents: -1 }, 'body.price_cents'],
      [{ ...good, price_cents: 1.5 }, 'body.price_cents'],
      [{ ...good, price_cents: '100' }, 'body.price_cents'],
      [{ sku: good.sku, name: 'x' }, 'body.price_cents'],
      [{ ...good, initial_stock: -1 }, 'body.initial_stock'],
      [{ ...good, initial_stock: 2.5 }, 'body.initial_stock'],
      [{ ...good, initial_stock: '5' }, 'body.initial_stock'],
      [{ ...good, initial_stock: 1e12 }, 'body.initial_stock'],
    ];
    for (const [body, path] of cases) {
      const res = await expectNothingChanged(h(), () => h().api('POST', '/v1/products', { body }));
      expectError(res, 400, 'validation_failed');
      expect(
        res.body.error.details.map((d: any) => d.path),
        JSON.stringify(body).slice(0, 80),
      ).toContain(path);
    }
  });

  it('when the SKU exists, then 409 conflict and the existing product and stock are untouched', async () => {
    const p = await makeProduct(h(), 3);
    const res = await expectNothingChanged(h(), () =>
      h().api('POST', '/v1/products', { body: { sku: p.sku, name: 'Dup', price_cents: 1, initial_stock: 100 } }),
    );
    expectError(res, 409, 'conflict');
  });
});

describe('GET /v1/products/:sku', () => {
  it('when the product exists, then its stock figures are shown; available is 0 while anything is backordered', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 4);
    await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 3 }]);
    await waitFor(async () => (await stockOf(h(), p.sku)).reserved === 3, { what: 'reserved' });
    let res = await h().api('GET', `/v1/products/${p.sku}`);
    expect(res.body.stock).toMatchObject({ on_hand: 4, reserved: 3, available: 1, backordered: 0 });
    await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await waitFor(async () => (await stockOf(h(), p.sku)).backordered === 2, { what: 'backordered' });
    res = await h().api('GET', `/v1/products/${p.sku}`);
    expect(res.body.stock).toMatchObject({ on_hand: 4, reserved: 3, available: 0, backordered: 2 });
  });

  it('when the SKU is unknown or malformed, then 404 not_found', async () => {
    for (const s of ['NOPE-404', 'x'.repeat(65), 'a%20b', '%C3%BC']) {
      expectError(await h().api('GET', `/v1/products/${s}`), 404, 'not_found');
    }
  });
});

describe('PATCH /v1/products/:sku', () => {
  it('when name, price or active change, then 200 and stock is untouched; bad or empty patches are 400; unknown is 404', async () => {
    const p = await makeProduct(h(), 2);
    const res = await h().api('PATCH', `/v1/products/${p.sku}`, {
      body: { name: 'Renamed', price_cents: 42, active: false },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({
      name: 'Renamed',
      price_cents: 42,
      active: false,
      stock: { on_hand: 2, version: 0 },
    });
    for (const body of [{}, { price_cents: -5 }, { name: '' }, { active: 'yes' }]) {
      expectError(
        await expectNothingChanged(h(), () => h().api('PATCH', `/v1/products/${p.sku}`, { body })),
        400,
        'validation_failed',
      );
    }
    expectError(
      await expectNothingChanged(h(), () => h().api('PATCH', '/v1/products/UNKNOWN-SKU', { body: { name: 'x' } })),
      404,
      'not_found',
    );
  });
});

describe('GET /v1/inventory', () => {
  it('when listed with a limit, then every product appears once, in SKU order, across pages', async () => {
    const prefix = `INV${randomBytes(3).toString('hex')}`;
    for (let i = 0; i < 5; i++) await makeProduct(h(), i, { sku: `${prefix}-${i}` });
    const all: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: ApiResponse<Page<{ sku: string; on_hand: number }>> = await h().api(
        'GET',
        `/v1/inventory?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(res.status, res.text).toBe(200);
      expect(res.body.data.length).toBeLessThanOrEqual(3);
      all.push(...res.body.data);
      cursor = res.body.next_cursor;
    } while (cursor && ++pages < 100);
    const skus = all.map((r) => r.sku);
    expect(new Set(skus).size).toBe(skus.length);
    expect([...skus].sort()).toEqual(skus);
    const mine = all.filter((r) => r.sku.startsWith(prefix));
    expect(mine.map((r) => r.on_hand)).toEqual([0, 1, 2, 3, 4]);
    expect(mine[2]).toMatchObject({
      sku: `${prefix}-2`,
      on_hand: 2,
      reserved: 0,
      available: 2,
      backordered: 0,
      version: 0,
    });
    expect(all.length).toBe(Number((await h().ctx.db('products').count({ n: '*' }).first())!.n));
  });

  it('when low_stock=N, then only rows with available ≤ N are listed', async () => {
    const prefix = `LOW${randomBytes(3).toString('hex')}`;
    for (const q of [0, 2, 3, 10]) await makeProduct(h(), q, { sku: `${prefix}-${String(q).padStart(2, '0')}` });
    const res = await h().api('GET', '/v1/inventory?low_stock=2&limit=200');
    expect(res.status).toBe(200);
    expect(res.body.data.every((r: any) => r.available <= 2)).toBe(true);
    expect(res.body.data.filter((r: any) => r.sku.startsWith(prefix)).map((r: any) => r.on_hand)).toEqual([0, 2]);
  });

  it('when the query is malformed, then 400 validation_failed', async () => {
    for (const q of [
      'limit=0',
      'limit=201',
      'limit=x',
      'low_stock=-1',
      'low_stock=abc',
      'cursor=!!!',
      'cursor=bnVsbA',
    ]) {
      expectError(await h().api('GET', `/v1/inventory?${q}`), 400, 'validation_failed');
    }
  });
});

describe('POST /v1/inventory/:sku/adjustments', () => {
  it('when stock is adjusted up and down, then 201 movements, on_hand follows and equals the ledger, version advances', async () => {
    const p = await makeProduct(h(), 10);
    const up = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, {
      body: { delta: 5, reason: 'found a box' },
    });
    expect(up.status, up.text).toBe(201);
    expect(up.body).toMatchObject({
      sku: p.sku,
      type: 'adjustment',
      quantity: 5,
      reason: 'found a box',
      stock: { on_hand: 15, version: 1 },
    });
    expect(up.body.created_at).toMatch(ISO_UTC);
    const down = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, {
      body: { delta: -15, reason: 'water damage' },
    });
    expect(down.status, down.text).toBe(201);
    expect(down.body).toMatchObject({ quantity: -15, stock: { on_hand: 0, reserved: 0, version: 2 } });
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 0, reserved: 0, version: 2 });
    expect(await ledgerOnHand(h(), p.sku)).toBe(0);
    expect((await movements(p.sku)).map((m) => [m.type, m.quantity])).toEqual([
      ['initial', 10],
      ['adjustment', 5],
      ['adjustment', -15],
    ]);
  });

  it('when on_hand would fall below reserved (or below 0), then 409 conflict and stock and ledger are unchanged', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 3 }]);
    await waitFor(async () => (await stockOf(h(), p.sku)).reserved === 3, { what: 'reserved' });
    const tooFar = await expectNothingChanged(h(), () =>
      h().api('POST', `/v1/inventory/${p.sku}/adjustments`, { body: { delta: -3, reason: 'shrinkage' } }),
    );
    expectError(tooFar, 409, 'conflict');
    expect(tooFar.body.error.details).toEqual([{ path: 'body.delta', message: expect.stringContaining('-2') }]);
    const exact = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, {
      body: { delta: -2, reason: 'shrinkage' },
    });
    expect(exact.status, exact.text).toBe(201);
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 3, reserved: 3 });

    const empty = await makeProduct(h(), 0);
    expectError(
      await expectNothingChanged(h(), () =>
        h().api('POST', `/v1/inventory/${empty.sku}/adjustments`, { body: { delta: -1, reason: 'x' } }),
      ),
      409,
      'conflict',
    );
  });

  it('when stock is adjusted up while orders wait, then the waiting backorder is served', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 0);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 4 }]);
    await untilStatus(h(), o.id, 'awaiting_stock', { what: 'awaiting_stock' });
    const res = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, { body: { delta: 4, reason: 'recount' } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.stock).toMatchObject({ on_hand: 4, reserved: 4, backordered: 0, available: 0 });
    expect((await h().ctx.db('orders').where({ id: o.id }).first()).status).toBe('confirmed');
  });

  it('when serving the waiting lines fails after the adjustment committed, then still 201 (a retry would add twice) and the movement is stored once', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 0);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), o.id, 'awaiting_stock', { what: 'awaiting_stock' });
    // Arrange: allocation (which marks order lines reserved) breaks; the adjustment itself does not touch order lines.
    await h().ctx.db.raw(
      `CREATE FUNCTION break_allocation() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'allocation broken'; END $$`,
    );
    await h().ctx.db.raw(
      `CREATE TRIGGER break_allocation BEFORE UPDATE ON order_lines FOR EACH ROW WHEN (OLD.sku = '${p.sku}') EXECUTE FUNCTION break_allocation()`,
    );
    try {
      const res = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, {
        body: { delta: 2, reason: 'recount' },
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({ type: 'adjustment', quantity: 2 });
      expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 2, reserved: 0, backordered: 2 });
      expect((await movements(p.sku)).filter((m) => m.type === 'adjustment')).toHaveLength(1);
    } finally {
      await h().ctx.db.raw('DROP TRIGGER break_allocation ON order_lines');
      await h().ctx.db.raw('DROP FUNCTION break_allocation()');
    }
    // The maintenance sweep serves what the failed allocation missed.
    await h().startWorkers(['maintenance']);
    await untilStatus(h(), o.id, 'confirmed', { what: 'confirmed by the sweep', timeout: 20000 });
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 2, reserved: 2, backordered: 0 });
  });

  it('when the adjustment is malformed, then 400 naming the field, nothing changes', async () => {
    const p = await makeProduct(h(), 5);
    const cases: [unknown, string][] = [
      [{ delta: 0, reason: 'x' }, 'body.delta'],
      [{ delta: 1.5, reason: 'x' }, 'body.delta'],
      [{ delta: '3', reason: 'x' }, 'body.delta'],
      [{ reason: 'x' }, 'body.delta'],
      [{ delta: 2e9, reason: 'x' }, 'body.delta'],
      [{ delta: 1 }, 'body.reason'],
      [{ delta: 1, reason: '  ' }, 'body.reason'],
      [{ delta: 1, reason: 'r'.repeat(501) }, 'body.reason'],
    ];
    for (const [body, path] of cases) {
      const res = await expectNothingChanged(h(), () =>
        h().api('POST', `/v1/inventory/${p.sku}/adjustments`, { body }),
      );
      expectError(res, 400, 'validation_failed');
      expect(res.body.error.details.map((d: any) => d.path)).toContain(path);
    }
    expectError(
      await expectNothingChanged(h(), () => h().api('POST', `/v1/inventory/${p.sku}/adjustments`, {})),
      400,
      'validation_failed',
    );
  });

  it('when adjustments take on_hand past 2^31, then they apply (stock is bigint); a delta beyond ±1,000,000,000 is a 400 and changes nothing', async () => {
    const p = await makeProduct(h(), 1_000_000_000);
    for (const reason of ['big', 'bigger']) {
      const res = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, {
        body: { delta: 1_000_000_000, reason },
      });
      expect(res.status, res.text).toBe(201);
    }
    expect((await h().api('GET', `/v1/products/${p.sku}`)).body.stock).toMatchObject({
      on_hand: 3_000_000_000,
      available: 3_000_000_000,
    });
    for (const delta of [1_000_000_001, -1_000_000_001, Number.MAX_SAFE_INTEGER]) {
      const res = await expectNothingChanged(h(), () =>
        h().api('POST', `/v1/inventory/${p.sku}/adjustments`, { body: { delta, reason: 'too big' } }),
      );
      expectError(res, 400, 'validation_failed');
      expect(res.body.error.details[0].path).toContain('delta');
    }
  });

  it('when the SKU is unknown, then 404 and no movement is written, whatever the body', async () => {
    expectError(
      await expectNothingChanged(h(), () =>
        h().api('POST', '/v1/inventory/NO-SUCH-SKU/adjustments', { body: { delta: 1, reason: 'x' } }),
      ),
      404,
      'not_found',
    );
    expectError(
      await expectNothingChanged(h(), () =>
        h().api('POST', '/v1/inventory/bad%20sku/adjustments', { body: { delta: 1, reason: 'x' } }),
      ),
      404,
      'not_found',
    );
  });
});

describe('POST /v1/restocks (shape)', () => {
  it('when a single event or a batch is posted, then 202 {accepted, duplicates}; an event id seen before counts as duplicate', async () => {
    const p = await makeProduct(h(), 0);
    const id = `ev-${randomBytes(4).toString('hex')}`;
    const one = await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: { event_id: id, sku: p.sku, quantity: 3, occurred_at: '2026-01-02T03:04:05Z' },
    });
    expect(one.status, one.text).toBe(202);
    expect(one.body).toEqual({ accepted: 1, duplicates: 0 });
    const batch = await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: {
        events: [
          { event_id: id, sku: p.sku, quantity: 3 },
          { event_id: `${id}-b`, sku: p.sku, quantity: 1 },
        ],
      },
    });
    expect(batch.status, batch.text).toBe(202);
    expect(batch.body).toEqual({ accepted: 1, duplicates: 1 });
    expect(await h().ctx.db('restock_events').where('event_id', 'like', `${id}%`).count({ n: '*' }).first()).toEqual({
      n: 2,
    });
  });

  it('when any event is malformed or names an unknown SKU, then 400 naming it and nothing of the request is stored', async () => {
    const p = await makeProduct(h(), 0);
    const ev = () => ({ event_id: `ev-${randomBytes(4).toString('hex')}`, sku: p.sku, quantity: 2 });
    const cases: [unknown, string][] = [
      [{ ...ev(), event_id: undefined }, 'body.event_id'],
      [{ ...ev(), event_id: '' }, 'body.event_id'],
      [{ ...ev(), event_id: 'e'.repeat(256) }, 'body.event_id'],
      [{ ...ev(), quantity: 0 }, 'body.quantity'],
      [{ ...ev(), quantity: -4 }, 'body.quantity'],
      [{ ...ev(), quantity: 1.5 }, 'body.quantity'],
      [{ ...ev(), quantity: '2' }, 'body.quantity'],
      [{ ...ev(), sku: 'bad sku' }, 'body.sku'],
      [{ ...ev(), occurred_at: 'yesterday' }, 'body.occurred_at'],
      [{ ...ev(), sku: 'NO-SUCH-SKU' }, 'body.sku'],
      [{ events: [] }, 'body.events'],
      [{ events: 'all' }, 'body.events'],
      [{ events: [ev(), { ...ev(), quantity: 0 }] }, 'body.events.1.quantity'],
      [{ events: [ev(), { ...ev(), sku: 'NO-SUCH-SKU' }] }, 'body.events.1.sku'],
      [{ events: Array.from({ length: 1001 }, ev) }, 'body.events'],
    ];
    for (const [body, path] of cases) {
      const res = await expectNothingChanged(h(), () => h().api('POST', '/v1/restocks', { role: 'feed', body }));
      expectError(res, 400, 'validation_failed');
      const paths: string[] = res.body.error.details.map((d: any) => d.path);
      expect(paths.includes(path), `${JSON.stringify(body).slice(0, 100)}: ${paths}`).toBe(true);
    }
    expectError(
      await expectNothingChanged(h(), () => h().api('POST', '/v1/restocks', { role: 'feed' })),
      400,
      'validation_failed',
    );
  });

  it('when one batch repeats an event id, then the batch is 400 naming the repeat, and nothing is stored (change 13)', async () => {
    const p = await makeProduct(h(), 0);
    const id = `ev-${randomBytes(4).toString('hex')}`;
    const res = await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: {
        events: [
          { event_id: id, sku: p.sku, quantity: 2 },
          { event_id: id, sku: p.sku, quantity: 5 },
        ],
      },
    });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toEqual(['body.events.1.event_id']);
    expect(await h().ctx.db('restock_events').where({ event_id: id })).toEqual([]);
  });
});
