import type { Actor } from '../../platform/actor';
import type { Executor } from '../../platform/db';
import { JOB, QUEUES } from '../../platform/job-catalog';
import type { OutboxRow } from '../../platform/outbox';
import type { PlaceOrder } from '../orders.schemas';
import { isoSql } from './order-json';

export interface Accepted {
  id: string;
  seq: number;
  status: 'received';
  created_at: string;
}

export interface Placed {
  accepted: Accepted;
  outbox: OutboxRow;
}
/** The order was not stored: its key name already placed one with this `external_ref` (`existing`). */
export interface Duplicate {
  duplicate: true;
  existing: string | undefined;
}

/**
 * Orders, their lines, first history entries and outbox rows in ONE statement (atomic, one round
 * trip, one commit), for one order or for a group of concurrent requests. `seq` follows the input order.
 * An order whose (key name, external_ref) is taken (unique index orders_external_ref_per_key, also
 * against a concurrent statement: it waits for that one's commit) is skipped, with its lines; only
 * then does a second query name the order that holds it.
 */
const INSERT_ORDERS = `WITH x AS (
       SELECT * FROM unnest(?::uuid[], ?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[]) WITH ORDINALITY AS x(id, customer_id, on_short, external_ref, actor_role, actor_name, metadata, ord)),
     o AS (
       INSERT INTO orders (id, customer_id, on_insufficient_stock, external_ref, key_name, metadata)
       SELECT id, customer_id, on_short, external_ref, actor_name, metadata::json FROM x ORDER BY ord
       ON CONFLICT (key_name, external_ref) WHERE key_name IS NOT NULL AND external_ref IS NOT NULL DO NOTHING
       RETURNING id, seq, status, created_at),
     l AS (
       INSERT INTO order_lines (order_id, line_no, sku, quantity, seq)
       SELECT o.id, y.line_no, y.sku, y.quantity, o.seq FROM o JOIN unnest(?::uuid[], ?::int[], ?::text[], ?::int[]) AS y(order_id, line_no, sku, quantity) ON y.order_id = o.id),
     h AS (INSERT INTO order_history (order_id, status, detail, actor_role, actor_name)
           SELECT o.id, 'received', 'accepted', x.actor_role, x.actor_name FROM o JOIN x ON x.id = o.id ORDER BY o.seq),
     ob AS (
       INSERT INTO outbox (queue, job_name, job_id, data)
       SELECT ?, ? || ' #' || o.seq || COALESCE(' ' || left(x.external_ref, 64), ''), o.id::text, json_build_object('orderId', o.id)
         FROM o JOIN x ON x.id = o.id ORDER BY o.seq RETURNING id, job_id, job_name, data)
     SELECT o.id, o.seq, o.status, ${isoSql('o.created_at')} AS created_at, ob.id AS outbox_id, ob.job_name, ob.data FROM o JOIN ob ON ob.job_id = o.id::text`;

/**
 * The same statement as a named prepared statement ($n parameters), for the group-commit path:
 * each pooled connection parses and plans it once, not once per group. Every `?` in INSERT_ORDERS
 * is a parameter (as knex also requires of it), so numbering them in order is the whole translation.
 */
const INSERT_ORDERS_PREPARED = {
  name: 'orderflow_insert_orders',
  text: ((i) => INSERT_ORDERS.replace(/\?/g, () => `$${++i}`))(0),
};

/**
 * Runs the statement on `db`: through knex inside a transaction (the Idempotency-Key path), else
 * as the prepared statement on a connection of knex's pool (the busy intake path).
 */
export async function insertOrders(
  db: Executor,
  inputs: { id: string; input: PlaceOrder; actor: Actor }[],
): Promise<(Placed | Duplicate)[]> {
  const lines = inputs.flatMap(({ id, input }) =>
    input.lines.map((l, i) => ({ id, no: i + 1, sku: l.sku, quantity: l.quantity })),
  );
  const values = [
    inputs.map((r) => r.id),
    inputs.map((r) => r.input.customer_id),
    inputs.map((r) => r.input.on_insufficient_stock),
    inputs.map((r) => r.input.external_ref ?? null) as string[], // NULLs in a text[]
    inputs.map((r) => r.actor.role),
    inputs.map((r) => r.actor.name),
    inputs.map((r) => JSON.stringify(r.input.metadata ?? {})),
    lines.map((l) => l.id),
    lines.map((l) => l.no),
    lines.map((l) => l.sku),
    lines.map((l) => l.quantity),
    QUEUES.orders,
    JOB.processOrder,
  ];
  let rows: any[];
  if (db.isTransaction) rows = (await db.raw(INSERT_ORDERS, values)).rows;
  else {
    const conn = await db.client.acquireConnection();
    try {
      rows = (await conn.query({ ...INSERT_ORDERS_PREPARED, values })).rows;
    } finally {
      await db.client.releaseConnection(conn);
    }
  }
  const byId = new Map<string, any>(rows.map((r: any) => [r.id, r]));
  const skipped = inputs.filter(({ id }) => !byId.has(id));
  const holders = new Map<string, string>();
  if (skipped.length) {
    const held = await db.raw(
      `SELECT o.id, o.key_name, o.external_ref FROM orders o
        JOIN unnest(?::text[], ?::text[]) AS k(key_name, external_ref) USING (key_name, external_ref)`,
      [skipped.map((r) => r.actor.name), skipped.map((r) => r.input.external_ref ?? '')],
    );
    for (const h of held.rows) holders.set(JSON.stringify([h.key_name, h.external_ref]), h.id);
  }
  return inputs.map(({ id, input, actor }) => {
    const r = byId.get(id);
    if (!r) return { duplicate: true, existing: holders.get(JSON.stringify([actor.name, input.external_ref])) };
    return {
      accepted: { id: r.id, seq: r.seq, status: 'received', created_at: r.created_at },
      outbox: { id: r.outbox_id, queue: QUEUES.orders, job_name: r.job_name, job_id: r.id, data: r.data },
    };
  });
}
