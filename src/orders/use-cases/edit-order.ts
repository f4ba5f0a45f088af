import type { Context } from '../../platform/context';
import { runUnitOfWork } from '../../platform/unit-of-work';
import type { Order, PatchOrder } from '../orders.schemas';
import { replaceLines, resetForReprocessing } from '../sql/order-rows';
import { assertCan, changeStatus } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';
import { releaseOrderStock } from './release-stock';
import { reprocessAfterCommit } from './reprocess';

/**
 * Edit: in one transaction every reservation and wait is released and the order goes back to
 * `received` with its new lines, keeping its seq; then it is processed again.
 */
export async function patchOrder(ctx: Context, id: string, input: PatchOrder): Promise<Order> {
  await runUnitOfWork(ctx, 'edit', async (uow) => {
    const o = await lockOrder(uow.trx, id);
    assertCan('edit', o.status);
    uow.serveSkus(await releaseOrderStock(uow.trx, [id], 'order edited'));
    await replaceLines(uow.trx, id, o.seq, input.lines);
    await resetForReprocessing(uow.trx, id, input.on_insufficient_stock);
    await changeStatus(uow, [{ orderId: id, action: 'edit', from: o.status, to: 'received', detail: 'edited' }]);
    await reprocessAfterCommit(uow, id);
  });
  return getOrder(ctx.db, id);
}
