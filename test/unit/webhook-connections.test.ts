import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { DEV_WEBHOOK_SECRET, postWebhook, webhookKey } from '../../src/notifications/webhook';

/** A receiver that holds each answer `delayMs`, counting the TCP connections it accepts. */
async function slowReceiver(delayMs: number) {
  let connections = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests += 1;
      setTimeout(() => res.writeHead(204).end(), delayMs);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', () => (connections += 1));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    counts: () => ({ connections, requests }),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('webhook connections', () => {
  it('when a burst of 150 deliveries at once is followed by another, then the second reuses every socket of the first', async () => {
    const rx = await slowReceiver(150);
    const key = webhookKey(DEV_WEBHOOK_SECRET);
    const burst = (n: number, tag: string) =>
      Promise.all(
        Array.from({ length: n }, (_, i) =>
          postWebhook(rx.url, `msg_${tag}_${i}`, JSON.stringify({ i }), { key, timeoutMs: 5000 }),
        ),
      );
    try {
      expect(new Set(await burst(150, 'a'))).toEqual(new Set([204]));
      const first = rx.counts().connections;
      // Held answers make the 150 concurrent: each needed a socket of its own.
      expect(first).toBe(150);
      expect(new Set(await burst(150, 'b'))).toEqual(new Set([204]));
      // Every socket of the first burst was kept while idle (with 64 kept, 86 were opened again).
      expect(rx.counts()).toEqual({ connections: 150, requests: 300 });
    } finally {
      await rx.close();
    }
  });
});
