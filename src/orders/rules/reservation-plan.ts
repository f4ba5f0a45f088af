import type { OrderStatus } from '../status';
import { freeAfterAhead, type AheadLine } from './fifo';
import { placeOrder, type LocationFree } from './placement';

export interface PlanOrder {
  id: string;
  seq: number;
  customer_id: string;
  on_insufficient_stock: 'backorder' | 'reject';
}
export interface PlanLine {
  order_id: string;
  sku: string;
  quantity: number;
}
export interface PlanLevel {
  location: string;
  on_hand: number;
  reserved: number;
  active: boolean;
  priority: number;
}
export interface PlanStock {
  sku: string;
  backordered: number;
  /** Per location, in preference order; only active ones give new reservations. */
  levels: readonly PlanLevel[];
}

/** Everything the reservation decision reads, as plain data. */
export interface ReservationInput<S extends PlanStock> {
  /** Orders in `received`, in `seq` order. */
  orders: readonly PlanOrder[];
  lines: readonly PlanLine[];
  customers: ReadonlyMap<string, { blocked: boolean }>;
  products: ReadonlyMap<string, { price_cents: number; active: boolean }>;
  stock: ReadonlyMap<string, S>;
  /** Per SKU with waiting lines: the `seq` of the first of them. */
  firstWaiting: ReadonlyMap<string, number>;
  /** Per SKU: demand of edited or retried orders processed elsewhere, in `seq` order (they keep their place). */
  ahead: ReadonlyMap<string, readonly AheadLine[]>;
}

export type Decision = 'confirmed' | 'awaiting_stock' | 'rejected';

export interface OrderDecision {
  orderId: string;
  to: Decision & OrderStatus;
  detail: string;
  reason?: string;
}

export interface ReservationPlan<S extends PlanStock> {
  decisions: OrderDecision[];
  /** Deltas per stock row read: reserved now per location, or joined the SKU's queue. */
  changes: { row: S; levels: { location: string; reserved: number }[]; backordered: number }[];
  movements: {
    sku: string;
    location: string;
    type: 'reservation';
    quantity: number;
    order_id: string;
    reason: string;
  }[];
  /** Where each reserved line's units are: one row per (order, SKU, location). */
  allocations: { order_id: string; sku: string; location: string; quantity: number }[];
  /** Every line of every order that goes on: its captured price, and reserved now or waiting. */
  lines: { order_id: string; sku: string; price: number; reserved: boolean }[];
  totals: { id: string; total: number }[];
  /** SKUs where lines wait while stock is free: serve them after commit. */
  serveSkus: string[];
}

/**
 * Decides, for orders in `received` in seq order, what each gets: validated against customers and
 * products, then every line reserved whole from a SKU on which nothing waits ahead of it, or the
 * order waits (`backorder`) or is rejected (`reject`). Works on a running copy of the stock rows so
 * one transaction can serve a batch: an order that waits on a SKU makes the orders behind it wait
 * there too (strict FIFO), and no order takes what an edited order ahead of it still needs.
 */
export function planReservations<S extends PlanStock>(input: ReservationInput<S>): ReservationPlan<S> {
  const plan: ReservationPlan<S> = {
    decisions: [],
    changes: [],
    movements: [],
    allocations: [],
    lines: [],
    totals: [],
    serveSkus: [],
  };
  const linesByOrder = new Map<string, PlanLine[]>();
  for (const l of input.lines) linesByOrder.set(l.order_id, [...(linesByOrder.get(l.order_id) ?? []), l]);
  // A running copy per SKU: what this batch has taken, in total and per location, and its waits.
  const work = new Map<
    string,
    { row: S; reserved: number; backordered: number; free: LocationFree[]; taken: Map<string, number> }
  >();
  for (const [sku, row] of input.stock) {
    const free = row.levels
      .filter((l) => l.active)
      .map((l) => ({ location: l.location, priority: l.priority, free: l.on_hand - l.reserved }));
    work.set(sku, { row, reserved: 0, backordered: 0, free, taken: new Map() });
  }
  const freeTotal = (w: { free: LocationFree[] }) => w.free.reduce((s, f) => s + f.free, 0);

  for (const o of input.orders) {
    const ls = [...(linesByOrder.get(o.id) ?? [])].sort((a, b) => (a.sku < b.sku ? -1 : 1));
    const reject = (reason: string) => plan.decisions.push({ orderId: o.id, to: 'rejected', detail: reason, reason });
    const customer = input.customers.get(o.customer_id);
    if (!customer) {
      reject('unknown customer');
      continue;
    }
    if (customer.blocked) {
      reject('customer is blocked');
      continue;
    }
    const missing = ls.find((l) => !input.products.get(l.sku) || !work.get(l.sku));
    if (missing) {
      reject(`unknown SKU ${missing.sku}`);
      continue;
    }
    const inactive = ls.find((l) => !input.products.get(l.sku)!.active);
    if (inactive) {
      reject(`SKU ${inactive.sku} is not active`);
      continue;
    }
    const priceOf = (sku: string) => Number(input.products.get(sku)!.price_cents);
    let total = 0;
    for (const l of ls) total += priceOf(l.sku) * l.quantity;
    // Prices go up to 2^53 − 1 cents, so quantity × price can pass what a total may be (bigint in
    // PostgreSQL, an exact number in JSON): no retry fixes that, so it is a rejection, not a failure.
    if (total > Number.MAX_SAFE_INTEGER) {
      reject(`order total exceeds ${Number.MAX_SAFE_INTEGER} cents`);
      continue;
    }

    const take: PlanLine[] = [];
    const short: PlanLine[] = [];
    for (const l of ls) {
      const w = work.get(l.sku)!;
      // Lines wait on this SKU ahead of this order (an edited order keeps its older seq, so a line
      // that joined after it does not stop it).
      const someoneWaits = w.backordered > 0 || (input.firstWaiting.get(l.sku) ?? Infinity) < o.seq;
      const free = freeAfterAhead(freeTotal(w), input.ahead.get(l.sku), o.seq);
      (!someoneWaits && free !== undefined && free >= l.quantity ? take : short).push(l);
    }
    if (short.length > 0 && o.on_insufficient_stock === 'reject') {
      reject(`insufficient stock for ${short.map((l) => l.sku).join(', ')}`);
      continue;
    }
    plan.totals.push({ id: o.id, total });
    // Every line taken fits its SKU's total, so a placement exists (split if need be).
    const placed = placeOrder(take, new Map(take.map((l) => [l.sku, work.get(l.sku)!.free])))!;
    for (const l of take) {
      const w = work.get(l.sku)!;
      w.reserved += l.quantity;
      for (const p of placed.get(l.sku)!) {
        w.free.find((f) => f.location === p.location)!.free -= p.quantity;
        w.taken.set(p.location, (w.taken.get(p.location) ?? 0) + p.quantity);
        plan.movements.push({
          sku: l.sku,
          location: p.location,
          type: 'reservation',
          quantity: p.quantity,
          order_id: o.id,
          reason: 'order',
        });
        plan.allocations.push({ order_id: o.id, sku: l.sku, location: p.location, quantity: p.quantity });
      }
      plan.lines.push({ order_id: o.id, sku: l.sku, price: priceOf(l.sku), reserved: true });
    }
    for (const l of short) {
      work.get(l.sku)!.backordered += l.quantity;
      plan.lines.push({ order_id: o.id, sku: l.sku, price: priceOf(l.sku), reserved: false });
    }
    if (short.length === 0) plan.decisions.push({ orderId: o.id, to: 'confirmed', detail: 'stock reserved' });
    else {
      const detail = `waiting for ${short.map((l) => `${l.sku} x${l.quantity}`).join(', ')}`;
      plan.decisions.push({ orderId: o.id, to: 'awaiting_stock', detail, reason: 'insufficient stock' });
    }
  }
  for (const [sku, w] of work) {
    if (w.reserved || w.backordered) {
      const levels = [...w.taken].map(([location, reserved]) => ({ location, reserved }));
      plan.changes.push({ row: w.row, levels, backordered: w.backordered });
    }
    // Lines wait while stock is free: an order joined the queue ahead of others, or one that was ahead
    // of them (an edited order) was rejected or took less than it gave back.
    if (w.row.backordered + w.backordered > 0 && freeTotal(w) > 0) plan.serveSkus.push(sku);
  }
  return plan;
}
