import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { freeAfterAhead, serveQueue, type AheadLine } from '../../src/orders/rules/fifo';
import { placeLine, placeOrder } from '../../src/orders/rules/placement';
import {
  planReservations,
  type PlanLine,
  type PlanOrder,
  type PlanStock,
  type ReservationInput,
} from '../../src/orders/rules/reservation-plan';

const SKUS = ['A', 'B', 'C'];
const LOCATIONS = [
  { location: 'east', priority: 50 },
  { location: 'main', priority: 100 },
  { location: 'west', priority: 100 },
];
/** What a new reservation can take of a SKU: its active locations' on_hand − reserved. */
const freeOf = (row: PlanStock) => row.levels.filter((l) => l.active).reduce((s, l) => s + l.on_hand - l.reserved, 0);

/** A random batch: orders in seq order over three SKUs, stock rows, some waiting queues and edited orders ahead. */
const batch = fc.record({
  orders: fc.array(
    fc.record({
      mode: fc.constantFrom<'backorder' | 'reject'>('backorder', 'reject'),
      lines: fc.uniqueArray(fc.record({ sku: fc.constantFrom(...SKUS), quantity: fc.integer({ min: 1, max: 6 }) }), {
        minLength: 1,
        maxLength: 3,
        selector: (l) => l.sku,
      }),
      customer: fc.constantFrom('ok', 'blocked', 'missing'),
    }),
    { minLength: 1, maxLength: 12 },
  ),
  stock: fc.tuple(
    ...SKUS.map(() =>
      fc.record({
        levels: fc.tuple(
          ...LOCATIONS.map(() => fc.record({ on_hand: fc.integer({ min: 0, max: 10 }), reservedPart: fc.nat(10) })),
        ),
        backordered: fc.constantFrom(0, 0, 3),
      }),
    ),
  ),
  westActive: fc.boolean(),
  // Seqs of lines outside the batch are even, the batch's orders odd: no two lines share a seq.
  waitingSeq: fc.tuple(...SKUS.map(() => fc.integer({ min: 0, max: 20 }).map((n) => 2 * n))),
  ahead: fc.tuple(
    ...SKUS.map(() =>
      fc.array(
        fc.record({ seq: fc.integer({ min: 0, max: 20 }).map((n) => 2 * n), quantity: fc.integer({ min: 1, max: 4 }) }),
        { maxLength: 2 },
      ),
    ),
  ),
  inactive: fc.constantFrom<string | undefined>(undefined, undefined, 'C'),
});

/** One generated batch (the value type of the `batch` arbitrary). */
type Batch = typeof batch extends fc.Arbitrary<infer T> ? T : never;

function inputOf(b: Batch): ReservationInput<PlanStock> {
  const orders: PlanOrder[] = b.orders.map((o, i) => ({
    id: `o${i}`,
    seq: 2 * i + 11,
    customer_id: o.customer,
    on_insufficient_stock: o.mode,
  }));
  const lines: PlanLine[] = b.orders.flatMap((o, i) => o.lines.map((l) => ({ order_id: `o${i}`, ...l })));
  const stock = new Map(
    SKUS.map((sku, i) => {
      const s = b.stock[i];
      const levels = LOCATIONS.map((loc, k) => ({
        ...loc,
        on_hand: s.levels[k].on_hand,
        reserved: Math.min(s.levels[k].reservedPart, s.levels[k].on_hand),
        active: loc.location !== 'west' || b.westActive,
      }));
      return [sku, { sku, backordered: s.backordered, levels }];
    }),
  );
  const firstWaiting = new Map(
    SKUS.flatMap((sku, i) => (stock.get(sku)!.backordered > 0 ? [[sku, b.waitingSeq[i]] as [string, number]] : [])),
  );
  const ahead = new Map(SKUS.map((sku, i) => [sku, [...b.ahead[i]].sort((x, y) => x.seq - y.seq)]));
  return {
    orders,
    lines,
    stock,
    firstWaiting,
    ahead,
    customers: new Map([
      ['ok', { blocked: false }],
      ['blocked', { blocked: true }],
    ]),
    products: new Map(SKUS.map((sku) => [sku, { price_cents: 100, active: sku !== b.inactive }])),
  };
}

const level = (location: string, on_hand: number, priority = 100, active = true) => ({
  location,
  on_hand,
  reserved: 0,
  priority,
  active,
});

describe('reservation plan (pure)', () => {
  it('when two orders want the last units, then the older takes them whole and the younger waits behind it', () => {
    const plan = planReservations({
      orders: [
        { id: 'old', seq: 1, customer_id: 'c', on_insufficient_stock: 'backorder' },
        { id: 'young', seq: 2, customer_id: 'c', on_insufficient_stock: 'backorder' },
      ],
      lines: [
        { order_id: 'old', sku: 'A', quantity: 2 },
        { order_id: 'young', sku: 'A', quantity: 1 },
      ],
      customers: new Map([['c', { blocked: false }]]),
      products: new Map([['A', { price_cents: 5, active: true }]]),
      stock: new Map([['A', { sku: 'A', backordered: 0, levels: [level('main', 2)] }]]),
      firstWaiting: new Map(),
      ahead: new Map(),
    });
    expect(plan.decisions.map((d) => [d.orderId, d.to])).toEqual([
      ['old', 'confirmed'],
      ['young', 'awaiting_stock'],
    ]);
    expect(plan.changes).toEqual([
      { row: expect.objectContaining({ sku: 'A' }), levels: [{ location: 'main', reserved: 2 }], backordered: 1 },
    ]);
    expect(plan.allocations).toEqual([{ order_id: 'old', sku: 'A', location: 'main', quantity: 2 }]);
    expect(plan.totals).toEqual([
      { id: 'old', total: 10 },
      { id: 'young', total: 5 },
    ]);
  });

  it('when an edited older order is processed elsewhere, then a younger one takes only what is left after it', () => {
    const plan = planReservations({
      orders: [{ id: 'young', seq: 9, customer_id: 'c', on_insufficient_stock: 'reject' }],
      lines: [{ order_id: 'young', sku: 'A', quantity: 2 }],
      customers: new Map([['c', { blocked: false }]]),
      products: new Map([['A', { price_cents: 5, active: true }]]),
      stock: new Map([['A', { sku: 'A', backordered: 0, levels: [level('main', 3)] }]]),
      firstWaiting: new Map(),
      ahead: new Map([['A', [{ seq: 4, quantity: 2 }]]]),
    });
    expect(plan.decisions).toEqual([
      { orderId: 'young', to: 'rejected', detail: 'insufficient stock for A', reason: 'insufficient stock for A' },
    ]);
    expect(plan.changes).toEqual([]);
  });

  it('for any batch: never more reserved than is free, every line whole, strict FIFO per SKU, reject-mode orders never wait', () => {
    fc.assert(
      fc.property(batch, (b) => {
        const input = inputOf(b);
        const plan = planReservations(input);
        const decided = new Map(plan.decisions.map((d) => [d.orderId, d.to]));
        expect(decided.size).toBe(input.orders.length); // one decision per order
        for (const [sku, row] of input.stock) {
          const change = plan.changes.find((c) => c.row.sku === sku);
          const reserved = plan.movements.filter((m) => m.sku === sku).reduce((s, m) => s + m.quantity, 0);
          expect((change?.levels ?? []).reduce((s, l) => s + l.reserved, 0)).toBe(reserved);
          expect(reserved).toBeLessThanOrEqual(freeOf(row));
          // Every unit reserved exists at its location, and no inactive location gives any.
          for (const l of change?.levels ?? []) {
            const at = row.levels.find((x) => x.location === l.location)!;
            expect(at.active).toBe(true);
            expect(l.reserved).toBeLessThanOrEqual(at.on_hand - at.reserved);
          }
          // FIFO: once a line waits on this SKU (from before, or from an order of this batch), nothing younger reserves it.
          let waitsFrom = row.backordered > 0 ? (input.firstWaiting.get(sku) ?? -1) : Infinity;
          for (const o of input.orders) {
            const line = plan.lines.find((l) => l.order_id === o.id && l.sku === sku);
            if (!line) continue;
            if (line.reserved) expect(o.seq < waitsFrom || waitsFrom === Infinity).toBe(true);
            else waitsFrom = Math.min(waitsFrom, o.seq);
          }
          // Reservations never eat into what edited orders ahead still need.
          const ahead = input.ahead.get(sku) ?? [];
          for (const m of plan.movements.filter((x) => x.sku === sku)) {
            const seq = input.orders.find((o) => o.id === m.order_id)!.seq;
            const before = plan.movements
              .filter((x) => x.sku === sku && input.orders.find((o) => o.id === x.order_id)!.seq <= seq)
              .reduce((s, x) => s + x.quantity, 0);
            const heldAhead = ahead.filter((a) => a.seq < seq).reduce((s, a) => s + a.quantity, 0);
            expect(before + heldAhead).toBeLessThanOrEqual(freeOf(row));
          }
        }
        for (const o of input.orders) {
          const own = input.lines.filter((l) => l.order_id === o.id);
          const planned = plan.lines.filter((l) => l.order_id === o.id);
          const to = decided.get(o.id);
          if (to === 'rejected') expect(planned).toEqual([]);
          else {
            expect(planned.length).toBe(own.length); // whole order goes on: every line priced
            for (const l of own) {
              const moved = plan.movements
                .filter((m) => m.order_id === o.id && m.sku === l.sku)
                .reduce((s, m) => s + m.quantity, 0);
              expect([0, l.quantity]).toContain(moved); // a line is reserved whole or not at all
            }
            expect(to === 'confirmed').toBe(planned.every((l) => l.reserved));
          }
          if (o.on_insufficient_stock === 'reject') expect(to).not.toBe('awaiting_stock');
          if (o.customer_id !== 'ok') expect(to).toBe('rejected');
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('FIFO queue rules (pure)', () => {
  it('for any queue: serveQueue takes a prefix, whole lines, within what is free after the demand held ahead', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 50 }),
        fc.array(fc.integer({ min: 1, max: 10 }), { maxLength: 15 }),
        fc.array(fc.record({ seq: fc.integer({ min: 0, max: 30 }), quantity: fc.integer({ min: 1, max: 5 }) }), {
          maxLength: 3,
        }),
        (free, quantities, aheadRaw) => {
          const head = quantities.map((q, i) => ({ order_id: `o${i}`, quantity: q, seq: 2 * i + 1 }));
          const ahead: AheadLine[] = [...aheadRaw].sort((a, b) => a.seq - b.seq);
          const taken = serveQueue(free, head, ahead);
          expect(taken).toEqual(head.slice(0, taken.length)); // a prefix: nobody jumps the queue
          const used = taken.reduce((s, l) => s + l.quantity, 0);
          expect(used).toBeLessThanOrEqual(free);
          for (const [i, l] of taken.entries()) {
            const before = taken.slice(0, i + 1).reduce((s, x) => s + x.quantity, 0);
            const held = ahead.filter((a) => a.seq < l.seq).reduce((s, a) => s + a.quantity, 0);
            expect(before + held).toBeLessThanOrEqual(free);
          }
          const next = head[taken.length];
          if (next) {
            // the first line not served did not fit
            const left = freeAfterAhead(free - used, ahead, next.seq);
            expect(left === undefined || left < next.quantity).toBe(true);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('when an edited order ahead does not fit, then it blocks the lines behind it', () => {
    expect(freeAfterAhead(3, [{ seq: 1, quantity: 5 }], 2)).toBeUndefined();
    expect(freeAfterAhead(3, [{ seq: 5, quantity: 5 }], 2)).toBe(3);
    expect(serveQueue(3, [{ order_id: 'x', quantity: 1, seq: 2 }], [{ seq: 1, quantity: 5 }])).toEqual([]);
  });
});

describe('placement over locations (pure)', () => {
  const free = (entries: [string, number, number][]) =>
    entries.map(([location, priority, n]) => ({ location, priority, free: n }));

  it('when one location fills the whole order, then it alone gives it, though another is preferred', () => {
    const placed = placeOrder(
      [
        { sku: 'A', quantity: 2 },
        { sku: 'B', quantity: 1 },
      ],
      new Map([
        [
          'A',
          free([
            ['near', 10, 5],
            ['far', 50, 2],
          ]),
        ],
        ['B', free([['far', 50, 1]])],
      ]),
    )!;
    expect(Object.fromEntries(placed)).toEqual({
      A: [{ location: 'far', quantity: 2 }],
      B: [{ location: 'far', quantity: 1 }],
    });
  });

  it('when nobody fills the whole order, then each line comes from one location that fills it, the preferred first', () => {
    const placed = placeOrder(
      [
        { sku: 'A', quantity: 2 },
        { sku: 'B', quantity: 1 },
      ],
      new Map([
        [
          'A',
          free([
            ['near', 10, 5],
            ['far', 50, 1],
          ]),
        ],
        ['B', free([['far', 50, 1]])],
      ]),
    )!;
    expect(Object.fromEntries(placed)).toEqual({
      A: [{ location: 'near', quantity: 2 }],
      B: [{ location: 'far', quantity: 1 }],
    });
  });

  it('when no location fills a line, then it is split over locations in priority order', () => {
    expect(
      placeLine(
        5,
        free([
          ['b', 100, 3],
          ['a', 100, 4],
          ['z', 5, 1],
        ]),
      ),
    ).toEqual([
      { location: 'z', quantity: 1 },
      { location: 'a', quantity: 4 },
    ]);
    expect(placeLine(9, free([['a', 100, 4]]))).toBeUndefined();
  });

  it('for any order and stock: units placed = units asked, none beyond the free stock of a location, and the preference of the rule holds', () => {
    const locs = ['a', 'b', 'c'];
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ sku: fc.constantFrom('X', 'Y', 'Z'), quantity: fc.integer({ min: 1, max: 8 }) }), {
          minLength: 1,
          maxLength: 3,
          selector: (l) => l.sku,
        }),
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 9, maxLength: 9 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 3, maxLength: 3 }),
        (lines, frees, priorities) => {
          const bySku = new Map(
            ['X', 'Y', 'Z'].map((sku, i) => [
              sku,
              locs.map((location, k) => ({ location, priority: priorities[k], free: frees[i * 3 + k] })),
            ]),
          );
          const placed = placeOrder(lines, bySku);
          const enough = lines.every((l) => bySku.get(l.sku)!.reduce((s, f) => s + f.free, 0) >= l.quantity);
          expect(placed !== undefined).toBe(enough);
          if (!placed) return;
          for (const l of lines) {
            const p = placed.get(l.sku)!;
            expect(p.reduce((s, x) => s + x.quantity, 0)).toBe(l.quantity);
            for (const x of p)
              expect(x.quantity).toBeLessThanOrEqual(bySku.get(l.sku)!.find((f) => f.location === x.location)!.free);
          }
          const rank = (loc: string) => [priorities[locs.indexOf(loc)], loc] as const;
          const better = (a: string, b: string) => rank(a)[0] < rank(b)[0] || (rank(a)[0] === rank(b)[0] && a < b);
          const fillsAll = locs.filter((loc) =>
            lines.every((l) => bySku.get(l.sku)!.find((f) => f.location === loc)!.free >= l.quantity),
          );
          const used = new Set([...placed.values()].flat().map((x) => x.location));
          if (fillsAll.length > 0) {
            expect(used.size).toBe(1);
            const [only] = used;
            expect(fillsAll.some((loc) => better(loc, only))).toBe(false); // the preferred of those that can
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
