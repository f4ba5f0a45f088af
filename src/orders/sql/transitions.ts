import { v7 as uuidv7 } from 'uuid';
import type { Actor } from '../../platform/actor';
import { rawPrepared, type Trx } from '../../platform/db';
import type { OrderStatus } from '../status';
import { isoSql, ORDER_JSON } from './order-json';

/** The order's previous event (its numbering is `orders.transitions`, one per event): null for its first. */
export const PREVIOUS_ORDER_EVENT = `(SELECT p.id FROM events p WHERE p.order_id = o.id AND p.transition_no = o.transitions - 1)`;

export async function insertHistory(
  trx: Trx,
  rows: { order_id: string; status: OrderStatus; detail: string | null }[],
  actor: Actor,
): Promise<void> {
  await trx('order_history').insert(rows.map((r) => ({ ...r, actor_role: actor.role, actor_name: actor.name })));
}

/**
 * Status, history and event for each transition, in two statements: the update (guarded by
 * `status = from`) with its history rows, then the events, built after the update so their payload
 * shows the order in its new status. Returns the new events' ids, one per transition.
 */
export async function updateStatuses(
  trx: Trx,
  moves: readonly {
    orderId: string;
    from: OrderStatus;
    to: OrderStatus;
    detail?: string | null;
    reason?: string | null;
  }[],
  actor: Actor,
): Promise<string[]> {
  const eventIds = moves.map(() => uuidv7());
  // Arrays, not a VALUES list: one statement text for any number of moves, prepared once per connection.
  const { rows } = await rawPrepared(
    trx,
    `WITH v AS (
       SELECT * FROM unnest(?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::uuid[])
                  AS v(order_id, from_status, to_status, detail, reason, event_id)),
     upd AS (
       UPDATE orders o SET status = v.to_status, status_reason = v.reason, transitions = o.transitions + 1, updated_at = now(),
              awaiting_since = CASE WHEN v.to_status = 'awaiting_stock' THEN COALESCE(o.awaiting_since, now()) ELSE NULL END
         FROM v WHERE o.id = v.order_id AND o.status = v.from_status
       RETURNING o.id, o.transitions, v.to_status, v.detail, v.event_id),
     hist AS (
       INSERT INTO order_history (order_id, status, detail, actor_role, actor_name)
       SELECT id, to_status, detail, ?::text, ?::text FROM upd RETURNING order_id)
     SELECT id, transitions, to_status, event_id FROM upd`,
    [
      moves.map((t) => t.orderId),
      moves.map((t) => t.from),
      moves.map((t) => t.to),
      moves.map((t) => t.detail ?? null) as string[], // NULLs in a text[]
      moves.map((t) => t.reason ?? null) as string[],
      eventIds,
      actor.role,
      actor.name,
    ],
  );
  if (rows.length !== moves.length) {
    throw new Error(`order status changed under a transition (${rows.length}/${moves.length} applied)`);
  }
  await rawPrepared(
    trx,
    `INSERT INTO events (id, order_id, transition_no, type, payload, created_at,
                         subject_type, subject_id, subject_sequence, previous_event_id)
     SELECT v.event_id, o.id, o.transitions, 'order.' || o.status,
            json_build_object('id', v.event_id, 'type', 'order.' || o.status, 'created_at', ${isoSql('now()')}, 'data', json_build_object('order', ${ORDER_JSON})),
            now(), 'order', o.id::text, o.transitions, ${PREVIOUS_ORDER_EVENT}
       FROM orders o JOIN unnest(?::uuid[], ?::uuid[]) AS v(order_id, event_id) ON o.id = v.order_id`,
    [rows.map((r: any) => r.id), rows.map((r: any) => r.event_id)],
  );
  return rows.map((r: any) => r.event_id as string);
}
