import { createHash } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { Context } from '../app/context';
import type { Db, Executor, Trx } from '../platform/db';
import { AppError, InvalidStateError, isDatabaseUnavailable, NotFoundError } from '../platform/errors';
import { logger } from '../platform/logger';
import { addToOutbox, publishAfterCommit, publishSoon, type OutboxRow } from '../jobs/outbox';
import { JOB, QUEUES } from '../jobs/queues';
import { decodeCursor, encodeCursor } from '../platform/validation';
import { applyStockChanges, inStockTransaction, readStockRows } from '../inventory';
import { allocateSkus } from './allocation.service';
import { releaseOrderStock } from './release';
import { assertTransition, type OrderStatus } from './order-status';
import { findOrders, isoSql, linesOf, lockOrders, recordTransitions, ORDER_JSON, type LineRow, type OrderRow } from './orders.repo';
import type { ListOrdersQuery, Order, PatchOrder, PlaceOrder } from './orders.schemas';
import { z } from 'zod';

export interface Accepted { id: string; seq: number; status: 'received'; created_at: string }

interface Placed { accepted: Accepted; outbox: OutboxRow }

/**
 * Orders, their lines, first history entries and outbox rows in ONE statement (atomic, one round
 * trip, one commit), for one order or for a group of concurrent requests. `seq` follows the input order.
 */
const INSERT_ORDERS = `WITH x AS (
       SELECT * FROM unnest(?::uuid[], ?::uuid[], ?::text[], ?::text[]) WITH ORDINALITY AS x(id, customer_id, on_short, external_ref, ord)),
     o AS (
       INSERT INTO orders (id, customer_id, on_insufficient_stock, external_ref)
       SELECT id, customer_id, on_short, external_ref FROM x ORDER BY ord
       RETURNING id, seq, status, created_at),
     l AS (
       INSERT INTO order_lines (order_id, line_no, sku, quantity, seq)
       SELECT o.id, y.line_no, y.sku, y.quantity, o.seq FROM o JOIN unnest(?::uuid[], ?::int[], ?::text[], ?::int[]) AS y(order_id, line_no, sku, quantity) ON y.order_id = o.id),
     h AS (INSERT INTO order_history (order_id, status, detail) SELECT o.id, 'received', 'accepted' FROM o ORDER BY o.seq),
     ob AS (
       INSERT INTO outbox (queue, job_name, job_id, data)
       SELECT ?, ?, o.id::text, json_build_object('orderId', o.id) FROM o ORDER BY o.seq RETURNING id, job_id, data)
     SELECT o.id, o.seq, o.status, ${isoSql('o.created_at')} AS created_at, ob.id AS outbox_id, ob.data FROM o JOIN ob ON ob.job_id = o.id::text`;

/**
 * The same statement as a named prepared statement ($n parameters), for the group-commit path:
 * each pooled connection parses and plans it once, not once per group. Every `?` in INSERT_ORDERS
 * is a parameter (as knex also requires of it), so numbering them in order is the whole translation.
 */
const INSERT_ORDERS_PREPARED = { name: 'orderflow_insert_orders', text: ((i) => INSERT_ORDERS.replace(/\?/g, () => `$${++i}`))(0) };

/**
 * Runs the statement on `db`: through knex inside a transaction (the Idempotency-Key path), else
 * as the prepared statement on a connection of knex's pool (the busy intake path).
 */
async function insertOrders(db: Executor, inputs: { id: string; input: PlaceOrder }[]): Promise<Placed[]> {
  const lines = inputs.flatMap(({ id, input }) => input.lines.map((l, i) => ({ id, no: i + 1, sku: l.sku, quantity: l.quantity })));
  const values = [inputs.map((r) => r.id), inputs.map((r) => r.input.customer_id), inputs.map((r) => r.input.on_insufficient_stock),
    inputs.map((r) => r.input.external_ref ?? null) as string[], // NULLs in a text[]
    lines.map((l) => l.id), lines.map((l) => l.no), lines.map((l) => l.sku), lines.map((l) => l.quantity), QUEUES.orders, JOB.processOrder];
  let rows: any[];
  if (db.isTransaction) rows = (await db.raw(INSERT_ORDERS, values)).rows;
  else {
    const conn = await db.client.acquireConnection();
    try { rows = (await conn.query({ ...INSERT_ORDERS_PREPARED, values })).rows; } finally { await db.client.releaseConnection(conn); }
  }
  const byId = new Map<string, any>(rows.map((r: any) => [r.id, r]));
  return inputs.map(({ id }) => {
    const r = byId.get(id);
    return {
      accepted: { id: r.id, seq: r.seq, status: 'received', created_at: r.created_at },
      outbox: { id: r.outbox_id, queue: QUEUES.orders, job_name: JOB.processOrder, job_id: r.id, data: r.data },
    };
  });
}

async function insertOrder(db: Executor, input: PlaceOrder): Promise<Placed> {
  return (await insertOrders(db, [{ id: uuidv7(), input }]))[0];
}

interface Pending { id: string; input: PlaceOrder; resolve: (a: Accepted) => void; reject: (e: unknown) => void }

/**
 * Group commit for intake without an Idempotency-Key: requests that arrive while an insert runs
 * are inserted together by the next one (one statement, one commit, one addBulk). Each request
 * is answered once its own order and outbox row are committed; the group's jobs are added in the
 * background meanwhile (publishSoon), so the next group's insert need not wait for Redis. A group
 * that fails for a reason other than an unreachable database is retried one order at a time (same
 * ids; a failed statement stored nothing), so one malformed order answers for itself alone.
 */
class IntakeBatcher {
  private waiting: Pending[] = [];
  private running = 0;
  constructor(private ctx: Context, private maxBatch: number, private maxInFlight: number) {}

  place(input: PlaceOrder): Promise<Accepted> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ id: uuidv7(), input, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.maxInFlight && this.waiting.length > 0) {
      const group = this.waiting.splice(0, this.maxBatch);
      this.running++;
      void this.flush(group).finally(() => { this.running--; this.pump(); });
    }
  }

  private async flush(group: Pending[]): Promise<void> {
    let placed: Placed[];
    try {
      placed = await insertOrders(this.ctx.db, group);
    } catch (err) {
      if (group.length === 1 || isDatabaseUnavailable(err)) { for (const p of group) p.reject(err); return; }
      for (const p of group) await this.flush([p]);
      return;
    }
    group.forEach((p, i) => p.resolve(placed[i].accepted));
    publishSoon(this.ctx, placed.map((p) => p.outbox));
  }
}

const intakeBatchers = new WeakMap<Context, IntakeBatcher>();
function intakeBatcher(ctx: Context): IntakeBatcher {
  let b = intakeBatchers.get(ctx);
  if (!b) intakeBatchers.set(ctx, b = new IntakeBatcher(ctx, ctx.config.INTAKE_BATCH_MAX, ctx.config.INTAKE_IN_FLIGHT));
  return b;
}

/**
 * Intake. The order and its outbox row are committed before this returns; the job (job id =
 * order id) is added at once in the background, or by the relay if Redis cannot take it now.
 * With an Idempotency-Key the key row, the order and the stored response share one transaction,
 * so concurrent duplicates wait on the key and replay the winner's response.
 */
export async function placeOrder(ctx: Context, principal: string, input: PlaceOrder, key?: string):
Promise<{ body: Accepted; replayed: boolean }> {
  if (key === undefined) return { body: await intakeBatcher(ctx).place(input), replayed: false };
  // The request's identity is the validated order: zod emits its keys in schema order with
  // defaults applied, so key order and omitted defaults do not make a different request; nor do a
  // UUID's letter case or an explicit null external_ref (the order stored would be the same).
  const identity = { ...input, customer_id: input.customer_id.toLowerCase(), external_ref: input.external_ref ?? undefined };
  const hash = createHash('sha256').update(JSON.stringify(identity)).digest('hex');
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
  if (result.outbox) publishSoon(ctx, [result.outbox]);
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

/**
 * After a committed release, the waiting lines of those SKUs are served at once. The caller's change
 * stands whatever happens here: a failure is logged and the maintenance sweep serves them later.
 */
async function serveAfterCommit(ctx: Context, skus: string[]): Promise<void> {
  try {
    await allocateSkus(ctx, skus);
  } catch (err) {
    logger.warn({ err, skus }, 'allocation after a release failed; the maintenance sweep will serve it');
  }
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
  await serveAfterCommit(ctx, skus);
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
  await serveAfterCommit(ctx, skus);
  return getOrder(ctx.db, id);
}

/** After the last attempt: received → failed with its reason (if the database lets us say so). */
export async function markOrderFailed(ctx: Context, id: string, reason: string, attempts: number): Promise<boolean> {
  const { rows, skus } = await ctx.db.transaction(async (trx) => {
    const [o] = await lockOrders(trx, [id]);
    if (!o || o.status !== 'received') return { rows: [], skus: [] };
    await trx('orders').where({ id }).update({ attempts });
    const skus = (await linesOf(trx, [id])).map((l) => l.sku);
    return { rows: await recordTransitions(trx, [{ orderId: id, from: 'received', to: 'failed', detail: reason, reason }]), skus };
  });
  await publishAfterCommit(ctx, rows);
  // While received it held back the lines behind it; failed, it no longer does.
  if (skus.length) await serveAfterCommit(ctx, skus);
  return rows.length > 0;
}

export type { LineRow, OrderRow, OrderStatus };
