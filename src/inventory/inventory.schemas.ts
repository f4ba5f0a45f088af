import { z } from 'zod';
import { limitSchema, skuSchema } from '../platform/validation';

/** A time as sent (ISO 8601, UTC); `format: date-time` in the OpenAPI document. */
const timestamp = z.string().meta({ format: 'date-time' });

/** The largest stock count exact in JSON and in a JS number (the bigint columns are read as numbers, src/platform/db.ts). */
export const MAX_STOCK = Number.MAX_SAFE_INTEGER;

const cents = z.number().int('must be an integer').min(0).max(Number.MAX_SAFE_INTEGER);
const quantity = z.number().int('must be an integer').min(0).max(1_000_000_000);

export const locationCodeSchema = z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1–32 of A-Z a-z 0-9 . _ -');

export const createProductSchema = z
  .object({
    sku: skuSchema,
    name: z.string().trim().min(1).max(200),
    price_cents: cents,
    initial_stock: quantity.optional(),
    initial_stock_by_location: z.record(locationCodeSchema, quantity).optional(),
    low_stock_threshold: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .refine((v) => v.initial_stock === undefined || v.initial_stock_by_location === undefined, {
    message: 'give initial_stock or initial_stock_by_location, not both',
    path: ['initial_stock_by_location'],
  });
export const updateProductSchema = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    price_cents: cents.optional(),
    active: z.boolean().optional(),
    low_stock_threshold: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
  })
  .refine(
    (v) => Object.values(v).some((x) => x !== undefined),
    'at least one of name, price_cents, active, low_stock_threshold is required',
  );
export const adjustmentSchema = z.object({
  delta: z
    .number()
    .int('must be an integer')
    .min(-1_000_000_000)
    .max(1_000_000_000)
    .refine((d) => d !== 0, 'must not be 0'),
  reason: z.string().trim().min(1).max(500),
  location: locationCodeSchema.optional(),
});
export const transferSchema = z
  .object({
    from: locationCodeSchema,
    to: locationCodeSchema,
    quantity: z.number().int('must be an integer').min(1).max(1_000_000_000),
    reason: z.string().trim().min(1).max(500).optional(),
  })
  .refine((v) => v.from !== v.to, { message: 'must differ from from', path: ['to'] });
export type Transfer = z.infer<typeof transferSchema>;
export const createLocationSchema = z.object({
  code: locationCodeSchema,
  name: z.string().trim().min(1).max(200),
  priority: z.number().int().min(0).max(1000).optional(),
  active: z.boolean().optional(),
});
export const updateLocationSchema = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    priority: z.number().int().min(0).max(1000).optional(),
    active: z.boolean().optional(),
  })
  .refine((v) => Object.values(v).some((x) => x !== undefined), 'at least one of name, priority, active is required');
export type CreateLocation = z.infer<typeof createLocationSchema>;
export type UpdateLocation = z.infer<typeof updateLocationSchema>;
export const locationSchema = z.object({
  code: z.string(),
  name: z.string(),
  priority: z.number().int(),
  active: z.boolean(),
  created_at: timestamp,
});
export type Location = z.infer<typeof locationSchema>;
/** GET /v1/locations: every location, by priority then code (not paged). */
export const locationListSchema = z.object({ data: z.array(locationSchema) });
/** The answer of POST /v1/inventory/:sku/transfers. */
export const transferResultSchema = z.object({
  sku: z.string(),
  from: z.string(),
  to: z.string(),
  quantity: z.number().int(),
  reason: z.string().nullable(),
  movements: z.array(
    z.object({ type: z.enum(['transfer_out', 'transfer_in']), location: z.string(), quantity: z.number().int() }),
  ),
  actor: z.object({ role: z.string(), name: z.string() }),
  created_at: timestamp,
});
export const inventoryQuerySchema = z.object({
  low_stock: z.coerce.number().int().min(0).optional(),
  location: locationCodeSchema.optional(),
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
export const locationFiguresSchema = z.object({
  location: z.string(),
  on_hand: z.number().int(),
  reserved: z.number().int(),
  available: z.number().int(),
  version: z.number().int(),
});
export type LocationFigures = z.infer<typeof locationFiguresSchema>;
export const productSchema = z.object({
  sku: z.string(),
  name: z.string(),
  price_cents: z.number().int(),
  active: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
  low_stock_threshold: z.number().int().nullable(),
  stock: stockFiguresSchema,
  locations: z.array(locationFiguresSchema),
});
export type Product = z.infer<typeof productSchema>;
