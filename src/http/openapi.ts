import { z } from 'zod';
import {
  createCustomerSchema, customerSchema, updateCustomerSchema,
} from '../customers/customers.schemas';
import {
  adjustmentSchema, createProductSchema, inventoryQuerySchema, productSchema, stockFiguresSchema, updateProductSchema,
} from '../inventory/inventory.schemas';
import { notificationSchema, orderNotificationsSchema } from '../notifications/notifications.schemas';
import {
  acceptedOrderSchema, cancelOrderSchema, listOrdersQuerySchema, orderSchema, patchOrderSchema, placeOrderSchema,
} from '../orders/orders.schemas';
import {
  inventoryReportQuerySchema, inventoryReportSchema, ledgerReportSchema, ordersReportQuerySchema, ordersReportSchema, queuesReportSchema,
} from '../reports/reports.schemas';
import { restockAcceptedSchema, restockBatchSchema, restockEventSchema } from '../restocks/restocks.schemas';

/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate requests and describe
 * responses (OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what z.toJSONSchema emits).
 */

type Access = 'public' | 'intake' | 'feed' | 'operator' | 'browser';
interface Reply { description: string; schema?: z.ZodType; type?: string }
interface Operation {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  tag: string;
  summary: string;
  access: Access;
  query?: z.ZodObject;
  body?: z.ZodType;
  bodyOptional?: boolean;
  headers?: { name: string; description: string; schema: z.ZodType }[];
  replies: Record<number, Reply>;
}

const errorSchema = z.object({
  error: z.object({
    code: z.string().describe('machine-readable: invalid_json, validation_failed, unauthorized, forbidden, not_found, conflict, invalid_state, ...'),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })),
  }),
});
const page = (item: z.ZodType) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });
const inventoryItem = stockFiguresSchema.omit({ version: true }).extend({ sku: z.string(), name: z.string(), active: z.boolean(), version: z.number().int() });
const movementSchema = z.object({
  id: z.number().int(), sku: z.string(), type: z.literal('adjustment'), quantity: z.number().int(), reason: z.string(), created_at: z.string(),
  stock: stockFiguresSchema,
});
const health = z.object({ status: z.string() });

const ok = (schema: z.ZodType, description = 'OK'): Reply => ({ description, schema });
const idParam = (name: string, what: string) => ({ name, in: 'path', required: true, description: `${what} id (UUID)`, schema: { type: 'string', format: 'uuid' } });

export const OPERATIONS: Operation[] = [
  { method: 'post', path: '/v1/customers', tag: 'customers', summary: 'Create a customer', access: 'intake', body: createCustomerSchema,
    replies: { 201: ok(customerSchema, 'Created'), 409: { description: 'e-mail taken (conflict)' } } },
  { method: 'get', path: '/v1/customers/{id}', tag: 'customers', summary: 'Read a customer', access: 'intake', replies: { 200: ok(customerSchema) } },
  { method: 'patch', path: '/v1/customers/{id}', tag: 'customers', summary: 'Change a customer', access: 'operator', body: updateCustomerSchema,
    replies: { 200: ok(customerSchema), 409: { description: 'e-mail taken (conflict)' } } },
  { method: 'get', path: '/v1/customers/{id}/orders', tag: 'customers', summary: "A customer's orders, newest first", access: 'intake',
    query: listOrdersQuerySchema.omit({ customer_id: true }), replies: { 200: ok(page(orderSchema)) } },

  { method: 'post', path: '/v1/products', tag: 'products and stock', summary: 'Create a product with its stock row', access: 'operator', body: createProductSchema,
    replies: { 201: ok(productSchema, 'Created'), 409: { description: 'SKU exists (conflict)' } } },
  { method: 'get', path: '/v1/products/{sku}', tag: 'products and stock', summary: 'Read a product and its stock', access: 'operator', replies: { 200: ok(productSchema) } },
  { method: 'patch', path: '/v1/products/{sku}', tag: 'products and stock', summary: 'Change name, price or active', access: 'operator', body: updateProductSchema,
    replies: { 200: ok(productSchema) } },
  { method: 'get', path: '/v1/inventory', tag: 'products and stock', summary: 'Stock rows, by SKU', access: 'operator', query: inventoryQuerySchema,
    replies: { 200: ok(page(inventoryItem)) } },
  { method: 'post', path: '/v1/inventory/{sku}/adjustments', tag: 'products and stock', summary: 'Correct on_hand (an adjustment movement)', access: 'operator',
    body: adjustmentSchema, replies: { 201: ok(movementSchema, 'Created'), 409: { description: 'on_hand would fall below reserved (conflict)' } } },

  { method: 'post', path: '/v1/orders', tag: 'orders', summary: 'Place an order (stored before the answer; processed by the pipeline)', access: 'intake',
    body: placeOrderSchema,
    headers: [{ name: 'Idempotency-Key', description: 'same key and body: the first answer replayed (Idempotent-Replayed: true); other body: 422', schema: z.string().min(1).max(255) }],
    replies: { 202: ok(acceptedOrderSchema, 'Accepted; Location: /v1/orders/{id}'), 409: { description: 'idempotency_in_progress' }, 422: { description: 'idempotency_key_reused' }, 503: { description: 'PostgreSQL is down; nothing stored' } } },
  { method: 'get', path: '/v1/orders', tag: 'orders', summary: 'List orders', access: 'intake', query: listOrdersQuerySchema, replies: { 200: ok(page(orderSchema)) } },
  { method: 'get', path: '/v1/orders/{id}', tag: 'orders', summary: 'Read an order with its lines and history', access: 'intake', replies: { 200: ok(orderSchema) } },
  { method: 'patch', path: '/v1/orders/{id}', tag: 'orders', summary: 'Edit lines while received, awaiting_stock or confirmed; processed again', access: 'intake',
    body: patchOrderSchema, replies: { 202: ok(orderSchema, 'Accepted'), 409: { description: 'invalid_state' } } },
  { method: 'post', path: '/v1/orders/{id}/cancel', tag: 'orders', summary: 'Cancel; reserved stock is released', access: 'intake', body: cancelOrderSchema, bodyOptional: true,
    replies: { 200: ok(orderSchema), 409: { description: 'invalid_state' } } },
  { method: 'delete', path: '/v1/orders/{id}', tag: 'orders', summary: 'Cancel (same as POST .../cancel)', access: 'intake', replies: { 200: ok(orderSchema), 409: { description: 'invalid_state' } } },
  { method: 'post', path: '/v1/orders/{id}/fulfill', tag: 'orders', summary: 'confirmed → completed (a sale movement per line)', access: 'feed',
    replies: { 200: ok(orderSchema), 409: { description: 'invalid_state' } } },
  { method: 'post', path: '/v1/orders/{id}/retry', tag: 'orders', summary: 'failed → received, processed again', access: 'operator',
    replies: { 202: ok(orderSchema, 'Accepted'), 409: { description: 'invalid_state' } } },

  { method: 'post', path: '/v1/restocks', tag: 'restocks', summary: 'Receive restock events (one, or {events: [...]} up to 1000)', access: 'feed',
    body: z.union([restockEventSchema, restockBatchSchema]), replies: { 202: ok(restockAcceptedSchema, 'Accepted') } },

  { method: 'get', path: '/v1/orders/{id}/notifications', tag: 'notifications', summary: "The order's events per channel and their delivery", access: 'intake',
    replies: { 200: ok(orderNotificationsSchema) } },
  { method: 'post', path: '/v1/notifications/{id}/resend', tag: 'notifications', summary: 'Deliver a notification again', access: 'operator',
    replies: { 202: ok(notificationSchema, 'Accepted') } },

  { method: 'get', path: '/v1/reports/orders', tag: 'reports', summary: 'Orders by status, revenue (confirmed + completed), per UTC day', access: 'operator',
    query: ordersReportQuerySchema, replies: { 200: ok(ordersReportSchema) } },
  { method: 'get', path: '/v1/reports/inventory', tag: 'reports', summary: 'Per SKU stock and waiting orders, lowest available first', access: 'operator',
    query: inventoryReportQuerySchema, replies: { 200: { description: 'JSON, or text/csv with format=csv', schema: inventoryReportSchema } } },
  { method: 'get', path: '/v1/reports/ledger', tag: 'reports', summary: 'The ledger against on_hand, per SKU; mismatches', access: 'operator',
    replies: { 200: ok(ledgerReportSchema) } },
  { method: 'get', path: '/v1/reports/queues', tag: 'reports', summary: 'BullMQ job counts per queue', access: 'operator',
    replies: { 200: ok(queuesReportSchema), 503: { description: 'Redis unreachable' } } },

  { method: 'get', path: '/healthz', tag: 'operations', summary: 'The process is up', access: 'public', replies: { 200: ok(health) } },
  { method: 'get', path: '/readyz', tag: 'operations', summary: 'PostgreSQL and Redis answer', access: 'public',
    replies: { 200: ok(health), 503: { description: 'names the unreachable dependency' } } },
  { method: 'get', path: '/metrics', tag: 'operations', summary: 'Prometheus text exposition', access: 'browser', replies: { 200: { description: 'OK', type: 'text/plain' } } },
  { method: 'get', path: '/dashboard', tag: 'operations', summary: 'Charts of the reports (HTML)', access: 'browser', replies: { 200: { description: 'OK', type: 'text/html' } } },
  { method: 'get', path: '/admin/queues', tag: 'operations', summary: 'bull-board over every queue (HTML)', access: 'browser', replies: { 200: { description: 'OK', type: 'text/html' } } },
];

type JsonSchema = Record<string, unknown>;
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any', reused: 'inline' }) as JsonSchema;
  return rest;
}

const SECURITY: Record<Access, Record<string, string[]>[]> = {
  public: [], intake: [{ bearer: [] }], feed: [{ bearer: [] }], operator: [{ bearer: [] }], browser: [{ bearer: [] }, { basic: [] }],
};
const ROLE_NOTE: Record<Access, string> = {
  public: 'No key needed.', intake: 'Role: intake (or operator).', feed: 'Role: feed (or operator).', operator: 'Role: operator.',
  browser: 'Operator key as Bearer, or as the password of HTTP Basic auth (any user name).',
};

function pathParams(path: string) {
  return [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => name === 'sku'
    ? { name, in: 'path', required: true, description: 'SKU', schema: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' } }
    : idParam(name, path.includes('/customers/') ? 'customer' : path.includes('/notifications/') ? 'notification' : 'order'));
}

function operationObject(op: Operation) {
  const parameters: unknown[] = [...pathParams(op.path)];
  if (op.query) {
    for (const [name, field] of Object.entries(op.query.shape)) {
      const f = field as z.ZodType;
      parameters.push({ name, in: 'query', required: !f.safeParse(undefined).success, schema: jsonSchema(f, 'input') });
    }
  }
  for (const h of op.headers ?? []) parameters.push({ name: h.name, in: 'header', required: false, description: h.description, schema: jsonSchema(h.schema, 'input') });
  const responses: Record<string, unknown> = {};
  for (const [status, reply] of Object.entries(op.replies)) {
    const content = reply.schema ? { 'application/json': { schema: jsonSchema(reply.schema, 'output') } }
      : reply.type ? { [reply.type]: { schema: { type: 'string' } } } : undefined;
    responses[status] = content ? { description: reply.description, content } : { description: reply.description };
  }
  if (op.path === '/v1/reports/inventory') (responses['200'] as any).content['text/csv'] = { schema: { type: 'string' } };
  for (const [status, description] of [['400', 'validation_failed or invalid_json'], ['401', 'unauthorized'], ['403', 'forbidden'], ['404', 'not_found']] as const) {
    if (op.access === 'public' && status !== '400') continue;
    responses[status] ??= { $ref: `#/components/responses/${description.split(' ')[0]}` };
  }
  return {
    tags: [op.tag], summary: op.summary, description: ROLE_NOTE[op.access], operationId: `${op.method}${op.path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`,
    security: SECURITY[op.access],
    ...(parameters.length ? { parameters } : {}),
    ...(op.body ? { requestBody: { required: !op.bodyOptional, content: { 'application/json': { schema: jsonSchema(op.body, 'input') } } } } : {}),
    responses,
  };
}

export function buildOpenApiDocument(opts: { version?: string } = {}) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) (paths[op.path] ??= {})[op.method] = operationObject(op);
  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: jsonSchema(errorSchema, 'output') } } });
  return {
    openapi: '3.1.0',
    info: {
      title: 'orderflow', version: opts.version ?? '0.1.0',
      description: 'Order pipeline: durable intake, BullMQ workers, optimistic stock reservation, FIFO backorders, signed webhooks. '
        + 'Every error is JSON: {"error": {"code", "message", "details": [{path, message}]}}. Every response carries X-Request-Id.',
    },
    servers: [{ url: '/' }],
    tags: ['customers', 'products and stock', 'orders', 'restocks', 'notifications', 'reports', 'operations'].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'API key: Authorization: Bearer <key>' },
        basic: { type: 'http', scheme: 'basic', description: 'Browser pages: any user name, the operator key as password' },
      },
      responses: {
        validation_failed: errorResponse('The request is malformed; details name each bad field'),
        unauthorized: errorResponse('Missing or unknown API key'),
        forbidden: errorResponse('The key has another role'),
        not_found: errorResponse('No such resource'),
      },
      schemas: { Error: jsonSchema(errorSchema, 'output') },
    },
  };
}
