import {
  applyStockChanges,
  assertLocations,
  COUNT_FUTURE_MS,
  COUNT_PAST_MS,
  insertMovements,
  readStockRows,
  type CountInput,
  type CountItemResult,
  type CountRecord,
  type Movement,
  type StockChange,
} from '../../inventory';
import { addSkuEvents } from '../../events';
import { systemActor, type Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import type { Executor, Trx } from '../../platform/db';
import { ConflictError, NotFoundError, OptimisticConflict, ValidationError } from '../../platform/errors';
import { actingAs, runUnitOfWork, type UnitOfWork } from '../../platform/unit-of-work';
import { lockOrders, type OrderRow } from '../sql/order-rows';
import { queueJoined, type QueueLine } from '../sql/queue';
import { changeStatus, type StatusChange } from '../status';
import { requestHash } from './ship-order';

/** The on-hand movement types (each stored with its sign): what a count compares against. */
const ON_HAND_TYPES = ['initial', 'receipt', 'sale', 'adjustment', 'return', 'count', 'transfer_out', 'transfer_in'];
export const SHORTAGE_REASON = 'stock count shortage';
/**
 * Who revokes: the count is the key's that posted it, but what its shortage does to orders (their
 * release movements and history entries) is the system's own doing (change 2), like processing's
 * `reserve`, allocation's `allocate` and expiry's `expire`.
 */
export const REVOKER = systemActor('revoke');

export type CountOutcome =
  { accepted: true; results: CountItemResult[] } | { accepted: false; duplicate: true; results?: undefined };

/** One (SKU, location) as the count sees it: now, and the on-hand change committed after counted_at. */
interface Figures {
  sku: string;
  on_hand: number;
  reserved: number;
  after: number;
  /** The first count of a later counted_at that booked this (SKU, location), if any. */
  newer: string | null;
}

/**
 * One statement, so one snapshot: each level's on_hand and reserved now and the sum of its on-hand
 * movements created after `countedAt` (a movement's created_at is its transaction's start). A
 * `count` movement belongs to its own count's counted_at, not to when it was booked: an earlier
 * count taken at or before `countedAt` is part of the ledger at `countedAt` even if it was applied
 * after it, so two counts of the same shelf (the same moment, or one after the other with nothing
 * in between) book the loss once. A count of a later counted_at that was booked already (`newer`)
 * set the level this one would correct: the older count is superseded there and books nothing, or
 * a loss both saw would be booked twice.
 */
async function readFigures(
  trx: Trx,
  location: string,
  skus: string[],
  countedAt: string,
): Promise<Map<string, Figures>> {
  const { rows } = await trx.raw(
    `SELECT v.sku, COALESCE(l.on_hand, 0)::bigint AS on_hand, COALESCE(l.reserved, 0)::bigint AS reserved,
            COALESCE((SELECT SUM(m.quantity) FROM stock_movements m
                       WHERE m.sku = v.sku AND m.location = ? AND m.type = ANY(?::text[]) AND m.created_at > ?::timestamptz
                         AND NOT (m.type = 'count' AND EXISTS (SELECT 1 FROM stock_counts c
                                   WHERE c.count_id = m.event_id AND c.counted_at <= ?::timestamptz))), 0)::bigint AS after,
            (SELECT c.count_id FROM stock_count_items i JOIN stock_counts c ON c.count_id = i.count_id
              WHERE i.sku = v.sku AND i.superseded_by IS NULL AND c.location = ? AND c.counted_at > ?::timestamptz
              ORDER BY c.counted_at, c.created_at LIMIT 1) AS newer
       FROM unnest(?::text[]) AS v(sku)
       LEFT JOIN stock_levels l ON l.sku = v.sku AND l.location = ?`,
    [location, ON_HAND_TYPES, countedAt, countedAt, location, countedAt, skus, location],
  );
  return new Map(rows.map((r: Figures) => [r.sku, r]));
}

/** A reservation at the counted location, with its order's place in the queues. */
interface Held {
  order_id: string;
  sku: string;
  reserved: number;
  seq: number;
}

async function heldAt(trx: Trx, location: string, skus: string[]): Promise<Held[]> {
  if (skus.length === 0) return [];
  const { rows } = await trx.raw(
    `SELECT a.order_id, a.sku, a.reserved, o.seq FROM order_line_allocations a JOIN orders o ON o.id = a.order_id
      WHERE a.location = ? AND a.sku = ANY(?::text[]) AND a.reserved > 0
        AND o.status IN ('confirmed', 'partially_shipped', 'awaiting_stock')
      ORDER BY a.sku, o.seq DESC`,
    [location, skus],
  );
  return rows;
}

/**
 * Which lines a shortage revokes: per SKU, the reservations at the location from the youngest order
 * (highest seq) down, a whole line at a time, until what they free covers `need`. Pure.
 */
export function pickRevocations(need: ReadonlyMap<string, number>, held: readonly Held[]): Held[] {
  const out: Held[] = [];
  const left = new Map(need);
  for (const h of [...held].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : b.seq - a.seq))) {
    const n = left.get(h.sku) ?? 0;
    if (n <= 0) continue;
    out.push(h);
    left.set(h.sku, n - h.reserved);
  }
  return out;
}

interface Plan {
  items: (CountItemResult & { after: number })[];
  need: Map<string, number>;
}

function plan(input: CountInput, location: string, figures: Map<string, Figures>): Plan {
  const need = new Map<string, number>();
  const items = input.items.map((it) => {
    const f = figures.get(it.sku)!;
    const expected = f.on_hand - f.after;
    const variance = it.on_hand - expected;
    // A superseded item books nothing, so it leaves on_hand as it is.
    const next = f.on_hand + (f.newer ? 0 : variance);
    if (next < f.reserved) need.set(it.sku, f.reserved - next);
    return {
      sku: it.sku,
      location,
      count_id: input.count_id,
      counted: it.on_hand,
      expected,
      variance,
      ...(f.newer ? { superseded_by: f.newer } : {}),
      after: f.after,
    };
  });
  return { items, need };
}

/**
 * POST /v1/inventory/counts. In one unit of work: the count is recorded (its `count_id` once, ever:
 * the same body again is a duplicate, another body 409); its location and SKUs are checked (400,
 * nothing applied); then, under the row locks of every stock writer (the orders it may revoke from,
 * in seq order, then the SKUs' stock rows, in SKU order), each item's expected figure is read from
 * the ledger as of `counted_at`, a non-zero variance is one `count` movement, and a location left
 * with fewer units than it reserved gives up its youngest reservations, whole lines, which wait again
 * at their seq. The count and its movements are the key's; the revocations (release movements, the
 * orders' history) are the system's (REVOKER). After commit the SKUs are served (free stock elsewhere
 * takes the revoked lines back, as `allocate`).
 */
export async function applyCount(ctx: Context, input: CountInput, actor?: Actor): Promise<CountOutcome> {
  const location = input.location ?? 'main';
  const countedAt = new Date(input.counted_at);
  const now = Date.now();
  if (countedAt.getTime() > now + COUNT_FUTURE_MS || countedAt.getTime() < now - COUNT_PAST_MS) {
    throw new ValidationError('counted_at must be at most 5 minutes ahead and at most 7 days back', [
      { path: 'body.counted_at', message: 'must be between 7 days ago and 5 minutes from now' },
    ]);
  }
  const counted_at = countedAt.toISOString();
  const hash = requestHash({
    count_id: input.count_id,
    location,
    counted_at,
    items: [...input.items].sort((a, b) => (a.sku < b.sku ? -1 : 1)),
  });
  return runUnitOfWork(ctx, 'count', (uow) => countInUnit(uow, input, location, counted_at, hash), { actor });
}

async function countInUnit(
  uow: UnitOfWork,
  input: CountInput,
  location: string,
  countedAt: string,
  hash: string,
): Promise<CountOutcome> {
  const { trx } = uow;
  await assertLocations(trx, [{ code: location, path: 'body.location' }]);
  const inserted = await trx('stock_counts')
    .insert({
      count_id: input.count_id,
      location,
      counted_at: countedAt,
      request_hash: hash,
      actor_role: uow.actor.role,
      actor_name: uow.actor.name,
    })
    .onConflict('count_id')
    .ignore()
    .returning('count_id');
  if (inserted.length === 0) {
    const prior = await trx('stock_counts').where({ count_id: input.count_id }).first('request_hash');
    if (prior?.request_hash === hash) return { accepted: false, duplicate: true };
    throw new ConflictError(`count ${input.count_id} was posted before with another body`, [
      { path: 'body.count_id', message: 'already used for another count' },
    ]);
  }
  const skus = input.items.map((i) => i.sku);
  const known = new Set<string>(await trx('products').whereIn('sku', skus).pluck('sku'));
  const unknown = input.items.map((it, i) => ({ it, i })).filter(({ it }) => !known.has(it.sku));
  if (unknown.length > 0) {
    throw new ValidationError(
      `unknown SKU ${unknown[0].it.sku}`,
      unknown.slice(0, 50).map(({ it, i }) => ({ path: `body.items.${i}.sku`, message: `unknown SKU ${it.sku}` })),
    );
  }

  // A first look without locks says which orders a shortage may revoke from: they are locked first
  // (orders before stock, as every writer locks), then the stock rows, then everything is read again.
  const sorted = [...skus].sort();
  const first = plan(input, location, await readFigures(trx, location, sorted, countedAt));
  const candidates = pickRevocations(first.need, await heldAt(trx, location, [...first.need.keys()]));
  const toLock = [...new Set(candidates.map((c) => c.order_id))];
  const locked = new Map<string, OrderRow>(
    (toLock.length > 0 ? await lockOrders(trx, toLock) : []).map((o) => [o.id, o]),
  );
  await trx.raw('SELECT sku FROM stock WHERE sku = ANY(?::text[]) ORDER BY sku FOR UPDATE', [sorted]);
  // No writer of these SKUs can commit now until this unit does: every movement the count reads is
  // whole, and every movement committed later comes after the horizon.
  const horizon = Number(
    (await trx.raw(`SELECT nextval(pg_get_serial_sequence('stock_movements', 'id')) AS h`)).rows[0].h,
  );
  const { items, need } = plan(input, location, await readFigures(trx, location, sorted, countedAt));
  const negative = items.filter((it) => !it.superseded_by && it.counted + it.after < 0);
  if (negative.length > 0) {
    throw new ConflictError(
      `the ledger moved more units out of ${location} after counted_at than the count found`,
      negative.slice(0, 50).map((it) => ({
        path: `body.items.${input.items.findIndex((x) => x.sku === it.sku)}.on_hand`,
        message: `${-it.after} unit(s) of ${it.sku} left after counted_at: on_hand would fall to ${it.counted + it.after}`,
      })),
    );
  }
  const revoke = pickRevocations(need, await heldAt(trx, location, [...need.keys()]));
  if (revoke.some((r) => !locked.has(r.order_id))) throw new OptimisticConflict(revoke[0].sku);

  const rows = await readStockRows(trx, sorted);
  const changes = new Map<string, StockChange & { levels: NonNullable<StockChange['levels']>; backordered: number }>();
  const changeOf = (sku: string) => {
    let c = changes.get(sku);
    if (!c) changes.set(sku, (c = { row: rows.get(sku)!, levels: [], backordered: 0 }));
    return c;
  };
  const movements: Movement[] = [];
  for (const it of items) {
    if (it.variance === 0 || it.superseded_by) continue;
    changeOf(it.sku).levels.push({ location, on_hand: it.variance });
    movements.push({
      sku: it.sku,
      location,
      type: 'count',
      quantity: it.variance,
      event_id: input.count_id,
      reason: `count ${input.count_id}`,
    });
  }
  const releases: Movement[] = [];
  const revoked = await revokeLines(uow, revoke, changeOf, releases);
  // One update of each stock row for the count and its revocations; the count movements are the
  // key's, the releases the system's.
  await applyStockChanges(uow, [...changes.values()], movements, 'count');
  const revoker = actingAs(uow, REVOKER);
  if (releases.length > 0) await insertMovements(revoker, releases);
  // The revoked lines wait again at their own seq: their queues are renumbered from there.
  await queueJoined(trx, revoked.lines);
  // Only now, with stock and queues written, do their orders move: the event of each shows its
  // queue place and ETA as a read right after the commit does.
  await markRevoked(revoker, revoked.orders, locked, input.count_id, location);

  await trx('stock_counts').where({ count_id: input.count_id }).update({ horizon });
  for (let i = 0; i < items.length; i += 1000) {
    const chunk = items.slice(i, i + 1000);
    await trx.raw(
      `INSERT INTO stock_count_items (count_id, item_no, sku, counted, expected, variance, superseded_by)
       SELECT ?, * FROM unnest(?::int[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::text[])`,
      [
        input.count_id,
        chunk.map((_, k) => i + k + 1),
        chunk.map((x) => x.sku),
        chunk.map((x) => x.counted),
        chunk.map((x) => x.expected),
        chunk.map((x) => x.variance),
        chunk.map((x) => x.superseded_by ?? null) as unknown as string[],
      ],
    );
  }
  uow.serveSkus([
    ...new Set([
      ...items.filter((x) => x.variance > 0 && !x.superseded_by).map((x) => x.sku),
      ...revoke.map((r) => r.sku),
    ]),
  ]);
  const results: CountItemResult[] = items.map(({ after: _after, ...r }) => r);
  // One `inventory.count_variance` event per item with a non-zero variance booked, in this unit of work.
  await addSkuEvents(
    uow,
    results
      .filter((r) => r.variance !== 0 && !r.superseded_by)
      .map((r) => ({
        type: 'inventory.count_variance',
        subject: { type: 'sku' as const, id: r.sku },
        data: {
          sku: r.sku,
          location: r.location,
          count_id: r.count_id,
          counted: r.counted,
          expected: r.expected,
          variance: r.variance,
        },
      })),
  );
  return { accepted: true, results };
}

/**
 * Revokes whole lines: every unshipped reserved unit of each line (at the counted location and
 * wherever else the line holds units) is released and the line waits again at its own seq for what
 * it has not shipped (`backordered` rises by that). Returns the lines, for the queues, and the SKUs
 * revoked per order, for markRevoked once stock and queues are written.
 */
async function revokeLines(
  uow: UnitOfWork,
  revoke: Held[],
  changeOf: (sku: string) => { levels: NonNullable<StockChange['levels']>; backordered: number },
  movements: Movement[],
): Promise<{ lines: QueueLine[]; orders: Map<string, string[]> }> {
  const orders = new Map<string, string[]>();
  if (revoke.length === 0) return { lines: [], orders };
  const { trx } = uow;
  const orderIds = revoke.map((r) => r.order_id);
  const lineSkus = revoke.map((r) => r.sku);
  const { rows: allocations } = await trx.raw(
    `SELECT a.order_id, a.sku, a.location, a.reserved FROM order_line_allocations a
       JOIN unnest(?::uuid[], ?::text[]) AS v(order_id, sku) ON v.order_id = a.order_id AND v.sku = a.sku
      WHERE a.reserved > 0 ORDER BY a.order_id, a.sku, a.location`,
    [orderIds, lineSkus],
  );
  for (const a of allocations as { order_id: string; sku: string; location: string; reserved: number }[]) {
    changeOf(a.sku).levels.push({ location: a.location, reserved: -a.reserved });
    movements.push({
      sku: a.sku,
      location: a.location,
      type: 'release',
      quantity: -a.reserved,
      order_id: a.order_id,
      reason: SHORTAGE_REASON,
    });
  }
  const { rows: lines } = await trx.raw(
    `UPDATE order_lines l SET reserved = false, waiting = true
       FROM unnest(?::uuid[], ?::text[]) AS v(order_id, sku)
      WHERE l.order_id = v.order_id AND l.sku = v.sku
      RETURNING l.order_id, l.sku, l.seq, l.quantity, l.shipped`,
    [orderIds, lineSkus],
  );
  for (const l of lines as { sku: string; quantity: number; shipped: number }[]) {
    changeOf(l.sku).backordered += Number(l.quantity) - Number(l.shipped);
  }
  await trx.raw(
    `DELETE FROM order_line_allocations a USING unnest(?::uuid[], ?::text[]) AS v(order_id, sku)
      WHERE a.order_id = v.order_id AND a.sku = v.sku AND a.shipped = 0`,
    [orderIds, lineSkus],
  );
  await trx.raw(
    `UPDATE order_line_allocations a SET reserved = 0 FROM unnest(?::uuid[], ?::text[]) AS v(order_id, sku)
      WHERE a.order_id = v.order_id AND a.sku = v.sku AND a.reserved > 0`,
    [orderIds, lineSkus],
  );
  for (const r of revoke) orders.set(r.order_id, [...(orders.get(r.order_id) ?? []), r.sku]);
  return {
    lines: (lines as { sku: string; seq: number; quantity: number; shipped: number }[]).map((l) => ({
      sku: l.sku,
      seq: Number(l.seq),
      quantity: Number(l.quantity) - Number(l.shipped),
    })),
    orders,
  };
}

/**
 * The orders whose lines were revoked are `awaiting_stock` (reason `stock count shortage`), in seq
 * order; an order already waiting stays so, with a history entry. Called after the stock rows and
 * the queues are written, since a transition's event carries the order as it is then.
 */
async function markRevoked(
  uow: UnitOfWork,
  orders: Map<string, string[]>,
  locked: Map<string, OrderRow>,
  countId: string,
  location: string,
): Promise<void> {
  const changes: StatusChange[] = [...orders].map(([id, skus]) => {
    const o = locked.get(id)!;
    return {
      orderId: id,
      action: 'revoke',
      from: o.status,
      to: 'awaiting_stock',
      detail: `stock count ${countId} at ${location} revoked ${skus.sort().join(', ')}`,
      reason: SHORTAGE_REASON,
    };
  });
  await changeStatus(
    uow,
    [...changes].sort((a, b) => locked.get(a.orderId)!.seq - locked.get(b.orderId)!.seq),
  );
  // An order that was waiting already stays so (a history entry, no transition); its reason now names the shortage too.
  const stays = changes.filter((c) => c.from === 'awaiting_stock').map((c) => c.orderId);
  if (stays.length > 0) await uow.trx('orders').whereIn('id', stays).update({ status_reason: SHORTAGE_REASON });
}

/** GET /v1/inventory/counts/:count_id: the count as recorded, every item in the order given. */
export async function getCount(db: Executor, countId: string): Promise<CountRecord> {
  const c = await db('stock_counts')
    .where({ count_id: countId })
    .first('count_id', 'location', 'counted_at', 'actor_role', 'actor_name', 'created_at');
  if (!c) throw new NotFoundError('count');
  const items = await db('stock_count_items')
    .where({ count_id: countId })
    .orderBy('item_no')
    .select('sku', 'counted', 'expected', 'variance', 'superseded_by');
  return {
    count_id: c.count_id,
    location: c.location,
    counted_at: c.counted_at.toISOString(),
    items: items.map((i: any) => ({
      sku: i.sku,
      counted: Number(i.counted),
      expected: Number(i.expected),
      variance: Number(i.variance),
      ...(i.superseded_by ? { superseded_by: i.superseded_by } : {}),
    })),
    actor: { role: c.actor_role, name: c.actor_name },
    created_at: c.created_at.toISOString(),
  };
}
