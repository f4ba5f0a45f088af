import { describe, expect, it } from 'vitest';
import { openBrowser, screenshotPath } from '../helpers/browser';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { KEYS, useHarness } from '../helpers/harness';

const h = useHarness({ workers: false });

/** How many pixels of each canvas are painted (alpha > 0). */
const paintedPixels = () =>
  [...document.querySelectorAll('canvas')].map((c) => {
    const data = (c as HTMLCanvasElement)
      .getContext('2d')!
      .getImageData(0, 0, (c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return { id: c.id, painted: n };
  });

describe('dashboard and docs in a browser', () => {
  it('when an operator opens the dashboard, then every chart is drawn from the reports, with no console errors, and it refreshes itself', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const cheap = await makeProduct(h(), 40, { sku: 'MUG-BLUE', name: 'Blue mug', price_cents: 1200 });
    const dear = await makeProduct(h(), 3, { sku: 'LAMP-OAK', name: 'Oak lamp', price_cents: 8900 });
    await makeProduct(h(), 0, { sku: 'TEA-GREEN', name: 'Green tea', price_cents: 450 });
    await makeProduct(h(), 12, { sku: 'PEN-RED', name: 'Red pen', price_cents: 150 });
    // Revenue is the sold orders (confirmed, partially shipped, completed); the test adds it up from the prices it set.
    let revenue = 0;
    const placed: string[] = [];
    const order = async (lines: { sku: string; quantity: number }[], status: string, price: number, extra = {}) => {
      const o = await placeOrder(h(), c.id, lines, extra);
      await untilStatus(h(), o.id, status);
      placed.push(o.id);
      if (status === 'confirmed') revenue += price;
      return o.id;
    };
    await order([{ sku: cheap.sku, quantity: 5 }], 'confirmed', 5 * 1200);
    const sold = await order(
      [
        { sku: dear.sku, quantity: 2 },
        { sku: cheap.sku, quantity: 1 },
      ],
      'confirmed',
      2 * 8900 + 1200,
    );
    await h().api('POST', `/v1/orders/${sold}/fulfill`, { role: 'feed' });
    await order([{ sku: dear.sku, quantity: 4 }], 'awaiting_stock', 0);
    await order([{ sku: 'TEA-GREEN', quantity: 2 }], 'rejected', 0, { on_insufficient_stock: 'reject' });
    await order([{ sku: 'PEN-RED', quantity: 3 }], 'confirmed', 3 * 150);
    const cancelled = await order([{ sku: 'PEN-RED', quantity: 1 }], 'confirmed', 0);
    await h().api('POST', `/v1/orders/${cancelled}/cancel`, { role: 'intake' });
    // Spread them over the last days so the per-day chart has a shape.
    for (const [i, id] of placed.entries()) {
      await h().ctx.db.raw(`UPDATE orders SET created_at = now() - (? * interval '1 day') WHERE id = ?`, [
        [0, 1, 1, 3, 4, 6][i],
        id,
      ]);
    }

    const b = await openBrowser({
      httpCredentials: { username: 'operator', password: KEYS.operator },
      locale: 'en-US',
    });
    try {
      const res = await b.page.goto(`${h().baseUrl}/dashboard`);
      expect(res?.status()).toBe(200);
      await b.page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
      const canvases = await b.page.$$eval('canvas', (cs) => cs.map((c) => c.id));
      expect(canvases).toEqual([
        'chart-status',
        'chart-days',
        'chart-stock',
        'chart-locations',
        'chart-queues',
        'chart-ledger',
      ]);
      await expect
        .poll(async () => (await b.page.evaluate(paintedPixels)).every((c) => c.painted > 500), { timeout: 10000 })
        .toBe(true);

      expect(await b.page.textContent('#tile-orders')).toBe(String(placed.length));
      expect(await b.page.textContent('#tile-revenue')).toBe(
        (revenue / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }),
      );
      expect(await b.page.textContent('#tile-awaiting')).toBe('1');
      expect(await b.page.textContent('#tile-ledger')).toBe('in balance');
      // The stock chart reads the inventory report: lowest available first.
      const stockLabels = await b.page.evaluate(() => (window as any).Chart.getChart('chart-stock').data.labels);
      expect(stockLabels.slice(0, 2).sort()).toEqual(['LAMP-OAK', 'TEA-GREEN']);
      expect(stockLabels.at(-1)).toBe('MUG-BLUE');
      await b.page.screenshot({ path: screenshotPath('dashboard.png'), fullPage: true });

      // Nobody reloads the page: the next refresh shows a SKU whose on_hand was changed behind the ledger's back.
      await h().ctx.db.raw(`UPDATE stock SET on_hand = on_hand + 5 WHERE sku = 'PEN-RED'`);
      await b.page.waitForFunction(
        () => document.querySelector('#tile-ledger')?.textContent === '1 SKU off',
        undefined,
        { timeout: 15000 },
      );
      expect(await b.page.textContent('#mismatches tbody')).toContain('PEN-RED');
      expect(b.errors).toEqual([]);
    } finally {
      await b.close();
    }
  });

  it('when /docs is opened, then Swagger UI, served locally, lists the endpoints of the API', async () => {
    const b = await openBrowser();
    const external: string[] = [];
    b.page.on('request', (r) => {
      if (!r.url().startsWith(h().baseUrl) && !r.url().startsWith('data:')) external.push(r.url());
    });
    try {
      await b.page.goto(`${h().baseUrl}/docs`);
      expect(b.page.url()).toBe(`${h().baseUrl}/docs/`);
      await b.page.waitForSelector('.opblock-summary-path', { timeout: 15000 });
      const ops = await b.page.$$eval('.opblock-summary', (els) =>
        els.map(
          (e) =>
            `${e.querySelector('.opblock-summary-method')?.textContent} ${e.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`,
        ),
      );
      for (const op of [
        'POST /v1/orders',
        'GET /v1/orders/{id}',
        'POST /v1/orders/{id}/cancel',
        'POST /v1/restocks',
        'POST /v1/customers',
        'GET /v1/reports/orders',
        'GET /v1/reports/inventory',
        'GET /v1/reports/ledger',
        'GET /v1/reports/queues',
      ]) {
        expect(ops, op).toContain(op);
      }
      expect(external).toEqual([]);
      expect(b.errors).toEqual([]);
    } finally {
      await b.close();
    }
  });
});
