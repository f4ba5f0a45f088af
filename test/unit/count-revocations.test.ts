import { describe, expect, it } from 'vitest';
import { pickRevocations } from '../../src/orders/use-cases/count-stock';

const held = (order_id: string, sku: string, reserved: number, seq: number) => ({ order_id, sku, reserved, seq });

describe('count shortage: which lines are revoked', () => {
  it('when a location is short by 7, then whole lines are taken from the youngest order down until they cover 7', () => {
    const lines = [
      held('o1', 'X', 3, 1),
      held('o2', 'X', 4, 2),
      held('o3', 'X', 2, 3),
      held('o4', 'X', 3, 4),
      held('o5', 'X', 3, 5),
    ];
    expect(pickRevocations(new Map([['X', 7]]), lines).map((l) => l.order_id)).toEqual(['o5', 'o4', 'o3']);
    expect(pickRevocations(new Map([['X', 6]]), lines).map((l) => l.order_id)).toEqual(['o5', 'o4']);
    expect(pickRevocations(new Map([['X', 1]]), lines).map((l) => l.order_id)).toEqual(['o5']);
  });

  it('when several SKUs are short, then each is served from its own lines, whatever order they come in', () => {
    const lines = [held('a', 'Y', 5, 9), held('b', 'X', 1, 2), held('c', 'X', 1, 8), held('d', 'Y', 5, 3)];
    expect(
      pickRevocations(
        new Map([
          ['X', 2],
          ['Y', 5],
        ]),
        lines,
      ).map((l) => `${l.sku}:${l.order_id}`),
    ).toEqual(['X:c', 'X:b', 'Y:a']);
    expect(pickRevocations(new Map([['X', 0]]), lines)).toEqual([]);
    expect(pickRevocations(new Map(), lines)).toEqual([]);
  });
});
