import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { availabilityEvents } from '../../src/inventory/availability';

const decide = (before: number, after: number, threshold: number | null) =>
  availabilityEvents([{ sku: 'S', before, after, threshold }]).map((e) => [e.type, e.data]);

describe('inventory events from available before and after', () => {
  it('when available falls to or below the threshold from above it, then low_stock; when it rises from 0, then back_in_stock; else nothing', () => {
    expect(decide(5, 2, 2)).toEqual([['inventory.low_stock', { sku: 'S', available: 2, threshold: 2 }]]);
    expect(decide(5, 0, 0)).toEqual([['inventory.low_stock', { sku: 'S', available: 0, threshold: 0 }]]);
    expect(decide(2, 1, 2)).toEqual([]);
    expect(decide(5, 1, null)).toEqual([]);
    expect(decide(0, 3, 5)).toEqual([['inventory.back_in_stock', { sku: 'S', available: 3 }]]);
    expect(decide(0, 0, 0)).toEqual([]);
    expect(decide(1, 6, 2)).toEqual([]);
  });

  it('when a SKU moves through any values, then deciding on the first and last says at most one of each kind, and nothing when it ends where it began', () => {
    fc.assert(
      fc.property(fc.nat(20), fc.nat(20), fc.option(fc.nat(10)), (before, after, threshold) => {
        const types = decide(before, after, threshold).map(([t]) => t);
        expect(new Set(types).size).toBe(types.length);
        if (before === after) expect(types).toEqual([]);
        if (types.includes('inventory.low_stock')) expect(after).toBeLessThan(before);
        if (types.includes('inventory.back_in_stock')) expect(before).toBe(0);
      }),
    );
  });
});
