import * as fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkInvariants } from '../../src/invariants';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { KEYS, ROOT, useHarness, type Harness } from '../helpers/harness';
import { snapshot, type Snapshot } from '../helpers/snapshot';

/**
 * Property: whatever a client sends to a write endpoint — any body, header or path — the answer is
 * never a 5xx, never carries a stack trace, is JSON, and when it is a 4xx the database is exactly
 * as it was. No workers run, so orders stay where the requests put them.
 */
const h = useHarness();

const RUNS = Number(process.env.HOSTILE_RUNS ?? 5000);
const MiB = 1024 * 1024;

// ---- values a hostile client would send ------------------------------------------------------
const nasty = [
  "' OR '1'='1",
  "'; DROP TABLE orders; --",
  '1; SELECT pg_sleep(5)',
  '$1',
  '\\',
  '"',
  '%',
  '%00',
  '%zz',
  '\u0000',
  'a\u0000b',
  '../../etc/passwd',
  '..%2F..%2Fetc',
  '${7*7}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '\u202egnp.exe',
  '\uFEFF',
  '\uFFFF',
  '\uD800',
  'Ω≈ç√∫',
  '🛒🧾💳',
  'ﷺ',
  'ǅ',
  ' ',
  '',
  'null',
  'undefined',
  'NaN',
  '-0',
  '1e400',
  '0x10',
  'true',
  '[]',
  '{}',
  '__proto__',
  'constructor',
  'prototype',
  'x'.repeat(300),
  'é'.repeat(5000),
];
const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...nasty) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
);
const hostileNumber = fc.oneof(
  fc.constantFrom(
    0,
    -1,
    1,
    10000,
    10001,
    2 ** 31,
    -(2 ** 31) - 1,
    2 ** 53 + 2,
    -(2 ** 53),
    Number.MAX_VALUE,
    1e-320,
    0.5,
    -0,
    1e21,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 4, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const pollution = fc.constantFrom(
  '__proto__',
  'constructor',
  'prototype',
  '__defineGetter__',
  'toString',
  'hasOwnProperty',
  'valueOf',
);

/** Takes a plausible body and breaks it: fields replaced, removed, or joined by pollution keys. */
function mutate(valid: () => Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(valid());
  return fc
    .record({
      replace: keys.length
        ? fc.dictionary(fc.constantFrom(...keys), hostileValue, { maxKeys: 3 })
        : fc.constant({} as Record<string, unknown>),
      drop: fc.subarray(keys, { maxLength: Math.min(2, keys.length) }),
      extra: fc.dictionary(fc.oneof(pollution, hostileString), hostileValue, { maxKeys: 3 }),
      polluteNested: fc.boolean(),
    })
    .map(({ replace, drop, extra, polluteNested }) => {
      const body: Record<string, unknown> = { ...valid() };
      for (const k of drop) delete body[k];
      for (const [k, v] of Object.entries(replace)) body[k] = v;
      // Own properties named like prototype keys (JSON.parse makes them own, as a client's JSON would).
      for (const [k, v] of Object.entries(extra))
        Object.defineProperty(body, k, { value: v, enumerable: true, configurable: true, writable: true });
      if (polluteNested)
        Object.defineProperty(body, '__proto__', { value: { polluted: 'yes', isAdmin: true }, enumerable: true });
      return body;
    });
}

// Bodies that are not built from an object: broken JSON, other top-level values, deep nesting.
const deepArray = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
const rawBodies = fc.constantFrom(
  '',
  '{',
  '{"a":',
  '}',
  'null',
  '[]',
  '""',
  '0',
  'true',
  '"\u0000"',
  '{"a":1,}',
  "{'a':1}",
  '{"a":NaN}',
  '{"a":1e99999}',
  '\uFEFF{}',
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  deepArray(50_000),
  deepObject(20_000),
  `{"lines":${deepArray(50_000)}}`,
  `[${'1,'.repeat(100_000)}1]`,
);

interface Endpoint {
  method: string;
  path: (ids: Ids) => fc.Arbitrary<string>;
  role: keyof typeof KEYS;
  body: (ids: Ids) => fc.Arbitrary<unknown>;
}
interface Ids {
  customer: string;
  otherCustomer: string;
  order: string;
  sku: string;
  otherSku: string;
}

// Paths stay under Node's 16 KiB header limit: beyond it node:http itself answers 431 before the app runs.
const pct = (x: string) =>
  [...Buffer.from(x, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9._~-]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
const UUIDISH = fc.oneof(
  fc.uuid(),
  hostileString.map((x) => pct(x).slice(0, 6000)),
  fc.constantFrom(
    '%',
    '%zz',
    '%E0%A4%A',
    '..%2F..%2F',
    '%00',
    'null',
    '0',
    '-1',
    "1'%20OR%20'1'='1",
    'x'.repeat(5000),
    '%F0%9F%9B%92',
    ';',
    '',
  ),
);
const idParam = (real: (ids: Ids) => string) => (ids: Ids) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(real(ids)) }, { weight: 2, arbitrary: UUIDISH });
const skuParam = (ids: Ids) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(ids.sku) }, { weight: 2, arbitrary: UUIDISH });

const lines = (ids: Ids) => [{ sku: ids.sku, quantity: 1 }];
const ENDPOINTS: Endpoint[] = [
  {
    method: 'POST',
    path: () => fc.constant('/v1/customers'),
    role: 'intake',
    body: () =>
      mutate(() => ({
        email: `h-${Math.random().toString(36).slice(2)}@example.test`,
        name: 'H',
        phone: '+1 555',
        webhook_url: 'https://example.test/h',
      })),
  },
  {
    method: 'PATCH',
    path: (ids) => idParam((i) => i.customer)(ids).map((id) => `/v1/customers/${id}`),
    role: 'operator',
    body: () =>
      mutate(() => ({
        email: `p-${Math.random().toString(36).slice(2)}@example.test`,
        name: 'P',
        phone: null,
        webhook_url: null,
      })),
  },
  {
    method: 'POST',
    path: () => fc.constant('/v1/products'),
    role: 'operator',
    body: () =>
      mutate(() => ({
        sku: `H-${Math.random().toString(36).slice(2, 10)}`,
        name: 'H',
        price_cents: 100,
        initial_stock: 3,
      })),
  },
  {
    method: 'POST',
    path: (ids) => skuParam(ids).map((s) => `/v1/inventory/${s}/adjustments`),
    role: 'operator',
    body: () => mutate(() => ({ delta: 1, reason: 'count' })),
  },
  {
    method: 'POST',
    path: () => fc.constant('/v1/orders'),
    role: 'intake',
    body: (ids) =>
      mutate(() => ({
        customer_id: ids.customer,
        lines: lines(ids),
        on_insufficient_stock: 'backorder',
        external_ref: 'r',
      })),
  },
  {
    method: 'PATCH',
    path: (ids) => idParam((i) => i.order)(ids).map((id) => `/v1/orders/${id}`),
    role: 'intake',
    body: (ids) => mutate(() => ({ lines: [{ sku: ids.otherSku, quantity: 2 }], on_insufficient_stock: 'reject' })),
  },
  {
    method: 'POST',
    path: (ids) => idParam((i) => i.order)(ids).map((id) => `/v1/orders/${id}/cancel`),
    role: 'intake',
    body: () => mutate(() => ({ reason: 'r' })),
  },
  {
    method: 'DELETE',
    path: (ids) => idParam((i) => i.order)(ids).map((id) => `/v1/orders/${id}`),
    role: 'intake',
    body: () => mutate(() => ({ reason: 'r' })),
  },
  {
    method: 'POST',
    path: (ids) => idParam((i) => i.order)(ids).map((id) => `/v1/orders/${id}/fulfill`),
    role: 'feed',
    body: () => mutate(() => ({})),
  },
  {
    method: 'POST',
    path: (ids) => idParam((i) => i.order)(ids).map((id) => `/v1/orders/${id}/retry`),
    role: 'operator',
    body: () => mutate(() => ({})),
  },
  {
    method: 'POST',
    path: () => fc.constant('/v1/restocks'),
    role: 'feed',
    body: (ids) =>
      fc.oneof(
        mutate(() => ({
          event_id: `e-${Math.random()}`,
          sku: ids.sku,
          quantity: 2,
          occurred_at: '2026-11-25T10:00:00Z',
        })),
        mutate(() => ({
          events: [
            { event_id: `e-${Math.random()}`, sku: ids.sku, quantity: 2 },
            { event_id: 'bad', sku: ids.sku, quantity: -1 },
          ],
        })),
      ),
  },
];

const headerText = fc.string({
  unit: fc.constantFrom(...' !"#$%&\'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~'.split('')),
  maxLength: 300,
});
const contentTypes = fc.constantFrom(
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'application/merge-patch+json',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  '',
  'json',
  'application/json, text/html',
  undefined,
);

const request = (ids: Ids) =>
  fc.constantFrom(...ENDPOINTS).chain((ep) =>
    fc.record({
      ep: fc.constant(ep),
      path: ep.path(ids),
      body: fc.oneof(
        { weight: 8, arbitrary: ep.body(ids).map((b) => JSON.stringify(b)) },
        { weight: 1, arbitrary: rawBodies },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
      contentType: fc.oneof(
        { weight: 8, arbitrary: fc.constant('application/json') },
        { weight: 2, arbitrary: contentTypes },
      ),
      auth: fc.oneof(
        { weight: 6, arbitrary: fc.constant(`Bearer ${KEYS.operator}`) },
        { weight: 3, arbitrary: fc.constant(`Bearer ${KEYS[ep.role]}`) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            '',
            'Bearer',
            `Basic ${Buffer.from(`x:${KEYS.operator}`).toString('base64')}`,
            `bearer ${KEYS.operator}x`,
            `Bearer ${KEYS.intake}`,
          ),
        },
        { weight: 1, arbitrary: headerText.map((t) => `Bearer ${t}`) },
      ),
      extra: fc.dictionary(
        fc.constantFrom(
          'idempotency-key',
          'idempotency-key',
          'idempotency-key',
          'x-request-id',
          'accept',
          'origin',
          'x-forwarded-for',
          'content-language',
        ),
        headerText,
        { maxKeys: 3 },
      ),
      encoding: fc.oneof(
        { weight: 19, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-garbage', 'gzip, gzip') },
      ),
    }),
  );

const STACK = [
  /\n\s+at /,
  /node_modules/,
  /\.(ts|js|mjs|cjs):\d+/,
  new RegExp(ROOT.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
  /\b(TypeError|RangeError|SyntaxError|ReferenceError)\b/,
];

async function send(hh: Harness, r: fc.Arbitrary<any> extends fc.Arbitrary<infer T> ? T : never) {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.extra as Record<string, string>)) headers[k] = v;
  if (r.auth) headers.authorization = r.auth;
  if (r.encoding) headers['content-encoding'] = r.encoding;
  if (r.contentType !== undefined && r.body !== undefined) headers['content-type'] = r.contentType;
  const res = await fetch(`${hh.baseUrl}${r.path}`, { method: r.ep.method, headers, body: r.body });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

describe('hostile input at every write endpoint (fast-check)', () => {
  let ids: Ids;
  beforeAll(() => undefined);

  it(`when ${RUNS} generated requests (bodies, headers, paths) hit the write endpoints, then none is a 5xx or leaks a stack, every answer is JSON, and every 4xx changes nothing`, async () => {
    const c = await makeCustomer(h());
    const c2 = await makeCustomer(h());
    const p = await makeProduct(h(), 50);
    const p2 = await makeProduct(h(), 50);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    ids = { customer: c.id, otherCustomer: c2.id, order: o.id, sku: p.sku, otherSku: p2.sku };

    let baseline: Snapshot = await snapshot(h());
    const seen: Record<string, number> = {};
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(request(ids), async (r) => {
        const res = await send(h(), r);
        seen[`${res.status}`] = (seen[`${res.status}`] ?? 0) + 1;
        const what = `${r.ep.method} ${r.path.slice(0, 120)} → ${res.status} ${res.text.slice(0, 300)}`;
        expect(res.status, what).toBeLessThan(500);
        for (const re of STACK) expect(re.test(res.text), `${what} matches ${re}`).toBe(false);
        expect(res.type, what).toMatch(/^application\/json/);
        const parsed = JSON.parse(res.text);
        if (res.status >= 400) {
          expect(typeof parsed.error?.code, what).toBe('string');
          const now = await snapshot(h());
          expect(now, `${what} changed the database`).toEqual(baseline);
        } else {
          baseline = await snapshot(h()); // a legitimate write: the new state is the baseline
        }
      }),
      {
        numRuns: RUNS,
        endOnFailure: true,
        seed: process.env.HOSTILE_SEED ? Number(process.env.HOSTILE_SEED) : undefined,
        // A short report: seed, path and a truncated counterexample (a generated body may be megabytes).
        asyncReporter: async (out) => {
          if (!out.failed) return;
          const example = JSON.stringify(out.counterexample?.[0], (k, v) =>
            k === 'ep' ? `${v.method} ${v.role}` : v,
          )?.slice(0, 1500);
          throw new Error(
            `hostile input failed after ${out.numRuns} runs (HOSTILE_SEED=${out.seed}, path ${out.counterexamplePath}): ${String((out.errorInstance as Error)?.message).slice(0, 800)}\n${example}`,
          );
        },
      },
    );

    // Nothing a client sent polluted a prototype of the process that parsed it.
    expect(({} as any).polluted).toBeUndefined();
    expect(({} as any).isAdmin).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
    const report = await checkInvariants(h().ctx.db, { graceSeconds: 3600 });
    expect(report.problems).toEqual([]);
    process.stdout.write(`HOSTILE ${RUNS} runs in ${Date.now() - started} ms; statuses ${JSON.stringify(seen)}\n`);
  }, 300_000);

  it('when bodies are over 1 MiB, nested 100,000 deep or full of prototype keys, then none is a 5xx, the invalid ones are 4xx and change nothing', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const order = (extra: string, key?: string): [string, string, string, Record<string, string>] => [
      'POST',
      '/v1/orders',
      `{"customer_id":"${c.id}","lines":[{"sku":"${p.sku}","quantity":1}]${extra}}`,
      key ? { 'idempotency-key': key } : {},
    ];
    // 4xx: the request is invalid and must change nothing.
    const invalid: [string, string, string, Record<string, string>][] = [
      order(`,"external_ref":"${'x'.repeat(MiB)}"`),
      [
        'POST',
        '/v1/restocks',
        JSON.stringify({
          events: Array.from({ length: 30_000 }, (_, i) => ({ event_id: `big-${i}`, sku: p.sku, quantity: 1 })),
        }),
        {},
      ],
      ['POST', '/v1/customers', deepObject(100_000), {}],
      ['POST', '/v1/orders', `{"customer_id":"${c.id}","lines":${deepArray(100_000)}}`, {}],
      ['PATCH', `/v1/customers/${c.id}`, `{"name":${deepObject(100_000)}}`, {}],
      order(`,"on_insufficient_stock":"maybe","__proto__":{"on_insufficient_stock":"reject"}`),
      ['POST', '/v1/orders', `{"customer_id":"${c.id}","lines":[{"sku":"${p.sku}","__proto__":{"quantity":5}}]}`, {}],
      ['POST', '/v1/orders', `{"__proto__":{"customer_id":"${c.id}","lines":[{"sku":"${p.sku}","quantity":1}]}}`, {}],
      [
        'POST',
        '/v1/orders',
        `{"constructor":{"prototype":{"customer_id":"${c.id}"}},"lines":[{"sku":"${p.sku}","quantity":1}]}`,
        {},
      ],
    ];
    // Valid orders carrying junk in a field the contract does not know: accepted or refused, never a 5xx.
    const odd: [string, string, string, Record<string, string>][] = [
      order(`,"x":${deepArray(100_000)}`),
      order(`,"x":${deepArray(100_000)}`, 'deep-with-key'),
      order(`,"x":${deepObject(50_000)}`, 'deep-object-with-key'),
      order(`,"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}`, 'proto-with-key'),
    ];
    const call = async ([method, path, body, headers]: [string, string, string, Record<string, string>]) => {
      const res = await fetch(`${h().baseUrl}${path}`, {
        method,
        body,
        headers: { authorization: `Bearer ${KEYS.operator}`, 'content-type': 'application/json', ...headers },
      });
      const text = await res.text();
      const what = `${method} ${path} ${body.length} bytes ${JSON.stringify(headers)} → ${res.status} ${text.slice(0, 200)}`;
      expect(res.status, what).toBeLessThan(500);
      for (const re of STACK) expect(re.test(text), `${what} matches ${re}`).toBe(false);
      return { status: res.status, what };
    };
    const before = await snapshot(h());
    for (const req of invalid) {
      const { status, what } = await call(req);
      expect(status, what).toBeGreaterThanOrEqual(400);
    }
    expect(await snapshot(h())).toEqual(before);
    for (const req of odd) await call(req);
    expect(({} as any).polluted).toBeUndefined();
  });
});
