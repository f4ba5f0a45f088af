import { z } from 'zod';
import { ACCESS, refusedRole, type AccessKind } from './access';
import { strict } from '../platform/validation';
import {
  createCustomerSchema,
  customerPageSchema,
  customerSchema,
  listCustomersQuerySchema,
  updateCustomerSchema,
} from '../customers/customers.schemas';
import {
  adjustmentSchema,
  createLocationSchema,
  createProductSchema,
  inventoryQuerySchema,
  locationListSchema,
  locationSchema,
  productSchema,
  stockFiguresSchema,
  transferResultSchema,
  transferSchema,
  updateLocationSchema,
  updateProductSchema,
} from '../inventory/inventory.schemas';
import { countAcceptedSchema, countRecordSchema, countSchema } from '../inventory/counts.schemas';
import { notificationSchema, orderNotificationsSchema } from '../notifications/notifications.schemas';
import {
  createdEndpointSchema,
  createEndpointSchema,
  deliveryPageSchema,
  endpointListSchema,
  endpointSchema,
  endpointSecretSchema,
  listDeliveriesQuerySchema,
  recoverEndpointSchema,
  updateEndpointSchema,
} from '../notifications/endpoints.schemas';
import {
  acceptedOrderSchema,
  cancelOrderSchema,
  emptyBodySchema,
  idempotencyKeySchema,
  listOrdersQuerySchema,
  orderSchema,
  patchOrderSchema,
  placeOrderSchema,
  returnInputSchema,
  returnListSchema,
  returnSchema,
  shipmentInputSchema,
  shipmentListSchema,
  shipmentSchema,
  timelineSchema,
} from '../orders/orders.schemas';
import {
  inventoryReportQuerySchema,
  inventoryReportSchema,
  ledgerReportSchema,
  ordersReportQuerySchema,
  ledgerReportQuerySchema,
  ordersReportSchema,
  queuesReportSchema,
} from '../reports/reports.schemas';
import {
  bulkActionPageSchema,
  bulkActionSchema,
  bulkDryRunSchema,
  bulkRequestSchema,
  listBulkActionsQuerySchema,
} from '../bulk';
import { eventPageSchema, eventSchema, eventsQuerySchema } from '../events';
import { restockAcceptedSchema, restockBatchSchema, restockEventSchema } from '../restocks/restocks.schemas';
import {
  createInboundSchema,
  inboundPageSchema,
  inboundQuerySchema,
  inboundSchema,
  patchInboundSchema,
} from '../restocks/inbound.schemas';
import { replenishmentQuerySchema, replenishmentReportSchema } from '../reports/reports.schemas';

/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate requests and describe
 * responses (OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what z.toJSONSchema emits).
 *
 * It claims exactly what the server does: every status an operation can answer (the ones every
 * route shares are derived from what the middleware does, see `statusesOf`), each error with the
 * one envelope, and the headers sent. test/integration/openapi.contract.test.ts sends traffic for
 * every operation × status claimed here and validates each response against the served document.
 */

type Access = 'public' | AccessKind;
type Method = 'get' | 'post' | 'patch' | 'delete';
/** A named component schema (`#/components/schemas/<name>`), or a media type with a plain string body. */
type Body = { ref: OutputName } | { type: string };
interface Success {
  status: number;
  description: string;
  body?: Body;
  csv?: boolean;
  headers?: Record<string, HeaderUse>;
}
interface HeaderUse {
  header: HeaderName;
  required: boolean;
}
export interface Operation {
  method: Method;
  path: string;
  tag: string;
  summary: string;
  access: Access;
  query?: z.ZodObject;
  body?: { ref: InputName; optional?: boolean };
  /** The idempotency header of POST /v1/orders. */
  idempotencyKey?: boolean;
  ok: Success;
  /** Another success status with its own meaning (the 200 replay of a shipment or return). */
  alsoOk?: Success;
  /** Statuses of this operation beyond the shared ones (409, 422), with what they mean. */
  more?: Record<number, string>;
  /** Headers of those statuses (the Location of the resource a 409 conflict names). */
  moreHeaders?: Record<number, Record<string, HeaderUse>>;
  /** Reads PostgreSQL (or Redis): 503 when it does not answer. */
  store?: boolean;
}

// ---- Component schemas ---------------------------------------------------------------------

const errorSchema = z.object({
  error: z.object({
    code: z
      .string()
      .describe(
        'machine-readable: invalid_json, validation_failed, unauthorized, forbidden, not_found, conflict, ' +
          'invalid_state, idempotency_in_progress, idempotency_key_reused, payload_too_large, unsupported_media_type, rate_limited, unavailable, internal',
      ),
    message: z.string(),
    details: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .describe('one {path, message} per bad field; empty when no field is to blame'),
  }),
});
const page = (item: z.ZodType) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });
const actor = z.object({ role: z.string(), name: z.string() }).describe('who caused it: the key, or a system part');
const inventoryItem = stockFiguresSchema.omit({ version: true }).extend({
  sku: z.string(),
  name: z.string(),
  active: z.boolean(),
  location: z.string().optional().describe("only with ?location=: the row is that location's, not the SKU's totals"),
  version: z.number().int(),
});
const movementSchema = z.object({
  id: z.number().int(),
  sku: z.string(),
  location: z.string(),
  type: z.literal('adjustment'),
  quantity: z.number().int(),
  reason: z.string(),
  actor,
  created_at: z.string().meta({ format: 'date-time' }),
  stock: stockFiguresSchema.describe("the SKU's totals after it"),
});
const skuQueueSchema = z.object({
  sku: z.string(),
  free: z.number().int().describe("Σ over the SKU's active locations of on_hand − reserved"),
  waiting: z
    .array(
      z.object({
        order_id: z.uuid(),
        seq: z.number().int(),
        quantity: z.number().int(),
        position: z.number().int().min(1),
        units_ahead: z.number().int().min(0),
        eta: z.string().meta({ format: 'date-time' }).nullable(),
      }),
    )
    .describe('the waiting lines in seq order (position 1 first)'),
  inbound: z.array(inboundSchema).describe('its open inbound shipments, by expected_at'),
});
const checks = z.object({ postgresql: z.enum(['ok', 'down']), redis: z.enum(['ok', 'down']) });
const healthSchema = z.object({ status: z.literal('ok') });
const readySchema = z.object({
  status: z.literal('ready'),
  checks: z.object({ postgresql: z.literal('ok'), redis: z.literal('ok') }),
});
const notReadySchema = errorSchema.extend({ checks });
const documentSchema = z.looseObject({ openapi: z.literal('3.1.0') });

const OUTPUT = {
  Error: errorSchema,
  NotReady: notReadySchema,
  Health: healthSchema,
  Ready: readySchema,
  OpenApiDocument: documentSchema,
  Customer: customerSchema,
  CustomerPage: customerPageSchema,
  Product: productSchema,
  StockFigures: stockFiguresSchema,
  InventoryItem: inventoryItem,
  InventoryPage: page(inventoryItem),
  Movement: movementSchema,
  Transfer: transferResultSchema,
  CountAccepted: countAcceptedSchema,
  Count: countRecordSchema,
  Location: locationSchema,
  LocationList: locationListSchema,
  AcceptedOrder: acceptedOrderSchema,
  Order: orderSchema,
  OrderPage: page(orderSchema),
  Shipment: shipmentSchema,
  ShipmentList: shipmentListSchema,
  Return: returnSchema,
  ReturnList: returnListSchema,
  Notification: notificationSchema,
  OrderNotifications: orderNotificationsSchema,
  WebhookEndpoint: endpointSchema,
  CreatedWebhookEndpoint: createdEndpointSchema,
  WebhookEndpointList: endpointListSchema,
  WebhookEndpointSecret: endpointSecretSchema,
  DeliveryPage: deliveryPageSchema,
  RestockAccepted: restockAcceptedSchema,
  OrdersReport: ordersReportSchema,
  InventoryReport: inventoryReportSchema,
  LedgerReport: ledgerReportSchema,
  QueuesReport: queuesReportSchema,
  Timeline: timelineSchema,
  BulkAction: bulkActionSchema,
  BulkActionPage: bulkActionPageSchema,
  BulkDryRun: bulkDryRunSchema,
  Event: eventSchema,
  EventPage: eventPageSchema,
  Inbound: inboundSchema,
  InboundPage: inboundPageSchema,
  SkuQueue: skuQueueSchema,
  ReplenishmentReport: replenishmentReportSchema,
} satisfies Record<string, z.ZodType>;
const INPUT = {
  CreateCustomer: createCustomerSchema,
  UpdateCustomer: updateCustomerSchema,
  CreateProduct: createProductSchema,
  UpdateProduct: updateProductSchema,
  Adjustment: adjustmentSchema,
  TransferRequest: transferSchema,
  CountRequest: countSchema,
  CreateLocation: createLocationSchema,
  UpdateLocation: updateLocationSchema,
  PlaceOrder: placeOrderSchema,
  PatchOrder: patchOrderSchema,
  CancelOrder: cancelOrderSchema,
  ShipmentRequest: shipmentInputSchema,
  ReturnRequest: returnInputSchema,
  EmptyBody: emptyBodySchema,
  RestockEvent: restockEventSchema,
  RestockBatch: restockBatchSchema,
  RestockRequest: z.union([restockEventSchema, restockBatchSchema]),
  BulkRequest: bulkRequestSchema,
  CreateInbound: createInboundSchema,
  PatchInbound: patchInboundSchema,
  CreateWebhookEndpoint: createEndpointSchema,
  UpdateWebhookEndpoint: updateEndpointSchema,
  RecoverWebhookEndpoint: recoverEndpointSchema,
} satisfies Record<string, z.ZodType>;
type OutputName = keyof typeof OUTPUT;
type InputName = keyof typeof INPUT;

// ---- Headers -------------------------------------------------------------------------------

const HEADERS = {
  'X-Request-Id': {
    description: "The caller's X-Request-Id when it is 1-128 of [A-Za-z0-9._-], else a new UUID. On every response.",
    schema: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,128}$' },
  },
  Location: {
    description: 'Where the created or accepted resource is read',
    schema: { type: 'string', pattern: '^/' },
  },
  'Idempotent-Replayed': {
    description: '`true` when this is the stored first answer to the same Idempotency-Key and body',
    schema: { type: 'string', const: 'true' },
  },
  'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'integer', minimum: 1 } },
  'WWW-Authenticate': {
    description: 'Asks a browser for the operator key as the HTTP Basic password',
    schema: { type: 'string', pattern: '^Basic ' },
  },
  'Content-Disposition': {
    description: 'Sent with the CSV: attachment; filename="<report>.csv"',
    schema: { type: 'string', pattern: '^attachment' },
  },
} as const;
type HeaderName = keyof typeof HEADERS;
const hdr = (header: HeaderName, required = true): HeaderUse => ({ header, required });

// ---- Operations ----------------------------------------------------------------------------

const ok = (status: number, ref: OutputName, description = 'OK', headers?: Record<string, HeaderUse>): Success => ({
  status,
  description,
  body: { ref },
  headers,
});
const invalidState = 'invalid_state: the order is not in a state that allows this';

export const OPERATIONS: Operation[] = [
  {
    method: 'get',
    path: '/v1/orders/{id}/timeline',
    tag: 'orders',
    summary:
      'Everything that happened to the order, in time order: history, movements, processing runs, deliveries, shipments, returns',
    access: 'intakeRead',
    ok: ok(200, 'Timeline'),
  },
  {
    method: 'post',
    path: '/v1/bulk-actions',
    tag: 'operations',
    summary:
      'Retry failed orders, cancel open orders or resend failed deliveries in bulk: a dry run counts, otherwise it runs on a queue on exactly the set matched now',
    access: 'operator',
    body: { ref: 'BulkRequest' },
    ok: ok(202, 'BulkAction', 'Accepted: running', { Location: hdr('Location') }),
    alsoOk: ok(200, 'BulkDryRun', 'dry_run: what it would act on'),
  },
  {
    method: 'get',
    path: '/v1/bulk-actions',
    tag: 'operations',
    summary: 'Bulk actions, newest first, with their progress',
    access: 'read',
    query: listBulkActionsQuerySchema,
    ok: ok(200, 'BulkActionPage'),
  },
  {
    method: 'get',
    path: '/v1/bulk-actions/{id}',
    tag: 'operations',
    summary: 'A bulk action and its progress: done + skipped + failed reach matched, then status is completed',
    access: 'read',
    ok: ok(200, 'BulkAction'),
  },
  {
    method: 'get',
    path: '/v1/events',
    tag: 'events',
    summary: 'The feed of every event, in sequence order; follow next_cursor (it never skips an event)',
    access: 'intakeRead',
    query: eventsQuerySchema,
    ok: ok(200, 'EventPage'),
  },
  {
    method: 'post',
    path: '/v1/customers',
    tag: 'customers',
    summary: 'Create a customer (optionally idempotent by Idempotency-Key)',
    access: 'intake',
    body: { ref: 'CreateCustomer' },
    idempotencyKey: true,
    ok: ok(201, 'Customer', 'Created', {
      Location: hdr('Location'),
      'Idempotent-Replayed': hdr('Idempotent-Replayed', false),
    }),
    more: {
      409:
        'conflict: a customer with this e-mail exists (any letter case); Location and details name it. ' +
        'idempotency_in_progress: a request with this Idempotency-Key has not finished; retry shortly',
      422: 'idempotency_key_reused: this Idempotency-Key was used with another body',
    },
    moreHeaders: { 409: { Location: hdr('Location', false) } },
  },
  {
    method: 'get',
    path: '/v1/customers',
    tag: 'customers',
    summary: 'List customers, newest first; email= finds one by address (any letter case)',
    access: 'intakeRead',
    query: listCustomersQuerySchema,
    ok: ok(200, 'CustomerPage'),
  },
  {
    method: 'get',
    path: '/v1/customers/{id}',
    tag: 'customers',
    summary: 'Read a customer',
    access: 'intakeRead',
    ok: ok(200, 'Customer'),
  },
  {
    method: 'patch',
    path: '/v1/customers/{id}',
    tag: 'customers',
    summary: 'Change a customer',
    access: 'operator',
    body: { ref: 'UpdateCustomer' },
    ok: ok(200, 'Customer'),
    more: { 409: 'conflict: a customer with this e-mail exists; Location and details name it' },
    moreHeaders: { 409: { Location: hdr('Location', false) } },
  },
  {
    method: 'get',
    path: '/v1/customers/{id}/orders',
    tag: 'customers',
    summary: "A customer's orders, newest first",
    access: 'ordersRead',
    query: listOrdersQuerySchema.omit({ customer_id: true }),
    ok: ok(200, 'OrderPage'),
  },

  {
    method: 'post',
    path: '/v1/products',
    tag: 'products and stock',
    summary: 'Create a product with its stock: initial_stock (at main) or initial_stock_by_location',
    access: 'operator',
    body: { ref: 'CreateProduct' },
    ok: ok(201, 'Product', 'Created', { Location: hdr('Location') }),
    more: { 409: 'conflict: the SKU exists' },
  },
  {
    method: 'get',
    path: '/v1/products/{sku}',
    tag: 'products and stock',
    summary: 'Read a product, its stock totals and its stock per location',
    access: 'catalog',
    ok: ok(200, 'Product'),
  },
  {
    method: 'patch',
    path: '/v1/products/{sku}',
    tag: 'products and stock',
    summary: 'Change name, price, active or low_stock_threshold',
    access: 'operator',
    body: { ref: 'UpdateProduct' },
    ok: ok(200, 'Product'),
  },
  {
    method: 'get',
    path: '/v1/inventory',
    tag: 'products and stock',
    summary: "Stock by SKU: the SKU's totals, or with ?location= that location's rows",
    access: 'catalog',
    query: inventoryQuerySchema,
    ok: ok(200, 'InventoryPage'),
  },
  {
    method: 'post',
    path: '/v1/inventory/{sku}/adjustments',
    tag: 'products and stock',
    summary: 'Correct on_hand at a location, by default main (an adjustment movement)',
    access: 'operator',
    body: { ref: 'Adjustment' },
    ok: ok(201, 'Movement', 'Created'),
    more: { 409: 'conflict: on_hand at the location would fall below what is reserved there' },
  },
  {
    method: 'post',
    path: '/v1/inventory/{sku}/transfers',
    tag: 'products and stock',
    summary: 'Move unreserved units between two locations (transfer_out and transfer_in, one transaction)',
    access: 'operator',
    body: { ref: 'TransferRequest' },
    ok: ok(201, 'Transfer', 'Created'),
    more: { 409: 'conflict: `from` has fewer unreserved units than `quantity`; nothing moved' },
  },
  {
    method: 'post',
    path: '/v1/inventory/counts',
    tag: 'products and stock',
    summary:
      'A stock count: what a location held at counted_at; each variance against the ledger at that time is booked once',
    access: 'feed',
    body: { ref: 'CountRequest' },
    ok: ok(
      202,
      'CountAccepted',
      'Accepted and applied ({accepted: true}), or a count_id seen before with the same body ({accepted: false, duplicate: true}, nothing applied)',
    ),
    more: {
      409: 'conflict: the count_id was used with another body, or an item would leave on_hand below 0 (the ledger moved more units out after counted_at than were counted); nothing applied',
    },
  },
  {
    method: 'get',
    path: '/v1/inventory/counts/{count_id}',
    tag: 'products and stock',
    summary: 'A stock count as recorded: every item with counted, expected and variance',
    access: 'countRead',
    ok: ok(200, 'Count'),
  },

  {
    method: 'post',
    path: '/v1/locations',
    tag: 'locations',
    summary: 'Create a location',
    access: 'operator',
    body: { ref: 'CreateLocation' },
    ok: ok(201, 'Location', 'Created', { Location: hdr('Location') }),
    more: { 409: 'conflict: a location with this code exists' },
  },
  {
    method: 'get',
    path: '/v1/locations',
    tag: 'locations',
    summary: 'Every location, by priority then code',
    access: 'read',
    ok: ok(200, 'LocationList'),
  },
  {
    method: 'get',
    path: '/v1/locations/{code}',
    tag: 'locations',
    summary: 'Read a location',
    access: 'read',
    ok: ok(200, 'Location'),
  },
  {
    method: 'patch',
    path: '/v1/locations/{code}',
    tag: 'locations',
    summary: 'Change name, priority or active (an inactive location gives no new reservation)',
    access: 'operator',
    body: { ref: 'UpdateLocation' },
    ok: ok(200, 'Location'),
  },

  {
    method: 'post',
    path: '/v1/orders',
    tag: 'orders',
    summary: 'Place an order (stored before the answer; processed by the pipeline)',
    access: 'intake',
    body: { ref: 'PlaceOrder' },
    idempotencyKey: true,
    ok: ok(202, 'AcceptedOrder', 'Accepted: stored in PostgreSQL', {
      Location: hdr('Location'),
      'Idempotent-Replayed': hdr('Idempotent-Replayed', false),
    }),
    more: {
      409:
        'conflict: this key name already placed an order with this external_ref (details name external_ref, ' +
        'Location the order); idempotency_in_progress: a request with this Idempotency-Key has not finished; retry shortly',
      422: 'idempotency_key_reused: this Idempotency-Key was used with another body',
    },
    moreHeaders: { 409: { Location: hdr('Location', false) } },
  },
  {
    method: 'get',
    path: '/v1/orders',
    tag: 'orders',
    summary: 'List orders, newest first, by any of the filters (all of them must match)',
    access: 'ordersRead',
    query: listOrdersQuerySchema,
    ok: ok(200, 'OrderPage'),
  },
  {
    method: 'get',
    path: '/v1/orders/{id}',
    tag: 'orders',
    summary: 'Read an order with its lines and history',
    access: 'ordersRead',
    ok: ok(200, 'Order'),
  },
  {
    method: 'patch',
    path: '/v1/orders/{id}',
    tag: 'orders',
    summary:
      'Edit lines while received, awaiting_stock or confirmed and nothing shipped; processed again. ' +
      'An unknown or inactive SKU is 400 naming the line; the order is unchanged',
    access: 'intake',
    body: { ref: 'PatchOrder' },
    ok: ok(202, 'Order', 'Accepted: back to received, processed again'),
    more: { 409: invalidState },
  },
  {
    method: 'post',
    path: '/v1/orders/{id}/cancel',
    tag: 'orders',
    summary: 'Cancel; units reserved and not shipped are released (shipped units stay sold)',
    access: 'intake',
    body: { ref: 'CancelOrder', optional: true },
    ok: ok(200, 'Order'),
    more: { 409: invalidState },
  },
  {
    method: 'delete',
    path: '/v1/orders/{id}',
    tag: 'orders',
    summary: 'Cancel (same as POST .../cancel)',
    access: 'intake',
    body: { ref: 'CancelOrder', optional: true },
    ok: ok(200, 'Order'),
    more: { 409: invalidState },
  },
  {
    method: 'post',
    path: '/v1/orders/{id}/fulfill',
    tag: 'orders',
    summary: 'confirmed or partially_shipped → completed: ships every reserved unit, one shipment per location',
    access: 'feed',
    body: { ref: 'EmptyBody', optional: true },
    ok: ok(200, 'Order'),
    more: { 409: invalidState },
  },
  {
    method: 'post',
    path: '/v1/orders/{id}/retry',
    tag: 'orders',
    summary: 'failed → received, processed again',
    access: 'operator',
    body: { ref: 'EmptyBody', optional: true },
    ok: ok(202, 'Order', 'Accepted: processed again'),
    more: { 409: invalidState },
  },
  {
    method: 'post',
    path: '/v1/orders/{id}/shipments',
    tag: 'shipments and returns',
    summary: 'Ship reserved units from one location (a sale there per line); idempotent by shipment_id',
    access: 'feed',
    body: { ref: 'ShipmentRequest' },
    ok: ok(201, 'Shipment', 'Created'),
    alsoOk: ok(200, 'Shipment', 'The same shipment_id with the same body again: the first answer, nothing shipped'),
    more: {
      409:
        'conflict: more units than are reserved at that location and not yet shipped (nothing shipped); ' +
        'invalid_state: the order is not confirmed, partially_shipped or awaiting_stock',
      422: 'idempotency_key_reused: this shipment_id was used with another shipment',
    },
  },
  {
    method: 'get',
    path: '/v1/orders/{id}/shipments',
    tag: 'shipments and returns',
    summary: "The order's shipments, oldest first",
    access: 'ordersRead',
    ok: ok(200, 'ShipmentList'),
  },
  {
    method: 'post',
    path: '/v1/orders/{id}/returns',
    tag: 'shipments and returns',
    summary: 'Shipped units come back: restock (a return movement) or damaged; idempotent by return_id',
    access: 'feed',
    body: { ref: 'ReturnRequest' },
    ok: ok(201, 'Return', 'Created'),
    alsoOk: ok(200, 'Return', 'The same return_id with the same body again: the first answer, nothing returned'),
    more: {
      409: 'conflict: more units than were shipped and not yet returned (nothing returned)',
      422: 'idempotency_key_reused: this return_id was used with another return',
    },
  },
  {
    method: 'get',
    path: '/v1/orders/{id}/returns',
    tag: 'shipments and returns',
    summary: "The order's returns, oldest first",
    access: 'ordersRead',
    ok: ok(200, 'ReturnList'),
  },

  {
    method: 'post',
    path: '/v1/restocks',
    tag: 'restocks',
    summary: 'Receive restock events at a location, by default main (one, or {events: [...]} up to 1000)',
    access: 'feed',
    body: { ref: 'RestockRequest' },
    ok: ok(202, 'RestockAccepted', 'Accepted'),
    more: {
      409: 'conflict: an event_id received before with another sku, quantity, location or inbound_id (details name it); nothing applied',
    },
  },
  {
    method: 'post',
    path: '/v1/inbound',
    tag: 'restocks',
    summary: 'Record an expected shipment; the same inbound_id and body again replays it',
    access: 'feed',
    body: { ref: 'CreateInbound' },
    ok: ok(201, 'Inbound', 'Created', { Location: hdr('Location') }),
    alsoOk: ok(200, 'Inbound', 'The same inbound_id with the same body again: the shipment as it is now'),
    more: { 409: 'conflict: this inbound_id was used with another sku, location, quantity or expected_at' },
  },
  {
    method: 'get',
    path: '/v1/inbound',
    tag: 'restocks',
    summary: 'Inbound shipments by expected_at, filtered by sku and status',
    access: 'feedRead',
    query: inboundQuerySchema,
    ok: ok(200, 'InboundPage'),
  },
  {
    method: 'get',
    path: '/v1/inbound/{inbound_id}',
    tag: 'restocks',
    summary: 'Read an inbound shipment',
    access: 'feedRead',
    ok: ok(200, 'Inbound'),
  },
  {
    method: 'patch',
    path: '/v1/inbound/{inbound_id}',
    tag: 'restocks',
    summary: 'Change quantity or expected_at, or cancel',
    access: 'feed',
    body: { ref: 'PatchInbound' },
    ok: ok(200, 'Inbound'),
    more: { 409: 'invalid_state: the shipment is cancelled (only cancelling it again is accepted)' },
  },
  {
    method: 'get',
    path: '/v1/inventory/{sku}/queue',
    tag: 'restocks',
    summary: "A SKU's waiting lines with positions and ETAs, and its open inbound shipments",
    access: 'read',
    ok: ok(200, 'SkuQueue'),
  },
  {
    method: 'get',
    path: '/v1/reports/replenishment',
    tag: 'reports',
    summary: 'Per SKU (or per SKU at a location): sales per day, cover, backorders, suggested order',
    access: 'read',
    query: replenishmentQuerySchema,
    ok: {
      ...ok(200, 'ReplenishmentReport', 'JSON, or text/csv with format=csv', {
        'Content-Disposition': hdr('Content-Disposition', false),
      }),
      csv: true,
    },
  },

  {
    method: 'get',
    path: '/v1/orders/{id}/notifications',
    tag: 'notifications',
    summary: "The order's events per channel and their delivery",
    access: 'ordersRead',
    ok: ok(200, 'OrderNotifications'),
  },
  {
    method: 'post',
    path: '/v1/notifications/{id}/resend',
    tag: 'notifications',
    summary: 'Deliver a delivered or failed notification again',
    access: 'operator',
    body: { ref: 'EmptyBody', optional: true },
    ok: ok(202, 'Notification', 'Accepted: pending again'),
    more: { 409: 'invalid_state: the notification is pending (still being delivered)' },
  },

  {
    method: 'post',
    path: '/v1/webhook-endpoints',
    tag: 'webhook endpoints',
    summary: 'Subscribe a URL to event types (["*"]: all); the secret is shown in this answer only',
    access: 'operator',
    body: { ref: 'CreateWebhookEndpoint' },
    ok: ok(201, 'CreatedWebhookEndpoint', 'Created'),
  },
  {
    method: 'get',
    path: '/v1/webhook-endpoints',
    tag: 'webhook endpoints',
    summary: 'Every webhook endpoint (without secrets), oldest first',
    access: 'read',
    ok: ok(200, 'WebhookEndpointList'),
  },
  {
    method: 'get',
    path: '/v1/webhook-endpoints/{id}',
    tag: 'webhook endpoints',
    summary: 'Read a webhook endpoint (without its secret)',
    access: 'read',
    ok: ok(200, 'WebhookEndpoint'),
  },
  {
    method: 'patch',
    path: '/v1/webhook-endpoints/{id}',
    tag: 'webhook endpoints',
    summary: 'Change its URL, types, description or status (active | disabled)',
    access: 'operator',
    body: { ref: 'UpdateWebhookEndpoint' },
    ok: ok(200, 'WebhookEndpoint'),
  },
  {
    method: 'delete',
    path: '/v1/webhook-endpoints/{id}',
    tag: 'webhook endpoints',
    summary: 'Delete it with its delivery log; pending deliveries are dropped',
    access: 'operator',
    body: { ref: 'EmptyBody', optional: true },
    ok: { status: 204, description: 'Deleted' },
  },
  {
    method: 'post',
    path: '/v1/webhook-endpoints/{id}/rotate-secret',
    tag: 'webhook endpoints',
    summary: 'A new secret; for 24 h every delivery is signed with both (webhook-signature: v1,<new> v1,<old>)',
    access: 'operator',
    body: { ref: 'EmptyBody', optional: true },
    ok: ok(200, 'WebhookEndpointSecret'),
  },
  {
    method: 'post',
    path: '/v1/webhook-endpoints/{id}/recover',
    tag: 'webhook endpoints',
    summary: 'Active again; every event since `since` it did not receive is sent to it, one at a time, in order',
    access: 'operator',
    body: { ref: 'RecoverWebhookEndpoint' },
    ok: ok(202, 'WebhookEndpoint', 'Accepted: active, the missed events are being sent'),
  },
  {
    method: 'get',
    path: '/v1/webhook-endpoints/{id}/deliveries',
    tag: 'webhook endpoints',
    summary: "The endpoint's deliveries, newest first (one per event)",
    access: 'read',
    query: listDeliveriesQuerySchema,
    ok: ok(200, 'DeliveryPage'),
  },

  {
    method: 'get',
    path: '/v1/reports/orders',
    tag: 'reports',
    summary: 'Orders by status, revenue (confirmed + partially_shipped + completed), per UTC day',
    access: 'read',
    query: ordersReportQuerySchema,
    ok: ok(200, 'OrdersReport'),
  },
  {
    method: 'get',
    path: '/v1/reports/inventory',
    tag: 'reports',
    summary: 'Per SKU stock and waiting orders, lowest available first',
    access: 'read',
    query: inventoryReportQuerySchema,
    ok: {
      ...ok(200, 'InventoryReport', 'JSON, or text/csv with format=csv', {
        'Content-Disposition': hdr('Content-Disposition', false),
      }),
      csv: true,
    },
  },
  {
    method: 'get',
    path: '/v1/reports/ledger',
    tag: 'reports',
    summary: 'The ledger against on_hand, per SKU or (by=location) per SKU and location; mismatches',
    access: 'read',
    query: ledgerReportQuerySchema,
    ok: ok(200, 'LedgerReport'),
  },
  {
    method: 'get',
    path: '/v1/reports/queues',
    tag: 'reports',
    summary: 'BullMQ job counts per queue (503 when Redis does not answer)',
    access: 'read',
    ok: ok(200, 'QueuesReport'),
  },

  {
    method: 'get',
    path: '/healthz',
    tag: 'operations',
    summary: 'The process is up',
    access: 'public',
    store: false,
    ok: ok(200, 'Health'),
  },
  {
    method: 'get',
    path: '/readyz',
    tag: 'operations',
    summary: 'PostgreSQL and Redis answer; 503 names the one that does not',
    access: 'public',
    store: false,
    ok: ok(200, 'Ready'),
  },
  {
    method: 'get',
    path: '/metrics',
    tag: 'operations',
    summary: 'Prometheus text exposition',
    access: 'browser',
    store: false,
    ok: { status: 200, description: 'OK', body: { type: 'text/plain' } },
  },
  {
    method: 'get',
    path: '/dashboard',
    tag: 'operations',
    summary: 'Charts of the reports (HTML)',
    access: 'browser',
    store: false,
    ok: { status: 200, description: 'OK', body: { type: 'text/html' } },
  },
  {
    method: 'get',
    path: '/console',
    tag: 'operations',
    summary: "The operators' console: find orders, their timeline, actions and bulk actions (HTML; a viewer reads)",
    access: 'browser',
    store: false,
    ok: { status: 200, description: 'OK', body: { type: 'text/html' } },
  },
  {
    method: 'get',
    path: '/admin/queues',
    tag: 'operations',
    summary: 'bull-board over every queue (HTML)',
    access: 'browser',
    store: false,
    ok: { status: 200, description: 'OK', body: { type: 'text/html' } },
  },
  {
    method: 'get',
    path: '/docs/openapi.json',
    tag: 'operations',
    summary: 'This document',
    access: 'public',
    store: false,
    ok: ok(200, 'OpenApiDocument'),
  },
];

// ---- Statuses ------------------------------------------------------------------------------

const WRITES: ReadonlySet<Method> = new Set(['post', 'patch', 'delete']);
const hasPathParams = (op: Operation) => op.path.includes('{');

/**
 * What the shared layers answer, derived from the middleware (src/http/app.ts and middleware/*):
 * - 400: a body that is not JSON or fails its schema, a query that fails its schema, a path with
 *   broken percent-encoding (express cannot decode the parameter);
 * - 401/403: the guard of every route but the public ones;
 * - 404: a path id that does not exist (or is not a UUID / not a SKU);
 * - 413/415/429: every write (body over 1 MiB, body not JSON, RATE_LIMIT_RPS per key);
 * - 503: PostgreSQL (or, for the queue report and /readyz, Redis) does not answer, or a stock row
 *   stayed too busy; with Retry-After;
 * - 500: an internal error (never from client input), naming the request id.
 */
export function statusesOf(op: Operation): number[] {
  const s = new Set<number>([op.ok.status]);
  if (op.alsoOk) s.add(op.alsoOk.status);
  const write = WRITES.has(op.method);
  // Every operation refuses an unknown query parameter (src/http/guards.ts, middleware/request.ts
  // noQuery) but bull-board's page, which the board serves as it likes.
  if (op.path !== '/admin/queues') s.add(400);
  if (op.access !== 'public') {
    s.add(401);
    if (refusedRole(op.access)) s.add(403);
  }
  if (hasPathParams(op)) s.add(404);
  if (write) {
    s.add(413);
    s.add(415);
    s.add(429);
  }
  for (const status of Object.keys(op.more ?? {})) s.add(Number(status));
  if (op.store !== false || op.path === '/readyz') s.add(503);
  s.add(500);
  return [...s].sort((a, b) => a - b);
}

const SHARED: Record<number, { name: string; description: string; headers?: HeaderName[] }> = {
  400: {
    name: 'BadRequest',
    description:
      'invalid_json (the body is not JSON) or validation_failed (details name each bad field: an unknown field or ' +
      'query parameter, a string that is not well-formed Unicode, a value out of its range)',
  },
  401: { name: 'Unauthorized', description: 'unauthorized: missing or unknown API key' },
  403: { name: 'Forbidden', description: 'forbidden: the key has another role' },
  404: { name: 'NotFound', description: 'not_found: no such resource' },
  413: { name: 'PayloadTooLarge', description: 'payload_too_large: the body is over 1 MiB' },
  415: {
    name: 'UnsupportedMediaType',
    description:
      'unsupported_media_type: a body that is not application/json, or an unsupported Content-Encoding or charset',
  },
  429: {
    name: 'TooManyRequests',
    description: 'rate_limited: more writes per second with this key than RATE_LIMIT_RPS',
    headers: ['Retry-After'],
  },
  500: {
    name: 'InternalError',
    description: 'internal: an unexpected error; the message names the request id (never caused by client input)',
  },
  503: {
    name: 'Unavailable',
    description: 'unavailable: PostgreSQL or Redis does not answer, or a stock row is too busy; nothing was changed',
    headers: ['Retry-After'],
  },
};

// ---- Building ------------------------------------------------------------------------------

type JsonSchema = Record<string, unknown>;
const UUID_SOURCE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.source;
const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/**
 * JSON Schema has no regex flags: a case-insensitive zod regex (the request UUIDs) becomes a pattern
 * that spells both cases. Any other flagged regex would be emitted wrongly, so it stops the build.
 */
function override(ctx: { zodSchema: unknown; jsonSchema: JsonSchema }): void {
  const checks = ((ctx.zodSchema as any)?._zod?.def?.checks ?? []) as any[];
  for (const c of checks) {
    const pattern = c?._zod?.def?.pattern;
    // JSON Schema 2020-12 reads patterns as ECMA-262 with Unicode semantics: `u` is what it means.
    if (!(pattern instanceof RegExp) || !pattern.flags || pattern.flags === 'u') continue;
    if (pattern.flags === 'i' && pattern.source === UUID_SOURCE) ctx.jsonSchema.pattern = UUID_PATTERN;
    else throw new Error(`openapi: regex /${pattern.source}/${pattern.flags} has flags JSON Schema cannot express`);
  }
}

const toJson = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    reused: 'inline',
    override,
  }) as JsonSchema;
  return rest;
};

function components(registryOf: Record<string, z.ZodType>, io: 'input' | 'output'): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(registryOf)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
    reused: 'inline',
    override,
    uri: (id) => `#/components/schemas/${id}`,
  }) as { schemas: Record<string, JsonSchema> };
  return Object.fromEntries(Object.entries(schemas).map(([id, { $schema: _s, $id: _i, ...rest }]) => [id, rest]));
}

const ref = (kind: 'schemas' | 'responses' | 'headers' | 'parameters', name: string) => ({
  $ref: `#/components/${kind}/${name}`,
});
const headerRefs = (names: HeaderName[], extra: Record<string, HeaderUse> = {}) => {
  const out: Record<string, unknown> = { 'X-Request-Id': ref('headers', 'X-Request-Id') };
  for (const n of names) out[n] = ref('headers', n);
  for (const [name, use] of Object.entries(extra))
    out[name] = use.required ? ref('headers', use.header) : ref('headers', `${use.header}-optional`);
  return out;
};
const json = (schemaName: OutputName) => ({ 'application/json': { schema: ref('schemas', schemaName) } });

const SECURITY = (access: Access): Record<string, string[]>[] =>
  access === 'public' ? [] : access === 'browser' ? [{ bearer: [] }, { basic: [] }] : [{ bearer: [] }];

/** The note on who may call an operation, from the one access table the guards use. */
const roleNote = (op: Operation) => {
  if (op.access === 'public') return 'No key needed.';
  const roles = ['operator', ...ACCESS[op.access]].join(', ');
  return op.access === 'browser'
    ? `Roles: ${roles}; the key as Bearer, or as the password of HTTP Basic auth (any user name).`
    : `Roles: ${roles}.`;
};

function pathParams(path: string) {
  return [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) =>
    name === 'sku'
      ? {
          name,
          in: 'path',
          required: true,
          description: 'SKU (any other text: 404)',
          schema: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
        }
      : name === 'count_id' || name === 'inbound_id'
        ? {
            name,
            in: 'path',
            required: true,
            description: `the ${name} as posted, percent-encoded (an unknown one: 404)`,
            schema: { type: 'string', minLength: 1, maxLength: 255 },
          }
        : name === 'code'
          ? {
              name,
              in: 'path',
              required: true,
              description: 'location code (any other text: 404)',
              schema: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,32}$' },
            }
          : {
              name,
              in: 'path',
              required: true,
              description: `${path.includes('/customers/') ? 'customer' : path.includes('/notifications/') ? 'notification' : path.includes('/webhook-endpoints/') ? 'webhook endpoint' : path.includes('/bulk-actions/') ? 'bulk action' : 'order'} id: a UUID, either letter case (any other text: 404)`,
              schema: { type: 'string', format: 'uuid', pattern: UUID_PATTERN },
            },
  );
}

export const operationId = (op: Pick<Operation, 'method' | 'path'>) =>
  `${op.method}${op.path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`;

function responsesOf(op: Operation): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const status of statusesOf(op)) {
    const success = [op.ok, op.alsoOk].find((x) => x?.status === status);
    if (success) {
      const { body, description, headers, csv } = success;
      const content = !body
        ? undefined
        : 'ref' in body
          ? json(body.ref)
          : { [body.type]: { schema: { type: 'string' } } };
      if (content && csv) (content as Record<string, unknown>)['text/csv'] = { schema: { type: 'string' } };
      responses[status] = { description, headers: headerRefs([], headers), ...(content ? { content } : {}) };
    } else if (op.path === '/readyz' && status === 503) {
      responses[status] = {
        description: 'unavailable: names the unreachable dependency; checks says which answered',
        headers: headerRefs(['Retry-After']),
        content: json('NotReady'),
      };
    } else if (status === 401 && op.access === 'browser') {
      responses[status] = ref('responses', 'UnauthorizedBrowser');
    } else if (op.more?.[status]) {
      responses[status] = {
        description: op.more[status],
        headers: headerRefs([], op.moreHeaders?.[status]),
        content: json('Error'),
      };
    } else {
      responses[status] = ref('responses', SHARED[status].name);
    }
  }
  return responses;
}

function operationObject(op: Operation) {
  const parameters: unknown[] = [...pathParams(op.path)];
  if (op.query) {
    for (const [name, field] of Object.entries(op.query.shape)) {
      const f = field as z.ZodType;
      parameters.push({ name, in: 'query', required: !f.safeParse(undefined).success, schema: toJson(f, 'input') });
    }
  }
  if (op.idempotencyKey) {
    parameters.push({
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      description:
        'Same key and same body again: the first answer replayed, with Idempotent-Replayed: true. Same key, other body: 422. Kept at least 24 h.',
      schema: toJson(idempotencyKeySchema, 'input'),
    });
  }
  parameters.push(ref('parameters', 'RequestId'));
  return {
    tags: [op.tag],
    summary: op.summary,
    description: roleNote(op),
    operationId: operationId(op),
    security: SECURITY(op.access),
    parameters,
    ...(op.body
      ? {
          requestBody: {
            required: !op.body.optional,
            ...(op.body.optional ? { description: 'May be left out (no body, or an empty one).' } : {}),
            content: { 'application/json': { schema: ref('schemas', op.body.ref) } },
          },
        }
      : {}),
    responses: responsesOf(op),
  };
}

export function buildOpenApiDocument(opts: { version?: string } = {}) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) (paths[op.path] ??= {})[op.method] = operationObject(op);
  const headers: Record<string, unknown> = {};
  for (const [name, h] of Object.entries(HEADERS)) {
    headers[name] = { description: h.description, required: true, schema: h.schema };
    headers[`${name}-optional`] = { description: h.description, required: false, schema: h.schema };
  }
  const responses: Record<string, unknown> = {};
  for (const { name, description, headers: names } of Object.values(SHARED)) {
    responses[name] = { description, headers: headerRefs(names ?? []), content: json('Error') };
  }
  responses.UnauthorizedBrowser = {
    description: SHARED[401].description,
    headers: headerRefs(['WWW-Authenticate']),
    content: json('Error'),
  };
  // Only the header components that some response uses (an unused component is noise to a reader).
  const used = new Set(
    [...JSON.stringify({ paths, responses }).matchAll(/#\/components\/headers\/([\w-]+)/g)].map(([, n]) => n),
  );
  for (const name of Object.keys(headers)) if (!used.has(name)) delete headers[name];
  const output = components(OUTPUT, 'output');
  // Requests are parsed strictly (platform/validation `strict`): the document says so (additionalProperties: false).
  const input = components(Object.fromEntries(Object.entries(INPUT).map(([k, v]) => [k, strict(v)])), 'input');
  for (const name of Object.keys(input))
    if (name in output) throw new Error(`openapi: component ${name} is both a request and a response schema`);
  return {
    openapi: '3.1.0',
    info: {
      title: 'orderflow',
      version: opts.version ?? '0.1.0',
      description:
        'Order pipeline: durable intake, BullMQ workers, optimistic stock reservation, FIFO backorders, signed webhooks. ' +
        'Every error is JSON: {"error": {"code", "message", "details": [{path, message}]}}. Every response carries X-Request-Id. ' +
        'Any request can also get 431 (headers over 16 KiB), 414, 408 or 400 from the HTTP parser before it reaches an operation; those are not listed per operation.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
    tags: [
      { name: 'customers', description: 'Customers and their order history' },
      { name: 'products and stock', description: 'Products, stock per location, adjustments and transfers' },
      { name: 'locations', description: 'Where stock is kept; `main` always exists' },
      { name: 'orders', description: 'Intake, edit, cancel, fulfil, retry' },
      { name: 'shipments and returns', description: 'Units leaving a location, and coming back' },
      { name: 'restocks', description: 'Restock events from the feed' },
      { name: 'notifications', description: 'Delivery log and resend' },
      { name: 'events', description: 'Every event the system announces, as a feed' },
      {
        name: 'webhook endpoints',
        description: 'Integrations subscribed to event types, signed with their own secret',
      },
      { name: 'reports', description: 'Aggregates for operators' },
      { name: 'operations', description: 'Health, metrics, board, dashboard, this document' },
    ],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'API key: Authorization: Bearer <key>' },
        basic: {
          type: 'http',
          scheme: 'basic',
          description: 'Browser pages: any user name, the operator key as password',
        },
      },
      parameters: {
        RequestId: {
          name: 'X-Request-Id',
          in: 'header',
          required: false,
          description: 'Echoed back when it is 1-128 of [A-Za-z0-9._-]; otherwise a new id is made',
          schema: { type: 'string' },
        },
      },
      headers,
      responses,
      schemas: { ...output, ...input },
    },
  };
}
