import { rawPrepared, type Executor, type Trx } from '../platform/db';
import { OptimisticConflict } from '../platform/errors';
import { metrics } from '../platform/metrics';
import type { UnitOfWork } from '../platform/unit-of-work';
import { availableOf, noteAvailability, type AvailabilityChange } from './availability';

/** One (SKU, location) row: its figures, its version, and what the location is (active, priority). */
export interface LevelRow {
  location: string;
  on_hand: number;
  reserved: number;
  version: number;
  active: boolean;
  priority: number;
}

/**
 * A SKU's stock: the totals row (the sums of its levels, and `backordered`, the units its waiting
 * lines want), versioned, and its levels in the order reservations prefer them (priority, code).
 */
export interface StockRow {
  sku: string;
  on_hand: number;
  reserved: number;
  backordered: number;
  version: number;
  /** The product's `low_stock_threshold` (null: no low-stock event). */
  low_stock_threshold: number | null;
  levels: LevelRow[];
}

export type MovementType =
  | 'initial'
  | 'receipt'
  | 'reservation'
  | 'release'
  | 'sale'
  | 'adjustment'
  | 'return'
  | 'count'
  | 'transfer_out'
  | 'transfer_in';
export interface Movement {
  sku: string;
  location: string;
  type: MovementType;
  quantity: number;
  order_id?: string | null;
  event_id?: string | null;
  reason?: string | null;
}
export interface LevelDelta {
  location: string;
  on_hand?: number;
  reserved?: number;
}
/** Deltas to apply to one SKU read at `row.version`: per location, and to its queue (`backordered`). */
export interface StockChange {
  row: StockRow;
  levels?: LevelDelta[];
  backordered?: number;
}

/** Units a level can give to a new reservation: none at an inactive location. */
export const freeAt = (l: LevelRow) => (l.active ? l.on_hand - l.reserved : 0);

/**
 * The SKUs' stock rows and levels. With `lock`, the totals rows are also locked (FOR NO KEY UPDATE,
 * in SKU order) until the transaction ends: every stock write updates the totals row first, so no
 * other write to these SKUs can commit in between and the version-checked update cannot lose.
 * Stock writers read through readStockForWrite.
 */
export async function readStockRows(
  db: Executor,
  skus: string[],
  opts: { lock?: boolean } = {},
): Promise<Map<string, StockRow>> {
  const out = new Map<string, StockRow>();
  if (skus.length === 0) return out;
  const query = db('stock as s')
    .join('products as p', 'p.sku', 's.sku')
    .select('s.sku', 's.on_hand', 's.reserved', 's.backordered', 's.version', 'p.low_stock_threshold')
    .whereIn('s.sku', skus);
  const rows: Omit<StockRow, 'levels'>[] = opts.lock ? await query.orderBy('s.sku').forNoKeyUpdate('s') : await query;
  for (const r of rows) out.set(r.sku, { ...r, levels: [] });
  const levels: (LevelRow & { sku: string })[] = await db('stock_levels as s')
    .join('locations as l', 'l.code', 's.location')
    .whereIn('s.sku', skus)
    .orderBy([{ column: 's.sku' }, { column: 'l.priority' }, { column: 'l.code' }])
    .select('s.sku', 's.location', 's.on_hand', 's.reserved', 's.version', 'l.active', 'l.priority');
  for (const { sku, ...l } of levels) out.get(sku)?.levels.push(l);
  return out;
}

/**
 * The rows a unit of work is about to write: optimistic on its first attempt, locked (as
 * readStockRows with `lock`) once it has lost a check, so a hot SKU cannot make one writer lose
 * every attempt (a cancel lost 30 in a row to the reservation batches of the bank test and
 * answered 503). For writers that lock their orders first, or none: FIFO allocation locks orders
 * after reading stock and reads with readStockRows.
 */
export function readStockForWrite(uow: UnitOfWork, skus: string[]): Promise<Map<string, StockRow>> {
  return readStockRows(uow.trx, skus, { lock: uow.attempt > 1 });
}

const bySku = (a: { row: StockRow }, b: { row: StockRow }) =>
  a.row.sku < b.row.sku ? -1 : a.row.sku > b.row.sku ? 1 : 0;

/**
 * The one place that updates stock. The SKU's totals row is updated `WHERE sku = ? AND version = ?`
 * and each (SKU, location) row it touches `WHERE sku = ? AND location = ? AND version = ?` (a row
 * not there yet is created at version 0); if any moved since it was read, OptimisticConflict is
 * thrown and the unit of work rolls back and retries. The ledger movements are written in the same
 * transaction, with the unit's actor. CHECK constraints (0 ≤ reserved ≤ on_hand per row) are the
 * last line of defence.
 */
export async function applyStockChanges(
  uow: UnitOfWork,
  changes: StockChange[],
  movements: Movement[],
  op: string,
): Promise<void> {
  const { trx } = uow;
  const real = changes
    .map((c) => ({ ...c, levels: mergeLevels(c.levels ?? []) }))
    .filter((c) => c.backordered || c.levels.length > 0)
    .sort(bySku);
  if (real.length > 0) {
    metrics.stockAttempts.inc({ op }, real.length);
    // Arrays, not a VALUES list: one statement text for any number of SKUs, prepared once per connection.
    // The version check stays optimistic, but the rows are locked in SKU order first (`locked`),
    // as every other locker of stock rows takes them: an UPDATE … FROM joins in whatever order its
    // plan picks, so two workers' batches, or a batch and a count, deadlocked, each deadlock
    // costing deadlock_timeout (1 s): 205 in one bench of 1, 2 and 4 worker processes.
    const bindings = [
      real.map((c) => c.row.sku),
      real.map((c) => c.row.version),
      real.map((c) => c.levels.reduce((s, l) => s + (l.on_hand ?? 0), 0)),
      real.map((c) => c.levels.reduce((s, l) => s + (l.reserved ?? 0), 0)),
      real.map((c) => c.backordered ?? 0),
    ];
    const result = await rawPrepared(
      trx,
      `WITH v AS MATERIALIZED (
         SELECT * FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[])
                    AS v(sku, version, d_on_hand, d_reserved, d_backordered)),
       locked AS MATERIALIZED (
         SELECT sku FROM stock WHERE sku IN (SELECT sku FROM v) ORDER BY sku FOR NO KEY UPDATE)
       UPDATE stock s SET on_hand = s.on_hand + v.d_on_hand, reserved = s.reserved + v.d_reserved,
              backordered = s.backordered + v.d_backordered, version = s.version + 1, updated_at = now()
         FROM v JOIN locked l ON l.sku = v.sku
        WHERE s.sku = v.sku AND s.version = v.version
        RETURNING s.sku, s.on_hand, s.reserved, s.backordered, s.version`,
      bindings,
    );
    const updated: { sku: string }[] = result.rows;
    if (updated.length !== real.length) {
      const lost = real.find((c) => !updated.some((u) => u.sku === c.row.sku));
      throw new OptimisticConflict(lost?.row.sku);
    }
    await updateLevels(trx, real);
    noteAvailability(uow, await availabilityChanges(trx, real));
  }
  if (movements.length > 0) await insertMovements(uow, movements);
}

/**
 * What the changes do to each SKU's total available, from its figures as read (the optimistic
 * update proved they were current) and after the deltas. The unit decides the inventory events on
 * these before it commits (noteAvailability).
 */
async function availabilityChanges(
  trx: Trx,
  changes: { row: StockRow; levels: Required<LevelDelta>[]; backordered?: number }[],
): Promise<AvailabilityChange[]> {
  const fresh = changes.flatMap((c) => c.levels.filter((l) => !c.row.levels.some((x) => x.location === l.location)));
  // A SKU's first level at a location: its flag read under FOR SHARE, which waits for a switch of
  // that location in flight (it holds the row FOR NO KEY UPDATE) and then reads the flag it set.
  // The switch locked only the SKUs that had a level there, so without this a first receipt at a
  // location being turned off would decide its events, and let a reservation be planned there, as
  // if it were still on.
  const activeFresh = new Set<string>(
    fresh.length === 0
      ? []
      : (
          await trx('locations')
            .whereIn('code', [...new Set(fresh.map((l) => l.location))])
            .orderBy('code')
            .forShare()
            .select('code', 'active')
        )
          .filter((r: { active: boolean }) => r.active)
          .map((r: { code: string }) => r.code),
  );
  return changes.map((c) => {
    const levels = c.row.levels.map((l) => {
      const d = c.levels.find((x) => x.location === l.location);
      return d ? { ...l, on_hand: l.on_hand + d.on_hand, reserved: l.reserved + d.reserved } : l;
    });
    for (const d of c.levels)
      if (!c.row.levels.some((x) => x.location === d.location))
        levels.push({ ...d, version: 0, priority: 0, active: activeFresh.has(d.location) });
    return {
      sku: c.row.sku,
      before: availableOf(c.row.backordered, c.row.levels),
      after: availableOf(c.row.backordered + (c.backordered ?? 0), levels),
      threshold: c.row.low_stock_threshold === null ? null : Number(c.row.low_stock_threshold),
    };
  });
}

function mergeLevels(levels: LevelDelta[]): Required<LevelDelta>[] {
  const by = new Map<string, Required<LevelDelta>>();
  for (const l of levels) {
    const m = by.get(l.location) ?? { location: l.location, on_hand: 0, reserved: 0 };
    m.on_hand += l.on_hand ?? 0;
    m.reserved += l.reserved ?? 0;
    by.set(l.location, m);
  }
  return [...by.values()].filter((l) => l.on_hand || l.reserved).sort((a, b) => (a.location < b.location ? -1 : 1));
}

async function updateLevels(trx: Trx, changes: { row: StockRow; levels: Required<LevelDelta>[] }[]): Promise<void> {
  const rows = changes.flatMap((c) =>
    c.levels.map((l) => ({
      sku: c.row.sku,
      ...l,
      version: c.row.levels.find((x) => x.location === l.location)?.version,
    })),
  );
  if (rows.length === 0) return;
  const fresh = rows.filter((r) => r.version === undefined);
  if (fresh.length > 0) {
    await trx.raw(
      `INSERT INTO stock_levels (sku, location) SELECT * FROM unnest(?::text[], ?::text[]) ON CONFLICT DO NOTHING`,
      [fresh.map((r) => r.sku), fresh.map((r) => r.location)],
    );
  }
  const result = await rawPrepared(
    trx,
    `UPDATE stock_levels s SET on_hand = s.on_hand + v.d_on_hand, reserved = s.reserved + v.d_reserved,
            version = s.version + 1, updated_at = now()
       FROM unnest(?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[]) AS v(sku, location, version, d_on_hand, d_reserved)
      WHERE s.sku = v.sku AND s.location = v.location AND s.version = v.version
      RETURNING s.sku`,
    [
      rows.map((r) => r.sku),
      rows.map((r) => r.location),
      rows.map((r) => r.version ?? 0),
      rows.map((r) => r.on_hand),
      rows.map((r) => r.reserved),
    ],
  );
  if (result.rows.length !== rows.length) throw new OptimisticConflict(rows[0].sku);
}

export async function insertMovements(uow: UnitOfWork, movements: Movement[]): Promise<void> {
  for (let i = 0; i < movements.length; i += 1000) {
    await uow.trx('stock_movements').insert(
      movements.slice(i, i + 1000).map((m) => ({
        sku: m.sku,
        location: m.location,
        type: m.type,
        quantity: m.quantity,
        order_id: m.order_id ?? null,
        event_id: m.event_id ?? null,
        reason: m.reason ?? null,
        actor_role: uow.actor.role,
        actor_name: uow.actor.name,
      })),
    );
  }
}
