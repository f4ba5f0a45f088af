import type { Context } from '../../platform/context';
import { runUnitOfWork } from '../../platform/unit-of-work';
import { lockExpiredBackorders } from '../sql/order-rows';
import { changeStatus } from '../status';
import { releaseOrderStock } from './release-stock';

/** Backorders waiting longer than BACKORDER_TTL_SECONDS are cancelled (`backorder_expired`), releasing what they held. */
export async function expireBackorders(ctx: Context, limit = 200): Promise<number> {
  let expired = 0;
  for (;;) {
    const n = await runUnitOfWork(ctx, 'expire', async (uow) => {
      const ids = await lockExpiredBackorders(uow.trx, ctx.config.BACKORDER_TTL_SECONDS, limit);
      if (ids.length === 0) return 0;
      uow.serveSkus(await releaseOrderStock(uow, ids, 'backorder_expired'));
      await changeStatus(
        uow,
        ids.map((id) => ({
          orderId: id,
          action: 'expire' as const,
          from: 'awaiting_stock' as const,
          to: 'cancelled' as const,
          detail: 'backorder_expired',
          reason: 'backorder_expired',
        })),
      );
      return ids.length;
    });
    expired += n;
    if (n < limit) return expired;
  }
}
