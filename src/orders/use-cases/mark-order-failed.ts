import type { Context } from '../../platform/context';
import { runUnitOfWork } from '../../platform/unit-of-work';
import { linesOf, lockOrders, setAttempts } from '../sql/order-rows';
import { changeStatus } from '../status';

/** After the last attempt: received → failed with its reason (if the database lets us say so). */
export async function markOrderFailed(ctx: Context, id: string, reason: string, attempts: number): Promise<boolean> {
  return runUnitOfWork(ctx, 'fail', async (uow) => {
    const [o] = await lockOrders(uow.trx, [id]);
    if (!o || o.status !== 'received') return false;
    await setAttempts(uow.trx, id, attempts);
    // While received it held back the lines behind it; failed, it no longer does.
    uow.serveSkus((await linesOf(uow.trx, [id])).map((l) => l.sku));
    await changeStatus(uow, [{ orderId: id, action: 'fail', from: 'received', to: 'failed', detail: reason, reason }]);
    return true;
  });
}
