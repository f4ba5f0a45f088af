import { spawn } from 'node:child_process';
import net from 'node:net';
import { Redis } from 'ioredis';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A redis-server of our own (the machine's binary, its default settings, no persistence) for the
 * memory figure: on the shared Redis, other clients' keys come and go while we measure.
 * Returns undefined when no redis-server binary is on the PATH.
 */
export async function startPrivateRedis(): Promise<
  { url: string; version: string; pid: number; stop(): Promise<void> } | undefined
> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const failed = await new Promise<boolean>((resolve) => {
    child.once('error', () => resolve(true));
    setTimeout(() => resolve(false), 300);
  });
  if (failed) return undefined;
  const url = `redis://127.0.0.1:${port}`;
  const r = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (n) => (n > 20 ? null : 100) });
  try {
    await r.ping();
    const version = /redis_version:(\S+)/.exec(await r.info('server'))?.[1] ?? '?';
    return {
      url,
      version,
      pid: child.pid!,
      async stop() {
        const exited = new Promise((res) => child.once('exit', res));
        child.kill('SIGTERM');
        await exited;
      },
    };
  } finally {
    r.disconnect();
  }
}
