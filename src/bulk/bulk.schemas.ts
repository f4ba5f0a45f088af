import { z } from 'zod';
import { EVENT_TYPES } from '../events/events.schemas';
import { timeBoundSchema } from '../orders/orders.schemas';
import { ORDER_STATUSES } from '../orders/status';
import { limitSchema } from '../platform/validation';

const timestamp = z.string().meta({ format: 'date-time' });
const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID');
const time = z.iso.datetime({ offset: true });

export const orderFilterSchema = z.strictObject({
  status: z.enum(ORDER_STATUSES).optional(),
  reason: z.string().min(1).max(500).optional(),
  sku: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be a SKU')
    .optional(),
  customer_id: uuid.optional(),
  // As GET /v1/orders takes them: a date (created_to: that whole day) or a date-time.
  created_from: timeBoundSchema.optional(),
  created_to: timeBoundSchema.optional(),
  ids: z.array(uuid).min(1).max(10000).optional(),
});
export const deliveryFilterSchema = z.strictObject({
  status: z.literal('failed'),
  endpoint_id: uuid.optional(),
  type: z.enum(EVENT_TYPES).optional(),
  since: time.optional(),
});

export const bulkRequestSchema = z.discriminatedUnion('action', [
  z.strictObject({
    action: z.enum(['retry_orders', 'cancel_orders']),
    // Required, as the contract writes it (`filter`, not `filter?`): a forgotten filter must not
    // mean every order. `{}` says it on purpose.
    filter: orderFilterSchema,
    reason: z.string().trim().min(1).max(500).optional(),
    dry_run: z.boolean().optional(),
  }),
  z.strictObject({
    action: z.literal('resend_deliveries'),
    filter: deliveryFilterSchema,
    reason: z.string().trim().min(1).max(500).optional(),
    dry_run: z.boolean().optional(),
  }),
]);
export type BulkRequest = z.infer<typeof bulkRequestSchema>;
export type BulkActionName = BulkRequest['action'];

export const bulkDryRunSchema = z
  .object({ matched: z.number().int(), sample: z.array(z.string()) })
  .meta({ id: 'BulkDryRun' });
export const bulkActionSchema = z
  .object({
    id: z.uuid(),
    action: z.enum(['retry_orders', 'cancel_orders', 'resend_deliveries']),
    filter: z.record(z.string(), z.unknown()),
    reason: z.string().nullable(),
    matched: z.number().int(),
    done: z.number().int(),
    skipped: z.number().int(),
    failed: z.number().int(),
    status: z.enum(['running', 'completed']),
    actor: z.object({ role: z.string(), name: z.string() }),
    created_at: timestamp,
    completed_at: timestamp.nullable(),
  })
  .meta({ id: 'BulkAction' });
export type BulkAction = z.infer<typeof bulkActionSchema>;

export const listBulkActionsQuerySchema = z.object({
  limit: limitSchema,
  cursor: z.string().max(500).optional(),
});
export type ListBulkActionsQuery = z.infer<typeof listBulkActionsQuerySchema>;
export const bulkActionPageSchema = z.object({ data: z.array(bulkActionSchema), next_cursor: z.string().nullable() });
