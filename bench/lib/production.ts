import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { createDb, type Db } from '../../src/platform/db';
import { statsKey } from '../../src/platform/metrics';
import { BENCH_KEYS, orderMix, seedCustomers, seedProducts, sleep, type BenchEnv } from './setup';
import { startArgs } from './start-command';

const ROOT = path.resolve(__dirname, '..', '..');

export interface ProductionResult {
  orders: number;
  skus: number;
  endpoints: number;
  /** From the first submission until every order.confirmed webhook was accepted by every target. */
  seconds: number;
  /** orders / seconds: the figure production feels. */
  ops: number;
  /** From the first submission until the last order.confirmed event was written. */
  confirm_seconds: number;
  confirmed_ops: number;
  /** Deliveries of order.confirmed accepted per second, over every target, in the same window. */
  delivered_per_s: number;
  /** Time from the first submission until the last order was accepted (202). */
  submit_seconds: number;
  targets: { target: string; confirmed: number; duplicates: number; bad_signatures: number }[];
  /** TCP connections the receiver accepted, over every target: reused keep-alive sockets keep it near the concurrency. */
  receiver_connections: number;
  submit_errors: number;
  /** Failed attempts by error (a duplicate at a receiver is a send that timed out or failed, then retried). */
  failed_attempts: Record<string, number>;
  workers: number;
  /** The cross-process counters (Redis stats hash): optimistic_conflicts, optimistic_retries, transitions. */
  stats: Record<string, number>;
  /**
   * CPU seconds over the run (user + system, from /proc), per part: the API process, the worker
   * processes, the PostgreSQL backends serving this database, and Redis when it is a private one.
   */
  cpu_seconds: Record<string, number>;
  /**
   * Where PostgreSQL's work went over the run, per table of this database (its indexes included):
   * buffers touched (hit + read from outside shared_buffers), buffers read, rows read by
   * sequential scans, rows fetched by index scans. The 8 busiest tables by buffers touched.
   */
  table_io: TableIo[];
}

export interface TableIo {
  table: string;
  buffers: number;
  read: number;
  seq_rows: number;
  idx_rows: number;
}

/** Cumulative per-table counters of the database `db` is connected to (pg_statio_*, pg_stat_*). */
async function tableCounters(db: Db): Promise<Map<string, TableIo>> {
  const { rows } = await db.raw(
    `SELECT io.relname AS table,
            (COALESCE(io.heap_blks_hit, 0) + COALESCE(io.heap_blks_read, 0) + COALESCE(io.idx_blks_hit, 0)
              + COALESCE(io.idx_blks_read, 0) + COALESCE(io.toast_blks_hit, 0) + COALESCE(io.toast_blks_read, 0))::float8 AS buffers,
            (COALESCE(io.heap_blks_read, 0) + COALESCE(io.idx_blks_read, 0) + COALESCE(io.toast_blks_read, 0))::float8 AS read,
            COALESCE(st.seq_tup_read, 0)::float8 AS seq_rows, COALESCE(st.idx_tup_fetch, 0)::float8 AS idx_rows
       FROM pg_statio_user_tables io JOIN pg_stat_user_tables st USING (relid)`,
  );
  return new Map(rows.map((r: TableIo) => [r.table, r]));
}

function tableIoSince(before: Map<string, TableIo>, after: Map<string, TableIo>): TableIo[] {
  const d = [...after.values()].map((a) => {
    const b = before.get(a.table);
    return {
      table: a.table,
      buffers: a.buffers - (b?.buffers ?? 0),
      read: a.read - (b?.read ?? 0),
      seq_rows: a.seq_rows - (b?.seq_rows ?? 0),
      idx_rows: a.idx_rows - (b?.idx_rows ?? 0),
    };
  });
  return d.sort((x, y) => y.buffers - x.buffers).slice(0, 8);
}

/** user + system CPU seconds of a process so far (Linux /proc; 0 when it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** A receiver for every target (the customers' NOTIFY_WEBHOOK_URL and each endpoint), verifying each signature. */
async function startReceiver(secrets: Map<string, string>) {
  const verifiers = new Map([...secrets].map(([t, s]) => [t, new Webhook(s)]));
  const seen = new Map<string, Set<string>>();
  const stats = new Map<string, { confirmed: number; duplicates: number; bad: number }>();
  let last = 0;
  let delivered = 0;
  const server = http.createServer({ keepAlive: true }, (req, res) => {
    const target = (req.url ?? '/').slice(1);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = stats.get(target) ?? { confirmed: 0, duplicates: 0, bad: 0 };
      stats.set(target, s);
      let event: any;
      try {
        event = verifiers.get(target)!.verify(Buffer.concat(chunks).toString('utf8'), req.headers as any);
      } catch {
        s.bad += 1;
        res.writeHead(400).end();
        return;
      }
      if (event.type === 'order.confirmed') {
        const ids = seen.get(target) ?? new Set<string>();
        seen.set(target, ids);
        if (ids.has(event.id)) s.duplicates += 1;
        else {
          ids.add(event.id);
          s.confirmed += 1;
          delivered += 1;
          last = Date.now();
        }
      }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  let connections = 0;
  server.on('connection', () => (connections += 1));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: (target: string) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/${target}`,
    setSecret: (target: string, secret: string) => verifiers.set(target, new Webhook(secret)),
    stats,
    last: () => last,
    delivered: () => delivered,
    connections: () => connections,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/** What `npm run start:api` / `npm run start:worker` run (read from package.json). */
function startProcess(role: 'api' | 'worker', env: Record<string, string>): Proc {
  // BENCH_CPU_PROF=<dir>: each process writes a V8 CPU profile there when it exits (docs/benchmarks.md).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = spawn(process.execPath, [...prof, ...startArgs(role)], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Production-shaped: the compiled API and worker as two processes (npm run start:api /
 * start:worker), notifications on (NOTIFY_WEBHOOK_URL to a local receiver that verifies every
 * signature), optionally `endpoints` webhook endpoints subscribed to every event; `orders` orders
 * over `skus` SKUs submitted over HTTP, 50 in flight. The clock runs from the first submission
 * until every target has accepted the order.confirmed webhook of every order.
 */
export async function runProduction(
  bench: BenchEnv,
  opts: {
    orders: number;
    skus: number;
    endpoints: number;
    tag: string;
    timeoutMs: number;
    log: (m: string) => void;
    /** A database to clone instead of the empty template (the growth phase's grown one). */
    template?: string;
    /** Worker processes (default 1). */
    workers?: number;
    /** A private Redis (its pid is counted in cpu_seconds), instead of the bench's. */
    redis?: { url: string; pid: number };
  },
): Promise<ProductionResult> {
  const url = await bench.database(opts.tag, opts.template);
  const db = createDb(url, 2);
  const customers = await seedCustomers(db, 100);
  const skus = await seedProducts(db, opts.tag.toUpperCase(), opts.skus, Math.ceil(opts.orders / opts.skus) * 4 + 10);
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const rx = await startReceiver(new Map([['customer', secret]]));
  const port = await freePort();
  const prefix = bench.prefix(opts.tag);
  const env = bench.env(prefix, {
    ...(opts.redis ? { REDIS_URL: opts.redis.url } : {}),
    DATABASE_URL: url,
    PORT: String(port),
    HOST: '127.0.0.1',
    WEBHOOK_SECRET: secret,
    NOTIFY_WEBHOOK_URL: rx.url('customer'),
    WEBHOOK_PRIVATE_TARGETS: 'allow',
  });
  const api = startProcess('api', env);
  const workers = Array.from({ length: opts.workers ?? 1 }, () => startProcess('worker', env));
  const base = `http://127.0.0.1:${port}`;
  try {
    const readyBy = Date.now() + 60000;
    for (;;) {
      const ok = await fetch(`${base}/readyz`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) break;
      if (Date.now() > readyBy || api.child.exitCode !== null)
        throw new Error(`API not ready:\n${api.output().slice(-3000)}`);
      await sleep(200);
    }
    for (let i = 1; i <= opts.endpoints; i++) {
      const r = await fetch(`${base}/v1/webhook-endpoints`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BENCH_KEYS.operator}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: rx.url(`endpoint${i}`), types: i === 1 ? ['order.confirmed'] : ['*'] }),
      });
      if (r.status !== 201) throw new Error(`endpoint: ${r.status} ${await r.text()}`);
      rx.setSecret(`endpoint${i}`, (await r.json()).secret);
    }
    const targets = 1 + opts.endpoints;
    const lines = orderMix(opts.orders, skus);
    opts.log(
      `${opts.tag}: API and worker as two compiled processes; ${opts.orders} orders over ${opts.skus} SKUs, 50 in flight; ${targets} webhook target(s)`,
    );
    let next = 0;
    let errors = 0;
    // The backends serving this database (the pools are open once /readyz answered; more may open).
    const backends = async () =>
      (
        await db.raw(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
      ).rows.map((r: { pid: number }) => r.pid) as number[];
    const cpuStart = new Map<number, number>();
    for (const pid of await backends()) cpuStart.set(pid, cpuSeconds(pid));
    const parts = {
      api: [api.child.pid!],
      workers: workers.map((w) => w.child.pid!),
      ...(opts.redis ? { redis: [opts.redis.pid] } : {}),
    };
    const partStart = Object.fromEntries(
      Object.entries(parts).map(([k, pids]) => [k, pids.reduce((a, p) => a + cpuSeconds(p), 0)]),
    );
    const ioStart = await tableCounters(db);
    const t0 = Date.now();
    let submitted = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < lines.length) {
          const i = next++;
          const r = await fetch(`${base}/v1/orders`, {
            method: 'POST',
            headers: { authorization: `Bearer ${BENCH_KEYS.intake}`, 'content-type': 'application/json' },
            body: JSON.stringify({
              customer_id: customers[i % customers.length],
              lines: [{ sku: lines[i], quantity: 1 }],
            }),
          }).catch(() => undefined);
          if (r?.status !== 202) errors += 1;
          await r?.arrayBuffer().catch(() => undefined);
          submitted += 1;
        }
      }),
    );
    const submitSeconds = (Date.now() - t0) / 1000;
    const want = (opts.orders - errors) * targets;
    const deadline = Date.now() + opts.timeoutMs;
    let lastLog = Date.now();
    while (rx.delivered() < want) {
      if (Date.now() > deadline)
        throw new Error(`${opts.tag}: ${rx.delivered()} of ${want} deliveries after ${opts.timeoutMs} ms`);
      for (const w of workers)
        if (w.child.exitCode !== null) throw new Error(`worker exited:\n${w.output().slice(-3000)}`);
      if (Date.now() - lastLog > 5000) {
        opts.log(`${opts.tag}: ${rx.delivered()} of ${want} deliveries`);
        lastLog = Date.now();
      }
      await sleep(20);
    }
    const seconds = (rx.last() - t0) / 1000;
    const cpu: Record<string, number> = Object.fromEntries(
      Object.entries(parts).map(([k, pids]) => [k, pids.reduce((a, p) => a + cpuSeconds(p), 0) - partStart[k]]),
    );
    cpu.postgres = (await backends()).reduce((a, pid) => a + cpuSeconds(pid) - (cpuStart.get(pid) ?? 0), 0);
    await sleep(1500); // each process flushes its counters to the stats hash every second
    const tableIo = tableIoSince(ioStart, await tableCounters(db));
    const r = new Redis(opts.redis?.url ?? bench.redisUrl);
    const stats = Object.fromEntries(Object.entries(await r.hgetall(statsKey(prefix))).map(([k, v]) => [k, Number(v)]));
    r.disconnect();
    // Only this run's: a grown database holds a history of its own.
    const since = new Date(t0 - 1000);
    const mine = () => db('events').where({ type: 'order.confirmed' }).where('created_at', '>=', since);
    const lastConfirmed = await mine().max('created_at as at').first();
    const confirmSeconds = (new Date(lastConfirmed!.at).getTime() - t0) / 1000;
    const confirmed = Number((await mine().count<{ n: string }[]>({ n: '*' }))[0].n);
    const failures: { error: string; n: string }[] = await db('delivery_attempts')
      .where('at', '>=', since)
      .whereNotNull('error')
      .groupBy('error')
      .orderBy('n', 'desc')
      .limit(10)
      .select('error', db.raw('count(*) AS n'));
    return {
      workers: workers.length,
      stats,
      cpu_seconds: cpu,
      table_io: tableIo,
      failed_attempts: Object.fromEntries(failures.map((f) => [f.error, Number(f.n)])),
      orders: opts.orders,
      skus: opts.skus,
      endpoints: opts.endpoints,
      seconds,
      ops: confirmed / seconds,
      confirm_seconds: confirmSeconds,
      confirmed_ops: confirmed / confirmSeconds,
      delivered_per_s: rx.delivered() / seconds,
      submit_seconds: submitSeconds,
      targets: [...rx.stats].map(([target, s]) => ({
        target,
        confirmed: s.confirmed,
        duplicates: s.duplicates,
        bad_signatures: s.bad,
      })),
      receiver_connections: rx.connections(),
      submit_errors: errors + (submitted - opts.orders),
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await api.stop();
    await rx.close();
    await db.destroy();
    await bench.dropPrefixes();
    await bench.dropDatabase(url).catch(() => undefined);
  }
}
