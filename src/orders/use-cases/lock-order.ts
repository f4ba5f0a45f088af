import type { Trx } from '../../platform/db';
import { NotFoundError } from '../../platform/errors';
import { lockOrders, type OrderRow } from '../sql/order-rows';

/** The order's row, locked; 404 if there is none. */
export async function lockOrder(trx: Trx, id: string): Promise<OrderRow> {
  const [o] = await lockOrders(trx, [id]);
  if (!o) throw new NotFoundError('order');
  return o;
}
