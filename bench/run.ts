// `npm run bench [-- --quick]`: our figures and, in the same run on the same machine, the ceilings
// they are judged against. Writes bench/results.json and prints a table. See docs/benchmarks.md.
import './lib/quiet';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { Redis } from 'ioredis';
import type { AppContext } from '../src/app/context';
import { createDb, withDatabase } from '../src/platform/db';
import { runCeilingWorker, type CeilingResult } from './lib/ceiling-worker';
import { buildCompiled, load, startServer, type LoadResult } from './lib/intake';
import { runCount, type CountResult } from './lib/count';
import { runPipeline, runRestock, type PipelineResult, type RestockResult } from './lib/pipeline';
import { startPrivateRedis } from './lib/private-redis';
import { runProduction, type ProductionResult } from './lib/production';
import { describeGrown, explainReads, growDatabase, type GrowthResult, type PlanReading } from './lib/growth';
import { measureQueuedOrderMemory, type RedisMemoryResult } from './lib/redis-memory';
import { againstCeiling, atMost, beside, near, info, markdownTable, type Figures } from './lib/report';
import { startArgs } from './lib/start-command';
import {
  BENCH_KEYS,
  createBenchEnv,
  orderMix,
  seedCustomers,
  seedProducts,
  withContext,
  type BenchEnv,
} from './lib/setup';

const PHASES = ['intake', 'redis', 'uniform', 'hot', 'restock', 'count', 'production', 'workers', 'growth'] as const;
/** Phases a bare `npm run bench` runs; `workers` and `growth` (a database of a million orders) only when named. */
const DEFAULT_PHASES = PHASES.filter((p) => p !== 'growth' && p !== 'workers');
type Phase = (typeof PHASES)[number];

const FULL = {
  orders: 20000,
  skus: 10000,
  hotOrders: 20000,
  restockOrders: 10000,
  countOrders: 10000,
  productionOrders: 20000,
  growthOrders: 1000000,
  redisJobs: 100000,
  seconds: 5,
  warmup: 2,
  rounds: 5,
};
const QUICK = {
  orders: 4000,
  skus: 2000,
  hotOrders: 3000,
  restockOrders: 2000,
  countOrders: 3000,
  productionOrders: 4000,
  growthOrders: 40000,
  redisJobs: 20000,
  seconds: 4,
  warmup: 1,
  rounds: 1,
};

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`not a positive integer: ${v}`);
  return n;
};

const program = new Command('bench')
  .description("orderflow benchmarks against the machine's own ceilings, measured in the same run")
  .addOption(new Option('--quick', 'small sizes (under 2 minutes)').env('BENCH_QUICK'))
  .addOption(new Option('--only <phases>', `comma-separated subset of ${PHASES.join(',')}`).env('BENCH_ONLY'))
  .addOption(new Option('--orders <n>', 'e2e uniform: orders (full 20000)').argParser(int).env('BENCH_ORDERS'))
  .addOption(new Option('--skus <n>', 'e2e uniform: SKUs (full 10000)').argParser(int).env('BENCH_SKUS'))
  .addOption(
    new Option('--hot-orders <n>', 'e2e hot: orders on one SKU (full 20000)').argParser(int).env('BENCH_HOT_ORDERS'),
  )
  .addOption(
    new Option('--restock-orders <n>', 'backorders confirmed by one restock (full 10000)')
      .argParser(int)
      .env('BENCH_RESTOCK_ORDERS'),
  )
  .addOption(
    new Option('--count-orders <n>', 'count: orders per round beside the 1,000-item count (full 10000)')
      .argParser(int)
      .env('BENCH_COUNT_ORDERS'),
  )
  .addOption(
    new Option('--redis-jobs <n>', 'jobs waiting for the Redis memory figure (full 100000)')
      .argParser(int)
      .env('BENCH_REDIS_JOBS'),
  )
  .addOption(
    new Option('--seconds <n>', 'intake: measured seconds per server and round (full 5)')
      .argParser(int)
      .env('BENCH_SECONDS'),
  )
  .addOption(
    new Option('--warmup <n>', 'intake: warm-up seconds per server and round (full 2)')
      .argParser(int)
      .env('BENCH_WARMUP'),
  )
  .addOption(
    new Option('--rounds <n>', 'intake: rounds, each running the three servers in turn (full 5)')
      .argParser(int)
      .env('BENCH_ROUNDS'),
  )
  .addOption(
    new Option(
      '--compiled',
      'intake: run the three servers as compiled JavaScript (npm run build first, then node dist/bench/servers/*.js, which load dist/src) instead of tsx on the sources',
    ).env('BENCH_COMPILED'),
  )
  .addOption(
    new Option('--connections <n>', 'intake: autocannon connections')
      .default(50)
      .argParser(int)
      .env('BENCH_CONNECTIONS'),
  )
  .addOption(
    new Option('--ceiling-concurrency <n>', 'worker ceiling: BullMQ concurrency')
      .default(16)
      .argParser(int)
      .env('BENCH_CEILING_CONCURRENCY'),
  )
  .addOption(
    new Option('--with-notifications', 'run the notifications worker inside the timed e2e/restock windows too').env(
      'BENCH_WITH_NOTIFICATIONS',
    ),
  )
  .addOption(
    new Option('--locations <n>', "e2e: spread each SKU's stock over n locations (main and n − 1 more)")
      .default(1)
      .argParser(int)
      .env('BENCH_LOCATIONS'),
  )
  .addOption(
    new Option('--production-orders <n>', 'production: orders through the two compiled processes (full 20000)')
      .argParser(int)
      .env('BENCH_PRODUCTION_ORDERS'),
  )
  .addOption(
    new Option('--growth-orders <n>', 'growth: settled orders in the grown database (full 1000000)')
      .argParser(int)
      .env('BENCH_GROWTH_ORDERS'),
  )
  .addOption(
    new Option('--growth-rounds <n>', 'growth: rounds of (empty, grown) production runs, interleaved')
      .default(2)
      .argParser(int)
      .env('BENCH_GROWTH_ROUNDS'),
  )
  .addOption(
    new Option(
      '--growth-database <name>',
      'growth: measure on this grown database (one kept by an earlier --only growth --keep) instead of growing one; it is left in place',
    ),
  )
  .addOption(new Option('--shared-redis', 'measure Redis memory on the shared Redis instead of a private redis-server'))
  .addOption(new Option('--out <file>', 'results file').default(path.join(__dirname, 'results.json')).env('BENCH_OUT'))
  .addOption(new Option('--keep', 'keep the bench database and Redis keys (for inspection)'))
  .addOption(
    new Option('--table-from <file>', 'measure nothing: print the table of an earlier results file (its details)'),
  )
  .parse();

const o = program.opts();
const base = o.quick ? QUICK : FULL;
const size = {
  orders: o.orders ?? base.orders,
  skus: o.skus ?? base.skus,
  hotOrders: o.hotOrders ?? base.hotOrders,
  restockOrders: o.restockOrders ?? base.restockOrders,
  countOrders: o.countOrders ?? base.countOrders,
  productionOrders: o.productionOrders ?? base.productionOrders,
  growthOrders: o.growthOrders ?? base.growthOrders,
  growthRounds: o.growthRounds as number,
  redisJobs: o.redisJobs ?? base.redisJobs,
  seconds: o.seconds ?? base.seconds,
  warmup: o.warmup ?? base.warmup,
  rounds: o.rounds ?? base.rounds,
  connections: o.connections as number,
  ceilingConcurrency: o.ceilingConcurrency as number,
  withNotifications: !!o.withNotifications,
  locations: o.locations as number,
  compiled: !!o.compiled,
};
const only = new Set<Phase>(
  o.only
    ? (String(o.only)
        .split(',')
        .map((s) => s.trim()) as Phase[])
    : DEFAULT_PHASES,
);
for (const p of only)
  if (!PHASES.includes(p)) {
    process.stderr.write(`unknown phase ${p}\n`);
    process.exit(2);
  }

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const load1 = () => Number(os.loadavg()[0].toFixed(2));

interface Results {
  intake?: {
    ours: LoadResult;
    ceiling: LoadResult;
    core: LoadResult;
    rounds: { ours: LoadResult; ceiling: LoadResult; core: LoadResult }[];
  };
  redis?: RedisMemoryResult & { redis: string };
  uniform?: { ours: PipelineResult; ceiling: CeilingResult };
  hot?: { ours: PipelineResult; ceiling: CeilingResult; naive?: CeilingResult };
  restock?: RestockResult;
  count?: CountResult;
  production?: { plain: ProductionResult; endpoints: ProductionResult; ceiling: CeilingResult };
  workers?: { skus: number; ceiling: CeilingResult; runs: ProductionResult[] };
  growth?: {
    grown: GrowthResult;
    rounds: { empty: ProductionResult; grown: ProductionResult }[];
    plans: { empty: PlanReading[]; grown: PlanReading[] };
  };
}

/**
 * The three intake servers run in turn, round after round (ceiling, core, ours; each in its own
 * process on a fresh database), so a change in the machine's load over the phase falls on all
 * three alike. Each figure is the median of its rounds; p99 is the worst round's.
 */
async function intakePhase(bench: BenchEnv): Promise<Results['intake']> {
  const run = async (server: string, phase: string) => {
    // A fresh database per run, dropped when the run ends: no run shares its tables with, or
    // pays for the autovacuum and page writes of, the tens of thousands of orders the one before stored.
    const url = await bench.database(phase);
    const db = createDb(url, 2);
    const [customer] = await seedCustomers(db, 1);
    const [sku] = await seedProducts(db, 'INTAKE', 1, 1000000);
    await db.destroy();
    const body = { customer_id: customer, lines: [{ sku, quantity: 1 }] };
    const s = await startServer(server, bench.env(bench.prefix(phase), { DATABASE_URL: url }), {
      compiled: size.compiled,
    });
    try {
      log(`intake: ${server} warm-up ${size.warmup} s`);
      await load(s.port, { connections: size.connections, seconds: size.warmup, body, key: BENCH_KEYS.intake });
      log(`intake: ${server} ${size.seconds} s at ${size.connections} connections`);
      return await load(s.port, {
        connections: size.connections,
        seconds: size.seconds,
        body,
        key: BENCH_KEYS.intake,
        pid: s.child.pid,
      });
    } finally {
      await s.stop();
      await bench.dropPrefixes();
      await bench.dropDatabase(url);
    }
  };
  if (size.compiled) {
    log('intake: compiling (npm run build); the servers run node dist/bench/servers/*.js');
    buildCompiled();
  }
  const rounds: { ours: LoadResult; ceiling: LoadResult; core: LoadResult }[] = [];
  for (let k = 1; k <= size.rounds; k++) {
    log(`intake: round ${k} of ${size.rounds}`);
    const ceiling = await run('express-queue-server', `intakeceil${k}`);
    const core = await run('intake-core-server', `intakecore${k}`);
    const ours = await run('api-server', `intake${k}`);
    if (ours.non2xx || ours.errors) log(`intake: WARNING ours had ${ours.non2xx} non-2xx and ${ours.errors} errors`);
    log(
      `intake: round ${k}: ours ${ours.rps.toFixed(0)} req/s, ceiling ${ceiling.rps.toFixed(0)} (${(ours.rps / ceiling.rps).toFixed(2)}), core ${core.rps.toFixed(0)}`,
    );
    rounds.push({ ours, ceiling, core });
  }
  const of = (k: 'ours' | 'ceiling' | 'core') => combineLoads(rounds.map((r) => r[k]));
  return { ours: of('ours'), ceiling: of('ceiling'), core: of('core'), rounds };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Rounds of one server as one result: medians of the rates, the worst p99 and max, sums of the counts. */
function combineLoads(rs: LoadResult[]): LoadResult {
  const sum = (f: (r: LoadResult) => number) => rs.reduce((a, r) => a + f(r), 0);
  return {
    rps: median(rs.map((r) => r.rps)),
    p50_ms: median(rs.map((r) => r.p50_ms)),
    p99_ms: Math.max(...rs.map((r) => r.p99_ms)),
    max_ms: Math.max(...rs.map((r) => r.max_ms)),
    requests: sum((r) => r.requests),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    peak_rss_mb: Math.max(...rs.map((r) => r.peak_rss_mb)),
    seconds: sum((r) => r.seconds),
  };
}

async function pipelinePhase(
  bench: BenchEnv,
  name: 'uniform' | 'hot',
  orders: number,
  skus: number,
): Promise<{ ours: PipelineResult; ceiling: CeilingResult; naive?: CeilingResult }> {
  const timeoutMs = Math.max(60000, orders * 20);
  const url = await bench.database(name);
  const db = createDb(url, 2);
  const customers = await seedCustomers(db, 100);
  const poolMax = bench.config('x').DB_POOL_MAX;
  const ceilingRun = async (tag: string, n: number, lock: 'for-update' | 'none') => {
    // On SKUs of its own, with the same order mix as ours.
    const cskus = await seedProducts(db, `C${tag}`, skus, Math.ceil(n / skus) * 4 + 10);
    const jobs = orderMix(n, cskus).map((sku) => ({ sku, quantity: 1 }));
    log(
      `${name}: ${lock === 'none' ? 'naive optimistic worker' : 'ceiling'} (bare BullMQ worker, one 3-statement transaction per job${
        lock === 'none' ? ', no row lock' : ', SELECT ... FOR UPDATE'
      }, concurrency ${size.ceilingConcurrency}), ${n} jobs over ${skus} SKU(s)`,
    );
    const r = await runCeilingWorker({
      redisUrl: bench.redisUrl,
      databaseUrl: url,
      prefix: bench.prefix(`${tag}ceil`),
      jobs,
      concurrency: size.ceilingConcurrency,
      poolMax,
      lock,
    });
    log(
      `${name}: ${r.ops.toFixed(0)} ops/s (${r.seconds.toFixed(2)} s, ${(r.conflict_rate * 100).toFixed(1)} % of version checks lost)`,
    );
    return r;
  };
  let ceiling: CeilingResult;
  let naive: CeilingResult | undefined;
  try {
    ceiling = await ceilingRun(name, orders, 'for-update');
    // How much a naive optimistic check wastes on one row (fewer jobs: it is slow).
    if (name === 'hot') naive = await ceilingRun(`${name}naive`, Math.min(orders, o.quick ? 1000 : 3000), 'none');
  } finally {
    await db.destroy();
  }
  log(`${name}: ours (real workers in-process), submitting ${orders} orders over ${skus} SKU(s)`);
  const ours = await withContext(bench, name, url, (ctx: AppContext) =>
    runPipeline(ctx, customers, {
      orders,
      skus,
      tag: name.toUpperCase(),
      timeoutMs,
      withNotifications: size.withNotifications,
      locations: size.locations,
      drainNotifications: !o.quick,
    }),
  );
  log(
    `${name}: ours ${ours.ops.toFixed(0)} ops/s (${ours.seconds.toFixed(2)} s, conflicts ${(ours.conflict_rate * 100).toFixed(1)} %, invariants ${ours.invariants_ok ? 'ok' : 'BROKEN'})${
      ours.notify_ops ? `; notifications then drained at ${ours.notify_ops.toFixed(0)}/s` : ''
    }`,
  );
  return { ours, ceiling, naive };
}

/**
 * The one-transaction-per-job ceiling (a bare BullMQ worker, `FOR UPDATE` on the stock row) on
 * `orders` one-unit jobs over `skus` SKUs of its own, in a database of its own that is dropped after.
 */
async function bareWorkerCeiling(
  bench: BenchEnv,
  tag: string,
  orders: number,
  skus: number,
  stock: number,
): Promise<CeilingResult> {
  const url = await bench.database(tag);
  const db = createDb(url, 2);
  try {
    const cskus = await seedProducts(db, tag.toUpperCase(), skus, stock);
    return await runCeilingWorker({
      redisUrl: bench.redisUrl,
      databaseUrl: url,
      prefix: bench.prefix(tag),
      jobs: orderMix(orders, cskus).map((sku) => ({ sku, quantity: 1 })),
      concurrency: size.ceilingConcurrency,
      poolMax: bench.config('x').DB_POOL_MAX,
      lock: 'for-update',
    });
  } finally {
    await db.destroy();
    await bench.dropDatabase(url);
  }
}

/**
 * Production-shaped (docs/benchmarks.md): compiled API and worker as two processes, notifications
 * on, a receiver verifying every signature; once with the customer channel only, once with 3
 * webhook endpoints as well; beside the worker ceiling on the same number of jobs and SKUs.
 */
async function productionPhase(bench: BenchEnv): Promise<Results['production']> {
  const orders = size.productionOrders;
  const skus = Math.min(size.skus, orders);
  log(
    `production: compiling (npm run build); the API runs node ${startArgs('api').join(' ')}, the worker node ${startArgs('worker').join(' ')}`,
  );
  buildCompiled();
  log(
    `production: ceiling (bare BullMQ worker, one reservation transaction per job), ${orders} jobs over ${skus} SKUs`,
  );
  const ceiling = await bareWorkerCeiling(bench, 'prodceil', orders, skus, Math.ceil(orders / skus) * 4 + 10);
  log(`production: ceiling ${ceiling.ops.toFixed(0)} ops/s`);
  const run = async (tag: string, endpoints: number) => {
    const r = await runProduction(bench, {
      orders,
      skus,
      endpoints,
      tag,
      timeoutMs: Math.max(120000, orders * 30),
      log,
    });
    log(
      `${tag}: ${r.ops.toFixed(0)} orders/s until the last order.confirmed webhook (${r.seconds.toFixed(2)} s); confirmed at ${r.confirmed_ops.toFixed(0)}/s; ${r.delivered_per_s.toFixed(0)} deliveries/s over ${endpoints + 1} target(s)`,
    );
    return r;
  };
  const plain = await run('production', 0);
  const withEndpoints = await run('production3ep', 3);
  return { plain, endpoints: withEndpoints, ceiling };
}

/**
 * Many workers (docs/benchmarks.md): the production-shaped run with 1, 2 and 4 worker processes on
 * the same load (orders over a small set of popular SKUs, so workers meet on the same rows), each
 * on a private Redis, with the CPU each part used; beside the bare worker ceiling on those jobs.
 */
async function workersPhase(bench: BenchEnv): Promise<Results['workers']> {
  const orders = size.productionOrders;
  const skus = 100;
  log('workers: compiling (npm run build)');
  buildCompiled();
  const ceiling = await bareWorkerCeiling(bench, 'wceil', orders, skus, orders + 10);
  log(`workers: ceiling ${ceiling.ops.toFixed(0)} ops/s on ${orders} jobs over ${skus} SKUs`);
  const runs: ProductionResult[] = [];
  for (const n of [1, 2, 4]) {
    const redis = await startPrivateRedis();
    try {
      const r = await runProduction(bench, {
        orders,
        skus,
        endpoints: 0,
        tag: `workers${n}`,
        timeoutMs: Math.max(120000, orders * 30),
        log,
        workers: n,
        redis: redis ? { url: redis.url, pid: redis.pid } : undefined,
      });
      const conflicts = r.stats.optimistic_conflicts ?? 0;
      log(
        `workers: ${n} process(es): ${r.ops.toFixed(0)} orders/s delivered (${(r.ops / ceiling.ops).toFixed(2)} of the ceiling), ${conflicts} optimistic conflicts; CPU s ${Object.entries(
          r.cpu_seconds,
        )
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')}`,
      );
      runs.push(r);
    } finally {
      await redis?.stop();
    }
  }
  return { skus, ceiling, runs };
}

/**
 * Growth (docs/benchmarks.md): a database of `growthOrders` settled orders made once, then the
 * production-shaped run on a clone of it and on an empty database, interleaved, so the machine's
 * drift falls on both; and what each scheduled read costs on either.
 */
async function growthPhase(bench: BenchEnv): Promise<Results['growth']> {
  const orders = size.productionOrders;
  const skus = Math.min(size.skus, orders);
  log('growth: compiling (npm run build)');
  buildCompiled();
  const reused = o.growthDatabase as string | undefined;
  const grownUrl = reused ? withDatabase(bench.env('growth').DATABASE_URL, reused) : await bench.database('growntpl');
  const grown = reused
    ? await describeGrown(grownUrl)
    : await growDatabase(bench, grownUrl, {
        orders: size.growthOrders,
        seedOrders: Math.min(2000, size.growthOrders),
        skus: 2000,
        days: 25,
        log,
      });
  log(
    `growth: ${grown.orders} orders, ${(grown.database_bytes / 2 ** 30).toFixed(2)} GiB, in ${(grown.seconds.seed + grown.seconds.copy + grown.seconds.analyze).toFixed(0)} s`,
  );
  const emptyUrl = await bench.database('growempty');
  const plans = { empty: await explainReads(emptyUrl), grown: await explainReads(grownUrl) };
  await bench.dropDatabase(emptyUrl);
  for (const [i, p] of plans.grown.entries())
    log(
      `growth: ${p.read}: ${p.ms.toFixed(1)} ms, ${p.buffers} buffers at ${grown.orders} orders (empty: ${plans.empty[i].ms.toFixed(1)} ms, ${plans.empty[i].buffers})${p.history_seq_scans.length ? `; seq scans of ${p.history_seq_scans.join(', ')}` : ''}`,
    );
  const template = grownUrl.split('/').pop()!.split('?')[0];
  const rounds: { empty: ProductionResult; grown: ProductionResult }[] = [];
  for (let k = 1; k <= size.growthRounds; k++) {
    const run = (tag: string, from?: string) =>
      runProduction(bench, {
        orders,
        skus,
        endpoints: 0,
        tag,
        timeoutMs: Math.max(120000, orders * 30),
        log,
        template: from,
      });
    const empty = await run(`growe${k}`);
    const onGrown = await run(`growg${k}`, template);
    log(
      `growth: round ${k}: empty ${empty.ops.toFixed(0)} orders/s, grown ${onGrown.ops.toFixed(0)} (${(onGrown.ops / empty.ops).toFixed(2)})`,
    );
    const io = (p: ProductionResult) =>
      p.table_io
        .slice(0, 5)
        .map((t) => `${t.table} ${Math.round(t.buffers / 1000)}k/${Math.round(t.read / 1000)}k`)
        .join(', ');
    log(`growth: round ${k}: buffers touched/read per table, empty: ${io(empty)}; grown: ${io(onGrown)}`);
    rounds.push({ empty, grown: onGrown });
  }
  if (!o.keep && !reused) await bench.dropDatabase(grownUrl);
  else log(`growth: kept the grown database (--keep): ${grownUrl}`);
  return { grown, rounds, plans };
}

const notify = (p: PipelineResult) =>
  `, ${p.confirmed_events} order.confirmed events written${
    p.notify_ops ? `; their notifications then drained at ${p.notify_ops.toFixed(0)}/s` : ''
  }`;

function figuresOf(r: Results): Figures {
  const f: Figures = {};
  const i = r.intake;
  f.intake_rps = againstCeiling(
    i ? i.ours.rps : null,
    'req/s',
    'ceiling_express_queue_rps',
    i ? i.ceiling.rps : null,
    0.85,
    i
      ? `median of ${i.rounds.length} round(s), ratio per round ${i.rounds.map((x) => (x.ours.rps / x.ceiling.rps).toFixed(2)).join(' / ')}; the durable core alone (express.json + zod + placeOrder, none of the app's middleware) did ${i.core.rps.toFixed(0)} req/s (${(i.core.rps / i.ceiling.rps).toFixed(2)} of the ceiling, p99 ${i.core.p99_ms} ms)`
      : undefined,
  );
  f.intake_p99_ms = atMost(i ? i.ours.p99_ms : null, 'ms', 30, i ? `ceiling p99 ${i.ceiling.p99_ms} ms` : undefined);
  f.e2e_uniform_ops = againstCeiling(
    r.uniform ? r.uniform.ours.ops : null,
    'orders/s',
    'ceiling_worker_txn_ops',
    r.uniform ? r.uniform.ceiling.ops : null,
    1.0,
    r.uniform ? `${r.uniform.ours.orders} orders over ${r.uniform.ours.skus} SKUs${notify(r.uniform.ours)}` : undefined,
  );
  f.e2e_hot_ops = againstCeiling(
    r.hot ? r.hot.ours.ops : null,
    'orders/s',
    'ceiling_worker_txn_hot_ops',
    r.hot ? r.hot.ceiling.ops : null,
    1.0,
    r.hot ? `${r.hot.ours.orders} orders on one SKU${notify(r.hot.ours)}` : undefined,
  );
  f.conflict_rate_hot = atMost(
    r.hot ? r.hot.ours.conflict_rate : null,
    'share',
    0.2,
    r.hot
      ? `${r.hot.ours.optimistic_conflicts}/${r.hot.ours.stock_attempts} attempts lost${
          r.hot.naive
            ? `; a naive one-order-per-transaction optimistic worker lost ${(r.hot.naive.conflict_rate * 100).toFixed(0)} % (${r.hot.naive.ops.toFixed(0)} ops/s)`
            : ''
        }`
      : undefined,
  );
  const prod = r.production;
  const prodNote = (p: ProductionResult) =>
    `${p.orders} orders over ${p.skus} SKUs, API and worker as two compiled processes, ${p.endpoints + 1} webhook target(s): order.confirmed written at ${p.confirmed_ops.toFixed(0)}/s, delivered at ${(p.delivered_per_s / (p.endpoints + 1)).toFixed(0)}/s per target (${p.delivered_per_s.toFixed(0)}/s in all); ${p.receiver_connections} receiver connections; duplicates ${p.targets.reduce((a, t) => a + t.duplicates, 0)}, bad signatures ${p.targets.reduce((a, t) => a + t.bad_signatures, 0)}; failed attempts ${JSON.stringify(p.failed_attempts)}`;
  f.e2e_production_ops = againstCeiling(
    prod ? prod.plain.ops : null,
    'orders/s',
    'ceiling_worker_txn_production_ops',
    prod ? prod.ceiling.ops : null,
    1.0,
    prod ? prodNote(prod.plain) : undefined,
  );
  f.e2e_production_3_endpoints_ops = againstCeiling(
    prod ? prod.endpoints.ops : null,
    'orders/s',
    'ceiling_worker_txn_production_ops',
    prod ? prod.ceiling.ops : null,
    1.0,
    prod ? prodNote(prod.endpoints) : undefined,
  );
  const w = r.workers;
  for (const n of [1, 2, 4]) {
    const run = w?.runs.find((x) => x.workers === n);
    f[`workers_${n}_ops`] = beside(
      run ? run.ops : null,
      'orders/s',
      'ceiling_worker_txn_100_skus_ops',
      w ? w.ceiling.ops : null,
      run
        ? `${run.orders} orders over ${w!.skus} SKUs, ${n} worker process(es), delivered per target; ${run.stats.optimistic_conflicts ?? 0} cross-process optimistic conflicts (${(((run.stats.optimistic_conflicts ?? 0) / run.orders) * 100).toFixed(1)} per 100 orders); CPU s ${Object.entries(
            run.cpu_seconds,
          )
            .map(([k, v]) => `${k} ${v.toFixed(1)}`)
            .join(', ')}`
        : undefined,
    );
  }
  const g = r.growth;
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  f.growth_production_ops = near(
    g ? mean(g.rounds.map((x) => x.grown.ops)) : null,
    'orders/s',
    'same_run_on_empty_database_ops',
    g ? mean(g.rounds.map((x) => x.empty.ops)) : null,
    0.1,
    g
      ? `production-shaped on a database of ${g.grown.orders.toLocaleString('en-US')} settled orders (${(g.grown.database_bytes / 2 ** 30).toFixed(1)} GiB) and on an empty one, interleaved; per round grown/empty ${g.rounds.map((x) => (x.grown.ops / x.empty.ops).toFixed(2)).join(' / ')}`
      : undefined,
  );
  const slowest = g ? [...g.plans.grown].sort((a, b) => b.ms - a.ms)[0] : undefined;
  f.growth_slowest_read_ms = info(
    slowest ? slowest.ms : null,
    'ms',
    slowest
      ? `the slowest scheduled read at ${g!.grown.orders.toLocaleString('en-US')} orders: ${slowest.read} (${slowest.buffers} buffers); seq scans of history tables in any read: ${g!.plans.grown.flatMap((p) => p.history_seq_scans).join(', ') || 'none'}`
      : undefined,
  );
  f.restock_10k_s = atMost(
    r.restock ? r.restock.seconds : null,
    's',
    10,
    r.restock
      ? `${r.restock.orders} backorders, ${r.restock.confirmed_events} order.confirmed events, reserved in seq order: ${r.restock.fifo_ok ? 'yes' : 'NO'}`
      : undefined,
  );
  f.count_1000_ms = info(
    r.count ? r.count.count_ms : null,
    'ms',
    r.count
      ? `one count of ${r.count.items} items (${r.count.count_variances} variances booked) under a load of ${r.count.orders_per_round} orders; ${r.count.confirmed_at_count_start} of them confirmed when it started, ${r.count.confirmed_at_count_end} when it committed`
      : undefined,
  );
  f.count_load_ops = againstCeiling(
    r.count ? r.count.ops_with_count : null,
    'orders/s',
    'same_load_without_count_ops',
    r.count ? r.count.ops_without_count : null,
    0.8,
    r.count
      ? `orders/s of the round with the count; the ceiling is the mean of a round before and a round after without it (${r.count.rounds.map((x) => x.ops.toFixed(0)).join(' / ')})`
      : undefined,
  );
  f.redis_bytes_per_queued_order = atMost(
    r.redis ? r.redis.bytes_per_job : null,
    'B',
    1024,
    r.redis
      ? `${r.redis.jobs} jobs added with addBulk (not HTTP) on ${r.redis.redis === 'shared' ? 'the shared Redis' : `a ${r.redis.redis}`}; MEMORY USAGE of the keys says ${r.redis.key_bytes_per_job.toFixed(0)} B/job`
      : undefined,
  );
  f.api_rss_mb = info(
    i ? i.ours.peak_rss_mb : null,
    'MB',
    i ? `peak RSS of the API process during the measured intake run` : undefined,
  );
  return f;
}

async function machine() {
  const db = createDb(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', 1);
  const r = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  try {
    const pgVersion = (await db.raw('SHOW server_version')).rows[0].server_version;
    const redisVersion = /redis_version:(\S+)/.exec(await r.info('server'))?.[1];
    const cpus = os.cpus();
    return {
      cpu: cpus[0]?.model,
      cores: cpus.length,
      memory_gb: Number((os.totalmem() / 2 ** 30).toFixed(1)),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
      postgresql: pgVersion,
      redis: redisVersion,
    };
  } finally {
    await db.destroy();
    r.disconnect();
  }
}

async function main() {
  if (o.tableFrom) {
    const figures = figuresOf(JSON.parse(readFileSync(String(o.tableFrom), 'utf8')).details);
    process.stdout.write(`${markdownTable(figures)}\n\n`);
    for (const [name, f] of Object.entries(figures)) if (f.note) process.stdout.write(`- ${name}: ${f.note}\n`);
    return;
  }
  const started = new Date();
  const loadStart = os.loadavg();
  log(
    `mode ${o.quick ? 'quick' : 'full'}; phases ${[...only].join(',')}; load average ${loadStart.map((x) => x.toFixed(2)).join(' ')}`,
  );
  const bench = await createBenchEnv();
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned || o.keep) return;
    cleaned = true;
    await bench.cleanup();
  };
  process.once('SIGINT', () => {
    log('interrupted; cleaning up');
    void cleanup().finally(() => process.exit(130));
  });
  const results: Results = {};
  const loads: Record<string, number> = {};
  try {
    // Each phase on a fresh clone of the migrated database, with the Redis keys of the last one gone.
    const between = () => bench.dropPrefixes();
    if (only.has('intake')) {
      loads.intake = load1();
      results.intake = await intakePhase(bench);
      await between();
    }
    if (only.has('redis')) {
      loads.redis = load1();
      const own = o.sharedRedis ? undefined : await startPrivateRedis();
      log(
        `redis: ${size.redisJobs} order jobs waiting, no workers, on ${own ? `a private redis-server ${own.version}` : 'the shared Redis'}`,
      );
      try {
        results.redis = {
          ...(await withContext(
            bench,
            'redis',
            await bench.database('redis'),
            (ctx) => measureQueuedOrderMemory(ctx, size.redisJobs),
            own ? { REDIS_URL: own.url } : {},
          )),
          redis: own ? `private redis-server ${own.version} (default settings)` : 'shared',
        };
      } finally {
        await own?.stop();
      }
      await between();
    }
    if (only.has('uniform')) {
      loads.uniform = load1();
      results.uniform = await pipelinePhase(bench, 'uniform', size.orders, size.skus);
      await between();
    }
    if (only.has('hot')) {
      loads.hot = load1();
      results.hot = await pipelinePhase(bench, 'hot', size.hotOrders, 1);
      await between();
    }
    if (only.has('restock')) {
      loads.restock = load1();
      log(`restock: ${size.restockOrders} backorders on one SKU, then one restock`);
      const url = await bench.database('restock');
      const db = createDb(url, 2);
      const customers = await seedCustomers(db, 100);
      await db.destroy();
      results.restock = await withContext(bench, 'restock', url, (ctx) =>
        runRestock(ctx, customers, {
          orders: size.restockOrders,
          tag: 'RESTOCK',
          timeoutMs: Math.max(120000, size.restockOrders * 30),
          withNotifications: size.withNotifications,
        }),
      );
      log(`restock: ${results.restock.seconds.toFixed(2)} s`);
      await between();
    }
    if (only.has('production')) {
      loads.production = load1();
      results.production = await productionPhase(bench);
    }
    if (only.has('workers')) {
      await between();
      loads.workers = load1();
      results.workers = await workersPhase(bench);
    }
    if (only.has('growth')) {
      await between();
      loads.growth = load1();
      results.growth = await growthPhase(bench);
    }
    if (only.has('count')) {
      await between();
      loads.count = load1();
      log(`count: a 1,000-item count under a load of ${size.countOrders} orders, against the same load without it`);
      const url = await bench.database('count');
      const db = createDb(url, 2);
      const customers = await seedCustomers(db, 100);
      await db.destroy();
      results.count = await withContext(bench, 'count', url, (ctx) =>
        runCount(ctx, customers, {
          orders: size.countOrders,
          items: 1000,
          timeoutMs: Math.max(120000, size.countOrders * 30),
        }),
      );
      log(
        `count: ${results.count.count_ms.toFixed(0)} ms; orders ${results.count.ops_with_count.toFixed(0)}/s with it, ${results.count.ops_without_count.toFixed(0)}/s without (${results.count.ratio.toFixed(2)})`,
      );
    }
  } finally {
    await cleanup();
  }

  const figures = figuresOf(results);
  const config = bench.config('x');
  const out = {
    generated_at: started.toISOString(),
    duration_s: Number(((Date.now() - started.getTime()) / 1000).toFixed(1)),
    mode: o.quick ? 'quick' : 'full',
    machine: {
      ...(await machine()),
      load_average_at_start: loadStart.map((x) => Number(x.toFixed(2))),
      load_average_at_end: os.loadavg().map((x) => Number(x.toFixed(2))),
      load_1m_per_phase: loads,
    },
    sizes: size,
    workers: `in-process: startWorkers(ctx, ${size.withNotifications ? 'every queue' : "['orders','restocks','maintenance']"}) from src/app/workers.ts, with its outbox relay and schedulers, in the bench process${
      size.withNotifications ? '' : '; the notifications worker runs after the clock stops (notify_* details)'
    }; the ceiling worker is also in-process`,
    settings: {
      ORDER_CONCURRENCY: config.ORDER_CONCURRENCY,
      DB_POOL_MAX: config.DB_POOL_MAX,
      NOTIFY_CONCURRENCY: config.NOTIFY_CONCURRENCY,
      ...pickTuning(config),
    },
    figures,
    details: results,
  };
  writeFileSync(o.out, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`\n${markdownTable(figures)}\n\n`);
  for (const [name, f] of Object.entries(figures)) if (f.note) process.stdout.write(`- ${name}: ${f.note}\n`);
  process.stdout.write(
    `\nmachine: ${out.machine.cores} × ${out.machine.cpu}, ${out.machine.memory_gb} GB, Node ${out.machine.node}, PostgreSQL ${out.machine.postgresql}, Redis ${out.machine.redis}; load average ${loadStart[0].toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end\nwritten ${path.relative(process.cwd(), o.out)} in ${out.duration_s} s\n`,
  );
  const broken = [results.uniform?.ours, results.hot?.ours, results.restock, results.count].filter(
    (x) => x && !x.invariants_ok,
  );
  if (broken.length) {
    process.stderr.write(`INVARIANTS BROKEN: ${JSON.stringify(broken.map((b) => b!.problems))}\n`);
    process.exitCode = 1;
  }
  const missing = [results.uniform?.ours, results.hot?.ours, results.restock].filter(
    (x) => x && x.confirmed_events !== x.orders,
  );
  if (missing.length || (results.restock && !results.restock.fifo_ok)) {
    process.stderr.write('EVENTS MISSING OR FIFO BROKEN (see details in the results file)\n');
    process.exitCode = 1;
  }
}

/** Tuning variables of src/platform/config.ts that exist in this build (batcher knobs and the like). */
function pickTuning(config: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([k]) => /^ORDER_BATCH|^INTAKE_/.test(k)));
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
