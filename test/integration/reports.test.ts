import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/platform/config';
import { closeContext, createContext } from '../../src/app/context';
import { createApp } from '../../src/http/app';
import { prepareDatabase } from '../../src/platform/prepare-database';
import { checkpointLedger, ledgerReport } from '../../src/reports';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { createHarness, KEYS, useHarness, waitFor, type Harness } from '../helpers/harness';
import { startPrivatePostgres } from '../../bench/lib/private-postgres';

const h = useHarness({ workers: false });

/** RFC 4180 reader: quoted cells, doubled quotes, CRLF rows. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += ch;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

describe('reports', () => {
  it('when orders of every outcome fall on several days, then the orders report counts them by status, revenue and day within from/to', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p1 = await makeProduct(h(), 10, { price_cents: 1000 });
    const p2 = await makeProduct(h(), 1, { price_cents: 250 });
    const o1 = await placeOrder(h(), c.id, [{ sku: p1.sku, quantity: 2 }]);
    await untilStatus(h(), o1.id, 'confirmed');
    const o2 = await placeOrder(h(), c.id, [
      { sku: p1.sku, quantity: 1 },
      { sku: p2.sku, quantity: 1 },
    ]);
    await untilStatus(h(), o2.id, 'confirmed');
    // o2 ships one of its two lines: partially_shipped, and still sold.
    const part = await h().api('POST', `/v1/orders/${o2.id}/shipments`, {
      role: 'feed',
      body: { lines: [{ sku: p1.sku, quantity: 1 }] },
    });
    expect(part.status).toBe(201);
    const o3 = await placeOrder(h(), c.id, [{ sku: p2.sku, quantity: 3 }]);
    await untilStatus(h(), o3.id, 'awaiting_stock');
    const o4 = await placeOrder(h(), c.id, [{ sku: p2.sku, quantity: 5 }], { on_insufficient_stock: 'reject' });
    await untilStatus(h(), o4.id, 'rejected');
    const o5 = await placeOrder(h(), c.id, [{ sku: p1.sku, quantity: 3 }]);
    await untilStatus(h(), o5.id, 'confirmed');
    expect((await h().api('POST', `/v1/orders/${o5.id}/fulfill`, { role: 'feed' })).status).toBe(200);
    const o6 = await placeOrder(h(), c.id, [{ sku: p1.sku, quantity: 1 }]);
    await untilStatus(h(), o6.id, 'confirmed');
    expect((await h().api('POST', `/v1/orders/${o6.id}/cancel`, { role: 'intake' })).status).toBe(200);
    // Put them on days of their own, far from anything else in this database.
    const at: [string, string][] = [
      [o1.id, '2020-03-01T10:00:00Z'],
      [o2.id, '2020-03-01T23:59:59Z'],
      [o3.id, '2020-03-02T12:00:00Z'],
      [o4.id, '2020-03-04T00:00:00Z'],
      [o5.id, '2020-03-04T18:30:00Z'],
      [o6.id, '2020-03-05T00:00:00Z'],
    ];
    for (const [id, when] of at) await h().ctx.db('orders').where({ id }).update({ created_at: when });

    const r = await h().api('GET', '/v1/reports/orders?from=2020-03-01&to=2020-03-04');
    expect(r.status).toBe(200);
    // Revenue counts the orders sold: confirmed, partially_shipped and completed (o1: 2 × 1000, o2:
    // 1000 + 250, o5: 3 × 1000); not the waiting, rejected or cancelled ones.
    expect(r.body).toEqual({
      from: '2020-03-01T00:00:00.000Z',
      to: '2020-03-05T00:00:00.000Z',
      orders: 5,
      revenue_cents: 2000 + 1250 + 3000,
      by_status: {
        received: 0,
        confirmed: 1,
        awaiting_stock: 1,
        partially_shipped: 1,
        rejected: 1,
        failed: 0,
        cancelled: 0,
        completed: 1,
      },
      per_day: [
        { day: '2020-03-01', orders: 2, revenue_cents: 3250 },
        { day: '2020-03-02', orders: 1, revenue_cents: 0 },
        { day: '2020-03-03', orders: 0, revenue_cents: 0 },
        { day: '2020-03-04', orders: 2, revenue_cents: 3000 },
      ],
    });
    // A date-time `to` is exclusive: o4 at exactly 2020-03-04T00:00Z is left out; o6's day comes in with a later bound.
    const narrow = await h().api('GET', '/v1/reports/orders?from=2020-03-01T00:00:00Z&to=2020-03-04T00:00:00Z');
    expect(narrow.body).toMatchObject({
      orders: 3,
      revenue_cents: 3250,
      by_status: { confirmed: 1, partially_shipped: 1, awaiting_stock: 1, rejected: 0 },
    });
    const wide = await h().api('GET', '/v1/reports/orders?from=2020-03-04&to=2020-03-05');
    expect(wide.body).toMatchObject({
      orders: 3,
      revenue_cents: 3000,
      by_status: { rejected: 1, completed: 1, cancelled: 1 },
    });
    expect(wide.body.per_day).toEqual([
      { day: '2020-03-04', orders: 2, revenue_cents: 3000 },
      { day: '2020-03-05', orders: 1, revenue_cents: 0 },
    ]);
  });

  it('when the orders report gets a bad window or the wrong key, then it answers 400, 401 or 403', async () => {
    const backwards = await h().api('GET', '/v1/reports/orders?from=2020-03-05&to=2020-03-01');
    expect(backwards.status).toBe(400);
    expect(backwards.body.error).toMatchObject({
      code: 'validation_failed',
      details: [{ path: 'query.to', message: 'must be after from' }],
    });
    const garbage = await h().api('GET', '/v1/reports/orders?from=yesterday');
    expect(garbage.status).toBe(400);
    expect(garbage.body.error.details[0].path).toBe('query.from');
    expect((await h().api('GET', '/v1/reports/orders', { role: null })).status).toBe(401);
    for (const path of ['orders', 'inventory', 'ledger', 'queues']) {
      expect((await h().api('GET', `/v1/reports/${path}`, { role: 'intake' })).status).toBe(403);
    }
    expect((await h().api('GET', '/v1/reports/inventory?format=xml')).status).toBe(400);
  });

  it('when SKUs are reserved, backordered or empty, then the inventory report shows each, lowest available first, as JSON and CSV', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const x = await makeProduct(h(), 10, { name: 'Plain' });
    const y = await makeProduct(h(), 2, { name: 'Comma, "quoted"' });
    const z = await makeProduct(h(), 0, { name: '=SUM(A1)' });
    await untilStatus(h(), (await placeOrder(h(), c.id, [{ sku: x.sku, quantity: 3 }])).id, 'confirmed');
    await untilStatus(h(), (await placeOrder(h(), c.id, [{ sku: y.sku, quantity: 2 }])).id, 'confirmed');
    await untilStatus(h(), (await placeOrder(h(), c.id, [{ sku: y.sku, quantity: 1 }])).id, 'awaiting_stock');
    await untilStatus(h(), (await placeOrder(h(), c.id, [{ sku: y.sku, quantity: 2 }])).id, 'awaiting_stock');

    const expected = [
      { sku: z.sku, name: '=SUM(A1)', on_hand: 0, reserved: 0, available: 0, backordered: 0, waiting_orders: 0 },
      {
        sku: y.sku,
        name: 'Comma, "quoted"',
        on_hand: 2,
        reserved: 2,
        available: 0,
        backordered: 1 + 2,
        waiting_orders: 2,
      },
      { sku: x.sku, name: 'Plain', on_hand: 10, reserved: 3, available: 10 - 3, backordered: 0, waiting_orders: 0 },
    ];
    const mine = new Set([x.sku, y.sku, z.sku]);
    const json = await h().api('GET', '/v1/reports/inventory');
    expect(json.status).toBe(200);
    expect(json.body.data.filter((r: any) => mine.has(r.sku))).toEqual(expected);
    const avail = json.body.data.map((r: any) => r.available);
    expect(avail).toEqual([...avail].sort((a, b) => a - b));

    const csv = await h().api('GET', '/v1/reports/inventory?format=csv');
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv; charset=utf-8/);
    expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="?inventory.csv"?$/);
    const rows = parseCsv(csv.text);
    expect(rows[0]).toEqual(['sku', 'name', 'on_hand', 'reserved', 'available', 'backordered', 'waiting_orders']);
    expect(rows.length - 1).toBe(json.body.data.length);
    // A name that a spreadsheet would run as a formula is prefixed with a quote.
    expect(rows.slice(1).filter((r) => mine.has(r[0]))).toEqual(
      expected.map((e) => [
        e.sku,
        e.name.startsWith('=') ? `'${e.name}` : e.name,
        ...[e.on_hand, e.reserved, e.available, e.backordered, e.waiting_orders].map(String),
      ]),
    );
  });

  it('when the ledger checkpoint runs while a transaction that wrote a movement is still open, then it does not fold past it, and the report equals the whole-history sum at every step', async () => {
    // On a PostgreSQL of the test's own: a fold waits for every transaction of the whole server that
    // was running at the previous run, and the shared server's other work (a bulk load in another
    // database) can hold one open for minutes, which would stall the fold however long the test waits.
    const pgsrv = await startPrivatePostgres();
    let own: Harness | undefined;
    try {
      const url = pgsrv.url('orderflow');
      await prepareDatabase(url);
      own = await createHarness(url, { workers: false });
      await checkpointRace(own);
    } finally {
      await own?.close();
      await pgsrv.destroy();
    }
  }, 120_000);

  async function checkpointRace(own: Harness) {
    const db = own.ctx.db;
    const p = await makeProduct(own, 10);
    const adjust = async (delta: number) =>
      expect(
        (await own.api('POST', `/v1/inventory/${p.sku}/adjustments`, { body: { delta, reason: 'test' } })).status,
      ).toBe(201);
    const fromScratch = async () =>
      Number(
        (
          await db('stock_movements')
            .where({ sku: p.sku })
            .whereIn('type', [
              'initial',
              'receipt',
              'sale',
              'return',
              'adjustment',
              'count',
              'transfer_in',
              'transfer_out',
            ])
            .sum({ n: 'quantity' })
        )[0].n,
      );
    const reported = async () => (await ledgerReport(db)).data.find((r) => r.sku === p.sku)!.expected_on_hand;
    const upto = async () => Number((await db('ledger_checkpoint').first()).upto_id);

    await adjust(3);
    // A run folds up to the previous run's candidate only once every transaction of the server that
    // was running then has ended (the harness's own relay and API have some): it may take a few runs.
    await waitFor(
      async () => {
        await checkpointLedger(db);
        return (await upto()) > 0;
      },
      { what: 'the checkpoint folding what was committed', timeout: 20000, interval: 50 },
    );
    expect(await reported()).toBe(13);

    // A writer takes a movement id, then stays open while later movements commit.
    const open = await db.transaction();
    const [{ id: late }] = await open('stock_movements')
      .insert({ sku: p.sku, location: 'main', type: 'adjustment', quantity: 5, reason: 'slow writer' })
      .returning('id');
    await adjust(-2);
    for (let i = 0; i < 3; i++) {
      await checkpointLedger(db);
      expect(await upto(), 'never past a movement that may still commit').toBeLessThan(Number(late));
      expect(await reported()).toBe(await fromScratch());
    }
    expect(await reported()).toBe(11);
    await open.commit();
    expect(await reported()).toBe(16);
    // Transaction ids are cluster-wide: a transaction open in another database delays the fold too.
    await waitFor(
      async () => {
        await checkpointLedger(db);
        return (await upto()) > Number(late);
      },
      { what: 'the checkpoint past the slow writer', timeout: 20000, interval: 50 },
    );
    expect(await reported()).toBe(16);
    expect(await reported()).toBe(await fromScratch());
    // Folded twice would show here: the sums hold each movement once.
    await checkpointLedger(db);
    expect(await reported()).toBe(16);
    // The stock row was not touched by the slow writer: the report flags exactly that.
    const row = (await ledgerReport(db)).data.find((r) => r.sku === p.sku)!;
    expect([row.on_hand, row.ok]).toEqual([11, false]);
    await db('stock_movements').insert({
      sku: p.sku,
      location: 'main',
      type: 'adjustment',
      quantity: -5,
      reason: 'undo',
    });
    expect((await ledgerReport(db)).data.find((r) => r.sku === p.sku)!.ok).toBe(true);
  }

  it('when stock moves every way and one on_hand is corrupted by hand, then the ledger report balances the rest and flags that SKU', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const good = await makeProduct(h(), 10);
    const bad = await makeProduct(h(), 4);
    expect(
      (
        await h().api('POST', '/v1/restocks', {
          role: 'feed',
          body: { event_id: `ev-${good.sku}`, sku: good.sku, quantity: 5 },
        })
      ).status,
    ).toBe(202);
    await waitFor(async () => (await h().ctx.db('stock').where({ sku: good.sku }).first()).on_hand === 15, {
      what: 'restock applied',
    });
    const sold = await placeOrder(h(), c.id, [{ sku: good.sku, quantity: 3 }]);
    await untilStatus(h(), sold.id, 'confirmed');
    expect((await h().api('POST', `/v1/orders/${sold.id}/fulfill`, { role: 'feed' })).status).toBe(200);
    const held = await placeOrder(h(), c.id, [{ sku: good.sku, quantity: 2 }]);
    await untilStatus(h(), held.id, 'confirmed');
    expect(
      (await h().api('POST', `/v1/inventory/${good.sku}/adjustments`, { body: { delta: -1, reason: 'dropped one' } }))
        .status,
    ).toBe(201);
    await untilStatus(h(), (await placeOrder(h(), c.id, [{ sku: bad.sku, quantity: 1 }])).id, 'confirmed');

    const before = await h().api('GET', '/v1/reports/ledger');
    expect(before.status).toBe(200);
    expect(before.body.mismatches).toEqual([]);
    expect(before.body.ok).toBe(true);

    await h().ctx.db.raw('UPDATE stock SET on_hand = on_hand + 7 WHERE sku = ?', [bad.sku]);
    const r = await h().api('GET', '/v1/reports/ledger');
    expect(r.body.ok).toBe(false);
    const row = (sku: string) => r.body.data.find((d: any) => d.sku === sku);
    expect(row(good.sku)).toEqual({
      sku: good.sku,
      initial: 10,
      receipts: 5,
      sales: 3,
      returns: 0,
      adjustments: -1,
      counts: 0,
      transfers_in: 0,
      transfers_out: 0,
      expected_on_hand: 10 + 5 - 3 - 1,
      on_hand: 11,
      ok: true,
      expected_reserved: 2,
      reserved: 2,
      reserved_ok: true,
    });
    expect(row(bad.sku)).toEqual({
      sku: bad.sku,
      initial: 4,
      receipts: 0,
      sales: 0,
      returns: 0,
      adjustments: 0,
      counts: 0,
      transfers_in: 0,
      transfers_out: 0,
      expected_on_hand: 4,
      on_hand: 4 + 7,
      ok: false,
      expected_reserved: 1,
      reserved: 1,
      reserved_ok: true,
    });
    expect(r.body.mismatches).toEqual([row(bad.sku)]);
  });

  it('when jobs wait, are delayed and complete, then the queues report shows the BullMQ counts per queue', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    for (let i = 0; i < 3; i++) await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await h().ctx.queues.notifications.add('probe', {}, { delay: 600_000 });
    const counts = async () =>
      Object.fromEntries((await h().api('GET', '/v1/reports/queues')).body.data.map((q: any) => [q.name, q]));
    const waiting = await waitFor(
      async () => {
        const q = await counts();
        return q.orders.waiting === 3 && q;
      },
      { what: '3 order jobs waiting' },
    );
    expect(Object.keys(waiting).sort()).toEqual(['bulk', 'maintenance', 'notifications', 'orders', 'restocks']);
    expect(waiting.orders).toEqual({
      name: 'orders',
      waiting: 3,
      active: 0,
      delayed: 0,
      failed: 0,
      completed: 0,
      waiting_children: 0,
      paused: false,
    });
    expect(waiting.notifications).toMatchObject({ waiting: 0, delayed: 1 });

    await h().startWorkers(['orders']);
    const done = await waitFor(
      async () => {
        const q = await counts();
        return q.orders.completed === 3 && q;
      },
      { what: '3 order jobs completed' },
    );
    expect(done.orders).toMatchObject({ waiting: 0, active: 0, failed: 0, completed: 3 });
  });

  it('when Redis is unreachable, then the queues report is 503 and the other reports still answer', async () => {
    const ctx = createContext(loadConfig({ ...h().env, REDIS_URL: 'redis://127.0.0.1:1', REDIS_CLUSTER_NODES: '' }));
    for (const q of Object.values(ctx.queues)) q.on('error', () => undefined); // expected: nothing listens on port 1
    const server = await new Promise<Server>((r) => {
      const s = createApp(ctx).listen(0, '127.0.0.1', () => r(s));
    });
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const get = (path: string) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${KEYS.operator}` } });
      const queues = await get('/v1/reports/queues');
      expect(queues.status).toBe(503);
      expect(queues.headers.get('retry-after')).toBe('5');
      expect((await queues.json()).error.code).toBe('unavailable');
      expect((await get('/v1/reports/ledger')).status).toBe(200);
      expect((await get('/metrics')).status).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await closeContext(ctx);
    }
  });
});

describe('reports per location', () => {
  it('when stock moves between two locations, ships and comes back, then the ledger and inventory reports balance per SKU and per location', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const sku = `RLOC-${Date.now()}`;
    expect(
      (await h().api('POST', '/v1/locations', { body: { code: `r-east-${sku}`.slice(0, 32), name: 'East' } })).status,
    ).toBe(201);
    const east = `r-east-${sku}`.slice(0, 32);
    expect(
      (
        await h().api('POST', '/v1/products', {
          body: { sku, name: 'R', price_cents: 100, initial_stock_by_location: { main: 6 } },
        })
      ).status,
    ).toBe(201);
    expect(
      (await h().api('POST', `/v1/inventory/${sku}/transfers`, { body: { from: 'main', to: east, quantity: 2 } }))
        .status,
    ).toBe(201);
    const o = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.id, lines: [{ sku, quantity: 4 }] },
    });
    await waitFor(async () => (await h().api('GET', `/v1/orders/${o.body.id}`)).body.status === 'confirmed');
    expect((await h().api('POST', `/v1/orders/${o.body.id}/fulfill`, { role: 'feed' })).status).toBe(200);
    const ret = await h().api('POST', `/v1/orders/${o.body.id}/returns`, {
      role: 'feed',
      body: { lines: [{ sku, quantity: 1, disposition: 'restock' }] },
    });
    expect(ret.status).toBe(201);

    // The product's version is the sum of its location rows' versions, and rises with each change.
    const product = await h().api('GET', `/v1/products/${sku}`);
    expect(product.body.stock.version).toBe(product.body.locations.reduce((n: number, l: any) => n + l.version, 0));
    expect(product.body.stock.version).toBeGreaterThan(0);
    const bySku = await h().api('GET', '/v1/reports/ledger', { role: 'viewer' });
    expect(bySku.body.data.find((r: any) => r.sku === sku)).toMatchObject({
      initial: 6,
      sales: 4,
      returns: 1,
      transfers_in: 2,
      transfers_out: 2,
      expected_on_hand: 3,
      on_hand: 3,
      ok: true,
    });
    const byLoc = await h().api('GET', '/v1/reports/ledger?by=location');
    const rows = byLoc.body.data.filter((r: any) => r.sku === sku);
    expect(rows.every((r: any) => r.ok)).toBe(true);
    expect(rows.reduce((s: number, r: any) => s + r.on_hand, 0)).toBe(3);
    expect(rows.find((r: any) => r.location === east)).toMatchObject({ transfers_in: 2 });
    expect(rows.find((r: any) => r.location === 'main')).toMatchObject({ initial: 6, transfers_out: 2 });
    const inv = await h().api('GET', '/v1/reports/inventory?by=location');
    const invRows = inv.body.data.filter((r: any) => r.sku === sku);
    expect(invRows.map((r: any) => r.location).sort()).toEqual([east, 'main'].sort());
    expect(invRows.reduce((s: number, r: any) => s + r.on_hand, 0)).toBe(3);
    const csv = await h().api('GET', '/v1/reports/inventory?by=location&format=csv');
    expect(csv.text.split('\r\n')[0]).toBe('sku,location,name,on_hand,reserved,available,backordered,waiting_orders');
  });
});
