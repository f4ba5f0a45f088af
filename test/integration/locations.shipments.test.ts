import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useHarness, waitFor } from '../helpers/harness';
import {
  allocationsOf,
  getOrder,
  level,
  makeCustomerId,
  makeLocation,
  makeProductAt,
  movements,
  orderReaching,
  totals,
  untilOrder,
} from '../helpers/locations-kit';

const h = useHarness();

const ship = (id: string, body: unknown) => h().api('POST', `/v1/orders/${id}/shipments`, { role: 'feed', body });
const ret = (id: string, body: unknown) => h().api('POST', `/v1/orders/${id}/returns`, { role: 'feed', body });

describe('locations: shipments happen once', () => {
  it('when 50 clients POST one shipment_id at once, then one shipment and one sale per SKU exist, 1 × 201 and 49 × 200 with the same body; another body → 422', async () => {
    await h().startWorkers();
    const x = await makeProductAt(h(), { main: 10 });
    const y = await makeProductAt(h(), { main: 10 });
    const c = await makeCustomerId(h());
    const o = await orderReaching(
      h(),
      c,
      [
        { sku: x, quantity: 5 },
        { sku: y, quantity: 5 },
      ],
      'confirmed',
    );
    const shipmentId = `shp-${randomUUID()}`;
    const body = {
      shipment_id: shipmentId,
      lines: [
        { sku: x, quantity: 2 },
        { sku: y, quantity: 3 },
      ],
      carrier: 'DHL',
      tracking: 'T-1',
    };
    const answers = await Promise.all(Array.from({ length: 50 }, () => ship(o.id, body)));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(49);
    const first = answers.find((a) => a.status === 201)!.body;
    for (const a of answers) expect(a.body).toEqual(first);
    expect(first).toMatchObject({ shipment_id: shipmentId, order_id: o.id, location: 'main', carrier: 'DHL' });

    const db = h().ctx.db;
    expect(Number((await db('shipments').where({ shipment_id: shipmentId }).count({ n: '*' }).first())!.n)).toBe(1);
    const sales = (await movements(db, { order_id: o.id })).filter((m) => m.type === 'sale');
    expect(sales.map((m) => [m.sku, m.quantity]).sort()).toEqual(
      [
        [x, -2],
        [y, -3],
      ].sort(),
    );
    expect(await totals(db, x)).toMatchObject({ on_hand: 8, reserved: 3 });
    expect(await totals(db, y)).toMatchObject({ on_hand: 7, reserved: 2 });
    expect((await getOrder(h(), o.id)).status).toBe('partially_shipped');

    const other = await ship(o.id, { ...body, lines: [{ sku: x, quantity: 1 }] });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    expect(other.body.error.details).toEqual([
      { path: 'body.shipment_id', message: 'already used with a different body' },
    ]);
    expect(Number((await db('shipments').where({ order_id: o.id }).count({ n: '*' }).first())!.n)).toBe(1);
    expect(await totals(db, x)).toMatchObject({ on_hand: 8, reserved: 3 });

    // An id with whitespace around it is 400, never trimmed into another id (a replay of this one).
    for (const [url, id] of [
      [`/v1/orders/${o.id}/shipments`, { shipment_id: ` ${shipmentId}` }],
      [`/v1/orders/${o.id}/shipments`, { shipment_id: `${shipmentId}\t` }],
      [`/v1/orders/${o.id}/returns`, { return_id: ' r-1 ' }],
    ] as const) {
      const sent = url.endsWith('returns')
        ? { ...id, lines: [{ sku: x, quantity: 1, disposition: 'restock' }] }
        : { ...body, ...id };
      const res = await h().api('POST', url, { role: 'feed', body: sent });
      expect(res.status, JSON.stringify(id)).toBe(400);
      expect(res.body.error.details.map((d: any) => d.path)).toEqual([`body.${Object.keys(id)[0]}`]);
    }
    expect(Number((await db('shipments').where({ order_id: o.id }).count({ n: '*' }).first())!.n)).toBe(1);
    expect(Number((await db('returns').where({ order_id: o.id }).count({ n: '*' }).first())!.n)).toBe(0);

    // A SKU the order does not have is 400 naming the line (not a 409 shortfall), and changes nothing.
    const stranger = await ship(o.id, {
      lines: [
        { sku: y, quantity: 1 },
        { sku: 'NOT-ON-ORDER', quantity: 1 },
      ],
    });
    expect(stranger.status).toBe(400);
    expect(stranger.body.error.details).toEqual([{ path: 'body.lines.1.sku', message: 'not a line of this order' }]);
    const back = await ret(o.id, { lines: [{ sku: 'NOT-ON-ORDER', quantity: 1, disposition: 'restock' }] });
    expect(back.status).toBe(400);
    expect(back.body.error.details).toEqual([{ path: 'body.lines.0.sku', message: 'not a line of this order' }]);
    expect(Number((await db('shipments').where({ order_id: o.id }).count({ n: '*' }).first())!.n)).toBe(1);
    expect(await totals(db, y)).toMatchObject({ on_hand: 7, reserved: 2 });

    // An order with nothing reserved anywhere (it waits for all of it): 409, with or without a location.
    const waiting = await orderReaching(h(), c, [{ sku: x, quantity: 50 }], 'awaiting_stock');
    for (const extra of [{}, { location: 'main' }]) {
      const none = await ship(waiting.id, { ...extra, lines: [{ sku: x, quantity: 1 }] });
      expect(none.status, JSON.stringify(extra)).toBe(409);
      expect(none.body.error.code).toBe('conflict');
    }
  });

  it('when 20 clients POST one return_id at once, then one return and one return movement per SKU exist, 1 × 201 and 19 × 200 with the same body; another body → 422', async () => {
    await h().startWorkers();
    const x = await makeProductAt(h(), { main: 10 });
    const y = await makeProductAt(h(), { main: 10 });
    const c = await makeCustomerId(h());
    const o = await orderReaching(
      h(),
      c,
      [
        { sku: x, quantity: 4 },
        { sku: y, quantity: 4 },
      ],
      'confirmed',
    );
    expect((await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' })).status).toBe(200);
    const returnId = `ret-${randomUUID()}`;
    const body = {
      return_id: returnId,
      lines: [
        { sku: x, quantity: 2, disposition: 'restock' },
        { sku: y, quantity: 1, disposition: 'restock' },
      ],
      reason: 'too big',
    };
    const answers = await Promise.all(Array.from({ length: 20 }, () => ret(o.id, body)));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(19);
    const first = answers.find((a) => a.status === 201)!.body;
    for (const a of answers) expect(a.body).toEqual(first);

    const db = h().ctx.db;
    expect(Number((await db('returns').where({ return_id: returnId }).count({ n: '*' }).first())!.n)).toBe(1);
    const returns = (await movements(db, { order_id: o.id })).filter((m) => m.type === 'return');
    expect(returns.map((m) => [m.sku, m.quantity, m.location]).sort()).toEqual(
      [
        [x, 2, 'main'],
        [y, 1, 'main'],
      ].sort(),
    );
    expect(await totals(db, x)).toMatchObject({ on_hand: 8, reserved: 0 });
    const after = await getOrder(h(), o.id);
    expect(after.lines.map((l: any) => [l.sku, l.returned])).toEqual([
      [x, 2],
      [y, 1],
    ]);

    const other = await ret(o.id, { ...body, reason: 'something else' });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    expect(await totals(db, x)).toMatchObject({ on_hand: 8 });
  });
});

describe('locations: shipments', () => {
  it('when units are reserved at two locations, then a shipment must name one (400), may not ship more than is reserved there (409, nothing shipped), and the status follows the units', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    const x = await makeProductAt(h(), { [a]: 2, [b]: 2 });
    const c = await makeCustomerId(h());
    const o = await orderReaching(h(), c, [{ sku: x, quantity: 3 }], 'confirmed');
    expect(allocationsOf(o, x)).toEqual({ [a]: { reserved: 2, shipped: 0 }, [b]: { reserved: 1, shipped: 0 } });
    const db = h().ctx.db;

    const noLoc = await ship(o.id, { lines: [{ sku: x, quantity: 1 }] });
    expect(noLoc.status).toBe(400);
    expect(noLoc.body.error.code).toBe('validation_failed');
    expect(noLoc.body.error.details.map((d: any) => d.path).join(' ')).toMatch(/location/);

    const tooMany = await ship(o.id, { location: b, lines: [{ sku: x, quantity: 2 }] });
    expect(tooMany.status).toBe(409);
    expect(tooMany.body.error.code).toBe('conflict');
    expect((await movements(db, { order_id: o.id })).filter((m) => m.type === 'sale')).toEqual([]);
    expect(await level(db, x, b)).toEqual({ on_hand: 2, reserved: 1 });
    expect(await db('shipments').where({ order_id: o.id })).toEqual([]);

    const s1 = await ship(o.id, { location: b, lines: [{ sku: x, quantity: 1 }] });
    expect(s1.status).toBe(201);
    let now = await getOrder(h(), o.id);
    expect(now.status).toBe('partially_shipped');
    expect(now.lines[0]).toMatchObject({ reserved: 2, shipped: 1 });
    expect(await level(db, x, b)).toEqual({ on_hand: 1, reserved: 0 });

    // A shipped order cannot be edited.
    const edit = await h().api('PATCH', `/v1/orders/${o.id}`, {
      role: 'intake',
      body: { lines: [{ sku: x, quantity: 1 }] },
    });
    expect(edit.status).toBe(409);
    expect(edit.body.error.code).toBe('invalid_state');

    // The rest, without naming the location: all that is reserved now is at A.
    const s2 = await ship(o.id, { lines: [{ sku: x, quantity: 2 }], carrier: 'UPS' });
    expect(s2.status).toBe(201);
    expect(s2.body.location).toBe(a);
    now = await getOrder(h(), o.id);
    expect(now.status).toBe('completed');
    expect(now.lines[0]).toMatchObject({ reserved: 0, shipped: 3 });
    expect(allocationsOf(now, x)).toEqual({ [a]: { reserved: 0, shipped: 2 }, [b]: { reserved: 0, shipped: 1 } });
    expect(now.shipments.map((s: any) => s.id)).toEqual([s1.body.id, s2.body.id]);
    expect(now.history.map((e: any) => e.status)).toEqual(['received', 'confirmed', 'partially_shipped', 'completed']);
    expect(await totals(db, x)).toEqual({ on_hand: 1, reserved: 0, backordered: 0 });

    // Each shipment yielded one shipment.created event.
    const events = await db('events').where({ order_id: o.id, type: 'shipment.created' }).select('payload');
    expect(events.map((e: any) => e.payload.data.shipment.id).sort()).toEqual([s1.body.id, s2.body.id].sort());
    const listed = await h().api('GET', `/v1/orders/${o.id}/shipments`);
    expect(listed.status).toBe(200);

    // Nothing more ships from a completed order.
    const late = await ship(o.id, { location: a, lines: [{ sku: x, quantity: 1 }] });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('invalid_state');
  });

  it('when a partly shipped order is fulfilled, then the rest ships, one shipment per location, and it is completed', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    const x = await makeProductAt(h(), { [a]: 2, [b]: 3 });
    const y = await makeProductAt(h(), { [a]: 0, [b]: 4 });
    const c = await makeCustomerId(h());
    // X: split A 2 + B 2 (nobody has 4 of X... B has 3) · Y from B.
    const o = await orderReaching(
      h(),
      c,
      [
        { sku: x, quantity: 4 },
        { sku: y, quantity: 2 },
      ],
      'confirmed',
    );
    expect(allocationsOf(o, x)).toEqual({ [a]: { reserved: 2, shipped: 0 }, [b]: { reserved: 2, shipped: 0 } });
    expect((await ship(o.id, { location: a, lines: [{ sku: x, quantity: 1 }] })).status).toBe(201);
    expect((await getOrder(h(), o.id)).status).toBe('partially_shipped');

    const f = await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
    expect(f.status).toBe(200);
    expect(f.body.status).toBe('completed');
    expect(f.body.shipments).toHaveLength(3);
    const fromFulfil = f.body.shipments.slice(1);
    expect(fromFulfil.map((s: any) => s.location).sort()).toEqual([a, b].sort());
    const at = (loc: string) => fromFulfil.find((s: any) => s.location === loc).lines;
    expect(at(a)).toEqual([{ sku: x, quantity: 1 }]);
    expect([...at(b)].sort((p: any, q: any) => (p.sku < q.sku ? -1 : 1))).toEqual(
      [
        { sku: x, quantity: 2 },
        { sku: y, quantity: 2 },
      ].sort((p, q) => (p.sku < q.sku ? -1 : 1)),
    );
    expect(f.body.lines.map((l: any) => [l.reserved, l.shipped])).toEqual([
      [0, 4],
      [0, 2],
    ]);
    const db = h().ctx.db;
    expect(await totals(db, x)).toEqual({ on_hand: 1, reserved: 0, backordered: 0 });
    expect(await totals(db, y)).toEqual({ on_hand: 2, reserved: 0, backordered: 0 });
    const sold = (await movements(db, { order_id: o.id })).filter((m) => m.type === 'sale');
    expect(sold.reduce((s, m) => s + m.quantity, 0)).toBe(-6);
    expect(
      Number((await db('events').where({ order_id: o.id, type: 'shipment.created' }).count({ n: '*' }).first())!.n),
    ).toBe(3);
    // Fulfil again: nothing left to fulfil.
    expect((await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' })).status).toBe(409);
  });

  it('when a confirmed order reserved at two locations is fulfilled, then it goes confirmed → completed in one step: no partially_shipped in its history or its events', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    const x = await makeProductAt(h(), { [a]: 1, [b]: 1 });
    const o = await orderReaching(h(), await makeCustomerId(h()), [{ sku: x, quantity: 2 }], 'confirmed');
    expect(allocationsOf(o, x)).toEqual({ [a]: { reserved: 1, shipped: 0 }, [b]: { reserved: 1, shipped: 0 } });
    const f = await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
    expect(f.status, f.text).toBe(200);
    expect(f.body.history.map((e: any) => e.status)).toEqual(['received', 'confirmed', 'completed']);
    expect(f.body.shipments.map((s: any) => s.location).sort()).toEqual([a, b].sort());
    const events = await h()
      .ctx.db('events')
      .where({ order_id: o.id })
      .orderBy('subject_sequence')
      .select('type', 'payload');
    // The transition, then each shipment it made (as a single shipment announces itself after its status).
    expect(events.map((e) => e.type)).toEqual([
      'order.confirmed',
      'order.completed',
      'shipment.created',
      'shipment.created',
    ]);
    expect(events.slice(2).map((e) => e.payload.data.shipment.location)).toEqual([a, b].sort());
    // Whoever may read the order may read its shipments and returns on their own too, intake included.
    for (const role of ['intake', 'feed', 'viewer', 'operator'] as const) {
      const s = await h().api('GET', `/v1/orders/${o.id}/shipments`, { role });
      expect(s.status, role).toBe(200);
      expect(s.body.data).toEqual(f.body.shipments);
      expect((await h().api('GET', `/v1/orders/${o.id}/returns`, { role })).body, role).toEqual({ data: [] });
    }
  });

  it('when a partly shipped order is cancelled, then only its unshipped units are released, shipped units stay sold, and waiting orders of those SKUs are served', async () => {
    await h().startWorkers();
    const x = await makeProductAt(h(), { main: 4 });
    const y = await makeProductAt(h(), { main: 2 });
    const c = await makeCustomerId(h());
    const o = await orderReaching(
      h(),
      c,
      [
        { sku: x, quantity: 4 },
        { sku: y, quantity: 2 },
      ],
      'confirmed',
    );
    const waitsX = await orderReaching(h(), c, [{ sku: x, quantity: 1 }], 'awaiting_stock');
    const waitsY = await orderReaching(h(), c, [{ sku: y, quantity: 2 }], 'awaiting_stock');
    expect((await ship(o.id, { lines: [{ sku: x, quantity: 3 }] })).status).toBe(201);
    expect((await getOrder(h(), o.id)).status).toBe('partially_shipped');

    const cancel = await h().api('POST', `/v1/orders/${o.id}/cancel`, {
      role: 'intake',
      body: { reason: 'no longer' },
    });
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe('cancelled');
    expect(cancel.body.lines.map((l: any) => [l.sku, l.reserved, l.shipped])).toEqual([
      [x, 0, 3],
      [y, 0, 0],
    ]);
    const db = h().ctx.db;
    const m = await movements(db, { order_id: o.id });
    expect(m.filter((r) => r.type === 'release').map((r) => [r.sku, r.quantity])).toEqual(
      [
        [x, -1],
        [y, -2],
      ].sort((p, q) => (p[0] < q[0] ? -1 : 1)),
    );
    expect(m.filter((r) => r.type === 'sale').map((r) => [r.sku, r.quantity])).toEqual([[x, -3]]);

    // The released units went to the waiting orders.
    const wx = await untilOrder(h(), waitsX.id, 'confirmed');
    const wy = await untilOrder(h(), waitsY.id, 'confirmed');
    expect(allocationsOf(wx, x)).toEqual({ main: { reserved: 1, shipped: 0 } });
    expect(allocationsOf(wy, y)).toEqual({ main: { reserved: 2, shipped: 0 } });
    expect(await totals(db, x)).toEqual({ on_hand: 1, reserved: 1, backordered: 0 });
    expect(await totals(db, y)).toEqual({ on_hand: 2, reserved: 2, backordered: 0 });
    // Cancelled is final: nothing ships from it.
    expect((await ship(o.id, { lines: [{ sku: y, quantity: 1 }] })).status).toBe(409);
  });
});

describe('locations: returns', () => {
  it('when shipped units come back, then restock is a return movement where they shipped from and serves a waiting order, damaged moves nothing, more than shipped is 409, and the status stays', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    const x = await makeProductAt(h(), { [a]: 0, [b]: 2 });
    const c = await makeCustomerId(h());
    const o = await orderReaching(h(), c, [{ sku: x, quantity: 2 }], 'confirmed');
    expect((await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' })).status).toBe(200);
    const waiting = await orderReaching(h(), c, [{ sku: x, quantity: 1 }], 'awaiting_stock');
    const db = h().ctx.db;

    const tooMany = await ret(o.id, { lines: [{ sku: x, quantity: 3, disposition: 'restock' }] });
    expect(tooMany.status).toBe(409);
    expect(tooMany.body.error.code).toBe('conflict');

    const r1 = await ret(o.id, { lines: [{ sku: x, quantity: 1, disposition: 'restock' }], reason: 'wrong colour' });
    expect(r1.status).toBe(201);
    expect(r1.body.lines).toEqual([{ sku: x, quantity: 1, disposition: 'restock', location: b }]);
    const returned = (await movements(db, { order_id: o.id })).filter((m) => m.type === 'return');
    expect(returned).toEqual([{ type: 'return', location: b, quantity: 1, sku: x }]);
    // on_hand at B rose and the unit went to the waiting order.
    const w = await untilOrder(h(), waiting.id, 'confirmed');
    expect(allocationsOf(w, x)).toEqual({ [b]: { reserved: 1, shipped: 0 } });
    expect(await level(db, x, b)).toEqual({ on_hand: 1, reserved: 1 });

    const before = await movements(db, { sku: x });
    const r2 = await ret(o.id, { lines: [{ sku: x, quantity: 1, disposition: 'damaged' }] });
    expect(r2.status).toBe(201);
    expect(await movements(db, { sku: x })).toEqual(before);
    expect(await totals(db, x)).toEqual({ on_hand: 1, reserved: 1, backordered: 0 });

    const r3 = await ret(o.id, { lines: [{ sku: x, quantity: 1, disposition: 'restock' }] });
    expect(r3.status).toBe(409);
    const after = await getOrder(h(), o.id);
    expect(after.status).toBe('completed');
    expect(after.lines[0]).toMatchObject({ shipped: 2, returned: 2 });
    expect(after.returns.map((r: any) => r.id)).toEqual([r1.body.id, r2.body.id]);
    expect(
      Number((await db('events').where({ order_id: o.id, type: 'return.created' }).count({ n: '*' }).first())!.n),
    ).toBe(2);
  });
  it("when a return restocks to a location that does not exist, then it is 400 naming that line's location and nothing changes", async () => {
    await h().startWorkers();
    const x = await makeProductAt(h(), { main: 3 });
    const c = await makeCustomerId(h());
    const o = await orderReaching(h(), c, [{ sku: x, quantity: 2 }], 'confirmed');
    expect((await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' })).status).toBe(200);
    const db = h().ctx.db;
    const before = await movements(db, { sku: x });

    const res = await ret(o.id, {
      lines: [{ sku: x, quantity: 1, disposition: 'restock', location: 'no-such-place' }],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'body.lines.0.location' })]);
    expect(await movements(db, { sku: x })).toEqual(before);
    expect((await getOrder(h(), o.id)).lines[0]).toMatchObject({ shipped: 2, returned: 0 });
    expect(await db('returns').where({ order_id: o.id })).toEqual([]);
  });
});

describe('locations: transfers', () => {
  it('when units are transferred, then only unreserved ones move (409 otherwise), totals stay, the ledger shows transfer_out/transfer_in, and stock landing at an active location serves the waiting lines', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    const store = await makeLocation(h(), 30, { active: false });
    const x = await makeProductAt(h(), { [a]: 5, [b]: 0, [store]: 4 });
    const c = await makeCustomerId(h());
    await orderReaching(h(), c, [{ sku: x, quantity: 3 }], 'confirmed'); // 3 of A's 5 reserved
    const db = h().ctx.db;

    const tooMany = await h().api('POST', `/v1/inventory/${x}/transfers`, { body: { from: a, to: b, quantity: 3 } });
    expect(tooMany.status).toBe(409);
    expect(tooMany.body.error.code).toBe('conflict');
    expect(await level(db, x, a)).toEqual({ on_hand: 5, reserved: 3 });

    const t = await h().api('POST', `/v1/inventory/${x}/transfers`, {
      body: { from: a, to: b, quantity: 2, reason: 'rebalance' },
    });
    expect(t.status).toBe(201);
    expect(t.body).toMatchObject({ sku: x, from: a, to: b, quantity: 2, reason: 'rebalance' });
    expect(t.body.movements).toEqual([
      { type: 'transfer_out', location: a, quantity: -2 },
      { type: 'transfer_in', location: b, quantity: 2 },
    ]);
    expect(await totals(db, x)).toEqual({ on_hand: 9, reserved: 3, backordered: 0 });
    expect(await level(db, x, a)).toEqual({ on_hand: 3, reserved: 3 });
    expect(await level(db, x, b)).toEqual({ on_hand: 2, reserved: 0 });
    const moved = (await movements(db, { sku: x })).filter((m) => m.type.startsWith('transfer'));
    expect(moved.map((m) => [m.type, m.location, m.quantity])).toEqual([
      ['transfer_out', a, -2],
      ['transfer_in', b, 2],
    ]);

    // 2 free at active locations; an order for 3 waits. 1 unit from the inactive store lands at B: served.
    const w = await orderReaching(h(), c, [{ sku: x, quantity: 3 }], 'awaiting_stock');
    const t2 = await h().api('POST', `/v1/inventory/${x}/transfers`, { body: { from: store, to: b, quantity: 1 } });
    expect(t2.status).toBe(201);
    const served = await untilOrder(h(), w.id, 'confirmed');
    expect(allocationsOf(served, x)).toEqual({ [b]: { reserved: 3, shipped: 0 } });
    expect(await totals(db, x)).toEqual({ on_hand: 9, reserved: 6, backordered: 0 });
    expect(await level(db, x, store)).toEqual({ on_hand: 3, reserved: 0 });
    expect(Number((await db('transfers').where({ sku: x }).count({ n: '*' }).first())!.n)).toBe(2);
  });
});

describe('a fulfilment over two locations locks its stock rows in SKU order', () => {
  it('when an order ships its higher SKU from the first location and its lower SKU, held by another transaction, from the second, then the fulfilment waits holding neither, and completes once the other commits', async () => {
    await h().startWorkers();
    const low = await makeLocation(h(), 10);
    const high = await makeLocation(h(), 20);
    expect(low < high).toBe(true);
    // Shipped location by location (`low` first), the SKU at `low` must be the higher one, or
    // location order and SKU order agree and there is nothing to show.
    let atLow = '';
    let atHigh = '';
    for (let i = 0; i < 20 && !(atLow > atHigh); i++) {
      atLow = await makeProductAt(h(), { [low]: 5 });
      atHigh = await makeProductAt(h(), { [high]: 5 });
    }
    expect(atLow > atHigh).toBe(true);
    const o = await orderReaching(
      h(),
      await makeCustomerId(h()),
      [
        { sku: atLow, quantity: 1 },
        { sku: atHigh, quantity: 1 },
      ],
      'confirmed',
    );
    expect(allocationsOf(o, atLow)).toEqual({ [low]: { reserved: 1, shipped: 0 } });
    expect(allocationsOf(o, atHigh)).toEqual({ [high]: { reserved: 1, shipped: 0 } });

    const db = h().ctx.db;
    const holder = await db.transaction();
    let fulfilled: Promise<{ status: number; text: string }> | undefined;
    try {
      await holder.raw('SELECT 1 FROM stock WHERE sku = ? FOR NO KEY UPDATE', [atHigh]);
      const holderPid = (await holder.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      fulfilled = h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
      await waitFor(
        async () =>
          (
            await db.raw(
              `SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> ? AND wait_event_type = 'Lock' AND query ILIKE '%stock%'`,
              [holderPid],
            )
          ).rows[0].n > 0,
        { what: 'the fulfilment to wait for the lower SKU' },
      );
      // Were the higher SKU shipped (and locked) first, this would fail with lock_not_available,
      // and without NOWAIT the two transactions would deadlock.
      await holder.raw('SELECT 1 FROM stock WHERE sku = ? FOR NO KEY UPDATE NOWAIT', [atLow]);
      await holder.commit();
      const res = await fulfilled;
      expect(res.status, res.text).toBe(200);
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
      await fulfilled?.catch(() => undefined);
    }
    const after = await untilOrder(h(), o.id, 'completed');
    expect(allocationsOf(after, atLow)).toEqual({ [low]: { reserved: 0, shipped: 1 } });
    expect(allocationsOf(after, atHigh)).toEqual({ [high]: { reserved: 0, shipped: 1 } });
  });
});
