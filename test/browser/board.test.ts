import { describe, expect, it } from 'vitest';
import { openBrowser, screenshotPath } from '../helpers/browser';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { KEYS, useHarness, waitFor, type Harness } from '../helpers/harness';

// One attempt per order job, so a job whose transaction fails is failed at once (and its order with it).
const h = useHarness({ workers: false, env: { ORDER_ATTEMPTS: '1' } });
const QUEUES = ['orders', 'restocks', 'notifications', 'maintenance', 'bulk'];

/** Makes every write to one SKU's stock row fail inside PostgreSQL, as a broken database would. */
async function refuseStockWrites(hh: Harness, sku: string): Promise<() => Promise<void>> {
  const db = hh.ctx.db;
  await db.raw(`CREATE OR REPLACE FUNCTION test_refuse_stock_writes() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'stock row of % is not writable (test)', OLD.sku; END $$`);
  await db.raw(
    `CREATE TRIGGER test_refuse_stock BEFORE UPDATE ON stock FOR EACH ROW WHEN (OLD.sku = ?) EXECUTE FUNCTION test_refuse_stock_writes()`.replace(
      '?',
      `'${sku.replace(/'/g, "''")}'`,
    ),
  );
  return async () => {
    await db.raw('DROP TRIGGER IF EXISTS test_refuse_stock ON stock');
  };
}

/** Workers running, and one order of `quantity` units whose job failed (its stock row refused the write). */
async function failedOrderJob(hh: Harness, quantity: number) {
  await hh.startWorkers();
  const c = await makeCustomer(hh);
  const p = await makeProduct(hh, 5);
  const allowWrites = await refuseStockWrites(hh, p.sku);
  try {
    const order = await placeOrder(hh, c.id, [{ sku: p.sku, quantity }]);
    await untilStatus(hh, order.id, 'failed', { what: 'order failed' });
    await waitFor(async () => (await hh.ctx.queues.orders.getJob(order.id))?.isFailed(), { what: 'job failed' });
    return { order, p };
  } finally {
    await allowWrites();
  }
}

describe('bull-board in a browser', () => {
  it('when the board is opened without credentials, then the browser is asked for Basic auth and sees no board', async () => {
    const b = await openBrowser();
    try {
      const challenges: { status: number; auth: string | null }[] = [];
      b.page.on('response', async (r) => {
        if (r.url().endsWith('/admin/queues'))
          challenges.push({ status: r.status(), auth: await r.headerValue('www-authenticate') });
      });
      // Headless Chromium has nobody to type a password into the prompt: a full Chromium ends the
      // navigation in an auth error, the headless shell (@sparticuz/chromium) shows the 401 page.
      const nav = await b.page.goto(`${h().baseUrl}/admin/queues`).then(
        (r) => r?.status(),
        (e: Error) => e.message,
      );
      expect(String(nav)).toMatch(/^401$|ERR_INVALID_AUTH_CREDENTIALS/);
      await expect.poll(() => challenges.length).toBeGreaterThan(0);
      expect(challenges[0].status).toBe(401);
      expect(challenges[0].auth).toMatch(/^Basic realm="orderflow operators"/);
      expect(await b.page.getByRole('link', { name: 'orders', exact: true }).count()).toBe(0);
    } finally {
      await b.close();
    }
  });

  it('when a failed order job is retried by clicking in the board, then the job runs again and the order reaches confirmed', async () => {
    const { order, p } = await failedOrderJob(h(), 2);
    expect(await h().ctx.db('stock').where({ sku: p.sku }).first()).toMatchObject({ on_hand: 5, reserved: 0 });

    const b = await openBrowser({ httpCredentials: { username: 'operator', password: KEYS.operator } });
    try {
      const res = await b.page.goto(`${h().baseUrl}/admin/queues`);
      expect(res?.status()).toBe(200);
      for (const q of QUEUES)
        await expect
          .poll(() => b.page.getByRole('link', { name: q, exact: true }).count(), { timeout: 15000 })
          .toBeGreaterThan(0);

      await b.page.getByRole('link', { name: 'orders', exact: true }).first().click();
      await b.page
        .getByText(/^failed/i)
        .first()
        .click();
      const card = b.page
        .locator('[class*="card"]')
        .filter({ has: b.page.getByText(order.id, { exact: true }) })
        .last();
      await card.waitFor({ timeout: 15000 });
      await expect.poll(() => card.textContent()).toContain('is not writable (test)');
      await b.page.screenshot({ path: screenshotPath('board.png') });

      const retry = card.locator('button:has(svg.lucide-refresh-cw)');
      await retry.hover();
      await expect.poll(() => b.page.getByText('Retry', { exact: true }).count(), { timeout: 5000 }).toBeGreaterThan(0);
      await retry.click();
      const confirm = b.page.getByRole('button', { name: /^(confirm|retry)$/i });
      if (await confirm.count()) await confirm.first().click();

      const final = await waitFor(
        async () => {
          const r = await h().api('GET', `/v1/orders/${order.id}`, { role: 'intake' });
          return r.body.status === 'confirmed' && r.body;
        },
        { what: 'order confirmed after the retry', timeout: 20000 },
      );
      expect(final.history.map((e: any) => e.status)).toEqual(['received', 'failed', 'received', 'confirmed']);
      expect(final.history[2].detail).toBe('retried from the board');
      // Who asked: the operator's key, not the system that ran the job (change 2).
      expect(final.history[2].actor).toEqual({ role: 'operator', name: 'operator' });
      expect(await h().ctx.db('stock').where({ sku: p.sku }).first()).toMatchObject({ on_hand: 5, reserved: 2 });
      await waitFor(async () => (await h().ctx.queues.orders.getJob(order.id))?.isCompleted(), {
        what: 'job completed',
      });
      expect(b.errors).toEqual([]);
    } finally {
      await b.close();
    }
  });
  it('when a viewer opens the board beside a failed job, then it reads the job and its error but has no retry button, and a retry it sends anyway is 403', async () => {
    const { order } = await failedOrderJob(h(), 1);
    const b = await openBrowser({ httpCredentials: { username: 'viewer', password: KEYS.viewer } });
    try {
      expect((await b.page.goto(`${h().baseUrl}/admin/queues/queue/orders?status=failed`))?.status()).toBe(200);
      const card = b.page
        .locator('[class*="card"]')
        .filter({ has: b.page.getByText(order.id, { exact: true }) })
        .last();
      await card.waitFor({ timeout: 15000 });
      await expect.poll(() => card.textContent()).toContain('is not writable (test)');
      expect(await card.locator('button:has(svg.lucide-refresh-cw)').count()).toBe(0);
      expect(await b.page.getByRole('button', { name: /retry all|clean all|pause/i }).count()).toBe(0);
      // The board's own retry call, from its page with the viewer's credentials.
      const status = await b.page.evaluate(
        async (id) => (await fetch(`/admin/queues/api/queues/orders/${id}/retry/failed`, { method: 'PUT' })).status,
        order.id,
      );
      expect(status).toBe(403);
      expect(await (await h().ctx.queues.orders.getJob(order.id))?.isFailed()).toBe(true);
      expect((await h().api('GET', `/v1/orders/${order.id}`, { role: 'viewer' })).body.status).toBe('failed');
      // The dashboard and the metrics are the viewer's to read.
      expect((await b.page.goto(`${h().baseUrl}/dashboard`))?.status()).toBe(200);
      expect((await b.page.goto(`${h().baseUrl}/metrics`))?.status()).toBe(200);
    } finally {
      await b.close();
    }
  });
});
