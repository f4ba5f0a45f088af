import type { Executor } from '../../platform/db';
import { NotFoundError } from '../../platform/errors';
import { isoSql, RETURN_JSON, SHIPMENT_JSON } from '../sql/order-json';

const actor = (a: string) => `jsonb_build_object('role', ${a}.actor_role, 'name', ${a}.actor_name)`;

/**
 * Everything that happened to one order, in time order, from PostgreSQL alone (so it outlives
 * Redis): status history, stock movements, processing runs (with their errors), deliveries of its
 * events, shipments and returns. Entries at the same instant (one transaction) read in the order
 * they happen: the run, then its movements, then the status it reached; shipments and returns,
 * then the deliveries they caused.
 */
export async function orderTimeline(db: Executor, orderId: string): Promise<{ data: Record<string, unknown>[] }> {
  if (!(await db('orders').where({ id: orderId }).first('id'))) throw new NotFoundError('order');
  const { rows } = await db.raw(
    `SELECT jsonb_build_object('at', ${isoSql('t.at')}, 'kind', t.kind) || t.d AS j FROM (
       SELECT p.at, 'processing' AS kind, 0 AS rank, p.id AS k,
              jsonb_build_object('attempt', p.attempt, 'outcome', p.outcome, 'error', p.error, 'duration_ms', p.duration_ms) AS d
         FROM processing_attempts p WHERE p.order_id = :id
       UNION ALL
       SELECT m.created_at, 'movement', 1, m.id,
              jsonb_build_object('type', m.type, 'sku', m.sku, 'location', m.location, 'quantity', m.quantity,
                                 'reason', m.reason, 'actor', ${actor('m')})
         FROM stock_movements m WHERE m.order_id = :id
       UNION ALL
       SELECT h.at, 'history', 2, h.id,
              jsonb_build_object('status', h.status, 'detail', h.detail, 'actor', ${actor('h')})
         FROM order_history h WHERE h.order_id = :id
       UNION ALL
       SELECT s.created_at, 'shipment', 3, 0, jsonb_build_object('shipment', ${SHIPMENT_JSON('s')}::jsonb)
         FROM shipments s WHERE s.order_id = :id
       UNION ALL
       SELECT r.created_at, 'return', 3, 0, jsonb_build_object('return', ${RETURN_JSON('r')}::jsonb)
         FROM returns r WHERE r.order_id = :id
       UNION ALL
       SELECT a.at, 'delivery', 4, a.id,
              jsonb_build_object('event_id', a.event_id, 'event_type', e.type, 'attempt', a.attempt_no,
                                 'channel', COALESCE(n.channel, 'endpoint'), 'endpoint_id', d.endpoint_id,
                                 'target', COALESCE(n.target, w.url),
                                 'outcome', CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 'delivered' ELSE 'failed' END,
                                 'status_code', a.status_code, 'error', a.error, 'duration_ms', a.duration_ms)
         FROM events e JOIN delivery_attempts a ON a.event_id = e.id
         LEFT JOIN notifications n ON a.kind = 'notification' AND n.id = a.delivery_id
         LEFT JOIN endpoint_deliveries d ON a.kind = 'endpoint' AND d.id = a.delivery_id
         LEFT JOIN webhook_endpoints w ON w.id = d.endpoint_id
        WHERE e.order_id = :id
     ) t ORDER BY t.at, t.rank, t.k`,
    { id: orderId },
  );
  return { data: rows.map((r: { j: Record<string, unknown> }) => r.j) };
}
