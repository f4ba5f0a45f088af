import type { Context } from '../app/context';
import type { Trx } from '../platform/db';
import { publishAfterCommit } from '../jobs/outbox';
import { applyStockChanges, inStockTransaction, readStockRows, type Movement, type StockChange, type StockRow } from '../inventory';
import { allocateSkus } from './allocation.service';
import type { OrderStatus } from './order-status';
import { freeAfterAhead, linesOf, lockOrders, recordTransitions, reprocessingAhead, type LineRow, type OrderRow, type Transition } from './orders.repo';

export interface Outcome { status: OrderStatus; reason?: string | null; processed: boolean }

interface Plan {
  transitions: Transition[];
  changes: StockChange[];
  movements: Movement[];
  /** Every line of every order that goes on: its captured price, and reserved now or waiting. */
  lines: { order_id: string; sku: string; price: number; reserved: boolean }[];
  totals: { id: string; total: number }[];
  outcomes: Map<string, Outcome>;
  /** SKUs where an order joined the queue while stock was free: serve them after commit. */
  serveSkus: Set<string>;
}

/**
 * Decides, for orders in `received` (locked, in seq order), what each gets: validation against the
 * database, then every line reserved whole from a SKU on which nothing waits, or the order waits
 * (`backorder`) or is rejected (`reject`). Works on an in-memory copy of the stock rows so one
 * transaction can serve a batch of orders; the rows are then written with one version check each.
 */
async function planBatch(trx: Trx, orders: OrderRow[], lines: LineRow[]): Promise<Plan> {
  const plan: Plan = { transitions: [], changes: [], movements: [], lines: [], totals: [], outcomes: new Map(), serveSkus: new Set() };
  const skus = [...new Set(lines.map((l) => l.sku))].sort();
  const customerIds = [...new Set(orders.map((o) => o.customer_id))];
  // One connection per transaction: queries run one after another.
  const customers = await trx('customers').whereIn('id', customerIds).select('id', 'blocked');
  const products = await trx('products').whereIn('sku', skus).select('sku', 'price_cents', 'active');
  const stock = await readStockRows(trx, skus);
  const customerById = new Map(customers.map((c: any) => [c.id, c]));
  const productBySku = new Map(products.map((p: any) => [p.sku, p]));
  const linesByOrder = new Map<string, LineRow[]>();
  for (const l of lines) linesByOrder.set(l.order_id, [...(linesByOrder.get(l.order_id) ?? []), l]);
  // Working copy of each stock row: what this batch has taken so far.
  const work = new Map<string, { row: StockRow; reserved: number; backordered: number }>();
  for (const [sku, row] of stock) work.set(sku, { row, reserved: 0, backordered: 0 });
  // Where lines wait, the seq of the first: an order that arrived before it (an edited order keeps
  // its seq) is ahead of it in the SKU's queue, so that line does not stop it taking free stock.
  const queued = [...stock.values()].filter((r) => r.backordered > 0).map((r) => r.sku);
  const firstWaiting = new Map<string, number>();
  if (queued.length > 0) {
    const rows: { sku: string; seq: number }[] = (await trx.raw(
      `SELECT q.sku, (SELECT l.seq FROM order_lines l WHERE l.sku = q.sku AND l.waiting AND NOT l.reserved ORDER BY l.seq LIMIT 1) AS seq
         FROM unnest(?::text[]) AS q(sku)`, [queued])).rows;
    for (const r of rows) if (r.seq !== null) firstWaiting.set(r.sku, r.seq);
  }
  // Edited or retried orders being processed elsewhere keep their place ahead of younger orders.
  const ahead = await reprocessingAhead(trx, skus, orders.map((o) => o.id));

  for (const o of orders) {
    const ls = (linesByOrder.get(o.id) ?? []).sort((a, b) => (a.sku < b.sku ? -1 : 1));
    const reject = (reason: string) => {
      plan.transitions.push({ orderId: o.id, from: 'received', to: 'rejected', detail: reason, reason });
      plan.outcomes.set(o.id, { status: 'rejected', reason, processed: true });
    };
    const customer = customerById.get(o.customer_id);
    if (!customer) { reject('unknown customer'); continue; }
    if (customer.blocked) { reject('customer is blocked'); continue; }
    const missing = ls.find((l) => !productBySku.get(l.sku) || !work.get(l.sku));
    if (missing) { reject(`unknown SKU ${missing.sku}`); continue; }
    const inactive = ls.find((l) => !productBySku.get(l.sku).active);
    if (inactive) { reject(`SKU ${inactive.sku} is not active`); continue; }
    const priceOf = (sku: string) => Number(productBySku.get(sku).price_cents);
    let total = 0;
    for (const l of ls) total += priceOf(l.sku) * l.quantity;
    // Prices go up to 2^53 − 1 cents, so quantity × price can pass what a total may be (bigint in
    // PostgreSQL, an exact number in JSON): no retry fixes that, so it is a rejection, not a failure.
    if (total > Number.MAX_SAFE_INTEGER) { reject(`order total exceeds ${Number.MAX_SAFE_INTEGER} cents`); continue; }

    const take: LineRow[] = [];
    const short: LineRow[] = [];
    for (const l of ls) {
      const w = work.get(l.sku)!;
      const someoneWaits = w.backordered > 0 || (firstWaiting.get(l.sku) ?? Infinity) < o.seq;
      const free = freeAfterAhead(w.row.on_hand - w.row.reserved - w.reserved, ahead.get(l.sku), o.seq);
      (!someoneWaits && free !== undefined && free >= l.quantity ? take : short).push(l);
    }
    if (short.length > 0 && o.on_insufficient_stock === 'reject') {
      reject(`insufficient stock for ${short.map((l) => l.sku).join(', ')}`);
      continue;
    }
    plan.totals.push({ id: o.id, total });
    for (const l of take) {
      work.get(l.sku)!.reserved += l.quantity;
      plan.movements.push({ sku: l.sku, type: 'reservation', quantity: l.quantity, order_id: o.id, reason: 'order' });
      plan.lines.push({ order_id: o.id, sku: l.sku, price: priceOf(l.sku), reserved: true });
    }
    for (const l of short) {
      const w = work.get(l.sku)!;
      w.backordered += l.quantity;
      plan.lines.push({ order_id: o.id, sku: l.sku, price: priceOf(l.sku), reserved: false });
    }
    if (short.length === 0) {
      plan.transitions.push({ orderId: o.id, from: 'received', to: 'confirmed', detail: 'stock reserved' });
      plan.outcomes.set(o.id, { status: 'confirmed', processed: true });
    } else {
      const detail = `waiting for ${short.map((l) => `${l.sku} x${l.quantity}`).join(', ')}`;
      plan.transitions.push({ orderId: o.id, from: 'received', to: 'awaiting_stock', detail, reason: 'insufficient stock' });
      plan.outcomes.set(o.id, { status: 'awaiting_stock', reason: 'insufficient stock', processed: true });
    }
  }
  for (const [sku, w] of work) {
    if (w.reserved || w.backordered) plan.changes.push({ row: w.row, reserved: w.reserved, backordered: w.backordered });
    // Lines wait while stock is free: an order joined the queue ahead of others, or one that was ahead
    // of them (an edited order) was rejected or took less than it gave back. Served after commit.
    if (w.row.backordered + w.backordered > 0 && w.row.on_hand - w.row.reserved - w.reserved > 0) plan.serveSkus.add(sku);
  }
  return plan;
}

/** One statement for all lines: price captured, and either reserved now or waiting in the SKU's queue. */
async function updateLines(trx: Trx, rows: Plan['lines']): Promise<void> {
  for (let i = 0; i < rows.length; i += 2000) {
    const chunk = rows.slice(i, i + 2000);
    await trx.raw(
      `UPDATE order_lines l SET unit_price_cents = v.price, reserved = v.reserved, waiting = NOT v.reserved
         FROM unnest(?::uuid[], ?::text[], ?::bigint[], ?::boolean[]) AS v(order_id, sku, price, reserved)
        WHERE l.order_id = v.order_id AND l.sku = v.sku`,
      [chunk.map((r) => r.order_id), chunk.map((r) => r.sku), chunk.map((r) => r.price), chunk.map((r) => r.reserved)]);
  }
}

/**
 * The pipeline step for a batch of order ids (one id per job; several jobs may share a
 * transaction). Orders not in `received` are left alone, which makes a second run of the same
 * job a no-op: no double reservation, no second event. Conflicts on stock rows roll the whole
 * batch back and retry it with jittered backoff.
 */
export async function processOrders(ctx: Context, ids: string[]): Promise<Map<string, Outcome>> {
  const { outcomes, outbox, serve } = await inStockTransaction(ctx.db, 'reserve', async (trx) => {
    const locked = await lockOrders(trx, ids);
    const outcomes = new Map<string, Outcome>();
    // A job for a `failed` order is an operator's retry from the board: back to received, then on.
    const retried = locked.filter((o) => o.status === 'failed');
    const retryOutbox = await recordTransitions(trx, retried.map((o) => ({ orderId: o.id, from: 'failed' as const, to: 'received' as const, detail: 'retried from the board' })));
    for (const o of retried) o.status = 'received';
    for (const o of locked) if (o.status !== 'received') outcomes.set(o.id, { status: o.status, reason: o.status_reason, processed: false });
    const todo = locked.filter((o) => o.status === 'received');
    if (todo.length === 0) return { outcomes, outbox: retryOutbox, serve: [] as string[] };
    const todoIds = todo.map((o) => o.id);
    const plan = await planBatch(trx, todo, await linesOf(trx, todoIds));
    await applyStockChanges(trx, plan.changes, plan.movements, 'reserve');
    await updateLines(trx, plan.lines);
    if (plan.totals.length) {
      await trx.raw(`UPDATE orders o SET total_cents = v.total FROM unnest(?::uuid[], ?::bigint[]) AS v(id, total) WHERE o.id = v.id`,
        [plan.totals.map((t) => t.id), plan.totals.map((t) => t.total)]);
    }
    await trx('orders').whereIn('id', todoIds).increment('attempts', 1);
    const outbox = [...retryOutbox, ...(await recordTransitions(trx, plan.transitions))];
    for (const [id, oc] of plan.outcomes) outcomes.set(id, oc);
    return { outcomes, outbox, serve: [...plan.serveSkus] };
  });
  await publishAfterCommit(ctx, outbox);
  if (serve.length) await allocateSkus(ctx, serve);
  return outcomes;
}
