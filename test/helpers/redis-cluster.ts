import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface RedisClusterHandle {
  /** `127.0.0.1:p1,127.0.0.1:p2,…`: what REDIS_CLUSTER_NODES takes. */
  nodes: string;
  ports: number[];
  stop(): Promise<void>;
}

const listenable = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

/** A port that is free together with its cluster bus port (port + 10000), so below 55536. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    if (taken.has(p) || taken.has(p + 10000)) continue;
    if ((await listenable(p)) && (await listenable(p + 10000))) {
      taken.add(p);
      return p;
    }
  }
  throw new Error('no free port pair for a cluster node');
}

async function clusterOk(port: number): Promise<boolean> {
  try {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info'], { timeout: 5000 });
    return /cluster_state:ok/.test(stdout) && /cluster_slots_assigned:16384/.test(stdout);
  } catch {
    return false;
  }
}

async function answers(port: number): Promise<boolean> {
  try {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'ping'], { timeout: 2000 });
    return stdout.trim() === 'PONG';
  } catch {
    return false;
  }
}

/**
 * A private Redis Cluster of `masters` masters and no replicas on free ports (never the shared Redis):
 * `redis-server --cluster-enabled yes` each in a temp dir, nothing on disk, then
 * `redis-cli --cluster create`, then waits until every node says `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3): Promise<RedisClusterHandle> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'orderflow-cluster-'));
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < masters; i++) ports.push(await clusterPort(taken));
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  const onExit = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', onExit);
  try {
    for (const port of ports) {
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          path.join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '5000',
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
          '--maxmemory-policy',
          'noeviction',
        ],
        { stdio: 'ignore' },
      );
      children.push(child);
    }
    for (const port of ports) {
      let up = false;
      for (let i = 0; i < 100 && !(up = await answers(port)); i++) await new Promise((r) => setTimeout(r, 50));
      if (!up) throw new Error(`cluster node on port ${port} did not start`);
    }
    await run(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 60_000 },
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await Promise.all(ports.map(clusterOk));
      if (ok.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error('the cluster did not reach cluster_state:ok in 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes: ports.map((p) => `127.0.0.1:${p}`).join(','),
    ports,
    async stop() {
      process.removeListener('exit', onExit);
      await stop();
    },
  };
}
