import { z } from 'zod';
import { externalIdSchema, limitSchema, metadataSchema, skuSchema, uuidParam } from '../platform/validation';
import { ORDER_STATUSES } from './status';

/** A time as sent (ISO 8601, UTC); `format: date-time` in the OpenAPI document. */
const timestamp = z.string().meta({ format: 'date-time' });

export const orderLineInput = z.object({
  sku: skuSchema,
  quantity: z.number().int('must be an integer').min(1).max(10000),
});
const lines = z
  .array(orderLineInput)
  .min(1, 'at least one line')
  .max(100, 'at most 100 lines')
  .superRefine((ls, ctx) => {
    const seen = new Set<string>();
    ls.forEach((l, i) => {
      if (seen.has(l.sku)) ctx.addIssue({ code: 'custom', path: [i, 'sku'], message: `duplicate SKU ${l.sku}` });
      seen.add(l.sku);
    });
  });
const onShort = z.enum(['backorder', 'reject']);

export const placeOrderSchema = z.object({
  customer_id: uuidParam,
  lines,
  on_insufficient_stock: onShort.default('backorder'),
  external_ref: z.string().min(1, 'must not be empty: leave it out, or null, for none').max(255).nullable().optional(),
  metadata: metadataSchema.optional(),
});
export type PlaceOrder = z.infer<typeof placeOrderSchema>;

export const patchOrderSchema = z
  .object({
    lines: lines.optional(),
    on_insufficient_stock: onShort.optional(),
  })
  .refine(
    (v) => v.lines !== undefined || v.on_insufficient_stock !== undefined,
    'at least one of lines, on_insufficient_stock is required',
  );
export type PatchOrder = z.infer<typeof patchOrderSchema>;

export const cancelOrderSchema = z.object({ reason: z.string().trim().min(1).max(500).optional() });
export const emptyBodySchema = z.object({});

export const idempotencyKeySchema = z.string().min(1).max(255);

/** A day (`2026-11-25`, read as 00:00 UTC) or an ISO 8601 date-time with an offset (as the reports take). */
export const timeBoundSchema = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);
const bound = timeBoundSchema;
export const listOrdersQuerySchema = z.object({
  status: z.enum(ORDER_STATUSES).optional(),
  customer_id: uuidParam.optional(),
  sku: skuSchema.optional(),
  external_ref: z.string().min(1).max(255).optional().describe('exact, from any key name'),
  q: z
    .string()
    .trim()
    .min(1)
    .max(255)
    .optional()
    .describe("an order id prefix (4+ characters), an external_ref, the customer's e-mail (any letter case) or a SKU"),
  reason: z.string().min(1).max(500).optional().describe('a substring of status_reason, any letter case'),
  created_from: bound.optional().describe('created at or after; a date means 00:00 UTC of that day'),
  created_to: bound.optional().describe('created before; a date includes that whole day (UTC)'),
  updated_since: bound.optional().describe('updated at or after (every transition and edit updates an order)'),
  limit: limitSchema,
  cursor: z.string().max(500).optional(),
});
export type ListOrdersQuery = z.infer<typeof listOrdersQuerySchema>;

export const actorSchema = z.object({ role: z.string(), name: z.string() });
const locationCode = z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1–32 of A-Z a-z 0-9 . _ -');
const shipQuantity = z.number().int('must be an integer').min(1).max(10000);
const distinctSkus = <T extends { sku: string }>(ls: T[], ctx: z.RefinementCtx) => {
  const seen = new Set<string>();
  ls.forEach((l, i) => {
    if (seen.has(l.sku)) ctx.addIssue({ code: 'custom', message: `duplicate SKU ${l.sku}`, path: [i, 'sku'] });
    seen.add(l.sku);
  });
};
export const shipmentInputSchema = z.object({
  shipment_id: externalIdSchema.optional(),
  location: locationCode.optional(),
  lines: z
    .array(z.object({ sku: skuSchema, quantity: shipQuantity }))
    .min(1)
    .max(100)
    .superRefine(distinctSkus),
  carrier: z.string().trim().min(1).max(200).optional(),
  tracking: z.string().trim().min(1).max(500).optional(),
});
export const returnInputSchema = z.object({
  return_id: externalIdSchema.optional(),
  lines: z
    .array(
      z.object({
        sku: skuSchema,
        quantity: shipQuantity,
        disposition: z.enum(['restock', 'damaged']),
        location: locationCode.optional(),
      }),
    )
    .min(1)
    .max(100)
    .superRefine(distinctSkus),
  reason: z.string().trim().min(1).max(500).optional(),
});
export const shipmentSchema = z.object({
  id: z.uuid(),
  shipment_id: z.string(),
  order_id: z.uuid(),
  location: z.string(),
  lines: z.array(z.object({ sku: z.string(), quantity: z.number().int() })),
  carrier: z.string().nullable(),
  tracking: z.string().nullable(),
  actor: actorSchema,
  created_at: timestamp,
});
export const returnSchema = z.object({
  id: z.uuid(),
  return_id: z.string(),
  order_id: z.uuid(),
  lines: z.array(
    z.object({
      sku: z.string(),
      quantity: z.number().int(),
      disposition: z.enum(['restock', 'damaged']),
      location: z.string().nullable(),
    }),
  ),
  reason: z.string().nullable(),
  actor: actorSchema,
  created_at: timestamp,
});
export const shipmentListSchema = z.object({ data: z.array(shipmentSchema) });
export const returnListSchema = z.object({ data: z.array(returnSchema) });

export const orderSchema = z.object({
  id: z.uuid(),
  seq: z.number().int(),
  customer_id: z.uuid(),
  status: z.enum(ORDER_STATUSES),
  status_reason: z.string().nullable(),
  on_insufficient_stock: onShort,
  external_ref: z.string().nullable(),
  metadata: z.record(z.string(), z.string()).describe('as given at intake ({} when none was)'),
  lines: z.array(
    z.object({
      sku: z.string(),
      quantity: z.number().int(),
      unit_price_cents: z.number().int().nullable(),
      reserved: z.number().int(),
      shipped: z.number().int(),
      returned: z.number().int(),
      waiting: z.boolean(),
      allocations: z.array(z.object({ location: z.string(), reserved: z.number().int(), shipped: z.number().int() })),
      queue: z
        .object({
          position: z.number().int().min(1).describe('1 = the head of the SKU queue'),
          units_ahead: z.number().int().min(0).describe('unreserved quantity of the waiting lines before it'),
          eta: timestamp
            .nullable()
            .describe('when stock is expected to cover it; now if free stock does; null if nothing expected does'),
        })
        .nullable()
        .describe('set on a waiting line, null otherwise'),
    }),
  ),
  eta: timestamp.nullable().describe("the latest of its waiting lines' etas; null if one is null or nothing waits"),
  total_cents: z.number().int().nullable(),
  attempts: z.number().int(),
  history: z.array(
    z.object({ status: z.enum(ORDER_STATUSES), at: timestamp, detail: z.string().nullable(), actor: actorSchema }),
  ),
  shipments: z.array(shipmentSchema),
  returns: z.array(returnSchema),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Order = z.infer<typeof orderSchema>;
export const acceptedOrderSchema = z.object({
  id: z.uuid(),
  seq: z.number().int(),
  status: z.literal('received'),
  created_at: timestamp,
});

/** One entry of an order's timeline: when, what kind, and the fields of that kind. */
export const timelineSchema = z.object({
  data: z.array(
    z
      .object({
        at: timestamp,
        kind: z.enum(['history', 'movement', 'processing', 'delivery', 'shipment', 'return']),
      })
      .catchall(z.unknown()),
  ),
});
