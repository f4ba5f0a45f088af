import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { runUnitOfWork, type UnitOfWork } from '../../platform/unit-of-work';
import type { Order } from '../orders.schemas';
import { assertCan, changeStatus } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';
import { releaseOrderStock } from './release-stock';
import { reprocessAfterCommit } from './reprocess';

/** Cancels in the caller's unit: stock given back, its SKUs served after commit; 409 if it cannot be cancelled. */
export async function cancelInUnit(uow: UnitOfWork, id: string, reason?: string): Promise<void> {
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
  // A failed order's job stays failed in BullMQ, where a failed job means something to look at
  // (change 16): once cancelled it is replaced by a run that finds the order final and completes.
  if (o.status === 'failed') await reprocessAfterCommit(uow, id);
}

/** Cancel (also DELETE): stock given back; once committed, the waiting lines of its SKUs are served. */
export async function cancelOrder(ctx: Context, id: string, reason?: string, actor?: Actor): Promise<Order> {
  await runUnitOfWork(ctx, 'cancel', (uow) => cancelInUnit(uow, id, reason), { actor });
  return getOrder(ctx.db, id);
}
