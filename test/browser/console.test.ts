import net from 'node:net';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { openBrowser, screenshotPath, type OpenBrowser } from '../helpers/browser';
import { failedOrders, makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { KEYS, useHarness, waitFor, type Harness } from '../helpers/harness';

const h = useHarness({ workers: false });

const asRole = (role: 'operator' | 'viewer') =>
  openBrowser({ httpCredentials: { username: role, password: KEYS[role] }, locale: 'en-US' });

async function openConsole(b: OpenBrowser, hash = '') {
  const res = await b.page.goto(`${h().baseUrl}/console${hash}`);
  expect(res?.status()).toBe(200);
  await b.page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });
}

/** A customer and a product with 10 in stock, and a way to place that customer's orders of it. */
async function aShop() {
  const c = await makeCustomer(h());
  const p = await makeProduct(h(), 10);
  const order = (quantity = 1, extra: Record<string, unknown> = {}) =>
    placeOrder(h(), c.id, [{ sku: p.sku, quantity }], extra);
  return { c, p, order };
}

/** Clicks Confirm in the console's own dialog, after checking what it asks. */
async function confirm(page: Page, title: RegExp) {
  await page.waitForSelector('#confirm[open]');
  expect(await page.textContent('#confirm-title')).toMatch(title);
  await page.click('#confirm-yes');
}

/** An endpoint the system disabled after its deliveries failed (set by SQL: days of failures are not waited for). */
async function disabledEndpoint(hh: Harness, url: string) {
  const made = await hh.api('POST', '/v1/webhook-endpoints', { body: { url, types: ['order.confirmed'] } });
  expect(made.status, made.text).toBe(201);
  await hh.ctx
    .db('webhook_endpoints')
    .where({ id: made.body.id })
    .update({ status: 'disabled', disabled_at: hh.ctx.db.fn.now(), disabled_reason: 'failing' });
  return made.body.id as string;
}

describe('operator console in a browser', () => {
  it('when an operator finds an order by external_ref, then its page shows lines and the processing error in its timeline, and Retry confirms it', async () => {
    const { ids, sku } = await failedOrders(h(), 1, 5, () => ({ external_ref: 'ERP-88231' }));
    const [failed] = ids;
    await h().startWorkers();
    const c = await makeCustomer(h());
    const other = await makeProduct(h(), 1, { sku: 'LAMP-OAK' });
    await placeOrder(h(), c.id, [{ sku: other.sku, quantity: 1 }], { external_ref: 'ERP-00001' });
    const waiting = await placeOrder(h(), c.id, [{ sku: other.sku, quantity: 2 }], { external_ref: 'ERP-00002' });
    await untilStatus(h(), waiting.id, 'awaiting_stock');
    await disabledEndpoint(h(), 'https://erp.example/hooks');

    const b = await asRole('operator');
    try {
      await openConsole(b);
      expect(await b.page.textContent('#who')).toContain('operator');
      // The banner tells of the endpoint that was disabled after failing.
      await b.page.waitForSelector('#alert-endpoints');
      expect(await b.page.textContent('#alerts')).toMatch(/1 webhook endpoint is disabled/);

      await b.page.fill('#search-external-ref', 'ERP-88231');
      await b.page.click('#search-go');
      await b.page.waitForSelector('#results[data-query*="external_ref=ERP-88231"]');
      expect(
        await b.page.$$eval('#orders-table tbody tr', (rs) => rs.map((r) => r.getAttribute('data-order-id'))),
      ).toEqual([failed]);
      await b.page.screenshot({ path: screenshotPath('console-search.png') });

      await b.page.click(`#orders-table tr[data-order-id="${failed}"] a.order-link`);
      await b.page.waitForSelector('#order[data-status="failed"]');
      const runs = () =>
        b.page.$$eval('#timeline tr[data-kind="processing"]', (rs) => rs.map((r) => r.textContent ?? ''));
      expect(await runs()).toHaveLength(1);
      expect((await runs())[0]).toMatch(/run 1: failed.*simulated outage/s);
      expect(await b.page.$$eval('#timeline tr[data-kind="processing"].error', (rs) => rs.length)).toBe(1);
      expect(await b.page.textContent('#lines')).toContain(sku);
      expect(await b.page.isVisible('#action-cancel')).toBe(true);

      await b.page.click('#action-retry');
      await confirm(b.page, /Retry order #\d+/);
      // The page refreshes itself: the order confirms with no reload.
      await b.page.waitForSelector('#order[data-status="confirmed"]', { timeout: 30000 });
      await waitFor(async () => (await runs()).length === 2, { what: 'the second run on the timeline' });
      expect((await runs())[1]).toMatch(/run 2: confirmed/);
      expect(await b.page.textContent('#lines')).toMatch(/main: 1 reserved, 0 shipped/);
      expect(await b.page.isVisible('#action-retry')).toBe(false);
      const history = await b.page.$$eval('#timeline tr[data-kind="history"]', (rs) =>
        rs.map((r) => r.children[2].textContent?.trim().split(' ')[0] + ' by ' + r.children[3].textContent),
      );
      expect(history).toEqual([
        'received by intake',
        'failed by fail (system)',
        'received by operator',
        'confirmed by reserve (system)',
      ]);
      await b.page.screenshot({ path: screenshotPath('console-order.png'), fullPage: true });
      expect((await h().api('GET', `/v1/orders/${failed}`)).body.status).toBe('confirmed');

      // A waiting order shows its place in the SKU's queue.
      await b.page.goto(`${h().baseUrl}/console#/order/${waiting.id}`);
      await b.page.waitForSelector('#order[data-status="awaiting_stock"]');
      expect(await b.page.textContent('#lines .queue-position')).toBe('1');

      // The endpoints page lists it first, with Recover.
      await b.page.click('#alert-endpoints');
      await b.page.waitForSelector('#endpoints tr[data-endpoint-status="disabled"] button.recover');
      expect(b.errors).toEqual([]);
    } finally {
      await b.close();
    }
  }, 120_000);

  it('when an operator retries 300 failed orders in bulk from the console, then the dry run counts 300, the progress bar reaches 300, and the bulk page lists it with its reason and filter afterwards', async () => {
    const { ids, sku } = await failedOrders(h(), 300, 300);
    await h().startWorkers();
    const b = await asRole('operator');
    try {
      await openConsole(b, '#/bulk');
      await b.page.selectOption('#bulk-action', 'retry_orders');
      await b.page.fill('#bulk-sku', sku);
      await b.page.fill('#bulk-note', 'after the outage');
      await b.page.click('#bulk-dry-run');
      await b.page.waitForSelector('#bulk-matched');
      expect(await b.page.getAttribute('#bulk-matched', 'data-matched')).toBe('300');
      // Counting changed nothing.
      expect(
        Number((await h().ctx.db('orders').whereIn('id', ids).where({ status: 'failed' }).count({ n: '*' }))[0].n),
      ).toBe(300);
      await b.page.screenshot({ path: screenshotPath('console-bulk-dry-run.png') });

      // Every value the bar shows, as it moves.
      await b.page.evaluate(() => {
        const seen: number[] = [];
        (window as unknown as { seen: number[] }).seen = seen;
        new MutationObserver(() => {
          const p = document.querySelector('#bulk-progress') as HTMLProgressElement | null;
          if (p && seen[seen.length - 1] !== p.value) seen.push(p.value);
        }).observe(document.body, { subtree: true, childList: true, attributes: true });
      });
      await b.page.click('#bulk-run-button');
      await confirm(b.page, /Retry 300 orders\?/);
      await b.page.waitForSelector('#bulk-run[data-bulk-status="completed"]', { timeout: 90000 });
      expect(await b.page.getAttribute('#bulk-progress', 'value')).toBe('300');
      expect(await b.page.getAttribute('#bulk-progress', 'max')).toBe('300');
      expect(await b.page.textContent('#bulk-progress-text')).toMatch(/^300 of 300 · done 300 · skipped 0 · failed 0/);
      const seen = await b.page.evaluate(() => (window as unknown as { seen: number[] }).seen);
      expect(seen[seen.length - 1]).toBe(300);
      expect(seen, 'the bar only moves forward').toEqual([...seen].sort((x, y) => x - y));
      await b.page.screenshot({ path: screenshotPath('console-bulk-progress.png') });

      const bulkId = await b.page.getAttribute('#bulk-run', 'data-bulk-id');
      const run = await h().api('GET', `/v1/bulk-actions/${bulkId}`);
      expect(run.body).toMatchObject({ action: 'retry_orders', matched: 300, done: 300, status: 'completed' });
      expect(run.body.actor.role).toBe('operator');
      // Each order was retried once, and all of them confirm.
      const retried = await h()
        .ctx.db('order_history')
        .whereIn('order_id', ids)
        .where({ status: 'received', detail: `retried by bulk action ${bulkId}` })
        .select('order_id');
      expect(retried).toHaveLength(300);
      expect(new Set(retried.map((r) => r.order_id)).size).toBe(300);
      await waitFor(
        async () =>
          Number(
            (await h().ctx.db('orders').whereIn('id', ids).where({ status: 'confirmed' }).count({ n: '*' }))[0].n,
          ) === 300,
        { what: '300 confirmed', timeout: 60000 },
      );

      // Left and found again: the bulk page lists it first, and its link shows its progress, reason and filter.
      await b.page.click('nav a[data-nav="orders"]');
      await b.page.waitForSelector('body[data-view="orders"]');
      await b.page.click('nav a[data-nav="bulk"]');
      await b.page.waitForSelector('#bulk-recent tbody tr');
      const recent = await b.page.$$eval('#bulk-recent tbody tr', (rs) =>
        rs.map((r) => [r.getAttribute('data-bulk-id'), ...[...r.children].map((td) => td.textContent)]),
      );
      expect(recent[0].slice(0, 9)).toEqual([
        bulkId,
        'retry_orders',
        'after the outage',
        '300',
        '300',
        '0',
        '0',
        'completed',
        'operator',
      ]);
      await b.page.click(`#bulk-recent tr[data-bulk-id="${bulkId}"] a.bulk-link`);
      await b.page.waitForSelector(`#bulk-run[data-bulk-id="${bulkId}"][data-bulk-status="completed"]`);
      expect(b.page.url()).toContain(`#/bulk/${bulkId}`);
      expect(await b.page.textContent('#bulk-run-reason')).toBe('Reason: after the outage');
      expect(await b.page.textContent('#bulk-run-filter')).toBe(`Filter: sku: ${sku}`);
      expect(await b.page.textContent('#bulk-progress-text')).toMatch(/^300 of 300 · done 300/);
      expect(b.errors).toEqual([]);
    } finally {
      await b.close();
    }
  }, 240_000);

  it('when a route fails, then an error panel replaces the order left behind, and a late answer of an earlier route never draws over the current one', async () => {
    const { ids } = await failedOrders(h(), 1, 5);
    const [failed] = ids;
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const other = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const missing = '0190d6c1-0000-7000-8000-00000000dead';
    const go = (hash: string) => b.page.evaluate((x) => (location.hash = x), hash);
    const b = await asRole('operator');
    try {
      await openConsole(b, `#/order/${failed}`);
      await b.page.waitForSelector(`#order[data-order-id="${failed}"]`);
      expect(await b.page.isVisible('#action-retry')).toBe(true);

      // An order that does not exist: the failed order and its buttons are gone, the panel says why.
      await go(`#/order/${missing}`);
      await b.page.waitForSelector('#route-error');
      expect(await b.page.getAttribute('#route-error', 'data-http-status')).toBe('404');
      expect(await b.page.textContent('#route-error-message')).toBe('404: order not found');
      expect(await b.page.textContent('#status')).toBe('404: order not found');
      expect(await b.page.$$('#order')).toHaveLength(0);
      expect(await b.page.$$('#view button')).toHaveLength(0);
      // Longer than a refresh: the order left behind does not come back.
      await b.page.waitForTimeout(2500);
      expect(await b.page.$$('#order')).toHaveLength(0);
      await b.page.click('#route-error-back');
      await b.page.waitForSelector('body[data-view="orders"] #search');
      expect(await b.page.$$('#route-error')).toHaveLength(0);

      // The failed order answers slowly; the operator moves on to another before it has.
      await b.page.route(`**/console/api/orders/${failed}**`, async (r) => {
        await new Promise((res) => setTimeout(res, 1500));
        await r.continue();
      });
      await b.page.evaluate(() => {
        const drawn: string[] = [];
        (window as unknown as { drawn: string[] }).drawn = drawn;
        new MutationObserver(() => {
          const id = document.querySelector('#order')?.getAttribute('data-order-id');
          if (id && drawn[drawn.length - 1] !== id) drawn.push(id);
        }).observe(document.body, { subtree: true, childList: true });
      });
      const slow = b.page.waitForResponse((r) => r.url().endsWith(`/console/api/orders/${failed}/notifications`));
      await Promise.all([b.page.waitForRequest((r) => r.url().includes(`/orders/${failed}`)), go(`#/order/${failed}`)]);
      await go(`#/order/${other.id}`);
      await b.page.waitForSelector(`#order[data-order-id="${other.id}"]`);
      await slow;
      // The slow answer has come, and two refreshes more.
      await b.page.waitForTimeout(3500);
      expect(await b.page.getAttribute('#order', 'data-order-id')).toBe(other.id);
      expect(await b.page.evaluate(() => (window as unknown as { drawn: string[] }).drawn)).toEqual([other.id]);
      expect(await b.page.$$('#action-retry')).toHaveLength(0);
      expect(b.errors.filter((e) => !/404/.test(e))).toEqual([]);
    } finally {
      await b.close();
    }
  }, 120_000);

  it("when an operator follows an order's customer, then the page names the customer and lists their orders, the Customer id field finds them too, and a short q that finds nothing says why", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const grace = await makeCustomer(h(), { name: 'Grace Hopper', email: `grace-${tag}@example.test` });
    const other = await makeCustomer(h(), { name: 'Alan Turing' });
    const p = await makeProduct(h(), 10);
    const first = await placeOrder(h(), grace.id, [{ sku: p.sku, quantity: 1 }]);
    const second = await placeOrder(h(), grace.id, [{ sku: p.sku, quantity: 2 }]);
    const theirs = await placeOrder(h(), other.id, [{ sku: p.sku, quantity: 1 }]);
    const orderIds = () =>
      b.page.$$eval('#orders-table tbody tr', (rs) => rs.map((r) => r.getAttribute('data-order-id')));
    const b = await asRole('operator');
    try {
      await openConsole(b, `#/order/${first.id}`);
      await b.page.waitForSelector(`#order[data-order-id="${first.id}"] #order-customer-link`);
      expect(await b.page.textContent('#order-customer-link')).toBe('Grace Hopper');
      expect(await b.page.textContent('#order-customer-email')).toBe(`<grace-${tag}@example.test>`);
      expect(await b.page.getAttribute('#order-customer-link', 'href')).toBe(`#/orders?customer_id=${grace.id}`);

      await b.page.click('#order-customer-link');
      await b.page.waitForSelector(`#results[data-query*="customer_id=${grace.id}"] #orders-table`);
      expect(await orderIds()).toEqual([second.id, first.id]);
      expect(await b.page.inputValue('#search-customer-id')).toBe(grace.id);
      expect(await b.page.textContent('#results-customer')).toBe(`Orders of Grace Hopper <grace-${tag}@example.test>`);

      // The field of the search form, by hand.
      await b.page.fill('#search-customer-id', other.id);
      await b.page.click('#search-go');
      await b.page.waitForSelector(`#results[data-query*="customer_id=${other.id}"] #orders-table`);
      expect(await orderIds()).toEqual([theirs.id]);
      expect(b.page.url()).toContain(`#/orders?customer_id=${other.id}`);

      // Three characters of an id find nothing, and the page says why; more of it finds the order.
      await b.page.fill('#search-customer-id', '');
      await b.page.fill('#search-q', first.id.slice(0, 3));
      await b.page.click('#search-go');
      await b.page.waitForSelector(`#results[data-query^="q=${first.id.slice(0, 3)}&"]`);
      expect(await b.page.textContent('#results h3')).toBe('0 orders');
      expect(await b.page.textContent('#search-hint')).toMatch(/order id prefix needs at least 4 characters/);
      await b.page.fill('#search-q', first.id.slice(0, 8));
      await b.page.click('#search-go');
      await b.page.waitForSelector(`#results[data-query^="q=${first.id.slice(0, 8)}&"] #orders-table`);
      expect(await orderIds()).toContain(first.id);
      expect(await b.page.$$('#search-hint')).toHaveLength(0);
      // Long enough and still nothing: no hint about length.
      await b.page.fill('#search-q', 'NO-SUCH-REF');
      await b.page.click('#search-go');
      await b.page.waitForSelector('#results[data-query^="q=NO-SUCH-REF&"]');
      expect(await b.page.textContent('#results h3')).toBe('0 orders');
      expect(await b.page.$$('#search-hint')).toHaveLength(0);
      // A customer id the API refuses: the reason under the form, which keeps what was typed.
      await b.page.fill('#search-q', '');
      await b.page.fill('#search-customer-id', '12345');
      await b.page.click('#search-go');
      await b.page.waitForSelector('#search-error');
      expect(await b.page.textContent('#search-error')).toMatch(/^400: .*customer_id/);
      expect(await b.page.inputValue('#search-customer-id')).toBe('12345');
      // A well-formed id no customer has says so.
      await b.page.fill('#search-customer-id', '0190d6c1-0000-7000-8000-00000000beef');
      await b.page.click('#search-go');
      await b.page.waitForSelector('#results-customer.hint');
      expect(await b.page.textContent('#results-customer')).toBe('No customer has this id.');
      expect(b.errors.filter((e) => !/\b(400|404)\b/.test(e))).toEqual([]);
    } finally {
      await b.close();
    }
  }, 120_000);

  it('when an operator cancels an order from the console with a reason typed in the dialog, then the order records that reason, and an empty one records the default', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const typed = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const left = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const lastHistory = async (id: string) =>
      (await h().api('GET', `/v1/orders/${id}/timeline`)).body.data.filter((e: any) => e.kind === 'history').at(-1);
    const b = await asRole('operator');
    try {
      await openConsole(b, `#/order/${typed.id}`);
      await b.page.click(`#order[data-order-id="${typed.id}"] #action-cancel`);
      await b.page.waitForSelector('#confirm[open] #confirm-reason');
      expect(await b.page.isVisible('#confirm-reason')).toBe(true);
      await b.page.fill('#confirm-reason', 'customer phoned: duplicate of ERP-77');
      await confirm(b.page, /Cancel order #\d+/);
      await b.page.waitForSelector('#order[data-status="cancelled"]');
      expect(await b.page.textContent('#order .facts')).toContain('customer phoned: duplicate of ERP-77');
      const cancelled = (await h().api('GET', `/v1/orders/${typed.id}`)).body;
      expect(cancelled).toMatchObject({ status: 'cancelled', status_reason: 'customer phoned: duplicate of ERP-77' });
      expect(await lastHistory(typed.id)).toMatchObject({
        status: 'cancelled',
        detail: 'customer phoned: duplicate of ERP-77',
        actor: { role: 'operator' },
      });

      // Nothing typed, and Enter in the field: confirmed, with the default reason.
      await b.page.goto(`${h().baseUrl}/console#/order/${left.id}`);
      await b.page.click(`#order[data-order-id="${left.id}"] #action-cancel`);
      await b.page.waitForSelector('#confirm[open] #confirm-reason');
      expect(await b.page.inputValue('#confirm-reason')).toBe('');
      await b.page.press('#confirm-reason', 'Enter');
      await b.page.waitForSelector('#order[data-status="cancelled"]');
      expect((await h().api('GET', `/v1/orders/${left.id}`)).body.status_reason).toBe('cancelled from the console');
      expect((await lastHistory(left.id)).detail).toBe('cancelled from the console');
      expect(b.errors).toEqual([]);
    } finally {
      await b.close();
    }
  }, 120_000);

  it('when an order changes while a question is open, then closing it shows the change, and a refused action (409) shows the order as it is', async () => {
    const shop = await aShop();
    const o = await shop.order();
    const other = await shop.order();
    const b = await asRole('operator');
    try {
      await openConsole(b, `#/order/${o.id}`);
      await b.page.click(`#order[data-order-id="${o.id}"] #action-cancel`);
      await b.page.waitForSelector('#confirm[open]');
      // A colleague cancels it meanwhile; the page waits under the open question, then shows it.
      expect((await h().api('POST', `/v1/orders/${o.id}/cancel`, { body: { reason: 'by a colleague' } })).status).toBe(
        200,
      );
      await new Promise((r) => setTimeout(r, 2500));
      await b.page.keyboard.press('Escape');
      await b.page.waitForSelector('#order[data-status="cancelled"]', { timeout: 10000 });

      // Confirmed after the colleague acted: 409 in the status line, and the order as it is now.
      await b.page.goto(`${h().baseUrl}/console#/order/${other.id}`);
      await b.page.click(`#order[data-order-id="${other.id}"] #action-cancel`);
      await b.page.waitForSelector('#confirm[open]');
      expect((await h().api('POST', `/v1/orders/${other.id}/cancel`, { body: {} })).status).toBe(200);
      await confirm(b.page, /Cancel order #\d+/);
      await b.page.waitForSelector('#order[data-status="cancelled"]', { timeout: 10000 });
      expect(await b.page.textContent('#status')).toMatch(/cannot cancel/);
      expect(b.errors.filter((e) => !/409/.test(e))).toEqual([]);
    } finally {
      await b.close();
    }
  }, 120_000);

  it('when the console and the dashboard are opened 390 px wide, then no page is wider than the screen (wide tables scroll inside their cards)', async () => {
    const o = await (await aShop()).order(2, { external_ref: 'a-rather-long-external-reference-0001' });
    const b = await asRole('operator');
    try {
      await b.page.setViewportSize({ width: 390, height: 800 });
      const widths: Record<string, number> = {};
      for (const [name, path, ready] of [
        ['home', '/console', '#orders-table'],
        ['order', `/console#/order/${o.id}`, `#order[data-order-id="${o.id}"]`],
        ['bulk', '/console#/bulk', '#bulk-form'],
        ['dashboard', '/dashboard', '#tile-revenue'],
      ] as const) {
        await b.page.goto(`${h().baseUrl}${path}`);
        await b.page.waitForSelector(ready, { timeout: 15000 });
        widths[name] = await b.page.evaluate(() => document.documentElement.scrollWidth);
      }
      expect(widths).toEqual({ home: 390, order: 390, bulk: 390, dashboard: 390 });
      await b.page.goto(`${h().baseUrl}/console#/order/${o.id}`);
      await b.page.waitForSelector(`#order[data-order-id="${o.id}"]`);
      await b.page.screenshot({ path: screenshotPath('console-order-390.png'), fullPage: true });
    } finally {
      await b.close();
    }
  }, 120_000);

  it('when the order page redraws because the order changed, then the keyboard stays on the button it was on', async () => {
    const { p, order } = await aShop();
    const o = await order();
    const b = await asRole('operator');
    try {
      await openConsole(b, `#/order/${o.id}`);
      await b.page.focus(`#order[data-order-id="${o.id}"] #action-cancel`);
      const edit = await h().api('PATCH', `/v1/orders/${o.id}`, { body: { lines: [{ sku: p.sku, quantity: 3 }] } });
      expect(edit.status, edit.text).toBe(202);
      await waitFor(async () => (await b.page.textContent('#lines tbody td:nth-child(2)')) === '3', {
        what: 'the edit drawn',
      });
      expect(await b.page.evaluate(() => document.activeElement?.id)).toBe('action-cancel');
    } finally {
      await b.close();
    }
  }, 120_000);

  it("when an endpoint's deliveries fail, then the endpoints page shows its newest delivery with the error, and its description", async () => {
    // A port nothing listens on: each attempt is a refused connection.
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const made = await h().api('POST', '/v1/webhook-endpoints', {
      body: { url: `http://127.0.0.1:${port}/hook`, types: ['order.confirmed'], description: 'analytics' },
    });
    expect(made.status, made.text).toBe(201);
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await waitFor(
      async () =>
        (await h().api('GET', `/v1/webhook-endpoints/${made.body.id}/deliveries`)).body.data[0]?.last_error ===
        'connection refused',
      { what: 'a failed attempt recorded' },
    );
    const b = await asRole('viewer');
    try {
      await openConsole(b, '#/endpoints');
      const row = `#endpoints tr[data-endpoint-id="${made.body.id}"]`;
      await b.page.waitForSelector(`${row} .last-delivery .err`);
      expect(await b.page.textContent(`${row} .last-delivery`)).toMatch(
        /order\.confirmed, \d+ attempts?connection refused/,
      );
      expect(await b.page.textContent(row)).toContain('analytics');
    } finally {
      await b.close();
    }
  }, 120_000);

  it('when the bulk filter is edited after a count, or a count is refused, then no count and no run button are left standing for another filter, and the run question asks for no reason it would not send', async () => {
    const { p, order } = await aShop();
    for (let i = 0; i < 3; i++) await order();
    const b = await asRole('operator');
    try {
      await openConsole(b, '#/bulk');
      await b.page.selectOption('#bulk-action', 'cancel_orders');
      await b.page.fill('#bulk-sku', p.sku);
      await b.page.click('#bulk-dry-run');
      await b.page.waitForSelector('#bulk-run-button');
      expect(await b.page.getAttribute('#bulk-matched', 'data-matched')).toBe('3');
      // Edited: the count was for the old filter, so it and its button go.
      await b.page.fill('#bulk-sku', 'SKU-OTHER');
      expect(await b.page.$('#bulk-run-button')).toBeNull();
      expect(await b.page.$('#bulk-matched')).toBeNull();
      // Counted again, then refused (a customer id that is no UUID): the error beside the form, no button.
      await b.page.fill('#bulk-sku', p.sku);
      await b.page.click('#bulk-dry-run');
      await b.page.waitForSelector('#bulk-run-button');
      // Its question has no reason field (the note above is the reason): hidden, not merely empty.
      await b.page.click('#bulk-run-button');
      await b.page.waitForSelector('#confirm[open]');
      expect(await b.page.isVisible('#confirm-reason-label')).toBe(false);
      await b.page.keyboard.press('Escape');
      await b.page.fill('#bulk-customer-id', '12345');
      await b.page.click('#bulk-dry-run');
      await b.page.waitForSelector('#bulk-error');
      expect(await b.page.textContent('#bulk-error')).toMatch(/customer_id/);
      expect(await b.page.$('#bulk-run-button')).toBeNull();
      // Nothing was cancelled.
      const { body } = await h().api('GET', `/v1/orders?sku=${p.sku}`);
      expect(body.data.map((x: { status: string }) => x.status)).toEqual(['received', 'received', 'received']);
    } finally {
      await b.close();
    }
  }, 120_000);

  it('when a viewer opens the console, then it reads everything but sees no action button, and a write it posts anyway is 403', async () => {
    const { ids } = await failedOrders(h(), 1, 5, () => ({ external_ref: 'ERP-VIEW-1' }));
    const [failed] = ids;
    const endpoint = await disabledEndpoint(h(), 'https://erp.example/viewer-hooks');
    const bulkRuns = async () => Number((await h().ctx.db('bulk_actions').count({ n: '*' }))[0].n);
    const viewed = (
      await h().api('POST', '/v1/bulk-actions', {
        body: { action: 'cancel_orders', filter: { ids: [endpoint] }, reason: 'viewer sees this' },
      })
    ).body.id;
    const runsBefore = await bulkRuns();
    const b = await asRole('viewer');
    try {
      await openConsole(b, `#/order/${failed}`);
      expect(await b.page.textContent('#who')).toMatch(/viewer.*read-only/);
      await b.page.waitForSelector('#order[data-status="failed"]');
      expect(await b.page.textContent('#timeline')).toContain('simulated outage');
      // The customer is named for a viewer too (GET /v1/customers/:id lets a viewer read).
      expect(await b.page.textContent('#order-customer-link')).toBe('Ada Customer');
      expect(await b.page.$$('#order button')).toHaveLength(0);
      expect(await b.page.$$('button.resend')).toHaveLength(0);
      await b.page.screenshot({ path: screenshotPath('console-viewer.png'), fullPage: true });

      await b.page.goto(`${h().baseUrl}/console#/bulk`);
      await b.page.waitForSelector('#bulk-read-only');
      // A viewer finds the bulk actions that ran, and follows one.
      await b.page.waitForSelector(`#bulk-recent tr[data-bulk-id="${viewed}"]`);
      expect(await b.page.$$('#view button')).toHaveLength(0);
      await b.page.click(`#bulk-recent tr[data-bulk-id="${viewed}"] a.bulk-link`);
      await b.page.waitForSelector(`#bulk-run[data-bulk-id="${viewed}"]`);
      expect(await b.page.textContent('#bulk-run-reason')).toBe('Reason: viewer sees this');
      expect(await b.page.textContent('#bulk-run-filter')).toBe('Filter: ids: 1');
      expect(await b.page.$$('#view button')).toHaveLength(0);

      await b.page.goto(`${h().baseUrl}/console#/endpoints`);
      await b.page.waitForSelector('#endpoints tr[data-endpoint-status="disabled"]');
      expect(await b.page.$$('#endpoints button')).toHaveLength(0);

      // Posting anyway, from the page with the viewer's credentials: refused, nothing changed.
      const posts = await b.page.evaluate(
        async ([order, ep]) => {
          const post = async (path: string, body: unknown) =>
            (
              await fetch(`/console/api${path}`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify(body),
              })
            ).status;
          return [
            await post(`/orders/${order}/retry`, {}),
            await post(`/orders/${order}/cancel`, {}),
            await post('/bulk-actions', { action: 'retry_orders', filter: { ids: [order] } }),
            await post(`/webhook-endpoints/${ep}/recover`, { since: new Date(0).toISOString() }),
          ];
        },
        [failed, endpoint],
      );
      expect(posts).toEqual([403, 403, 403, 403]);
      expect((await h().api('GET', `/v1/orders/${failed}`)).body.status).toBe('failed');
      expect(await bulkRuns()).toBe(runsBefore);
      expect((await h().ctx.db('webhook_endpoints').where({ id: endpoint }).first()).status).toBe('disabled');
      expect(b.errors.filter((e) => !/403/.test(e))).toEqual([]);
    } finally {
      await b.close();
    }
  }, 120_000);

  it('when an operator follows the nav links, then the console, the dashboard and the queues board lead to one another', async () => {
    const b = await asRole('operator');
    try {
      await openConsole(b);
      await b.page.click('nav a[href="/dashboard"]');
      await b.page.waitForSelector('body[data-loaded="true"] nav a[href="/console"]', { timeout: 15000 });
      expect(new URL(b.page.url()).pathname).toBe('/dashboard');
      await b.page.click('nav a[href="/console"]');
      await b.page.waitForSelector('body[data-loaded="true"][data-view="orders"]', { timeout: 15000 });
      expect(new URL(b.page.url()).pathname).toBe('/console');
      // The board's menu links (bull-board's uiConfig.miscLinks, rendered in its header menu).
      await b.page.click('nav a[href="/admin/queues"]');
      await b.page.waitForSelector('#__UI_CONFIG__', { state: 'attached' });
      const ui = JSON.parse((await b.page.textContent('#__UI_CONFIG__')) ?? '{}');
      expect(ui.miscLinks).toContainEqual({ text: 'Console', url: '/console' });
      expect(b.errors).toEqual([]);
    } finally {
      await b.close();
    }
  }, 60_000);

  it('when the console is asked without credentials, with an intake key, or cross-site, then it refuses', async () => {
    const bulkRuns = async () => Number((await h().ctx.db('bulk_actions').count({ n: '*' }))[0].n);
    const runsBefore = await bulkRuns();
    expect((await fetch(`${h().baseUrl}/console`)).status).toBe(401);
    expect((await fetch(`${h().baseUrl}/console`)).headers.get('www-authenticate')).toMatch(/^Basic/);
    const basic = (role: 'intake' | 'operator') => `Basic ${Buffer.from(`${role}:${KEYS[role]}`).toString('base64')}`;
    expect((await fetch(`${h().baseUrl}/console`, { headers: { authorization: basic('intake') } })).status).toBe(403);
    expect(
      (await fetch(`${h().baseUrl}/console/api/orders`, { headers: { authorization: basic('intake') } })).status,
    ).toBe(403);
    expect((await fetch(`${h().baseUrl}/console/api/orders`)).status).toBe(401);
    const ok = await fetch(`${h().baseUrl}/console/api/orders?limit=1`, {
      headers: { authorization: basic('operator') },
    });
    expect(ok.status).toBe(200);
    expect((await ok.json()).data).toBeInstanceOf(Array);
    const cross = await fetch(`${h().baseUrl}/console/api/bulk-actions`, {
      method: 'POST',
      headers: {
        authorization: basic('operator'),
        'content-type': 'application/json',
        'sec-fetch-site': 'cross-site',
      },
      body: JSON.stringify({ action: 'retry_orders', filter: {} }),
    });
    expect(cross.status).toBe(403);
    expect(await bulkRuns()).toBe(runsBefore);
    // The API's own rules hold on the bridge: unknown query parameters are 400.
    expect(
      (await fetch(`${h().baseUrl}/console/api/orders?bogus=1`, { headers: { authorization: basic('operator') } }))
        .status,
    ).toBe(400);
  });
});
