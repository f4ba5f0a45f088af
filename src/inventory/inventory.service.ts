import type { Actor } from '../platform/actor';
import type { Context } from '../platform/context';
import type { Db, Executor } from '../platform/db';
import { ConflictError, NotFoundError, ValidationError } from '../platform/errors';
import { runUnitOfWork } from '../platform/unit-of-work';
import { listCursor, skuSchema } from '../platform/validation';
import {
  MAX_STOCK,
  type Adjustment,
  type CreateProduct,
  type LocationFigures,
  type Product,
  type StockFigures,
  type Transfer,
  type UpdateProduct,
} from './inventory.schemas';
import { assertLocations } from './locations';
import { applyStockChanges, freeAt, insertMovements, readStockForWrite, readStockRows, type StockRow } from './stock';

/**
 * A SKU's figures: totals over its locations; `available` = Σ over active locations of
 * (on_hand − reserved), or 0 while anything waits on the SKU (waiting lines come first);
 * `version` the sum of its rows' versions. Per location the same, `available` 0 where inactive.
 */
export function stockFigures(s: StockRow): StockFigures & { locations: LocationFigures[] } {
  const waits = s.backordered > 0;
  const locations = s.levels.map((l) => ({
    location: l.location,
    on_hand: l.on_hand,
    reserved: l.reserved,
    available: waits ? 0 : freeAt(l),
    version: l.version,
  }));
  return {
    on_hand: s.on_hand,
    reserved: s.reserved,
    available: locations.reduce((sum, l) => sum + l.available, 0),
    backordered: s.backordered,
    version: s.levels.reduce((sum, l) => sum + l.version, 0),
    locations,
  };
}

const toProduct = (r: any, stock: StockRow): Product => {
  const { locations, ...totals } = stockFigures(stock);
  return {
    sku: r.sku,
    name: r.name,
    price_cents: r.price_cents,
    active: r.active,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
    low_stock_threshold: r.low_stock_threshold ?? null,
    stock: totals,
    locations,
  };
};

export async function createProduct(ctx: Context, input: CreateProduct, actor?: Actor): Promise<Product> {
  const initial: Record<string, number> = input.initial_stock_by_location ?? { main: input.initial_stock ?? 0 };
  await assertLocations(
    ctx.db,
    Object.keys(initial).map((code) => ({ code, path: `body.initial_stock_by_location.${code}` })),
  );
  try {
    await runUnitOfWork(
      ctx,
      'product',
      async (uow) => {
        const { trx } = uow;
        const total = Object.values(initial).reduce((s, n) => s + n, 0);
        await trx('products').insert({
          sku: input.sku,
          name: input.name,
          price_cents: input.price_cents,
          low_stock_threshold: input.low_stock_threshold ?? null,
        });
        await trx('stock').insert({ sku: input.sku, on_hand: total });
        const levels = Object.entries(initial).map(([location, on_hand]) => ({ sku: input.sku, location, on_hand }));
        if (!levels.some((l) => l.location === 'main')) levels.push({ sku: input.sku, location: 'main', on_hand: 0 });
        await trx('stock_levels').insert(levels);
        const movements = levels
          .filter((l) => l.on_hand > 0)
          .map((l) => ({
            sku: input.sku,
            location: l.location,
            type: 'initial' as const,
            quantity: l.on_hand,
            reason: 'initial stock',
          }));
        await insertMovements(uow, movements);
      },
      { actor, retry: false },
    );
  } catch (err: any) {
    if (err?.code === '23505')
      throw new ConflictError(`product ${input.sku} already exists`, [{ path: 'body.sku', message: 'already exists' }]);
    throw err;
  }
  return getProduct(ctx.db, input.sku);
}

const PRODUCT_COLUMNS = ['sku', 'name', 'price_cents', 'active', 'low_stock_threshold', 'created_at', 'updated_at'];

export async function getProduct(db: Executor, sku: string): Promise<Product> {
  if (!skuSchema.safeParse(sku).success) throw new NotFoundError('product');
  const row = await db('products').where({ sku }).first(PRODUCT_COLUMNS);
  if (!row) throw new NotFoundError('product');
  return toProduct(row, (await readStockRows(db, [sku])).get(sku)!);
}

export async function updateProduct(db: Db, sku: string, input: UpdateProduct): Promise<Product> {
  const patch = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const n = await db('products')
    .where({ sku })
    .update({ ...patch, updated_at: db.fn.now() });
  if (!n) throw new NotFoundError('product');
  return getProduct(db, sku);
}

const inventoryCursor = listCursor('inventory', skuSchema);

/**
 * Stock rows by SKU: totals per SKU, or with `location` that location's rows. `low_stock` keeps
 * the rows whose available units are at most N.
 */
export async function listInventory(
  db: Db,
  q: { low_stock?: number; location?: string; limit: number; cursor?: string },
) {
  const after = inventoryCursor.decode(q.cursor);
  if (q.location !== undefined) await assertLocations(db, [{ code: q.location, path: 'query.location' }]);
  const available = q.location
    ? `CASE WHEN s.backordered > 0 OR NOT loc.active THEN 0 ELSE lv.on_hand - lv.reserved END`
    : `CASE WHEN s.backordered > 0 THEN 0 ELSE (SELECT COALESCE(sum(x.on_hand - x.reserved), 0) FROM stock_levels x
         JOIN locations xl ON xl.code = x.location WHERE x.sku = s.sku AND xl.active) END`;
  const query = db('products as p')
    .join('stock as s', 's.sku', 'p.sku')
    .orderBy('p.sku')
    .limit(q.limit + 1);
  if (q.location) {
    query
      .join('stock_levels as lv', (j) => j.on('lv.sku', 'p.sku').andOn('lv.location', db.raw('?', [q.location!])))
      .join('locations as loc', 'loc.code', 'lv.location')
      .select(
        'p.sku',
        'p.name',
        'p.active',
        'lv.location',
        'lv.on_hand',
        'lv.reserved',
        's.backordered',
        'lv.version',
        db.raw(`(${available})::bigint AS available`),
      );
  } else {
    query.select(
      'p.sku',
      'p.name',
      'p.active',
      's.on_hand',
      's.reserved',
      's.backordered',
      db.raw(`(SELECT COALESCE(sum(x.version), 0) FROM stock_levels x WHERE x.sku = s.sku)::bigint AS version`),
      db.raw(`(${available})::bigint AS available`),
    );
  }
  if (after) query.where('p.sku', '>', after);
  if (q.low_stock !== undefined) query.whereRaw(`(${available}) <= ?`, [q.low_stock]);
  const rows = await query;
  const page = rows.slice(0, q.limit);
  return {
    data: page.map((r: any) => ({
      sku: r.sku,
      name: r.name,
      active: r.active,
      ...(q.location ? { location: r.location } : {}),
      on_hand: r.on_hand,
      reserved: r.reserved,
      available: r.available,
      backordered: r.backordered,
      version: r.version,
    })),
    next_cursor: rows.length > q.limit ? inventoryCursor.encode(page[page.length - 1].sku) : null,
  };
}

/**
 * Operator correction of on_hand at one location (default `main`); never below what is reserved
 * there. Returns the ledger movement and the stock after it; stock that arrived serves the waiting
 * lines once committed (the figures are then read again, showing what allocation took).
 */
export async function adjustStock(ctx: Context, sku: string, input: Adjustment, actor?: Actor) {
  const location = input.location ?? 'main';
  await assertLocations(ctx.db, [{ code: location, path: 'body.location' }]);
  const movement = await runUnitOfWork(
    ctx,
    'adjustment',
    async (uow) => {
      const { trx } = uow;
      const row = (await readStockForWrite(uow, [sku])).get(sku);
      if (!row) throw new NotFoundError('product');
      const level = row.levels.find((l) => l.location === location) ?? { on_hand: 0, reserved: 0 };
      if (row.on_hand + input.delta > MAX_STOCK) {
        throw new ValidationError(
          `on_hand would rise to ${row.on_hand + input.delta}, beyond ${MAX_STOCK}, the largest count exact in JSON`,
          [{ path: 'body.delta', message: `must be at most ${MAX_STOCK - row.on_hand}` }],
        );
      }
      if (level.on_hand + input.delta < level.reserved) {
        throw new ConflictError(
          `on_hand at ${location} would fall to ${level.on_hand + input.delta}, below the ${level.reserved} reserved there`,
          [{ path: 'body.delta', message: `must be at least ${level.reserved - level.on_hand}` }],
        );
      }
      await applyStockChanges(uow, [{ row, levels: [{ location, on_hand: input.delta }] }], [], 'adjustment');
      const [m] = await trx('stock_movements')
        .insert({
          sku,
          location,
          type: 'adjustment',
          quantity: input.delta,
          reason: input.reason,
          actor_role: uow.actor.role,
          actor_name: uow.actor.name,
        })
        .returning(['id', 'sku', 'location', 'type', 'quantity', 'reason', 'actor_role', 'actor_name', 'created_at']);
      if (input.delta > 0) uow.serveSkus([sku]);
      const { actor_role, actor_name, ...rest } = m;
      return {
        ...rest,
        id: Number(m.id),
        actor: { role: actor_role, name: actor_name },
        created_at: m.created_at.toISOString(),
        stock: totalsOf((await readStockRows(trx, [sku])).get(sku)!),
      };
    },
    { actor },
  );
  if (movement.quantity <= 0) return movement;
  // The adjustment is committed: a failed read here must not become an error the client would retry (adding twice).
  const after = await readStockRows(ctx.db, [sku]).then(
    (r) => r.get(sku),
    () => undefined,
  );
  return after ? { ...movement, stock: totalsOf(after) } : movement;
}

const totalsOf = (row: StockRow): StockFigures => {
  const { locations: _locations, ...totals } = stockFigures(row);
  return totals;
};

/**
 * Moves unreserved units between two locations of a SKU: a `transfer_out` at `from` and a
 * `transfer_in` at `to` in one transaction (the SKU's total does not change); `from` may be
 * inactive. The SKU's waiting lines are served after it.
 */
export async function transferStock(ctx: Context, sku: string, input: Transfer, actor?: Actor) {
  await assertLocations(ctx.db, [
    { code: input.from, path: 'body.from' },
    { code: input.to, path: 'body.to' },
  ]);
  return runUnitOfWork(
    ctx,
    'transfer',
    async (uow) => {
      const { trx } = uow;
      const row = (await readStockForWrite(uow, [sku])).get(sku);
      if (!row) throw new NotFoundError('product');
      const from = row.levels.find((l) => l.location === input.from);
      const movable = from ? from.on_hand - from.reserved : 0;
      if (movable < input.quantity) {
        throw new ConflictError(`only ${movable} unreserved unit(s) of ${sku} at ${input.from}`, [
          { path: 'body.quantity', message: `at most ${movable}` },
        ]);
      }
      const reason = input.reason ?? null;
      const movements = [
        { sku, location: input.from, type: 'transfer_out' as const, quantity: -input.quantity, reason },
        { sku, location: input.to, type: 'transfer_in' as const, quantity: input.quantity, reason },
      ];
      await applyStockChanges(
        uow,
        [
          {
            row,
            levels: [
              { location: input.from, on_hand: -input.quantity },
              { location: input.to, on_hand: input.quantity },
            ],
          },
        ],
        movements,
        'transfer',
      );
      const [t] = await trx('transfers')
        .insert({
          sku,
          from_location: input.from,
          to_location: input.to,
          quantity: input.quantity,
          reason,
          actor_role: uow.actor.role,
          actor_name: uow.actor.name,
        })
        .returning(['created_at']);
      uow.serveSkus([sku]);
      return {
        sku,
        from: input.from,
        to: input.to,
        quantity: input.quantity,
        reason,
        movements: movements.map((m) => ({ type: m.type, location: m.location, quantity: m.quantity })),
        actor: uow.actor,
        created_at: t.created_at.toISOString(),
      };
    },
    { actor },
  );
}
