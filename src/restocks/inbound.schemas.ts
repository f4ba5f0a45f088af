import { z } from 'zod';
import { limitSchema, skuSchema } from '../platform/validation';
import { externalIdSchema } from './restocks.schemas';

const timestamp = z.string().meta({ format: 'date-time' });
export const INBOUND_STATUSES = ['open', 'received', 'cancelled'] as const;
export type InboundStatus = (typeof INBOUND_STATUSES)[number];

export const createInboundSchema = z.strictObject({
  inbound_id: externalIdSchema,
  sku: skuSchema,
  location: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1–32 of A-Z a-z 0-9 . _ -')
    .optional()
    .describe('where it is expected; default main'),
  quantity: z.number().int('must be an integer').min(1).max(1_000_000_000),
  expected_at: z.iso.datetime({ offset: true }),
});
export type CreateInbound = z.infer<typeof createInboundSchema>;

export const patchInboundSchema = z
  .strictObject({
    quantity: z.number().int('must be an integer').min(1).max(1_000_000_000).optional(),
    expected_at: z.iso.datetime({ offset: true }).optional(),
    status: z.literal('cancelled').optional(),
  })
  .refine((v) => Object.values(v).some((x) => x !== undefined), 'at least one of quantity, expected_at, status');
export type PatchInbound = z.infer<typeof patchInboundSchema>;

export const inboundQuerySchema = z.strictObject({
  sku: skuSchema.optional(),
  status: z.enum(INBOUND_STATUSES).optional(),
  limit: limitSchema,
  cursor: z.string().max(500).optional(),
});
export type InboundQuery = z.infer<typeof inboundQuerySchema>;

export const inboundSchema = z.object({
  inbound_id: z.string(),
  sku: z.string(),
  location: z.string(),
  quantity: z.number().int(),
  received: z.number().int().describe('units of restocks received against it'),
  outstanding: z.number().int().describe('max(0, quantity − received)'),
  expected_at: timestamp,
  status: z.enum(INBOUND_STATUSES),
});
export type Inbound = z.infer<typeof inboundSchema>;
export const inboundPageSchema = z.object({ data: z.array(inboundSchema), next_cursor: z.string().nullable() });
