// `npx tsx bench/memory.ts [--compiled] [--seconds N] [--connections N]`: where the API process's
// memory goes at idle and under the intake load (the intake phase's server, body and
// connections). Samples VmRSS from /proc and the process's own figures from /metrics (V8 heap,
// external and array buffers) once a second; prints one MEMORY line of JSON. Figures: docs/benchmarks.md.
import './lib/quiet';
import { readFileSync } from 'node:fs';
import { createDb } from '../src/platform/db';
import { buildCompiled, load, startServer } from './lib/intake';
import { BENCH_KEYS, createBenchEnv, seedCustomers, seedProducts } from './lib/setup';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const compiled = process.argv.includes('--compiled');
const seconds = arg('--seconds', 10);
const connections = arg('--connections', 50);
const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;

function status(pid: number): Record<string, number> {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
  return { rss: mb(kb('VmRSS')), rss_anon: mb(kb('RssAnon')), rss_file: mb(kb('RssFile')), hwm: mb(kb('VmHWM')) };
}

async function scrape(port: number): Promise<Record<string, number>> {
  const text = await (
    await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${BENCH_KEYS.operator}` } })
  ).text();
  const v = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const space = (s: string) =>
    Number(new RegExp(`^nodejs_heap_space_size_used_bytes\\{space="${s}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    heap_used: mb(v('nodejs_heap_size_used_bytes')),
    heap_total: mb(v('nodejs_heap_size_total_bytes')),
    external: mb(v('nodejs_external_memory_bytes')),
    old_space_used: mb(space('old')),
    new_space_used: mb(space('new')),
    code_space_used: mb(space('code')),
  };
}

async function main() {
  if (compiled) buildCompiled();
  const bench = await createBenchEnv();
  try {
    const url = await bench.database('memory');
    const db = createDb(url, 2);
    const [customer] = await seedCustomers(db, 1);
    const [sku] = await seedProducts(db, 'MEM', 1, 1000000);
    await db.destroy();
    const body = { customer_id: customer, lines: [{ sku, quantity: 1 }] };
    const s = await startServer('api-server', bench.env(bench.prefix('memory'), { DATABASE_URL: url }), { compiled });
    const pid = s.child.pid!;
    try {
      await new Promise((r) => setTimeout(r, 3000));
      const idle = { ...status(pid), ...(await scrape(s.port)) };
      const samples: Record<string, number>[] = [];
      const timer = setInterval(() => {
        void scrape(s.port).then(
          (m) => samples.push({ ...status(pid), ...m }),
          () => undefined,
        );
      }, 1000);
      await load(s.port, { connections, seconds: 2, body, key: BENCH_KEYS.intake });
      const r = await load(s.port, { connections, seconds, body, key: BENCH_KEYS.intake, pid });
      clearInterval(timer);
      await new Promise((r2) => setTimeout(r2, 5000));
      const after = { ...status(pid), ...(await scrape(s.port)) };
      const peak = (k: string) => Math.max(...samples.map((x) => x[k]));
      process.stdout.write(
        `MEMORY ${JSON.stringify({
          compiled,
          node_options: process.env.NODE_OPTIONS ?? '',
          connections,
          rps: Math.round(r.rps),
          idle,
          load_peak: Object.fromEntries(Object.keys(idle).map((k) => [k, peak(k)])),
          after_5s_idle: after,
        })}\n`,
      );
    } finally {
      await s.stop();
    }
  } finally {
    await bench.cleanup();
  }
}

void main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  },
);
