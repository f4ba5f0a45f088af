import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { refusedRole, type AccessKind } from '../../src/http/access';
import { statusesOf, OPERATIONS, operationId } from '../../src/http/openapi';
import { waitFor, createHarness, createTestDatabase, KEYS, type Harness, type Role } from '../helpers/harness';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

/**
 * The OpenAPI document against the server: real traffic for every documented operation, its
 * success and each error status the document claims for it, every response checked against the
 * document as GET /docs/openapi.json serves it (status declared for that operation, media type
 * declared, body valid against its JSON Schema 2020-12 with ajv, each declared header present when
 * required and valid when sent). Any response the document does not describe fails the test, and
 * so does any operation × status the document claims but no request here produced.
 *
 * 500 is declared everywhere (an internal error is possible anywhere) but no client input may cause
 * one, so it is the one status not required to be seen.
 */

type Doc = any;
const NOT_PROVOKED = new Set([500]);

// ---- The document as a response validator ----------------------------------------------------

const pointer = (doc: Doc, ref: string) =>
  ref
    .replace(/^#\//, '')
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((node: any, key) => {
      if (node?.[key] === undefined) throw new Error(`unresolved $ref ${ref}`);
      return node[key];
    }, doc);
const deref = (doc: Doc, node: any): any =>
  node && typeof node.$ref === 'string' ? deref(doc, pointer(doc, node.$ref)) : node;
const escape = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

interface Seen {
  op: string;
  method: string;
  path: string;
  status: number;
  requestId: string | null;
}

class ContractValidator {
  readonly seen = new Map<string, Set<number>>();
  readonly log: Seen[] = [];
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly templates: { path: string; regex: RegExp; literal: number }[];

  constructor(readonly doc: Doc) {
    // The OpenAPI keywords around the schemas are not JSON Schema: strict mode would refuse them.
    this.ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
    addFormats(this.ajv);
    this.ajv.addSchema(doc, 'openapi.json');
    this.templates = Object.keys(doc.paths).map((p) => ({
      path: p,
      regex: new RegExp(`^${p.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{\w+\\?\}/g, '[^/]+')}$`),
      literal: p.replace(/\{\w+\}/g, '').length,
    }));
  }

  /** The path template a request path falls under (a literal segment wins over a parameter). */
  template(path: string): string | undefined {
    return this.templates.filter((t) => t.regex.test(path)).sort((a, b) => b.literal - a.literal)[0]?.path;
  }

  private schema(location: string): ValidateFunction {
    let v = this.compiled.get(location);
    if (!v) this.compiled.set(location, (v = this.ajv.compile({ $ref: `openapi.json#${location}` })));
    return v;
  }

  /** Throws with every way the response departs from the document. */
  check(method: string, url: string, res: { status: number; headers: Headers; text: string }): void {
    const path = new URL(url, 'http://x').pathname;
    const template = this.template(path);
    const problems: string[] = [];
    const where = `${method} ${path} → ${res.status}`;
    if (!template) throw new Error(`${where}: no path of the document matches`);
    const op = this.doc.paths[template][method.toLowerCase()];
    if (!op) throw new Error(`${where}: ${template} has no ${method}`);
    const base = `/paths/${escape(template)}/${method.toLowerCase()}/responses/${res.status}`;
    const declared = op.responses[String(res.status)];
    if (!declared)
      throw new Error(
        `${where}: status not declared for ${op.operationId} (declared: ${Object.keys(op.responses).join(', ')}); body ${res.text.slice(0, 300)}`,
      );
    const response = deref(this.doc, declared);
    const location = typeof declared.$ref === 'string' ? declared.$ref.replace(/^#/, '') : base;

    // Body and media type.
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (!response.content) {
      if (res.text.length) problems.push(`a body was sent but none is declared (${contentType})`);
    } else if (!response.content[contentType]) {
      problems.push(`media type "${contentType}" not declared (declared: ${Object.keys(response.content).join(', ')})`);
    } else {
      let value: unknown = res.text;
      if (contentType === 'application/json' || contentType.endsWith('+json')) {
        try {
          value = JSON.parse(res.text);
        } catch {
          problems.push(`body is not JSON: ${res.text.slice(0, 200)}`);
        }
      }
      const validate = this.schema(`${location}/content/${escape(contentType)}/schema`);
      if (!validate(value))
        problems.push(`body: ${this.ajv.errorsText(validate.errors, { separator: '; ' })} — ${res.text.slice(0, 300)}`);
    }

    // Headers: required ones present, every declared one that is sent valid.
    for (const [name, raw] of Object.entries(response.headers ?? {})) {
      const header = deref(this.doc, raw);
      const value = res.headers.get(name);
      if (value === null) {
        if (header.required) problems.push(`required header ${name} missing`);
        continue;
      }
      const validate = this.ajv.compile(header.schema);
      const typed = header.schema.type === 'integer' && /^-?\d+$/.test(value) ? Number(value) : value;
      if (!validate(typed)) problems.push(`header ${name}: "${value}" ${this.ajv.errorsText(validate.errors)}`);
    }
    if (problems.length) throw new Error(`${where} (${op.operationId}):\n  ${problems.join('\n  ')}`);
    const key = `${method.toUpperCase()} ${template}`;
    if (!this.seen.has(key)) this.seen.set(key, new Set());
    this.seen.get(key)!.add(res.status);
    this.log.push({ op: key, method, path, status: res.status, requestId: res.headers.get('x-request-id') });
  }

  /** Every operation × status the document declares that no checked response had. */
  missing(): string[] {
    const out: string[] = [];
    for (const [path, methods] of Object.entries<any>(this.doc.paths)) {
      for (const [method, op] of Object.entries<any>(methods)) {
        const seen = this.seen.get(`${method.toUpperCase()} ${path}`) ?? new Set();
        for (const status of Object.keys(op.responses).map(Number)) {
          if (!NOT_PROVOKED.has(status) && !seen.has(status)) out.push(`${method.toUpperCase()} ${path} ${status}`);
        }
      }
    }
    return out;
  }
}

// ---- Traffic -------------------------------------------------------------------------------

interface Req {
  method: string;
  url: string;
  role?: Role | null;
  body?: unknown;
  raw?: string | Uint8Array;
  headers?: Record<string, string>;
}

let contract: ContractValidator;

/** Sends, validates against the document, and checks the status the test expects. */
async function send(h: Harness, r: Req, expected: number | number[]) {
  const headers: Record<string, string> = { ...r.headers };
  if (r.role) headers.authorization = `Bearer ${KEYS[r.role]}`;
  let body = r.raw;
  if (r.body !== undefined) {
    body = JSON.stringify(r.body);
    headers['content-type'] ??= 'application/json';
  }
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(`${h.baseUrl}${r.url}`, { method: r.method, headers, body: body as any, redirect: 'manual' });
  const text = await res.text();
  const out = {
    status: res.status,
    headers: res.headers,
    text,
    body: (() => {
      try {
        return text ? JSON.parse(text) : undefined;
      } catch {
        return undefined;
      }
    })(),
  };
  contract.check(r.method, r.url, out);
  const want = Array.isArray(expected) ? expected : [expected];
  expect(want, `${r.method} ${r.url}: got ${out.status} ${text.slice(0, 300)}`).toContain(out.status);
  return out;
}

const MISSING = '0190d6c1-0000-7000-8000-00000000dead';
const BROKEN_ESCAPE = '%E0%A4%A';
const rand = () => Math.random().toString(36).slice(2, 10);
const BIG = `{"a":"${'x'.repeat(1_100_000)}"}`;

/** Who may call an operation, and a key that may not. */
/** The least privileged role each access kind lets in (a viewer for operator reads, intake for the catalog, feed for orders). */
const ALLOWED: Record<string, Role> = {
  intake: 'intake',
  feed: 'feed',
  operator: 'operator',
  browser: 'operator',
  read: 'viewer',
  intakeRead: 'intake',
  feedRead: 'feed',
  catalog: 'intake',
  ordersRead: 'feed',
  countRead: 'intake',
};

const opOf = (method: string, path: string) => {
  const op = OPERATIONS.find((o) => o.method === method.toLowerCase() && o.path === path);
  if (!op) throw new Error(`no operation ${method} ${path}`);
  return op;
};
const fill = (path: string, values: Record<string, string>) =>
  path.replace(/\{(\w+)\}/g, (_, n: string) => values[n] ?? MISSING);

/** A request each operation takes that passes validation (for the 503 and 429 rounds: it must reach the store). */
function validRequest(method: string, path: string, ids: { id?: string; sku?: string; code?: string }): Req {
  const url = fill(path, { id: ids.id ?? MISSING, sku: ids.sku ?? 'SKU-NONE', code: ids.code ?? 'LOC-NONE' });
  const bodies: Record<string, unknown> = {
    'POST /v1/customers': { email: `c-${rand()}@example.test`, name: 'Ada' },
    'PATCH /v1/customers/{id}': { name: 'Ada B.' },
    'POST /v1/products': { sku: `SKU-${rand()}`, name: 'Widget', price_cents: 100, initial_stock: 1 },
    'PATCH /v1/products/{sku}': { price_cents: 200 },
    'POST /v1/inventory/{sku}/adjustments': { delta: 1, reason: 'count' },
    'POST /v1/inventory/{sku}/transfers': { from: 'main', to: 'LOC-NONE', quantity: 1 },
    'POST /v1/locations': { code: `L-${rand()}`, name: 'Spare' },
    'PATCH /v1/locations/{code}': { name: 'Renamed' },
    'POST /v1/orders/{id}/shipments': { lines: [{ sku: 'SKU-NONE', quantity: 1 }] },
    'POST /v1/orders/{id}/returns': { lines: [{ sku: 'SKU-NONE', quantity: 1, disposition: 'damaged' }] },
    'POST /v1/orders': { customer_id: MISSING, lines: [{ sku: 'SKU-NONE', quantity: 1 }] },
    'PATCH /v1/orders/{id}': { on_insufficient_stock: 'reject' },
    'POST /v1/restocks': { event_id: `ev-${rand()}`, sku: 'SKU-NONE', quantity: 1 },
    'POST /v1/bulk-actions': { action: 'retry_orders', filter: { ids: [MISSING] } },
    'POST /v1/inventory/counts': {
      count_id: `cnt-${rand()}`,
      counted_at: new Date().toISOString(),
      items: [{ sku: 'SKU-NONE', on_hand: 1 }],
    },
    'POST /v1/inbound': {
      inbound_id: `in-${rand()}`,
      sku: 'SKU-NONE',
      quantity: 1,
      expected_at: '2030-01-01T00:00:00Z',
    },
    'PATCH /v1/inbound/{inbound_id}': { quantity: 2 },
    'POST /v1/webhook-endpoints': { url: `http://127.0.0.1:${hookPort}/endpoint`, types: ['order.completed'] },
    'PATCH /v1/webhook-endpoints/{id}': { description: 'renamed' },
    'POST /v1/webhook-endpoints/{id}/recover': { since: '2026-01-01T00:00:00Z' },
  };
  return { method, url, role: ALLOWED[opOf(method, path).access], body: bodies[`${method} ${path}`] };
}

// ---- The rounds ----------------------------------------------------------------------------

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let hookPort: number;
let hook: http.Server;

beforeAll(async () => {
  db = await createTestDatabase();
  // A webhook target that always fails, so a notification ends `failed` (resend needs one settled).
  hook = http.createServer((_req, res) => {
    res.statusCode = 500;
    res.end();
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  hookPort = (hook.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => hook?.close(r));
  await db?.drop();
});

describe('the OpenAPI document', () => {
  it('when served at /docs/openapi.json, then it is a valid OpenAPI 3.1 document declaring for each operation the statuses of the operation table', async () => {
    const h = await createHarness(db.url);
    try {
      const res = await fetch(`${h.baseUrl}/docs/openapi.json`);
      const doc = await res.json();
      const validator = new Validator();
      const result = await validator.validate(structuredClone(doc));
      expect(result.errors ?? [], 'OpenAPI schema validation').toEqual([]);
      expect(result.valid).toBe(true);
      expect(validator.version).toBe('3.1');
      contract = new ContractValidator(doc);
      contract.check('GET', '/docs/openapi.json', {
        status: res.status,
        headers: res.headers,
        text: JSON.stringify(doc),
      });
      // Every path parameter that is an id takes a UUID in either letter case, as the server does.
      const ajv = new Ajv2020({ strict: false });
      addFormats(ajv);
      const param = doc.paths['/v1/orders/{id}'].get.parameters.find((p: any) => p.name === 'id');
      expect(ajv.validate(param.schema, MISSING.toUpperCase())).toBe(true);
      expect(ajv.validate(param.schema, 'not-a-uuid')).toBe(false);
      // The document declares what the operation table says, and nothing else.
      for (const op of OPERATIONS) {
        expect(Object.keys(doc.paths[op.path][op.method].responses).map(Number), operationId(op)).toEqual(
          statusesOf(op),
        );
      }
    } finally {
      await h.close();
    }
  });

  it('when every operation is called for its success and each client error it documents, then every response is one the document describes', async () => {
    const h = await createHarness(db.url, {
      env: {
        NOTIFY_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/hook`,
        NOTIFY_MAX_ATTEMPTS: '1',
        NOTIFY_TIMEOUT_MS: '2000',
      },
    });
    try {
      await h.startWorkers();
      // Fixtures, through the API (each response validated too).
      const customer = (await send(h, validRequest('POST', '/v1/customers', {}), 201)).body;
      const other = (
        await send(
          h,
          {
            method: 'POST',
            url: '/v1/customers',
            role: 'intake',
            body: { email: `o-${rand()}@example.test`, name: 'Bo', phone: null, webhook_url: null },
          },
          201,
        )
      ).body;
      const product = (
        await send(
          h,
          {
            method: 'POST',
            url: '/v1/products',
            role: 'operator',
            body: { sku: `SKU-${rand()}`, name: 'Widget', price_cents: 1250, initial_stock: 10 },
          },
          201,
        )
      ).body;
      const sku = product.sku as string;
      const place = (extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
        send(
          h,
          {
            method: 'POST',
            url: '/v1/orders',
            role: 'intake',
            body: { customer_id: customer.id, lines: [{ sku, quantity: 1 }], ...extra },
            headers,
          },
          202,
        );
      const confirmed = (await place()).body;
      const untilStatus = (id: string, status: string) =>
        waitFor(
          async () => {
            const r = await send(h, { method: 'GET', url: `/v1/orders/${id}`, role: 'intake' }, 200);
            return r.body.status === status && r.body;
          },
          { what: `order ${id} ${status}` },
        );
      await untilStatus(confirmed.id, 'confirmed');

      // Successes, and the statuses only some operations have.
      await send(h, { method: 'GET', url: `/v1/customers/${customer.id.toUpperCase()}`, role: 'intake' }, 200); // upper-case UUID: same customer
      await send(
        h,
        { method: 'POST', url: '/v1/customers', role: 'intake', body: { email: customer.email, name: 'Dup' } },
        409,
      );
      await send(
        h,
        {
          method: 'PATCH',
          url: `/v1/customers/${customer.id}`,
          role: 'operator',
          body: { phone: '+1 555 0100', blocked: false },
        },
        200,
      );
      await send(
        h,
        { method: 'PATCH', url: `/v1/customers/${customer.id}`, role: 'operator', body: { email: other.email } },
        409,
      );
      await send(h, { method: 'GET', url: `/v1/customers/${customer.id}/orders?limit=1`, role: 'intake' }, 200);

      await send(
        h,
        { method: 'POST', url: '/v1/products', role: 'operator', body: { sku, name: 'Again', price_cents: 1 } },
        409,
      );
      await send(h, { method: 'GET', url: `/v1/products/${sku}`, role: 'operator' }, 200);
      await send(
        h,
        { method: 'PATCH', url: `/v1/products/${sku}`, role: 'operator', body: { name: 'Widget 2', active: true } },
        200,
      );
      await send(h, { method: 'GET', url: '/v1/inventory?limit=1', role: 'operator' }, 200);
      await send(h, { method: 'GET', url: '/v1/inventory?low_stock=100', role: 'operator' }, 200);
      await send(
        h,
        {
          method: 'POST',
          url: `/v1/inventory/${sku}/adjustments`,
          role: 'operator',
          body: { delta: 2, reason: 'found' },
        },
        201,
      );
      await send(
        h,
        {
          method: 'POST',
          url: `/v1/inventory/${sku}/adjustments`,
          role: 'operator',
          body: { delta: -1, reason: 'broken' },
        },
        201,
      );
      await send(
        h,
        {
          method: 'POST',
          url: `/v1/inventory/${sku}/adjustments`,
          role: 'operator',
          body: { delta: -1_000_000, reason: 'too many' },
        },
        409,
      );

      // Idempotency: first, replayed, other body (422), a key whose first request never finished (409).
      const key = `k-${rand()}`;
      const first = await place({ external_ref: 'ref-1' }, { 'Idempotency-Key': key });
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      const replay = await place({ external_ref: 'ref-1' }, { 'Idempotency-Key': key });
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.headers.get('location')).toBe(`/v1/orders/${first.body.id}`);
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/orders',
          role: 'intake',
          body: { customer_id: customer.id, lines: [{ sku, quantity: 2 }] },
          headers: { 'Idempotency-Key': key },
        },
        422,
      );
      // A key whose first request has not finished (its answer not stored yet): 409. Made here by
      // taking the stored answer away from a finished one, which the server then reads the same way.
      const pendingKey = `pending-${rand()}`;
      await place({}, { 'Idempotency-Key': pendingKey });
      expect(await h.ctx.db('idempotency_keys').where({ key: pendingKey }).update({ response_body: null })).toBe(1);
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/orders',
          role: 'intake',
          body: { customer_id: customer.id, lines: [{ sku, quantity: 1 }] },
          headers: { 'Idempotency-Key': pendingKey },
        },
        409,
      );

      // Intake, part 2 (changes 7, 9, 11, 12): an external_ref again from the same key name (409
      // with Location), order filters, customer idempotency (201 replay, 422) and the customer list.
      const refOrder = (await place({ external_ref: `ext-${rand()}`, metadata: { channel: 'web' } })).body;
      const refUsed = (await send(h, { method: 'GET', url: `/v1/orders/${refOrder.id}`, role: 'intake' }, 200)).body;
      const dupRef = await send(
        h,
        {
          method: 'POST',
          url: '/v1/orders',
          role: 'intake',
          body: { customer_id: customer.id, lines: [{ sku, quantity: 1 }], external_ref: refUsed.external_ref },
        },
        409,
      );
      expect(dupRef.headers.get('location')).toBe(`/v1/orders/${refOrder.id}`);
      await send(
        h,
        {
          method: 'GET',
          url:
            `/v1/orders?external_ref=${refUsed.external_ref}&q=${refOrder.id.slice(0, 8)}&reason=x` +
            '&created_from=2026-01-01&created_to=2100-01-01T00:00:00Z&updated_since=2026-01-01',
          role: 'feed',
        },
        200,
      );
      const customerKey = { 'Idempotency-Key': `ck-${rand()}` };
      const newCustomer = { email: `zoë-${rand()}@exämple.com`, name: 'Zoë', metadata: { crm: '7' } };
      const made = await send(
        h,
        { method: 'POST', url: '/v1/customers', role: 'intake', body: newCustomer, headers: customerKey },
        201,
      );
      const customerReplay = await send(
        h,
        { method: 'POST', url: '/v1/customers', role: 'intake', body: newCustomer, headers: customerKey },
        201,
      );
      expect(customerReplay.headers.get('idempotent-replayed')).toBe('true');
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/customers',
          role: 'intake',
          body: { ...newCustomer, name: 'Other' },
          headers: customerKey,
        },
        422,
      );
      await send(
        h,
        { method: 'GET', url: `/v1/customers?email=${encodeURIComponent(made.body.email)}&limit=1`, role: 'viewer' },
        200,
      );
      await send(h, { method: 'GET', url: '/v1/customers?limit=500', role: 'intake' }, 400);

      await send(
        h,
        {
          method: 'GET',
          url: `/v1/orders?status=confirmed&customer_id=${customer.id}&sku=${sku}&limit=5`,
          role: 'intake',
        },
        200,
      );
      await send(h, { method: 'GET', url: `/v1/orders/${confirmed.id}`, role: 'intake' }, 200);
      await send(h, { method: 'POST', url: `/v1/orders/${confirmed.id}/fulfill`, role: 'feed' }, 200); // no body at all
      await send(h, { method: 'POST', url: `/v1/orders/${confirmed.id}/fulfill`, role: 'feed' }, 409); // completed now
      await send(
        h,
        {
          method: 'PATCH',
          url: `/v1/orders/${confirmed.id}`,
          role: 'intake',
          body: { on_insufficient_stock: 'reject' },
        },
        409,
      );
      await send(h, { method: 'POST', url: `/v1/orders/${confirmed.id}/cancel`, role: 'intake', body: {} }, 409);
      await send(h, { method: 'DELETE', url: `/v1/orders/${confirmed.id}`, role: 'intake' }, 409);
      await send(h, { method: 'POST', url: `/v1/orders/${confirmed.id}/retry`, role: 'operator' }, 409);

      const edited = (await place()).body;
      await send(
        h,
        { method: 'PATCH', url: `/v1/orders/${edited.id}`, role: 'intake', body: { lines: [{ sku, quantity: 2 }] } },
        202,
      );
      await send(
        h,
        { method: 'POST', url: `/v1/orders/${edited.id}/cancel`, role: 'intake', body: { reason: 'changed my mind' } },
        200,
      );
      const deleted = (await place()).body;
      await send(h, { method: 'DELETE', url: `/v1/orders/${deleted.id}`, role: 'intake' }, 200);
      const failed = (await place()).body;
      await untilStatus(failed.id, 'confirmed');
      await h.ctx.db('orders').where({ id: failed.id }).update({ status: 'failed', status_reason: 'contract test' });
      await send(
        h,
        {
          method: 'POST',
          url: `/v1/orders/${failed.id}/retry`,
          role: 'operator',
          raw: '',
          headers: { 'content-type': 'application/json' },
        },
        202,
      );

      // Locations: create, a taken code (409), list, read, change. `wh` is less preferred than main.
      const wh = `WH-${rand()}`;
      const created = await send(
        h,
        {
          method: 'POST',
          url: '/v1/locations',
          role: 'operator',
          body: { code: wh, name: 'Warehouse 2', priority: 200 },
        },
        201,
      );
      expect(created.headers.get('location')).toBe(`/v1/locations/${wh}`);
      expect(created.body).toMatchObject({ code: wh, priority: 200, active: true });
      const taken = await send(
        h,
        { method: 'POST', url: '/v1/locations', role: 'operator', body: { code: wh, name: 'Again' } },
        409,
      );
      expect(taken.body.error.code).toBe('conflict');
      const locations = await send(h, { method: 'GET', url: '/v1/locations', role: 'operator' }, 200);
      expect(locations.body.data.map((l: any) => l.code)).toEqual(expect.arrayContaining(['main', wh]));
      await send(h, { method: 'GET', url: `/v1/locations/${wh}`, role: 'operator' }, 200);
      const renamed = await send(
        h,
        { method: 'PATCH', url: `/v1/locations/${wh}`, role: 'operator', body: { name: 'Warehouse Two' } },
        200,
      );
      expect(renamed.body.name).toBe('Warehouse Two');

      // Stock per location: a product stocked at two, its rows, an adjustment and a transfer there.
      const sku2 = `SKU-${rand()}`;
      const product2 = await send(
        h,
        {
          method: 'POST',
          url: '/v1/products',
          role: 'operator',
          body: {
            sku: sku2,
            name: 'Gadget',
            price_cents: 500,
            initial_stock_by_location: { main: 5, [wh]: 3 },
            low_stock_threshold: 2,
          },
        },
        201,
      );
      expect(product2.body.stock.on_hand).toBe(8);
      expect(product2.body.low_stock_threshold).toBe(2);
      expect(product2.body.locations.map((l: any) => [l.location, l.on_hand]).sort()).toEqual(
        [
          ['main', 5],
          [wh, 3],
        ].sort(),
      );
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/products',
          role: 'operator',
          body: { sku: `SKU-${rand()}`, name: 'Nowhere', price_cents: 1, initial_stock_by_location: { NOPE: 1 } },
        },
        400,
      );
      await send(
        h,
        { method: 'PATCH', url: `/v1/products/${sku2}`, role: 'operator', body: { low_stock_threshold: null } },
        200,
      );
      const atWh = await send(h, { method: 'GET', url: `/v1/inventory?location=${wh}`, role: 'operator' }, 200);
      expect(atWh.body.data.find((r: any) => r.sku === sku2)).toMatchObject({ location: wh, on_hand: 3 });
      await send(h, { method: 'GET', url: '/v1/inventory?location=NOPE', role: 'operator' }, 400);
      const adjusted = await send(
        h,
        {
          method: 'POST',
          url: `/v1/inventory/${sku2}/adjustments`,
          role: 'operator',
          body: { delta: 1, reason: 'found', location: wh },
        },
        201,
      );
      expect(adjusted.body).toMatchObject({ location: wh, actor: { role: 'operator' } });
      await send(
        h,
        {
          method: 'POST',
          url: `/v1/inventory/${sku2}/adjustments`,
          role: 'operator',
          body: { delta: 1, reason: 'found', location: 'NOPE' },
        },
        400,
      );
      const transfer = (body: unknown, status: number) =>
        send(h, { method: 'POST', url: `/v1/inventory/${sku2}/transfers`, role: 'operator', body }, status);
      const moved = await transfer({ from: 'main', to: wh, quantity: 2, reason: 'rebalance' }, 201);
      expect(moved.body.movements).toEqual([
        { type: 'transfer_out', location: 'main', quantity: -2 },
        { type: 'transfer_in', location: wh, quantity: 2 },
      ]);
      await transfer({ from: wh, to: 'NOPE', quantity: 1 }, 400); // unknown location
      await transfer({ from: 'main', to: 'main', quantity: 1 }, 400); // from = to
      expect((await transfer({ from: 'main', to: wh, quantity: 1_000_000 }, 409)).body.error.code).toBe('conflict');
      // Now sku2: main 3, wh 6.

      // Stock counts: applied (202), the same again (202 duplicate), the same id with another body
      // (409), an unknown SKU (400), read back (200).
      const counted = (
        await send(
          h,
          {
            method: 'POST',
            url: '/v1/products',
            role: 'operator',
            body: { sku: `SKU-${rand()}`, name: 'Counted', price_cents: 100, initial_stock: 5 },
          },
          201,
        )
      ).body.sku as string;
      const countBody = {
        count_id: `cnt-${rand()}`,
        counted_at: new Date(Date.now() + 1000).toISOString(),
        items: [{ sku: counted, on_hand: 4 }],
      };
      const postCount = (body: unknown, status: number) =>
        send(h, { method: 'POST', url: '/v1/inventory/counts', role: 'feed', body }, status);
      expect((await postCount(countBody, 202)).body).toEqual({ accepted: true });
      expect((await postCount(countBody, 202)).body).toEqual({ accepted: false, duplicate: true });
      await postCount({ ...countBody, items: [{ sku: counted, on_hand: 3 }] }, 409);
      await postCount({ ...countBody, count_id: `cnt-${rand()}`, items: [{ sku: 'SKU-NOPE', on_hand: 3 }] }, 400);
      const countRead = await send(
        h,
        { method: 'GET', url: `/v1/inventory/counts/${countBody.count_id}`, role: 'feed' },
        200,
      );
      expect(countRead.body.items).toEqual([{ sku: counted, counted: 4, expected: 5, variance: -1 }]);

      // Shipments: part of an order (201), the same shipment again (200), the same id with another
      // body (422), more than reserved (409 conflict), a final order (409 invalid_state).
      const shipping = (await place({ lines: [{ sku, quantity: 3 }] })).body;
      await untilStatus(shipping.id, 'confirmed');
      const ship = (id: string, body: unknown, status: number) =>
        send(h, { method: 'POST', url: `/v1/orders/${id}/shipments`, role: 'feed', body }, status);
      const shipmentId = `ship-${rand()}`;
      const one = { shipment_id: shipmentId, lines: [{ sku, quantity: 1 }], carrier: 'DHL', tracking: 'T-1' };
      const shipped = await ship(shipping.id, one, 201);
      expect(shipped.body).toMatchObject({ shipment_id: shipmentId, location: 'main', actor: { role: 'feed' } });
      const again = await ship(shipping.id, one, 200);
      expect(again.body.id).toBe(shipped.body.id);
      const reused = await ship(shipping.id, { ...one, lines: [{ sku, quantity: 2 }] }, 422);
      expect(reused.body.error.code).toBe('idempotency_key_reused');
      const tooMany = await ship(shipping.id, { lines: [{ sku, quantity: 5 }] }, 409);
      expect(tooMany.body.error.code).toBe('conflict');
      const partial = await send(h, { method: 'GET', url: `/v1/orders/${shipping.id}`, role: 'intake' }, 200);
      expect(partial.body.status).toBe('partially_shipped');
      expect(partial.body.lines[0]).toMatchObject({ reserved: 2, shipped: 1, returned: 0, queue: null });
      expect(partial.body.shipments).toHaveLength(1);
      const noEdit = await send(
        h,
        { method: 'PATCH', url: `/v1/orders/${shipping.id}`, role: 'intake', body: { lines: [{ sku, quantity: 1 }] } },
        409,
      );
      expect(noEdit.body.error.code).toBe('invalid_state');
      const done = await ship(confirmed.id, { lines: [{ sku, quantity: 1 }] }, 409); // completed
      expect(done.body.error.code).toBe('invalid_state');
      const listed = await send(h, { method: 'GET', url: `/v1/orders/${shipping.id}/shipments`, role: 'feed' }, 200);
      expect(listed.body.data.map((s: any) => s.id)).toEqual([shipped.body.id]);
      // Reserved at two locations: the location must be named (400), then ships from there.
      const split = (
        await place({
          lines: [
            { sku, quantity: 1 },
            { sku: sku2, quantity: 5 },
          ],
        })
      ).body;
      const splitOrder = await untilStatus(split.id, 'confirmed');
      expect(splitOrder.lines.map((l: any) => l.allocations.map((a: any) => a.location))).toEqual([['main'], [wh]]);
      const unnamed = await ship(split.id, { lines: [{ sku: sku2, quantity: 5 }] }, 400);
      expect(unnamed.body.error.details.map((d: any) => d.path)).toEqual(['body.location']);
      // A location that does not exist is the caller's mistake, as everywhere else: 400 naming it.
      const unknownAt = await ship(
        split.id,
        { location: `nowhere-${rand()}`, lines: [{ sku: sku2, quantity: 5 }] },
        400,
      );
      expect(unknownAt.body.error.code).toBe('validation_failed');
      expect(unknownAt.body.error.details.map((d: any) => d.path)).toEqual(['body.location']);
      await ship(split.id, { location: wh, lines: [{ sku: sku2, quantity: 5 }] }, 201);

      // Returns: restocked (201, back where it shipped from), again (200), the same id with another
      // body (422), more than shipped and not returned (409); a damaged unit moves no stock.
      const ret = (id: string, body: unknown, status: number) =>
        send(h, { method: 'POST', url: `/v1/orders/${id}/returns`, role: 'feed', body }, status);
      const returnId = `ret-${rand()}`;
      const back = { return_id: returnId, lines: [{ sku, quantity: 1, disposition: 'restock' }], reason: 'too big' };
      const returned = await ret(shipping.id, back, 201);
      expect(returned.body.lines).toEqual([{ sku, quantity: 1, disposition: 'restock', location: 'main' }]);
      expect((await ret(shipping.id, back, 200)).body.id).toBe(returned.body.id);
      const reusedReturn = await ret(
        shipping.id,
        { ...back, lines: [{ sku, quantity: 1, disposition: 'damaged' }] },
        422,
      );
      expect(reusedReturn.body.error.code).toBe('idempotency_key_reused');
      const notShipped = await ret(shipping.id, { lines: [{ sku, quantity: 1, disposition: 'damaged' }] }, 409);
      expect(notShipped.body.error.code).toBe('conflict');
      const nowhere = await ret(
        shipping.id,
        { lines: [{ sku, quantity: 1, disposition: 'restock', location: 'NOPE' }] },
        400,
      );
      expect(nowhere.body.error.details.map((d: any) => d.path)).toEqual(['body.lines.0.location']);
      const damaged = await ret(confirmed.id, { lines: [{ sku, quantity: 1, disposition: 'damaged' }] }, 201);
      expect(damaged.body.lines[0].location).toBeNull();
      const returns = await send(h, { method: 'GET', url: `/v1/orders/${shipping.id}/returns`, role: 'feed' }, 200);
      expect(returns.body.data.map((r: any) => r.id)).toEqual([returned.body.id]);
      // Fulfil ships the rest of a partially shipped order.
      const fulfilled = await send(h, { method: 'POST', url: `/v1/orders/${shipping.id}/fulfill`, role: 'feed' }, 200);
      expect(fulfilled.body).toMatchObject({ status: 'completed', lines: [{ shipped: 3, returned: 1, reserved: 0 }] });
      expect(fulfilled.body.shipments).toHaveLength(2);
      expect(fulfilled.body.history.at(-1).actor).toEqual({ role: 'feed', name: 'feed' });
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/restocks',
          role: 'feed',
          body: { event_id: `ev-${rand()}`, sku: sku2, quantity: 1, location: wh },
        },
        202,
      );
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/restocks',
          role: 'feed',
          body: { event_id: `ev-${rand()}`, sku: sku2, quantity: 1, location: 'NOPE' },
        },
        400,
      );

      await send(
        h,
        {
          method: 'POST',
          url: '/v1/restocks',
          role: 'feed',
          body: { event_id: `ev-${rand()}`, sku, quantity: 3, occurred_at: new Date().toISOString() },
        },
        202,
      );
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/restocks',
          role: 'feed',
          body: { events: [{ event_id: `ev-${rand()}`, sku, quantity: 1 }] },
        },
        202,
      );
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/restocks',
          role: 'feed',
          body: { event_id: `ev-${rand()}`, sku: 'SKU-UNKNOWN', quantity: 1 },
        },
        400,
      );

      // Inbound shipments, a SKU's queue, restock id conflicts and the replenishment report.
      const inboundId = `in-${rand()}`;
      const inboundBody = { inbound_id: inboundId, sku, quantity: 5, expected_at: '2030-01-01T00:00:00Z' };
      const postInbound = (body: unknown, status: number) =>
        send(h, { method: 'POST', url: '/v1/inbound', role: 'feed', body }, status);
      const createdInbound = await postInbound(inboundBody, 201);
      expect(createdInbound.headers.get('location')).toBe(`/v1/inbound/${inboundId}`);
      expect((await postInbound(inboundBody, 200)).body).toEqual(createdInbound.body);
      expect((await postInbound({ ...inboundBody, quantity: 6 }, 409)).body.error.code).toBe('conflict');
      await postInbound({ ...inboundBody, inbound_id: `in-${rand()}`, sku: 'SKU-UNKNOWN' }, 400);
      await send(h, { method: 'GET', url: `/v1/inbound?sku=${sku}&status=open&limit=10`, role: 'feed' }, 200);
      await send(h, { method: 'GET', url: `/v1/inbound/${inboundId}`, role: 'viewer' }, 200);
      await send(
        h,
        {
          method: 'PATCH',
          url: `/v1/inbound/${inboundId}`,
          role: 'feed',
          body: { expected_at: '2030-01-02T00:00:00Z' },
        },
        200,
      );
      const doomed = `in-${rand()}`;
      await postInbound({ ...inboundBody, inbound_id: doomed }, 201);
      await send(
        h,
        { method: 'PATCH', url: `/v1/inbound/${doomed}`, role: 'operator', body: { status: 'cancelled' } },
        200,
      );
      const onCancelled = await send(
        h,
        { method: 'PATCH', url: `/v1/inbound/${doomed}`, role: 'feed', body: { quantity: 1 } },
        409,
      );
      expect(onCancelled.body.error.code).toBe('invalid_state');
      const eventId = `ev-${rand()}`;
      await send(
        h,
        { method: 'POST', url: '/v1/restocks', role: 'feed', body: { event_id: eventId, sku, quantity: 1 } },
        202,
      );
      const clash = await send(
        h,
        { method: 'POST', url: '/v1/restocks', role: 'feed', body: { event_id: eventId, sku: sku2, quantity: 1 } },
        409,
      );
      expect(clash.body.error.details[0].path).toBe('body.event_id');
      const skuQueue = await send(h, { method: 'GET', url: `/v1/inventory/${sku}/queue`, role: 'viewer' }, 200);
      expect(skuQueue.body.sku).toBe(sku);
      await send(h, { method: 'GET', url: '/v1/reports/replenishment?days=7&cover_days=7', role: 'viewer' }, 200);
      await send(h, { method: 'GET', url: `/v1/reports/replenishment?location=${wh}`, role: 'operator' }, 200);
      const replenishmentCsv = await send(
        h,
        { method: 'GET', url: '/v1/reports/replenishment?format=csv', role: 'viewer' },
        200,
      );
      expect(replenishmentCsv.headers.get('content-type')).toMatch(/^text\/csv/);

      // Notifications: the webhook fails once (NOTIFY_MAX_ATTEMPTS=1), so one ends failed. Resent with
      // its queue paused it stays pending, and a second resend is refused (409).
      const settled = await waitFor(
        async () => {
          const r = await send(
            h,
            { method: 'GET', url: `/v1/orders/${confirmed.id}/notifications`, role: 'intake' },
            200,
          );
          return r.body.data.find((n: any) => n.status !== 'pending');
        },
        { what: 'a settled notification', timeout: 60_000 },
      );
      const dry = await send(
        h,
        {
          method: 'POST',
          url: '/v1/bulk-actions',
          role: 'operator',
          body: { action: 'cancel_orders', filter: {}, dry_run: true },
        },
        200,
      );
      expect(dry.body.matched).toBeGreaterThanOrEqual(0);
      const bulk = await send(
        h,
        {
          method: 'POST',
          url: '/v1/bulk-actions',
          role: 'operator',
          body: { action: 'retry_orders', filter: { ids: [MISSING] } },
        },
        202,
      );
      await send(h, { method: 'GET', url: `/v1/bulk-actions/${bulk.body.id}`, role: 'viewer' }, 200);
      const bulkList = await send(h, { method: 'GET', url: '/v1/bulk-actions?limit=1', role: 'viewer' }, 200);
      expect(bulkList.body.data.map((b: any) => b.id)).toEqual([bulk.body.id]);
      const timeline = await send(
        h,
        { method: 'GET', url: `/v1/orders/${confirmed.id}/timeline`, role: 'viewer' },
        200,
      );
      expect(timeline.body.data.map((e: any) => e.kind)).toEqual(
        expect.arrayContaining(['history', 'processing', 'delivery']),
      );
      await h.ctx.queues.notifications.pause();
      await send(h, { method: 'POST', url: `/v1/notifications/${settled.id}/resend`, role: 'operator' }, 202);
      await send(h, { method: 'POST', url: `/v1/notifications/${settled.id}/resend`, role: 'operator', body: {} }, 409);

      // Webhook endpoints: create, read, list, change, rotate, recover, the delivery log, delete.
      const endpoint = (await send(h, validRequest('POST', '/v1/webhook-endpoints', {}), 201)).body;
      const ep = `/v1/webhook-endpoints/${endpoint.id}`;
      await send(h, { method: 'GET', url: '/v1/webhook-endpoints', role: 'viewer' }, 200);
      await send(h, { method: 'GET', url: ep, role: 'viewer' }, 200);
      await send(h, { ...validRequest('PATCH', '/v1/webhook-endpoints/{id}', { id: endpoint.id }) }, 200);
      await send(h, { method: 'PATCH', url: ep, role: 'operator', body: { types: ['order.lost'] } }, 400);
      await send(h, { method: 'POST', url: `${ep}/rotate-secret`, role: 'operator' }, 200);
      await send(h, { ...validRequest('POST', '/v1/webhook-endpoints/{id}/recover', { id: endpoint.id }) }, 202);
      await send(h, { method: 'POST', url: `${ep}/recover`, role: 'operator', body: { since: 'yesterday' } }, 400);
      await send(h, { method: 'GET', url: `${ep}/deliveries?status=failed&limit=5`, role: 'viewer' }, 200);
      await send(h, { method: 'GET', url: `${ep}/deliveries?status=lost`, role: 'viewer' }, 400);
      await send(
        h,
        { method: 'POST', url: '/v1/webhook-endpoints', role: 'operator', body: { url: 'x', types: ['*'] } },
        400,
      );
      await send(h, { method: 'DELETE', url: ep, role: 'operator' }, 204);

      await send(h, { method: 'GET', url: '/v1/reports/orders', role: 'operator' }, 200);
      await send(
        h,
        { method: 'GET', url: '/v1/reports/orders?from=2026-01-01&to=2030-01-01T00:00:00Z', role: 'operator' },
        200,
      );
      await send(h, { method: 'GET', url: '/v1/reports/inventory', role: 'operator' }, 200);
      const csv = await send(h, { method: 'GET', url: '/v1/reports/inventory?format=csv', role: 'operator' }, 200);
      expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
      await send(h, { method: 'GET', url: '/v1/reports/ledger', role: 'operator' }, 200);
      await send(h, { method: 'GET', url: '/v1/reports/queues', role: 'operator' }, 200);
      const feed = await send(h, { method: 'GET', url: '/v1/events?limit=5', role: 'intake' }, 200);
      expect(feed.body.data.length).toBeGreaterThan(0);
      await send(
        h,
        { method: 'GET', url: `/v1/events?after=${feed.body.next_cursor}&types=order.*`, role: 'viewer' },
        200,
      );
      await send(h, { method: 'GET', url: '/healthz' }, 200);
      await send(h, { method: 'GET', url: '/readyz' }, 200);
      await send(h, { method: 'GET', url: '/metrics', role: 'operator' }, 200);
      await send(
        h,
        {
          method: 'GET',
          url: '/dashboard',
          headers: { authorization: `Basic ${Buffer.from(`any:${KEYS.operator}`).toString('base64')}` },
        },
        200,
      );
      await send(h, { method: 'GET', url: '/admin/queues', role: 'operator' }, 200);
      await send(
        h,
        {
          method: 'GET',
          url: '/console',
          headers: { authorization: `Basic ${Buffer.from(`any:${KEYS.viewer}`).toString('base64')}` },
        },
        200,
      );

      // Validation errors (400) of each query and body, per operation.
      const badQuery: Record<string, string> = {
        '/v1/customers/{id}/orders': `/v1/customers/${customer.id}/orders?limit=0`,
        '/v1/inventory': '/v1/inventory?low_stock=-1',
        '/v1/orders': '/v1/orders?status=lost',
        '/v1/reports/orders': '/v1/reports/orders?from=yesterday',
        '/v1/reports/inventory': '/v1/reports/inventory?format=xml',
        '/v1/reports/ledger': '/v1/reports/ledger?by=warehouse',
        '/v1/events': '/v1/events?after=later',
        '/v1/inbound': '/v1/inbound?status=lost',
        '/v1/reports/replenishment': '/v1/reports/replenishment?days=0',
        '/v1/bulk-actions': '/v1/bulk-actions?limit=0',
      };
      for (const [path, url] of Object.entries(badQuery))
        await send(h, { method: 'GET', url, role: ALLOWED[opOf('GET', path).access] }, 400);
      await send(
        h,
        { method: 'POST', url: '/v1/orders', role: 'intake', body: { customer_id: customer.id, lines: [] } },
        400,
      );
      await send(
        h,
        {
          method: 'POST',
          url: '/v1/orders',
          role: 'intake',
          body: { customer_id: customer.id, lines: [{ sku, quantity: 1 }] },
          headers: { 'Idempotency-Key': '' },
        },
        400,
      );

      // What every operation shares: per operation, each status the middleware answers.
      const ids: Record<string, string> = {
        id: confirmed.id,
        sku,
        code: wh,
        count_id: countBody.count_id,
        inbound_id: inboundId,
      };
      for (const op of OPERATIONS) {
        const statuses = statusesOf(op);
        const allowed = ALLOWED[op.access];
        const method = op.method.toUpperCase();
        const url = fill(op.path, ids);
        if (statuses.includes(401)) await send(h, { method, url }, 401);
        if (statuses.includes(401)) await send(h, { method, url, headers: { authorization: 'Bearer not-a-key' } }, 401);
        if (statuses.includes(403)) await send(h, { method, url, role: refusedRole(op.access as AccessKind)! }, 403);
        // Change 10: an unknown query parameter is 400 on every operation but bull-board's page.
        if (op.path !== '/admin/queues')
          await send(
            h,
            {
              method,
              url: `${url}?unknown_param=1`,
              role: allowed,
              body: validRequest(method, op.path, ids).body,
            },
            400,
          );
        if (op.path.includes('{')) {
          await send(
            h,
            {
              method,
              url: fill(op.path, { id: MISSING, sku: 'SKU-MISSING', code: 'LOC-MISSING', count_id: 'CNT-MISSING' }),
              role: allowed,
              body: validRequest(method, op.path, {}).body,
            },
            404,
          );
          await send(
            h,
            {
              method,
              url: fill(op.path, {
                id: 'not-a-uuid',
                sku: 'not a sku',
                code: 'not a code',
                count_id: 'not%20a%20count',
                inbound_id: 'no such inbound',
              }),
              role: allowed,
              body: validRequest(method, op.path, {}).body,
            },
            [404],
          );
          await send(
            h,
            {
              method,
              url: fill(op.path, {
                id: BROKEN_ESCAPE,
                sku: BROKEN_ESCAPE,
                code: BROKEN_ESCAPE,
                count_id: BROKEN_ESCAPE,
                inbound_id: BROKEN_ESCAPE,
              }),
              role: allowed,
            },
            400,
          );
        }
        if (['POST', 'PATCH', 'DELETE'].includes(method)) {
          await send(
            h,
            { method, url, role: allowed, raw: '{bad', headers: { 'content-type': 'application/json' } },
            400,
          );
          await send(h, { method, url, role: allowed, raw: BIG, headers: { 'content-type': 'application/json' } }, 413);
          await send(h, { method, url, role: allowed, raw: 'hello', headers: { 'content-type': 'text/plain' } }, 415);
          if (!op.body || op.body.optional) await send(h, { method, url, role: allowed, body: [] }, 400);
          else await send(h, { method, url, role: allowed, body: {} }, [400]);
        }
      }
    } finally {
      await h.close();
    }
  });

  it('when writes exceed RATE_LIMIT_RPS, then every write operation answers 429 with Retry-After as documented', async () => {
    const h = await createHarness(db.url, { env: { RATE_LIMIT_RPS: '1' } });
    try {
      for (const op of OPERATIONS.filter((o) => ['post', 'patch', 'delete'].includes(o.method))) {
        const r = validRequest(op.method.toUpperCase(), op.path, {});
        // The bucket holds one second of writes: the second of two at once is over it.
        let limited = false;
        for (let i = 0; i < 3 && !limited; i++)
          limited = (await send(h, r, [201, 202, 400, 404, 409, 429])).status === 429;
        expect(limited, `${op.method} ${op.path}: no 429`).toBe(true);
      }
    } finally {
      await h.close();
    }
  });

  it('when PostgreSQL and Redis do not answer, then every operation that needs them answers 503 with Retry-After as documented', async () => {
    // knex and pg print every refused connection on the console; none of it is useful here.
    const log = console.log.bind(console);
    const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      if (/^(Acquire connection error|Connection Error)/.test(String(args[0]))) return;
      log(...args);
    });
    const pgUrl = new URL(inject('pgUrl'));
    const redisUrl = new URL(inject('redisUrl'));
    const pg: TcpProxy = await startTcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    const redis: TcpProxy = await startTcpProxy({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
    const h = await createHarness(pg.rewrite(db.url), { env: { REDIS_URL: redis.rewrite(inject('redisUrl')) } });
    try {
      await send(h, { method: 'GET', url: '/readyz' }, 200);
      await pg.drop();
      await redis.drop();
      for (const op of OPERATIONS.filter((o) => statusesOf(o).includes(503))) {
        await send(h, validRequest(op.method.toUpperCase(), op.path, {}), 503);
      }
      // What needs neither still answers.
      await send(h, { method: 'GET', url: '/healthz' }, 200);
    } finally {
      await pg.restore();
      await redis.restore();
      await h.close();
      await pg.close();
      await redis.close();
      spy.mockRestore();
    }
  });

  it('then every operation × status the document declares was answered, and every response was described', () => {
    const operations = Object.values(contract.doc.paths).reduce((n: number, m: any) => n + Object.keys(m).length, 0);
    const statuses = Object.values(contract.doc.paths).flatMap((m: any) =>
      Object.values(m).flatMap((op: any) => Object.keys(op.responses)),
    ).length;
    const seen = [...contract.seen.values()].reduce((n, s) => n + s.size, 0);
    console.info(
      `openapi contract: ${operations} operations, ${statuses} operation × status pairs declared, ` +
        `${seen} seen, ${contract.log.length} responses validated`,
    );
    expect(contract.missing()).toEqual([]);
    expect(operations).toBe(OPERATIONS.length);
  });
});
