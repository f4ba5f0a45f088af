import { z } from 'zod';
import { skuSchema } from '../platform/validation';
import { locationCodeSchema } from './inventory.schemas';

const timestamp = z.string().meta({ format: 'date-time' });

/** How far from now a count's `counted_at` may be. */
export const COUNT_FUTURE_MS = 5 * 60 * 1000;
export const COUNT_PAST_MS = 7 * 24 * 60 * 60 * 1000;

/** POST /v1/inventory/counts: what a location held at `counted_at`, per SKU. */
export const countSchema = z.strictObject({
  /** Taken as given (not trimmed): a different string is a different count. */
  count_id: z.string().min(1).max(255),
  location: locationCodeSchema.optional(),
  counted_at: z.iso.datetime({ offset: true }).meta({ format: 'date-time' }),
  items: z
    .array(
      z.strictObject({
        sku: skuSchema,
        on_hand: z.number().int('must be an integer').min(0).max(1_000_000_000),
      }),
    )
    .min(1)
    .max(1000)
    .superRefine((items, c) => {
      const seen = new Set<string>();
      items.forEach((it, i) => {
        if (seen.has(it.sku))
          c.addIssue({ code: 'custom', path: [i, 'sku'], message: `SKU ${it.sku} is listed twice` });
        seen.add(it.sku);
      });
    }),
});
export type CountInput = z.infer<typeof countSchema>;

export const countAcceptedSchema = z.union([
  z.object({ accepted: z.literal(true) }),
  z.object({ accepted: z.literal(false), duplicate: z.literal(true) }),
]);

export const countItemSchema = z.object({
  sku: z.string(),
  counted: z.number().int(),
  expected: z.number().int(),
  variance: z.number().int(),
  /**
   * Present when a count of this SKU and location with a later counted_at was booked before this
   * one: that count set the shelf's level, so this item books nothing (its figures are as of its
   * own counted_at).
   */
  superseded_by: z.string().optional(),
});
/** GET /v1/inventory/counts/:count_id: every item, zero variances too. */
export const countRecordSchema = z.object({
  count_id: z.string(),
  location: z.string(),
  counted_at: timestamp,
  items: z.array(countItemSchema),
  actor: z.object({ role: z.string(), name: z.string() }),
  created_at: timestamp,
});
export type CountRecord = z.infer<typeof countRecordSchema>;

/** One item's outcome, as the count's unit of work knows it (the `inventory.count_variance` event's data). */
export interface CountItemResult {
  sku: string;
  location: string;
  count_id: string;
  counted: number;
  expected: number;
  variance: number;
  /** A count of a later counted_at already booked this (SKU, location): nothing is booked. */
  superseded_by?: string;
}
