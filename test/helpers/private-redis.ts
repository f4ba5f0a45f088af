import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { portAnswers } from '../../src/platform/local-services';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A redis-server of the test's own (never the shared one), so a test may flush, stop and restart it. */
export async function startPrivateRedis(
  port?: number,
): Promise<{ url: string; port: number; stop(): Promise<void>; restart(): Promise<void> }> {
  const p = port ?? (await freePort());
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(p),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxmemory-policy',
        'noeviction',
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 100 && !(await portAnswers(p)); i++) await new Promise((r) => setTimeout(r, 50));
  };
  const stop = async () => {
    // A killed child has signalCode set and exitCode null: it is gone all the same.
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const c = child;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
  };
}
