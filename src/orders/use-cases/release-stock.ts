import type { Trx } from '../../platform/db';
import { applyStockChanges, readStockRows, type Movement, type StockChange } from '../../inventory';
import { clearLines, linesOf } from '../sql/order-rows';

/**
 * Gives back everything the orders hold: reserved lines are released (`release` movements), waiting
 * lines leave their SKU's queue (`backordered` falls). Returns the SKUs whose queues must be served:
 * every SKU of the orders' lines, for an edited order still in `received` holds nothing yet but its
 * demand is held ahead of the lines behind it (see `reprocessingAhead`), which it no longer is.
 */
export async function releaseOrderStock(trx: Trx, orderIds: string[], reason: string): Promise<string[]> {
  const all = await linesOf(trx, orderIds);
  const skus = [...new Set(all.map((l) => l.sku))];
  const lines = all.filter((l) => l.reserved || l.waiting);
  if (lines.length === 0) return skus;
  const stock = await readStockRows(trx, [...new Set(lines.map((l) => l.sku))]);
  const changes = new Map<string, StockChange>();
  const movements: Movement[] = [];
  for (const l of lines) {
    const row = stock.get(l.sku);
    if (!row) continue;
    const c = changes.get(l.sku) ?? { row, reserved: 0, backordered: 0 };
    if (l.reserved) {
      c.reserved! -= l.quantity;
      movements.push({ sku: l.sku, type: 'release', quantity: -l.quantity, order_id: l.order_id, reason });
    } else {
      c.backordered! -= l.quantity;
    }
    changes.set(l.sku, c);
  }
  await applyStockChanges(trx, [...changes.values()], movements, 'release');
  await clearLines(trx, orderIds);
  return skus;
}
