import type { Executor, Trx } from '../../platform/db';
import { isoSql } from './iso';

/**
 * Backorder visibility. A waiting line's place in its SKU's queue (`queue_position`, 1 = head, and
 * `queue_units_ahead`, the quantity of the waiting lines before it) is materialized on the line by
 * refreshQueue, in the transaction that changes that SKU's queue, so reading one order costs
 * O(its lines). The ETA is computed at read from the SKU's free stock and its open inbound rows
 * (few per SKU): it moves with stock and shipments without any write to the queue.
 */

/**
 * Renumbers the waiting lines of these SKUs (one window-function UPDATE for all of them). Only the
 * lines whose figures changed are written: a line joining at the tail writes one row; serving the
 * head rewrites the lines behind it. Call it wherever lines start or stop waiting, after the
 * SKU's stock row has been updated in the same transaction (so refreshes of one SKU never run at
 * once: the stock row lock orders them).
 */
export async function refreshQueue(trx: Trx, skus: Iterable<string>): Promise<void> {
  const list = [...new Set(skus)].sort();
  if (list.length === 0) return;
  await trx.raw(
    `WITH q AS (
       SELECT order_id, sku, row_number() OVER w AS position,
              COALESCE(sum(quantity) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS units_ahead
         FROM order_lines WHERE sku = ANY(?::text[]) AND waiting AND NOT reserved
       WINDOW w AS (PARTITION BY sku ORDER BY seq))
     UPDATE order_lines l SET queue_position = q.position, queue_units_ahead = q.units_ahead
       FROM q WHERE l.order_id = q.order_id AND l.sku = q.sku
        AND (l.queue_position IS DISTINCT FROM q.position OR l.queue_units_ahead IS DISTINCT FROM q.units_ahead)`,
    [list],
  );
}

/** Free units of SKU `sku` (an SQL expression): Σ over its active locations of on_hand − reserved. */
const FREE_SQL = (sku: string) => `(SELECT COALESCE(sum(sl.on_hand - sl.reserved), 0) FROM stock_levels sl
    JOIN locations sloc ON sloc.code = sl.location AND sloc.active WHERE sl.sku = ${sku})`;

/**
 * The ETA of a demand of `need` units (queue_units_ahead + quantity) on SKU `sku`, given `free`:
 * now() when free stock covers it, else the expected_at of the first open inbound shipment (by
 * expected_at, at an active location) at which free + the outstanding units up to and including
 * it cover it, else NULL. Reads only that SKU's open inbound rows (index inbound_open).
 */
const ETA_SQL = (sku: string, need: string, free: string) => `CASE WHEN ${free} >= ${need} THEN now() ELSE
    (SELECT c.expected_at FROM (
       SELECT i.expected_at, i.inbound_id,
              sum(GREATEST(0, i.quantity - i.received)) OVER (ORDER BY i.expected_at, i.inbound_id) AS cum
         FROM inbound i JOIN locations iloc ON iloc.code = i.location AND iloc.active
        WHERE i.sku = ${sku} AND i.status = 'open') c
      WHERE ${free} + c.cum >= ${need} ORDER BY c.expected_at, c.inbound_id LIMIT 1) END`;

/**
 * Per line `l` of an order: a lateral row `e(eta)` for a waiting line, none otherwise (the gate
 * is a one-time filter, so lines that do not wait read nothing).
 */
export const LINE_ETA_LATERAL = `LEFT JOIN LATERAL (
      SELECT ${ETA_SQL('l.sku', '(l.queue_units_ahead + l.quantity)', 'f.free')} AS eta
        FROM (SELECT ${FREE_SQL('l.sku')} AS free) f
       WHERE l.waiting AND NOT l.reserved) e ON true`;

/** The `queue` of line `l` (with e from LINE_ETA_LATERAL): null when the line does not wait. */
export const LINE_QUEUE_JSON = `CASE WHEN l.waiting AND NOT l.reserved THEN json_build_object('position', l.queue_position,
      'units_ahead', l.queue_units_ahead, 'eta', ${isoSql('e.eta')}) END`;

export interface SkuQueue {
  sku: string;
  free: number;
  waiting: {
    order_id: string;
    seq: number;
    quantity: number;
    position: number;
    units_ahead: number;
    eta: string | null;
  }[];
  inbound: unknown[];
}

/** GET /v1/inventory/:sku/queue: the SKU's waiting lines in seq order and its open inbound shipments. */
export async function skuQueue(db: Executor, sku: string, inboundJson: (alias: string) => string): Promise<SkuQueue> {
  const { rows } = await db.raw(
    `SELECT ${FREE_SQL('?')}::bigint AS free,
       COALESCE((SELECT json_agg(json_build_object('order_id', l.order_id, 'seq', l.seq, 'quantity', l.quantity,
           'position', l.queue_position, 'units_ahead', l.queue_units_ahead, 'eta', ${isoSql('e.eta')}) ORDER BY l.seq)
         FROM order_lines l ${LINE_ETA_LATERAL}
        WHERE l.sku = ? AND l.waiting AND NOT l.reserved), '[]'::json) AS waiting,
       COALESCE((SELECT json_agg(${inboundJson('i')} ORDER BY i.expected_at, i.inbound_id)
         FROM inbound i WHERE i.sku = ? AND i.status = 'open'), '[]'::json) AS inbound`,
    [sku, sku, sku],
  );
  return { sku, free: Number(rows[0].free), waiting: rows[0].waiting, inbound: rows[0].inbound };
}
