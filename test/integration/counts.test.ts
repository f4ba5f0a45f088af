import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkInvariants } from '../../src/invariants';
import { useHarness, waitFor, type Harness } from '../helpers/harness';
import { servedSchema } from '../helpers/openapi-schema';
import {
  allocationsOf,
  getOrder,
  level,
  makeCustomerId,
  makeLocation,
  makeProductAt,
  orderReaching,
  totals,
  untilOrder,
} from '../helpers/locations-kit';

const h = useHarness();

const count = (body: unknown, role: 'feed' | 'operator' | 'viewer' | 'intake' = 'feed') =>
  h().api('POST', '/v1/inventory/counts', { role, body });
const readCount = (id: string, role: 'feed' | 'operator' | 'viewer' | 'intake' = 'viewer') =>
  h().api('GET', `/v1/inventory/counts/${encodeURIComponent(id)}`, { role });
const iso = (ms: number) => new Date(ms).toISOString();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The database's clock: movements are stamped with it (their transaction's start). */
async function dbNow(x: Harness): Promise<string> {
  const { rows } = await x.ctx.db.raw(
    `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
  );
  return rows[0].t;
}

async function invariantsClean(x: Harness) {
  const report = await checkInvariants(x.ctx.db);
  expect(report.problems).toEqual([]);
}

async function ledgerReportOk(x: Harness) {
  const r = await x.api('GET', '/v1/reports/ledger?by=location');
  expect(r.status).toBe(200);
  expect(r.body.ok).toBe(true);
}

describe('stock counts: the request', () => {
  it('when a count is posted, then 202 accepted; the same body again is a duplicate and books nothing; another body is 409; GET shows every item', async () => {
    const a = await makeProductAt(h(), { main: 10 });
    const b = await makeProductAt(h(), { main: 4 });
    const id = ` cnt-${randomUUID()} `; // taken as given, spaces included
    await sleep(10);
    const body = {
      count_id: id,
      counted_at: await dbNow(h()),
      items: [
        { sku: a, on_hand: 7 },
        { sku: b, on_hand: 4 },
      ],
    };
    const first = await count(body);
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ accepted: true });
    expect(await level(h().ctx.db, a, 'main')).toEqual({ on_hand: 7, reserved: 0 });
    expect(await level(h().ctx.db, b, 'main')).toEqual({ on_hand: 4, reserved: 0 });

    const again = await count({ ...body, items: [...body.items].reverse() });
    expect(again.status).toBe(202);
    expect(again.body).toEqual({ accepted: false, duplicate: true });
    const other = await count({ ...body, items: [{ sku: a, on_hand: 1 }] });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('conflict');
    expect(await level(h().ctx.db, a, 'main')).toEqual({ on_hand: 7, reserved: 0 });
    expect(await h().ctx.db('stock_movements').where({ type: 'count', event_id: id }).count({ n: '*' })).toEqual([
      { n: 1 },
    ]);

    const got = await readCount(id);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({
      count_id: id,
      location: 'main',
      counted_at: new Date(body.counted_at).toISOString(),
      items: [
        { sku: a, counted: 7, expected: 10, variance: -3 },
        { sku: b, counted: 4, expected: 4, variance: 0 },
      ],
      actor: { role: 'feed', name: 'feed' },
    });
    // One inventory.count_variance event, for the item that varied (none for the one that did not).
    const feed = await waitFor(async () => {
      const r = await h().api('GET', '/v1/events?types=inventory.count_variance', { role: 'viewer' });
      return r.body.data.length > 0 && r.body.data;
    });
    expect(feed.map((e: any) => [e.subject, e.data])).toEqual([
      [
        { type: 'sku', id: a },
        { sku: a, location: 'main', count_id: id, counted: 7, expected: 10, variance: -3 },
      ],
    ]);
    expect((await readCount(`${id}x`)).status).toBe(404);
    expect((await readCount(id, 'feed')).status).toBe(200);
    // A count is inventory, which intake reads (change 15); it may not post one.
    expect((await readCount(id, 'intake')).status).toBe(200);
    expect((await count(body, 'viewer')).status).toBe(403);
    expect((await count(body, 'intake')).status).toBe(403);
    await invariantsClean(h());
  });

  it('when a count names an unknown SKU or location, repeats a SKU or is dated out of range, then 400 and nothing is applied', async () => {
    const a = await makeProductAt(h(), { main: 10 });
    const base = () => ({
      count_id: `cnt-${randomUUID()}`,
      counted_at: iso(Date.now()),
      items: [{ sku: a, on_hand: 1 }],
    });
    const cases = [
      {
        ...base(),
        items: [
          { sku: a, on_hand: 1 },
          { sku: 'NOPE-404', on_hand: 2 },
        ],
      },
      { ...base(), location: 'nowhere' },
      {
        ...base(),
        items: [
          { sku: a, on_hand: 1 },
          { sku: a, on_hand: 2 },
        ],
      },
      { ...base(), counted_at: iso(Date.now() + 6 * 60_000) },
      { ...base(), counted_at: iso(Date.now() - 7 * 86_400_000 - 60_000) },
      { ...base(), items: [] },
      { ...base(), extra: 1 },
    ];
    for (const c of cases) {
      const r = await count(c);
      expect(r.status, JSON.stringify(c)).toBe(400);
      expect(r.body.error.code).toBe('validation_failed');
      expect((await readCount(c.count_id)).status).toBe(404);
    }
    const unknown = await count(cases[0]);
    expect(unknown.body.error.details).toEqual([{ path: 'body.items.1.sku', message: 'unknown SKU NOPE-404' }]);
    expect(await level(h().ctx.db, a, 'main')).toEqual({ on_hand: 10, reserved: 0 });
    // A count id refused with 400 is free: the valid count under it applies.
    const ok = await count(base());
    expect(ok.status).toBe(202);
    await invariantsClean(h());
  });
});

describe('stock counts: a count never erases a sale (guarantee 8)', () => {
  it('when a count taken at t0 arrives after 30 sales and 2 receipts committed after t0, then the variance booked is what was missing at t0, none of them is undone, and posting it again books nothing', async () => {
    await h().startWorkers();
    const sku = await makeProductAt(h(), { main: 100 });
    const customer = await makeCustomerId(h());
    // Before t0: 5 units sold, so the ledger at t0 says 95; the shelf held 91 (4 missing).
    const early = await orderReaching(h(), customer, [{ sku, quantity: 5 }], 'confirmed');
    expect((await h().api('POST', `/v1/orders/${early.id}/fulfill`, { role: 'feed' })).status).toBe(200);
    await sleep(20);
    const t0 = await dbNow(h());
    await sleep(20);
    // After t0: 30 sales (2 units each, shipments and fulfils) and 2 receipts (+7, +3).
    const orders = [];
    for (let i = 0; i < 30; i++) orders.push(await orderReaching(h(), customer, [{ sku, quantity: 2 }], 'confirmed'));
    for (const [i, o] of orders.entries()) {
      const r =
        i % 2 === 0
          ? await h().api('POST', `/v1/orders/${o.id}/shipments`, {
              role: 'feed',
              body: { lines: [{ sku, quantity: 2 }] },
            })
          : await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
      expect(r.status).toBeLessThan(300);
    }
    const restocks = await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: {
        events: [
          { event_id: `r-${randomUUID()}`, sku, quantity: 7 },
          { event_id: `r-${randomUUID()}`, sku, quantity: 3 },
        ],
      },
    });
    expect(restocks.status).toBe(202);
    const now = 100 - 5 - 60 + 10; // 45
    await untilOnHand(h(), sku, now);

    const body = { count_id: `cnt-${randomUUID()}`, counted_at: t0, items: [{ sku, on_hand: 91 }] };
    expect((await count(body)).body).toEqual({ accepted: true });
    const got = (await readCount(body.count_id)).body;
    expect(got.items).toEqual([{ sku, counted: 91, expected: 95, variance: -4 }]);
    const after = await level(h().ctx.db, sku, 'main');
    expect(after.on_hand).toBe(now - 4); // the 30 sales and 2 receipts stand
    const sales = await h().ctx.db('stock_movements').where({ sku, type: 'sale' }).count({ n: '*' }).first();
    expect(Number(sales!.n)).toBe(31);
    expect((await count(body)).body).toEqual({ accepted: false, duplicate: true });
    expect(await level(h().ctx.db, sku, 'main')).toEqual(after);
    await ledgerReportOk(h());
    await invariantsClean(h());
  });
});

describe('stock counts: two counts of one shelf', () => {
  it('when a second count of the same shelf follows the first (later, or at the same moment, or six at once), then the loss is booked once: the later ones expect what the first left and book nothing', async () => {
    const sku = await makeProductAt(h(), { main: 50 });
    await sleep(20);
    const t1 = await dbNow(h());
    await sleep(20);
    const t2 = await dbNow(h());
    const a = { count_id: `cnt-a-${randomUUID()}`, counted_at: t1, items: [{ sku, on_hand: 40 }] };
    const b = { count_id: `cnt-b-${randomUUID()}`, counted_at: t2, items: [{ sku, on_hand: 40 }] };
    const c = { count_id: `cnt-c-${randomUUID()}`, counted_at: t1, items: [{ sku, on_hand: 40 }] };
    for (const body of [a, b, c]) expect((await count(body)).body).toEqual({ accepted: true });
    expect((await readCount(a.count_id)).body.items).toEqual([{ sku, counted: 40, expected: 50, variance: -10 }]);
    expect((await readCount(b.count_id)).body.items).toEqual([{ sku, counted: 40, expected: 40, variance: 0 }]);
    // c is of a's moment, but b (later) had booked the shelf already: it names b and books nothing.
    expect((await readCount(c.count_id)).body.items).toEqual([
      { sku, counted: 40, expected: 40, variance: 0, superseded_by: b.count_id },
    ]);
    expect(await level(h().ctx.db, sku, 'main')).toEqual({ on_hand: 40, reserved: 0 });

    // Six counts of one moment at once: they serialize on the stock row and only the first books.
    const other = await makeProductAt(h(), { main: 50 });
    await sleep(20);
    const t = await dbNow(h());
    const six = Array.from({ length: 6 }, (_, i) => ({
      count_id: `cnt-six-${i}-${randomUUID()}`,
      counted_at: t,
      items: [{ sku: other, on_hand: 40 }],
    }));
    const answers = await Promise.all(six.map((body) => count(body)));
    expect(answers.map((r) => r.status)).toEqual([202, 202, 202, 202, 202, 202]);
    const variances = await Promise.all(
      six.map(async (body) => (await readCount(body.count_id)).body.items[0].variance),
    );
    expect(variances.sort((x, y) => x - y)).toEqual([-10, 0, 0, 0, 0, 0]);
    expect(await level(h().ctx.db, other, 'main')).toEqual({ on_hand: 40, reserved: 0 });
    await ledgerReportOk(h());
    await invariantsClean(h());
  });
});

describe('stock counts: a count older than one already booked', () => {
  it('when a count arrives after a count of a later counted_at booked the same shelf, then that item is superseded and books nothing (no movement, no event), while its other items book as usual', async () => {
    const sku = await makeProductAt(h(), { main: 50 });
    const other = await makeProductAt(h(), { main: 20 });
    await sleep(20);
    const t0 = await dbNow(h());
    await sleep(20);
    const t1 = await dbNow(h());
    await sleep(20);
    const t2 = await dbNow(h());
    // The later count arrives first: 10 units are gone by t2.
    const newer = { count_id: `cnt-new-${randomUUID()}`, counted_at: t2, items: [{ sku, on_hand: 40 }] };
    expect((await count(newer)).body).toEqual({ accepted: true });
    expect(await level(h().ctx.db, sku, 'main')).toEqual({ on_hand: 40, reserved: 0 });
    // The older one saw 5 of them gone at t1; booking that would take the shelf to 35.
    const older = {
      count_id: `cnt-old-${randomUUID()}`,
      counted_at: t1,
      items: [
        { sku, on_hand: 45 },
        { sku: other, on_hand: 18 },
      ],
    };
    expect((await count(older)).status).toBe(202);
    expect((await readCount(older.count_id)).body.items).toEqual([
      { sku, counted: 45, expected: 50, variance: -5, superseded_by: newer.count_id },
      { sku: other, counted: 18, expected: 20, variance: -2 },
    ]);
    expect(await level(h().ctx.db, sku, 'main')).toEqual({ on_hand: 40, reserved: 0 });
    expect(await level(h().ctx.db, other, 'main')).toEqual({ on_hand: 18, reserved: 0 });
    // One older still names the count that set the level, not the superseded one.
    const oldest = { count_id: `cnt-oldest-${randomUUID()}`, counted_at: t0, items: [{ sku, on_hand: 44 }] };
    expect((await count(oldest)).status).toBe(202);
    expect((await readCount(oldest.count_id)).body.items).toEqual([
      { sku, counted: 44, expected: 50, variance: -6, superseded_by: newer.count_id },
    ]);
    expect(await level(h().ctx.db, sku, 'main')).toEqual({ on_hand: 40, reserved: 0 });
    const booked = await h()
      .ctx.db('stock_movements')
      .where({ type: 'count' })
      .whereIn('sku', [sku, other])
      .orderBy('id')
      .select('sku', 'event_id', 'quantity');
    expect(booked.map((m: any) => [m.sku, m.event_id, Number(m.quantity)])).toEqual([
      [sku, newer.count_id, -10],
      [other, older.count_id, -2],
    ]);
    const events = await h()
      .ctx.db('events')
      .where({ type: 'inventory.count_variance' })
      .whereIn('subject_id', [sku, other])
      .orderBy('subject_id')
      .select('subject_id');
    expect(events.map((e: any) => e.subject_id).sort()).toEqual([sku, other].sort());
    // The served document describes the field (a misspelt one would not pass: items are strict objects).
    const isCount = await servedSchema(h(), 'Count');
    expect(isCount((await readCount(oldest.count_id)).body)).toEqual([]);
    await ledgerReportOk(h());
    await invariantsClean(h());
  });
});

describe('stock counts: no reservation outlives its stock (guarantee 9)', () => {
  it('when a count leaves a location 7 units short, then exactly the youngest whole lines covering 7 are revoked, they wait at their seq ahead of younger waits, and free stock at a second location takes them back at once', async () => {
    await h().startWorkers();
    const A = await makeLocation(h(), 10);
    const B = await makeLocation(h(), 20);
    const sku = await makeProductAt(h(), { [A]: 20, [B]: 6 });
    const c = await makeCustomerId(h());
    const o1 = await orderReaching(h(), c, [{ sku, quantity: 3 }], 'confirmed');
    const o2 = await orderReaching(h(), c, [{ sku, quantity: 4 }], 'confirmed');
    const o3 = await orderReaching(h(), c, [{ sku, quantity: 2 }], 'confirmed');
    const o4 = await orderReaching(h(), c, [{ sku, quantity: 5 }], 'confirmed');
    const o5 = await orderReaching(h(), c, [{ sku, quantity: 3 }], 'confirmed');
    for (const o of [o1, o2, o3, o4, o5]) expect(Object.keys(allocationsOf(o, sku))).toEqual([A]);
    // o4 ships 2 of its 5 from A: its 3 other units stay reserved there.
    const shipped = await h().api('POST', `/v1/orders/${o4.id}/shipments`, {
      role: 'feed',
      body: { lines: [{ sku, quantity: 2 }] },
    });
    expect(shipped.status).toBe(201);
    // A younger order waits: 3 free at A and 6 at B do not make 12.
    const o6 = await orderReaching(h(), c, [{ sku, quantity: 12 }], 'awaiting_stock');
    expect(await level(h().ctx.db, sku, A)).toEqual({ on_hand: 18, reserved: 15 });
    await sleep(10);

    // The shelf at A holds 8 now: 15 reserved there, 7 too many.
    const body = {
      count_id: `cnt-${randomUUID()}`,
      location: A,
      counted_at: await dbNow(h()),
      items: [{ sku, on_hand: 8 }],
    };
    expect((await count(body, 'operator')).body).toEqual({ accepted: true });
    expect((await readCount(body.count_id)).body.items).toEqual([{ sku, counted: 8, expected: 18, variance: -10 }]);

    // Revoked: o5 (3), o4 (its 3 unshipped), o3 (2) = 8 ≥ 7, youngest first; o1 and o2 keep theirs.
    const revoked = await h()
      .ctx.db('stock_movements')
      .where({ sku, type: 'release', reason: 'stock count shortage' })
      .orderBy('id')
      .select('order_id', 'location', 'quantity');
    expect(revoked.map((m: any) => [m.order_id, m.location, Number(m.quantity)]).sort()).toEqual(
      [
        [o3.id, A, -2],
        [o4.id, A, -3],
        [o5.id, A, -3],
      ].sort(),
    );
    expect(allocationsOf(await getOrder(h(), o1.id), sku)).toEqual({ [A]: { reserved: 3, shipped: 0 } });
    expect(allocationsOf(await getOrder(h(), o2.id), sku)).toEqual({ [A]: { reserved: 4, shipped: 0 } });
    // Served at once, in seq order: o3 and o4's rest from B; o5 (3) does not fit in what is left (1 + 1) and waits, o6 behind it.
    const g3 = await untilOrder(h(), o3.id, 'confirmed');
    expect(allocationsOf(g3, sku)).toEqual({ [B]: { reserved: 2, shipped: 0 } });
    const g4 = await untilOrder(h(), o4.id, 'partially_shipped');
    expect(allocationsOf(g4, sku)).toEqual({ [A]: { reserved: 0, shipped: 2 }, [B]: { reserved: 3, shipped: 0 } });
    for (const g of [g3, g4]) {
      expect(g.history.map((x: any) => x.status)).toContain('awaiting_stock');
    }
    const g5 = await getOrder(h(), o5.id);
    expect(g5).toMatchObject({ status: 'awaiting_stock', status_reason: 'stock count shortage' });
    expect(g5.lines[0]).toMatchObject({ reserved: 0, waiting: true });
    expect(await level(h().ctx.db, sku, A)).toEqual({ on_hand: 8, reserved: 7 });
    expect(await level(h().ctx.db, sku, B)).toEqual({ on_hand: 6, reserved: 5 });
    expect((await totals(h().ctx.db, sku)).backordered).toBe(3 + 12);

    // o5 waits at its own seq, ahead of the younger o6: 3 units arriving are its.
    const r = await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: { event_id: `r-${randomUUID()}`, sku, quantity: 3, location: A },
    });
    expect(r.status).toBe(202);
    await untilOrder(h(), o5.id, 'confirmed');
    expect((await getOrder(h(), o6.id)).status).toBe('awaiting_stock');
    expect((await totals(h().ctx.db, sku)).backordered).toBe(12);
    await ledgerReportOk(h());
    await invariantsClean(h());
  });
});

describe('stock counts: a deactivated SKU', () => {
  it('when a SKU is deactivated, then new orders for it are rejected, while its waiting lines keep their place and are served by a restock, and a count still applies (revoking as for an active SKU)', async () => {
    await h().startWorkers();
    const sku = await makeProductAt(h(), { main: 2 });
    const c = await makeCustomerId(h());
    await orderReaching(h(), c, [{ sku, quantity: 2 }], 'confirmed');
    const o2 = await orderReaching(h(), c, [{ sku, quantity: 3 }], 'awaiting_stock');
    const off = await h().api('PATCH', `/v1/products/${sku}`, { body: { active: false } });
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    const o3 = await orderReaching(h(), c, [{ sku, quantity: 1 }], 'rejected');
    expect(o3.status_reason).toMatch(/not active/);

    // The shelf is the shelf: a restock of an inactive SKU is received and serves the line that waited.
    const r = await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: { event_id: `r-${randomUUID()}`, sku, quantity: 3 },
    });
    expect(r.status).toBe(202);
    await untilOrder(h(), o2.id, 'confirmed');
    expect(await level(h().ctx.db, sku, 'main')).toEqual({ on_hand: 5, reserved: 5 });

    // A count of it applies: 3 on the shelf, 2 short; o2, the youngest, waits again at its seq.
    await sleep(10);
    const body = { count_id: `cnt-${randomUUID()}`, counted_at: await dbNow(h()), items: [{ sku, on_hand: 3 }] };
    expect((await count(body)).body).toEqual({ accepted: true });
    expect(await level(h().ctx.db, sku, 'main')).toEqual({ on_hand: 3, reserved: 2 });
    expect(await getOrder(h(), o2.id)).toMatchObject({
      status: 'awaiting_stock',
      status_reason: 'stock count shortage',
    });
    expect((await totals(h().ctx.db, sku)).backordered).toBe(3);
    // Still inactive, still served: 2 units arriving complete the 3 it waits for.
    await h().api('POST', `/v1/inventory/${sku}/adjustments`, { body: { delta: 2, reason: 'found' } });
    await untilOrder(h(), o2.id, 'confirmed');
    await ledgerReportOk(h());
    await invariantsClean(h());
  });
});

describe('stock counts: under concurrent writers', () => {
  it('when counts that leave locations short arrive while orders are placed, shipped and cancelled and restocks land, then every count is booked against its ledger, no reservation outlives its stock and the checker is clean', async () => {
    await h().startWorkers();
    const A = await makeLocation(h(), 10);
    const B = await makeLocation(h(), 20);
    const skus = [];
    for (let i = 0; i < 4; i++) skus.push(await makeProductAt(h(), { [A]: 30, [B]: 8 }));
    const c = await makeCustomerId(h());
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const placed: string[] = [];
    const orders = (async () => {
      for (let i = 0; i < 60; i++) {
        const lines = [...new Set([skus[rand(4)], skus[rand(4)]])].map((sku) => ({ sku, quantity: 1 + rand(3) }));
        const r = await h().api('POST', '/v1/orders', { role: 'intake', body: { customer_id: c, lines } });
        expect(r.status).toBe(202);
        placed.push(r.body.id);
        if (i % 7 === 3)
          await h().api('POST', `/v1/orders/${placed[rand(placed.length)]}/cancel`, { role: 'intake', body: {} });
        if (i % 5 === 4) await h().api('POST', `/v1/orders/${placed[rand(placed.length)]}/fulfill`, { role: 'feed' });
      }
    })();
    const counts: string[] = [];
    const counting = (async () => {
      for (let k = 0; k < 8; k++) {
        await sleep(150);
        const at = await dbNow(h());
        const body = {
          count_id: `cc-${randomUUID()}`,
          location: k % 3 === 2 ? B : A,
          counted_at: at,
          items: skus.filter(() => rand(3) > 0).map((sku) => ({ sku, on_hand: rand(12) })),
        };
        if (body.items.length === 0) continue;
        const r = await count(body);
        // 409 only if more left after counted_at than was counted (sales committed since `at`).
        expect([202, 409]).toContain(r.status);
        if (r.status === 202) counts.push(body.count_id);
        if (k % 3 === 1) {
          await h().api('POST', '/v1/restocks', {
            role: 'feed',
            body: { event_id: `r-${randomUUID()}`, sku: skus[rand(4)], quantity: 1 + rand(6), location: B },
          });
        }
      }
    })();
    await Promise.all([orders, counting]);
    expect(counts.length).toBeGreaterThan(3);
    // Settled: nothing received, nothing left to serve.
    await waitForQuiet(h(), placed);
    const revoked = await h()
      .ctx.db('stock_movements')
      .where({ reason: 'stock count shortage' })
      .count({ n: '*' })
      .first();
    expect(Number(revoked!.n)).toBeGreaterThan(0);
    for (const sku of skus) {
      for (const loc of [A, B, 'main']) {
        const l = await level(h().ctx.db, sku, loc);
        expect(l.reserved).toBeLessThanOrEqual(l.on_hand);
      }
    }
    await ledgerReportOk(h());
    await invariantsClean(h());
  }, 90_000);
});

describe('stock counts: an order already waiting', () => {
  it('when a count revokes a reserved line of an order that already waits for another, then it stays awaiting_stock with the shortage as its reason and a history entry, both lines waiting', async () => {
    await h().startWorkers();
    const x = await makeProductAt(h(), { main: 4 });
    const y = await makeProductAt(h(), { main: 0 });
    const c = await makeCustomerId(h());
    const o = await orderReaching(
      h(),
      c,
      [
        { sku: x, quantity: 3 },
        { sku: y, quantity: 1 },
      ],
      'awaiting_stock',
    );
    const events0 = Number((await h().ctx.db('events').where({ order_id: o.id }).count({ n: '*' }).first())!.n);
    await sleep(10);
    const body = { count_id: `cnt-${randomUUID()}`, counted_at: await dbNow(h()), items: [{ sku: x, on_hand: 2 }] };
    expect((await count(body)).body).toEqual({ accepted: true });
    const after = await getOrder(h(), o.id);
    expect(after).toMatchObject({ status: 'awaiting_stock', status_reason: 'stock count shortage' });
    expect(after.lines.map((l: any) => [l.sku, l.reserved, l.waiting]).sort()).toEqual(
      [
        [x, 0, true],
        [y, 0, true],
      ].sort(),
    );
    expect(after.history.at(-1)).toMatchObject({ status: 'awaiting_stock' });
    expect(after.history.at(-1).detail).toMatch(/revoked/);
    // The system revoked it, not the key that posted the count (change 2).
    expect(after.history.at(-1).actor).toEqual({ role: 'system', name: 'revoke' });
    // No transition, so no event; the checker (one event per transition) agrees.
    expect(Number((await h().ctx.db('events').where({ order_id: o.id }).count({ n: '*' }).first())!.n)).toBe(events0);
    expect(await totals(h().ctx.db, x)).toMatchObject({ on_hand: 2, reserved: 0, backordered: 3 });
    await invariantsClean(h());
  });
});

describe('stock counts: FIFO over a revoked line of a waiting order', () => {
  it('when younger orders took a SKU while an older waiting order held it reserved, and a count later revokes that line, then the checker counts the wait from the revocation, not from the order', async () => {
    await h().startWorkers();
    const x = await makeProductAt(h(), { main: 4 });
    const y = await makeProductAt(h(), { main: 0 });
    const c = await makeCustomerId(h());
    // The older order waits for y while its x line is reserved.
    const older = await orderReaching(
      h(),
      c,
      [
        { sku: x, quantity: 3 },
        { sku: y, quantity: 1 },
      ],
      'awaiting_stock',
    );
    await sleep(50);
    // A younger order takes the free unit of x (nothing waits for x: the older line holds it) and ships.
    const younger = await orderReaching(h(), c, [{ sku: x, quantity: 1 }], 'confirmed');
    expect((await h().api('POST', `/v1/orders/${younger.id}/fulfill`, { role: 'feed' })).status).toBe(200);
    await sleep(50);
    // The count finds one unit short: the youngest unshipped holder at main is the older order.
    const body = { count_id: `cnt-${randomUUID()}`, counted_at: await dbNow(h()), items: [{ sku: x, on_hand: 2 }] };
    expect((await count(body)).body).toEqual({ accepted: true });
    const after = await getOrder(h(), older.id);
    expect(after.lines.find((l: any) => l.sku === x)).toMatchObject({ reserved: 0, waiting: true });
    // The younger order got x before the older line waited for it: FIFO held, with no slack at all.
    const report = await checkInvariants(h().ctx.db, { fifoSlackSeconds: 0 });
    expect(report.problems).toEqual([]);
  });
});

describe('stock counts: what a shortage tells, and who did it', () => {
  const T = '2030-03-01T00:00:00.000Z';
  const inbound = (sku: string, quantity: number) =>
    h().api('POST', '/v1/inbound', {
      role: 'feed',
      body: { inbound_id: `in-${randomUUID()}`, sku, quantity, expected_at: T },
    });

  it("when a count's shortage makes the youngest confirmed order wait, then its order.awaiting_stock webhook body and feed entry show the order, queue and ETA as a GET right after does, and are valid Orders", async () => {
    await h().startWorkers();
    const rx = await startReceiver();
    try {
      const isOrder = await servedSchema(h(), 'Order');
      const sku = await makeProductAt(h(), { main: 5 });
      // 1 unit expected at T: with the 1 unit the count leaves free, it covers the revoked line's 2.
      expect((await inbound(sku, 1)).status).toBe(201);
      const c = await customerWithWebhook(h(), rx.url);
      const o1 = await orderReaching(h(), c, [{ sku, quantity: 3 }], 'confirmed');
      const o2 = await orderReaching(h(), c, [{ sku, quantity: 2 }], 'confirmed');
      await sleep(10);
      const body = { count_id: `cnt-${randomUUID()}`, counted_at: await dbNow(h()), items: [{ sku, on_hand: 4 }] };
      expect((await count(body)).body).toEqual({ accepted: true });

      const got = await getOrder(h(), o2.id);
      expect(got).toMatchObject({ status: 'awaiting_stock', status_reason: 'stock count shortage', eta: T });
      expect(lineOf(got, sku)).toMatchObject({
        reserved: 0,
        waiting: true,
        queue: { position: 1, units_ahead: 0, eta: T },
      });
      const fed = await feedOrder(h(), o2.id, 'order.awaiting_stock');
      const hook = await rx.body(o2.id, 'order.awaiting_stock');
      for (const [what, order] of [
        ['feed', fed],
        ['webhook', hook.data.order],
      ] as const) {
        expect(lineOf(order, sku).queue, what).toEqual(lineOf(got, sku).queue);
        expect(order, what).toEqual(got);
        expect(isOrder(order), what).toEqual([]);
      }
      expect((await getOrder(h(), o1.id)).status).toBe('confirmed');
      await invariantsClean(h());
    } finally {
      await rx.close();
    }
  });

  it('when a waiting order is edited and waits again in the middle of its queue, and then the head is cancelled, then each event shows the queue as a GET right after it did', async () => {
    await h().startWorkers();
    const rx = await startReceiver();
    try {
      const isOrder = await servedSchema(h(), 'Order');
      const sku = await makeProductAt(h(), { main: 1 });
      expect((await inbound(sku, 3)).status).toBe(201); // free 1 + 3 at T
      const c = await customerWithWebhook(h(), rx.url);
      const o1 = await orderReaching(h(), c, [{ sku, quantity: 2 }], 'awaiting_stock');
      const o2 = await orderReaching(h(), c, [{ sku, quantity: 2 }], 'awaiting_stock');
      const o3 = await orderReaching(h(), c, [{ sku, quantity: 1 }], 'awaiting_stock');
      const queueOf = async (id: string) => lineOf(await getOrder(h(), id), sku).queue;

      // o2 now asks for 4: back to received, processed again, waiting at its own seq behind o1.
      const edited = await h().api('PATCH', `/v1/orders/${o2.id}`, {
        role: 'intake',
        body: { lines: [{ sku, quantity: 4 }] },
      });
      expect(edited.status).toBe(202);
      const again = await untilOrder(h(), o2.id, 'awaiting_stock');
      expect(lineOf(again, sku).queue).toEqual({ position: 2, units_ahead: 2, eta: null });
      expect(await queueOf(o3.id)).toEqual({ position: 3, units_ahead: 6, eta: null });
      const waits = (await h().api('GET', `/v1/events?subject=${o2.id}&types=order.awaiting_stock`, { role: 'viewer' }))
        .body.data;
      expect(waits).toHaveLength(2);
      const hook = await waitFor(async () => rx.bodies.find((b) => b.id === waits[1].id));
      for (const [what, order] of [
        ['feed', waits[1].data.order],
        ['webhook', hook.data.order],
      ] as const) {
        expect(order, what).toEqual(again);
        expect(isOrder(order), what).toEqual([]);
      }

      // The head leaves: the lines behind it move up; its own event shows no queue.
      expect((await h().api('POST', `/v1/orders/${o1.id}/cancel`, { role: 'intake', body: {} })).status).toBe(200);
      expect(await queueOf(o2.id)).toEqual({ position: 1, units_ahead: 0, eta: T });
      expect(await queueOf(o3.id)).toEqual({ position: 2, units_ahead: 4, eta: null });
      const cancelled = await feedOrder(h(), o1.id, 'order.cancelled');
      expect(lineOf(cancelled, sku)).toMatchObject({ waiting: false, queue: null });
      expect(cancelled).toEqual(await getOrder(h(), o1.id));
      expect(isOrder(cancelled)).toEqual([]);
      await invariantsClean(h());
    } finally {
      await rx.close();
    }
  });

  it("when a count's shortage revokes a line and a second location takes it back, then the count and its count movement name the feed key, while the release, the awaiting_stock entry and the re-allocation name the system (revoke, allocate)", async () => {
    await h().startWorkers();
    const isOrder = await servedSchema(h(), 'Order');
    const A = await makeLocation(h(), 10);
    const B = await makeLocation(h(), 20);
    const sku = await makeProductAt(h(), { [A]: 5, [B]: 2 });
    const c = await makeCustomerId(h());
    const o1 = await orderReaching(h(), c, [{ sku, quantity: 3 }], 'confirmed');
    const o2 = await orderReaching(h(), c, [{ sku, quantity: 2 }], 'confirmed');
    expect(Object.keys(allocationsOf(o2, sku))).toEqual([A]);
    await sleep(10);
    const body = {
      count_id: `cnt-${randomUUID()}`,
      location: A,
      counted_at: await dbNow(h()),
      items: [{ sku, on_hand: 3 }],
    };
    expect((await count(body)).body).toEqual({ accepted: true });
    const back = await untilOrder(h(), o2.id, 'confirmed');
    expect(allocationsOf(back, sku)).toEqual({ [B]: { reserved: 2, shipped: 0 } });

    const feed = { role: 'feed', name: 'feed' };
    const system = (name: string) => ({ role: 'system', name });
    expect((await readCount(body.count_id)).body.actor).toEqual(feed);
    const booked = await h()
      .ctx.db('stock_movements')
      .where({ type: 'count', event_id: body.count_id })
      .select('location', 'quantity', 'actor_role', 'actor_name');
    expect(
      booked.map((m: any) => [m.location, Number(m.quantity), { role: m.actor_role, name: m.actor_name }]),
    ).toEqual([[A, -2, feed]]);
    const t = (await h().api('GET', `/v1/orders/${o2.id}/timeline`, { role: 'viewer' })).body.data;
    expect(
      t.filter((e: any) => e.kind === 'movement').map((e: any) => [e.type, e.location, e.quantity, e.reason, e.actor]),
    ).toEqual([
      ['reservation', A, 2, expect.any(String), system('reserve')],
      ['release', A, -2, 'stock count shortage', system('revoke')],
      ['reservation', B, 2, 'backorder filled', system('allocate')],
    ]);
    expect(t.filter((e: any) => e.kind === 'history').map((e: any) => [e.status, e.actor])).toEqual([
      ['received', { role: 'intake', name: 'intake' }],
      ['confirmed', system('reserve')],
      ['awaiting_stock', system('revoke')],
      ['confirmed', system('allocate')],
    ]);
    // While it waited, the B units were free: head of the queue, ETA the moment it waited.
    const waited = await feedOrder(h(), o2.id, 'order.awaiting_stock');
    expect(lineOf(waited, sku).queue).toMatchObject({ position: 1, units_ahead: 0 });
    expect(isOrder(waited)).toEqual([]);
    const refilled = await feedOrder(h(), o2.id, 'order.confirmed');
    expect(lineOf(refilled, sku)).toMatchObject({ reserved: 2, waiting: false, queue: null });
    expect(isOrder(refilled)).toEqual([]);
    // The older order kept its units, and nothing of it names the count's key but the count.
    expect(allocationsOf(await getOrder(h(), o1.id), sku)).toEqual({ [A]: { reserved: 3, shipped: 0 } });
    await invariantsClean(h());
  });
});

/** A webhook receiver that keeps every body it is sent (answering 200); signatures are notifications.test.ts's concern. */
async function startReceiver() {
  const bodies: any[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    bodies,
    /** The body of the `type` event of order `orderId`, once delivered. */
    body: (orderId: string, type: string) =>
      waitFor(async () => bodies.find((b) => b.type === type && b.data.order.id === orderId), {
        what: `${type} of ${orderId} delivered`,
      }),
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

async function customerWithWebhook(x: Harness, url: string): Promise<string> {
  const r = await x.api('POST', '/v1/customers', {
    body: { email: `cnt-${randomUUID()}@example.test`, name: 'Counted', webhook_url: url },
  });
  expect(r.status).toBe(201);
  return r.body.id;
}

/**
 * The order carried by the feed's `type` event of order `id` (the latest of them), once the feed
 * shows it: an event is in the feed when the sequencer has numbered it, a moment after its commit.
 */
async function feedOrder(x: Harness, id: string, type: string) {
  const data = await waitFor(
    async () => {
      const r = await x.api('GET', `/v1/events?subject=${id}&types=${type}`, { role: 'viewer' });
      expect(r.status).toBe(200);
      return r.body.data.length > 0 ? r.body.data : undefined;
    },
    { what: `${type} of ${id} in the feed` },
  );
  return data.at(-1).data.order;
}

const lineOf = (order: any, sku: string) => order.lines.find((l: any) => l.sku === sku);

async function waitForQuiet(x: Harness, ids: string[]) {
  for (let i = 0; i < 300; i++) {
    const received = await x.ctx
      .db('orders')
      .whereIn('id', ids)
      .where({ status: 'received' })
      .count({ n: '*' })
      .first();
    const report = await checkInvariants(x.ctx.db);
    if (Number(received!.n) === 0 && report.ok) return;
    await sleep(100);
  }
}

async function untilOnHand(x: Harness, sku: string, n: number) {
  for (let i = 0; i < 300; i++) {
    if ((await level(x.ctx.db, sku, 'main')).on_hand === n) return;
    await sleep(100);
  }
  throw new Error(`on_hand of ${sku} never reached ${n}: ${JSON.stringify(await level(x.ctx.db, sku, 'main'))}`);
}
