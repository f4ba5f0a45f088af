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

/**
 * Where an order's units come from (contract part 2, "Locations"), through the HTTP API with the
 * workers running. Every test makes its own locations (unique codes) and SKUs.
 */
describe('locations: where units are reserved from', () => {
  it('when one location can fill the whole order, then every unit comes from it, though another location is preferred', async () => {
    await h().startWorkers();
    const near = await makeLocation(h(), 10); // preferred, but lacks Y
    const far = await makeLocation(h(), 20);
    const x = await makeProductAt(h(), { [near]: 5, [far]: 5 });
    const y = await makeProductAt(h(), { [near]: 0, [far]: 5 });
    const c = await makeCustomerId(h());

    const o = await orderReaching(
      h(),
      c,
      [
        { sku: x, quantity: 2 },
        { sku: y, quantity: 2 },
      ],
      'confirmed',
    );
    expect(allocationsOf(o, x)).toEqual({ [far]: { reserved: 2, shipped: 0 } });
    expect(allocationsOf(o, y)).toEqual({ [far]: { reserved: 2, shipped: 0 } });
    expect(o.lines.map((l: any) => l.reserved)).toEqual([2, 2]);
    expect(await level(h().ctx.db, x, near)).toEqual({ on_hand: 5, reserved: 0 });
    expect(await level(h().ctx.db, x, far)).toEqual({ on_hand: 5, reserved: 2 });
    const m = await movements(h().ctx.db, { order_id: o.id });
    expect(m.every((r) => r.type === 'reservation' && r.location === far)).toBe(true);
    expect(m).toHaveLength(2);
  });

  it('when no location can fill the whole order, then each line comes from one location that fills it, the preferred one first', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    // X: both can fill (A preferred) · Y: only B · Z: only A → no location fills all three.
    const x = await makeProductAt(h(), { [a]: 5, [b]: 5 });
    const y = await makeProductAt(h(), { [a]: 0, [b]: 5 });
    const z = await makeProductAt(h(), { [a]: 5, [b]: 0 });
    const c = await makeCustomerId(h());

    const o = await orderReaching(
      h(),
      c,
      [
        { sku: x, quantity: 3 },
        { sku: y, quantity: 3 },
        { sku: z, quantity: 3 },
      ],
      'confirmed',
    );
    expect(allocationsOf(o, x)).toEqual({ [a]: { reserved: 3, shipped: 0 } });
    expect(allocationsOf(o, y)).toEqual({ [b]: { reserved: 3, shipped: 0 } });
    expect(allocationsOf(o, z)).toEqual({ [a]: { reserved: 3, shipped: 0 } });
    expect(await level(h().ctx.db, x, b)).toEqual({ on_hand: 5, reserved: 0 });
  });

  it('when no single location has enough for a line, then the line is split over locations in priority order', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    const cc = await makeLocation(h(), 30);
    const x = await makeProductAt(h(), { [cc]: 2, [b]: 4, [a]: 3 });
    const c = await makeCustomerId(h());

    const o = await orderReaching(h(), c, [{ sku: x, quantity: 8 }], 'confirmed');
    expect(allocationsOf(o, x)).toEqual({
      [a]: { reserved: 3, shipped: 0 },
      [b]: { reserved: 4, shipped: 0 },
      [cc]: { reserved: 1, shipped: 0 },
    });
    expect(o.lines[0].reserved).toBe(8);
    expect(await totals(h().ctx.db, x)).toEqual({ on_hand: 9, reserved: 8, backordered: 0 });
    expect(await level(h().ctx.db, x, cc)).toEqual({ on_hand: 2, reserved: 1 });
  });

  it('when a location is made inactive, then it gives no new reservation and is left out of available, but its reservations still ship', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    const x = await makeProductAt(h(), { [a]: 5, [b]: 2 });
    const c = await makeCustomerId(h());

    const first = await orderReaching(h(), c, [{ sku: x, quantity: 4 }], 'confirmed');
    expect(allocationsOf(first, x)).toEqual({ [a]: { reserved: 4, shipped: 0 } });

    const patch = await h().api('PATCH', `/v1/locations/${a}`, { body: { active: false } });
    expect(patch.status).toBe(200);
    expect(patch.body.active).toBe(false);

    const p = await h().api('GET', `/v1/products/${x}`);
    expect(p.body.stock).toMatchObject({ on_hand: 7, reserved: 4, available: 2, backordered: 0 });
    const byLoc = Object.fromEntries(p.body.locations.map((l: any) => [l.location, l]));
    expect(byLoc[a]).toMatchObject({ on_hand: 5, reserved: 4, available: 0 });
    expect(byLoc[b]).toMatchObject({ on_hand: 2, reserved: 0, available: 2 });

    // A's free unit is not offered: the next order takes B, the one after waits.
    const second = await orderReaching(h(), c, [{ sku: x, quantity: 2 }], 'confirmed');
    expect(allocationsOf(second, x)).toEqual({ [b]: { reserved: 2, shipped: 0 } });
    const third = await orderReaching(h(), c, [{ sku: x, quantity: 1 }], 'awaiting_stock');
    expect(third.lines[0]).toMatchObject({ reserved: 0, waiting: true });
    expect(await level(h().ctx.db, x, a)).toEqual({ on_hand: 5, reserved: 4 });

    // The inactive location's reservation ships.
    const ship = await h().api('POST', `/v1/orders/${first.id}/shipments`, {
      role: 'feed',
      body: { location: a, lines: [{ sku: x, quantity: 4 }] },
    });
    expect(ship.status).toBe(201);
    expect(ship.body).toMatchObject({ location: a, lines: [{ sku: x, quantity: 4 }] });
    expect((await getOrder(h(), first.id)).status).toBe('completed');
    expect(await level(h().ctx.db, x, a)).toEqual({ on_hand: 1, reserved: 0 });
    // Still nothing new from A: the waiting order keeps waiting.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await getOrder(h(), third.id)).status).toBe('awaiting_stock');
  });

  it('when stock arrives at any location (restock, adjustment or transfer), then the oldest waiting line of that SKU is served first', async () => {
    await h().startWorkers();
    const a = await makeLocation(h(), 10);
    const b = await makeLocation(h(), 20);
    const store = await makeLocation(h(), 5, { active: false }); // inactive: its stock serves nobody until moved
    const x = await makeProductAt(h(), { [a]: 0, [b]: 0, [store]: 3 });
    const c = await makeCustomerId(h());

    const o1 = await orderReaching(h(), c, [{ sku: x, quantity: 2 }], 'awaiting_stock');
    const o2 = await orderReaching(h(), c, [{ sku: x, quantity: 1 }], 'awaiting_stock');
    expect(o1.seq).toBeLessThan(o2.seq);

    // A restock at B (the less preferred location) serves the head, o1, and nothing jumps it.
    const rs = await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: { event_id: `loc-fifo-${x}-1`, sku: x, quantity: 2, location: b },
    });
    expect(rs.status).toBe(202);
    const o1c = await untilOrder(h(), o1.id, 'confirmed');
    expect(allocationsOf(o1c, x)).toEqual({ [b]: { reserved: 2, shipped: 0 } });
    expect((await getOrder(h(), o2.id)).status).toBe('awaiting_stock');

    // An adjustment at A serves the next, o2.
    const adj = await h().api('POST', `/v1/inventory/${x}/adjustments`, {
      body: { delta: 1, reason: 'found one', location: a },
    });
    expect(adj.status).toBe(201);
    const o2c = await untilOrder(h(), o2.id, 'confirmed');
    expect(allocationsOf(o2c, x)).toEqual({ [a]: { reserved: 1, shipped: 0 } });

    // o3 (3) then o4 (1) wait; 1 unit arriving at A does not fit o3, and o4 must not jump it.
    const o3 = await orderReaching(h(), c, [{ sku: x, quantity: 3 }], 'awaiting_stock');
    const o4 = await orderReaching(h(), c, [{ sku: x, quantity: 1 }], 'awaiting_stock');
    const rs2 = await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: { event_id: `loc-fifo-${x}-2`, sku: x, quantity: 1, location: a },
    });
    expect(rs2.status).toBe(202);
    await waitFor(async () => (await level(h().ctx.db, x, a)).on_hand === 2, { what: 'receipt at A' });
    await new Promise((r) => setTimeout(r, 1000));
    expect((await getOrder(h(), o3.id)).status).toBe('awaiting_stock');
    expect((await getOrder(h(), o4.id)).status).toBe('awaiting_stock');

    // A transfer from the inactive store into B lands 3 units: o3 takes them (B fills it), o4 takes A's.
    const t = await h().api('POST', `/v1/inventory/${x}/transfers`, {
      body: { from: store, to: b, quantity: 3, reason: 'bring it out' },
    });
    expect(t.status).toBe(201);
    const o3c = await untilOrder(h(), o3.id, 'confirmed');
    const o4c = await untilOrder(h(), o4.id, 'confirmed');
    expect(allocationsOf(o3c, x)).toEqual({ [b]: { reserved: 3, shipped: 0 } });
    expect(allocationsOf(o4c, x)).toEqual({ [a]: { reserved: 1, shipped: 0 } });
    expect(await totals(h().ctx.db, x)).toEqual({ on_hand: 7, reserved: 7, backordered: 0 });
  });
});
