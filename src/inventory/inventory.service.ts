import type { Context } from '../platform/context';
import type { Db } from '../platform/db';
import { runUnitOfWork } from '../platform/unit-of-work';
import { ConflictError, NotFoundError, ValidationError } from '../platform/errors';
import { decodeCursor, encodeCursor, skuSchema } from '../platform/validation';
import {
  MAX_STOCK,
  type Adjustment,
  type CreateProduct,
  type Product,
  type StockFigures,
  type UpdateProduct,
} from './inventory.schemas';
import { applyStockChanges, readStockRows, type StockRow } from './stock';

/** available = on_hand − reserved, or 0 while anything is backordered (waiting lines come first). */
export function stockFigures(s: StockRow): StockFigures {
  return {
    on_hand: s.on_hand,
    reserved: s.reserved,
    available: s.backordered > 0 ? 0 : s.on_hand - s.reserved,
    backordered: s.backordered,
    version: s.version,
  };
}

const PRODUCT_COLUMNS = [
  'p.sku',
  'p.name',
  'p.price_cents',
  'p.active',
  'p.created_at',
  'p.updated_at',
  's.on_hand',
  's.reserved',
  's.backordered',
  's.version',
];
const toProduct = (r: any): Product => ({
  sku: r.sku,
  name: r.name,
  price_cents: r.price_cents,
  active: r.active,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
  stock: stockFigures(r),
});

export async function createProduct(db: Db, input: CreateProduct): Promise<Product> {
  const initial = input.initial_stock ?? 0;
  try {
    await db.transaction(async (trx) => {
      await trx('products').insert({ sku: input.sku, name: input.name, price_cents: input.price_cents });
      await trx('stock').insert({ sku: input.sku, on_hand: initial });
      if (initial > 0)
        await trx('stock_movements').insert({
          sku: input.sku,
          type: 'initial',
          quantity: initial,
          reason: 'initial stock',
        });
    });
  } catch (err: any) {
    if (err?.code === '23505')
      throw new ConflictError(`product ${input.sku} already exists`, [{ path: 'sku', message: 'already exists' }]);
    throw err;
  }
  return getProduct(db, input.sku);
}

export async function getProduct(db: Db, sku: string): Promise<Product> {
  if (!skuSchema.safeParse(sku).success) throw new NotFoundError('product');
  const row = await db('products as p').join('stock as s', 's.sku', 'p.sku').where('p.sku', sku).first(PRODUCT_COLUMNS);
  if (!row) throw new NotFoundError('product');
  return toProduct(row);
}

export async function updateProduct(db: Db, sku: string, input: UpdateProduct): Promise<Product> {
  const patch = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const n = await db('products')
    .where({ sku })
    .update({ ...patch, updated_at: db.fn.now() });
  if (!n) throw new NotFoundError('product');
  return getProduct(db, sku);
}

export async function listInventory(db: Db, q: { low_stock?: number; limit: number; cursor?: string }) {
  const after = decodeCursor(skuSchema, q.cursor);
  const query = db('products as p')
    .join('stock as s', 's.sku', 'p.sku')
    .select(PRODUCT_COLUMNS)
    .orderBy('p.sku')
    .limit(q.limit + 1);
  if (after) query.where('p.sku', '>', after);
  if (q.low_stock !== undefined) {
    query.whereRaw('(CASE WHEN s.backordered > 0 THEN 0 ELSE s.on_hand - s.reserved END) <= ?', [q.low_stock]);
  }
  const rows = await query;
  const page = rows.slice(0, q.limit);
  return {
    data: page.map((r: any) => ({ sku: r.sku, name: r.name, active: r.active, ...stockFigures(r) })),
    next_cursor: rows.length > q.limit ? encodeCursor(page[page.length - 1].sku) : null,
  };
}

/**
 * Operator correction of on_hand; never below what is reserved. Returns the ledger movement and
 * the stock after it; stock that arrived serves the waiting lines once committed (the figures are
 * then read again, showing what allocation took).
 */
export async function adjustStock(ctx: Context, sku: string, input: Adjustment) {
  const movement = await runUnitOfWork(ctx, 'adjustment', async (uow) => {
    const { trx } = uow;
    const row = (await readStockRows(trx, [sku])).get(sku);
    if (!row) throw new NotFoundError('product');
    if (row.on_hand + input.delta > MAX_STOCK) {
      throw new ValidationError(
        `on_hand would rise to ${row.on_hand + input.delta}, beyond ${MAX_STOCK}, the largest count exact in JSON`,
        [{ path: 'delta', message: `must be at most ${MAX_STOCK - row.on_hand}` }],
      );
    }
    if (row.on_hand + input.delta < row.reserved) {
      throw new ConflictError(
        `on_hand would fall to ${row.on_hand + input.delta}, below the ${row.reserved} reserved`,
        [{ path: 'delta', message: `must be at least ${row.reserved - row.on_hand}` }],
      );
    }
    const [updated] = await applyStockChanges(trx, [{ row, on_hand: input.delta }], [], 'adjustment');
    const [m] = await trx('stock_movements')
      .insert({ sku, type: 'adjustment', quantity: input.delta, reason: input.reason })
      .returning(['id', 'sku', 'type', 'quantity', 'reason', 'created_at']);
    if (input.delta > 0) uow.serveSkus([sku]);
    return { ...m, id: Number(m.id), created_at: m.created_at.toISOString(), stock: stockFigures(updated) };
  });
  if (movement.quantity <= 0) return movement;
  // The adjustment is committed: a failed read here must not become an error the client would retry (adding twice).
  const after = await readStockRows(ctx.db, [sku]).then(
    (r) => r.get(sku),
    () => undefined,
  );
  return after ? { ...movement, stock: stockFigures(after) } : movement;
}
