import { createHash } from 'node:crypto';
import { applyStockChanges, assertLocations, readStockForWrite } from '../../inventory';
import type { Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { AppError, ConflictError, ValidationError } from '../../platform/errors';
import { runUnitOfWork, type UnitOfWork } from '../../platform/unit-of-work';
import type { OrderStatus } from '../status';
import { allocationsOf, recordShipped } from '../sql/allocations';
import { linesOf, type OrderRow } from '../sql/order-rows';
import { addOrderEvent, findShipment, insertShipment, type ShipmentLine } from '../sql/shipments';
import { assertCan, changeStatus } from '../status';
import { lockOrder } from './lock-order';

export interface ShipInput {
  shipment_id?: string;
  location?: string;
  lines: ShipmentLine[];
  carrier?: string;
  tracking?: string;
}

export const requestHash = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

/**
 * Units leave one location in one shipment: each a `sale` there (on_hand and reserved fall), the
 * allocation's reserved units become shipped, the shipment is recorded with its event, and the
 * order's status follows its units (all shipped: completed; some waiting: still awaiting_stock;
 * else partially_shipped). The caller has locked the order and checked the units.
 */
export async function shipUnits(
  uow: UnitOfWork,
  o: OrderRow,
  location: string,
  lines: ShipmentLine[],
  meta: { shipment_id: string | null; carrier: string | null; tracking: string | null; hash: string },
  detail: string,
  opts: { settle?: boolean } = {},
): Promise<Record<string, unknown>> {
  const { trx } = uow;
  const stock = await readStockForWrite(
    uow,
    lines.map((l) => l.sku),
  );
  await applyStockChanges(
    uow,
    lines.map((l) => ({ row: stock.get(l.sku)!, levels: [{ location, on_hand: -l.quantity, reserved: -l.quantity }] })),
    lines.map((l) => ({
      sku: l.sku,
      location,
      type: 'sale' as const,
      quantity: -l.quantity,
      order_id: o.id,
      reason: detail,
    })),
    'sale',
  );
  await recordShipped(trx, o.id, location, lines);
  const shipment = await insertShipment(trx, { ...meta, order_id: o.id, location, lines }, meta.hash, uow.actor);
  if (opts.settle === false) return shipment;
  await settleShipped(uow, o, detail);
  await addOrderEvent(uow, o.id, 'shipment.created', 'shipment', shipment);
  return shipment;
}

/**
 * The order's status after what it has shipped (completed, awaiting_stock while a line waits,
 * else partially_shipped): one transition, from the status the order had before its shipments.
 * A caller shipping from several locations at once (fulfil) settles once, after the last, so no
 * state in between (partially_shipped between two locations' shipments) is recorded or announced.
 */
export async function settleShipped(uow: UnitOfWork, o: OrderRow, detail: string): Promise<void> {
  const all = await linesOf(uow.trx, [o.id]);
  const shipped = all.every((l) => Number(l.shipped) === l.quantity);
  const waits = all.some((l) => !l.reserved);
  const to: OrderStatus = shipped ? 'completed' : waits ? 'awaiting_stock' : 'partially_shipped';
  const action = o.status === 'awaiting_stock' ? 'shipWaiting' : 'ship';
  await changeStatus(uow, [{ orderId: o.id, action, from: o.status, to, detail }]);
  o.status = to;
}

/** The `shipment.created` event of each shipment, in the order given. */
export async function announceShipments(uow: UnitOfWork, orderId: string, shipments: Record<string, unknown>[]) {
  for (const s of shipments) await addOrderEvent(uow, orderId, 'shipment.created', 'shipment', s);
}

/**
 * POST /v1/orders/:id/shipments: ship reserved units from one location. Idempotent by
 * `shipment_id`: the same body again replays the first answer, another body is 422.
 */
export async function shipOrder(ctx: Context, id: string, input: ShipInput, actor?: Actor) {
  const hash = requestHash({
    order_id: id,
    ...input,
    lines: [...input.lines].sort((a, b) => (a.sku < b.sku ? -1 : 1)),
  });
  // A named location that does not exist is the caller's mistake (400), as for returns and
  // transfers, not a shortfall there (409).
  if (input.location !== undefined) await assertLocations(ctx.db, [{ code: input.location, path: 'body.location' }]);
  return runUnitOfWork(
    ctx,
    'ship',
    async (uow) => {
      const o = await lockOrder(uow.trx, id);
      if (input.shipment_id !== undefined) {
        const prior = await findShipment(uow.trx, input.shipment_id);
        if (prior) {
          if (prior.request_hash !== hash) {
            throw new AppError('idempotency_key_reused', 'this shipment_id was used with a different shipment', [
              { path: 'body.shipment_id', message: 'already used with a different body' },
            ]);
          }
          return { shipment: prior.j, replayed: true };
        }
      }
      if (o.status === 'awaiting_stock') assertCan('shipWaiting', o.status);
      else assertCan('ship', o.status);
      const allocations = (await allocationsOf(uow.trx, [id])).filter((a) => a.reserved > 0);
      let location = input.location;
      if (location === undefined) {
        const at = [...new Set(allocations.map((a) => a.location))];
        // Nothing reserved anywhere (a count took it back): nothing can ship, wherever it is named.
        if (at.length === 0) {
          throw new ConflictError('the order has no units reserved: nothing can ship until stock is reserved again', [
            { path: 'body.lines', message: 'no unit of this order is reserved at any location' },
          ]);
        }
        if (at.length !== 1) {
          throw new ValidationError('the order has reserved units at several locations: name the location', [
            { path: 'body.location', message: `required: reserved units are at ${at.join(', ')}` },
          ]);
        }
        location = at[0];
      }
      // A SKU the order does not have is the caller's mistake (400), not a shortfall (409).
      const onOrder = new Set((await linesOf(uow.trx, [id])).map((l) => l.sku));
      const strangers = input.lines.filter((l) => !onOrder.has(l.sku));
      if (strangers.length > 0) {
        throw new ValidationError(
          `${strangers[0].sku} is not a line of this order`,
          strangers.map((l) => ({
            path: `body.lines.${input.lines.indexOf(l)}.sku`,
            message: 'not a line of this order',
          })),
        );
      }
      const short = input.lines.filter(
        (l) => (allocations.find((a) => a.sku === l.sku && a.location === location)?.reserved ?? 0) < l.quantity,
      );
      if (short.length > 0) {
        throw new ConflictError(
          `not enough units reserved at ${location} and not yet shipped`,
          short.map((l) => ({
            path: `body.lines.${input.lines.indexOf(l)}.quantity`,
            message: `at most ${allocations.find((a) => a.sku === l.sku && a.location === location)?.reserved ?? 0} of ${l.sku} can ship from ${location}`,
          })),
        );
      }
      const shipment = await shipUnits(
        uow,
        o,
        location,
        input.lines,
        {
          shipment_id: input.shipment_id ?? null,
          carrier: input.carrier ?? null,
          tracking: input.tracking ?? null,
          hash,
        },
        `shipped from ${location}`,
      );
      return { shipment, replayed: false };
    },
    { actor },
  );
}
