import type { Context } from '../app/context';
import type { Trx } from '../platform/db';
import { publishAfterCommit, type OutboxRow } from '../jobs/outbox';
import { applyStockChanges, inStockTransaction, readStockRows, type Movement } from '../inventory';
import { freeAfterAhead, recordTransitions, reprocessingAhead, type Transition } from './orders.repo';
import { releaseOrderStock } from './release';

const BATCH = 1000;

/**
 * Strict FIFO for one SKU inside the caller's transaction: waiting lines in `seq` order, each
 * reserved whole while stock lasts; the first line that does not fit blocks the rest. Orders whose
 * last line this reserves become `confirmed`. Reads only the head of this SKU's queue (partial
 * index on (sku, seq) of unreserved waiting lines). Returns how many lines it reserved.
 */
export async function allocateSkuInTrx(trx: Trx, sku: string, outbox: OutboxRow[]): Promise<{ reserved: number; more: boolean }> {
  const row = (await readStockRows(trx, [sku])).get(sku);
  if (!row || row.backordered === 0) return { reserved: 0, more: false };
  let free = row.on_hand - row.reserved;
  if (free <= 0) return { reserved: 0, more: false };
  const head: { order_id: string; quantity: number; seq: number }[] = await trx('order_lines')
    .where({ sku, waiting: true, reserved: false }).orderBy('seq').limit(BATCH).select('order_id', 'quantity', 'seq');
  if (head.length === 0) return { reserved: 0, more: false };
  // An edited (or retried) order being processed again keeps its place: what it asks for is held
  // for it ahead of the waiting lines behind its seq, so the stock its edit gave back is not handed
  // to the line behind it. Its processing serves the SKU afterwards.
  const ahead = (await reprocessingAhead(trx, [sku])).get(sku) ?? [];
  const taken: { order_id: string; quantity: number }[] = [];
  for (const l of head) {
    // What is left for this line once the orders ahead of it have had theirs (undefined: one does not fit).
    const left = freeAfterAhead(free, ahead, l.seq);
    if (left === undefined || l.quantity > left) break;
    free -= l.quantity;
    taken.push(l);
  }
  if (taken.length === 0) return { reserved: 0, more: false };
  const qty = taken.reduce((s, l) => s + l.quantity, 0);
  const movements: Movement[] = taken.map((l) => ({ sku, type: 'reservation', quantity: l.quantity, order_id: l.order_id, reason: 'backorder filled' }));
  const orderIds = taken.map((l) => l.order_id);
  // Lock order rows before stock and lines, in seq order, as every other writer does (no deadlocks).
  await trx.raw('SELECT id FROM orders WHERE id = ANY(?::uuid[]) ORDER BY seq FOR UPDATE', [orderIds]);
  await applyStockChanges(trx, [{ row, reserved: qty, backordered: -qty }], movements, 'allocate');
  await trx('order_lines').where({ sku }).whereIn('order_id', orderIds).update({ reserved: true });
  // Orders whose every line is now reserved are confirmed; the others keep what they hold.
  const complete: { id: string }[] = (await trx.raw(
    `SELECT o.id FROM orders o WHERE o.id = ANY(?::uuid[]) AND o.status = 'awaiting_stock'
        AND NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND NOT l.reserved)
      ORDER BY o.seq`, [orderIds])).rows;
  const transitions: Transition[] = complete.map((o) => ({ orderId: o.id, from: 'awaiting_stock', to: 'confirmed', detail: `backorder filled by ${sku}` }));
  outbox.push(...(await recordTransitions(trx, transitions)));
  return { reserved: taken.length, more: taken.length === head.length && head.length === BATCH };
}

/** Serves the waiting lines of each SKU (one transaction per batch, retried on conflict). */
export async function allocateSkus(ctx: Context, skus: Iterable<string>): Promise<number> {
  let total = 0;
  for (const sku of [...new Set(skus)].sort()) {
    for (;;) {
      const { outbox, reserved, more } = await inStockTransaction(ctx.db, 'allocate', async (trx) => {
        const outbox: OutboxRow[] = [];
        return { ...(await allocateSkuInTrx(trx, sku, outbox)), outbox };
      });
      await publishAfterCommit(ctx, outbox);
      total += reserved;
      if (!more) break;
    }
  }
  return total;
}

/** Repairs a missed trigger: SKUs where lines wait while stock is free get served. */
export async function allocateWhereStockIsFree(ctx: Context): Promise<number> {
  const skus: string[] = (await ctx.db('stock').where('backordered', '>', 0).whereRaw('on_hand > reserved').pluck('sku'));
  return allocateSkus(ctx, skus);
}

/** Backorders waiting longer than BACKORDER_TTL_SECONDS are cancelled (`backorder_expired`), releasing what they held. */
export async function expireBackorders(ctx: Context, limit = 200): Promise<number> {
  let expired = 0;
  for (;;) {
    const { outbox, skus, n } = await inStockTransaction(ctx.db, 'expire', async (trx) => {
      const orders: { id: string }[] = (await trx.raw(
        `SELECT id FROM orders WHERE status = 'awaiting_stock' AND awaiting_since < now() - make_interval(secs => ?)
          ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED`, [ctx.config.BACKORDER_TTL_SECONDS, limit])).rows;
      if (orders.length === 0) return { outbox: [] as OutboxRow[], skus: [] as string[], n: 0 };
      const ids = orders.map((o) => o.id);
      const skus = await releaseOrderStock(trx, ids, 'backorder_expired');
      const outbox = await recordTransitions(trx, ids.map((id) => ({
        orderId: id, from: 'awaiting_stock' as const, to: 'cancelled' as const, detail: 'backorder_expired', reason: 'backorder_expired',
      })));
      return { outbox, skus, n: ids.length };
    });
    await publishAfterCommit(ctx, outbox);
    await allocateSkus(ctx, skus);
    expired += n;
    if (n < limit) return expired;
  }
}
