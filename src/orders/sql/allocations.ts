import { rawPrepared, type Executor, type Trx } from '../../platform/db';

/** Where a line's units are: reserved now (not shipped) and shipped, per location. */
export interface AllocationRow {
  order_id: string;
  sku: string;
  location: string;
  reserved: number;
  shipped: number;
}

export async function allocationsOf(db: Executor, orderIds: string[]): Promise<AllocationRow[]> {
  if (orderIds.length === 0) return [];
  return db('order_line_allocations')
    .whereIn('order_id', orderIds)
    .orderBy(['order_id', 'sku', 'location'])
    .select('order_id', 'sku', 'location', 'reserved', 'shipped');
}

/** Adds reserved units to (order, SKU, location) rows, creating them as needed. */
export async function addAllocations(
  trx: Trx,
  rows: readonly { order_id: string; sku: string; location: string; quantity: number }[],
): Promise<void> {
  for (let i = 0; i < rows.length; i += 2000) {
    const chunk = rows.slice(i, i + 2000);
    await rawPrepared(
      trx,
      `INSERT INTO order_line_allocations (order_id, sku, location, reserved)
       SELECT * FROM unnest(?::uuid[], ?::text[], ?::text[], ?::bigint[])
       ON CONFLICT (order_id, sku, location) DO UPDATE SET reserved = order_line_allocations.reserved + EXCLUDED.reserved`,
      [
        chunk.map((r) => r.order_id),
        chunk.map((r) => r.sku),
        chunk.map((r) => r.location),
        chunk.map((r) => r.quantity),
      ],
    );
  }
}

/** Gives up every unshipped reservation of the orders: rows with nothing shipped go, the others keep their shipped count. */
export async function dropReservations(trx: Trx, orderIds: string[]): Promise<void> {
  await trx('order_line_allocations').whereIn('order_id', orderIds).where('shipped', 0).delete();
  await trx('order_line_allocations').whereIn('order_id', orderIds).where('reserved', '>', 0).update({ reserved: 0 });
}

/** Units leave a location for a customer: reserved → shipped there, and on the line. */
export async function recordShipped(
  trx: Trx,
  orderId: string,
  location: string,
  lines: readonly { sku: string; quantity: number }[],
): Promise<void> {
  await trx.raw(
    `UPDATE order_line_allocations a SET reserved = a.reserved - v.q, shipped = a.shipped + v.q
       FROM unnest(?::text[], ?::bigint[]) AS v(sku, q)
      WHERE a.order_id = ? AND a.location = ? AND a.sku = v.sku`,
    [lines.map((l) => l.sku), lines.map((l) => l.quantity), orderId, location],
  );
  await trx.raw(
    `UPDATE order_lines l SET shipped = l.shipped + v.q FROM unnest(?::text[], ?::bigint[]) AS v(sku, q)
      WHERE l.order_id = ? AND l.sku = v.sku`,
    [lines.map((l) => l.sku), lines.map((l) => l.quantity), orderId],
  );
}

export async function recordReturned(trx: Trx, orderId: string, lines: readonly { sku: string; quantity: number }[]) {
  await trx.raw(
    `UPDATE order_lines l SET returned = l.returned + v.q FROM unnest(?::text[], ?::bigint[]) AS v(sku, q)
      WHERE l.order_id = ? AND l.sku = v.sku`,
    [lines.map((l) => l.sku), lines.map((l) => l.quantity), orderId],
  );
}
