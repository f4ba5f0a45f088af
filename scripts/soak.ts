// `npm run soak -- --minutes 30 --rate 20`: a soak run, not part of `npm test`. It builds
// (`npm run build`) and starts the API and the worker as two separate processes with exactly the
// commands of `npm run start:api` / `start:worker` (read from package.json; `--tsx` runs the
// sources through tsx instead) on a database and a queue prefix of their own, sends notifications to a local
// receiver, and sends production-shaped load at a fixed open-loop rate: orders (some on hot SKUs
// that run out and wait for restocks), and one request in ten a fulfil, a cancel, a restock or a
// stock count. Every --kill-every minutes the worker is SIGKILLed and started again. Each minute
// it prints throughput, p99 latency (of orders, and of the other requests by kind), waiting lines, the RSS of every process (the minute's peak), Redis
// used_memory and the PostgreSQL database size; at the end a markdown table of the same and the
// invariant checker's verdict. Redis is a redis-server of the run's own (the machine's binary, no
// persistence), so used_memory is this run's alone; --shared-redis uses --redis-url instead.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startPrivateRedis } from '../bench/lib/private-redis';
import { startArgs } from '../bench/lib/start-command';
import { startPrivatePostgres } from '../bench/lib/private-postgres';
import { flatness, flatnessOf, flatnessTable, p99 } from '../bench/lib/flatness';
import { checkInvariants } from '../src/invariants';
import { createDb, withDatabase } from '../src/platform/db';
import { deleteKeysWithPrefix } from '../src/platform/redis';

const positive = (v: string) => {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('a positive number');
  return n;
};
const o = new Command('soak')
  .description('Production-shaped load at a fixed rate with periodic worker kills; prints a line per minute.')
  .addOption(new Option('--minutes <n>', 'how long to run').default(30).argParser(positive))
  .addOption(new Option('--rate <n>', 'requests per second (nine in ten are orders)').default(20).argParser(positive))
  .addOption(
    new Option('--kill-every <min>', 'SIGKILL the worker every this many minutes').default(5).argParser(positive),
  )
  .addOption(new Option('--skus <n>', 'products').default(50).argParser(positive))
  .addOption(
    new Option('--warm-up <min>', 'minutes left out when judging flatness at the end')
      .default(2)
      .argParser((v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('a whole number of minutes');
        return n;
      }),
  )
  .addOption(new Option('--tsx', 'run the sources through tsx instead of the compiled start:api / start:worker'))
  .addOption(new Option('--keep', 'keep the database and the Redis keys afterwards'))
  .addOption(
    new Option(
      '--trace <file>',
      "write every 5-s memory sample as a JSON line (the worker's and the API's VmRSS, RssAnon, RssFile), to see where a minute's peak came from",
    ),
  )
  .addOption(
    new Option(
      '--worker-node-args <args>',
      'node options for the worker alone, before its script (e.g. --trace-gc); with --trace its output goes to <file>.worker.log',
    ),
  )
  .addOption(
    new Option(
      '--pg-setting <name=value...>',
      'a setting of the private PostgreSQL (repeatable), e.g. log_connections=on',
    )
      .default([])
      .argParser((v: string, prev: string[]) => {
        if (!/^[a-z_.]+=.+$/.test(v)) throw new InvalidArgumentError('name=value');
        return [...prev, v];
      }),
  )
  .addOption(
    new Option(
      '--pg-statements <n>',
      "the private PostgreSQL's n most costly statements at the end (pg_stat_statements), to see where its CPU went",
    )
      .default(0)
      .argParser(positive),
  )
  .addOption(
    new Option(
      '--shared-postgres',
      "use --database-url instead of a private PostgreSQL cluster (the machine's server may be tuned for CI: autovacuum off)",
    ),
  )
  .addOption(
    new Option(
      '--database-url <url>',
      'PostgreSQL server, with --shared-postgres (a database of its own is created on it)',
    )
      .default('postgres://postgres@127.0.0.1:5432/postgres')
      .env('DATABASE_URL'),
  )
  .addOption(
    new Option('--redis-url <url>', 'Redis (only with --shared-redis)')
      .default('redis://127.0.0.1:6379')
      .env('REDIS_URL'),
  )
  .addOption(
    new Option(
      '--shared-redis',
      "use --redis-url instead of a private redis-server (used_memory is then the whole server's)",
    ),
  )
  .parse()
  .opts();

const ROOT = path.resolve(__dirname, '..');
const tag = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const dbName = `orderflow_soak_${tag}`;
const prefix = `ofsoak_${tag}`;
const KEYS = { intake: `soak-intake-${tag}`, feed: `soak-feed-${tag}`, operator: `soak-operator-${tag}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`${m}\n`);

/**
 * The memory of a PostgreSQL server: the PSS (proportional set size, so shared buffers are counted
 * once, not once per backend) of the postmaster and every process it started.
 */
function postgresPssMb(dataDir: string | undefined): number {
  if (!dataDir) return 0;
  try {
    const root = Number(readFileSync(path.join(dataDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const pids = [root];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === root) pids.push(Number(d));
      } catch {
        // gone meanwhile
      }
    }
    let kb = 0;
    for (const pid of pids) {
      try {
        kb += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
      } catch {
        // gone meanwhile
      }
    }
    return Math.round(kb / 1024);
  } catch {
    return 0;
  }
}

/** Fields of /proc/<pid>/stat after the command name: state is [0], utime [11], stime [12], cutime [13], cstime [14]. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU seconds a process has used (user + system), or undefined when it is gone. */
function cpuSeconds(pid: number | undefined): number | undefined {
  const f = pid ? statFields(pid) : undefined;
  return f ? (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND : undefined;
}

/**
 * CPU seconds of a PostgreSQL server so far: the postmaster's own and its reaped children's
 * (cutime, cstime), plus every live child's (backends, autovacuum, checkpointer, WAL writer).
 * A child that exits moves from the second sum into the first, so the total only grows.
 */
function postgresCpuSeconds(dataDir: string | undefined): number | undefined {
  if (!dataDir) return undefined;
  try {
    const root = Number(readFileSync(path.join(dataDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const own = statFields(root);
    if (!own) return undefined;
    let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      const f = statFields(Number(d));
      if (f && Number(f[1]) === root) ticks += Number(f[11]) + Number(f[12]);
    }
    return ticks / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * Per-minute CPU of one role (% of one core). A process replaced meanwhile (a killed worker) starts
 * again from its own zero; the CPU of its last seconds before the kill is not counted.
 */
function cpuMeter(read: () => { id: number; seconds: number | undefined }) {
  let last = read();
  let used = 0;
  return {
    sample() {
      const now = read();
      if (now.seconds === undefined) return;
      if (now.id === last.id && last.seconds !== undefined) used += now.seconds - last.seconds;
      else used += now.seconds;
      last = now;
    },
    /** % of one core over `seconds`, and start again. */
    take(seconds: number): number {
      this.sample();
      const pct = Math.round((used / seconds) * 100);
      used = 0;
      return pct;
    },
  };
}

/** Busy and total jiffies of the whole machine (every core), from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const [, ...xs] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const n = xs.map(Number);
  const idle = n[3] + (n[4] ?? 0); // idle + iowait
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0); // guest time is already in user
  return { busy: total - idle, total };
}

/** VmRSS split into its anonymous (heap, stacks) and file-backed (code, mapped files) parts, in MB. */
function memoryOf(pid: number | undefined): { pid: number; rss: number; anon: number; file: number } | null {
  if (!pid) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Math.round(Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024);
    return { pid, rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return null;
  }
}

function rssMb(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    return Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
  } catch {
    return 0;
  }
}

/** The receiver of every notification: answers 204 and counts. */
async function startReceiver() {
  let received = 0;
  const server = http.createServer({ keepAlive: true }, (req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received: () => received,
    close: () => new Promise((r) => server.close(r)),
  };
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}
/**
 * The command line of `npm run start:<role>` from package.json (`node <flags> dist/… <role>`), run
 * with this node; with --tsx, `node --import tsx src/app/main.ts <role>`.
 */
function commandFor(role: 'api' | 'worker'): string[] {
  if (o.tsx) return ['--import', 'tsx', 'src/app/main.ts', role];
  return startArgs(role);
}
function startProcess(role: 'api' | 'worker', env: Record<string, string>): Proc {
  const own = role === 'worker' && o.workerNodeArgs ? (o.workerNodeArgs as string).split(/\s+/).filter(Boolean) : [];
  const child = spawn(process.execPath, [...own, ...commandFor(role)], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const workerLog = role === 'worker' && o.trace ? `${o.trace as string}.worker.log` : undefined;
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20000);
    if (workerLog) appendFileSync(workerLog, `[${child.pid}] ${d.toString()}`);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => output, exited: new Promise<void>((r) => child.once('exit', () => r())) };
}
async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function main() {
  if (!o.tsx) {
    log('soak: npm run build');
    const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
    if (b.status !== 0) throw new Error(`npm run build failed (${b.error?.message ?? `exit ${b.status}`})`);
  }
  // PostgreSQL as production runs it: a cluster of the run's own with the server's defaults
  // (autovacuum on), not the machine's shared server, which CI tunes (autovacuum off there).
  const privatePg = o.sharedPostgres
    ? undefined
    : await startPrivatePostgres({
        settings: {
          shared_buffers: '128MB',
          max_connections: '200',
          // For a stall: what ran long, and what the checkpointer and autovacuum were doing.
          log_min_duration_statement: '1000',
          log_autovacuum_min_duration: '1000',
          log_checkpoints: 'on',
          ...(o.pgStatements ? { shared_preload_libraries: 'pg_stat_statements' } : {}),
          ...Object.fromEntries(
            (o.pgSetting as string[]).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
          ),
        },
      });
  const serverUrl: string = privatePg ? privatePg.url('postgres') : o.databaseUrl;
  const url = withDatabase(serverUrl, dbName);
  const privateRedis = o.sharedRedis ? undefined : await startPrivateRedis();
  if (!o.sharedRedis && !privateRedis) throw new Error('no redis-server on the PATH (or pass --shared-redis)');
  const redisUrl: string = privateRedis?.url ?? o.redisUrl;
  const rx = await startReceiver();
  const port = await freePort();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    DATABASE_URL: url,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    PORT: String(port),
    HOST: '127.0.0.1',
    API_KEYS: `intake:${KEYS.intake},feed:${KEYS.feed},operator:${KEYS.operator}`,
    WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
    NOTIFY_WEBHOOK_URL: rx.url,
    WEBHOOK_PRIVATE_TARGETS: 'allow',
  };
  const api = startProcess('api', env);
  let worker = startProcess('worker', env);
  const base = `http://127.0.0.1:${port}`;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  const db = createDb(url, 2);
  const call = async (role: keyof typeof KEYS, method: string, p: string, body?: unknown) => {
    const started = performance.now();
    const res = await fetch(`${base}${p}`, {
      method,
      headers: { authorization: `Bearer ${KEYS[role]}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch(() => undefined);
    const text = res ? await res.text().catch(() => '') : '';
    return { status: res?.status ?? 0, ms: performance.now() - started, body: text ? safeJson(text) : undefined };
  };

  try {
    for (let deadline = Date.now() + 90_000; ; await sleep(250)) {
      if ((await fetch(`${base}/readyz`).catch(() => undefined))?.ok) break;
      if (Date.now() > deadline || api.child.exitCode !== null) throw new Error(`API not ready:\n${api.output()}`);
    }
    if (o.pgStatements && privatePg) await db.raw('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    // Seed through the API: customers, products with stock at main.
    const customers: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await call('intake', 'POST', '/v1/customers', {
        email: `soak-${tag}-${i}@example.test`,
        name: `S${i}`,
      });
      if (r.status !== 201) throw new Error(`customer: ${r.status}`);
      customers.push(r.body.id);
    }
    const skus: string[] = [];
    for (let i = 0; i < o.skus; i++) {
      const sku = `SOAK-${tag}-${i}`;
      const r = await call('operator', 'POST', '/v1/products', {
        sku,
        name: `Soak ${i}`,
        price_cents: 100 + i,
        initial_stock: i < 5 ? 20 : 100_000,
      });
      if (r.status !== 201) throw new Error(`product: ${r.status}`);
      skus.push(sku);
    }
    log(
      `soak: ${o.minutes} min at ${o.rate} orders/s over ${o.skus} SKUs; worker SIGKILLed every ${o.killEvery} min; database ${dbName} on ${privatePg ? `a private PostgreSQL (port ${privatePg.port}, autovacuum on)` : serverUrl}, prefix ${prefix}; ${privateRedis ? `private redis-server ${privateRedis.version} at ${redisUrl}` : `shared Redis ${redisUrl}`}`,
    );

    const recent: string[] = [];
    let restockNo = 0;
    let countNo = 0;
    const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];
    type Kind = 'order' | 'fulfil' | 'cancel' | 'restock' | 'product read' | 'count';
    const fresh = () => ({ latencies: new Map<Kind, number[]>(), accepted: 0, errors: 0, other: 0 });
    let minute = fresh();
    const took = (kind: Kind, ms: number) => {
      const xs = minute.latencies.get(kind) ?? [];
      minute.latencies.set(kind, xs);
      xs.push(ms);
    };
    /** Each minute's order latencies, for the p99 of whole --kill-every windows at the end. */
    const orderLatencies: number[][] = [];
    const inflight = new Set<Promise<void>>();
    const track = (p: Promise<void>) => {
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    };
    // Steady state: one order in ten is for a hot SKU (1.5 units on average, 1.35 units per ten
    // requests) and the restocks bring 0.35 × 5 = 1.75 units per ten requests, so the hot queues
    // fill and drain rather than grow for the whole run. The others are for the 45 SKUs with ample stock.
    const order = async () => {
      const lines = [
        {
          sku: Math.random() < 0.1 ? pick(skus.slice(0, 5)) : pick(skus.slice(5)),
          quantity: 1 + Math.floor(Math.random() * 2),
        },
      ];
      const r = await call('intake', 'POST', '/v1/orders', { customer_id: pick(customers), lines });
      took('order', r.ms);
      if (r.status === 202) {
        minute.accepted++;
        recent.push(r.body.id);
        if (recent.length > 2000) recent.shift();
      } else minute.errors++;
    };
    // Something else one request in ten: fulfil, ship a unit, cancel, restock a hot SKU, or a count.
    const side = async () => {
      const x = Math.random();
      let r;
      let kind: Kind;
      if (x < 0.4 && recent.length) {
        kind = 'fulfil';
        r = await call('feed', 'POST', `/v1/orders/${pick(recent)}/fulfill`);
      } else if (x < 0.55 && recent.length) {
        kind = 'cancel';
        r = await call('intake', 'POST', `/v1/orders/${pick(recent)}/cancel`, {});
      } else if (x < 0.9) {
        kind = 'restock';
        r = await call('feed', 'POST', '/v1/restocks', {
          event_id: `soak-${tag}-${++restockNo}`,
          sku: pick(skus.slice(0, 5)),
          quantity: 5,
        });
      } else {
        const sku = pick(skus.slice(5));
        const p = await call('operator', 'GET', `/v1/products/${sku}`);
        took('product read', p.ms);
        kind = 'count';
        r = await call('feed', 'POST', '/v1/inventory/counts', {
          count_id: `soak-${tag}-${++countNo}`,
          counted_at: new Date().toISOString(),
          items: [{ sku, on_hand: Math.max(0, Number(p.body?.stock?.on_hand ?? 0) - 1) }],
        });
      }
      took(kind, r.ms);
      if (r.status >= 500 || r.status === 0) minute.errors++;
      else minute.other++;
    };

    const rows: Record<string, number | string>[] = [];
    const started = Date.now();
    let nextKill = started + o.killEvery * 60_000;
    let nextReport = started + 60_000;
    let kills = 0;
    let sent = 0;
    let lastReceived = rx.received();
    // RSS is sampled every 5 s and reported as the minute's peak: a worker just restarted is still small.
    const peak = { api: 0, worker: 0, soak: 0, redis: 0, postgres: 0 };
    // CPU per process per minute (% of one core; the machine has os.availableParallelism() of them).
    const cpu = {
      api: cpuMeter(() => ({ id: api.child.pid ?? 0, seconds: cpuSeconds(api.child.pid) })),
      worker: cpuMeter(() => ({ id: worker.child.pid ?? 0, seconds: cpuSeconds(worker.child.pid) })),
      soak: cpuMeter(() => {
        const u = process.cpuUsage();
        return { id: process.pid, seconds: (u.user + u.system) / 1e6 };
      }),
      redis: cpuMeter(() => ({ id: privateRedis?.pid ?? 0, seconds: cpuSeconds(privateRedis?.pid) })),
      postgres: cpuMeter(() => ({ id: 0, seconds: postgresCpuSeconds(privatePg?.dataDir) })),
    };
    let machineAt = machineTicks();
    let minuteStarted = Date.now();
    let nextSample = 0;
    // Ctrl-C (or SIGTERM) ends the load early: the run still settles, checks and cleans up.
    let stop = false;
    for (const sig of ['SIGINT', 'SIGTERM'] as const)
      process.once(sig, () => {
        stop = true;
      });
    // One row per minute: the loop ends with the last minute's report.
    while (rows.length < Math.ceil(o.minutes) && !stop) {
      // Open loop: requests go out on schedule whether or not earlier ones have been answered.
      const due = Math.floor(((Date.now() - started) / 1000) * o.rate);
      while (sent < due) {
        sent++;
        if (inflight.size < 500) track(sent % 10 === 0 ? side() : order());
        else minute.errors++;
      }
      // A process that ended on its own (a bad option, a crash) makes the rest of the run meaningless.
      for (const [role, p] of [
        ['API', api],
        ['worker', worker],
      ] as const)
        if (p.child.exitCode !== null || p.child.signalCode !== null)
          throw new Error(`the ${role} exited on its own (${p.child.exitCode ?? p.child.signalCode}):\n${p.output()}`);
      if (Date.now() >= nextSample) {
        peak.api = Math.max(peak.api, rssMb(api.child.pid));
        peak.worker = Math.max(peak.worker, rssMb(worker.child.pid));
        peak.soak = Math.max(peak.soak, Math.round(process.memoryUsage().rss / 1024 / 1024));
        peak.redis = Math.max(peak.redis, rssMb(privateRedis?.pid));
        peak.postgres = Math.max(peak.postgres, postgresPssMb(privatePg?.dataDir));
        for (const m of Object.values(cpu)) m.sample();
        if (o.trace)
          appendFileSync(
            o.trace as string,
            `${JSON.stringify({
              t: Math.round((Date.now() - started) / 1000),
              kills,
              worker: memoryOf(worker.child.pid),
              api: memoryOf(api.child.pid),
            })}\n`,
          );
        nextSample = Date.now() + 5000;
      }
      if (Date.now() >= nextKill) {
        cpu.worker.sample();
        worker.child.kill('SIGKILL');
        await worker.exited;
        kills++;
        worker = startProcess('worker', env);
        nextKill += o.killEvery * 60_000;
        log(`  worker SIGKILLed (${kills}) and restarted`);
      }
      if (Date.now() >= nextReport) {
        const m = minute;
        minute = fresh();
        const others = [...m.latencies].filter(([k]) => k !== 'order');
        const slowest = others.map(([k, xs]) => [k, p99(xs)] as const).sort((a, b) => b[1] - a[1])[0];
        const waiting = await db.raw(`SELECT COUNT(*)::int AS n FROM order_lines WHERE waiting AND NOT reserved`);
        const info = await redis.info('memory');
        const size = await db.raw('SELECT pg_database_size(current_database()) AS b');
        const settled = await db.raw(
          `SELECT COUNT(*) FILTER (WHERE status = 'received') AS received, COUNT(*) AS total FROM orders`,
        );
        const received = rx.received();
        const seconds = (Date.now() - minuteStarted) / 1000;
        minuteStarted = Date.now();
        const machineNow = machineTicks();
        const machineBusy = Math.round(
          ((machineNow.busy - machineAt.busy) / Math.max(1, machineNow.total - machineAt.total)) * 100,
        );
        machineAt = machineNow;
        const row = {
          minute: rows.length + 1,
          'orders/s': +(m.accepted / 60).toFixed(1),
          'other req/s': +(m.other / 60).toFixed(1),
          errors: m.errors,
          'p99 ms': Math.round(p99([...m.latencies.values()].flat())),
          'order p99 ms': Math.round(p99(m.latencies.get('order') ?? [])),
          'other p99 ms': Math.round(p99(others.flatMap(([, xs]) => xs))),
          'slowest other (p99 ms)': slowest ? `${slowest[0]} ${Math.round(slowest[1])}` : '-',
          'waiting lines': Number(waiting.rows[0].n),
          'webhooks/s': +((received - lastReceived) / 60).toFixed(1),
          'backlog (received)': Number(settled.rows[0].received),
          'API RSS MB (peak)': Math.max(peak.api, rssMb(api.child.pid)),
          'worker RSS MB (peak)': Math.max(peak.worker, rssMb(worker.child.pid)),
          'load generator RSS MB (peak)': peak.soak,
          ...(privateRedis ? { 'redis-server RSS MB (peak)': Math.max(peak.redis, rssMb(privateRedis.pid)) } : {}),
          ...(privatePg
            ? { 'PostgreSQL PSS MB (peak)': Math.max(peak.postgres, postgresPssMb(privatePg.dataDir)) }
            : {}),
          'Redis used_memory MB': +(Number(/used_memory:(\d+)/.exec(info)![1]) / 1024 / 1024).toFixed(1),
          'PG db MB': +(Number(size.rows[0].b) / 1024 / 1024).toFixed(1),
          'CPU % API': cpu.api.take(seconds),
          'CPU % worker': cpu.worker.take(seconds),
          'CPU % load generator': cpu.soak.take(seconds),
          ...(privateRedis ? { 'CPU % redis-server': cpu.redis.take(seconds) } : {}),
          ...(privatePg ? { 'CPU % PostgreSQL': cpu.postgres.take(seconds) } : {}),
          [`machine busy % (${os.availableParallelism()} cores)`]: machineBusy,
          kills,
        };
        lastReceived = received;
        orderLatencies.push(m.latencies.get('order') ?? []);
        peak.api = peak.worker = peak.soak = peak.redis = peak.postgres = 0;
        rows.push(row);
        log(`  ${JSON.stringify(row)}`);
        nextReport += 60_000;
      }
      await sleep(20);
    }
    await Promise.allSettled([...inflight]);
    // Let the worker finish what is queued, then ask the checker.
    for (let deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(1000)) {
      const { rows: r } = await db.raw(`SELECT COUNT(*)::int AS n FROM orders WHERE status = 'received'`);
      if (r[0].n === 0) break;
    }
    await sleep(3000);
    // Read before the checker runs (its own queries would be in the list).
    const statements =
      o.pgStatements && privatePg
        ? (
            await db.raw(
              `(SELECT calls, round(total_exec_time)::bigint AS total_ms, round(total_plan_time)::bigint AS plan_ms,
                       round(mean_exec_time::numeric, 3) AS mean_ms, rows,
                       left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
                  FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT ?)
               UNION ALL
               SELECT sum(calls), round(sum(total_exec_time)), round(sum(total_plan_time)), NULL, sum(rows), '(every statement)'
                 FROM pg_stat_statements`,
              [o.pgStatements],
            )
          ).rows
        : [];
    const report = await checkInvariants(db, { graceSeconds: 30 });
    const cols = Object.keys(rows[0] ?? {});
    process.stdout.write(
      `\n| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|\n${rows
        .map((r) => `| ${cols.map((c) => r[c]).join(' | ')} |`)
        .join('\n')}\n\n`,
    );
    process.stdout.write(
      `${o.minutes} min, ${o.rate} requests/s offered, ${kills} worker kills; invariant checker: ${report.ok ? 'clean' : `${report.problems.length} problem(s): ${report.problems.slice(0, 5).join('; ')}`}\n`,
    );
    if (rows.length > o.warmUp) {
      // Per minute, then the order p99 of --kill-every-minute windows after the warm-up, each
      // holding one kill (a minute's tail has ~60 requests in it at 100 orders/s, so one slow
      // second moves it; a 5-minute window's has ~300). The windows are counted from the end of
      // the warm-up, not from the kills.
      const judged = flatness(rows, {
        warmup: o.warmUp,
        growth: ['PG db MB'],
        skip: ['minute', 'kills'],
      });
      const cycles: number[] = [];
      for (let from = o.warmUp; from + o.killEvery <= orderLatencies.length; from += o.killEvery)
        cycles.push(Math.round(p99(orderLatencies.slice(from, from + o.killEvery).flat())));
      if (cycles.length >= 2) judged.push(flatnessOf(`order p99 ms per ${o.killEvery}-minute window`, cycles));
      // The database grows in steps (relation extension, space autovacuum frees for reuse), so a
      // minute's growth swings; the growth of a whole window shows a database that slows or bloats.
      const size = rows.map((r) => Number(r['PG db MB']));
      const grown: number[] = [];
      for (let from = Math.max(1, o.warmUp); from + o.killEvery <= size.length; from += o.killEvery)
        grown.push(+(size[from + o.killEvery - 1] - size[from - 1]).toFixed(1));
      if (grown.length >= 2) judged.push(flatnessOf(`PG db MB growth per ${o.killEvery}-minute window`, grown));
      process.stdout.write(
        `\nFlatness after a warm-up of ${o.warmUp} minute(s) (minutes ${o.warmUp + 1}–${rows.length}${cycles.length >= 2 ? `; ${o.killEvery}-minute windows: ${cycles.join(', ')} ms` : ''}):\n\n${flatnessTable(judged)}`,
      );
    }
    if (statements.length) {
      process.stdout.write(
        `\nPostgreSQL's ${statements.length - 1} most costly statements (planning is counted with pg_stat_statements.track_planning=on):\n\n| calls | execution ms | planning ms | mean execution ms | rows | statement |\n|---:|---:|---:|---:|---:|---|\n${statements
          .map(
            (r: Record<string, string>) =>
              `| ${r.calls} | ${r.total_ms} | ${r.plan_ms} | ${r.mean_ms ?? ''} | ${r.rows} | \`${r.query.replace(/\|/g, '\\|')}\` |`,
          )
          .join('\n')}\n`,
      );
    }
    if (!report.ok) process.exitCode = 1;
  } finally {
    for (const p of [api, worker]) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.race([Promise.all([api.exited, worker.exited]), sleep(15_000)]);
    for (const p of [api, worker]) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await db.destroy();
    redis.disconnect();
    await rx.close();
    if (!o.keep && !privateRedis) await deleteKeysWithPrefix(redisUrl, prefix).catch(() => undefined);
    await privateRedis?.stop();
    if (privatePg) {
      // The server's log outlives the cluster: checkpoints, autovacuum runs and slow statements.
      const kept = path.join(os.tmpdir(), `soak-postgres-${tag}.log`);
      writeFileSync(kept, await privatePg.log());
      log(`soak: the private PostgreSQL's log is in ${kept}`);
    }
    if (privatePg && !o.keep) await privatePg.destroy();
    else if (!o.keep) {
      const admin = new pg.Client({ connectionString: serverUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    } else if (privatePg)
      log(`soak: --keep: the private PostgreSQL runs on port ${privatePg.port} (${privatePg.dataDir})`);
  }
}

function safeJson(t: string): any {
  try {
    return JSON.parse(t);
  } catch {
    return undefined;
  }
}

main().catch((err) => {
  process.stderr.write(`soak: ${(err as Error).stack ?? err}\n`);
  process.exit(2);
});
