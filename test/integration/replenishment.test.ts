import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { useHarness, waitFor, type Harness } from '../helpers/harness';

const h = useHarness();

async function sell(hh: Harness, customerId: string, sku: string, quantity: number) {
  const o = await placeOrder(hh, customerId, [{ sku, quantity }]);
  await untilStatus(hh, o.id, 'confirmed');
  const r = await hh.api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
  if (r.status !== 200) throw new Error(`fulfil: ${r.status} ${r.text}`);
  return o;
}

describe('replenishment report', () => {
  it('when three SKUs (never sold, backordered, with inbound stock) are reported, then every figure is as computed by hand, in JSON and CSV', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const never = await makeProduct(h(), 5);
    const short = await makeProduct(h(), 10);
    const coming = await makeProduct(h(), 20);
    const east = `E-${coming.sku.slice(4)}`;
    expect((await h().api('POST', '/v1/locations', { body: { code: east, name: 'East' } })).status).toBe(201);

    // short: 7 sold in the window, 3 sold 40 days ago (outside it), then 4 wait.
    await sell(h(), c.id, short.sku, 7);
    const old = await sell(h(), c.id, short.sku, 3);
    await h()
      .ctx.db('stock_movements')
      .where({ order_id: old.id, type: 'sale' })
      .update({ created_at: h().ctx.db.raw(`now() - interval '40 days'`) });
    const waiting = await placeOrder(h(), c.id, [{ sku: short.sku, quantity: 4 }]);
    await untilStatus(h(), waiting.id, 'awaiting_stock');
    // coming: 14 sold; 40 expected at main of which 10 arrived; 5 expected at east; 9 cancelled.
    await sell(h(), c.id, coming.sku, 14);
    const inbound = (body: Record<string, unknown>) =>
      h().api('POST', '/v1/inbound', {
        role: 'feed',
        body: { sku: coming.sku, expected_at: '2030-01-01T00:00:00Z', ...body },
      });
    expect((await inbound({ inbound_id: `m-${coming.sku}`, quantity: 40 })).status).toBe(201);
    expect((await inbound({ inbound_id: `e-${coming.sku}`, quantity: 5, location: east })).status).toBe(201);
    expect((await inbound({ inbound_id: `x-${coming.sku}`, quantity: 9 })).status).toBe(201);
    await h().api('PATCH', `/v1/inbound/x-${coming.sku}`, { body: { status: 'cancelled' } });
    await h().api('POST', '/v1/restocks', {
      role: 'feed',
      body: { event_id: `in-${coming.sku}`, sku: coming.sku, quantity: 10, inbound_id: `m-${coming.sku}` },
    });
    await waitFor(async () => (await h().api('GET', `/v1/inbound/m-${coming.sku}`)).body.received === 10, {
      what: 'received',
    });

    const ours = (data: any[]) => data.filter((r) => [never.sku, short.sku, coming.sku].includes(r.sku));
    const report = await h().api('GET', '/v1/reports/replenishment?days=28&cover_days=14', { role: 'viewer' });
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({ days: 28, cover_days: 14, location: null });
    // short: 7/28 = 0.25 a day; available 0 (lines wait); cover 0 ÷ 0.25 = 0; ⌈0.25 × 14 + 4 − 0 − 0⌉ = 8.
    // coming: 14/28 = 0.5; available 6 + 10 = 16; on the way 30 + 5 (the cancelled 9 not); (16 + 35) ÷ 0.5 = 102;
    //   ⌈7 + 0 − 16 − 35⌉ < 0 → 0.
    // never: nothing sold: cover null (last); ⌈0 − 5⌉ → 0.
    expect(ours(report.body.data)).toEqual([
      {
        sku: short.sku,
        location: null,
        sold_per_day: 0.25,
        available: 0,
        inbound_outstanding: 0,
        backordered: 4,
        days_of_cover: 0,
        suggested_order: 8,
      },
      {
        sku: coming.sku,
        location: null,
        sold_per_day: 0.5,
        available: 16,
        inbound_outstanding: 35,
        backordered: 0,
        days_of_cover: 102,
        suggested_order: 0,
      },
      {
        sku: never.sku,
        location: null,
        sold_per_day: 0,
        available: 5,
        inbound_outstanding: 0,
        backordered: 0,
        days_of_cover: null,
        suggested_order: 0,
      },
    ]);
    // The whole list: lowest cover first, nulls last.
    const covers = report.body.data.map((r: any) => r.days_of_cover);
    const nonNull = covers.filter((x: number | null) => x !== null);
    expect(nonNull).toEqual([...nonNull].sort((a: number, b: number) => a - b));
    expect(covers.slice(nonNull.length).every((x: unknown) => x === null)).toBe(true);

    // A longer window and cover: short sold 10 in 56 days (the old sale counts); ⌈10/56 × 30 + 4⌉ = ⌈9.357…⌉ = 10.
    const longer = await h().api('GET', '/v1/reports/replenishment?days=56&cover_days=30');
    const s56 = longer.body.data.find((r: any) => r.sku === short.sku);
    expect(s56.sold_per_day).toBeCloseTo(10 / 56, 12);
    expect(s56.suggested_order).toBe(10);

    // Per location: at east, coming has nothing on hand and 5 on the way, sold nothing there.
    const atEast = await h().api('GET', `/v1/reports/replenishment?location=${east}`);
    expect(atEast.body.location).toBe(east);
    expect(atEast.body.data.find((r: any) => r.sku === coming.sku)).toEqual({
      sku: coming.sku,
      location: east,
      sold_per_day: 0,
      available: 0,
      inbound_outstanding: 5,
      backordered: 0,
      days_of_cover: null,
      suggested_order: 0,
    });
    const atMain = await h().api('GET', '/v1/reports/replenishment?location=main');
    expect(atMain.body.data.find((r: any) => r.sku === coming.sku)).toMatchObject({
      location: 'main',
      available: 16,
      inbound_outstanding: 30,
      days_of_cover: 92,
    });

    const csv = await h().api('GET', '/v1/reports/replenishment?format=csv', { role: 'operator' });
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="?replenishment\.csv"?$/);
    const lines = (csv.text as string).split('\r\n');
    expect(lines[0]).toBe(
      'sku,location,sold_per_day,available,inbound_outstanding,backordered,days_of_cover,suggested_order',
    );
    const row = (sku: string) => lines.find((l) => l.startsWith(`${sku},`));
    expect(row(short.sku)).toBe(`${short.sku},,0.25,0,0,4,0,8`);
    expect(row(coming.sku)).toBe(`${coming.sku},,0.5,16,35,0,102,0`);
    expect(row(never.sku)).toBe(`${never.sku},,0,5,0,0,,0`);

    expect((await h().api('GET', '/v1/reports/replenishment?location=NOPE')).status).toBe(400);
    expect((await h().api('GET', '/v1/reports/replenishment?days=0')).status).toBe(400);
    expect((await h().api('GET', '/v1/reports/replenishment', { role: 'feed' })).status).toBe(403);
  });
});
