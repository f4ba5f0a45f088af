import { InvalidStateError } from '../platform/errors';

export const ORDER_STATUSES = ['received', 'confirmed', 'awaiting_stock', 'rejected', 'failed', 'cancelled', 'completed'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** The order lifecycle as one table: from → allowed targets. Checked only by `assertTransition`. */
export const TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  received: ['confirmed', 'awaiting_stock', 'rejected', 'failed', 'cancelled'],
  awaiting_stock: ['confirmed', 'cancelled', 'received'],
  confirmed: ['completed', 'cancelled', 'received'],
  failed: ['received', 'cancelled'],
  rejected: [],
  completed: [],
  cancelled: [],
};

/** Statuses in which an order needs no more work from the pipeline. */
export const SETTLED: readonly OrderStatus[] = ['confirmed', 'awaiting_stock', 'rejected', 'failed', 'cancelled', 'completed'];

export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function assertTransition(from: OrderStatus, to: OrderStatus, action: string = to): void {
  if (!canTransition(from, to)) throw new InvalidStateError(`cannot ${action} an order that is ${from}`);
}
