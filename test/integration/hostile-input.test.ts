import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACCESS } from '../../src/http/access';
import { OPERATIONS, type Operation } from '../../src/http/openapi';
import { checkInvariants } from '../../src/invariants';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { KEYS, ROOT, useHarness, waitFor, type Harness } from '../helpers/harness';
import { snapshot, snapshotAll, type Snapshot } from '../helpers/snapshot';

/**
 * Property: whatever a client sends to any operation of the OpenAPI table (src/http/openapi.ts
 * OPERATIONS, iterated, so a new endpoint is covered as soon as it is in the table) — any body,
 * query string, path id, header or key — the answer is never a 5xx, never carries a stack trace,
 * a 4xx is the error envelope, and a 4xx (or any read) leaves every table and every BullMQ
 * queue's job counts exactly as they were. Workers run only to build the fixture, so afterwards
 * orders stay where the requests put them.
 *
 * HOSTILE_RUNS sets the number of requests (default 5000, about 30 s on 2 idle cores);
 * HOSTILE_SEED replays a run (the seed is printed on the HOSTILE-FIGURES line and on failure).
 */
const h = useHarness();

const RUNS = Number(process.env.HOSTILE_RUNS ?? 5000);
const SEED = process.env.HOSTILE_SEED ? Number(process.env.HOSTILE_SEED) : (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
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

/** Takes a plausible body and (mostly) breaks it: fields replaced, removed, or joined by pollution keys. */
function mutate(valid: () => Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(valid());
  const broken = fc
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
  // Now and then the plausible body as it is, so that writes succeed and move the state on.
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(null).map(() => valid() as unknown) },
    { weight: 4, arbitrary: broken },
  );
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

// ---- Every operation of the OpenAPI table ---------------------------------------------------

/** What a request may name: real ids of the fixture (so some requests reach deep validation and succeed). */
interface Ids {
  customers: string[];
  orders: string[];
  skus: string[];
  locations: string[];
  counts: string[];
  inbound: string[];
  endpoints: string[];
  notifications: string[];
  bulk: string[];
}

/** Unique values for fields that must be unique (deterministic: a replayed seed makes the same ones). */
let counter = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++counter}`;
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

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
    '00000000-0000-0000-0000-000000000000',
    'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
  ),
);
const oneOf = (pick: (ids: Ids) => string[]) => (ids: Ids) =>
  fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...pick(ids)) }, { weight: 2, arbitrary: UUIDISH });

/**
 * A generator per path parameter, keyed by the path's first segment after /v1 and the parameter's
 * name. An operation whose parameter has none here fails the test (so a new endpoint is noticed).
 */
const PARAMS: Record<string, (ids: Ids) => fc.Arbitrary<string>> = {
  'orders:id': oneOf((i) => i.orders),
  'customers:id': oneOf((i) => i.customers),
  'bulk-actions:id': oneOf((i) => i.bulk),
  'webhook-endpoints:id': oneOf((i) => i.endpoints),
  'notifications:id': oneOf((i) => i.notifications),
  'products:sku': oneOf((i) => i.skus),
  'inventory:sku': oneOf((i) => i.skus),
  'inventory:count_id': oneOf((i) => i.counts),
  'locations:code': oneOf((i) => i.locations),
  'inbound:inbound_id': oneOf((i) => i.inbound),
};

/** A plausible body per request schema of the OpenAPI table (op.body.ref), to be broken by `mutate`. */
const BODIES: Record<string, (ids: Ids) => fc.Arbitrary<unknown>> = {
  CreateCustomer: () =>
    mutate(() => ({
      email: `${uniq('h')}@example.test`,
      name: 'H',
      phone: '+1 555',
      webhook_url: 'https://example.test/h',
      metadata: { k: 'v' },
    })),
  UpdateCustomer: () => mutate(() => ({ name: 'P', phone: null, webhook_url: null, metadata: { a: 'b' } })),
  CreateProduct: () =>
    mutate(() => ({ sku: uniq('H'), name: 'H', price_cents: 100, initial_stock: 3, low_stock_threshold: 1 })),
  UpdateProduct: () => mutate(() => ({ name: 'N', price_cents: 120, low_stock_threshold: 2 })),
  Adjustment: () => mutate(() => ({ delta: 1, reason: 'count', location: 'main' })),
  TransferRequest: () => mutate(() => ({ from: 'main', to: 'wh2', quantity: 1, reason: 'move' })),
  CountRequest: (ids) =>
    mutate(() => ({
      count_id: uniq('count'),
      location: 'main',
      counted_at: minutesAgo(1),
      items: [{ sku: ids.skus[0], on_hand: 40 }],
    })),
  CreateLocation: () => mutate(() => ({ code: uniq('L').slice(0, 32), name: 'L', priority: 50, active: true })),
  UpdateLocation: () => mutate(() => ({ name: 'L2', priority: 60 })),
  PlaceOrder: (ids) =>
    mutate(() => ({
      customer_id: ids.customers[0],
      lines: [{ sku: ids.skus[0], quantity: 1 }],
      on_insufficient_stock: 'backorder',
      external_ref: uniq('ref'),
      metadata: { channel: 'web' },
    })),
  PatchOrder: (ids) => mutate(() => ({ lines: [{ sku: ids.skus[1], quantity: 2 }], on_insufficient_stock: 'reject' })),
  CancelOrder: () => mutate(() => ({ reason: 'r' })),
  ShipmentRequest: (ids) =>
    mutate(() => ({
      shipment_id: uniq('ship'),
      location: 'main',
      lines: [{ sku: ids.skus[0], quantity: 1 }],
      carrier: 'c',
      tracking: 't',
    })),
  ReturnRequest: (ids) =>
    mutate(() => ({
      return_id: uniq('ret'),
      lines: [{ sku: ids.skus[0], quantity: 1, disposition: 'restock' }],
      reason: 'r',
    })),
  EmptyBody: () => mutate(() => ({})),
  RestockRequest: (ids) =>
    fc.oneof(
      mutate(() => ({ event_id: uniq('e'), sku: ids.skus[0], quantity: 2, occurred_at: minutesAgo(5) })),
      mutate(() => ({
        events: [
          { event_id: uniq('e'), sku: ids.skus[0], quantity: 2, location: 'wh2' },
          { event_id: 'bad', sku: ids.skus[0], quantity: -1 },
        ],
      })),
    ),
  BulkRequest: (ids) =>
    fc.oneof(
      mutate(() => ({ action: 'retry_orders', filter: { status: 'failed' }, dry_run: true })),
      mutate(() => ({ action: 'cancel_orders', filter: { ids: [ids.orders[0]] }, reason: 'bulk', dry_run: true })),
      mutate(() => ({ action: 'resend_deliveries', filter: { status: 'failed' }, dry_run: false })),
    ),
  CreateInbound: (ids) =>
    mutate(() => ({ inbound_id: uniq('in'), sku: ids.skus[0], quantity: 5, expected_at: minutesAgo(-600) })),
  PatchInbound: () => mutate(() => ({ quantity: 6, expected_at: minutesAgo(-700) })),
  CreateWebhookEndpoint: () =>
    mutate(() => ({ url: 'https://example.test/hook', types: ['order.confirmed'], description: 'd' })),
  UpdateWebhookEndpoint: () => mutate(() => ({ description: 'e', types: ['*'] })),
  RecoverWebhookEndpoint: () => mutate(() => ({ since: minutesAgo(60) })),
};

/** Values for query parameters: plausible ones for every name, hostile ones, and unknown names. */
const queryValue = (ids: Ids) =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        '1',
        '0',
        '-1',
        '200',
        '201',
        '1e3',
        'abc',
        '2026-12-01',
        '2026-12-01T00:00:00Z',
        '2026-13-45',
        'csv',
        'json',
        'confirmed',
        'failed',
        'awaiting_stock',
        'location',
        'main',
        'order.confirmed,shipment.created',
        'true',
        ids.skus[0],
        ids.orders[0],
        ids.customers[0],
      ),
    },
    { weight: 2, arbitrary: hostileString },
    { weight: 1, arbitrary: hostileNumber.map(String) },
  );
const queryString = (ids: Ids, names: string[]) =>
  fc
    .array(
      fc.tuple(
        fc.oneof(
          { weight: 6, arbitrary: names.length ? fc.constantFrom(...names) : hostileString },
          { weight: 1, arbitrary: hostileString },
          { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'limit[]', 'a[b]', '') },
        ),
        queryValue(ids),
        fc.boolean(),
      ),
      { maxLength: 5 }, // a name may repeat: ?limit=1&limit=2
    )
    .map((kv) =>
      kv.length === 0
        ? ''
        : // Percent-encoded, or as typed (bare % and unicode left for the URL parser and the server).
          `?${kv.map(([k, v, raw]) => (raw ? `${pct(k)}=${pct(v)}` : `${k.replace(/[&#=\s]/g, '')}=${v.replace(/[&#\s]/g, '')}`)).join('&')}`.slice(
            0,
            8000,
          ),
    );

// Bodies as the bytes a client sends: duplicate keys (the last wins in JSON.parse) and a body over 1 MiB.
const withDuplicateKey = (json: string, value: unknown) => {
  const m = /^\{"([^"\\]*)":/.exec(json);
  return m && json.endsWith('}') ? `${json.slice(0, -1)},"${m[1]}":${JSON.stringify(value) ?? 'null'}}` : json;
};
const HUGE = `{"x":"${'a'.repeat(MiB + 10)}"}`;

interface Generated {
  op: Operation;
  key: string;
  path: string;
  body: string | undefined;
  contentType: string | undefined;
  auth: string | undefined;
  role: string;
  extra: Record<string, string>;
  encoding: string | undefined;
}

const headerText = fc.string({
  unit: fc.constantFrom(...' !"#$%&\'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~'.split('')),
  maxLength: 300,
});
const contentTypes = fc.constantFrom(
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
  'APPLICATION/JSON',
  undefined,
);

const opKey = (op: Operation) => `${op.method.toUpperCase()} ${op.path}`;
const segment = (path: string) => path.split('/')[path.startsWith('/v1/') ? 2 : 1];
const paramsOf = (path: string) => [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
/** The operations the table has and this test cannot generate: must be empty. */
function missingGenerators(ops: readonly Operation[] = OPERATIONS): string[] {
  const out: string[] = [];
  for (const op of ops) {
    for (const p of paramsOf(op.path))
      if (!PARAMS[`${segment(op.path)}:${p}`]) out.push(`${opKey(op)}: no generator for {${p}}`);
    if (op.body && !BODIES[op.body.ref]) out.push(`${opKey(op)}: no body generator for ${op.body.ref}`);
  }
  return out;
}

function opRequest(op: Operation, ids: Ids): fc.Arbitrary<Generated> {
  const params = paramsOf(op.path);
  const path = fc
    .tuple(...params.map((p) => PARAMS[`${segment(op.path)}:${p}`](ids)))
    .map((vals) => params.reduce((acc, p, i) => acc.replace(`{${p}}`, vals[i] as string), op.path));
  const query = queryString(ids, op.query ? Object.keys(op.query.shape) : []);
  const canHaveBody = op.method !== 'get';
  const plausible = op.body ? BODIES[op.body.ref](ids) : fc.constant({});
  const body: fc.Arbitrary<string | undefined> = canHaveBody
    ? fc.oneof(
        { weight: 12, arbitrary: plausible.map((b) => JSON.stringify(b)) },
        {
          weight: 1,
          arbitrary: fc.tuple(plausible, hostileValue).map(([b, v]) => withDuplicateKey(JSON.stringify(b), v)),
        },
        { weight: 2, arbitrary: rawBodies },
        { weight: 1, arbitrary: fc.constant(HUGE) },
        { weight: 2, arbitrary: fc.constant(undefined) },
      )
    : fc.constant(undefined);
  const roles = Object.keys(KEYS) as (keyof typeof KEYS)[];
  const allowed = op.access === 'public' ? [] : ['operator', ...ACCESS[op.access]];
  return fc
    .record({
      op: fc.constant(op),
      key: fc.constant(opKey(op)),
      path: fc.tuple(path, query).map(([p, q]) => `${p}${op.query || q.length % 3 === 0 ? q : ''}`),
      body,
      contentType: fc.oneof(
        { weight: 8, arbitrary: fc.constant('application/json' as string | undefined) },
        { weight: 2, arbitrary: contentTypes },
      ),
      // Every role key, the operation's own ones more often, and broken credentials.
      role: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...(allowed.length ? allowed : roles)) },
        { weight: 3, arbitrary: fc.constantFrom(...roles) },
        { weight: 1, arbitrary: fc.constantFrom('none', 'broken') },
      ),
      auth: fc.constant(undefined),
      extra: fc.dictionary(
        fc.constantFrom(
          'idempotency-key',
          'idempotency-key',
          'x-request-id',
          'accept',
          'origin',
          'x-forwarded-for',
          'content-language',
          'if-none-match',
          'range',
          'x-http-method-override',
        ),
        fc.oneof(headerText, fc.constantFrom('x'.repeat(256), 'POST', 'DELETE', 'bytes=0-1', '*')),
        { maxKeys: 3 },
      ),
      encoding: fc.oneof(
        { weight: 19, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-garbage', 'gzip, gzip') },
      ),
    })
    .chain((r) =>
      (r.role === 'broken'
        ? fc.oneof(
            fc.constantFrom(
              '',
              'Bearer',
              `Basic ${Buffer.from(`x:${KEYS.operator}`).toString('base64')}`,
              `Basic ${Buffer.from(`x:${KEYS.viewer}`).toString('base64')}`,
              `bearer ${KEYS.operator}x`,
              `Bearer ${KEYS.operator} `,
              `Bearer  ${KEYS.operator}`,
            ),
            headerText.map((t) => `Bearer ${t}`),
          )
        : fc.constant(r.role === 'none' ? undefined : `Bearer ${KEYS[r.role as keyof typeof KEYS]}`)
      ).map((auth) => ({ ...r, auth })),
    );
}

const STACK = [
  /\n\s+at /,
  /node_modules/,
  /\.(ts|js|mjs|cjs):\d+/,
  new RegExp(ROOT.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
  /\b(TypeError|RangeError|SyntaxError|ReferenceError)\b/,
];

async function send(hh: Harness, r: Generated) {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.extra)) headers[k] = v;
  if (r.auth !== undefined) headers.authorization = r.auth;
  if (r.encoding) headers['content-encoding'] = r.encoding;
  if (r.contentType !== undefined && r.body !== undefined) headers['content-type'] = r.contentType;
  const res = await fetch(`${hh.baseUrl}${r.path}`, {
    method: r.op.method.toUpperCase(),
    headers,
    body: r.body,
    redirect: 'manual',
  });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

/** After a successful write: wait until every job its outbox rows promise is in BullMQ (published after commit). */
async function settled(hh: Harness, sinceOutboxId: number): Promise<number> {
  const rows: { id: string; queue: string; job_id: string }[] = (
    await hh.ctx.db.raw('SELECT id, queue, job_id FROM outbox WHERE id > ? ORDER BY id', [sinceOutboxId])
  ).rows;
  for (const r of rows) {
    const q = (hh.ctx.queues as Record<string, import('bullmq').Queue>)[r.queue];
    await waitFor(async () => (await q.getJob(r.job_id)) !== undefined, {
      timeout: 5000,
      interval: 5,
      what: `job ${r.job_id}`,
    });
  }
  return rows.length ? Number(rows[rows.length - 1].id) : sinceOutboxId;
}

/** The fixture: every kind of id an operation names, with orders confirmed, shipped and waiting. */
async function fixture(hh: Harness): Promise<Ids> {
  // The first customer's webhooks go nowhere (port 9, refused): its notifications exist and fail.
  const customers = [(await makeCustomer(hh, { webhook_url: 'http://127.0.0.1:9/h' })).id, (await makeCustomer(hh)).id];
  const wh2 = await hh.api('POST', '/v1/locations', { body: { code: 'wh2', name: 'Second', priority: 200 } });
  expect(wh2.status, wh2.text).toBe(201);
  const p = await makeProduct(hh, 60);
  const p2 = await makeProduct(hh, 60);
  const p3 = await makeProduct(hh, 1);
  const skus = [p.sku, p2.sku, p3.sku];
  const workers = await hh.startWorkers();
  const orders: string[] = [];
  for (let i = 0; i < 6; i++) orders.push((await placeOrder(hh, customers[i % 2], [{ sku: p.sku, quantity: 1 }])).id);
  orders.push((await placeOrder(hh, customers[0], [{ sku: p3.sku, quantity: 5 }])).id); // waits
  for (const id of orders.slice(0, 6)) await untilStatus(hh, id, 'confirmed');
  await untilStatus(hh, orders[6], 'awaiting_stock');
  // One shipped in part (a line of 2: 1 shipped), one completed: returns have something to return.
  const two = (await placeOrder(hh, customers[1], [{ sku: p2.sku, quantity: 2 }])).id;
  await untilStatus(hh, two, 'confirmed');
  const ship = await hh.api('POST', `/v1/orders/${two}/shipments`, {
    body: { shipment_id: uniq('s'), lines: [{ sku: p2.sku, quantity: 1 }] },
  });
  expect(ship.status, ship.text).toBe(201);
  orders.push(two);
  const ff = await hh.api('POST', `/v1/orders/${orders[5]}/fulfill`, { role: 'feed' });
  expect(ff.status, ff.text).toBe(200);
  const countId = uniq('count');
  const count = await hh.api('POST', '/v1/inventory/counts', {
    role: 'feed',
    body: { count_id: countId, counted_at: minutesAgo(1), items: [{ sku: p2.sku, on_hand: 58 }] },
  });
  expect(count.status, count.text).toBe(202);
  const inboundId = uniq('in');
  const inb = await hh.api('POST', '/v1/inbound', {
    role: 'feed',
    body: { inbound_id: inboundId, sku: p3.sku, quantity: 4, expected_at: minutesAgo(-60) },
  });
  expect(inb.status, inb.text).toBe(201);
  const ep = await hh.api('POST', '/v1/webhook-endpoints', {
    body: { url: 'https://example.test/ep', types: ['*'] },
  });
  expect(ep.status, ep.text).toBe(201);
  const bulk = await hh.api('POST', '/v1/bulk-actions', {
    body: { action: 'retry_orders', filter: { ids: [orders[0]] } },
  });
  expect(bulk.status, bulk.text).toBe(202);
  await waitFor(async () => (await hh.api('GET', `/v1/bulk-actions/${bulk.body.id}`)).body.status === 'completed');
  const notifications = await waitFor(async () => {
    const rows = await hh.ctx.db('notifications').select('id').limit(3);
    return rows.length > 0 && rows.map((n: { id: string }) => n.id);
  });
  await workers.close();
  return {
    customers,
    orders,
    skus,
    locations: ['main', 'wh2'],
    counts: [countId],
    inbound: [inboundId],
    endpoints: [ep.body.id],
    notifications,
    bulk: [bulk.body.id],
  };
}

describe('hostile input at every operation of the OpenAPI table (fast-check)', () => {
  it('has a generator for every path parameter and request body of the operation table', () => {
    expect(missingGenerators()).toEqual([]);
    // …and would say so for an operation added without one.
    const widget = {
      ...OPERATIONS.find((op) => op.method === 'post' && op.body)!,
      path: '/v1/widgets/{widget_id}',
      body: { ref: 'CreateWidget' },
    } as unknown as Operation;
    expect(missingGenerators([...OPERATIONS, widget])).toEqual([
      'POST /v1/widgets/{widget_id}: no generator for {widget_id}',
      'POST /v1/widgets/{widget_id}: no body generator for CreateWidget',
    ]);
  });

  it('notices a change in any table and in any queue (so the property can fail)', async () => {
    const before = await snapshotAll(h(), { queues: true });
    // Tables the first snapshot helper never looked at, a late column left out, and a queue.
    await h().ctx.db('locations').insert({ code: 'snap-x', name: 'X' });
    const afterRow = await snapshotAll(h(), { queues: true });
    expect(afterRow.locations).not.toBe(before.locations);
    await h().ctx.db('locations').where({ code: 'snap-x' }).delete();
    expect(await snapshotAll(h(), { queues: true })).toEqual(before);
    await h().ctx.queues.bulk.add('x', {}, { jobId: 'snap-job' });
    const afterJob = await snapshotAll(h(), { queues: true });
    expect(afterJob['queue:bulk']).not.toBe(before['queue:bulk']);
    expect(Object.keys(before)).toEqual(
      expect.arrayContaining(['webhook_endpoints', 'stock_counts', 'shipments', 'returns', 'bulk_actions', 'inbound']),
    );
  });

  it(`when ${RUNS} generated requests (bodies, query strings, path ids, headers, every role key) hit every operation, then none is a 5xx or leaks a stack, every 4xx is the error envelope, and no 4xx changes the database or the queues`, async () => {
    expect(missingGenerators()).toEqual([]);
    const ids = await fixture(h());
    let outboxId = Number((await h().ctx.db('outbox').max({ m: 'id' }).first())?.m ?? 0);
    let baseline: Snapshot = await snapshotAll(h(), { queues: true });
    /** Requests answered since `baseline` was taken, none of which may have changed anything. */
    let pending: string[] = [];
    let verified = 0;
    const statuses: Record<string, number> = {};
    const perOp = new Map<string, Record<string, number>>(OPERATIONS.map((op) => [opKey(op), {}]));
    const started = Date.now();
    const verify = async () => {
      if (pending.length === 0) return;
      const now = await snapshotAll(h(), { queues: true });
      expect(now, `one of these changed the database or a queue:\n${pending.join('\n')}`).toEqual(baseline);
      verified += pending.length;
      pending = [];
    };
    const request = fc.constantFrom(...OPERATIONS).chain((op) => opRequest(op, ids));
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        // A write may succeed: what came before it is checked first, against the state before it.
        if (r.op.method !== 'get') await verify();
        const res = await send(h(), r);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        const tally = perOp.get(r.key)!;
        tally[res.status] = (tally[res.status] ?? 0) + 1;
        const what = `${r.key} as ${r.role}: ${r.op.method.toUpperCase()} ${r.path.slice(0, 160)} → ${res.status} ${res.text.slice(0, 300)}`;
        expect(res.status, what).toBeLessThan(500);
        for (const re of STACK) expect(re.test(res.text), `${what} matches ${re}`).toBe(false);
        if (res.status >= 400) {
          expect(res.type, what).toMatch(/^application\/json/);
          const body = JSON.parse(res.text);
          expect(Object.keys(body), what).toEqual(['error']);
          expect(Object.keys(body.error).sort(), what).toEqual(['code', 'details', 'message']);
          expect(typeof body.error.code, what).toBe('string');
          expect(typeof body.error.message, what).toBe('string');
          expect(body.error.message.length, what).toBeGreaterThan(0);
          expect(Array.isArray(body.error.details), what).toBe(true);
          for (const d of body.error.details) {
            expect(typeof d.path, what).toBe('string');
            expect(typeof d.message, what).toBe('string');
          }
        } else if (/^application\/json/.test(res.type)) JSON.parse(res.text);
        if (res.status >= 400 || r.op.method === 'get') {
          pending.push(what.slice(0, 400)); // a 4xx, or a read: must change nothing
          if (pending.length >= 50) await verify();
        } else {
          outboxId = await settled(h(), outboxId); // a legitimate write: its new state is the baseline
          baseline = await snapshotAll(h(), { queues: true });
        }
      }),
      {
        numRuns: RUNS,
        endOnFailure: true,
        seed: SEED,
        // A short report: seed, path and a truncated counterexample (a generated body may be megabytes).
        asyncReporter: async (out) => {
          if (!out.failed) return;
          const example = JSON.stringify(out.counterexample?.[0], (k, v) =>
            k === 'op' ? undefined : typeof v === 'string' && v.length > 300 ? `${v.slice(0, 300)}…(${v.length})` : v,
          )?.slice(0, 1500);
          throw new Error(
            `hostile input failed after ${out.numRuns} runs (HOSTILE_SEED=${out.seed}, path ${out.counterexamplePath}): ${String((out.errorInstance as Error)?.message).slice(0, 1500)}\n${example}`,
          );
        },
      },
    );
    await verify();

    // Every operation was called (at 1,000 requests or more: a shorter run may miss one of 60).
    if (RUNS >= 1000)
      for (const [key, tally] of perOp) expect(Object.keys(tally).length, `${key} was never called`).toBeGreaterThan(0);
    // Nothing a client sent polluted a prototype of the process that parsed it.
    expect(({} as any).polluted).toBeUndefined();
    expect(({} as any).isAdmin).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
    const report = await checkInvariants(h().ctx.db, { graceSeconds: 3600 });
    expect(report.problems).toEqual([]);
    const ms = Date.now() - started;
    const fourxx = Object.entries(statuses).filter(([s]) => Number(s) >= 400);
    const fivexx = Object.entries(statuses).filter(([s]) => Number(s) >= 500);
    process.stdout.write(
      `HOSTILE-FIGURES ${JSON.stringify({
        seed: SEED,
        requests: RUNS,
        operations: perOp.size,
        ms,
        statuses,
        '4xx': fourxx.reduce((a, [, n]) => a + n, 0),
        '5xx': fivexx.reduce((a, [, n]) => a + n, 0),
        verifiedUnchanged: verified,
      })}\n`,
    );
  }, 900_000);

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
