import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from '../../src/events/events.schemas';
import {
  ACTIONS,
  assertCan,
  changeStatus,
  checkChanges,
  ORDER_STATUSES,
  TRANSITIONS,
  type OrderAction,
  type OrderStatus,
} from '../../src/orders/status';
import type { UnitOfWork } from '../../src/platform/unit-of-work';

const actions = Object.keys(ACTIONS) as OrderAction[];

describe('order status table', () => {
  it("when every action is tried from every status to every status, then exactly the table's moves pass", () => {
    let allowed = 0;
    for (const action of actions) {
      for (const from of ORDER_STATUSES) {
        for (const to of ORDER_STATUSES) {
          const ok =
            (ACTIONS[action].from as readonly OrderStatus[]).includes(from) &&
            (ACTIONS[action].to as readonly OrderStatus[]).includes(to);
          const change = { orderId: 'o', action, from, to };
          if (ok) {
            expect(() => checkChanges([change]), `${action} ${from}→${to}`).not.toThrow();
            allowed++;
          } else expect(() => checkChanges([change]), `${action} ${from}→${to}`).toThrow(/cannot/);
        }
      }
    }
    expect(allowed).toBe(26); // reserve 3, fail, fill 2, cancel 5, expire, ship 4, shipWaiting, fulfil 2, retry, edit 3, revoke 3
  });

  it('when the from→to table is derived from the actions, then it is the lifecycle of the contract', () => {
    const sorted = (t: Record<string, readonly string[]>) =>
      Object.fromEntries(Object.entries(t).map(([k, v]) => [k, [...v].sort()]));
    expect(sorted(TRANSITIONS)).toEqual(
      sorted({
        received: ['confirmed', 'awaiting_stock', 'rejected', 'failed', 'cancelled'],
        // Part 2 of the contract (change 3), with the count shortage: confirmed / partially_shipped → awaiting_stock.
        awaiting_stock: ['confirmed', 'partially_shipped', 'cancelled', 'received'],
        confirmed: ['partially_shipped', 'completed', 'cancelled', 'received', 'awaiting_stock'],
        partially_shipped: ['completed', 'cancelled', 'awaiting_stock'],
        failed: ['received', 'cancelled'],
        rejected: [],
        completed: [],
        cancelled: [],
      }),
    );
  });

  it('when an action is refused, then the error names the verb and the status (409 invalid_state)', () => {
    expect(() => assertCan('fulfil', 'received')).toThrow('cannot fulfil an order that is received');
    expect(() => assertCan('retry', 'confirmed')).toThrow('cannot retry an order that is confirmed');
    expect(() => assertCan('edit', 'failed')).toThrow('cannot edit an order that is failed');
    expect(() => assertCan('cancel', 'completed')).toThrow('cannot cancel an order that is completed');
    try {
      assertCan('cancel', 'rejected');
    } catch (e) {
      expect((e as { code: string }).code).toBe('invalid_state');
    }
  });

  it('when changeStatus gets one forbidden change among allowed ones, then it writes nothing at all', async () => {
    const untouchable = new Proxy(
      {},
      {
        get: () => {
          throw new Error('the database was touched');
        },
      },
    );
    const uow = {
      trx: untouchable,
      addJobs: () => {
        throw new Error('a job was added');
      },
      jobsWritten() {},
      serveSkus() {},
    } as unknown as UnitOfWork;
    await expect(
      changeStatus(uow, [
        { orderId: 'a', action: 'reserve', from: 'received', to: 'confirmed' },
        { orderId: 'b', action: 'fulfil', from: 'awaiting_stock', to: 'completed' },
      ]),
    ).rejects.toThrow('cannot fulfil an order that is awaiting_stock');
  });
});

describe('event types', () => {
  it('when the event layer lists order event types, then they are exactly one per order status', () => {
    expect(EVENT_TYPES.filter((t) => t.startsWith('order.'))).toEqual(ORDER_STATUSES.map((s) => `order.${s}`));
  });
});
