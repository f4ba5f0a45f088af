import { z } from 'zod';
import type { Db, Executor } from '../../platform/db';
import { NotFoundError } from '../../platform/errors';
import { listCursor } from '../../platform/validation';
import type { ListOrdersQuery, Order } from '../orders.schemas';
import { selectOrderPage } from '../sql/list-orders';
import { findOrders } from '../sql/order-json';

export async function getOrder(db: Executor, id: string): Promise<Order> {
  const [order] = await findOrders(db, [id]);
  if (!order) throw new NotFoundError('order');
  return order;
}

const orderCursor = listCursor('orders', z.number().int().positive());

/** Newest first, keyset-paginated on seq. */
export async function listOrders(db: Db, q: ListOrdersQuery): Promise<{ data: Order[]; next_cursor: string | null }> {
  const rows = await selectOrderPage(db, q, orderCursor.decode(q.cursor));
  const page = rows.slice(0, q.limit);
  return {
    data: page.map((r) => r.j),
    next_cursor: rows.length > q.limit ? orderCursor.encode(page[page.length - 1].seq) : null,
  };
}
