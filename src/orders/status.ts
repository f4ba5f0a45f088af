import { InvalidStateError } from '../platform/errors';
import { QUEUES } from '../platform/job-catalog';
import { countStat, metrics } from '../platform/metrics';
import type { UnitOfWork } from '../platform/unit-of-work';
import { insertHistory, updateStatuses } from './sql/transitions';

export const ORDER_STATUSES = [
  'received',
  'confirmed',
  'awaiting_stock',
  'partially_shipped',
  'rejected',
  'failed',
  'cancelled',
  'completed',
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/**
 * The order lifecycle as one table of actions: who may move an order, from where, to where. The
 * verb is what an error says ("cannot fulfil an order that is received"). The status follows the
 * units: `confirmed` every unit reserved and none shipped, `partially_shipped` some shipped and the
 * rest reserved, `awaiting_stock` some unit waiting, `completed` every unit shipped.
 */
export const ACTIONS = {
  reserve: { verb: 'process', from: ['received'], to: ['confirmed', 'awaiting_stock', 'rejected'] },
  fail: { verb: 'fail', from: ['received'], to: ['failed'] },
  /** The last waiting line of an order is reserved: confirmed, or partially shipped if some units left already. */
  fill: { verb: 'fill', from: ['awaiting_stock'], to: ['confirmed', 'partially_shipped'] },
  cancel: {
    verb: 'cancel',
    from: ['received', 'awaiting_stock', 'confirmed', 'partially_shipped', 'failed'],
    to: ['cancelled'],
  },
  expire: { verb: 'expire', from: ['awaiting_stock'], to: ['cancelled'] },
  ship: { verb: 'ship', from: ['confirmed', 'partially_shipped'], to: ['partially_shipped', 'completed'] },
  /** Shipping the reserved units of an order that still waits for others: it keeps waiting. */
  shipWaiting: { verb: 'ship', from: ['awaiting_stock'], to: ['awaiting_stock'] },
  fulfil: { verb: 'fulfil', from: ['confirmed', 'partially_shipped'], to: ['completed'] },
  retry: { verb: 'retry', from: ['failed'], to: ['received'] },
  /** An edit of an order still in `received` keeps its status: a history entry, no transition. */
  edit: { verb: 'edit', from: ['received', 'awaiting_stock', 'confirmed'], to: ['received'] },
  /**
   * A stock count left a location short: a reserved line gave its units back and waits again at its
   * seq. An order already waiting for another line stays `awaiting_stock` (a history entry).
   */
  revoke: {
    verb: 'revoke stock of',
    from: ['confirmed', 'partially_shipped', 'awaiting_stock'],
    to: ['awaiting_stock'],
  },
} as const satisfies Record<string, { verb: string; from: readonly OrderStatus[]; to: readonly OrderStatus[] }>;
export type OrderAction = keyof typeof ACTIONS;

/** from → the statuses an order can move to, derived from ACTIONS (a status staying put is not a move). */
export const TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = Object.freeze(
  Object.fromEntries(
    ORDER_STATUSES.map((from) => [
      from,
      [
        ...new Set(
          Object.values(ACTIONS)
            .filter((a) => (a.from as readonly OrderStatus[]).includes(from))
            .flatMap((a) => (a.to as readonly OrderStatus[]).filter((to) => to !== from)),
        ),
      ],
    ]),
  ) as Record<OrderStatus, OrderStatus[]>,
);

/** Statuses in which an order needs no more work from the pipeline. */
export const SETTLED: readonly OrderStatus[] = [
  'confirmed',
  'awaiting_stock',
  'partially_shipped',
  'rejected',
  'failed',
  'cancelled',
  'completed',
];

export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Whether `action` may start from `from`: InvalidStateError (409) if not. */
export function assertCan(action: OrderAction, from: OrderStatus): void {
  if (!(ACTIONS[action].from as readonly OrderStatus[]).includes(from)) {
    throw new InvalidStateError(`cannot ${ACTIONS[action].verb} an order that is ${from}`);
  }
}

export interface StatusChange {
  orderId: string;
  action: OrderAction;
  from: OrderStatus;
  to: OrderStatus;
  detail?: string | null;
  reason?: string | null;
}

/** Every change of the list is one the table allows; throws on the first that is not (before any write). */
export function checkChanges(changes: readonly StatusChange[]): void {
  for (const c of changes) {
    assertCan(c.action, c.from);
    if (!(ACTIONS[c.action].to as readonly OrderStatus[]).includes(c.to)) {
      throw new InvalidStateError(`cannot ${ACTIONS[c.action].verb} an order to ${c.to}`);
    }
  }
}

/**
 * The one door through which an order's status changes. Checks every change against the table,
 * then, in the unit's transaction: the status (guarded by `status = from`, so a stale caller fails
 * loudly instead of writing twice), one history entry, one event with a fresh stable id, and its
 * notification job. A change that keeps the status (an edit in `received`) writes history only.
 */
export async function changeStatus(uow: UnitOfWork, changes: readonly StatusChange[]): Promise<void> {
  if (changes.length === 0) return;
  checkChanges(changes);
  const stays = changes.filter((c) => c.from === c.to);
  const moves = changes.filter((c) => c.from !== c.to);
  if (stays.length)
    await insertHistory(
      uow.trx,
      stays.map((c) => ({ order_id: c.orderId, status: c.to, detail: c.detail ?? null })),
      uow.actor,
    );
  if (moves.length === 0) return;
  const eventIds = await updateStatuses(uow.trx, moves, uow.actor);
  for (const t of moves) {
    metrics.orderTransitions.inc({ from: t.from, to: t.to });
    countStat(`order_transitions_to_${t.to}`); // summed across processes (workers serve no /metrics)
  }
  await uow.addJobs(
    // Named for the board by what it delivers; the id and the data carry only the event id.
    eventIds.map((id, i) => ({
      queue: QUEUES.notifications,
      job_name: `order.${moves[i].to}`,
      job_id: id,
      data: { eventId: id },
    })),
  );
}
