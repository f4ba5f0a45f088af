import type { Executor } from '../../platform/db';
import type { Order } from '../orders.schemas';

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
