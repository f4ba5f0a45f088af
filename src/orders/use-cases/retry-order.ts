import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { runUnitOfWork } from '../../platform/unit-of-work';
import type { Order } from '../orders.schemas';
import { assertCan, changeStatus } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';
import { reprocessAfterCommit } from './reprocess';

/** Operator retry: failed → received, processed again. */
export async function retryOrder(ctx: Context, id: string, actor?: Actor): Promise<Order> {
  await runUnitOfWork(
    ctx,
    'retry',
    async (uow) => {
      const o = await lockOrder(uow.trx, id);
      assertCan('retry', o.status);
      await changeStatus(uow, [
        { orderId: id, action: 'retry', from: o.status, to: 'received', detail: 'retried by operator' },
      ]);
      await reprocessAfterCommit(uow, id);
    },
    { actor },
  );
  return getOrder(ctx.db, id);
}
