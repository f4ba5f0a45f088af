import { describe, expect, it } from 'vitest';
import { applyStockChanges, readStockRows } from '../../src/inventory';
import { checkInvariants } from '../../src/invariants';
import { runUnitOfWork } from '../../src/platform/unit-of-work';
import { useHarness, waitFor, type Harness } from '../helpers/harness';
import { level, makeCustomerId, makeLocation, orderReaching, untilOrder } from '../helpers/locations-kit';

interface FeedEvent {
  id: string;
  type: string;
  subject: { type: string; id: string };
  subject_sequence: number;
  previous_event_id: string | null;
  data: any;
}

/** Every event of one subject in the feed, in sequence order. */
async function eventsOf(h: Harness, subject: string): Promise<FeedEvent[]> {
  const out: FeedEvent[] = [];
  let cursor: string | undefined;
  for (;;) {
    const qs = [`subject=${encodeURIComponent(subject)}`, cursor === undefined ? '' : `after=${cursor}`]
      .filter(Boolean)
      .join('&');
    const r = await h.api('GET', `/v1/events?${qs}`, { role: 'viewer' });
    expect(r.status, r.text).toBe(200);
    out.push(...r.body.data);
    if (r.body.data.length === 0) return out;
    cursor = r.body.next_cursor;
  }
}

/** The inventory.low_stock / back_in_stock events of a SKU as [type, data, subject_sequence]. */
async function availabilityOf(h: Harness, sku: string) {
  return (await eventsOf(h, sku))
    .filter((e) => e.type === 'inventory.low_stock' || e.type === 'inventory.back_in_stock')
    .map((e) => [e.type, e.data, e.subject_sequence]);
}

async function product(h: Harness, sku: string, byLocation: Record<string, number>, threshold: number | null) {
  const res = await h.api('POST', '/v1/products', {
    body: {
      sku,
      name: 'Widget',
      price_cents: 500,
      initial_stock_by_location: byLocation,
      ...(threshold === null ? {} : { low_stock_threshold: threshold }),
    },
  });
  expect(res.status, res.text).toBe(201);
}

const available = async (h: Harness, sku: string) =>
  (await h.api('GET', `/v1/products/${sku}`, { role: 'viewer' })).body.stock.available;

const setActive = async (h: Harness, code: string, active: boolean) => {
  const r = await h.api('PATCH', `/v1/locations/${code}`, { body: { active } });
  expect(r.status, r.text).toBe(200);
  expect(r.body.active).toBe(active);
};

describe('inventory events: a location turned off and on', () => {
  const h = useHarness({ workers: false });

  it('when a location holding free units is turned off and on again, then every SKU whose total available crosses a threshold gets inventory.low_stock or inventory.back_in_stock, numbered on from its earlier events', async () => {
    const west = await makeLocation(h(), 50);
    const tag = west.slice(-8);
    // A: all 5 at west, threshold 0. B: 5 at west and 3 at main, threshold 4. C: 5 at west, no threshold.
    // D: 5 at west and 9 at main, threshold 2: 14 → 9 crosses nothing. E: nothing at west.
    const [A, B, C, D, E] = ['A', 'B', 'C', 'D', 'E'].map((k) => `IE${k}-${tag}`);
    await product(h(), A, { [west]: 5 }, 0);
    await product(h(), B, { [west]: 5, main: 3 }, 4);
    await product(h(), C, { [west]: 5 }, null);
    await product(h(), D, { [west]: 5, main: 9 }, 2);
    await product(h(), E, { main: 1 }, 5);
    // A's earlier events: an adjustment to 0 and back (low_stock 1, back_in_stock 2).
    for (const delta of [-5, 5]) {
      const r = await h().api('POST', `/v1/inventory/${A}/adjustments`, {
        body: { delta, reason: 'recount', location: west },
      });
      expect(r.status, r.text).toBe(201);
    }
    const before = await eventsOf(h(), A);
    expect(before.map((e) => e.type)).toEqual(['inventory.low_stock', 'inventory.back_in_stock']);

    await setActive(h(), west, false);
    expect(await available(h(), A)).toBe(0);
    expect(await available(h(), B)).toBe(3);
    expect(await available(h(), C)).toBe(0);
    expect(await available(h(), D)).toBe(9);

    await setActive(h(), west, true);
    expect(await available(h(), A)).toBe(5);
    // Renaming it, or saying again what it is, changes nothing available: no event.
    expect((await h().api('PATCH', `/v1/locations/${west}`, { body: { name: 'West', active: true } })).status).toBe(
      200,
    );

    const ofA = await waitFor(
      async () => {
        const e = await eventsOf(h(), A);
        return e.length >= 4 && e;
      },
      { what: "A's events from the location's two changes" },
    );
    expect(ofA.map((e) => [e.type, e.data, e.subject_sequence, e.previous_event_id])).toEqual([
      ['inventory.low_stock', { sku: A, available: 0, threshold: 0 }, 1, null],
      ['inventory.back_in_stock', { sku: A, available: 5 }, 2, ofA[0].id],
      ['inventory.low_stock', { sku: A, available: 0, threshold: 0 }, 3, ofA[1].id],
      ['inventory.back_in_stock', { sku: A, available: 5 }, 4, ofA[2].id],
    ]);
    expect(await availabilityOf(h(), B)).toEqual([['inventory.low_stock', { sku: B, available: 3, threshold: 4 }, 1]]);
    expect(await availabilityOf(h(), C)).toEqual([['inventory.back_in_stock', { sku: C, available: 5 }, 1]]);
    expect(await availabilityOf(h(), D)).toEqual([]);
    expect(await availabilityOf(h(), E)).toEqual([]);
    // Each event has its delivery job in the outbox, as every other event does.
    const ids = ofA.slice(2).map((e) => e.id);
    expect((await h().ctx.db('outbox').whereIn('job_id', ids).pluck('job_id')).sort()).toEqual([...ids].sort());
  });
  it('when a write read a SKU before its location was turned off, then its version check fails and it reads again, so it reserves nothing there and decides its events on the new flag', async () => {
    const west = await makeLocation(h(), 50);
    const sku = `IEV-${west.slice(-8)}`;
    await product(h(), sku, { [west]: 5 }, 0);
    const attempts: number[] = [];
    const free = await runUnitOfWork(h().ctx, 'test', async (uow) => {
      attempts.push(uow.attempt);
      const row = (await readStockRows(uow.trx, [sku])).get(sku)!;
      // The change commits on another connection between this unit's read and its write.
      if (uow.attempt === 1) await setActive(h(), west, false);
      const here = row.levels.find((l) => l.location === west)!;
      const n = here.active ? here.on_hand - here.reserved : 0;
      if (n >= 2) {
        await applyStockChanges(
          uow,
          [{ row, levels: [{ location: west, reserved: 2 }] }],
          [{ sku, location: west, type: 'reservation', quantity: 2, reason: 'test' }],
          'test',
        );
      }
      return n;
    });
    expect(attempts).toEqual([1, 2]);
    expect(free).toBe(0);
    expect(await level(h().ctx.db, sku, west)).toEqual({ on_hand: 5, reserved: 0 });
    expect(await availabilityOf(h(), sku)).toEqual([['inventory.low_stock', { sku, available: 0, threshold: 0 }, 1]]);
  });
});

describe('inventory events: a first level at a location being turned off', () => {
  const h = useHarness({ workers: false });

  it("when a SKU's first units arrive at a location while it is being turned off, then the write waits for the switch and decides its events on the new flag", async () => {
    const west = await makeLocation(h(), 50);
    const sku = `IEF-${west.slice(-8)}`;
    await product(h(), sku, { main: 0 }, null);
    // The switch in flight, as PATCH /v1/locations holds it: the row locked FOR NO KEY UPDATE and its flag changed.
    const trx = await h().ctx.db.transaction();
    try {
      await trx('locations').where({ code: west }).forNoKeyUpdate().first('code');
      await trx('locations').where({ code: west }).update({ active: false });
      const adjusted = h().api('POST', `/v1/inventory/${sku}/adjustments`, {
        body: { delta: 5, reason: 'found', location: west },
      });
      // The adjustment reaches the location's flag and waits on its row lock.
      await waitFor(
        async () =>
          (
            await h().ctx.db.raw(
              `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%from "locations"%for share%'`,
            )
          ).rows.length > 0,
        { what: 'the adjustment waiting for the switch', timeout: 5000 },
      );
      await trx.commit();
      const r = await adjusted;
      expect(r.status, r.text).toBe(201);
    } finally {
      if (!trx.isCompleted()) await trx.rollback();
    }
    expect(await level(h().ctx.db, sku, west)).toEqual({ on_hand: 5, reserved: 0 });
    // Five units at a location that is off: nothing available, so nothing came back in stock.
    expect(await available(h(), sku)).toBe(0);
    expect(await availabilityOf(h(), sku)).toEqual([]);
  });
});

describe('inventory events: waiting lines at a location turned on again', () => {
  // The reconciler's sweep would serve them on its next tick: minutes off here, so only the change can.
  const h = useHarness({ env: { MAINTENANCE_INTERVAL_MS: '600000', RECONCILE_AFTER_SECONDS: '600' } });

  it('when a location with the only units of a SKU is turned on again while lines wait, then they are served at once, and inventory.back_in_stock says what is left after them', async () => {
    await h().startWorkers();
    const west = await makeLocation(h(), 50);
    const sku = `IEW-${west.slice(-8)}`;
    await product(h(), sku, { [west]: 5 }, 1);
    await setActive(h(), west, false);
    const customer = await makeCustomerId(h());
    const order = await orderReaching(h(), customer, [{ sku, quantity: 3 }], 'awaiting_stock');

    await setActive(h(), west, true);
    await untilOrder(h(), order.id, 'confirmed', 5000);
    expect(await available(h(), sku)).toBe(2);
    const events = await waitFor(
      async () => {
        const e = await availabilityOf(h(), sku);
        return e.length >= 2 && e;
      },
      { what: 'low_stock, then back_in_stock' },
    );
    // 5 → 0 when west went off; 0 while the line waited (also as west came back); 2 once it was served.
    expect(events).toEqual([
      ['inventory.low_stock', { sku, available: 0, threshold: 1 }, 1],
      ['inventory.back_in_stock', { sku, available: 2 }, 2],
    ]);
    expect((await checkInvariants(h().ctx.db)).problems).toEqual([]);
  });
});

describe('inventory events: decided once per unit of work', () => {
  const h = useHarness({ workers: false });

  it('when one unit of work takes a SKU from 5 to 0 and then to 1, then the feed says low_stock at 1 and no back_in_stock; a SKU taken 0 → 3 → 0 or 3 → 0 → 3 says nothing', async () => {
    const tag = String(Date.now());
    const [falls, blips, dips] = ['F', 'B', 'D'].map((k) => `IU${k}-${tag}`);
    await product(h(), falls, { main: 5 }, 2);
    await product(h(), blips, { main: 0 }, 2);
    await product(h(), dips, { main: 3 }, 2);
    const steps: Record<string, number[]> = { [falls]: [-5, 1], [blips]: [3, -3], [dips]: [-3, 3] };
    await runUnitOfWork(h().ctx, 'test', async (uow) => {
      for (const k of [0, 1]) {
        const rows = await readStockRows(uow.trx, Object.keys(steps));
        await applyStockChanges(
          uow,
          Object.entries(steps).map(([sku, d]) => ({
            row: rows.get(sku)!,
            levels: [{ location: 'main', on_hand: d[k] }],
          })),
          Object.entries(steps).map(([sku, d]) => ({
            sku,
            location: 'main',
            type: 'adjustment' as const,
            quantity: d[k],
            reason: 'test',
          })),
          'test',
        );
      }
    });
    expect(await available(h(), falls)).toBe(1);
    const events = await waitFor(
      async () => {
        const e = await availabilityOf(h(), falls);
        return e.length > 0 && e;
      },
      { what: 'the low-stock event' },
    );
    expect(events).toEqual([['inventory.low_stock', { sku: falls, available: 1, threshold: 2 }, 1]]);
    expect(await availabilityOf(h(), blips)).toEqual([]);
    expect(await availabilityOf(h(), dips)).toEqual([]);
  });
});
