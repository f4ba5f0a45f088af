import { v7 as uuidv7 } from 'uuid';
import type { Executor, Trx } from '../platform/db';
import { countStat, metrics } from '../platform/metrics';
import { addToOutbox, type OutboxRow } from '../jobs/outbox';
import { QUEUES, JOB } from '../jobs/queues';
import type { OrderStatus } from './order-status';
import type { Order } from './orders.schemas';

export const isoSql = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * The order as the API shows it, built by PostgreSQL from the row alias `o`. GET, lists and the
 * notification payload written with each transition all use this one expression.
 */
export const ORDER_JSON = `json_build_object(
  'id', o.id, 'seq', o.seq, 'customer_id', o.customer_id, 'status', o.status, 'status_reason', o.status_reason,
  'on_insufficient_stock', o.on_insufficient_stock, 'external_ref', o.external_ref,
  'lines', COALESCE((SELECT json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity,
      'unit_price_cents', l.unit_price_cents, 'reserved', CASE WHEN l.reserved THEN l.quantity ELSE 0 END,
      'waiting', l.waiting AND NOT l.reserved) ORDER BY l.line_no) FROM order_lines l WHERE l.order_id = o.id), '[]'::json),
  'total_cents', o.total_cents, 'attempts', o.attempts,
  'history', COALESCE((SELECT json_agg(json_build_object('status', h.status, 'at', ${isoSql('h.at')}, 'detail', h.detail) ORDER BY h.id)
      FROM order_history h WHERE h.order_id = o.id), '[]'::json),
  'created_at', ${isoSql('o.created_at')}, 'updated_at', ${isoSql('o.updated_at')})`;

export async function findOrders(db: Executor, ids: string[]): Promise<Order[]> {
  if (ids.length === 0) return [];
  const { rows } = await db.raw(`SELECT ${ORDER_JSON} AS j FROM orders o WHERE o.id = ANY(?::uuid[])`, [ids]);
  const byId = new Map<string, Order>(rows.map((r: any) => [r.j.id, r.j]));
  return ids.map((id) => byId.get(id)).filter((o): o is Order => !!o);
}

export interface OrderRow {
  id: string; seq: number; customer_id: string; status: OrderStatus; status_reason: string | null;
  on_insufficient_stock: 'backorder' | 'reject'; attempts: number; transitions: number;
}
export interface LineRow { order_id: string; line_no: number; sku: string; quantity: number; reserved: boolean; waiting: boolean; seq: number }

export async function lockOrders(trx: Trx, ids: string[]): Promise<OrderRow[]> {
  return trx('orders').whereIn('id', ids).orderBy('seq').forUpdate()
    .select('id', 'seq', 'customer_id', 'status', 'status_reason', 'on_insufficient_stock', 'attempts', 'transitions');
}

export async function linesOf(db: Executor, orderIds: string[]): Promise<LineRow[]> {
  return db('order_lines').whereIn('order_id', orderIds).orderBy(['order_id', 'sku'])
    .select('order_id', 'line_no', 'sku', 'quantity', 'reserved', 'waiting', 'seq');
}

export interface Transition {
  orderId: string; from: OrderStatus; to: OrderStatus; detail?: string | null; reason?: string | null;
}

/**
 * Persists transitions (already checked with assertTransition) in the caller's transaction: the
 * status, one history entry, one event with a fresh stable id and its outbox row, per transition.
 * The guard `status = from` makes a stale caller fail loudly instead of writing twice.
 */
export async function recordTransitions(trx: Trx, transitions: Transition[]): Promise<OutboxRow[]> {
  if (transitions.length === 0) return [];
  const eventIds = transitions.map(() => uuidv7());
  const values = transitions.map(() => '(?::uuid, ?::text, ?::text, ?::text, ?::text, ?::uuid)').join(', ');
  const bindings = transitions.flatMap((t, i) => [t.orderId, t.from, t.to, t.detail ?? null, t.reason ?? null, eventIds[i]]);
  const { rows } = await trx.raw(
    `WITH v(order_id, from_status, to_status, detail, reason, event_id) AS (VALUES ${values}),
     upd AS (
       UPDATE orders o SET status = v.to_status, status_reason = v.reason, transitions = o.transitions + 1, updated_at = now(),
              awaiting_since = CASE WHEN v.to_status = 'awaiting_stock' THEN COALESCE(o.awaiting_since, now()) ELSE NULL END
         FROM v WHERE o.id = v.order_id AND o.status = v.from_status
       RETURNING o.id, o.transitions, v.to_status, v.detail, v.event_id),
     hist AS (
       INSERT INTO order_history (order_id, status, detail) SELECT id, to_status, detail FROM upd RETURNING order_id)
     SELECT id, transitions, to_status, event_id FROM upd`, bindings);
  if (rows.length !== transitions.length) {
    throw new Error(`order status changed under a transition (${rows.length}/${transitions.length} applied)`);
  }
  // Events are built after the update so their payload shows the order in its new status.
  await trx.raw(
    `INSERT INTO events (id, order_id, transition_no, type, payload, created_at)
     SELECT v.event_id, o.id, o.transitions, 'order.' || o.status,
            json_build_object('id', v.event_id, 'type', 'order.' || o.status, 'created_at', ${isoSql('now()')}, 'data', json_build_object('order', ${ORDER_JSON})),
            now()
       FROM orders o JOIN unnest(?::uuid[], ?::uuid[]) AS v(order_id, event_id) ON o.id = v.order_id`,
    [rows.map((r: any) => r.id), rows.map((r: any) => r.event_id)]);
  for (const t of transitions) {
    metrics.orderTransitions.inc({ from: t.from, to: t.to });
    countStat(`order_transitions_to_${t.to}`); // summed across processes (workers serve no /metrics)
  }
  return addToOutbox(trx, rows.map((r: any) => ({ queue: QUEUES.notifications, job_name: JOB.deliver, job_id: r.event_id, data: { eventId: r.event_id } })));
}

/** A line of an order that was processed before and is back in `received` (edited or retried). */
export interface AheadLine { seq: number; quantity: number }

/**
 * Lines of orders back in `received` after having been processed (an edit or a retry: attempts > 0),
 * per SKU in `seq` order. Such an order keeps its place in its SKUs' queues while it is processed
 * again, so allocation and younger orders count its demand as ahead of theirs. Orders never processed
 * yet are not here: they are in the pipeline in arrival order anyway. Partial index
 * `orders_reprocessing` keeps this cheap however many new orders are waiting to be processed.
 */
export async function reprocessingAhead(db: Executor, skus: string[], exceptIds: string[] = []): Promise<Map<string, AheadLine[]>> {
  const out = new Map<string, AheadLine[]>();
  if (skus.length === 0) return out;
  const rows: { sku: string; seq: number; quantity: number }[] = (await db.raw(
    `SELECT l.sku, o.seq, l.quantity FROM orders o JOIN order_lines l ON l.order_id = o.id
      WHERE o.status = 'received' AND o.attempts > 0 AND l.sku = ANY(?::text[]) AND NOT (o.id = ANY(?::uuid[]))
      ORDER BY o.seq`, [skus, exceptIds])).rows;
  for (const r of rows) out.set(r.sku, [...(out.get(r.sku) ?? []), { seq: r.seq, quantity: r.quantity }]);
  return out;
}

/**
 * What is free for a line at `seq` once the reprocessing orders ahead of it have had theirs, in
 * strict FIFO: undefined when one of them does not fit (it blocks the lines behind it).
 */
export function freeAfterAhead(free: number, ahead: AheadLine[] | undefined, seq: number): number | undefined {
  let left = free;
  for (const a of ahead ?? []) {
    if (a.seq >= seq) break;
    if (a.quantity > left) return undefined;
    left -= a.quantity;
  }
  return left;
}
