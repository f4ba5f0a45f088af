import { describe, expect, it } from 'vitest';
import { createHarness, useHarness } from '../helpers/harness';
import { expectError } from '../helpers/snapshot';

// Low, so that refill during a burst (one token per 500 ms) cannot hide the limit on a busy machine.
const RPS = 2;
const h = useHarness({ env: { RATE_LIMIT_RPS: String(RPS) } });

/** A write that needs no data: a customer with a bad e-mail (400, nothing stored) still counts as a write. */
const write = (role: 'intake' | 'operator' | null = 'intake') =>
  h().api('POST', '/v1/customers', { role, body: { email: 'not-an-email', name: 'x' } });

describe('rate limit on writes (RATE_LIMIT_RPS)', () => {
  it('when a key writes more than RATE_LIMIT_RPS at once, then the rest get 429 rate_limited with Retry-After', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => write()));
    const limited = results.filter((r) => r.status === 429);
    const passed = results.filter((r) => r.status === 400).length;
    expect(passed).toBeGreaterThanOrEqual(RPS);
    expect(passed).toBeLessThanOrEqual(RPS + 1); // at most one token refilled during the burst
    expect(limited.length + passed).toBe(10);
    for (const r of limited) {
      expectError(r, 429, 'rate_limited');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
  });

  it('when one key is limited, then reads, other keys and requests without a key are not', async () => {
    await Promise.all(Array.from({ length: RPS + 2 }, () => write('intake')));
    expect((await write('intake')).status).toBe(429);
    expect((await h().api('GET', '/v1/orders', { role: 'intake' })).status).toBe(200);
    expect((await write('operator')).status).toBe(400);
    expectError(await write(null), 401, 'unauthorized');
    const unknown = await h().api('POST', '/v1/customers', {
      role: null,
      headers: { authorization: 'Bearer not-a-known-key' },
      body: {},
    });
    expectError(unknown, 401, 'unauthorized');
  });

  it('when the key waits for Retry-After, then it may write again', async () => {
    await Promise.all(Array.from({ length: RPS + 2 }, () => write()));
    const limited = await write();
    expect(limited.status).toBe(429);
    await new Promise((r) => setTimeout(r, Number(limited.headers.get('retry-after')) * 1000));
    expect((await write()).status).toBe(400);
  });

  it('when RATE_LIMIT_RPS is 0, then writes are not limited', async () => {
    const free = await createHarness(h().env.DATABASE_URL, { env: { RATE_LIMIT_RPS: '0' } });
    try {
      const results = await Promise.all(
        Array.from({ length: 40 }, () =>
          free.api('POST', '/v1/customers', { role: 'intake', body: { email: 'nope', name: 'x' } }),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(results.map(() => 400));
    } finally {
      await free.close();
    }
  });
});
