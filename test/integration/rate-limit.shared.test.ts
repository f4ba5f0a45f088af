import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { makeKeyLookup } from '../../src/http/middleware/auth';
import { rateLimitKeyPrefix } from '../../src/http/middleware/rate-limit';
import {
  createHarness,
  deletePrefix,
  KEYS,
  keysUnder,
  onRedisCluster,
  useHarness,
  waitFor,
  type ApiResponse,
} from '../helpers/harness';
import { freePort, startPrivateRedis } from '../helpers/private-redis';
import { expectError } from '../helpers/snapshot';

const RPS = 5;
const h = useHarness({ env: { RATE_LIMIT_RPS: String(RPS) } });

/** A write that needs no data: a customer with a bad e-mail (400, nothing stored) still counts as a write. */
async function write(baseUrl: string): Promise<ApiResponse> {
  const res = await fetch(`${baseUrl}/v1/customers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEYS.intake}`, 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'not-an-email', name: 'x' }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: JSON.parse(text) };
}

describe('rate limit shared by API processes (RATE_LIMIT_RPS, counters in Redis)', () => {
  it('when two API processes on one Redis take writes from one key, then together they accept about RATE_LIMIT_RPS per second, not twice it, and the rest get 429 with Retry-After', async () => {
    // A hash-tagged prefix, as on Redis Cluster: the counters must sit under it (one slot). Under
    // `npm run test:cluster` the harness's prefix already is one (`{oft_…}`).
    const prefix = onRedisCluster() ? h().env.QUEUE_PREFIX : `{${h().env.QUEUE_PREFIX}}`;
    const apis = await Promise.all(
      [0, 1].map(async () => {
        const port = await freePort();
        const proc = h().spawnWorker({ PORT: String(port), QUEUE_PREFIX: prefix }, 'api');
        const url = `http://127.0.0.1:${port}`;
        await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok, {
          timeout: 60_000,
          what: `API on ${port}`,
        });
        return { proc, url };
      }),
    );
    // The harness's own connection: the test Redis, single or the cluster (SCAN per master).
    const redis = h().ctx.redis;
    try {
      const seconds = 3;
      const perApi = apis.map(() => ({ accepted: 0, limited: [] as ApiResponse[], other: [] as string[] }));
      const startedAt = Date.now();
      const stopAt = startedAt + seconds * 1000;
      await Promise.all(
        apis.flatMap((api, i) =>
          Array.from({ length: 4 }, async () => {
            while (Date.now() < stopAt) {
              const r = await write(api.url);
              if (r.status === 400) perApi[i].accepted++;
              else if (r.status === 429) perApi[i].limited.push(r);
              else perApi[i].other.push(`${r.status} ${r.text.slice(0, 200)}`);
            }
          }),
        ),
      );
      const elapsed = (Date.now() - startedAt) / 1000;
      const accepted = perApi[0].accepted + perApi[1].accepted;
      // One-second windows: at most floor(elapsed) + 1 of them began during the run, RPS each.
      const bound = RPS * (Math.floor(elapsed) + 1);
      process.stdout.write(
        `RATE-LIMIT-SHARED ${JSON.stringify({ elapsed, accepted, bound, perApi: perApi.map((p) => ({ accepted: p.accepted, limited: p.limited.length })) })}\n`,
      );
      expect(perApi.flatMap((p) => p.other)).toEqual([]);
      expect(accepted).toBeGreaterThanOrEqual(RPS);
      expect(accepted).toBeLessThanOrEqual(bound); // per-process counters would allow about twice this
      for (const p of perApi) {
        expect(p.limited.length).toBeGreaterThan(0); // both processes refused writes
        for (const r of p.limited) {
          expectError(r, 429, 'rate_limited');
          expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        }
      }

      // The counter is one key per API key (a digest, never the key), under the hash-tagged prefix.
      await write(apis[0].url);
      const id = makeKeyLookup(h().config.API_KEYS)(KEYS.intake)!.id;
      const keys = await keysUnder(redis, rateLimitKeyPrefix(prefix));
      expect(keys).toEqual([`${prefix}:ratelimit:${id}`]);
      expect(keys.join()).not.toContain(KEYS.intake);
    } finally {
      for (const a of apis) a.proc.kill('SIGKILL');
      await Promise.all(apis.map((a) => a.proc.exited));
      await deletePrefix(h().config, prefix);
    }
  });

  it('when Redis is unreachable, then writes are not failed: each process counts them in memory to the same limit, and Redis counts again once it is back', async () => {
    const redis = await startPrivateRedis();
    const own = await createHarness(h().env.DATABASE_URL, {
      env: { REDIS_URL: redis.url, RATE_LIMIT_RPS: '2' },
    });
    const burst = async () => {
      const rs = await Promise.all(
        Array.from({ length: 10 }, () =>
          own.api('POST', '/v1/customers', { role: 'intake', body: { email: 'not-an-email', name: 'x' } }),
        ),
      );
      for (const r of rs.filter((x) => x.status === 429)) {
        expectError(r, 429, 'rate_limited');
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      }
      return {
        passed: rs.filter((r) => r.status === 400).length,
        limited: rs.filter((r) => r.status === 429).length,
      };
    };
    const counters = async () => {
      const r = new Redis(redis.url);
      try {
        return (await r.keys(`${rateLimitKeyPrefix(own.config.QUEUE_PREFIX)}:*`)).length;
      } finally {
        r.disconnect();
      }
    };
    try {
      await waitFor(async () => own.ctx.redis.status === 'ready', { what: 'redis ready' });
      const up = await burst();
      expect(up.passed + up.limited).toBe(10);
      expect(up.passed).toBeLessThanOrEqual(3);
      expect(await counters()).toBe(1);

      await redis.stop();
      await new Promise((r) => setTimeout(r, 1100)); // the window of the first burst is over
      const down = await burst();
      expect(down.passed + down.limited).toBe(10); // no 5xx: the API does not fail writes for the limiter
      expect(down.passed).toBeGreaterThanOrEqual(1);
      expect(down.passed).toBeLessThanOrEqual(3); // the in-memory insurance still holds the key to RPS

      await redis.restart();
      await waitFor(async () => own.ctx.redis.status === 'ready', { timeout: 30_000, what: 'redis back' });
      await new Promise((r) => setTimeout(r, 1100));
      const back = await burst();
      expect(back.passed + back.limited).toBe(10);
      expect(back.passed).toBeLessThanOrEqual(3);
      expect(await counters()).toBe(1); // counted in Redis again
    } finally {
      await own.close();
      await redis.stop();
    }
  });
});
