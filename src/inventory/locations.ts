import type { Executor } from '../platform/db';
import { ConflictError, NotFoundError, ValidationError } from '../platform/errors';
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

export async function updateLocation(db: Executor, code: string, input: UpdateLocation): Promise<Location> {
  const patch = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const [row] = await db('locations')
    .where({ code })
    .update({ ...patch, updated_at: db.fn.now() })
    .returning(COLUMNS);
  if (!row) throw new NotFoundError('location');
  return toLocation(row);
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
