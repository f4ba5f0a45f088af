/**
 * Where an order's units come from (pure). Lines are reserved whole, but a line's units may come
 * from several locations:
 * 1. if one active location can fill every line being reserved from its free stock, all of it
 *    comes from there (the lowest priority, then code, among those that can);
 * 2. otherwise each line is filled from one location that can fill it (lowest priority first);
 * 3. or else the line is split over locations in priority order.
 * A waiting line being served follows rules 2 and 3 for itself.
 */

/** A location's free units of one SKU, in preference order (priority, then code). */
export interface LocationFree {
  location: string;
  priority: number;
  free: number;
}

export interface Placement {
  location: string;
  quantity: number;
}

const prefer = (a: { priority: number; location: string }, b: { priority: number; location: string }) =>
  a.priority - b.priority || (a.location < b.location ? -1 : a.location > b.location ? 1 : 0);

/** One line alone: one location that can fill it, else split in priority order. Undefined if the total is short. */
export function placeLine(quantity: number, free: readonly LocationFree[]): Placement[] | undefined {
  const ordered = [...free].sort(prefer);
  const one = ordered.find((f) => f.free >= quantity);
  if (one) return [{ location: one.location, quantity }];
  const out: Placement[] = [];
  let left = quantity;
  for (const f of ordered) {
    if (left === 0) break;
    const take = Math.min(f.free, left);
    if (take > 0) {
      out.push({ location: f.location, quantity: take });
      left -= take;
    }
  }
  return left === 0 ? out : undefined;
}

/**
 * Every line of an order together (`freeBySku` holds what is free per SKU and location now). Undefined
 * if some line's SKU has fewer free units in total than it asks for.
 */
export function placeOrder(
  lines: readonly { sku: string; quantity: number }[],
  freeBySku: ReadonlyMap<string, readonly LocationFree[]>,
): Map<string, Placement[]> | undefined {
  const candidates = new Map<string, { location: string; priority: number }>();
  for (const l of lines) for (const f of freeBySku.get(l.sku) ?? []) candidates.set(f.location, f);
  const whole = [...candidates.values()]
    .sort(prefer)
    .find((c) =>
      lines.every((l) => (freeBySku.get(l.sku) ?? []).some((f) => f.location === c.location && f.free >= l.quantity)),
    );
  const out = new Map<string, Placement[]>();
  if (whole) {
    for (const l of lines) out.set(l.sku, [{ location: whole.location, quantity: l.quantity }]);
    return out;
  }
  for (const l of lines) {
    const p = placeLine(l.quantity, freeBySku.get(l.sku) ?? []);
    if (!p) return undefined;
    out.set(l.sku, p);
  }
  return out;
}
