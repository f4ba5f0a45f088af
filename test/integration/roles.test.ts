import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/platform/config';
import { makeCustomer, makeProduct } from '../helpers/factories';
import { API_KEYS, useHarness, waitFor } from '../helpers/harness';

const ADA = 'ada-intake-key-0123';
const OPS = 'ops1-operator-key-0123';
const h = useHarness({ env: { API_KEYS: `${API_KEYS},ada@intake:${ADA},ops1@operator:${OPS}` } });
const as = (key: string) => ({ authorization: `Bearer ${key}` });

describe('roles and actors', () => {
  it('when named keys act, then their names are the actors of the history entry and the movement; an unnamed key is its role', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const placed = await h().api('POST', '/v1/orders', {
      role: null,
      headers: as(ADA),
      body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] },
    });
    expect(placed.status).toBe(202);
    await waitFor(async () => (await h().api('GET', `/v1/orders/${placed.body.id}`)).body.status === 'confirmed');
    const cancelled = await h().api('POST', `/v1/orders/${placed.body.id}/cancel`, {
      role: null,
      headers: as(ADA),
      body: {},
    });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.history.map((e: any) => [e.status, e.actor])).toEqual([
      ['received', { role: 'intake', name: 'ada' }],
      ['confirmed', { role: 'system', name: 'reserve' }],
      ['cancelled', { role: 'intake', name: 'ada' }],
    ]);
    const adj = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, {
      role: null,
      headers: as(OPS),
      body: { delta: 2, reason: 'found' },
    });
    expect(adj.status).toBe(201);
    expect(adj.body.actor).toEqual({ role: 'operator', name: 'ops1' });
    const row = await h()
      .ctx.db('stock_movements')
      .where({ sku: p.sku, type: 'adjustment' })
      .first('actor_role', 'actor_name');
    expect(row).toEqual({ actor_role: 'operator', actor_name: 'ops1' });
    const plain = await h().api('POST', `/v1/inventory/${p.sku}/adjustments`, { body: { delta: 1, reason: 'x' } });
    expect(plain.body.actor).toEqual({ role: 'operator', name: 'operator' });
  });

  it("when feed reads a customer's orders or an order's notifications, or intake reads a count, then 200 (change 15: feed reads orders, intake reads inventory)", async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] },
    });
    expect(o.status).toBe(202);
    const countId = `cnt-roles-${Date.now()}`;
    const posted = await h().api('POST', '/v1/inventory/counts', {
      role: 'feed',
      body: { count_id: countId, counted_at: new Date().toISOString(), items: [{ sku: p.sku, on_hand: 5 }] },
    });
    expect(posted.status).toBe(202);
    const theirs = await h().api('GET', `/v1/customers/${c.id}/orders`, { role: 'feed' });
    expect(theirs.status, theirs.text).toBe(200);
    expect(theirs.body.data.map((x: { id: string }) => x.id)).toEqual([o.body.id]);
    const notes = await h().api('GET', `/v1/orders/${o.body.id}/notifications`, { role: 'feed' });
    expect(notes.status, notes.text).toBe(200);
    expect(notes.body).toEqual({ data: [] });
    const count = await h().api('GET', `/v1/inventory/counts/${countId}`, { role: 'intake' });
    expect(count.status, count.text).toBe(200);
    expect(count.body.items).toEqual([{ sku: p.sku, counted: 5, expected: 5, variance: 0 }]);
  });

  it('when a viewer reads, then it sees what an operator sees; when it writes, then 403 and nothing changes', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await h().api('POST', '/v1/orders', {
      role: 'intake',
      body: { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] },
    });
    for (const url of [
      `/v1/orders/${o.body.id}`,
      `/v1/products/${p.sku}`,
      '/v1/inventory',
      '/v1/locations',
      '/v1/reports/ledger',
      `/v1/customers/${c.id}`,
    ]) {
      expect((await h().api('GET', url, { role: 'viewer' })).status, url).toBe(200);
    }
    const writes: [string, string, unknown][] = [
      ['POST', `/v1/orders/${o.body.id}/cancel`, {}],
      ['POST', '/v1/products', { sku: `V-${Date.now()}`, name: 'x', price_cents: 1 }],
      ['POST', `/v1/inventory/${p.sku}/adjustments`, { delta: 5, reason: 'x' }],
      ['POST', '/v1/locations', { code: 'viewer-loc', name: 'x' }],
      ['POST', '/v1/restocks', { event_id: `v-${Date.now()}`, sku: p.sku, quantity: 1 }],
    ];
    for (const [method, url, body] of writes) {
      const res = await h().api(method, url, { role: 'viewer', body });
      expect([res.status, res.body.error?.code], `${method} ${url}`).toEqual([403, 'forbidden']);
    }
    expect((await h().api('GET', `/v1/products/${p.sku}`)).body.stock.on_hand).toBe(5);
    expect(await h().ctx.db('locations').where({ code: 'viewer-loc' }).first()).toBeUndefined();
    // The board: a viewer reads the queues, and a pause from it is refused.
    expect((await h().api('GET', '/admin/queues/api/queues', { role: 'viewer' })).status).toBe(200);
    const pause = await h().api('PUT', '/admin/queues/api/queues/orders/pause', { role: 'viewer' });
    expect(pause.status).toBe(403);
    expect(await h().ctx.queues.orders.isPaused()).toBe(false);
  });

  it('when API_KEYS names a key badly, then the configuration is refused with one line', () => {
    for (const bad of [`${'x'.repeat(65)}@intake:0123456789`, 'bad name@intake:0123456789', 'ada@admin:0123456789']) {
      expect(() => loadConfig({ NODE_ENV: 'production', API_KEYS: bad } as Record<string, string>), bad).toThrow(
        /name@role:key/,
      );
    }
    const ok = loadConfig({ NODE_ENV: 'production', API_KEYS: 'ada.b-1@viewer:0123456789,feed:abcdefghij' } as Record<
      string,
      string
    >);
    expect(ok.API_KEYS.map((k) => [k.name, k.role])).toEqual([
      ['ada.b-1', 'viewer'],
      ['feed', 'feed'],
    ]);
  });
});
