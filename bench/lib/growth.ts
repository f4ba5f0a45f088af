import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startWorkers } from '../../src/app/workers';
import { cancelOrder, fulfillOrder } from '../../src/orders';
import {
  alertReadings,
  checkpointLedger,
  inventoryReport,
  ledgerReport,
  ordersReport,
  replenishmentReport,
} from '../../src/reports';
import { stockByLocation } from '../../src/inventory';
import { listOrders, listOrdersQuerySchema } from '../../src/orders';
import { eventsQuerySchema, listEvents } from '../../src/events';
import { createDb } from '../../src/platform/db';
import { orderMix, seedCustomers, seedProducts, submitOrders, until, withContext, type BenchEnv } from './setup';

/**
 * A database grown to `orders` settled orders, the way a shop's would be after weeks of trade: a
 * seed of real orders is made by the real code (placed, processed, notified over a signed webhook,
 * then fulfilled or cancelled, their notifications delivered), then copied by SQL, every copy
 * with ids of its own and its timestamps moved back, over the last `days` days (inside
 * EVENT_RETENTION_DAYS, so nothing of it is pruned during a measurement). Each table is copied
 * column by column from information_schema, so a column added later is copied too:
 * uuid keys are remapped (md5(id:copy)), `seq` and `sequence` offset, business ids suffixed,
 * timestamps shifted. A final adjustment per (SKU, location) makes the ledger hold again (the
 * copies' sales are units the stock never had).
 */
export interface GrowthResult {
  orders: number;
  seed_orders: number;
  copies: number;
  seconds: { seed: number; copy: number; analyze: number };
  rows: Record<string, number>;
  database_bytes: number;
}

const COPIED = [
  'orders',
  'order_lines',
  'order_line_allocations',
  'order_history',
  'processing_attempts',
  'stock_movements',
  'events',
  'notifications',
  'delivery_attempts',
  'shipments',
] as const;
/** uuid columns that are the copied rows' own ids or point at copied rows. */
const REMAP = new Set(['id', 'order_id', 'event_id', 'delivery_id', 'previous_event_id']);
/** Business ids that are unique across orders. */
const SUFFIX = new Set(['external_ref', 'shipment_id']);
const ONLY: Partial<Record<(typeof COPIED)[number], string>> = {
  stock_movements: 'order_id IS NOT NULL',
  events: "subject_type = 'order'",
};

/** A receiver that answers 204 to every webhook (the seed's notifications must be delivered). */
async function sink() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    close: () => new Promise((r) => server.close(r)),
  };
}

async function seedSettled(bench: BenchEnv, url: string, n: number, skus: number): Promise<void> {
  const db = createDb(url, 2);
  const customers = await seedCustomers(db, 200);
  const skuList = await seedProducts(db, 'GROW', skus, 1_000_000);
  await db.destroy();
  const rx = await sink();
  try {
    await withContext(
      bench,
      'growseed',
      url,
      async (ctx) => {
        const workers = await startWorkers(ctx);
        try {
          const mix = orderMix(n, skuList);
          const { ids } = await submitOrders(
            ctx,
            mix.map((sku, i) => ({ customer_id: customers[i % customers.length], sku, quantity: 1 + (i % 3) })),
          );
          const settledCount = async (statuses: string[]) =>
            Number((await ctx.db('orders').whereIn('status', statuses).count<{ n: string }[]>({ n: '*' }))[0].n);
          await until(async () => (await settledCount(['confirmed'])) >= n, 300_000, 'seed orders confirmed', 200);
          // Nine in ten are shipped in full, one in ten cancelled: every seed order ends settled.
          for (let i = 0; i < ids.length; i += 50)
            await Promise.all(
              ids.slice(i, i + 50).map((id, j) => ((i + j) % 10 === 9 ? cancelOrder(ctx, id) : fulfillOrder(ctx, id))),
            );
          await until(
            async () =>
              Number(
                (await ctx.db('notifications').whereNot({ status: 'delivered' }).count<{ n: string }[]>({ n: '*' }))[0]
                  .n,
              ) === 0 && (await ctx.db('notifications').count<{ n: string }[]>({ n: '*' }))[0].n !== '0',
            300_000,
            'seed notifications delivered',
            200,
          );
        } finally {
          await workers.close();
        }
      },
      {
        NOTIFY_WEBHOOK_URL: rx.url,
        WEBHOOK_SECRET: `whsec_${randomBytes(24).toString('base64')}`,
        WEBHOOK_PRIVATE_TARGETS: 'allow',
      },
    );
  } finally {
    await rx.close();
  }
}

/** The INSERT … SELECT that makes copies `from`…`to` of a table's seed rows. */
async function copyStatement(
  c: pg.Client,
  table: string,
  step: { seq: number; sequence: number; seconds: number },
): Promise<string> {
  const { rows } = await c.query<{ column_name: string; data_type: string; column_default: string | null }>(
    `SELECT column_name, data_type, column_default FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  const cols: string[] = [];
  const exprs: string[] = [];
  for (const col of rows) {
    const name = col.column_name;
    const q = `t."${name}"`;
    if (col.data_type === 'bigint' && name === 'id' && col.column_default?.startsWith('nextval(')) continue;
    cols.push(`"${name}"`);
    if (col.data_type === 'uuid' && REMAP.has(name)) exprs.push(`pg_temp.remap(${q}, k)`);
    else if (table === 'events' && name === 'subject_id') exprs.push(`pg_temp.remap(${q}::uuid, k)::text`);
    else if (name === 'seq') exprs.push(`${q} + k * ${step.seq}::bigint`);
    else if (table === 'events' && name === 'sequence') exprs.push(`${q} + k * ${step.sequence}::bigint`);
    else if (SUFFIX.has(name)) exprs.push(`${q} || '~' || k`);
    else if (col.data_type === 'timestamp with time zone') exprs.push(`${q} - k * interval '${step.seconds} seconds'`);
    else exprs.push(q);
  }
  const only = ONLY[table as keyof typeof ONLY];
  return `INSERT INTO ${table} (${cols.join(', ')})
          SELECT ${exprs.join(', ')} FROM seed_${table} t, generate_series($1::int, $2::int) k${only ? ` WHERE ${only.replace(/(\w+) /, 't.$1 ')}` : ''}`;
}

/**
 * Grows `url` to `orders` settled orders (see GrowthResult). `seedOrders` real orders are made
 * first; the rest are copies of them, in chunks of copies, one transaction per chunk and table.
 */
export async function growDatabase(
  bench: BenchEnv,
  url: string,
  opts: { orders: number; seedOrders: number; skus: number; days: number; log: (m: string) => void },
): Promise<GrowthResult> {
  let t = Date.now();
  opts.log(`growth: seeding ${opts.seedOrders} real orders (placed, confirmed, notified, then fulfilled or cancelled)`);
  await seedSettled(bench, url, opts.seedOrders, opts.skus);
  const seedSeconds = (Date.now() - t) / 1000;
  const copies = Math.max(0, Math.ceil(opts.orders / opts.seedOrders) - 1);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t = Date.now();
  try {
    await c.query(`CREATE FUNCTION pg_temp.remap(u uuid, k int) RETURNS uuid LANGUAGE sql IMMUTABLE
                     AS $$ SELECT CASE WHEN u IS NULL THEN NULL ELSE md5(u::text || ':' || k)::uuid END $$`);
    for (const table of COPIED) await c.query(`CREATE TEMP TABLE seed_${table} AS SELECT * FROM ${table}`);
    const { rows: m } = await c.query<{ seq: string; sequence: string }>(
      `SELECT (SELECT max(seq) FROM orders) AS seq, (SELECT COALESCE(max(sequence), 0) FROM events) AS sequence`,
    );
    const step = {
      seq: Number(m[0].seq),
      sequence: Number(m[0].sequence),
      seconds: (opts.days * 86400) / Math.max(copies, 1),
    };
    const statements: string[] = [];
    for (const table of COPIED) statements.push(await copyStatement(c, table, step));
    const chunk = 50;
    for (let from = 1; from <= copies; from += chunk) {
      const to = Math.min(copies, from + chunk - 1);
      await c.query('BEGIN');
      for (const sql of statements) await c.query(sql, [from, to]);
      await c.query('COMMIT');
      opts.log(`growth: ${((to + 1) * opts.seedOrders).toLocaleString('en-US')} orders`);
    }
    // Numbers handed out from here on go above every copy's.
    await c.query(`SELECT setval('order_seq', (SELECT max(seq) FROM orders))`);
    await c.query(`SELECT setval('event_sequence', GREATEST((SELECT max(sequence) FROM events), 1))`);
    // The copies' movements are units the stock never had: one adjustment per (SKU, location) balances them.
    await c.query(`INSERT INTO stock_movements (sku, location, type, quantity, reason, actor_role, actor_name)
      SELECT lv.sku, lv.location, 'adjustment', (lv.on_hand - COALESCE(sum(mv.quantity), 0))::int, 'history fill (bench)', 'system', 'bench'
        FROM stock_levels lv
        LEFT JOIN stock_movements mv ON mv.sku = lv.sku AND mv.location = lv.location
             AND mv.type IN ('initial','receipt','sale','adjustment','return','count','transfer_out','transfer_in')
       GROUP BY lv.sku, lv.location, lv.on_hand
      HAVING lv.on_hand <> COALESCE(sum(mv.quantity), 0)`);
  } finally {
    await c.end();
  }
  // What the checkpoint-ledger job of a running deployment would have done meanwhile.
  const cdb = createDb(url, 1);
  try {
    const last = Number((await cdb('stock_movements').max({ id: 'id' }))[0].id);
    for (let i = 0; i < 50 && Number((await cdb('ledger_checkpoint').first()).upto_id) < last; i++) {
      await checkpointLedger(cdb);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await cdb.destroy();
  }
  const copySeconds = (Date.now() - t) / 1000;
  t = Date.now();
  const a = new pg.Client({ connectionString: url });
  await a.connect();
  try {
    await a.query('VACUUM ANALYZE');
  } finally {
    await a.end();
  }
  const analyzeSeconds = (Date.now() - t) / 1000;
  return {
    ...(await describeGrown(url)),
    seed_orders: opts.seedOrders,
    copies,
    seconds: { seed: seedSeconds, copy: copySeconds, analyze: analyzeSeconds },
  };
}

/** What an existing grown database holds (`--growth-database`): its rows and size, no timings. */
export async function describeGrown(url: string): Promise<GrowthResult> {
  const a = new pg.Client({ connectionString: url });
  await a.connect();
  try {
    const rows: Record<string, number> = {};
    for (const table of COPIED) rows[table] = Number((await a.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    const size = Number((await a.query('SELECT pg_database_size(current_database()) AS b')).rows[0].b);
    return {
      orders: rows.orders,
      seed_orders: 0,
      copies: 0,
      seconds: { seed: 0, copy: 0, analyze: 0 },
      rows,
      database_bytes: size,
    };
  } finally {
    await a.end();
  }
}

export interface PlanReading {
  read: string;
  ms: number;
  /** Shared buffers hit + read by the statement(s): what a refresh costs, whatever the machine. */
  buffers: number;
  statements: number;
  /** Seq Scan nodes over a table of the order history (orders, order_lines, order_history, …). */
  history_seq_scans: string[];
  plan: string;
}

const HISTORY_TABLES = new Set([...COPIED, 'returns', 'endpoint_deliveries']);

/**
 * What each read that runs on a schedule or per refresh costs on this database: the dashboard's
 * data, the reports, /metrics's alert gauges, the first page of orders and of the events feed.
 * Each read's statements are captured from knex and run again under EXPLAIN (ANALYZE, BUFFERS).
 */
export async function explainReads(url: string): Promise<PlanReading[]> {
  const db = createDb(url, 2);
  const captured: { sql: string; bindings: unknown[] }[] = [];
  const onQuery = (q: { sql: string; bindings?: unknown[] }) => {
    if (!/^\s*(explain|begin|commit|rollback|select pg_advisory)/i.test(q.sql))
      captured.push({ sql: q.sql, bindings: q.bindings ?? [] });
  };
  db.on('query', onQuery);
  const day = (d: number) => new Date(Date.now() + d * 86_400_000).toISOString().slice(0, 10);
  const reads: [string, () => Promise<unknown>][] = [
    ['dashboard: orders report, last 14 days', () => ordersReport(db, { from: day(-13), to: day(0) })],
    ['dashboard: inventory report, 25 lowest', () => inventoryReport(db, { limit: 25 })],
    ['dashboard: ledger report', () => ledgerReport(db)],
    ['dashboard: stock by location', () => stockByLocation(db)],
    ['metrics: alert gauges', () => alertReadings(db, 20)],
    ['reports: replenishment (28 days)', () => replenishmentReport(db, { days: 28, cover_days: 14 })],
    ['GET /v1/orders (first page)', () => listOrders(db, listOrdersQuerySchema.parse({}))],
    ['GET /v1/orders?status=cancelled', () => listOrders(db, listOrdersQuerySchema.parse({ status: 'cancelled' }))],
    ['GET /v1/orders?q=<e-mail>', () => listOrders(db, listOrdersQuerySchema.parse({ q: 'bench-x@example.test' }))],
    ['GET /v1/events (first page)', () => listEvents(db, eventsQuerySchema.parse({}))],
  ];
  const out: PlanReading[] = [];
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  // knex writes `?` placeholders; pg wants $1, $2 …
  const native = (sql: string) => (/\$\d/.test(sql) ? sql : (db.client as any).positionBindings(sql));
  try {
    for (const [read, run] of reads) {
      captured.length = 0;
      await run();
      const statements = [...captured];
      let ms = 0;
      let buffers = 0;
      const scans: string[] = [];
      const plans: string[] = [];
      for (const s of statements) {
        const sql = native(s.sql);
        const { rows } = await c.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`, s.bindings);
        const plan = rows[0]['QUERY PLAN'][0];
        ms += plan['Execution Time'] + (plan['Planning Time'] ?? 0);
        const walk = (n: any) => {
          if (n['Node Type'] === 'Seq Scan' && HISTORY_TABLES.has(n['Relation Name'])) scans.push(n['Relation Name']);
          for (const c of n.Plans ?? []) walk(c);
        };
        walk(plan.Plan);
        buffers += (plan.Plan['Shared Hit Blocks'] ?? 0) + (plan.Plan['Shared Read Blocks'] ?? 0);
        const text = await c.query(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) ${sql}`, s.bindings);
        plans.push(text.rows.map((r: any) => r['QUERY PLAN']).join('\n'));
      }
      out.push({
        read,
        ms,
        buffers,
        statements: statements.length,
        history_seq_scans: scans,
        plan: plans.join('\n---\n'),
      });
    }
  } finally {
    db.off('query', onQuery);
    await c.end();
    await db.destroy();
  }
  return out;
}
