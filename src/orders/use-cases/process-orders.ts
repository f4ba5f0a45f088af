import { applyStockChanges, readStockForWrite } from '../../inventory';
import type { Context } from '../../platform/context';
import { runUnitOfWork } from '../../platform/unit-of-work';
import { planReservations } from '../rules/reservation-plan';
import { addAllocations } from '../sql/allocations';
import { queueJoined } from '../sql/queue';
import {
  countAttempt,
  firstWaitingSeq,
  linesOf,
  lockOrders,
  readCustomers,
  readProducts,
  reprocessingAhead,
  setTotals,
  updateLines,
} from '../sql/order-rows';
import { changeStatus, type OrderStatus } from '../status';

export interface Outcome {
  status: OrderStatus;
  reason?: string | null;
  processed: boolean;
}

/**
 * The pipeline step for a batch of order ids (one id per job; several jobs may share a
 * transaction): read what the decision needs, let planReservations decide, write the plan. Orders
 * not in `received` are left alone, which makes a second run of the same job a no-op: no double
 * reservation, no second event. Conflicts on stock rows roll the whole batch back and retry it.
 */
export async function processOrders(ctx: Context, ids: string[]): Promise<Map<string, Outcome>> {
  return runUnitOfWork(ctx, 'reserve', async (uow) => {
    const started = Date.now();
    const { trx } = uow;
    const locked = await lockOrders(trx, ids);
    const outcomes = new Map<string, Outcome>();
    // A job for a `failed` order is an operator's retry from the board: back to received, then on.
    const retried = locked.filter((o) => o.status === 'failed');
    await changeStatus(
      uow,
      retried.map((o) => ({
        orderId: o.id,
        action: 'retry' as const,
        from: o.status,
        to: 'received' as const,
        detail: 'retried from the board',
      })),
    );
    for (const o of retried) o.status = 'received';
    for (const o of locked)
      if (o.status !== 'received') outcomes.set(o.id, { status: o.status, reason: o.status_reason, processed: false });
    const todo = locked.filter((o) => o.status === 'received');
    if (todo.length === 0) return outcomes;
    const todoIds = todo.map((o) => o.id);

    const lines = await linesOf(trx, todoIds);
    const skus = [...new Set(lines.map((l) => l.sku))].sort();
    // One connection per transaction: the reads run one after another.
    const customers = await readCustomers(trx, [...new Set(todo.map((o) => o.customer_id))]);
    const products = await readProducts(trx, skus);
    // Optimistic first. A retry (a version check lost to a fulfil, cancel, count or another
    // worker) locks the rows as it reads them, so a batch of up to ORDER_BATCH_MAX orders is
    // redone at most once, however busy its SKUs are.
    const stock = await readStockForWrite(uow, skus);
    const firstWaiting = await firstWaitingSeq(
      trx,
      [...stock.values()].filter((r) => r.backordered > 0).map((r) => r.sku),
    );
    // Edited or retried orders being processed elsewhere keep their place ahead of younger orders.
    const ahead = await reprocessingAhead(trx, skus, todoIds);
    const plan = planReservations({ orders: todo, lines, customers, products, stock, firstWaiting, ahead });

    await applyStockChanges(uow, plan.changes, plan.movements, 'reserve');
    await addAllocations(trx, plan.allocations);
    await updateLines(trx, plan.lines);
    // Lines that now wait take their place in their SKUs' queues before the events are written.
    const lineOf = new Map(lines.map((l) => [`${l.order_id}/${l.sku}`, l]));
    await queueJoined(
      trx,
      plan.lines.filter((l) => !l.reserved).map((l) => lineOf.get(`${l.order_id}/${l.sku}`)!),
    );
    await setTotals(trx, plan.totals);
    await countAttempt(
      trx,
      plan.decisions.map((d) => ({ orderId: d.orderId, outcome: d.to })),
      Date.now() - started,
    );
    await changeStatus(
      uow,
      plan.decisions.map((d) => ({
        orderId: d.orderId,
        action: 'reserve' as const,
        from: 'received' as const,
        to: d.to,
        detail: d.detail,
        reason: d.reason,
      })),
    );
    for (const d of plan.decisions) {
      outcomes.set(d.orderId, { status: d.to, ...(d.reason ? { reason: d.reason } : {}), processed: true });
    }
    uow.serveSkus(plan.serveSkus);
    return outcomes;
  });
}
