import { z } from 'zod';
import { ORDER_STATUSES } from '../orders/status';
import { httpUrl, limitSchema } from '../platform/validation';

/** A time as sent (ISO 8601, UTC); `format: date-time` in the OpenAPI document. */
const timestamp = z.string().meta({ format: 'date-time' });

/** Every event type an endpoint may subscribe to (the contract's list); `*` alone means all of them. */
export const EVENT_TYPES = [
  ...ORDER_STATUSES.map((s) => `order.${s}`),
  'shipment.created',
  'return.created',
  'inventory.low_stock',
  'inventory.back_in_stock',
  'inventory.count_variance',
] as const;

export const ENDPOINT_STATUSES = ['active', 'disabled'] as const;
export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;

const types = z
  .array(z.string().refine((t) => t === '*' || (EVENT_TYPES as readonly string[]).includes(t), 'unknown event type'))
  .min(1)
  .max(100)
  .refine((ts) => !ts.includes('*') || ts.length === 1, '"*" stands alone: every type')
  .transform((ts) => [...new Set(ts)])
  .describe(`event types, or ["*"] for every type: ${EVENT_TYPES.join(', ')}`);
const description = z.string().trim().max(500).nullable();

export const createEndpointSchema = z.strictObject({
  url: httpUrl,
  types,
  description: description.optional(),
});
export const updateEndpointSchema = z
  .strictObject({
    url: httpUrl.optional(),
    types: types.optional(),
    description: description.optional(),
    status: z.enum(ENDPOINT_STATUSES).optional(),
  })
  .refine(
    (v) => Object.values(v).some((x) => x !== undefined),
    'at least one of url, types, description, status is required',
  );
export const recoverEndpointSchema = z.strictObject({
  since: z.iso.datetime({ offset: true }).describe('deliver every event created at or after this time'),
});
export const listDeliveriesQuerySchema = z.strictObject({
  status: z.enum(DELIVERY_STATUSES).optional(),
  limit: limitSchema,
  cursor: z.string().max(500).optional(),
});
export type CreateEndpoint = z.infer<typeof createEndpointSchema>;
export type UpdateEndpoint = z.infer<typeof updateEndpointSchema>;
export type ListDeliveriesQuery = z.infer<typeof listDeliveriesQuerySchema>;

export const endpointSchema = z.object({
  id: z.uuid(),
  url: z.string(),
  types: z.array(z.string()),
  description: z.string().nullable(),
  status: z.enum(ENDPOINT_STATUSES),
  created_at: timestamp,
  updated_at: timestamp,
  disabled_at: timestamp.nullable().describe('when it was disabled (by an operator or after failing), else null'),
  disabled_reason: z.enum(['operator', 'failing']).nullable(),
});
export const createdEndpointSchema = endpointSchema.extend({
  secret: z.string().describe('whsec_ + base64: shown in this answer only'),
});
export const endpointListSchema = z.object({ data: z.array(endpointSchema) });
export const endpointSecretSchema = z.object({ secret: z.string() });
export const deliverySchema = z.object({
  id: z.uuid(),
  event_id: z.uuid(),
  event_type: z.string(),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.number().int(),
  last_status_code: z.number().int().nullable(),
  last_error: z.string().nullable(),
  delivered_at: timestamp.nullable(),
});
export const deliveryPageSchema = z.object({ data: z.array(deliverySchema), next_cursor: z.string().nullable() });
export type Endpoint = z.infer<typeof endpointSchema>;
export type Delivery = z.infer<typeof deliverySchema>;
