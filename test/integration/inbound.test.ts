import { describe, expect, it } from 'vitest';
import { checkInvariants } from '../../src/invariants';
import { makeCustomer, makeProduct, placeOrder, stockOf, untilStatus } from '../helpers/factories';
import { useHarness, waitFor, type Harness } from '../helpers/harness';

const h = useHarness();

const restock = (hh: Harness, body: unknown) => hh.api('POST', '/v1/restocks', { role: 'feed', body });
const storedEvents = (hh: Harness, ids: string[]) => hh.ctx.db('restock_events').whereIn('event_id', ids);

describe('restock ids mean one thing', () => {
  it('when an event_id seen before comes with another SKU, then the batch is 409 naming it and nothing of it is applied', async () => {
    await h().startWorkers();
    const a = await makeProduct(h(), 0);
    const b = await makeProduct(h(), 0);
    expect((await restock(h(), { event_id: 'same-1', sku: a.sku, quantity: 2 })).status).toBe(202);
    const reused = await restock(h(), {
      events: [
        { event_id: 'fresh-1', sku: b.sku, quantity: 5 },
        { event_id: 'same-1', sku: b.sku, quantity: 2 },
      ],
    });
    expect(reused.status).toBe(409);
    expect(reused.body.error.code).toBe('conflict');
    expect(reused.body.error.details).toEqual([
      { path: 'body.events.1.event_id', message: 'event_id same-1 was received before with another sku' },
    ]);
    // Another quantity, location or inbound_id is the same conflict.
    const loc = `L-${a.sku.slice(4)}`;
    expect((await h().api('POST', '/v1/locations', { body: { code: loc, name: 'East' } })).status).toBe(201);
    for (const [other, what] of [
      [{ quantity: 3 }, 'quantity'],
      [{ quantity: 2, location: loc }, 'location'],
    ] as const) {
      const r = await restock(h(), { event_id: 'same-1', sku: a.sku, ...other });
      expect(r.status).toBe(409);
      expect(r.body.error.details).toEqual([
        { path: 'body.event_id', message: `event_id same-1 was received before with another ${what}` },
      ]);
    }
    await waitFor(async () => (await stockOf(h(), a.sku)).on_hand === 2, { what: 'the first receipt' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedEvents(h(), ['fresh-1'])).toHaveLength(0);
    expect((await stockOf(h(), b.sku)).on_hand).toBe(0);
    expect((await stockOf(h(), a.sku)).on_hand).toBe(2);
    // An identical resend (location main written out or left out) stays a duplicate.
    expect((await restock(h(), { event_id: 'same-1', sku: a.sku, quantity: 2, location: 'main' })).body).toEqual({
      accepted: 0,
      duplicates: 1,
    });
  });

  it('when one event_id is twice in a batch, then 400 naming the second and nothing is stored', async () => {
    const p = await makeProduct(h(), 0);
    const r = await restock(h(), {
      events: [
        { event_id: 'tw-1', sku: p.sku, quantity: 1 },
        { event_id: 'tw-2', sku: p.sku, quantity: 1 },
        { event_id: 'tw-1', sku: p.sku, quantity: 1 },
      ],
    });
    expect(r.status).toBe(400);
    expect(r.body.error.details).toEqual([
      { path: 'body.events.2.event_id', message: 'event_id tw-1 is also events.0' },
    ]);
    expect(await storedEvents(h(), ['tw-1', 'tw-2'])).toHaveLength(0);
  });

  it('when an event_id has leading or trailing whitespace, then 400 and it is not trimmed into another id', async () => {
    const p = await makeProduct(h(), 0);
    expect((await restock(h(), { event_id: 'g', sku: p.sku, quantity: 1 })).status).toBe(202);
    for (const id of ['  g ', 'g ', ' g', '\tg', 'g\n']) {
      const r = await restock(h(), { event_id: id, sku: p.sku, quantity: 1 });
      expect(r.status, JSON.stringify(id)).toBe(400);
      expect(r.body.error.details).toEqual([
        { path: 'body.event_id', message: 'must not start or end with whitespace' },
      ]);
    }
    // Inner spaces are part of the id, as given.
    expect((await restock(h(), { event_id: 'g  h', sku: p.sku, quantity: 1 })).body).toEqual({
      accepted: 1,
      duplicates: 0,
    });
    expect((await storedEvents(h(), ['g', 'g  h'])).map((e) => e.event_id).sort()).toEqual(['g', 'g  h']);
    expect(await h().ctx.db('restock_events').where({ sku: p.sku })).toHaveLength(2);
  });
});

describe('inbound shipments', () => {
  it('when an inbound shipment is posted, replayed, changed, listed and received against, then its figures and status follow', async () => {
    await h().startWorkers();
    const p = await makeProduct(h(), 0);
    const body = { inbound_id: `in-${p.sku}`, sku: p.sku, quantity: 10, expected_at: '2030-01-10T12:00:00+02:00' };
    const created = await h().api('POST', '/v1/inbound', { role: 'feed', body });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      inbound_id: body.inbound_id,
      sku: p.sku,
      location: 'main',
      quantity: 10,
      received: 0,
      outstanding: 10,
      expected_at: '2030-01-10T10:00:00.000Z',
      status: 'open',
    });
    // The same body again (the same instant written another way, location main spelled out): a replay.
    const replay = await h().api('POST', '/v1/inbound', {
      role: 'operator',
      body: { ...body, location: 'main', expected_at: '2030-01-10T10:00:00Z' },
    });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(created.body);
    const other = await h().api('POST', '/v1/inbound', { role: 'feed', body: { ...body, quantity: 11 } });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('conflict');
    expect(other.body.error.details[0].path).toBe('body.inbound_id');

    // Unknown inbound_id, or one for another SKU: 400 for the whole batch, nothing stored.
    const q = await makeProduct(h(), 0);
    const unknown = await restock(h(), {
      events: [
        { event_id: `ok-${p.sku}`, sku: p.sku, quantity: 1 },
        { event_id: `u-${p.sku}`, sku: p.sku, quantity: 1, inbound_id: 'nope' },
      ],
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details).toEqual([
      { path: 'body.events.1.inbound_id', message: 'unknown inbound_id nope' },
    ]);
    const wrongSku = await restock(h(), {
      event_id: `w-${p.sku}`,
      sku: q.sku,
      quantity: 1,
      inbound_id: body.inbound_id,
    });
    expect(wrongSku.status).toBe(400);
    expect(wrongSku.body.error.details[0].path).toBe('body.inbound_id');
    expect(await storedEvents(h(), [`ok-${p.sku}`, `u-${p.sku}`, `w-${p.sku}`])).toHaveLength(0);

    // Received in two restocks: 4 then 6; the second makes it `received`.
    expect(
      (await restock(h(), { event_id: `r1-${p.sku}`, sku: p.sku, quantity: 4, inbound_id: body.inbound_id })).status,
    ).toBe(202);
    await waitFor(
      async () => (await h().api('GET', `/v1/inbound/${body.inbound_id}`, { role: 'viewer' })).body.received === 4,
      { what: 'received 4' },
    );
    const got = await h().api('GET', `/v1/inbound/${body.inbound_id}`, { role: 'feed' });
    expect(got.body).toMatchObject({ received: 4, outstanding: 6, status: 'open' });
    // A resend of that event with another inbound_id (none) is a conflict.
    const noInbound = await restock(h(), { event_id: `r1-${p.sku}`, sku: p.sku, quantity: 4 });
    expect(noInbound.status).toBe(409);
    expect(noInbound.body.error.details[0].message).toBe(
      `event_id r1-${p.sku} was received before with another inbound_id`,
    );

    const patched = await h().api('PATCH', `/v1/inbound/${body.inbound_id}`, {
      role: 'feed',
      body: { quantity: 8, expected_at: '2030-01-11T00:00:00Z' },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ quantity: 8, outstanding: 4, expected_at: '2030-01-11T00:00:00.000Z' });
    await restock(h(), { event_id: `r2-${p.sku}`, sku: p.sku, quantity: 6, inbound_id: body.inbound_id });
    await waitFor(async () => (await h().api('GET', `/v1/inbound/${body.inbound_id}`)).body.status === 'received', {
      what: 'received',
    });
    expect((await h().api('GET', `/v1/inbound/${body.inbound_id}`)).body).toMatchObject({
      received: 10,
      outstanding: 0,
      status: 'received',
    });
    expect((await stockOf(h(), p.sku)).on_hand).toBe(10);

    // Cancel; a cancelled shipment takes no other change (409), cancelling again is a no-op.
    const second = { inbound_id: `in2-${p.sku}`, sku: p.sku, quantity: 5, expected_at: '2030-02-01T00:00:00Z' };
    expect((await h().api('POST', '/v1/inbound', { role: 'feed', body: second })).status).toBe(201);
    const cancelled = await h().api('PATCH', `/v1/inbound/${second.inbound_id}`, { body: { status: 'cancelled' } });
    expect(cancelled.body).toMatchObject({ status: 'cancelled', outstanding: 5 });
    expect((await h().api('PATCH', `/v1/inbound/${second.inbound_id}`, { body: { status: 'cancelled' } })).status).toBe(
      200,
    );
    const late = await h().api('PATCH', `/v1/inbound/${second.inbound_id}`, { body: { quantity: 9 } });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('invalid_state');

    // Lists: by expected_at, filtered, paged.
    const all = await h().api('GET', `/v1/inbound?sku=${p.sku}&limit=1`, { role: 'viewer' });
    expect(all.body.data.map((i: any) => i.inbound_id)).toEqual([body.inbound_id]);
    const next = await h().api('GET', `/v1/inbound?sku=${p.sku}&limit=1&cursor=${all.body.next_cursor}`);
    expect(next.body).toEqual({ data: [cancelled.body], next_cursor: null });
    const open = await h().api('GET', `/v1/inbound?sku=${p.sku}&status=cancelled`);
    expect(open.body.data.map((i: any) => i.inbound_id)).toEqual([second.inbound_id]);
    expect((await h().api('GET', '/v1/inbound/not-there')).status).toBe(404);
    expect((await h().api('POST', '/v1/inbound', { role: 'intake', body })).status).toBe(403);
    expect(
      (await h().api('POST', '/v1/inbound', { role: 'feed', body: { ...body, inbound_id: ' x' } })).body.error.details,
    ).toEqual([{ path: 'body.inbound_id', message: 'must not start or end with whitespace' }]);
  });
});

describe('backorder visibility', () => {
  const T1 = '2030-01-10T00:00:00.000Z';
  const T2 = '2030-01-12T00:00:00.000Z';

  it('when 5 orders wait on a SKU with 2 inbound shipments, then positions, units ahead and ETAs are as computed by hand, and move up as the head is served', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 1); // free: 1
    const other = await makeProduct(h(), 10);
    await h().api('POST', '/v1/inbound', {
      role: 'feed',
      body: { inbound_id: `A-${p.sku}`, sku: p.sku, quantity: 4, expected_at: T1 },
    });
    await h().api('POST', '/v1/inbound', {
      role: 'feed',
      body: { inbound_id: `B-${p.sku}`, sku: p.sku, quantity: 6, expected_at: T2 },
    });
    // Quantities 3, 2, 4, 1 (+1 of another SKU, in stock), 5: all wait (the first does not fit, FIFO keeps the rest behind it).
    const orders: { id: string; seq: number }[] = [];
    for (const lines of [
      [{ sku: p.sku, quantity: 3 }],
      [{ sku: p.sku, quantity: 2 }],
      [{ sku: p.sku, quantity: 4 }],
      [
        { sku: p.sku, quantity: 1 },
        { sku: other.sku, quantity: 1 },
      ],
      [{ sku: p.sku, quantity: 5 }],
    ]) {
      const o = await placeOrder(h(), c.id, lines);
      await untilStatus(h(), o.id, 'awaiting_stock');
      orders.push(o);
    }
    const read = async (i: number) => (await h().api('GET', `/v1/orders/${orders[i].id}`, { role: 'intake' })).body;
    const lineOf = (o: any) => o.lines.find((l: any) => l.sku === p.sku);
    // free 1; open inbound cumulative: A 4 (T1) → 5, B 6 (T2) → 11.
    // needs (units_ahead + quantity): 3, 5, 9, 10, 15.
    const expected = [
      { position: 1, units_ahead: 0, eta: T1 },
      { position: 2, units_ahead: 3, eta: T1 },
      { position: 3, units_ahead: 5, eta: T2 },
      { position: 4, units_ahead: 9, eta: T2 },
      { position: 5, units_ahead: 10, eta: null },
    ];
    for (let i = 0; i < 5; i++) {
      const o = await read(i);
      expect(lineOf(o).queue, `order ${i + 1}`).toEqual(expected[i]);
      expect(o.eta, `order ${i + 1}`).toBe(expected[i].eta);
    }
    const fourth = await read(3);
    expect(fourth.lines.find((l: any) => l.sku === other.sku)).toMatchObject({
      reserved: 1,
      waiting: false,
      queue: null,
    });
    const queue = await h().api('GET', `/v1/inventory/${p.sku}/queue`, { role: 'viewer' });
    expect(queue.status).toBe(200);
    expect(queue.body).toMatchObject({ sku: p.sku, free: 1 });
    expect(queue.body.waiting).toEqual(
      orders.map((o, i) => ({
        order_id: o.id,
        seq: o.seq,
        quantity: [3, 2, 4, 1, 5][i],
        ...expected[i],
      })),
    );
    expect(queue.body.inbound.map((x: any) => [x.inbound_id, x.outstanding, x.expected_at])).toEqual([
      [`A-${p.sku}`, 4, T1],
      [`B-${p.sku}`, 6, T2],
    ]);

    // Shipment A arrives (4 units against it): free 5 serves orders 1 (3) and 2 (2); order 3 (4) does not fit.
    await restock(h(), { event_id: `A-in-${p.sku}`, sku: p.sku, quantity: 4, inbound_id: `A-${p.sku}` });
    await untilStatus(h(), orders[1].id, 'confirmed');
    for (const i of [0, 1]) {
      const o = await read(i);
      expect(o.status).toBe('confirmed');
      expect(lineOf(o).queue).toBeNull();
      expect(o.eta).toBeNull();
    }
    // Now free 0; open inbound: B 6 (T2). Needs 4, 5, 10.
    const after = [
      { position: 1, units_ahead: 0, eta: T2 },
      { position: 2, units_ahead: 4, eta: T2 },
      { position: 3, units_ahead: 5, eta: null },
    ];
    for (let i = 2; i < 5; i++) {
      const o = await read(i);
      expect(lineOf(o).queue, `order ${i + 1}`).toEqual(after[i - 2]);
      expect(o.eta).toBe(after[i - 2].eta);
    }
    const moved = (await h().api('GET', `/v1/inventory/${p.sku}/queue`, { role: 'operator' })).body;
    expect(moved.free).toBe(0);
    expect(moved.waiting.map((w: any) => [w.order_id, w.position, w.units_ahead, w.eta])).toEqual(
      [2, 3, 4].map((i, k) => [orders[i].id, after[k].position, after[k].units_ahead, after[k].eta]),
    );
    expect(moved.inbound.map((x: any) => x.inbound_id)).toEqual([`B-${p.sku}`]);
    expect((await h().api('GET', `/v1/inbound/A-${p.sku}`)).body.status).toBe('received');

    // Cancelling the head moves the rest up (and the ETA follows the units ahead).
    await h().api('POST', `/v1/orders/${orders[2].id}/cancel`, { role: 'intake' });
    expect(lineOf(await read(3)).queue).toEqual({ position: 1, units_ahead: 0, eta: T2 });
    expect(lineOf(await read(4)).queue).toEqual({ position: 2, units_ahead: 1, eta: T2 });
    // The awaiting_stock event carried the queue as it was when the order started waiting.
    const ev = await h().ctx.db('events').where({ order_id: orders[4].id, type: 'order.awaiting_stock' }).first();
    expect(lineOf(ev.payload.data.order).queue).toEqual(expected[4]);
    expect((await h().api('GET', `/v1/inventory/${p.sku}/queue`, { role: 'intake' })).status).toBe(403);
  });

  it('when lines leave a queue from the head, the middle and the tail and an edited order re-joins at its seq, then every materialized position equals the one counted from scratch', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 0);
    const orders: { id: string; seq: number }[] = [];
    for (let i = 0; i < 12; i++) {
      const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 + (i % 3) }]);
      await untilStatus(h(), o.id, 'awaiting_stock');
      orders.push(o);
    }
    const holds = async (what: string) => {
      const report = await checkInvariants(h().ctx.db);
      expect(
        report.problems.filter((x) => x.startsWith('queue-positions')),
        what,
      ).toEqual([]);
      expect(report.counts['queue-positions'], what).toBe(0);
    };
    const positions = async () =>
      (await h().api('GET', `/v1/inventory/${p.sku}/queue`)).body.waiting.map((w: any) => [w.order_id, w.position]);
    await holds('after 12 joined');
    await h().api('POST', `/v1/orders/${orders[5].id}/cancel`, { role: 'intake' }); // the middle
    await holds('after a middle cancel');
    await h().api('POST', `/v1/orders/${orders[0].id}/cancel`, { role: 'intake' }); // the head
    await holds('after the head cancelled');
    await h().api('POST', `/v1/orders/${orders[11].id}/cancel`, { role: 'intake' }); // the tail
    await holds('after the tail cancelled');
    // An edit re-joins the queue at the order's own seq, in the middle.
    await h().api('PATCH', `/v1/orders/${orders[7].id}`, {
      role: 'intake',
      body: { lines: [{ sku: p.sku, quantity: 3 }] },
    });
    await untilStatus(h(), orders[7].id, 'awaiting_stock');
    await holds('after an edit re-joined');
    // Stock for the first two in line (orders 2 and 3: 2 + 3 units) serves the head.
    await restock(h(), { event_id: `q-${p.sku}`, sku: p.sku, quantity: 5 });
    await untilStatus(h(), orders[2].id, 'confirmed');
    await holds('after the head was served');
    const left = [1, 2, 3, 4, 6, 7, 8, 9, 10].filter((i) => ![1, 2].includes(i));
    expect(await positions()).toEqual(left.map((i, k) => [orders[i].id, k + 1]));
    const next = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await untilStatus(h(), next.id, 'awaiting_stock');
    await holds('after a join behind served lines');
    expect((await positions()).at(-1)).toEqual([next.id, left.length + 1]);
  });

  it('when free stock alone covers a waiting line (before allocation has served it), then its eta is the current time', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 0);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), o.id, 'awaiting_stock');
    expect((await h().api('GET', `/v1/orders/${o.id}`)).body.eta).toBeNull();
    // Units appear without a receipt (so nothing serves the queue): the moment between a commit and its allocation.
    await h().ctx.db('stock_levels').where({ sku: p.sku, location: 'main' }).update({ on_hand: 2 });
    const before = Date.now();
    const read = (await h().api('GET', `/v1/orders/${o.id}`)).body;
    expect(read.lines[0].queue.position).toBe(1);
    expect(Math.abs(Date.parse(read.lines[0].queue.eta) - before)).toBeLessThan(5000);
    expect(read.eta).toBe(read.lines[0].queue.eta);
  });
});
