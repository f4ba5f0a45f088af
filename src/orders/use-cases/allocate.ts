import { applyStockChanges, freeAt, readStockRows, type Movement } from '../../inventory';
import type { Context } from '../../platform/context';
import { runUnitOfWork, type UnitOfWork } from '../../platform/unit-of-work';
import { serveQueue } from '../rules/fifo';
import { placeLine } from '../rules/placement';
import { addAllocations } from '../sql/allocations';
import { queueLeft } from '../sql/queue';
import {
  fullyReservedWaiting,
  lockOrderIds,
  markLinesReserved,
  queueHead,
  reprocessingAhead,
  skusWithFreeStockAndWaiting,
} from '../sql/order-rows';
import { changeStatus } from '../status';

const BATCH = 1000;

/**
 * Strict FIFO for one SKU in the unit's transaction: the head of its queue is served whole line by
 * line while the SKU's free units over its active locations last (serveQueue decides), each line's
 * units placed by placeLine (one location that can fill it, else split by priority). Orders whose
 * last line this reserves are `confirmed` (or `partially_shipped`, if some units shipped already).
 * Returns how many lines it reserved and whether more of the queue may fit.
 */
async function allocateSku(uow: UnitOfWork, sku: string): Promise<{ reserved: number; more: boolean }> {
  const { trx } = uow;
  const row = (await readStockRows(trx, [sku])).get(sku);
  if (!row || row.backordered === 0) return { reserved: 0, more: false };
  const free = row.levels
    .filter((l) => l.active)
    .map((l) => ({ location: l.location, priority: l.priority, free: freeAt(l) }));
  const total = free.reduce((s, f) => s + f.free, 0);
  if (total <= 0) return { reserved: 0, more: false };
  const head = await queueHead(trx, sku, BATCH);
  if (head.length === 0) return { reserved: 0, more: false };
  // An edited (or retried) order being processed again keeps its place: what it asks for is held
  // for it ahead of the waiting lines behind its seq. Its processing serves the SKU afterwards.
  const taken = serveQueue(total, head, (await reprocessingAhead(trx, [sku])).get(sku));
  if (taken.length === 0) return { reserved: 0, more: false };
  const movements: Movement[] = [];
  const allocations: { order_id: string; sku: string; location: string; quantity: number }[] = [];
  const levels: { location: string; reserved: number }[] = [];
  for (const l of taken) {
    for (const p of placeLine(l.quantity, free)!) {
      free.find((f) => f.location === p.location)!.free -= p.quantity;
      levels.push({ location: p.location, reserved: p.quantity });
      allocations.push({ order_id: l.order_id, sku, location: p.location, quantity: p.quantity });
      movements.push({
        sku,
        location: p.location,
        type: 'reservation',
        quantity: p.quantity,
        order_id: l.order_id,
        reason: 'backorder filled',
      });
    }
  }
  const qty = taken.reduce((s, l) => s + l.quantity, 0);
  const orderIds = taken.map((l) => l.order_id);
  await lockOrderIds(trx, orderIds);
  await applyStockChanges(uow, [{ row, levels, backordered: -qty }], movements, 'allocate');
  await addAllocations(trx, allocations);
  await markLinesReserved(trx, sku, orderIds);
  await queueLeft(
    trx,
    taken.map((l) => ({ sku, seq: l.seq, quantity: l.quantity })),
  );
  // Orders whose every line is now reserved are confirmed; the others keep what they hold.
  const complete = await fullyReservedWaiting(trx, orderIds);
  await changeStatus(
    uow,
    complete.map((o) => ({
      orderId: o.id,
      action: 'fill' as const,
      from: 'awaiting_stock' as const,
      to: o.shipped > 0 ? ('partially_shipped' as const) : ('confirmed' as const),
      detail: `backorder filled by ${sku}`,
    })),
  );
  return { reserved: taken.length, more: taken.length === head.length && head.length === BATCH };
}

/** Serves the waiting lines of each SKU (one unit of work per batch of its queue, retried on conflict). */
export async function allocateSkus(ctx: Context, skus: Iterable<string>): Promise<number> {
  let total = 0;
  for (const sku of [...new Set(skus)].sort()) {
    for (;;) {
      const { reserved, more } = await runUnitOfWork(ctx, 'allocate', (uow) => allocateSku(uow, sku));
      total += reserved;
      if (!more) break;
    }
  }
  return total;
}

/** Repairs a missed trigger: SKUs where lines wait while stock is free get served. */
export async function allocateWhereStockIsFree(ctx: Context): Promise<number> {
  return allocateSkus(ctx, await skusWithFreeStockAndWaiting(ctx.db));
}
