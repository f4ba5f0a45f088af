import { randomBytes } from 'node:crypto';
import { createHarness, waitFor, type Harness } from './harness';

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

/**
 * `n` orders on one new SKU that fail processing (an outage stand-in: a trigger refuses their
 * reservations while a second harness's workers, with one attempt each, run them). `extra(i)` adds
 * fields to order i (an external_ref, say). The trigger is gone when this returns.
 */
export async function failedOrders(
  h: Harness,
  n: number,
  stock: number,
  extra: (i: number) => Record<string, unknown> = () => ({}),
) {
  const c = await makeCustomer(h);
  const p = await makeProduct(h, stock);
  await h.ctx.db.raw(`CREATE OR REPLACE FUNCTION refuse_reservations() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'simulated outage'; END $$`);
  await h.ctx.db.raw(`CREATE TRIGGER refuse_reservations BEFORE INSERT ON stock_movements
    FOR EACH ROW WHEN (NEW.type = 'reservation') EXECUTE FUNCTION refuse_reservations()`);
  const hh = await createHarness(h.env.DATABASE_URL, { env: { ...h.env, ORDER_ATTEMPTS: '1' } });
  try {
    await hh.startWorkers(['orders']);
    const ids: string[] = [];
    for (let i = 0; i < n; i += 50)
      ids.push(
        ...(
          await Promise.all(
            Array.from({ length: Math.min(50, n - i) }, (_, j) =>
              placeOrder(hh, c.id, [{ sku: p.sku, quantity: 1 }], extra(i + j)),
            ),
          )
        ).map((o) => o.id),
      );
    await waitFor(
      async () =>
        Number(
          (await h.ctx.db('orders').whereIn('id', ids).where({ status: 'failed' }).count({ n: '*' }).first())?.n,
        ) >= n,
      { what: `${n} failed orders`, timeout: 120_000 },
    );
    return { ids, sku: p.sku, customer: c.id };
  } finally {
    await h.ctx.db.raw('DROP TRIGGER IF EXISTS refuse_reservations ON stock_movements');
    await hh.close();
  }
}
