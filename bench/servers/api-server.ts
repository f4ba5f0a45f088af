// The real API for the intake benchmark: createApp(ctx) on a real port, real PostgreSQL and Redis,
// no workers (jobs wait in the queue). Reports its port over IPC; exits on 'stop'.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfigOrExit } from '../../src/config';
import { closeContext, createContext } from '../../src/context';
import { createApp } from '../../src/http/app';

const ctx = createContext(loadConfigOrExit());
// Listen once Redis is connected, so the warm-up does not meet a producer that is still connecting.
const app = createApp(ctx);
const listening = new Promise<Server>((resolve) => {
  const start = () => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); };
  if (ctx.redis.status === 'ready') start(); else ctx.redis.once('ready', start);
});
void listening.then((s) => process.send!({ port: (s.address() as AddressInfo).port }));
process.on('message', async (m) => {
  if (m !== 'stop') return;
  const s = await listening;
  s.closeAllConnections();
  await new Promise((r) => s.close(r));
  await closeContext(ctx);
  process.exit(0);
});
