import { applyStockChanges, readStockForWrite, type Movement, type StockChange } from '../../inventory';
import type { UnitOfWork } from '../../platform/unit-of-work';
import { allocationsOf, dropReservations } from '../sql/allocations';
import { clearLines, linesOf } from '../sql/order-rows';
import { queueLeft } from '../sql/queue';

/**
 * Gives back everything the orders hold and have not shipped: reserved units are released where
 * they are (`release` movements per location), waiting lines leave their SKU's queue
 * (`backordered` falls); shipped units stay sold. Returns the SKUs whose queues must be served:
 * every SKU of the orders' lines, for an edited order still in `received` holds nothing yet but its
 * demand is held ahead of the lines behind it (see `reprocessingAhead`), which it no longer is.
 */
export async function releaseOrderStock(uow: UnitOfWork, orderIds: string[], reason: string): Promise<string[]> {
  const { trx } = uow;
  const all = await linesOf(trx, orderIds);
  const skus = [...new Set(all.map((l) => l.sku))];
  const waiting = all.filter((l) => l.waiting && !l.reserved);
  const held = (await allocationsOf(trx, orderIds)).filter((a) => a.reserved > 0);
  if (waiting.length === 0 && held.length === 0) return skus;
  const stock = await readStockForWrite(uow, [...new Set([...waiting.map((l) => l.sku), ...held.map((a) => a.sku)])]);
  const changes = new Map<string, StockChange & { levels: NonNullable<StockChange['levels']>; backordered: number }>();
  const changeOf = (sku: string) => {
    let c = changes.get(sku);
    if (!c) changes.set(sku, (c = { row: stock.get(sku)!, levels: [], backordered: 0 }));
    return c;
  };
  const movements: Movement[] = [];
  for (const a of held) {
    if (!stock.get(a.sku)) continue;
    changeOf(a.sku).levels.push({ location: a.location, reserved: -a.reserved });
    movements.push({
      sku: a.sku,
      location: a.location,
      type: 'release',
      quantity: -a.reserved,
      order_id: a.order_id,
      reason,
    });
  }
  for (const l of waiting) if (stock.get(l.sku)) changeOf(l.sku).backordered -= l.quantity - Number(l.shipped);
  await applyStockChanges(uow, [...changes.values()], movements, 'release');
  await dropReservations(trx, orderIds);
  await clearLines(trx, orderIds);
  // The lines behind the ones that left move up.
  await queueLeft(trx, waiting);
  return skus;
}
