import { readStockRows } from '../../inventory';
import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { runUnitOfWork } from '../../platform/unit-of-work';
import type { Order } from '../orders.schemas';
import { allocationsOf } from '../sql/allocations';
import { assertCan } from '../status';
import { getOrder } from './find-orders';
import { lockOrder } from './lock-order';
import { announceShipments, requestHash, settleShipped, shipUnits } from './ship-order';

/** Fulfil = ship the rest: every reserved unit of a confirmed or partially shipped order, one shipment per location. */
export async function fulfillOrder(ctx: Context, id: string, actor?: Actor): Promise<Order> {
  await runUnitOfWork(
    ctx,
    'sale',
    async (uow) => {
      const o = await lockOrder(uow.trx, id);
      assertCan('fulfil', o.status);
      const held = (await allocationsOf(uow.trx, [id])).filter((a) => a.reserved > 0);
      // One shipment per location means one stock statement per location: the rows are locked in
      // SKU order first (as a retried reservation batch takes them), or two such units could deadlock.
      await readStockRows(
        uow.trx,
        held.map((a) => a.sku),
        { lock: true },
      );
      const shipments: Record<string, unknown>[] = [];
      for (const location of [...new Set(held.map((a) => a.location))].sort()) {
        const lines = held
          .filter((a) => a.location === location)
          .map((a) => ({ sku: a.sku, quantity: Number(a.reserved) }));
        shipments.push(
          await shipUnits(
            uow,
            o,
            location,
            lines,
            { shipment_id: null, carrier: null, tracking: null, hash: requestHash({ fulfil: id, location, lines }) },
            'fulfilled',
            { settle: false },
          ),
        );
      }
      // One transition for the whole fulfilment (confirmed → completed), then its shipments, as a
      // single shipment announces itself after the status it brought.
      await settleShipped(uow, o, 'fulfilled');
      await announceShipments(uow, id, shipments);
    },
    { actor },
  );
  return getOrder(ctx.db, id);
}
