import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { KEYS, useHarness, waitFor } from '../helpers/harness';
import { snapshot } from '../helpers/snapshot';

const h = useHarness({ workers: false });

type Role = keyof typeof KEYS;
const ROLES: Role[] = ['intake', 'feed', 'operator', 'viewer'];
const MISSING = '0190d6c1-0000-7000-8000-000000000000';

interface Route {
  method: string;
  path: string;
  allowed: Role[];
  /** The operator key is also accepted as the HTTP Basic password (board, dashboard, metrics). */
  browser?: boolean;
  /** A body that would succeed, so that a missing check would show as a change in the database. */
  body?: unknown;
}

/** Every route of the app and who may call it (CONTRACT.md, Authentication). */
function routeTable(f: { customerId: string; sku: string; orderId: string }): Route[] {
  const u = randomBytes(4).toString('hex');
  return [
    {
      method: 'POST',
      path: '/v1/customers',
      allowed: ['intake', 'operator'],
      body: { email: `auth-${u}@example.test`, name: 'Auth' },
    },
    { method: 'GET', path: `/v1/customers/${f.customerId}`, allowed: ['viewer', 'intake', 'operator'] },
    {
      method: 'PATCH',
      path: `/v1/customers/${f.customerId}`,
      allowed: ['operator'],
      body: { name: 'Changed by auth test' },
    },
    { method: 'GET', path: `/v1/customers/${f.customerId}/orders`, allowed: ['viewer', 'intake', 'feed', 'operator'] },
    {
      method: 'POST',
      path: '/v1/products',
      allowed: ['operator'],
      body: { sku: `AUTH-${u}`, name: 'Auth', price_cents: 1, initial_stock: 3 },
    },
    { method: 'GET', path: `/v1/products/${f.sku}`, allowed: ['viewer', 'intake', 'operator'] },
    { method: 'PATCH', path: `/v1/products/${f.sku}`, allowed: ['operator'], body: { price_cents: 7 } },
    { method: 'GET', path: '/v1/inventory', allowed: ['viewer', 'intake', 'operator'] },
    { method: 'GET', path: '/v1/inventory?low_stock=5', allowed: ['viewer', 'intake', 'operator'] },
    {
      method: 'POST',
      path: `/v1/inventory/${f.sku}/adjustments`,
      allowed: ['operator'],
      body: { delta: 1, reason: 'auth test' },
    },
    {
      method: 'POST',
      path: '/v1/orders',
      allowed: ['intake', 'operator'],
      body: { customer_id: f.customerId, lines: [{ sku: f.sku, quantity: 1 }] },
    },
    { method: 'GET', path: '/v1/orders', allowed: ['viewer', 'intake', 'feed', 'operator'] },
    { method: 'GET', path: `/v1/orders/${f.orderId}`, allowed: ['viewer', 'intake', 'feed', 'operator'] },
    {
      method: 'PATCH',
      path: `/v1/orders/${f.orderId}`,
      allowed: ['intake', 'operator'],
      body: { on_insufficient_stock: 'reject' },
    },
    { method: 'POST', path: `/v1/orders/${f.orderId}/fulfill`, allowed: ['feed', 'operator'] },
    { method: 'POST', path: `/v1/orders/${f.orderId}/retry`, allowed: ['operator'] },
    { method: 'GET', path: `/v1/orders/${f.orderId}/notifications`, allowed: ['viewer', 'intake', 'feed', 'operator'] },
    {
      method: 'POST',
      path: `/v1/orders/${f.orderId}/cancel`,
      allowed: ['intake', 'operator'],
      body: { reason: 'auth test' },
    },
    { method: 'DELETE', path: `/v1/orders/${f.orderId}`, allowed: ['intake', 'operator'] },
    {
      method: 'POST',
      path: '/v1/restocks',
      allowed: ['feed', 'operator'],
      body: { event_id: `auth-${u}`, sku: f.sku, quantity: 2 },
    },
    { method: 'POST', path: `/v1/notifications/${MISSING}/resend`, allowed: ['operator'] },
    { method: 'GET', path: '/v1/reports/orders', allowed: ['viewer', 'operator'] },
    { method: 'GET', path: '/v1/reports/inventory', allowed: ['viewer', 'operator'] },
    { method: 'GET', path: '/v1/reports/inventory?format=csv', allowed: ['viewer', 'operator'] },
    { method: 'GET', path: '/v1/reports/ledger', allowed: ['viewer', 'operator'] },
    { method: 'GET', path: '/v1/reports/queues', allowed: ['viewer', 'operator'] },
    { method: 'GET', path: '/admin/queues', allowed: ['viewer', 'operator'], browser: true },
    { method: 'GET', path: '/admin/queues/api/queues', allowed: ['viewer', 'operator'], browser: true },
    { method: 'GET', path: '/dashboard', allowed: ['viewer', 'operator'], browser: true },
    { method: 'GET', path: '/metrics', allowed: ['viewer', 'operator'], browser: true },
    // A viewer reads the board but changes nothing on it.
    { method: 'PUT', path: '/admin/queues/api/queues/orders/pause', allowed: ['operator'], browser: true },
  ];
}

const basic = (password: string) => `Basic ${Buffer.from(`anyone:${password}`).toString('base64')}`;

async function call(route: Route, authorization?: string) {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  let body: string | undefined;
  if (route.body !== undefined) {
    body = JSON.stringify(route.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${h().baseUrl}${route.path}`, { method: route.method, headers, body, redirect: 'manual' });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, code: json?.error?.code as string | undefined, headers: res.headers };
}

describe('auth matrix', () => {
  it('when every route is called without a key, with an unknown key and with each role, then 401/401/403 for the denied (changing nothing) and neither 401 nor 403 for the allowed', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await h().ctx.published.flush();
    const routes = routeTable({ customerId: c.id, sku: p.sku, orderId: o.id });
    const wrong: string[] = [];
    const label = (r: Route, who: string) => `${r.method} ${r.path} as ${who}`;

    // 1. Every denied call, then proof that none of them changed anything.
    const before = await snapshot(h());
    for (const r of routes) {
      const denied: [string, string | undefined, number, string][] = [
        ['no key', undefined, 401, 'unauthorized'],
        ['empty bearer', 'Bearer ', 401, 'unauthorized'],
        ['unknown key', 'Bearer not-a-known-key-0000', 401, 'unauthorized'],
        ['key with a suffix', `Bearer ${KEYS.operator}x`, 401, 'unauthorized'],
        ...ROLES.filter((role) => !r.allowed.includes(role)).map((role): [string, string, number, string] => [
          role,
          `Bearer ${KEYS[role]}`,
          403,
          'forbidden',
        ]),
      ];
      if (r.browser) {
        denied.push(['unknown basic password', basic('not-a-known-key-0000'), 401, 'unauthorized']);
        for (const role of ROLES.filter((x) => !r.allowed.includes(x)))
          denied.push([`${role} as basic password`, basic(KEYS[role]), 403, 'forbidden']);
      }
      for (const [who, authorization, status, code] of denied) {
        const res = await call(r, authorization);
        if (res.status !== status || res.code !== code)
          wrong.push(`${label(r, who)}: expected ${status} ${code}, got ${res.status} ${res.code ?? ''}`);
        if (r.browser && status === 401 && !/^Basic /i.test(res.headers.get('www-authenticate') ?? '')) {
          wrong.push(`${label(r, who)}: 401 without a Basic WWW-Authenticate challenge`);
        }
      }
    }
    const after = await snapshot(h());
    expect.soft(after, 'a denied request changed the database').toEqual(before);

    // 2. Every allowed call gets past the guard (its own outcome, 2xx or 4xx, is other tests' business).
    for (const r of routes) {
      const allowed: [string, string][] = r.allowed.map((role) => [role, `Bearer ${KEYS[role]}`]);
      if (r.browser) allowed.push(['operator as basic password', basic(KEYS.operator)]);
      for (const [who, authorization] of allowed) {
        const res = await call(r, authorization);
        if (res.status === 401 || res.status === 403 || res.status >= 500)
          wrong.push(`${label(r, who)}: allowed but got ${res.status} ${res.code ?? ''}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('when the public routes are called without a key, then they answer 200', async () => {
    await waitFor(async () => h().ctx.redis.status === 'ready', { timeout: 5000, what: 'redis ready' }); // fresh connection
    for (const path of ['/healthz', '/readyz']) {
      const res = await fetch(`${h().baseUrl}${path}`);
      expect(res.status, path).toBe(200);
    }
  });
});
