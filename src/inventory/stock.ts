import type { Executor, Trx } from '../platform/db';
import { OptimisticConflict } from '../platform/errors';
import { metrics } from '../platform/metrics';

export interface StockRow {
  sku: string;
  on_hand: number;
  reserved: number;
  backordered: number;
  version: number;
}
export type MovementType = 'initial' | 'receipt' | 'reservation' | 'release' | 'sale' | 'adjustment';
export interface Movement {
  sku: string;
  type: MovementType;
  quantity: number;
  order_id?: string | null;
  event_id?: string | null;
  reason?: string | null;
}
/** Deltas to apply to one stock row read at `row.version`. */
export interface StockChange {
  row: StockRow;
  on_hand?: number;
  reserved?: number;
  backordered?: number;
}

export async function readStockRows(db: Executor, skus: string[]): Promise<Map<string, StockRow>> {
  const rows: StockRow[] =
    skus.length === 0
      ? []
      : await db('stock').select('sku', 'on_hand', 'reserved', 'backordered', 'version').whereIn('sku', skus);
  return new Map(rows.map((r) => [r.sku, r]));
}

/**
 * The one place that updates stock rows. Each row is updated `WHERE sku = ? AND version = ?`;
 * if any row moved since it was read, OptimisticConflict is thrown and the caller's transaction
 * (a unit of work, platform/unit-of-work.ts) rolls back and retries. The ledger movements are written in
 * the same transaction. CHECK constraints (0 <= reserved <= on_hand) are the last line of defence.
 */
export async function applyStockChanges(
  trx: Trx,
  changes: StockChange[],
  movements: Movement[],
  op: string,
): Promise<StockRow[]> {
  const real = changes.filter((c) => c.on_hand || c.reserved || c.backordered);
  let updated: StockRow[] = [];
  if (real.length > 0) {
    metrics.stockAttempts.inc({ op }, real.length);
    const sorted = [...real].sort((a, b) => (a.row.sku < b.row.sku ? -1 : a.row.sku > b.row.sku ? 1 : 0));
    const values = sorted.map(() => '(?::text, ?::bigint, ?::bigint, ?::bigint, ?::bigint)').join(', ');
    const bindings = sorted.flatMap((c) => [
      c.row.sku,
      c.row.version,
      c.on_hand ?? 0,
      c.reserved ?? 0,
      c.backordered ?? 0,
    ]);
    const result = await trx.raw(
      `UPDATE stock s SET on_hand = s.on_hand + v.d_on_hand, reserved = s.reserved + v.d_reserved,
              backordered = s.backordered + v.d_backordered, version = s.version + 1, updated_at = now()
         FROM (VALUES ${values}) AS v(sku, version, d_on_hand, d_reserved, d_backordered)
        WHERE s.sku = v.sku AND s.version = v.version
        RETURNING s.sku, s.on_hand, s.reserved, s.backordered, s.version`,
      bindings,
    );
    updated = result.rows;
    if (updated.length !== sorted.length) {
      const lost = sorted.find((c) => !updated.some((u) => u.sku === c.row.sku));
      throw new OptimisticConflict(lost?.row.sku);
    }
  }
  if (movements.length > 0) await insertMovements(trx, movements);
  return updated;
}

export async function insertMovements(trx: Trx, movements: Movement[]): Promise<void> {
  for (let i = 0; i < movements.length; i += 1000) {
    await trx('stock_movements').insert(
      movements.slice(i, i + 1000).map((m) => ({
        sku: m.sku,
        type: m.type,
        quantity: m.quantity,
        order_id: m.order_id ?? null,
        event_id: m.event_id ?? null,
        reason: m.reason ?? null,
      })),
    );
  }
}
