import { addSkuEvents, type NewEvent } from '../events';
import type { UnitOfWork } from '../platform/unit-of-work';

/** A SKU's total available before and after a write, and the product's `low_stock_threshold`. */
export interface AvailabilityChange {
  sku: string;
  before: number;
  after: number;
  threshold: number | null;
}

/** What the contract calls available: Σ over active locations of (on_hand − reserved), 0 while anything waits. */
export const availableOf = (backordered: number, levels: { on_hand: number; reserved: number; active: boolean }[]) =>
  backordered > 0 ? 0 : levels.reduce((sum, l) => sum + (l.active ? l.on_hand - l.reserved : 0), 0);

/**
 * The inventory events of a SKU whose total available went from `before` to `after`:
 * `inventory.low_stock` when it falls to or below the threshold from above it,
 * `inventory.back_in_stock` when it rises from 0. Pure.
 */
export function availabilityEvents(changes: Iterable<AvailabilityChange>): NewEvent[] {
  const out: NewEvent[] = [];
  for (const { sku, before, after, threshold } of changes) {
    const subject = { type: 'sku' as const, id: sku };
    if (threshold !== null && before > threshold && after <= threshold)
      out.push({ type: 'inventory.low_stock', subject, data: { sku, available: after, threshold } });
    if (before === 0 && after > 0)
      out.push({ type: 'inventory.back_in_stock', subject, data: { sku, available: after } });
  }
  return out;
}

/** Per transaction, not per unit object: a unit acting for another actor (actingAs) shares its transaction's figures. */
const noted = new WeakMap<object, Map<string, AvailabilityChange>>();

/**
 * Records what a write did to SKUs' total available in the unit. The events are decided once per
 * SKU just before the unit commits, from the first `before` and the last `after` noted: what a
 * reader could see before the unit and after it, never a state inside it (a unit that takes a SKU
 * 5 → 0 → 1 has fallen to 1; one that takes it 0 → 3 → 0 has said nothing).
 */
export function noteAvailability(uow: UnitOfWork, changes: AvailabilityChange[]): void {
  if (changes.length === 0) return;
  const trx = uow.trx;
  let seen = noted.get(trx);
  if (!seen) {
    const fresh = new Map<string, AvailabilityChange>();
    noted.set(trx, (seen = fresh));
    uow.beforeCommit(() => addSkuEvents(uow, availabilityEvents(fresh.values())));
    // A savepoint that rolls back undoes what was noted inside it (a bulk action's skipped item).
    uow.keep({
      snapshot() {
        const copy = [...fresh].map(([sku, c]) => [sku, { ...c }] as const);
        return () => {
          fresh.clear();
          for (const [sku, c] of copy) fresh.set(sku, c);
        };
      },
      discard: () => noted.delete(trx),
    });
  }
  for (const c of changes) {
    const first = seen.get(c.sku);
    if (first) {
      first.after = c.after;
      first.threshold = c.threshold;
    } else seen.set(c.sku, { ...c });
  }
}
