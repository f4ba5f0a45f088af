import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { createHarness, createTestDatabase } from '../helpers/harness';
import { startPrivateRedis } from '../helpers/private-redis';

describe('order timeline', () => {
  it('when an order failed, was retried and confirmed, then after Redis FLUSHALL its timeline still shows every processing run with the first error, beside history, movements and its shipment', async () => {
    const db = await createTestDatabase();
    const redis = await startPrivateRedis();
    const dbName = db.url.split('/').pop();
    const h = await createHarness(db.url, {
      env: { REDIS_URL: redis.url, ORDER_ATTEMPTS: '2', ORDER_BACKOFF_MS: '50' },
    });
    try {
      const c = await makeCustomer(h);
      const p = await makeProduct(h, 5);
      // Every new connection gives up on a lock after 300 ms, and the stock row is held from outside.
      await h.ctx.db.raw(`ALTER DATABASE ${dbName} SET lock_timeout = '300ms'`);
      await h.ctx.db.destroy();
      await h.ctx.db.initialize();
      const blocker = await h.ctx.db.transaction();
      await blocker.raw('SELECT * FROM stock WHERE sku = ? FOR UPDATE', [p.sku]);
      await h.startWorkers();
      const o = await placeOrder(h, c.id, [{ sku: p.sku, quantity: 2 }]);
      await untilStatus(h, o.id, 'failed');
      await blocker.rollback();
      await h.ctx.db.raw(`ALTER DATABASE ${dbName} RESET lock_timeout`);
      expect((await h.api('POST', `/v1/orders/${o.id}/retry`, { role: 'operator' })).status).toBe(202);
      await untilStatus(h, o.id, 'confirmed');
      expect((await h.api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'operator' })).status).toBe(200);

      // Redis forgets every job and its attempts.
      const r = new Redis(redis.url);
      await r.flushall();
      await r.quit();

      const t = await h.api('GET', `/v1/orders/${o.id}/timeline`, { role: 'viewer' });
      expect(t.status, t.text).toBe(200);
      const kinds = t.body.data.map((e: any) => e.kind);
      const at = t.body.data.map((e: any) => e.at);
      expect(at, 'time order').toEqual([...at].sort());
      const runs = t.body.data.filter((e: any) => e.kind === 'processing');
      expect(runs.map((e: any) => [e.attempt, e.outcome])).toEqual([
        [1, 'error'],
        [2, 'failed'],
        [3, 'confirmed'],
      ]);
      expect(runs[0].error).toMatch(/lock timeout/);
      expect(runs[2].error).toBeNull();
      expect(runs.every((e: any) => Number.isInteger(e.duration_ms))).toBe(true);
      expect(t.body.data.filter((e: any) => e.kind === 'history').map((e: any) => [e.status, e.actor.role])).toEqual([
        ['received', 'intake'],
        ['failed', 'system'],
        ['received', 'operator'],
        ['confirmed', 'system'],
        ['completed', 'operator'],
      ]);
      expect(
        t.body.data.filter((e: any) => e.kind === 'movement').map((e: any) => [e.type, e.quantity, e.location]),
      ).toEqual([
        ['reservation', 2, 'main'],
        ['sale', -2, 'main'],
      ]);
      expect(kinds).toContain('shipment');
      // The run comes before the status it reached.
      expect(kinds.indexOf('processing')).toBeLessThan(kinds.indexOf('history', 1));

      expect((await h.api('GET', `/v1/orders/${o.id}/timeline`, { role: 'intake' })).status).toBe(200);
      expect((await h.api('GET', `/v1/orders/${o.id}/timeline`, { role: 'feed' })).status).toBe(403);
      expect((await h.api('GET', `/v1/orders/0190d6c1-0000-7000-8000-00000000dead/timeline`)).status).toBe(404);
    } finally {
      await h.ctx.db.raw(`ALTER DATABASE ${dbName} RESET lock_timeout`).catch(() => undefined);
      await h.close();
      await redis.stop();
      await db.drop();
    }
  }, 60_000);
});
