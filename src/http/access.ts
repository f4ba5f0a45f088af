import type { Role } from '../platform/config';

/**
 * Who may call what, in one table that the route guards and the OpenAPI document both read. The
 * operator may call everything; each kind lists the other roles it lets in. A `viewer` reads
 * everything an operator reads and writes nothing; `intake` and `viewer` read products and
 * inventory; `feed` reads orders.
 */
export const ACCESS = {
  intake: ['intake'],
  feed: ['feed'],
  operator: [],
  /** A GET an operator may call: a viewer too. */
  read: ['viewer'],
  intakeRead: ['intake', 'viewer'],
  feedRead: ['feed', 'viewer'],
  catalog: ['intake', 'viewer'],
  ordersRead: ['intake', 'feed', 'viewer'],
  /** A count is inventory (intake reads it, change 15) and the feed's own record (it posts counts). */
  countRead: ['intake', 'feed', 'viewer'],
  /** Board, dashboard and metrics: the key as Bearer or as a Basic password; a viewer reads them. */
  browser: ['viewer'],
} as const satisfies Record<string, readonly Role[]>;
export type AccessKind = keyof typeof ACCESS;

/** A role that an access kind refuses (403), if any. */
export function refusedRole(kind: AccessKind): Role | undefined {
  return (['intake', 'feed', 'viewer'] as const).find((r) => !(ACCESS[kind] as readonly Role[]).includes(r));
}
