import { v7 as uuidv7 } from 'uuid';
import type { Actor } from '../../platform/actor';
import { rawPrepared, type Executor, type Trx } from '../../platform/db';
import { QUEUES } from '../../platform/job-catalog';
import type { UnitOfWork } from '../../platform/unit-of-work';
import { isoSql, ORDER_JSON, RETURN_JSON, SHIPMENT_JSON } from './order-json';
import { PREVIOUS_ORDER_EVENT } from './transitions';

export interface ShipmentLine {
  sku: string;
  quantity: number;
}
export interface ReturnLine {
  sku: string;
  quantity: number;
  disposition: 'restock' | 'damaged';
  location: string | null;
}

export async function findShipment(db: Executor, shipmentId: string) {
  const { rows } = await db.raw(
    `SELECT s.request_hash, ${SHIPMENT_JSON('s')} AS j FROM shipments s WHERE s.shipment_id = ?`,
    [shipmentId],
  );
  return rows[0] as { request_hash: string; j: Record<string, unknown> } | undefined;
}

export async function findReturn(db: Executor, returnId: string) {
  const { rows } = await db.raw(
    `SELECT r.request_hash, ${RETURN_JSON('r')} AS j FROM returns r WHERE r.return_id = ?`,
    [returnId],
  );
  return rows[0] as { request_hash: string; j: Record<string, unknown> } | undefined;
}

export async function insertShipment(
  trx: Trx,
  s: {
    shipment_id: string | null;
    order_id: string;
    location: string;
    lines: ShipmentLine[];
    carrier: string | null;
    tracking: string | null;
  },
  hash: string,
  actor: Actor,
): Promise<Record<string, unknown>> {
  const id = uuidv7();
  await trx('shipments').insert({
    id,
    shipment_id: s.shipment_id ?? id,
    order_id: s.order_id,
    location: s.location,
    lines: JSON.stringify(s.lines),
    carrier: s.carrier,
    tracking: s.tracking,
    request_hash: hash,
    actor_role: actor.role,
    actor_name: actor.name,
  });
  const { rows } = await trx.raw(`SELECT ${SHIPMENT_JSON('s')} AS j FROM shipments s WHERE s.id = ?`, [id]);
  return rows[0].j;
}

export async function insertReturn(
  trx: Trx,
  r: { return_id: string | null; order_id: string; lines: ReturnLine[]; reason: string | null },
  hash: string,
  actor: Actor,
): Promise<Record<string, unknown>> {
  const id = uuidv7();
  await trx('returns').insert({
    id,
    return_id: r.return_id ?? id,
    order_id: r.order_id,
    lines: JSON.stringify(r.lines),
    reason: r.reason,
    request_hash: hash,
    actor_role: actor.role,
    actor_name: actor.name,
  });
  const { rows } = await trx.raw(`SELECT ${RETURN_JSON('r')} AS j FROM returns r WHERE r.id = ?`, [id]);
  return rows[0].j;
}

export async function listShipments(db: Executor, orderId: string) {
  const { rows } = await db.raw(
    `SELECT ${SHIPMENT_JSON('s')} AS j FROM shipments s WHERE s.order_id = ? ORDER BY s.created_at, s.id`,
    [orderId],
  );
  return rows.map((r: { j: unknown }) => r.j);
}

export async function listReturns(db: Executor, orderId: string) {
  const { rows } = await db.raw(
    `SELECT ${RETURN_JSON('r')} AS j FROM returns r WHERE r.order_id = ? ORDER BY r.created_at, r.id`,
    [orderId],
  );
  return rows.map((r: { j: unknown }) => r.j);
}

/**
 * An event about an order that is not a status change (`shipment.created`, `return.created`): it
 * takes the order's next event number, carries the subject and the order as they are now, and gets
 * its delivery job.
 */
export async function addOrderEvent(
  uow: UnitOfWork,
  orderId: string,
  type: string,
  key: string,
  subject: unknown,
): Promise<void> {
  const id = uuidv7();
  await rawPrepared(
    uow.trx,
    `WITH o AS (UPDATE orders SET transitions = transitions + 1 WHERE id = ? RETURNING id, transitions)
     INSERT INTO events (id, order_id, transition_no, type, payload, created_at,
                         subject_type, subject_id, subject_sequence, previous_event_id)
     SELECT ?::uuid, o.id, o.transitions, ?::text,
            json_build_object('id', ?::uuid, 'type', ?::text, 'created_at', ${isoSql('now()')},
              'data', json_build_object(?::text, ?::json, 'order', (SELECT ${ORDER_JSON} FROM orders o WHERE o.id = ?))),
            now(), 'order', o.id::text, o.transitions, ${PREVIOUS_ORDER_EVENT}
       FROM o`,
    [orderId, id, type, id, type, key, JSON.stringify(subject), orderId],
  );
  await uow.addJobs([{ queue: QUEUES.notifications, job_name: type, job_id: id, data: { eventId: id } }]);
}
