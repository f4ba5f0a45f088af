import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { runUnitOfWork, type UnitOfWork } from '../../platform/unit-of-work';
import type { Order } from '../orders.schemas';
import { assertCan, changeStatus } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';
import { reprocessAfterCommit } from './reprocess';

/** failed → received and processed again, in the caller's unit; InvalidStateError (409) if not failed. */
export async function retryInUnit(uow: UnitOfWork, id: string, detail = 'retried by operator'): Promise<void> {
  const o = await lockOrder(uow.trx, id);
  assertCan('retry', o.status);
  await changeStatus(uow, [{ orderId: id, action: 'retry', from: o.status, to: 'received', detail }]);
  await reprocessAfterCommit(uow, id);
}

/** Operator retry: failed → received, processed again. */
export async function retryOrder(ctx: Context, id: string, actor?: Actor): Promise<Order> {
  await runUnitOfWork(ctx, 'retry', (uow) => retryInUnit(uow, id), { actor });
  return getOrder(ctx.db, id);
}

/**
 * A failed order's job retried in the board, as the run begins: failed → received, recorded for
 * the operator who asked (the board's retry names them in the job, see the board's routes). An
 * order that is no longer failed is left as it is (a retry by other means got there first).
 */
export async function retriedFromBoard(ctx: Context, id: string, actor: Actor): Promise<void> {
  await runUnitOfWork(
    ctx,
    'retry',
    async (uow) => {
      const o = await lockOrder(uow.trx, id);
      if (o.status !== 'failed') return;
      await changeStatus(uow, [
        { orderId: id, action: 'retry', from: o.status, to: 'received', detail: 'retried from the board' },
      ]);
    },
    { actor },
  );
}
