import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import {
  faultSeed,
  figures,
  orderBody,
  printFigures,
  rng,
  runIntake,
  setupShop,
  waitSettled,
} from '../helpers/fault-kit';
import { useHarness, waitFor } from '../helpers/harness';
import { startTcpProxy } from '../helpers/tcp-proxy';

const h = useHarness();

const SECRET = `whsec_${Buffer.from('fault-test-webhook-secret-0123456789').toString('base64')}`;
const DOWN_MS = 10_000;
const FAILING_MS = 3_000;
const TOTAL = 300;

interface Received {
  id: string;
  status: number;
  verified: boolean;
  payloadId?: string;
  type?: string;
}

describe('fault: the webhook receiver is down for a while', () => {
  it('when the receiver refuses connections for 10 s and then answers 503 for 3 s, then every event is still delivered, signed, once per id', async () => {
    const seed = faultSeed();
    const r = rng(seed);
    // The receiver verifies each delivery (Standard Webhooks) and answers 503 while `failing`.
    const verifier = new Webhook(SECRET);
    const received: Received[] = [];
    let failing = true;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const rec: Received = { id: String(req.headers['webhook-id']), status: failing ? 503 : 204, verified: false };
        try {
          const json = verifier.verify(body, req.headers as Record<string, string>) as { id: string; type: string };
          rec.verified = true;
          rec.payloadId = json.id;
          rec.type = json.type;
        } catch {
          /* counted as unverified */
        }
        received.push(rec);
        res.writeHead(rec.status).end();
      });
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    // Down from the start: the proxy in front of the receiver refuses every connection.
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
    await proxy.drop();
    try {
      const shop = await setupShop(h(), { skus: 8, hot: 3, hotStock: 5, coldStock: 200, customers: 6 });
      const env = {
        NOTIFY_WEBHOOK_URL: `http://127.0.0.1:${proxy.port}/hooks`,
        WEBHOOK_SECRET: SECRET,
        NOTIFY_BACKOFF_MS: '200',
        NOTIFY_MAX_ATTEMPTS: '12',
      };
      h().spawnWorker(env);
      h().spawnWorker(env);
      const downSince = Date.now();
      const stats = await runIntake({
        baseUrl: () => h().baseUrl,
        total: TOTAL,
        concurrency: 6,
        body: () => orderBody(r, shop),
      });
      // Every order processed first, so the hot SKUs' short stock leaves some waiting (posted at once, on a
      // fast machine the restock could land before the workers had taken a single order: no backorders).
      await waitSettled(h().ctx.db, stats.accepted, 60_000);
      const waiting = () =>
        h()
          .ctx.db('orders')
          .whereIn('id', stats.accepted)
          .where({ status: 'awaiting_stock' })
          .count({ n: '*' })
          .first();
      expect(Number((await waiting())?.n)).toBeGreaterThan(0);
      // Enough for every waiting line: each backorder is then confirmed too, a second event per order
      // to deliver (with only a few units, strict FIFO across several hot SKUs can leave none whole).
      await h().api('POST', '/v1/restocks', {
        role: 'feed',
        body: { events: shop.hot.map((sku) => ({ event_id: `wh-${sku}`, sku, quantity: 1000 })) },
      });
      await waitFor(async () => !(await h().ctx.db('restock_events').whereNull('applied_at').first()), {
        what: 'restocks applied',
      });
      await waitFor(async () => Number((await waiting())?.n) === 0, {
        timeout: 60_000,
        what: 'every backorder confirmed',
      });
      const attemptsWhileDown = await h()
        .ctx.db('notifications')
        .whereIn('order_id', stats.accepted)
        .sum({ n: 'attempts' })
        .first();

      await new Promise((res) => setTimeout(res, Math.max(0, DOWN_MS - (Date.now() - downSince))));
      await proxy.restore(); // reachable again, but refusing with 503 for a while
      await new Promise((res) => setTimeout(res, FAILING_MS));
      failing = false;

      await waitFor(
        async () => {
          const open = await h()
            .ctx.db('events')
            .whereIn('order_id', stats.accepted)
            .whereNull('settled_at')
            .count({ n: '*' })
            .first();
          return Number(open?.n) === 0;
        },
        { timeout: 120_000, interval: 500, what: 'every event settled' },
      );
      const events: { id: string; type: string }[] = await h()
        .ctx.db('events')
        .whereIn('order_id', stats.accepted)
        .select('id', 'type');
      const rows = await h()
        .ctx.db('notifications')
        .whereIn('order_id', stats.accepted)
        .select('event_id', 'channel', 'status', 'attempts');

      const okById = new Map<string, number>();
      for (const d of received) if (d.status < 300) okById.set(d.id, (okById.get(d.id) ?? 0) + 1);
      const eventIds = new Set(events.map((e) => e.id));
      const f = await figures(h().ctx.db, stats.accepted, h().ctx.queues);
      const twice = [...okById.values()].filter((n) => n > 1).length;
      printFigures('webhook-down', seed, f, {
        events: events.length,
        deliveredOnce: [...okById.values()].filter((n) => n === 1).length,
        deliveredTwice: twice,
        refusedWhileDown: Number(attemptsWhileDown?.n ?? 0),
        answered503: received.filter((d) => d.status === 503).length,
        maxAttempts: Math.max(...rows.map((x) => x.attempts)),
        notificationsFailed: rows.filter((x) => x.status === 'failed').length,
      });

      expect(events.length).toBeGreaterThan(TOTAL);
      expect(Number(attemptsWhileDown?.n ?? 0)).toBeGreaterThan(0); // deliveries were tried (and refused) while down
      expect(received.some((d) => d.status === 503)).toBe(true);
      expect(rows).toHaveLength(events.length); // one webhook notification per event
      expect(rows.every((x) => x.channel === 'webhook' && x.status === 'delivered')).toBe(true);
      // Every event reached the receiver, signed, under its own stable id, and was accepted exactly once.
      expect(received.every((d) => d.verified && d.payloadId === d.id)).toBe(true);
      expect(new Set(received.map((d) => d.id))).toEqual(eventIds);
      expect([...eventIds].filter((id) => okById.get(id) !== 1)).toEqual([]);
      expect(f.lost).toBe(0);
      expect(f.duplicateEffects).toBe(0);
      expect(f.invariants.problems).toEqual([]);
    } finally {
      await proxy.close();
      server.closeAllConnections();
      await new Promise((res) => server.close(res));
    }
  }, 240_000);
});
