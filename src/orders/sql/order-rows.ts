import { rawPrepared, type Executor, type Trx } from '../../platform/db';
import type { AheadLine, WaitingLine } from '../rules/fifo';
import type { ReservationPlan } from '../rules/reservation-plan';
import type { OrderStatus } from '../status';

export interface OrderRow {
  id: string;
  seq: number;
  customer_id: string;
  status: OrderStatus;
  status_reason: string | null;
  on_insufficient_stock: 'backorder' | 'reject';
  attempts: number;
  transitions: number;
}
export interface LineRow {
  order_id: string;
  line_no: number;
  sku: string;
  quantity: number;
  reserved: boolean;
  waiting: boolean;
  seq: number;
  shipped: number;
  returned: number;
}

/** Order rows locked in seq order, as every writer locks them (orders before stock: no deadlocks). */
export async function lockOrders(trx: Trx, ids: string[]): Promise<OrderRow[]> {
  return trx('orders')
    .whereIn('id', ids)
    .orderBy('seq')
    .forUpdate()
    .select('id', 'seq', 'customer_id', 'status', 'status_reason', 'on_insufficient_stock', 'attempts', 'transitions');
}

export async function lockOrderIds(trx: Trx, ids: string[]): Promise<void> {
  await trx.raw('SELECT id FROM orders WHERE id = ANY(?::uuid[]) ORDER BY seq FOR UPDATE', [ids]);
}

export async function linesOf(db: Executor, orderIds: string[]): Promise<LineRow[]> {
  return db('order_lines')
    .whereIn('order_id', orderIds)
    .orderBy(['order_id', 'sku'])
    .select('order_id', 'line_no', 'sku', 'quantity', 'reserved', 'waiting', 'seq', 'shipped', 'returned');
}

/** The SKUs of each order's lines (the group-commit batcher keeps groups in flight apart by them). */
export async function skusOfOrders(db: Executor, orderIds: string[]): Promise<Map<string, string[]>> {
  const rows: { order_id: string; sku: string }[] = await db('order_lines')
    .whereIn('order_id', orderIds)
    .select('order_id', 'sku');
  const byOrder = new Map<string, string[]>();
  for (const r of rows) byOrder.set(r.order_id, [...(byOrder.get(r.order_id) ?? []), r.sku]);
  return byOrder;
}

export async function readCustomers(trx: Trx, ids: string[]): Promise<Map<string, { blocked: boolean }>> {
  const rows: { id: string; blocked: boolean }[] = await trx('customers').whereIn('id', ids).select('id', 'blocked');
  return new Map(rows.map((c) => [c.id, c]));
}

export async function readProducts(
  trx: Trx,
  skus: string[],
): Promise<Map<string, { price_cents: number; active: boolean }>> {
  const rows: { sku: string; price_cents: number; active: boolean }[] = await trx('products')
    .whereIn('sku', skus)
    .select('sku', 'price_cents', 'active');
  return new Map(rows.map((p) => [p.sku, p]));
}

/** Per SKU, the seq of its first waiting line (for SKUs known to have some). */
export async function firstWaitingSeq(trx: Trx, skus: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (skus.length === 0) return out;
  const rows: { sku: string; seq: number | null }[] = (
    await trx.raw(
      `SELECT q.sku, (SELECT l.seq FROM order_lines l WHERE l.sku = q.sku AND l.waiting AND NOT l.reserved ORDER BY l.seq LIMIT 1) AS seq
       FROM unnest(?::text[]) AS q(sku)`,
      [skus],
    )
  ).rows;
  for (const r of rows) if (r.seq !== null) out.set(r.sku, r.seq);
  return out;
}

/**
 * Lines of orders back in `received` after having been processed (an edit or a retry: attempts > 0),
 * per SKU in `seq` order. Such an order keeps its place in its SKUs' queues while it is processed
 * again, so allocation and younger orders count its demand as ahead of theirs. Orders never processed
 * yet are not here: they are in the pipeline in arrival order anyway. Partial index
 * `orders_reprocessing` keeps this cheap however many new orders are waiting to be processed.
 */
export async function reprocessingAhead(
  db: Executor,
  skus: string[],
  exceptIds: string[] = [],
): Promise<Map<string, AheadLine[]>> {
  const out = new Map<string, AheadLine[]>();
  if (skus.length === 0) return out;
  const rows: { sku: string; seq: number; quantity: number }[] = (
    await rawPrepared(
      db,
      `SELECT l.sku, o.seq, l.quantity FROM orders o JOIN order_lines l ON l.order_id = o.id
      WHERE o.status = 'received' AND o.attempts > 0 AND l.sku = ANY(?::text[]) AND NOT (o.id = ANY(?::uuid[]))
      ORDER BY o.seq`,
      [skus, exceptIds],
    )
  ).rows;
  for (const r of rows) out.set(r.sku, [...(out.get(r.sku) ?? []), { seq: r.seq, quantity: r.quantity }]);
  return out;
}

/** One statement for all lines: price captured, and either reserved now or waiting in the SKU's queue. */
export async function updateLines(trx: Trx, rows: ReservationPlan<never>['lines']): Promise<void> {
  for (let i = 0; i < rows.length; i += 2000) {
    const chunk = rows.slice(i, i + 2000);
    await rawPrepared(
      trx,
      `UPDATE order_lines l SET unit_price_cents = v.price, reserved = v.reserved, waiting = NOT v.reserved
         FROM unnest(?::uuid[], ?::text[], ?::bigint[], ?::boolean[]) AS v(order_id, sku, price, reserved)
        WHERE l.order_id = v.order_id AND l.sku = v.sku`,
      [chunk.map((r) => r.order_id), chunk.map((r) => r.sku), chunk.map((r) => r.price), chunk.map((r) => r.reserved)],
    );
  }
}

export async function setTotals(trx: Trx, totals: { id: string; total: number }[]): Promise<void> {
  if (totals.length === 0) return;
  await rawPrepared(
    trx,
    `UPDATE orders o SET total_cents = v.total FROM unnest(?::uuid[], ?::bigint[]) AS v(id, total) WHERE o.id = v.id`,
    [totals.map((t) => t.id), totals.map((t) => t.total)],
  );
}

/** Counts a processing run of each order and records it (its outcome, how long the batch took so far). */
export async function countAttempt(
  trx: Trx,
  runs: { orderId: string; outcome: string }[],
  durationMs: number,
): Promise<void> {
  if (runs.length === 0) return;
  await rawPrepared(
    trx,
    `WITH c AS (UPDATE orders o SET attempts = o.attempts + 1 FROM unnest(?::uuid[]) AS v(id) WHERE o.id = v.id RETURNING o.id)
     INSERT INTO processing_attempts (order_id, attempt, outcome, duration_ms)
     SELECT v.id, 1 + (SELECT count(*) FROM processing_attempts p WHERE p.order_id = v.id), v.outcome, ?::int
       FROM unnest(?::uuid[], ?::text[]) AS v(id, outcome) JOIN c ON c.id = v.id`,
    [runs.map((r) => r.orderId), Math.round(durationMs), runs.map((r) => r.orderId), runs.map((r) => r.outcome)],
  );
}

/** A processing run that did not commit (its transaction failed): recorded on its own, outside it. */
export async function recordFailedRun(
  db: Executor,
  orderId: string,
  outcome: 'error' | 'failed',
  error: string,
  durationMs: number,
): Promise<void> {
  await db.raw(
    `INSERT INTO processing_attempts (order_id, attempt, outcome, error, duration_ms)
     SELECT o.id, 1 + (SELECT count(*) FROM processing_attempts p WHERE p.order_id = o.id), ?, ?, ?::int
       FROM orders o WHERE o.id = ?`,
    [outcome, error.slice(0, 1000), Math.round(durationMs), orderId],
  );
}

export async function setAttempts(trx: Trx, id: string, attempts: number): Promise<void> {
  await trx('orders').where({ id }).update({ attempts });
}

/**
 * The head of one SKU's queue: unreserved waiting lines in seq order (partial index on (sku, seq)),
 * each wanting what it has not shipped (a line a stock count revoked may have shipped some units).
 */
export async function queueHead(trx: Trx, sku: string, limit: number): Promise<WaitingLine[]> {
  return trx('order_lines')
    .where({ sku, waiting: true, reserved: false })
    .orderBy('seq')
    .limit(limit)
    .select('order_id', trx.raw('(quantity - shipped)::bigint AS quantity'), 'seq');
}

export async function markLinesReserved(trx: Trx, sku: string, orderIds: string[]): Promise<void> {
  await trx('order_lines')
    .where({ sku })
    .whereIn('order_id', orderIds)
    .update({ reserved: true, queue_rank: null, queue_units_before: null });
}

export async function clearLines(trx: Trx, orderIds: string[]): Promise<void> {
  await trx('order_lines')
    .whereIn('order_id', orderIds)
    .update({ reserved: false, waiting: false, queue_rank: null, queue_units_before: null });
}

/**
 * Of these orders, those waiting whose every line is now reserved, in seq order, with how many units
 * they shipped. `(…) IS TRUE` keeps `orders_awaiting_since` (every waiting order) out of a lookup by id.
 */
export async function fullyReservedWaiting(trx: Trx, orderIds: string[]): Promise<{ id: string; shipped: number }[]> {
  const rows: { id: string; shipped: number }[] = (
    await trx.raw(
      `SELECT o.id, (SELECT COALESCE(sum(l.shipped), 0) FROM order_lines l WHERE l.order_id = o.id)::bigint AS shipped
         FROM orders o WHERE o.id = ANY(?::uuid[]) AND (o.status = 'awaiting_stock') IS TRUE
          AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND NOT l.reserved)
        ORDER BY o.seq`,
      [orderIds],
    )
  ).rows;
  return rows;
}

/** Backorders waiting longer than `ttlSeconds`, locked (others' locks skipped), oldest first. */
export async function lockExpiredBackorders(trx: Trx, ttlSeconds: number, limit: number): Promise<string[]> {
  const rows: { id: string }[] = (
    await trx.raw(
      `SELECT id FROM orders WHERE status = 'awaiting_stock' AND awaiting_since < now() - make_interval(secs => ?)
      ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED`,
      [ttlSeconds, limit],
    )
  ).rows;
  return rows.map((r) => r.id);
}

/** SKUs where lines wait while stock is free (a missed trigger, repaired by the sweep). */
export async function skusWithFreeStockAndWaiting(db: Executor): Promise<string[]> {
  return db('stock').where('backordered', '>', 0).whereRaw('on_hand > reserved').pluck('sku');
}

/** Edit: new lines replace the old (same seq), or the old lines lose their captured prices. */
export async function replaceLines(
  trx: Trx,
  id: string,
  seq: number,
  lines: { sku: string; quantity: number }[] | undefined,
): Promise<void> {
  if (lines) {
    await trx('order_lines').where({ order_id: id }).delete();
    await trx('order_lines').insert(
      lines.map((l, i) => ({ order_id: id, line_no: i + 1, sku: l.sku, quantity: l.quantity, seq })),
    );
  } else {
    await trx('order_lines').where({ order_id: id }).update({ unit_price_cents: null });
  }
}

export async function resetForReprocessing(trx: Trx, id: string, onShort?: 'backorder' | 'reject'): Promise<void> {
  await trx('orders')
    .where({ id })
    .update({ total_cents: null, updated_at: trx.fn.now(), ...(onShort ? { on_insufficient_stock: onShort } : {}) });
}
