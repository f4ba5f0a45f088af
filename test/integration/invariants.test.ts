import { spawnSync } from 'node:child_process';
import { beforeEach, describe, expect, it } from 'vitest';
import { checkInvariants } from '../../src/invariants';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { ROOT, useHarness, waitFor } from '../helpers/harness';

const h = useHarness();

// The tests corrupt the record on purpose: each starts from empty tables.
beforeEach(async () => {
  await h().ctx.db.raw(`TRUNCATE customers, products, stock, stock_movements, orders, order_lines, order_history,
    idempotency_keys, events, outbox, notifications, restock_events RESTART IDENTITY CASCADE`);
});

/** A small shop at rest: one confirmed order, one waiting, one completed, one cancelled. */
async function shopAtRest() {
  await h().startWorkers();
  const c = await makeCustomer(h());
  const p = await makeProduct(h(), 5);
  const confirmed = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
  const completed = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
  const waiting = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 4 }]);
  await untilStatus(h(), confirmed.id, 'confirmed');
  await untilStatus(h(), completed.id, 'confirmed');
  await untilStatus(h(), waiting.id, 'awaiting_stock');
  expect((await h().api('POST', `/v1/orders/${completed.id}/fulfill`, { role: 'feed' })).status).toBe(200);
  const cancelled = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
  await untilStatus(h(), cancelled.id, 'awaiting_stock');
  expect((await h().api('POST', `/v1/orders/${cancelled.id}/cancel`, { role: 'intake' })).status).toBe(200);
  return { c, p, confirmed, waiting };
}

const check = () => checkInvariants(h().ctx.db, { queues: h().ctx.queues, graceSeconds: 1 });

describe('invariant checker', () => {
  it('when the shop is at rest, then every invariant holds', async () => {
    await shopAtRest();
    const report = await check();
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it('when a reservation is written twice, then the ledger and the line ledger report it', async () => {
    const { p, confirmed } = await shopAtRest();
    await h()
      .ctx.db('stock_movements')
      .insert({ sku: p.sku, type: 'reservation', quantity: 2, order_id: confirmed.id, reason: 'duplicate' });
    const report = await check();
    expect(report.ok).toBe(false);
    expect(report.counts['ledger-reserved']).toBe(1);
    expect(report.counts['line-ledger']).toBe(1);
    expect(report.problems.join('\n')).toContain(`order ${confirmed.id} ${p.sku}: ledger holds 4 (expected 2)`);
  });

  it('when stock figures drift from the ledger and the lines, then each drift is named', async () => {
    const { p } = await shopAtRest();
    await h().ctx.db('stock').where({ sku: p.sku }).update({ on_hand: 9, backordered: 7 });
    const report = await check();
    expect(report.counts['ledger-on-hand']).toBe(1);
    expect(report.counts.backordered).toBe(1);
    expect(report.problems.some((l) => l.startsWith(`ledger-on-hand: ${p.sku}: on_hand 9 but the ledger says 4`))).toBe(
      true,
    );
  });

  it('when stock is free while the head of the queue waits, then FIFO is reported', async () => {
    const { p, waiting } = await shopAtRest();
    // A receipt that nobody allocated: 4 + 4 on hand, 2 reserved, the waiting line of 4 fits.
    await h().ctx.db.transaction(async (trx) => {
      await trx('stock').where({ sku: p.sku }).increment({ on_hand: 4, version: 1 });
      await trx('stock_levels').where({ sku: p.sku, location: 'main' }).increment({ on_hand: 4, version: 1 });
      await trx('stock_movements').insert({ sku: p.sku, type: 'receipt', quantity: 4, reason: 'test' });
    });
    const report = await checkInvariants(h().ctx.db, { graceSeconds: 1000 });
    expect(report.counts['fifo-head']).toBe(1);
    expect(report.problems.join('\n')).toContain(`head line of order ${waiting.id}`);
  });

  it('when a later line took stock while an earlier one waited, then FIFO order is reported', async () => {
    const { c, p, waiting } = await shopAtRest();
    const later = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await waitFor(async () => (await h().api('GET', `/v1/orders/${later.id}`)).body.status === 'awaiting_stock');
    // Forge an allocation that skipped the head: the later order's line reserved 5 s after the head began waiting.
    await h().ctx.db.raw(`UPDATE orders SET awaiting_since = now() - interval '10 seconds' WHERE id = ?`, [waiting.id]);
    await h().ctx.db.transaction(async (trx) => {
      await trx('stock')
        .where({ sku: p.sku })
        .increment({ on_hand: 1, reserved: 1, version: 1 })
        .decrement({ backordered: 1 });
      await trx('stock_movements').insert([
        { sku: p.sku, type: 'receipt', quantity: 1, reason: 'test' },
        {
          sku: p.sku,
          type: 'reservation',
          quantity: 1,
          order_id: later.id,
          reason: 'backorder filled',
          created_at: trx.raw(`now() - interval '5 seconds'`),
        },
      ]);
      await trx('order_lines').where({ order_id: later.id }).update({ reserved: true });
      await trx('orders').where({ id: later.id }).update({ status: 'confirmed' });
    });
    const report = await checkInvariants(h().ctx.db, { graceSeconds: 1000 });
    expect(report.counts['fifo-order']).toBe(1);
    expect(report.problems.join('\n')).toContain(`order ${later.id}`);
    expect(report.counts['events']).toBe(0);
    expect(report.counts['fifo-head']).toBe(0);
  });

  it('when a received order has no live job past the grace period, then it is reported as stuck', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await h().ctx.queues.orders.obliterate({ force: true });
    await h().ctx.db.raw(`UPDATE orders SET updated_at = now() - interval '1 minute' WHERE id = ?`, [o.id]);
    const report = await check();
    expect(report.counts['received-live']).toBe(1);
    expect(report.problems.join('\n')).toContain(`received-live: order ${o.id}`);
  });

  it('when npm run check runs, then it prints the problems and its exit code says whether any', async () => {
    const { p } = await shopAtRest();
    const env = { ...process.env, ...h().env, LOG_LEVEL: 'silent' };
    const good = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/check-invariants.ts'], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
    });
    expect(good.stdout).toContain('all invariants hold');
    expect(good.status).toBe(0);
    await h().ctx.db('stock_movements').insert({ sku: p.sku, type: 'adjustment', quantity: 3, reason: 'unrecorded' });
    const bad = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/check-invariants.ts'], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
    });
    expect(bad.stdout).toContain(`ledger-on-hand: ${p.sku}: on_hand 4 but the ledger says 7`);
    expect(bad.status).toBe(1);
  });

  it('when a location, a line, a shipment or a transfer is corrupted, then each rule of the locations model names it', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 6);
    await h().api('POST', '/v1/locations', { body: { code: 'inv-east', name: 'East' } });
    expect(
      (
        await h().api('POST', `/v1/inventory/${p.sku}/transfers`, {
          body: { from: 'main', to: 'inv-east', quantity: 2 },
        })
      ).status,
    ).toBe(201);
    await h().startWorkers();
    const order = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await waitFor(async () => (await h().api('GET', `/v1/orders/${order.id}`)).body.status === 'confirmed');
    const shipped = await h().api('POST', `/v1/orders/${order.id}/shipments`, {
      role: 'feed',
      body: { lines: [{ sku: p.sku, quantity: 1 }] },
    });
    expect(shipped.status).toBe(201);
    expect((await checkInvariants(h().ctx.db, { graceSeconds: 1000 })).problems).toEqual([]);

    const db = h().ctx.db;
    await db('stock_levels').where({ sku: p.sku, location: 'inv-east' }).increment({ on_hand: 5 }); // level-totals, ledger-level
    await db('stock_movements').insert({
      sku: p.sku,
      location: 'main',
      type: 'transfer_in',
      quantity: 1,
      reason: 'forged',
    }); // transfers-net
    await db('order_lines').where({ order_id: order.id }).increment({ shipped: 1 }); // line-allocations, shipments-returns
    const report = await checkInvariants(db, { graceSeconds: 1000 });
    for (const rule of ['level-totals', 'ledger-level', 'transfers-net', 'line-allocations', 'shipments-returns']) {
      expect(report.counts[rule], rule).toBeGreaterThan(0);
    }
    await db.raw('ALTER TABLE stock_levels DROP CONSTRAINT stock_levels_reserved_range');
    await db('stock_levels').where({ sku: p.sku, location: 'main' }).update({ reserved: 999 }); // level-range, reserved-lines
    const again = await checkInvariants(db, { graceSeconds: 1000 });
    expect(again.counts['level-range']).toBe(1);
    expect(again.counts['reserved-lines']).toBeGreaterThan(0);
  });
  it('when a shipment, a return, a queue seq or a count shortage is corrupted, then shipments-by-location, returns-ledger, wait-own-seq and shortage-youngest name it', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 6);
    await h().api('POST', '/v1/locations', { body: { code: 'inv-west', name: 'West' } });
    await h().startWorkers();
    // Two orders hold 2 units each at main; a third ships one unit and returns it to stock.
    const older = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), older.id, 'confirmed');
    const younger = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    await untilStatus(h(), younger.id, 'confirmed');
    const shipped = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await untilStatus(h(), shipped.id, 'confirmed');
    const ship = await h().api('POST', `/v1/orders/${shipped.id}/shipments`, {
      role: 'feed',
      body: { lines: [{ sku: p.sku, quantity: 1 }] },
    });
    expect(ship.status, ship.text).toBe(201);
    const ret = await h().api('POST', `/v1/orders/${shipped.id}/returns`, {
      role: 'feed',
      body: { lines: [{ sku: p.sku, quantity: 1, disposition: 'restock' }] },
    });
    expect(ret.status, ret.text).toBe(201);
    // on_hand 6 (6 − 1 sold + 1 returned), reserved 4: a count of 2 is 2 short, so the younger order's line is revoked.
    const count = await h().api('POST', '/v1/inventory/counts', {
      role: 'feed',
      body: { count_id: 'inv-short', counted_at: new Date().toISOString(), items: [{ sku: p.sku, on_hand: 2 }] },
    });
    expect(count.status, count.text).toBe(202);
    await untilStatus(h(), younger.id, 'awaiting_stock');
    const db = h().ctx.db;
    const clean = await checkInvariants(db, { graceSeconds: 1000 });
    expect(clean.problems).toEqual([]);
    for (const rule of ['shipments-by-location', 'returns-ledger', 'shortage-youngest', 'wait-own-seq'])
      expect(clean.counts[rule], rule).toBe(0);

    // The record says the older order was revoked and the younger kept its units.
    await db('stock_movements')
      .where({ type: 'release', reason: 'stock count shortage', order_id: younger.id })
      .update({ order_id: older.id });
    // The shipment claims another location than the sale and the allocation.
    await db('shipments').where({ order_id: shipped.id }).update({ location: 'inv-west' });
    // A return movement with no return behind it.
    await db('stock_movements').insert({
      sku: p.sku,
      location: 'main',
      type: 'return',
      quantity: 1,
      order_id: shipped.id,
    });
    // A line that queues at another seq than its order's.
    await db('order_lines').where({ order_id: younger.id }).increment({ seq: 1000 });
    const report = await checkInvariants(db, { graceSeconds: 1000 });
    expect(report.counts['shortage-youngest']).toBe(1);
    expect(report.problems.join('\n')).toContain(`kept the younger order ${younger.id}`);
    expect(report.counts['shipments-by-location']).toBe(2); // at main: sold, not listed; at inv-west: listed, not sold
    expect(report.counts['returns-ledger']).toBe(1);
    expect(report.counts['wait-own-seq']).toBe(1);
  });
});
