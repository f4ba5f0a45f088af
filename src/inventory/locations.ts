import type { Actor } from '../platform/actor';
import type { Context } from '../platform/context';
import type { Executor, Trx } from '../platform/db';
import { ConflictError, NotFoundError, ValidationError } from '../platform/errors';
import { runUnitOfWork, type UnitOfWork } from '../platform/unit-of-work';
import { noteAvailability } from './availability';
import type { CreateLocation, Location, UpdateLocation } from './inventory.schemas';

const COLUMNS = ['code', 'name', 'priority', 'active', 'created_at'];
const toLocation = (r: any): Location => ({ ...r, created_at: r.created_at.toISOString() });

export async function createLocation(db: Executor, input: CreateLocation): Promise<Location> {
  try {
    const [row] = await db('locations')
      .insert({ code: input.code, name: input.name, priority: input.priority ?? 100, active: input.active ?? true })
      .returning(COLUMNS);
    return toLocation(row);
  } catch (err: any) {
    if (err?.code === '23505')
      throw new ConflictError(`location ${input.code} already exists`, [
        { path: 'body.code', message: 'already exists' },
      ]);
    throw err;
  }
}

export async function listLocations(db: Executor): Promise<{ data: Location[] }> {
  return {
    data: (
      await db('locations')
        .orderBy([{ column: 'priority' }, { column: 'code' }])
        .select(COLUMNS)
    ).map(toLocation),
  };
}

export async function getLocation(db: Executor, code: string): Promise<Location> {
  const row = await db('locations').where({ code }).first(COLUMNS);
  if (!row) throw new NotFoundError('location');
  return toLocation(row);
}

/**
 * PATCH /v1/locations/:code. Turning a location off or on changes what its free units count for
 * (available, new reservations), so it is a stock change of every SKU it holds, in one unit of work:
 * see setActive.
 */
export async function updateLocation(
  ctx: Context,
  code: string,
  input: UpdateLocation,
  actor?: Actor,
): Promise<Location> {
  return runUnitOfWork(
    ctx,
    'location',
    async (uow) => {
      const { trx } = uow;
      if (!(await trx('locations').where({ code }).first('code'))) throw new NotFoundError('location');
      // Stock rows before the location row, as a writer of a SKU's first level there takes them
      // (its stock rows, then the location FOR SHARE), so the two do not deadlock; once the
      // location row is held, no first level there can commit, and a second look locks the SKUs
      // whose first level committed in between.
      const switching = input.active !== undefined;
      if (switching) await lockStockAt(trx, code);
      // NO KEY: rows that reference the location (levels, movements) can still be written meanwhile.
      const was = await trx('locations').where({ code }).forNoKeyUpdate().first('active');
      if (!was) throw new NotFoundError('location');
      if (switching && input.active !== was.active)
        await setActive(uow, code, input.active!, await lockStockAt(trx, code));
      const patch = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
      const [row] = await trx('locations')
        .where({ code })
        .update({ ...patch, updated_at: trx.fn.now() })
        .returning(COLUMNS);
      return toLocation(row);
    },
    { actor },
  );
}

/**
 * The stock side of turning `code` off or on, before the location row changes. Every SKU with a
 * level there has its totals row locked in SKU order (as every stock writer locks it) and its
 * version raised, so a writer that read the old flag loses its version check and reads again
 * (no reservation planned at a location just turned off). Then, in one statement over all those
 * SKUs, each one's total available with the old flag and with the new: the unit decides
 * `inventory.low_stock` and `inventory.back_in_stock` on them as on any stock change. A location
 * turned on serves, after commit, the SKUs whose lines wait while it has free units.
 */
async function setActive(uow: UnitOfWork, code: string, active: boolean, skus: string[]): Promise<void> {
  const { trx } = uow;
  await trx.raw(`UPDATE stock SET version = version + 1, updated_at = now() WHERE sku = ANY(?::text[])`, [skus]);
  // A statement of its own, so a snapshot taken after the locks: every write to these SKUs is in it.
  const { rows } = await trx.raw(
    `SELECT f.sku, p.low_stock_threshold AS threshold, s.backordered > 0 AS waits,
            CASE WHEN s.backordered > 0 THEN 0 ELSE f.before END AS before,
            CASE WHEN s.backordered > 0 THEN 0 ELSE f.after END AS after
       FROM (SELECT lv.sku,
                    COALESCE(SUM(lv.on_hand - lv.reserved) FILTER (WHERE l.active), 0) AS before,
                    COALESCE(SUM(lv.on_hand - lv.reserved)
                               FILTER (WHERE CASE WHEN lv.location = ? THEN ? ELSE l.active END), 0) AS after,
                    COALESCE(SUM(lv.on_hand - lv.reserved) FILTER (WHERE lv.location = ?), 0) AS here
               FROM stock_levels lv JOIN locations l ON l.code = lv.location
              WHERE lv.sku IN (SELECT sku FROM stock_levels WHERE location = ?)
              GROUP BY lv.sku) f
       JOIN stock s ON s.sku = f.sku
       JOIN products p ON p.sku = f.sku
      WHERE f.here > 0`,
    [code, active, code, code],
  );
  const figures = rows as { sku: string; threshold: string | null; waits: boolean; before: string; after: string }[];
  noteAvailability(
    uow,
    figures.map((r) => ({
      sku: r.sku,
      before: Number(r.before),
      after: Number(r.after),
      threshold: r.threshold === null ? null : Number(r.threshold),
    })),
  );
  if (active) uow.serveSkus(figures.filter((r) => r.waits).map((r) => r.sku));
}

/** The totals rows of every SKU with a level at `code`, locked in SKU order (as every stock writer locks them). */
async function lockStockAt(trx: Trx, code: string): Promise<string[]> {
  const { rows } = await trx.raw(
    `SELECT sku FROM stock WHERE sku IN (SELECT sku FROM stock_levels WHERE location = ?) ORDER BY sku FOR NO KEY UPDATE`,
    [code],
  );
  return (rows as { sku: string }[]).map((r) => r.sku);
}

/** Every named location exists, or 400 naming where each unknown one was given. */
export async function assertLocations(db: Executor, named: { code: string; path: string }[]): Promise<void> {
  if (named.length === 0) return;
  const known = new Set<string>(
    await db('locations')
      .whereIn('code', [...new Set(named.map((n) => n.code))])
      .pluck('code'),
  );
  const unknown = named.filter((n) => !known.has(n.code));
  if (unknown.length > 0) {
    throw new ValidationError(
      `unknown location ${unknown[0].code}`,
      unknown.slice(0, 50).map((n) => ({ path: n.path, message: `unknown location ${n.code}` })),
    );
  }
}

/** Stock per location over every SKU (the dashboard's per-location view): one grouped query. */
export async function stockByLocation(db: Executor) {
  const rows = await db('locations as l')
    .leftJoin('stock_levels as s', 's.location', 'l.code')
    .groupBy('l.code', 'l.name', 'l.priority', 'l.active')
    .orderBy([{ column: 'l.priority' }, { column: 'l.code' }])
    .select(
      'l.code as location',
      'l.name',
      'l.active',
      db.raw('COUNT(s.sku) FILTER (WHERE s.on_hand > 0)::bigint AS skus'),
      db.raw('COALESCE(SUM(s.on_hand), 0)::bigint AS on_hand'),
      db.raw('COALESCE(SUM(s.reserved), 0)::bigint AS reserved'),
    );
  return rows.map((r: any) => ({ ...r, free: r.on_hand - r.reserved }));
}
