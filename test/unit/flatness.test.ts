import { describe, expect, it } from 'vitest';
import { flatness, flatnessOf, flatnessTable, median, p99 } from '../../bench/lib/flatness';

describe('soak flatness', () => {
  it('when a column swings around a steady median, then it deviates per minute but has no drift', () => {
    const f = flatnessOf('p99', [100, 150, 100, 150, 100, 150, 100, 150, 100]);
    expect(f.median).toBe(100);
    expect(f.maxDeviation).toBeCloseTo(0.5);
    expect(f.drift).toBe(0);
  });

  it('when a column climbs steadily, then the drift shows it even where each minute is near the median', () => {
    const f = flatnessOf('rss', [100, 101, 102, 103, 104, 105, 106, 107, 108]);
    expect(f.maxDeviation).toBeLessThan(0.05);
    expect(f.drift).toBeCloseTo((107 - 101) / 104);
  });

  it('when rows have a warm-up, a size and counters, then the warm-up is left out, the size is judged by its growth and the counters not at all', () => {
    const rows = [
      { minute: 1, 'orders/s': 10, 'PG db MB': 5, kills: 0, note: 'x' },
      { minute: 2, 'orders/s': 99, 'PG db MB': 10, kills: 0, note: 'x' },
      { minute: 3, 'orders/s': 100, 'PG db MB': 40, kills: 1, note: 'x' },
      { minute: 4, 'orders/s': 101, 'PG db MB': 70, kills: 1, note: 'x' },
    ];
    const out = flatness(rows, { warmup: 1, growth: ['PG db MB'], skip: ['minute', 'kills'] });
    expect(out.map((f) => f.column)).toEqual(['orders/s', 'PG db MB growth per minute']);
    expect(out[0]).toMatchObject({ median: 100, min: 99, max: 101 });
    expect(out[1]).toMatchObject({ median: 30, min: 5, max: 30 });
    const table = flatnessTable(out);
    expect(table).toContain('| orders/s | 100 | 99–101 | 1 % | yes | +2 % | yes |');
    expect(table).toContain('| PG db MB growth per minute | 30 | 5–30 | 83 % | no | +83 % | no |');
  });

  it('when the values are all zero, then they are flat; a zero median with other values is not', () => {
    expect(flatnessOf('lines', [0, 0, 0]).maxDeviation).toBe(0);
    expect(flatnessOf('lines', [0, 0, 5]).maxDeviation).toBe(Infinity);
    expect(median([3, 1, 2, 4])).toBe(2.5);
    expect(p99(Array.from({ length: 100 }, (_, i) => i + 1))).toBe(100);
    expect(p99([])).toBe(0);
  });
});
