import { rawPrepared, type Executor } from '../../platform/db';
import type { Order } from '../orders.schemas';

import { isoSql } from './iso';
import { LINE_ETA_LATERAL, LINE_OFFSETS_JOIN, LINE_QUEUE_JSON } from './queue';

export { isoSql };

const actorJson = (alias: string) => `json_build_object('role', ${alias}.actor_role, 'name', ${alias}.actor_name)`;

export const SHIPMENT_JSON = (s: string) => `json_build_object('id', ${s}.id, 'shipment_id', ${s}.shipment_id,
  'order_id', ${s}.order_id, 'location', ${s}.location, 'lines', ${s}.lines, 'carrier', ${s}.carrier,
  'tracking', ${s}.tracking, 'actor', ${actorJson(s)}, 'created_at', ${isoSql(`${s}.created_at`)})`;

export const RETURN_JSON = (r: string) => `json_build_object('id', ${r}.id, 'return_id', ${r}.return_id,
  'order_id', ${r}.order_id, 'lines', ${r}.lines, 'reason', ${r}.reason, 'actor', ${actorJson(r)},
  'created_at', ${isoSql(`${r}.created_at`)})`;

/**
 * The order as the API shows it, built by PostgreSQL from the row alias `o`. GET, lists and the
 * notification payload written with each transition all use this one expression. A line's
 * `reserved` is its units reserved now and not shipped; `allocations` say where they are; `queue`
 * (waiting lines only) its materialized place in the SKU's queue and an ETA computed from the
 * SKU's free stock and open inbound rows. The order's `eta` is the latest of its waiting lines'
 * (null if one is null, or if nothing waits). One scalar subquery over the order's own lines:
 * O(lines), whatever the length of the queues they wait in.
 */
export const ORDER_JSON = `(SELECT json_build_object(
  'id', o.id, 'seq', o.seq, 'customer_id', o.customer_id, 'status', o.status, 'status_reason', o.status_reason,
  'on_insufficient_stock', o.on_insufficient_stock, 'external_ref', o.external_ref,
  'metadata', o.metadata,
  'lines', COALESCE(lq.lines, '[]'::json), 'eta', ${isoSql('lq.eta')},
  'total_cents', o.total_cents, 'attempts', o.attempts,
  'history', COALESCE((SELECT json_agg(json_build_object('status', h.status, 'at', ${isoSql('h.at')}, 'detail', h.detail,
      'actor', ${actorJson('h')}) ORDER BY h.id) FROM order_history h WHERE h.order_id = o.id), '[]'::json),
  'shipments', COALESCE((SELECT json_agg(${SHIPMENT_JSON('s')} ORDER BY s.created_at, s.id) FROM shipments s WHERE s.order_id = o.id), '[]'::json),
  'returns', COALESCE((SELECT json_agg(${RETURN_JSON('r')} ORDER BY r.created_at, r.id) FROM returns r WHERE r.order_id = o.id), '[]'::json),
  'created_at', ${isoSql('o.created_at')}, 'updated_at', ${isoSql('o.updated_at')})
  FROM (SELECT json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity,
      'unit_price_cents', l.unit_price_cents, 'reserved', COALESCE(al.reserved, 0),
      'shipped', l.shipped, 'returned', l.returned, 'waiting', l.waiting AND NOT l.reserved,
      'allocations', COALESCE(al.list, '[]'::json), 'queue', ${LINE_QUEUE_JSON}) ORDER BY l.line_no) AS lines,
      CASE WHEN bool_or(l.waiting AND NOT l.reserved AND e.eta IS NULL) THEN NULL
           ELSE max(e.eta) FILTER (WHERE l.waiting AND NOT l.reserved) END AS eta
    FROM order_lines l
    LEFT JOIN LATERAL (SELECT sum(a.reserved) AS reserved,
        json_agg(json_build_object('location', a.location, 'reserved', a.reserved, 'shipped', a.shipped) ORDER BY a.location) AS list
      FROM order_line_allocations a WHERE a.order_id = l.order_id AND a.sku = l.sku) al ON true
    ${LINE_OFFSETS_JOIN}
    ${LINE_ETA_LATERAL}
    WHERE l.order_id = o.id) lq)`;

export async function findOrders(db: Executor, ids: string[]): Promise<Order[]> {
  if (ids.length === 0) return [];
  const { rows } = await rawPrepared(db, `SELECT ${ORDER_JSON} AS j FROM orders o WHERE o.id = ANY(?::uuid[])`, [ids]);
  const byId = new Map<string, Order>(rows.map((r: any) => [r.j.id, r.j]));
  return ids.map((id) => byId.get(id)).filter((o): o is Order => !!o);
}
