/** The tables of the part-1 schema (before locations): what a migration must keep, row for row. */
export const PART1_TABLES = [
  'customers',
  'products',
  'stock',
  'stock_movements',
  'orders',
  'order_lines',
  'order_history',
  'idempotency_keys',
  'events',
  'outbox',
  'notifications',
  'restock_events',
] as const;
