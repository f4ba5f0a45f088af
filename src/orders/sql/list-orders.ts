import type { Db } from '../../platform/db';
import type { ListOrdersQuery, Order } from '../orders.schemas';
import { ORDER_JSON } from './order-json';

/** One page, newest first, before `beforeSeq` (keyset on seq); one row more than asked tells if there is more. */
export async function selectOrderPage(
  db: Db,
  q: ListOrdersQuery,
  beforeSeq: number | undefined,
): Promise<{ j: Order; seq: number }[]> {
  const query = db('orders as o')
    .select(db.raw(`${ORDER_JSON} AS j`), 'o.seq')
    .orderBy('o.seq', 'desc')
    .limit(q.limit + 1);
  if (beforeSeq !== undefined) query.where('o.seq', '<', beforeSeq);
  if (q.status) query.where('o.status', q.status);
  if (q.customer_id) query.where('o.customer_id', q.customer_id);
  if (q.sku)
    query.whereExists(db('order_lines as l').select(db.raw('1')).whereRaw('l.order_id = o.id').where('l.sku', q.sku));
  return query;
}
