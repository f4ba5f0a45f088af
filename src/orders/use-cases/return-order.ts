import { applyStockChanges, assertLocations, readStockForWrite, type Movement } from '../../inventory';
import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { AppError, ConflictError, ValidationError } from '../../platform/errors';
import { runUnitOfWork } from '../../platform/unit-of-work';
import { allocationsOf, recordReturned } from '../sql/allocations';
import { linesOf } from '../sql/order-rows';
import { addOrderEvent, findReturn, insertReturn, type ReturnLine } from '../sql/shipments';
import { lockOrder } from './lock-order';
import { requestHash } from './ship-order';

export interface ReturnInput {
  return_id?: string;
  lines: { sku: string; quantity: number; disposition: 'restock' | 'damaged'; location?: string }[];
  reason?: string;
}

/**
 * POST /v1/orders/:id/returns: shipped units come back, whatever the order's status (which does
 * not change). `restock` units are a `return` movement at their location (by default where the
 * line shipped from) and serve that SKU's queue once committed; `damaged` units move no stock.
 * Idempotent by `return_id` like shipments.
 */
export async function returnOrder(ctx: Context, id: string, input: ReturnInput, actor?: Actor) {
  const hash = requestHash({
    order_id: id,
    ...input,
    lines: [...input.lines].sort((a, b) => (a.sku < b.sku ? -1 : 1)),
  });
  // A named location that does not exist is the caller's mistake (400), not a failed insert.
  await assertLocations(
    ctx.db,
    input.lines.flatMap((l, i) =>
      l.location === undefined ? [] : [{ code: l.location, path: `body.lines.${i}.location` }],
    ),
  );
  return runUnitOfWork(
    ctx,
    'return',
    async (uow) => {
      const { trx } = uow;
      await lockOrder(trx, id);
      if (input.return_id !== undefined) {
        const prior = await findReturn(trx, input.return_id);
        if (prior) {
          if (prior.request_hash !== hash)
            throw new AppError('idempotency_key_reused', 'this return_id was used with a different return', [
              { path: 'body.return_id', message: 'already used with a different body' },
            ]);
          return { ret: prior.j, replayed: true };
        }
      }
      const lines = await linesOf(trx, [id]);
      const shippedFrom = await allocationsOf(trx, [id]);
      const seen = new Set<string>();
      const resolved: ReturnLine[] = input.lines.map((l, i) => {
        if (seen.has(l.sku))
          throw new ValidationError(`SKU ${l.sku} appears twice`, [
            { path: `body.lines.${i}.sku`, message: 'duplicate SKU' },
          ]);
        seen.add(l.sku);
        const line = lines.find((x) => x.sku === l.sku);
        if (!line)
          throw new ValidationError(`${l.sku} is not a line of this order`, [
            { path: `body.lines.${i}.sku`, message: 'not a line of this order' },
          ]);
        const left = Number(line.shipped) - Number(line.returned);
        if (l.quantity > left) {
          throw new ConflictError(`only ${left} unit(s) of ${l.sku} were shipped and not yet returned`, [
            { path: `body.lines.${i}.quantity`, message: `at most ${left}` },
          ]);
        }
        const from = shippedFrom
          .filter((a) => a.sku === l.sku && a.shipped > 0)
          .sort((a, b) => b.shipped - a.shipped || (a.location < b.location ? -1 : 1))[0]?.location;
        return {
          sku: l.sku,
          quantity: l.quantity,
          disposition: l.disposition,
          location: l.disposition === 'restock' ? (l.location ?? from ?? 'main') : (l.location ?? null),
        };
      });
      const restock = resolved.filter((l) => l.disposition === 'restock');
      if (restock.length > 0) {
        const stock = await readStockForWrite(
          uow,
          restock.map((l) => l.sku),
        );
        const movements: Movement[] = restock.map((l) => ({
          sku: l.sku,
          location: l.location!,
          type: 'return',
          quantity: l.quantity,
          order_id: id,
          reason: input.reason ?? 'returned',
        }));
        await applyStockChanges(
          uow,
          restock.map((l) => ({ row: stock.get(l.sku)!, levels: [{ location: l.location!, on_hand: l.quantity }] })),
          movements,
          'return',
        );
        uow.serveSkus(restock.map((l) => l.sku));
      }
      await recordReturned(trx, id, resolved);
      const ret = await insertReturn(
        trx,
        { return_id: input.return_id ?? null, order_id: id, lines: resolved, reason: input.reason ?? null },
        hash,
        uow.actor,
      );
      await addOrderEvent(uow, id, 'return.created', 'return', ret);
      return { ret, replayed: false };
    },
    { actor },
  );
}
