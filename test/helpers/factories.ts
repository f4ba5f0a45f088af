import { randomBytes } from 'node:crypto';
import { waitFor, type Harness } from './harness';

const rand = () => randomBytes(5).toString('hex');

export async function makeCustomer(h: Harness, over: Record<string, unknown> = {}) {
  const res = await h.api('POST', '/v1/customers', {
    role: 'operator',
    body: { email: `c-${rand()}@example.test`, name: 'Ada Customer', ...over },
  });
  if (res.status !== 201) throw new Error(`customer: ${res.status} ${res.text}`);
  return res.body as { id: string; email: string; webhook_url: string | null };
}

export async function makeProduct(h: Harness, stock = 0, over: Record<string, unknown> = {}) {
  const res = await h.api('POST', '/v1/products', {
    role: 'operator',
    body: { sku: `SKU-${rand()}`, name: 'Widget', price_cents: 1250, initial_stock: stock, ...over },
  });
  if (res.status !== 201) throw new Error(`product: ${res.status} ${res.text}`);
  return res.body as {
    sku: string;
    price_cents: number;
    stock: { on_hand: number; reserved: number; available: number; backordered: number; version: number };
  };
}

export async function placeOrder(
  h: Harness,
  customerId: string,
  lines: { sku: string; quantity: number }[],
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
) {
  const res = await h.api('POST', '/v1/orders', {
    role: 'intake',
    body: { customer_id: customerId, lines, ...extra },
    headers,
  });
  if (res.status !== 202) throw new Error(`order: ${res.status} ${res.text}`);
  return res.body as { id: string; seq: number; status: string };
}

/** Waits until the order, read through GET /v1/orders/:id as a client would, has `status`; returns it. */
export async function untilStatus(
  h: Harness,
  id: string,
  status: string,
  opts: { timeout?: number; what?: string } = {},
) {
  return waitFor(
    async () => {
      const r = await h.api('GET', `/v1/orders/${id}`, { role: 'intake' });
      return r.body.status === status && r.body;
    },
    { timeout: opts.timeout, what: opts.what ?? `order ${id} ${status}` },
  );
}

export async function stockOf(h: Harness, sku: string) {
  return h.ctx.db('stock').where({ sku }).first();
}

/** on_hand per the ledger: initial + receipts − sales + adjustments (sales are stored negative). */
export async function ledgerOnHand(h: Harness, sku: string): Promise<number> {
  const r = await h.ctx
    .db('stock_movements')
    .where({ sku })
    .whereIn('type', ['initial', 'receipt', 'sale', 'adjustment'])
    .sum({ s: 'quantity' })
    .first();
  return Number(r?.s ?? 0);
}

export async function statusCounts(h: Harness, ids: string[]): Promise<Record<string, number>> {
  const rows = await h.ctx.db('orders').whereIn('id', ids).groupBy('status').select('status').count({ n: '*' });
  return Object.fromEntries(rows.map((r: any) => [r.status, Number(r.n)]));
}
