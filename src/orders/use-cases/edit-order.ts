import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import type { Executor } from '../../platform/db';
import { InvalidStateError, ValidationError } from '../../platform/errors';
import { runUnitOfWork } from '../../platform/unit-of-work';
import type { Order, PatchOrder } from '../orders.schemas';
import { linesOf, replaceLines, resetForReprocessing } from '../sql/order-rows';
import { assertCan, changeStatus } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';
import { releaseOrderStock } from './release-stock';
import { reprocessAfterCommit } from './reprocess';

/**
 * Change 14: an edit naming an unknown or inactive SKU is refused at once (400 naming the line),
 * before anything is released, rather than accepted and then rejected by the worker (which would
 * hand the order's reserved units to the next in line).
 */
async function assertSkusOrderable(trx: Executor, lines: PatchOrder['lines']): Promise<void> {
  if (!lines) return;
  const rows: { sku: string; active: boolean }[] = await trx('products')
    .whereIn(
      'sku',
      lines.map((l) => l.sku),
    )
    .select('sku', 'active');
  const active = new Map(rows.map((r) => [r.sku, r.active]));
  const details = lines.flatMap((l, i) =>
    active.get(l.sku)
      ? []
      : [
          {
            path: `body.lines.${i}.sku`,
            message: active.has(l.sku) ? `SKU ${l.sku} is not active` : `unknown SKU ${l.sku}`,
          },
        ],
  );
  if (details.length)
    throw new ValidationError(`invalid body: ${details[0].path}: ${details[0].message}`, details.slice(0, 50));
}

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
      await assertSkusOrderable(uow.trx, input.lines);
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
