import type { Executor, Trx } from '../../platform/db';
import { isoSql } from './iso';

/**
 * Backorder visibility. A waiting line's place in its SKU's queue is materialized, in the
 * transaction that changes that queue, as a rank and the units before it, against per-SKU
 * offsets (`queue_offsets`: lines and units served from the head so far):
 *   position = queue_rank − offsets.lines, units_ahead = queue_units_before − offsets.units.
 * So reading one order costs O(its lines), and the two hot changes cost O(lines changed):
 * lines joining at the tail are numbered from the line before them, and lines leaving from the
 * head (allocation, expiry of the oldest) only move the offsets. Anything else (a line leaving
 * from the middle, an edited order re-joining at its old seq) renumbers the lines behind it.
 * The ETA is computed at read from the SKU's free stock and its open inbound rows (few per SKU).
 *
 * Every writer that makes lines start or stop waiting calls queueJoined / queueLeft (or
 * refreshQueue), after the SKU's stock row has been updated in the same transaction: the stock
 * row lock orders all changes to one SKU's queue.
 */

export interface QueueLine {
  sku: string;
  seq: number;
  quantity: number;
}

/**
 * Renumbers one SKU's waiting lines from `fromSeq` on (all of them when null), continuing from
 * the waiting line just before it (or from the offsets). Writes only the lines whose figures
 * changed; the window reads only the lines from `fromSeq` (partial index on (sku, seq)).
 */
async function renumberFrom(trx: Trx, sku: string, fromSeq: number | null): Promise<void> {
  await trx.raw(
    `WITH t AS (
       SELECT queue_rank AS r, queue_units_before + quantity - shipped AS u FROM order_lines
        WHERE sku = :sku AND waiting AND NOT reserved AND seq < :from::bigint ORDER BY seq DESC LIMIT 1),
     off AS (SELECT lines, units FROM queue_offsets WHERE sku = :sku),
     b AS (SELECT COALESCE((SELECT r FROM t), (SELECT lines FROM off), 0) AS r0,
                  COALESCE((SELECT u FROM t), (SELECT units FROM off), 0) AS u0),
     q AS (
       SELECT order_id, row_number() OVER w AS n,
              COALESCE(sum(quantity - shipped) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
         FROM order_lines WHERE sku = :sku AND waiting AND NOT reserved AND (:from::bigint IS NULL OR seq >= :from::bigint)
       WINDOW w AS (ORDER BY seq))
     UPDATE order_lines l SET queue_rank = b.r0 + q.n, queue_units_before = b.u0 + q.before
       FROM q, b WHERE l.order_id = q.order_id AND l.sku = :sku
        AND (l.queue_rank IS DISTINCT FROM b.r0 + q.n OR l.queue_units_before IS DISTINCT FROM b.u0 + q.before)`,
    { sku, from: fromSeq },
  );
}

/** Full renumbering of these SKUs' queues (repairs anything; O(queue) reads, writes what changed). */
export async function refreshQueue(trx: Trx, skus: Iterable<string>): Promise<void> {
  for (const sku of [...new Set(skus)].sort()) await renumberFrom(trx, sku, null);
}

const bySku = (lines: readonly QueueLine[]) => {
  const m = new Map<string, QueueLine[]>();
  for (const l of lines) m.set(l.sku, [...(m.get(l.sku) ?? []), l]);
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
};

/** Lines that started waiting (already written as waiting): numbered from the first of them on. */
export async function queueJoined(trx: Trx, lines: readonly QueueLine[]): Promise<void> {
  for (const [sku, ls] of bySku(lines)) await renumberFrom(trx, sku, Math.min(...ls.map((l) => Number(l.seq))));
}

/**
 * Lines that stopped waiting (already written as not waiting). When they were the head of the
 * queue (no waiting line is left before the last of them) only the offsets move; otherwise the
 * lines behind the first of them are renumbered.
 */
export async function queueLeft(trx: Trx, lines: readonly QueueLine[]): Promise<void> {
  for (const [sku, ls] of bySku(lines)) {
    const last = Math.max(...ls.map((l) => Number(l.seq)));
    const { rows } = await trx.raw(
      `SELECT EXISTS (SELECT 1 FROM order_lines WHERE sku = ? AND waiting AND NOT reserved AND seq < ?) AS behind`,
      [sku, last],
    );
    if (rows[0].behind) {
      await renumberFrom(trx, sku, Math.min(...ls.map((l) => Number(l.seq))));
      continue;
    }
    await trx.raw(
      `INSERT INTO queue_offsets (sku, lines, units) VALUES (?, ?, ?)
       ON CONFLICT (sku) DO UPDATE SET lines = queue_offsets.lines + EXCLUDED.lines, units = queue_offsets.units + EXCLUDED.units`,
      [sku, ls.length, ls.reduce((s, l) => s + Number(l.quantity), 0)],
    );
  }
}

/** Position and units ahead of line `l` as SQL (with `qo`, its SKU's offsets row, joined). */
const POSITION_SQL = `(l.queue_rank - COALESCE(qo.lines, 0))`;
const UNITS_AHEAD_SQL = `(l.queue_units_before - COALESCE(qo.units, 0))`;
/** The offsets of line `l`'s SKU, for POSITION_SQL / UNITS_AHEAD_SQL. */
export const LINE_OFFSETS_JOIN = `LEFT JOIN queue_offsets qo ON qo.sku = l.sku AND l.waiting AND NOT l.reserved`;

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
 * Per line `l` of an order: a lateral row `e(eta)`, computed only for a waiting line (the CASE
 * gates the subqueries; OFFSET 0 keeps the free units one subquery, not inlined twice).
 */
export const LINE_ETA_LATERAL = `LEFT JOIN LATERAL (
      SELECT CASE WHEN l.waiting AND NOT l.reserved THEN
        (SELECT ${ETA_SQL('l.sku', `(${UNITS_AHEAD_SQL} + l.quantity - l.shipped)`, 'f.free')}
           FROM (SELECT ${FREE_SQL('l.sku')} AS free OFFSET 0) f) END AS eta) e ON true`;

/** The `queue` of line `l` (with e from LINE_ETA_LATERAL): null when the line does not wait. */
export const LINE_QUEUE_JSON = `CASE WHEN l.waiting AND NOT l.reserved THEN json_build_object('position', ${POSITION_SQL},
      'units_ahead', ${UNITS_AHEAD_SQL}, 'eta', ${isoSql('e.eta')}) END`;

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
       COALESCE((SELECT json_agg(json_build_object('order_id', l.order_id, 'seq', l.seq, 'quantity', l.quantity - l.shipped,
           'position', ${POSITION_SQL}, 'units_ahead', ${UNITS_AHEAD_SQL}, 'eta', ${isoSql('e.eta')}) ORDER BY l.seq)
         FROM order_lines l ${LINE_OFFSETS_JOIN} ${LINE_ETA_LATERAL}
        WHERE l.sku = ? AND l.waiting AND NOT l.reserved), '[]'::json) AS waiting,
       COALESCE((SELECT json_agg(${inboundJson('i')} ORDER BY i.expected_at, i.inbound_id)
         FROM inbound i WHERE i.sku = ? AND i.status = 'open'), '[]'::json) AS inbound`,
    [sku, sku, sku],
  );
  return { sku, free: Number(rows[0].free), waiting: rows[0].waiting, inbound: rows[0].inbound };
}
