import { z } from 'zod';

/**
 * Every type of event the system announces: one per order status an order can move to (the same
 * list as ORDER_STATUSES in orders/status.ts, which this layer cannot import: a unit test keeps
 * them equal), then the other subjects'.
 */
export const EVENT_TYPES = [
  'order.received',
  'order.confirmed',
  'order.awaiting_stock',
  'order.partially_shipped',
  'order.rejected',
  'order.failed',
  'order.cancelled',
  'order.completed',
  'shipment.created',
  'return.created',
  'inventory.low_stock',
  'inventory.back_in_stock',
  'inventory.count_variance',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const subjectSchema = z.object({ type: z.enum(['order', 'sku']), id: z.string() });
export type EventSubject = z.infer<typeof subjectSchema>;

export const eventSchema = z
  .object({
    id: z.uuid(),
    type: z.string(),
    sequence: z.number().int(),
    created_at: z.iso.datetime({ offset: true }),
    subject: subjectSchema,
    subject_sequence: z.number().int().min(1),
    previous_event_id: z.uuid().nullable(),
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'Event' });

/** A cursor is the `sequence` of the last event read: digits, opaque to clients. */
const cursorSchema = z.string().regex(/^(0|[1-9][0-9]{0,17})$/, 'must be a cursor returned as next_cursor');

export const eventsQuerySchema = z.strictObject({
  after: cursorSchema.optional(),
  types: z
    .string()
    .max(2000)
    .transform((v, ctx) => {
      const types = v.split(',').map((t) => t.trim());
      for (const t of types)
        if (!(EVENT_TYPES as readonly string[]).includes(t) && !/^(order|shipment|return|inventory)\.\*$/.test(t))
          ctx.addIssue({ code: 'custom', message: `unknown event type ${JSON.stringify(t)}` });
      return types;
    })
    .optional(),
  subject: z.string().min(1).max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type EventsQuery = z.infer<typeof eventsQuerySchema>;

export const eventPageSchema = z
  .object({ data: z.array(eventSchema), next_cursor: z.string() })
  .meta({ id: 'EventPage' });
