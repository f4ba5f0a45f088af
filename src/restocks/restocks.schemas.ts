import { z } from 'zod';
import { externalIdSchema, skuSchema } from '../platform/validation';

export { externalIdSchema };

export const restockEventSchema = z.object({
  event_id: externalIdSchema,
  sku: skuSchema,
  quantity: z.number().int('must be an integer').min(1).max(1_000_000),
  occurred_at: z.iso.datetime({ offset: true }).optional(),
  location: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1–32 of A-Z a-z 0-9 . _ -')
    .optional(),
  inbound_id: externalIdSchema.optional().describe('the inbound shipment this restock is received against'),
});
export const restockBatchSchema = z.object({
  events: z.array(restockEventSchema).min(1).max(1000, 'at most 1000 events'),
});
/** A single event, or `{events: [...]}`; the shape is chosen by the presence of `events`. */
export function parseRestockRequest(
  body: unknown,
  parse: <S extends z.ZodType>(s: S, v: unknown) => z.infer<S>,
): RestockEvent[] {
  if (body && typeof body === 'object' && !Array.isArray(body) && 'events' in body)
    return parse(restockBatchSchema, body).events;
  return [parse(restockEventSchema, body)];
}
export type RestockEvent = z.infer<typeof restockEventSchema>;
export const restockAcceptedSchema = z.object({ accepted: z.number().int(), duplicates: z.number().int() });
