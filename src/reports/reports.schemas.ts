import { z } from 'zod';
import { ORDER_STATUSES } from '../orders';

/** A time as sent (ISO 8601, UTC); `format: date-time` in the OpenAPI document. */
const timestamp = z.string().meta({ format: 'date-time' });

/** A day (`2026-11-25`, read as 00:00 UTC) or an ISO 8601 date-time with an offset. */
const bound = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);

export const ordersReportQuerySchema = z.object({
  from: bound.optional().describe('inclusive; a date means 00:00 UTC of that day'),
  to: bound.optional().describe('a date includes that whole day (UTC); a date-time is exclusive'),
});
export type OrdersReportQuery = z.infer<typeof ordersReportQuerySchema>;

const by = z.enum(['sku', 'location']).default('sku').describe('one row per SKU, or per SKU and location');
export const inventoryReportQuerySchema = z.object({
  format: z.enum(['json', 'csv']).default('json'),
  by,
});
export const ledgerReportQuerySchema = z.object({ by });

const count = z.number().int().min(0);
const byStatus = z.object(
  Object.fromEntries(ORDER_STATUSES.map((s) => [s, count])) as Record<(typeof ORDER_STATUSES)[number], typeof count>,
);

export const ordersReportSchema = z.object({
  from: timestamp.nullable(),
  to: timestamp.nullable(),
  orders: count,
  /** Sum of total_cents of the orders that are confirmed or completed. */
  revenue_cents: z.number().int(),
  by_status: byStatus,
  per_day: z.array(
    z.object({ day: z.string().meta({ format: 'date' }), orders: count, revenue_cents: z.number().int() }),
  ),
});
export type OrdersReport = z.infer<typeof ordersReportSchema>;

export const inventoryRowSchema = z.object({
  sku: z.string(),
  location: z.string().optional().describe('with by=location'),
  name: z.string(),
  on_hand: z.number().int(),
  reserved: z.number().int(),
  available: z.number().int(),
  backordered: z.number().int(),
  waiting_orders: count,
});
export type InventoryRow = z.infer<typeof inventoryRowSchema>;
export const inventoryReportSchema = z.object({ generated_at: timestamp, data: z.array(inventoryRowSchema) });
export type InventoryReport = z.infer<typeof inventoryReportSchema>;

export const ledgerRowSchema = z.object({
  sku: z.string(),
  location: z.string().optional().describe('with by=location'),
  initial: z.number().int(),
  receipts: z.number().int(),
  sales: z.number().int().describe('units sold, as a positive number'),
  returns: z.number().int().describe('units returned to stock'),
  adjustments: z.number().int(),
  counts: z.number().int().describe('variances booked by stock counts'),
  transfers_in: z.number().int(),
  transfers_out: z.number().int().describe('units moved out, as a positive number'),
  expected_on_hand: z
    .number()
    .int()
    .describe('initial + receipts − sales + returns + adjustments + counts + transfers_in − transfers_out'),
  on_hand: z.number().int(),
  ok: z.boolean().describe('expected_on_hand = on_hand'),
  expected_reserved: z.number().int().describe('reservations − releases − sales'),
  reserved: z.number().int(),
  reserved_ok: z.boolean(),
});
export type LedgerRow = z.infer<typeof ledgerRowSchema>;
export const ledgerReportSchema = z.object({
  generated_at: timestamp,
  ok: z.boolean().describe('every SKU is ok'),
  data: z.array(ledgerRowSchema),
  mismatches: z.array(ledgerRowSchema).describe('every row that is not ok'),
});
export type LedgerReport = z.infer<typeof ledgerReportSchema>;

export const queueCountsSchema = z.object({
  name: z.string(),
  waiting: count.describe('waiting and prioritized'),
  active: count,
  delayed: count,
  failed: count,
  completed: count,
  waiting_children: count,
  paused: z.boolean(),
});
export type QueueCounts = z.infer<typeof queueCountsSchema>;
export const queuesReportSchema = z.object({ generated_at: timestamp, data: z.array(queueCountsSchema) });
export type QueuesReport = z.infer<typeof queuesReportSchema>;

export const replenishmentQuerySchema = z.object({
  days: z.coerce.number().int().min(1).max(3660).default(28).describe('the sales window, in days back from now'),
  cover_days: z.coerce.number().int().min(0).max(3660).default(14).describe('how many days of sales to cover'),
  location: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1–32 of A-Z a-z 0-9 . _ -')
    .optional()
    .describe('one row per SKU at that location; left out: per SKU over its active locations (location null)'),
  format: z.enum(['json', 'csv']).default('json'),
});
export type ReplenishmentQuery = z.infer<typeof replenishmentQuerySchema>;
export const replenishmentRowSchema = z.object({
  sku: z.string(),
  location: z.string().nullable().describe('null: the SKU over all its active locations'),
  sold_per_day: z.number().min(0).describe('units shipped (sale movements) in the last `days` days ÷ days'),
  available: z.number().int(),
  inbound_outstanding: z.number().int().describe('outstanding units of open inbound shipments'),
  backordered: z.number().int().describe("units the SKU's waiting lines need (the queue is per SKU)"),
  days_of_cover: z
    .number()
    .nullable()
    .describe('(available + inbound_outstanding) ÷ sold_per_day; null when nothing sold'),
  suggested_order: z
    .number()
    .int()
    .min(0)
    .describe('max(0, ⌈sold_per_day × cover_days + backordered − available − inbound_outstanding⌉)'),
});
export type ReplenishmentRow = z.infer<typeof replenishmentRowSchema>;
export const replenishmentReportSchema = z.object({
  generated_at: timestamp,
  days: z.number().int(),
  cover_days: z.number().int(),
  location: z.string().nullable(),
  data: z.array(replenishmentRowSchema),
});
export type ReplenishmentReport = z.infer<typeof replenishmentReportSchema>;
