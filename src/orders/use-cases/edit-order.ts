import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { InvalidStateError } from '../../platform/errors';
import { runUnitOfWork } from '../../platform/unit-of-work';
import type { Order, PatchOrder } from '../orders.schemas';
import { linesOf, replaceLines, resetForReprocessing } from '../sql/order-rows';
import { assertCan, changeStatus } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';
import { releaseOrderStock } from './release-stock';
import { reprocessAfterCommit } from './reprocess';

/**
 * Edit: in one transaction every reservation and wait is released and the order goes back to
 * `received` with its new lines, keeping its seq; then it is processed again.
 */
export async function patchOrder(ctx: Context, id: string, input: PatchOrder, actor?: Actor): Promise<Order> {
  await runUnitOfWork(
    ctx,
    'edit',
    async (uow) => {
      const o = await lockOrder(uow.trx, id);
      assertCan('edit', o.status);
      if ((await linesOf(uow.trx, [id])).some((l) => Number(l.shipped) > 0)) {
        throw new InvalidStateError('cannot edit an order with shipped units');
      }
      uow.serveSkus(await releaseOrderStock(uow, [id], 'order edited'));
      await replaceLines(uow.trx, id, o.seq, input.lines);
      await resetForReprocessing(uow.trx, id, input.on_insufficient_stock);
      await changeStatus(uow, [{ orderId: id, action: 'edit', from: o.status, to: 'received', detail: 'edited' }]);
      await reprocessAfterCommit(uow, id);
    },
    { actor },
  );
  return getOrder(ctx.db, id);
}
