import type { Executor } from '../../platform/db';
import type { Order } from '../orders.schemas';

export const isoSql = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

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
 * `reserved` is its units reserved now and not shipped; `allocations` say where they are.
 */
export const ORDER_JSON = `json_build_object(
  'id', o.id, 'seq', o.seq, 'customer_id', o.customer_id, 'status', o.status, 'status_reason', o.status_reason,
  'on_insufficient_stock', o.on_insufficient_stock, 'external_ref', o.external_ref,
  'metadata', o.metadata,
  'lines', COALESCE((SELECT json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity,
      'unit_price_cents', l.unit_price_cents, 'reserved', COALESCE(al.reserved, 0),
      'shipped', l.shipped, 'returned', l.returned, 'waiting', l.waiting AND NOT l.reserved,
      'allocations', COALESCE(al.list, '[]'::json), 'queue', NULL) ORDER BY l.line_no)
    FROM order_lines l
    LEFT JOIN LATERAL (SELECT sum(a.reserved) AS reserved,
        json_agg(json_build_object('location', a.location, 'reserved', a.reserved, 'shipped', a.shipped) ORDER BY a.location) AS list
      FROM order_line_allocations a WHERE a.order_id = l.order_id AND a.sku = l.sku) al ON true
    WHERE l.order_id = o.id), '[]'::json),
  'total_cents', o.total_cents, 'attempts', o.attempts,
  'history', COALESCE((SELECT json_agg(json_build_object('status', h.status, 'at', ${isoSql('h.at')}, 'detail', h.detail,
      'actor', ${actorJson('h')}) ORDER BY h.id) FROM order_history h WHERE h.order_id = o.id), '[]'::json),
  'shipments', COALESCE((SELECT json_agg(${SHIPMENT_JSON('s')} ORDER BY s.created_at, s.id) FROM shipments s WHERE s.order_id = o.id), '[]'::json),
  'returns', COALESCE((SELECT json_agg(${RETURN_JSON('r')} ORDER BY r.created_at, r.id) FROM returns r WHERE r.order_id = o.id), '[]'::json),
  'created_at', ${isoSql('o.created_at')}, 'updated_at', ${isoSql('o.updated_at')})`;

export async function findOrders(db: Executor, ids: string[]): Promise<Order[]> {
  if (ids.length === 0) return [];
  const { rows } = await db.raw(`SELECT ${ORDER_JSON} AS j FROM orders o WHERE o.id = ANY(?::uuid[])`, [ids]);
  const byId = new Map<string, Order>(rows.map((r: any) => [r.j.id, r.j]));
  return ids.map((id) => byId.get(id)).filter((o): o is Order => !!o);
}
