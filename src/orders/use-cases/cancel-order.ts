import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { runUnitOfWork } from '../../platform/unit-of-work';
import type { Order } from '../orders.schemas';
import { assertCan, changeStatus } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';
import { releaseOrderStock } from './release-stock';

/** Cancel (also DELETE): stock given back; once committed, the waiting lines of its SKUs are served. */
export async function cancelOrder(ctx: Context, id: string, reason?: string, actor?: Actor): Promise<Order> {
  await runUnitOfWork(
    ctx,
    'cancel',
    async (uow) => {
      const o = await lockOrder(uow.trx, id);
      assertCan('cancel', o.status);
      uow.serveSkus(await releaseOrderStock(uow, [id], reason ?? 'cancelled'));
      await changeStatus(uow, [
        {
          orderId: id,
          action: 'cancel',
          from: o.status,
          to: 'cancelled',
          detail: reason ?? 'cancelled',
          reason: reason ?? 'cancelled',
        },
      ]);
    },
    { actor },
  );
  return getOrder(ctx.db, id);
}
