import { z } from 'zod';
import { limitSchema, skuSchema } from '../platform/validation';

/** A time as sent (ISO 8601, UTC); `format: date-time` in the OpenAPI document. */
const timestamp = z.string().meta({ format: 'date-time' });

/** The largest stock count exact in JSON and in a JS number (the bigint columns are read as numbers, src/platform/db.ts). */
export const MAX_STOCK = Number.MAX_SAFE_INTEGER;

const cents = z.number().int('must be an integer').min(0).max(Number.MAX_SAFE_INTEGER);
const quantity = z.number().int('must be an integer').min(0).max(1_000_000_000);

export const createProductSchema = z.object({
  sku: skuSchema,
  name: z.string().trim().min(1).max(200),
  price_cents: cents,
  initial_stock: quantity.optional(),
});
export const updateProductSchema = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    price_cents: cents.optional(),
    active: z.boolean().optional(),
  })
  .refine(
    (v) => Object.values(v).some((x) => x !== undefined),
    'at least one of name, price_cents, active is required',
  );
export const adjustmentSchema = z.object({
  delta: z
    .number()
    .int('must be an integer')
    .min(-1_000_000_000)
    .max(1_000_000_000)
    .refine((d) => d !== 0, 'must not be 0'),
  reason: z.string().trim().min(1).max(500),
});
export const inventoryQuerySchema = z.object({
  low_stock: z.coerce.number().int().min(0).optional(),
  limit: limitSchema,
  cursor: z.string().max(500).optional(),
});

export type CreateProduct = z.infer<typeof createProductSchema>;
export type UpdateProduct = z.infer<typeof updateProductSchema>;
export type Adjustment = z.infer<typeof adjustmentSchema>;

export const stockFiguresSchema = z.object({
  on_hand: z.number().int(),
  reserved: z.number().int(),
  available: z.number().int(),
  backordered: z.number().int(),
  version: z.number().int(),
});
export type StockFigures = z.infer<typeof stockFiguresSchema>;
export const productSchema = z.object({
  sku: z.string(),
  name: z.string(),
  price_cents: z.number().int(),
  active: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
  stock: stockFiguresSchema,
});
export type Product = z.infer<typeof productSchema>;
