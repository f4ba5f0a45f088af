import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { waitFor, type Harness } from './harness';

/** Helpers for the locations tests (issue 16): locations, stock per location, orders read as a client would. */

const rand = () => randomBytes(4).toString('hex');

/** A location of its own (code unique per call), created through the API. */
export async function makeLocation(h: Harness, priority: number, over: Record<string, unknown> = {}): Promise<string> {
  const code = `L${priority}-${rand()}`;
  const res = await h.api('POST', '/v1/locations', { body: { code, name: `Loc ${code}`, priority, ...over } });
  if (res.status !== 201) throw new Error(`location: ${res.status} ${res.text}`);
  return code;
}

/** A product with initial stock per location (every other location it is 0 at). */
export async function makeProductAt(h: Harness, byLocation: Record<string, number>, price = 500): Promise<string> {
  const sku = `LS-${rand()}`;
  const res = await h.api('POST', '/v1/products', {
    body: { sku, name: 'Located widget', price_cents: price, initial_stock_by_location: byLocation },
  });
  if (res.status !== 201) throw new Error(`product: ${res.status} ${res.text}`);
  return sku;
}

export async function makeCustomerId(h: Harness): Promise<string> {
  const res = await h.api('POST', '/v1/customers', {
    body: { email: `loc-${rand()}@example.test`, name: 'Loc Buyer' },
  });
  if (res.status !== 201) throw new Error(`customer: ${res.status} ${res.text}`);
  return res.body.id;
}

export async function getOrder(h: Harness, id: string) {
  const r = await h.api('GET', `/v1/orders/${id}`);
  if (r.status !== 200) throw new Error(`get order: ${r.status} ${r.text}`);
  return r.body;
}

/** Places an order through the API and waits (workers running) until it reaches `status`; returns it as GET shows it. */
export async function orderReaching(
  h: Harness,
  customerId: string,
  lines: { sku: string; quantity: number }[],
  status: string,
  extra: Record<string, unknown> = {},
) {
  const res = await h.api('POST', '/v1/orders', { role: 'intake', body: { customer_id: customerId, lines, ...extra } });
  if (res.status !== 202) throw new Error(`order: ${res.status} ${res.text}`);
  return untilOrder(h, res.body.id, status);
}

export async function untilOrder(h: Harness, id: string, status: string, timeout = 30_000) {
  let last = '';
  return waitFor(
    async () => {
      const o = await getOrder(h, id);
      last = o.status;
      return o.status === status && o;
    },
    { timeout, what: `order ${id} ${status} (last seen ${last})` },
  );
}

/** Where a line's units are, as GET /v1/orders/:id shows them: location → reserved/shipped (zero rows left out). */
export function allocationsOf(order: any, sku: string): Record<string, { reserved: number; shipped: number }> {
  const line = order.lines.find((l: any) => l.sku === sku);
  if (!line) throw new Error(`no line ${sku}`);
  return Object.fromEntries(
    line.allocations
      .filter((a: any) => a.reserved || a.shipped)
      .map((a: any) => [a.location, { reserved: a.reserved, shipped: a.shipped }]),
  );
}

/** One (SKU, location) row straight from the database. */
export async function level(db: Knex, sku: string, location: string) {
  const r = await db('stock_levels').where({ sku, location }).first('on_hand', 'reserved');
  return r ? { on_hand: Number(r.on_hand), reserved: Number(r.reserved) } : { on_hand: 0, reserved: 0 };
}

export async function totals(db: Knex, sku: string) {
  const r = await db('stock').where({ sku }).first('on_hand', 'reserved', 'backordered');
  return { on_hand: Number(r.on_hand), reserved: Number(r.reserved), backordered: Number(r.backordered) };
}

/** The ledger of one order (or SKU): movements as {type, location, quantity, sku}, in id order. */
export async function movements(db: Knex, where: { order_id?: string; sku?: string }) {
  const rows = await db('stock_movements').where(where).orderBy('id').select('type', 'location', 'quantity', 'sku');
  return rows.map((r: any) => ({ type: r.type, location: r.location, quantity: Number(r.quantity), sku: r.sku }));
}

/**
 * The per-(SKU, location) ledger equation of change 6 and the totals row = Σ levels, as SQL over
 * the given SKUs: each row returned is a break (empty = holds).
 */
export async function ledgerBreaks(db: Knex, skus: string[]) {
  const { rows: perLevel } = await db.raw(
    `SELECT s.sku, s.location, s.on_hand, s.reserved, COALESCE(m.total, 0) AS ledger
       FROM stock_levels s
       LEFT JOIN (SELECT sku, location, SUM(quantity) AS total FROM stock_movements
                   WHERE type IN ('initial','receipt','sale','return','adjustment','count','transfer_in','transfer_out')
                   GROUP BY sku, location) m ON m.sku = s.sku AND m.location = s.location
      WHERE s.sku = ANY(?) AND (s.on_hand <> COALESCE(m.total, 0) OR s.reserved > s.on_hand OR s.reserved < 0)`,
    [skus],
  );
  const { rows: perSku } = await db.raw(
    `SELECT t.sku, t.on_hand, t.reserved, l.on_hand AS levels_on_hand, l.reserved AS levels_reserved
       FROM stock t JOIN (SELECT sku, SUM(on_hand) AS on_hand, SUM(reserved) AS reserved FROM stock_levels GROUP BY sku) l
         ON l.sku = t.sku
      WHERE t.sku = ANY(?) AND (t.on_hand <> l.on_hand OR t.reserved <> l.reserved)`,
    [skus],
  );
  return { perLevel, perSku };
}
