// `npm run loadgen -- --orders N --skus K --concurrency C`: a load generator for people, against a
// running orderflow (`npm start`). It seeds customers and products through the API, submits orders
// at C concurrent requests with a live progress bar and rates, then follows them until they settle.
import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';

const positive = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
};
const natural = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('an integer >= 0');
  return n;
};
const share = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('a number from 0 to 1');
  return n;
};

const program = new Command('loadgen')
  .description('Seeds customers and products through the API, then submits orders and follows them until they settle.')
  .addOption(new Option('--url <url>', 'orderflow base URL').default('http://127.0.0.1:3000').env('LOADGEN_URL'))
  .addOption(
    new Option('--key <key>', 'intake API key (orders, customers)').default('dev-intake-key').env('LOADGEN_KEY'),
  )
  .addOption(
    new Option('--operator-key <key>', 'operator API key (products, reports)')
      .default('dev-operator-key')
      .env('LOADGEN_OPERATOR_KEY'),
  )
  .addOption(new Option('--orders <n>', 'orders to submit').default(1000).argParser(positive))
  .addOption(new Option('--skus <n>', 'products to create and order from').default(100).argParser(positive))
  .addOption(new Option('--concurrency <n>', 'requests in flight').default(50).argParser(positive))
  .addOption(new Option('--customers <n>', 'customers to create').default(20).argParser(positive))
  .addOption(new Option('--stock <n>', 'initial stock per SKU (default: enough for every order)').argParser(natural))
  .addOption(
    new Option('--lines <n>', 'at most this many lines per order (distinct SKUs)').default(1).argParser(positive),
  )
  .addOption(new Option('--quantity <n>', 'at most this many units per line').default(1).argParser(positive))
  .addOption(new Option('--hot <share>', 'share of lines that go to the first SKU').default(0).argParser(share))
  .addOption(new Option('--reject', 'ask for on_insufficient_stock=reject instead of backorder'))
  .addOption(
    new Option('--rate <rps>', 'cap on orders per second (0: as fast as the concurrency allows)')
      .default(0)
      .argParser(natural),
  )
  .addOption(new Option('--no-wait', 'do not follow the orders until they settle'))
  .addOption(new Option('--timeout <s>', 'seconds to wait for the orders to settle').default(300).argParser(positive))
  .parse();

const o = program.opts();
const base = new URL(o.url);
const agent = new (base.protocol === 'https:' ? https : http).Agent({ keepAlive: true, maxSockets: o.concurrency });
const run = randomBytes(3).toString('hex');

interface Res {
  status: number;
  body: any;
  ms: number;
}

function request(method: string, path: string, key: string, body?: unknown): Promise<Res> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = (base.protocol === 'https:' ? https : http).request(
      new URL(path, base),
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${key}`,
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: any = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, ms: performance.now() - started });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('timed out after 30 s')));
    req.end(payload);
  });
}

/** Runs `task(i)` for i in [0, n) with `concurrency` in flight, at most `rate` starts per second. */
async function pool(n: number, concurrency: number, rate: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        if (rate > 0) {
          const due = t0 + (i / rate) * 1000;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        await task(i);
      }
    }),
  );
}

/** Orders per second over the last few seconds (for the live bar). */
class Rate {
  private marks: number[] = [];
  hit(): void {
    this.marks.push(performance.now());
  }
  perSecond(windowMs = 3000): number {
    const now = performance.now();
    while (this.marks.length && this.marks[0] < now - windowMs) this.marks.shift();
    const span = Math.min(windowMs, now - (this.first ?? now));
    return span > 0 ? (this.marks.length * 1000) / span : 0;
  }
  first: number | undefined;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const say = (s: string) => process.stdout.write(`${s}\n`);

function bars(): cliProgress.MultiBar {
  return new cliProgress.MultiBar(
    {
      format: ' {what} |{bar}| {value}/{total} {extra}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      noTTYOutput: !process.stdout.isTTY,
      notTTYSchedule: 2000,
      fps: 8,
    },
    cliProgress.Presets.shades_classic,
  );
}

async function seed(what: string, n: number, make: (i: number) => Promise<Res>): Promise<string[]> {
  const out: string[] = new Array(n);
  const mb = bars();
  const bar = mb.create(n, 0, { what: what.padEnd(10), extra: '' });
  let failed = 0;
  await pool(n, Math.min(o.concurrency, 20), 0, async (i) => {
    const r = await make(i);
    if (r.status !== 201) {
      failed++;
      if (failed === 1) {
        mb.stop();
        throw new Error(`creating ${what} answered ${r.status}: ${JSON.stringify(r.body)}`);
      }
    }
    out[i] = r.body.id ?? r.body.sku;
    bar.increment();
  });
  mb.stop();
  return out;
}

async function main() {
  const health = await request('GET', '/healthz', o.key).catch((err) => {
    throw new Error(`cannot reach ${o.url}: ${err.message} (is \`npm start\` running?)`);
  });
  if (health.status !== 200) throw new Error(`${o.url}/healthz answered ${health.status}`);
  // By default enough for every order whatever the mix, so that they all confirm; --stock 0 makes backorders.
  const stock = o.stock ?? o.orders * o.lines * o.quantity;
  say(`orderflow load generator → ${o.url}  (run ${run})`);
  say(`seeding ${o.customers} customers and ${o.skus} products with ${fmt(stock)} units each`);
  const customers = await seed('customers', o.customers, (i) =>
    request('POST', '/v1/customers', o.key, {
      email: `loadgen-${run}-${i}@example.test`,
      name: `Loadgen ${run} #${i}`,
    }),
  );
  const skus = await seed('products', o.skus, (i) =>
    request('POST', '/v1/products', o.operatorKey, {
      sku: `LG-${run}-${String(i).padStart(5, '0')}`,
      name: `Loadgen ${i}`,
      price_cents: 100 + (i % 900),
      initial_stock: stock,
    }),
  );

  const pick = () => (o.hot > 0 && Math.random() < o.hot ? 0 : Math.floor(Math.random() * skus.length));
  const from = new Date(Date.now() - 1000).toISOString();
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const rate = new Rate();
  let accepted = 0;
  // external_ref is unique per key name (change 7): each order has its own.
  let placed = 0;
  say(
    `submitting ${fmt(o.orders)} orders at ${o.concurrency} concurrent requests${o.rate ? `, at most ${o.rate}/s` : ''}`,
  );
  const mb = bars();
  const bar = mb.create(o.orders, 0, { what: 'submitted ', extra: '' });
  const t0 = performance.now();
  rate.first = t0;
  const tick = setInterval(() => {
    const lat = [...latencies.slice(-2000)].sort((a, b) => a - b);
    bar.update({
      extra: `${fmt(rate.perSecond())} orders/s now, ${fmt(accepted / ((performance.now() - t0) / 1000))} avg | p99 ${percentile(lat, 99).toFixed(0)} ms | errors ${[...errors.values()].reduce((a, b) => a + b, 0)}`,
    });
  }, 250);
  await pool(o.orders, o.concurrency, o.rate, async () => {
    const n = 1 + Math.floor(Math.random() * Math.min(o.lines, skus.length));
    const chosen = new Set<number>();
    while (chosen.size < n) chosen.add(chosen.size === 0 ? pick() : Math.floor(Math.random() * skus.length));
    const body = {
      customer_id: customers[Math.floor(Math.random() * customers.length)],
      lines: [...chosen].map((s) => ({ sku: skus[s], quantity: 1 + Math.floor(Math.random() * o.quantity) })),
      on_insufficient_stock: o.reject ? 'reject' : 'backorder',
      external_ref: `loadgen-${run}-${++placed}`,
    };
    try {
      const r = await request('POST', '/v1/orders', o.key, body);
      if (r.status === 202) {
        accepted++;
        latencies.push(r.ms);
        rate.hit();
      } else {
        const k = `${r.status} ${r.body?.error?.code ?? ''}`.trim();
        errors.set(k, (errors.get(k) ?? 0) + 1);
      }
    } catch (err) {
      const k = (err as Error).message;
      errors.set(k, (errors.get(k) ?? 0) + 1);
    }
    bar.increment();
  });
  clearInterval(tick);
  const submitSeconds = (performance.now() - t0) / 1000;
  mb.stop();
  const sorted = latencies.sort((a, b) => a - b);
  say(
    `accepted ${fmt(accepted)} of ${fmt(o.orders)} in ${submitSeconds.toFixed(1)} s: ${fmt(accepted / submitSeconds)} orders/s, ` +
      `latency p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${percentile(sorted, 100).toFixed(0)} ms`,
  );
  for (const [k, n] of errors) say(`  ${fmt(n)} × ${k}`);

  let settledOk = true;
  if (o.wait && accepted > 0) {
    // Orders created since the start (this run's, plus any other traffic) by status, from the operator report.
    const report = async () =>
      (await request('GET', `/v1/reports/orders?from=${encodeURIComponent(from)}`, o.operatorKey)).body;
    const first = await report();
    if (!first?.by_status) {
      say(
        `cannot follow settlement: /v1/reports/orders answered ${JSON.stringify(first).slice(0, 200)} (is --operator-key right?)`,
      );
    } else {
      const mb2 = bars();
      const sbar = mb2.create(first.orders, 0, { what: 'settled   ', extra: '' });
      const deadline = performance.now() + o.timeout * 1000;
      const srate = { last: 0, at: performance.now(), perSecond: 0 };
      let last = first;
      for (;;) {
        last = await report();
        const settled = last.orders - last.by_status.received;
        const now = performance.now();
        if (now - srate.at >= 1000) {
          srate.perSecond = ((settled - srate.last) * 1000) / (now - srate.at);
          srate.last = settled;
          srate.at = now;
        }
        sbar.setTotal(last.orders);
        sbar.update(settled, {
          extra: `${fmt(srate.perSecond)} settled/s | confirmed ${fmt(last.by_status.confirmed)} waiting ${fmt(last.by_status.awaiting_stock)} rejected ${fmt(last.by_status.rejected)} failed ${fmt(last.by_status.failed)}`,
        });
        if (last.by_status.received === 0) break;
        if (now > deadline) {
          settledOk = false;
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      mb2.stop();
      const total = (performance.now() - t0) / 1000;
      say(
        settledOk
          ? `all ${fmt(last.orders)} orders settled ${total.toFixed(1)} s after the first submission: ${fmt(last.orders / total)} orders/s end to end`
          : `${fmt(last.by_status.received)} orders still received after ${o.timeout} s`,
      );
      say(
        `by status: ${Object.entries(last.by_status)
          .filter(([, n]) => (n as number) > 0)
          .map(([s, n]) => `${s} ${fmt(n as number)}`)
          .join(', ')}`,
      );
    }
  }
  agent.destroy();
  process.exitCode = accepted === o.orders && settledOk ? 0 : 1;
}

main().catch((err) => {
  process.stderr.write(`loadgen: ${(err as Error).message}\n`);
  agent.destroy();
  process.exit(1);
});
