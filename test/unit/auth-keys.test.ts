import * as crypto from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { makeKeyLookup } from '../../src/http/middleware/auth';

// Count the constant-time comparisons the key lookup makes (the real function still runs).
// vi.mock is hoisted above the imports, so auth.ts already gets the counting timingSafeEqual.
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

const KEYS = [
  { role: 'intake' as const, key: 'intake-key-0123456789', name: 'intake#1' },
  { role: 'feed' as const, key: 'feed-key-abcdefghij', name: 'feed#2' },
  { role: 'operator' as const, key: 'operator-key-ZYXWVUTSRQ', name: 'operator#3' },
];

describe('API key lookup', () => {
  const lookup = makeKeyLookup(KEYS);
  const compares = vi.mocked(crypto.timingSafeEqual);

  it('when a configured key is presented, then its role is found', () => {
    expect(lookup('intake-key-0123456789')?.role).toBe('intake');
    expect(lookup('feed-key-abcdefghij')?.role).toBe('feed');
    expect(lookup('operator-key-ZYXWVUTSRQ')?.role).toBe('operator');
  });

  it('when a near miss of any length is presented, then nothing is found and nothing throws', () => {
    for (const k of [
      '',
      'i',
      'intake-key-012345678',
      'intake-key-01234567890',
      'INTAKE-KEY-0123456789',
      ' intake-key-0123456789',
      'intake-key-0123456789\u0000',
      'x'.repeat(100_000),
      'ключ-🔑',
      'operator-key-ZYXWVUTSRQ'.slice(0, -1),
    ]) {
      expect(lookup(k)).toBeUndefined();
    }
  });

  it('when any key (first, last, or none) is presented, then every configured key is compared, each on a fixed-length digest', () => {
    for (const presented of ['intake-key-0123456789', 'operator-key-ZYXWVUTSRQ', 'nope', 'y'.repeat(5000)]) {
      compares.mockClear();
      lookup(presented);
      // No early exit: the work does not depend on which key matched or how long the guess was.
      expect(compares).toHaveBeenCalledTimes(KEYS.length);
      for (const [a, b] of compares.mock.calls) {
        expect((a as Buffer).length).toBe(32);
        expect((b as Buffer).length).toBe(32);
      }
    }
  });
});
