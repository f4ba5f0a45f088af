import { createHash } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { Context } from '../../context';
import type { Db, Executor, Trx } from '../../db';
import { AppError, InvalidStateError, NotFoundError } from '../../errors';
import { addToOutbox, publishAfterCommit, type OutboxRow } from '../../queue/outbox';
import { JOB, QUEUES } from '../../queue/queues';
import { decodeCursor, encodeCursor } from '../../validation';
import { applyStockChanges, inStockTransaction, readStockRows } from '../inventory';
import { allocateSkus } from './allocation.service';
import { releaseOrderStock } from './release';
import { assertTransition, type OrderStatus } from './order-status';
import { findOrders, isoSql, linesOf, lockOrders, recordTransitions, ORDER_JSON, type LineRow, type OrderRow } from './orders.repo';
import type { ListOrdersQuery, Order, PatchOrder, PlaceOrder } from './orders.schemas';
import { z } from 'zod';

export interface Accepted { id: string; seq: number; status: 'received'; created_at: string }

/** Canonical JSON (sorted keys) so that the same body in another key order is the same request. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as any)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Order, lines, first history entry and outbox row in one statement (atomic, one round trip). */
async function insertOrder(db: Executor, input: PlaceOrder): Promise<{ accepted: Accepted; outbox: OutboxRow }> {
  const { rows } = await db.raw(
    `WITH o AS (
       INSERT INTO orders (id, customer_id, on_insufficient_stock, external_ref) VALUES (?, ?, ?, ?)
       RETURNING id, seq, status, created_at),
     l AS (
       INSERT INTO order_lines (order_id, line_no, sku, quantity, seq)
       SELECT o.id, x.ord, x.sku, x.quantity, o.seq FROM o, unnest(?::text[], ?::int[]) WITH ORDINALITY AS x(sku, quantity, ord)),
     h AS (INSERT INTO order_history (order_id, status, detail) SELECT o.id, 'received', 'accepted' FROM o),
     ob AS (
       INSERT INTO outbox (queue, job_name, job_id, data)
       SELECT ?, ?, o.id::text, json_build_object('orderId', o.id) FROM o RETURNING id, job_id, data)
     SELECT o.id, o.seq, o.status, ${isoSql('o.created_at')} AS created_at, ob.id AS outbox_id, ob.data FROM o, ob`,
    [uuidv7(), input.customer_id, input.on_insufficient_stock, input.external_ref ?? null,
      input.lines.map((l) => l.sku), input.lines.map((l) => l.quantity), QUEUES.orders, JOB.processOrder]);
  const r = rows[0];
  return {
    accepted: { id: r.id, seq: r.seq, status: 'received', created_at: r.created_at },
    outbox: { id: r.outbox_id, queue: QUEUES.orders, job_name: JOB.processOrder, job_id: r.id, data: r.data },
  };
}

/**
 * Intake. The order is committed before this returns; the job is then added at once (job id =
 * order id). With an Idempotency-Key the key row, the order and the stored response share one
 * transaction, so concurrent duplicates wait on the key and replay the winner's response.
 */
export async function placeOrder(ctx: Context, principal: string, input: PlaceOrder, rawBody: unknown, key?: string):
Promise<{ body: Accepted; replayed: boolean }> {
  if (key === undefined) {
    const { accepted, outbox } = await insertOrder(ctx.db, input);
    await publishAfterCommit(ctx, [outbox]);
    return { body: accepted, replayed: false };
  }
  const hash = createHash('sha256').update(canonical(rawBody)).digest('hex');
  const result = await ctx.db.transaction(async (trx) => {
    const claimed = await trx.raw(
      `INSERT INTO idempotency_keys (principal, key, request_hash) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING key`,
      [principal, key, hash]);
    if (claimed.rows.length === 0) {
      const prior = await trx('idempotency_keys').where({ principal, key }).first();
      if (!prior) throw new AppError('idempotency_in_progress', 409, 'a request with this Idempotency-Key is in progress; retry shortly');
      if (prior.request_hash !== hash) {
        throw new AppError('idempotency_key_reused', 422, 'this Idempotency-Key was used with a different request body');
      }
      if (!prior.response_body) throw new AppError('idempotency_in_progress', 409, 'a request with this Idempotency-Key is in progress; retry shortly');
      return { body: prior.response_body as Accepted, replayed: true, outbox: undefined };
    }
    const { accepted, outbox } = await insertOrder(trx, input);
    await trx('idempotency_keys').where({ principal, key }).update({ status_code: 202, response_body: accepted, order_id: accepted.id });
    return { body: accepted, replayed: false, outbox };
  });
  if (result.outbox) await publishAfterCommit(ctx, [result.outbox]);
  return { body: result.body, replayed: result.replayed };
}

export async function getOrder(db: Executor, id: string): Promise<Order> {
  const [order] = await findOrders(db, [id]);
  if (!order) throw new NotFoundError('order');
  return order;
}

const orderCursor = z.number().int();

/** Newest first, keyset-paginated on seq. */
export async function listOrders(db: Db, q: ListOrdersQuery): Promise<{ data: Order[]; next_cursor: string | null }> {
  const before = decodeCursor(orderCursor, q.cursor);
  const query = db('orders as o').select(db.raw(`${ORDER_JSON} AS j`), 'o.seq').orderBy('o.seq', 'desc').limit(q.limit + 1);
  if (before !== undefined) query.where('o.seq', '<', before);
  if (q.status) query.where('o.status', q.status);
  if (q.customer_id) query.where('o.customer_id', q.customer_id);
  if (q.sku) query.whereExists(db('order_lines as l').select(db.raw('1')).whereRaw('l.order_id = o.id').where('l.sku', q.sku));
  const rows = await query;
  const page = rows.slice(0, q.limit);
  return { data: page.map((r: any) => r.j), next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1].seq) : null };
}

async function lockOne(trx: Trx, id: string): Promise<OrderRow> {
  const [o] = await lockOrders(trx, [id]);
  if (!o) throw new NotFoundError('order');
  return o;
}

/** Cancel (also DELETE): stock given back, then the waiting lines of those SKUs are served at once. */
export async function cancelOrder(ctx: Context, id: string, reason?: string): Promise<Order> {
  const { rows, skus } = await inStockTransaction(ctx.db, 'cancel', async (trx) => {
    const o = await lockOne(trx, id);
    assertTransition(o.status, 'cancelled', 'cancel');
    const skus = await releaseOrderStock(trx, [id], reason ?? 'cancelled');
    const rows = await recordTransitions(trx, [{ orderId: id, from: o.status, to: 'cancelled', detail: reason ?? 'cancelled', reason: reason ?? 'cancelled' }]);
    return { rows, skus };
  });
  await publishAfterCommit(ctx, rows);
  await allocateSkus(ctx, skus);
  return getOrder(ctx.db, id);
}

/** confirmed → completed: each line becomes a `sale` (on_hand and reserved both fall). */
export async function fulfillOrder(ctx: Context, id: string): Promise<Order> {
  const rows = await inStockTransaction(ctx.db, 'sale', async (trx) => {
    const o = await lockOne(trx, id);
    assertTransition(o.status, 'completed', 'fulfil');
    const lines = await linesOf(trx, [id]);
    const stock = await readStockRows(trx, lines.map((l) => l.sku));
    await applyStockChanges(trx,
      lines.map((l) => ({ row: stock.get(l.sku)!, on_hand: -l.quantity, reserved: -l.quantity })),
      lines.map((l) => ({ sku: l.sku, type: 'sale' as const, quantity: -l.quantity, order_id: id, reason: 'fulfilled' })), 'sale');
    return recordTransitions(trx, [{ orderId: id, from: o.status, to: 'completed', detail: 'fulfilled' }]);
  });
  await publishAfterCommit(ctx, rows);
  return getOrder(ctx.db, id);
}

function reprocessRow(orderId: string): OutboxRow {
  return { queue: QUEUES.orders, job_name: JOB.processOrder, job_id: orderId, data: { orderId }, replace_finished: true };
}

/** Operator retry: failed → received, processed again (a finished job of the same id is replaced). */
export async function retryOrder(ctx: Context, id: string): Promise<Order> {
  const rows = await ctx.db.transaction(async (trx) => {
    const o = await lockOne(trx, id);
    // Retry is for `failed` only (the table also lets awaiting_stock/confirmed go back to received: that is edit).
    if (o.status !== 'failed') throw new InvalidStateError(`cannot retry an order that is ${o.status}`);
    const events = await recordTransitions(trx, [{ orderId: id, from: o.status, to: 'received', detail: 'retried by operator' }]);
    return [...events, ...(await addToOutbox(trx, [reprocessRow(id)]))];
  });
  await publishAfterCommit(ctx, rows);
  return getOrder(ctx.db, id);
}

const EDITABLE: readonly OrderStatus[] = ['received', 'awaiting_stock', 'confirmed'];

/**
 * Edit: in one transaction every reservation and wait is released and the order goes back to
 * `received` with its new lines, keeping its seq; then it is processed again.
 */
export async function patchOrder(ctx: Context, id: string, input: PatchOrder): Promise<Order> {
  const { rows, skus } = await inStockTransaction(ctx.db, 'edit', async (trx) => {
    const o = await lockOne(trx, id);
    // Edit while received, awaiting_stock or confirmed only (failed → received is retry's, not edit's).
    if (!EDITABLE.includes(o.status)) throw new InvalidStateError(`cannot edit an order that is ${o.status}`);
    const skus = await releaseOrderStock(trx, [id], 'order edited');
    if (input.lines) {
      await trx('order_lines').where({ order_id: id }).delete();
      await trx('order_lines').insert(input.lines.map((l, i) => ({ order_id: id, line_no: i + 1, sku: l.sku, quantity: l.quantity, seq: o.seq })));
    } else {
      await trx('order_lines').where({ order_id: id }).update({ unit_price_cents: null });
    }
    await trx('orders').where({ id }).update({
      total_cents: null, updated_at: trx.fn.now(), ...(input.on_insufficient_stock ? { on_insufficient_stock: input.on_insufficient_stock } : {}),
    });
    let events: OutboxRow[] = [];
    if (o.status === 'received') await trx('order_history').insert({ order_id: id, status: 'received', detail: 'edited' });
    else events = await recordTransitions(trx, [{ orderId: id, from: o.status, to: 'received', detail: 'edited' }]);
    return { rows: [...events, ...(await addToOutbox(trx, [reprocessRow(id)]))], skus };
  });
  await publishAfterCommit(ctx, rows);
  await allocateSkus(ctx, skus);
  return getOrder(ctx.db, id);
}

/** After the last attempt: received → failed with its reason (if the database lets us say so). */
export async function markOrderFailed(ctx: Context, id: string, reason: string, attempts: number): Promise<boolean> {
  const rows = await ctx.db.transaction(async (trx) => {
    const [o] = await lockOrders(trx, [id]);
    if (!o || o.status !== 'received') return [];
    await trx('orders').where({ id }).update({ attempts });
    return recordTransitions(trx, [{ orderId: id, from: 'received', to: 'failed', detail: reason, reason }]);
  });
  await publishAfterCommit(ctx, rows);
  return rows.length > 0;
}

export type { LineRow, OrderRow, OrderStatus };
