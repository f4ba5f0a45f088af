/**
 * Strict FIFO per SKU: the rules every writer that hands out stock follows. Pure: plain numbers in,
 * decisions out; the I/O around them is in ../use-cases.
 */

/** A line of an order that was processed before and is back in `received` (edited or retried). */
export interface AheadLine {
  seq: number;
  quantity: number;
}

/**
 * What is free for a line at `seq` once the reprocessing orders ahead of it have had theirs, in
 * strict FIFO: undefined when one of them does not fit (it blocks the lines behind it).
 */
export function freeAfterAhead(free: number, ahead: readonly AheadLine[] | undefined, seq: number): number | undefined {
  let left = free;
  for (const a of ahead ?? []) {
    if (a.seq >= seq) break;
    if (a.quantity > left) return undefined;
    left -= a.quantity;
  }
  return left;
}

export interface WaitingLine {
  order_id: string;
  quantity: number;
  seq: number;
}

/**
 * Which waiting lines of one SKU a free quantity serves: the head of the queue in `seq` order, each
 * line whole, stopping at the first that does not fit (nothing behind it jumps the queue), with
 * the demand of reprocessing orders ahead of a line served before it. `head` is in `seq` order.
 */
export function serveQueue<L extends WaitingLine>(
  free: number,
  head: readonly L[],
  ahead: readonly AheadLine[] = [],
): L[] {
  const taken: L[] = [];
  let left = free;
  for (const l of head) {
    const forThis = freeAfterAhead(left, ahead, l.seq);
    if (forThis === undefined || l.quantity > forThis) break;
    left -= l.quantity;
    taken.push(l);
  }
  return taken;
}
