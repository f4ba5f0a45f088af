import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

/**
 * How every bench server runs: listen on a free port once `ready` resolves, report the port to
 * the bench over IPC, and on 'stop' close the connections, run `close`, and exit.
 */
export function serveForBench(app: Express, ready: Promise<unknown>, close: () => Promise<void>): void {
  const listening = ready.then(
    () =>
      new Promise<Server>((resolve) => {
        const s = app.listen(0, '127.0.0.1', () => resolve(s));
      }),
  );
  void listening.then((s) => process.send!({ port: (s.address() as AddressInfo).port }));
  process.on('message', async (m) => {
    if (m !== 'stop') return;
    const s = await listening;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
    await close();
    process.exit(0);
  });
}

/** Resolves when the context's producer connection to Redis is ready (so warm-up does not meet a connecting client). */
export function redisReady(redis: { status: string; once(event: 'ready', fn: () => void): unknown }): Promise<void> {
  return redis.status === 'ready'
    ? Promise.resolve()
    : new Promise((r) => {
        redis.once('ready', () => r());
      });
}
