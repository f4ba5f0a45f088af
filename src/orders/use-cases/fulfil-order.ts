import { applyStockChanges, readStockRows } from '../../inventory';
import type { Context } from '../../platform/context';
import { runUnitOfWork } from '../../platform/unit-of-work';
import type { Order } from '../orders.schemas';
import { linesOf } from '../sql/order-rows';
import { assertCan, changeStatus } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';

/** confirmed → completed: each line becomes a `sale` (on_hand and reserved both fall). */
export async function fulfillOrder(ctx: Context, id: string): Promise<Order> {
  await runUnitOfWork(ctx, 'sale', async (uow) => {
    const o = await lockOrder(uow.trx, id);
    assertCan('fulfil', o.status);
    const lines = await linesOf(uow.trx, [id]);
    const stock = await readStockRows(
      uow.trx,
      lines.map((l) => l.sku),
    );
    await applyStockChanges(
      uow.trx,
      lines.map((l) => ({ row: stock.get(l.sku)!, on_hand: -l.quantity, reserved: -l.quantity })),
      lines.map((l) => ({
        sku: l.sku,
        type: 'sale' as const,
        quantity: -l.quantity,
        order_id: id,
        reason: 'fulfilled',
      })),
      'sale',
    );
    await changeStatus(uow, [{ orderId: id, action: 'fulfil', from: o.status, to: 'completed', detail: 'fulfilled' }]);
  });
  return getOrder(ctx.db, id);
}
