import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';

const ROOT = path.resolve(__dirname, '..', '..');

export interface Server {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

/** Where `npm run build` puts a bench server: dist/bench/servers/<name>.js (it loads dist/src, the compiled API). */
export const compiledServer = (name: string) => path.join('dist', 'bench', 'servers', `${name}.js`);

/**
 * `npm run build` (tsc into dist/, assets copied), so `--compiled` measures the current sources;
 * its output goes to stderr, like the bench's log. Throws if the build fails.
 */
export function buildCompiled(): void {
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error(`npm run build failed (${r.error?.message ?? `exit ${r.status}`})`);
  for (const name of ['api-server', 'intake-core-server', 'express-queue-server']) {
    if (!existsSync(path.join(ROOT, compiledServer(name))))
      throw new Error(`npm run build made no ${compiledServer(name)}`);
  }
}

/**
 * Starts bench/servers/<name>.ts in its own process (so autocannon and the server do not share a
 * loop): under tsx from the sources, or, with `compiled`, the JavaScript `npm run build` made of it
 * (plain node, no loader: how production runs the API).
 */
export async function startServer(
  name: string,
  env: Record<string, string>,
  opts: { compiled?: boolean } = {},
): Promise<Server> {
  // BENCH_SERVER_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile the servers.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const entry = opts.compiled
    ? [compiledServer(name)]
    : ['--import', 'tsx', path.join('bench', 'servers', `${name}.ts`)];
  const child = spawn(process.execPath, [...nodeArgs, ...entry], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  // The server's log (e.g. requests cut off when a run ends) is kept, and shown only if it fails.
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start in 30 s`)), 30000);
    child.once('message', (m: any) => {
      clearTimeout(t);
      resolve(m.port);
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${name} exited with ${code}:\n${output.slice(-3000)}`));
    });
  });
  return {
    child,
    port,
    async stop() {
      if (child.exitCode !== null) return;
      child.send('stop');
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(t);
    },
  };
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

export interface LoadResult {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  peak_rss_mb: number;
  seconds: number;
}

/** autocannon: POST /v1/orders with a fixed valid body at `connections` connections for `seconds`. */
export async function load(
  port: number,
  opts: { connections: number; seconds: number; body: object; key: string; pid?: number },
): Promise<LoadResult> {
  let peak = 0;
  const sample = () => {
    if (opts.pid) peak = Math.max(peak, rssMb(opts.pid));
  };
  const timer = setInterval(sample, 200);
  try {
    const r = await autocannon({
      url: `http://127.0.0.1:${port}/v1/orders`,
      method: 'POST',
      connections: opts.connections,
      duration: opts.seconds,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.key}` },
      body: JSON.stringify(opts.body),
    });
    sample();
    const ok = r['2xx'];
    return {
      rps: ok / (r.duration || opts.seconds),
      p50_ms: r.latency.p50,
      p99_ms: r.latency.p99,
      max_ms: r.latency.max,
      requests: r.requests.total,
      non2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
      peak_rss_mb: peak,
      seconds: r.duration,
    };
  } finally {
    clearInterval(timer);
  }
}
