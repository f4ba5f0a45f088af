import type { Queue } from 'bullmq';
import type { Db, Executor } from '../platform/db';
import { UnavailableError, ValidationError } from '../platform/errors';
import { ORDER_STATUSES } from '../orders';
import type {
  InventoryReport,
  InventoryRow,
  LedgerReport,
  LedgerRow,
  OrdersReport,
  OrdersReportQuery,
  QueueCounts,
  QueuesReport,
  ReplenishmentReport,
  ReplenishmentRow,
} from './reports.schemas';

// Every report is one or two aggregate queries: PostgreSQL sums, Node only shapes the answer.

const DAY_MS = 86_400_000;
const MAX_DAYS = 3660;
const isDate = (v: string) => /^\d{4}-\d{2}-\d{2}$/.test(v);

/** `from` inclusive; `to` exclusive, except that a bare date includes that whole day. */
export function reportWindow(q: OrdersReportQuery): { from: Date | null; to: Date | null } {
  const from = q.from === undefined ? null : new Date(isDate(q.from) ? `${q.from}T00:00:00Z` : q.from);
  const to =
    q.to === undefined ? null : new Date(isDate(q.to) ? Date.parse(`${q.to}T00:00:00Z`) + DAY_MS : Date.parse(q.to));
  const details = [];
  if (from && Number.isNaN(from.getTime())) details.push({ path: 'query.from', message: 'is not a valid date' });
  if (to && Number.isNaN(to.getTime())) details.push({ path: 'query.to', message: 'is not a valid date' });
  if (!details.length && from && to && from >= to) details.push({ path: 'query.to', message: 'must be after from' });
  if (!details.length && from && to && to.getTime() - from.getTime() > MAX_DAYS * DAY_MS) {
    details.push({ path: 'query.to', message: `the window may span at most ${MAX_DAYS} days` });
  }
  if (details.length)
    throw new ValidationError(`invalid query: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
  return { from, to };
}

/**
 * Revenue: the orders sold, part 1's confirmed + completed and, between them, part 2's
 * partially_shipped (shipping the first parcel must not take an order out of revenue).
 */
const REVENUE = `COALESCE(sum(total_cents) FILTER (WHERE status IN ('confirmed', 'partially_shipped', 'completed')), 0)::bigint`;

/** Orders created in the window: counts by (current) status, revenue, and a row per UTC day. */
export async function ordersReport(db: Db, q: OrdersReportQuery): Promise<OrdersReport> {
  const { from, to } = reportWindow(q);
  const where = `(?::timestamptz IS NULL OR created_at >= ?::timestamptz) AND (?::timestamptz IS NULL OR created_at < ?::timestamptz)`;
  const bounds = [from, from, to, to];
  const statuses = await db.raw(
    `SELECT status, count(*)::int AS orders, ${REVENUE} AS revenue_cents FROM orders WHERE ${where} GROUP BY status`,
    bounds,
  );
  // Days without orders are filled in: over the whole window when both ends are given, else
  // between the first and the last order inside it (so `from=2000-01-01` stays cheap).
  const lastDay = to ? new Date(to.getTime() - 1) : null;
  const bounded = !!(from && to);
  const days = await db.raw(
    `WITH d AS (
       SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*)::int AS orders, ${REVENUE} AS revenue_cents
         FROM orders WHERE ${where} GROUP BY 1)
     SELECT to_char(g.day, 'YYYY-MM-DD') AS day, COALESCE(d.orders, 0)::int AS orders, COALESCE(d.revenue_cents, 0)::bigint AS revenue_cents
       FROM generate_series(
              CASE WHEN ?::boolean THEN (?::timestamptz AT TIME ZONE 'UTC')::date
                   ELSE GREATEST((?::timestamptz AT TIME ZONE 'UTC')::date, (SELECT min(day) FROM d)) END,
              CASE WHEN ?::boolean THEN (?::timestamptz AT TIME ZONE 'UTC')::date
                   ELSE LEAST((?::timestamptz AT TIME ZONE 'UTC')::date, (SELECT max(day) FROM d)) END,
              interval '1 day') AS g(day)
       LEFT JOIN d ON d.day = g.day::date
      ORDER BY g.day`,
    [...bounds, bounded, from, from, bounded, lastDay, lastDay],
  );
  const by_status = Object.fromEntries(ORDER_STATUSES.map((s) => [s, 0])) as OrdersReport['by_status'];
  let orders = 0;
  let revenue = 0;
  for (const r of statuses.rows) {
    by_status[r.status as keyof typeof by_status] = r.orders;
    orders += r.orders;
    revenue += Number(r.revenue_cents);
  }
  return {
    from: from?.toISOString() ?? null,
    to: to?.toISOString() ?? null,
    orders,
    revenue_cents: revenue,
    by_status,
    per_day: days.rows.map((r: any) => ({ day: r.day, orders: r.orders, revenue_cents: Number(r.revenue_cents) })),
  };
}

/** Per SKU, lowest available first: stock figures and how many orders wait for it. */
/**
 * Stock per SKU (or, `by: 'location'`, per SKU and location), lowest available first: available
 * counts active locations only, and is 0 while lines wait on the SKU.
 */
export async function inventoryReport(
  db: Db,
  opts: { limit?: number; by?: 'sku' | 'location' } = {},
): Promise<InventoryReport> {
  const perLocation = opts.by === 'location';
  const { rows } = await db.raw(
    `WITH w AS (SELECT sku, count(DISTINCT order_id) AS orders FROM order_lines WHERE waiting AND NOT reserved GROUP BY sku),
          v AS (SELECT lv.sku, lv.location, lv.on_hand, lv.reserved,
                       CASE WHEN loc.active THEN lv.on_hand - lv.reserved ELSE 0 END AS free
                  FROM stock_levels lv JOIN locations loc ON loc.code = lv.location)
     SELECT s.sku, ${perLocation ? 'v.location,' : ''} p.name,
            ${perLocation ? 'v.on_hand, v.reserved' : 's.on_hand, s.reserved'}, s.backordered,
            CASE WHEN s.backordered > 0 THEN 0
                 ELSE ${perLocation ? 'v.free' : '(SELECT COALESCE(sum(x.free), 0) FROM v x WHERE x.sku = s.sku)'} END::bigint AS available,
            COALESCE(w.orders, 0)::int AS waiting_orders
       FROM stock s
       JOIN products p ON p.sku = s.sku
       ${perLocation ? 'JOIN v ON v.sku = s.sku' : ''}
       LEFT JOIN w ON w.sku = s.sku
      ORDER BY available, ${perLocation ? 'v.on_hand, s.sku, v.location' : 's.on_hand, s.sku'}
      ${opts.limit ? 'LIMIT ?' : ''}`,
    opts.limit ? [opts.limit] : [],
  );
  return {
    generated_at: new Date().toISOString(),
    data: rows.map((r: any): InventoryRow => ({
      sku: r.sku,
      ...(perLocation ? { location: r.location } : {}),
      name: r.name,
      on_hand: r.on_hand,
      reserved: r.reserved,
      available: r.available,
      backordered: r.backordered,
      waiting_orders: r.waiting_orders,
    })),
  };
}

/** A CSV cell: quoted when needed, and never read as a formula by a spreadsheet. */
function csvCell(v: string | number): string {
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const INVENTORY_CSV_COLUMNS = [
  'sku',
  'name',
  'on_hand',
  'reserved',
  'available',
  'backordered',
  'waiting_orders',
] as const;

export function inventoryCsv(report: InventoryReport): string {
  const perLocation = report.data.some((r) => r.location !== undefined);
  const columns = perLocation ? ['sku', 'location', ...INVENTORY_CSV_COLUMNS.slice(1)] : [...INVENTORY_CSV_COLUMNS];
  const lines = [columns.join(',')];
  for (const r of report.data)
    lines.push(columns.map((c) => csvCell((r as Record<string, string | number>)[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * The replenishment SQL: one statement, PostgreSQL aggregates. Per SKU over its active locations
 * (`location` null), or per SKU at one location (`$location`). Sales come from the partial index
 * stock_movements_sales (sales by time); figures in numeric, so the ceiling is exact.
 */
export const REPLENISHMENT_SQL = (perLocation: boolean) => `
  WITH sold AS (
         SELECT sku, -sum(quantity) AS units FROM stock_movements
          WHERE type = 'sale' AND created_at >= now() - make_interval(days => :days)
                ${perLocation ? 'AND location = :location' : ''}
          GROUP BY sku),
       inb AS (
         SELECT i.sku, sum(GREATEST(0, i.quantity - i.received)) AS outstanding
           FROM inbound i JOIN locations il ON il.code = i.location
          WHERE i.status = 'open' AND ${perLocation ? 'i.location = :location' : 'il.active'}
          GROUP BY i.sku),
       free AS (
         SELECT lv.sku, sum(lv.on_hand - lv.reserved) AS units
           FROM stock_levels lv JOIN locations loc ON loc.code = lv.location
          WHERE loc.active ${perLocation ? 'AND lv.location = :location' : ''}
          GROUP BY lv.sku),
       r AS (
         SELECT s.sku, COALESCE(sold.units, 0)::numeric / :days AS spd,
                CASE WHEN s.backordered > 0 THEN 0 ELSE COALESCE(free.units, 0) END::numeric AS available,
                COALESCE(inb.outstanding, 0)::numeric AS inbound_outstanding, s.backordered::numeric AS backordered
           FROM stock s LEFT JOIN sold ON sold.sku = s.sku LEFT JOIN inb ON inb.sku = s.sku LEFT JOIN free ON free.sku = s.sku)
  SELECT sku, spd::float8 AS sold_per_day, available::bigint AS available,
         inbound_outstanding::bigint AS inbound_outstanding, backordered::bigint AS backordered,
         CASE WHEN spd = 0 THEN NULL ELSE ((available + inbound_outstanding) / spd)::float8 END AS days_of_cover,
         GREATEST(0, ceil(spd * :cover_days + backordered - available - inbound_outstanding))::bigint AS suggested_order
    FROM r
   ORDER BY days_of_cover ASC NULLS LAST, sku`;

/**
 * What to order, per SKU (or per SKU at one location): sales per day over the last `days` days,
 * what is available and on its way, the backorders, days of cover and a suggested quantity.
 * Lowest days_of_cover first, SKUs that sold nothing last.
 */
export async function replenishmentReport(
  db: Db,
  q: { days: number; cover_days: number; location?: string },
): Promise<ReplenishmentReport> {
  if (q.location !== undefined && !(await db('locations').where({ code: q.location }).first('code')))
    throw new ValidationError(`unknown location ${q.location}`, [
      { path: 'query.location', message: `unknown location ${q.location}` },
    ]);
  const perLocation = q.location !== undefined;
  const { rows } = await db.raw(REPLENISHMENT_SQL(perLocation), {
    days: q.days,
    cover_days: q.cover_days,
    ...(perLocation ? { location: q.location } : {}),
  });
  return {
    generated_at: new Date().toISOString(),
    days: q.days,
    cover_days: q.cover_days,
    location: q.location ?? null,
    data: rows.map((r: any): ReplenishmentRow => ({
      sku: r.sku,
      location: q.location ?? null,
      sold_per_day: r.sold_per_day,
      available: r.available,
      inbound_outstanding: r.inbound_outstanding,
      backordered: r.backordered,
      days_of_cover: r.days_of_cover,
      suggested_order: r.suggested_order,
    })),
  };
}

export const REPLENISHMENT_CSV_COLUMNS = [
  'sku',
  'location',
  'sold_per_day',
  'available',
  'inbound_outstanding',
  'backordered',
  'days_of_cover',
  'suggested_order',
] as const;

/** The report as CSV: the same columns, a null as an empty cell. */
export function replenishmentCsv(report: ReplenishmentReport): string {
  const lines = [REPLENISHMENT_CSV_COLUMNS.join(',')];
  for (const r of report.data)
    lines.push(REPLENISHMENT_CSV_COLUMNS.map((c) => (r[c] === null ? '' : csvCell(r[c]))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * The ledger against the stock, per SKU (or, `by: 'location'`, per SKU and location): every
 * movement type summed, the on_hand they add up to, and whether the row agrees.
 */
const LEDGER_TYPES = ['initial', 'receipt', 'sale', 'return', 'adjustment', 'count', 'transfer_in', 'transfer_out'];
/** Per (SKU, location): the sum of each movement type, and of the three that move `reserved`. */
const LEDGER_SUMS = [
  ...LEDGER_TYPES.map((t) => `COALESCE(sum(quantity) FILTER (WHERE type = '${t}'), 0) AS "${t}"`),
  `COALESCE(sum(quantity) FILTER (WHERE type IN ('reservation', 'release', 'sale')), 0) AS reserved`,
].join(', ');
const SUM_COLUMNS = [...LEDGER_TYPES, 'reserved'].map((c) => `"${c}"`);

/**
 * Moves the ledger checkpoint on (migration 20261202000007 says how it stays exact): folds the
 * movements up to the last run's candidate into the per-(SKU, location) sums once every transaction
 * that was running then has ended, and takes the next candidate. Run by the `checkpoint-ledger`
 * job; the ledger report then reads the sums and only the movements after them.
 */
export async function checkpointLedger(db: Db): Promise<{ folded: number; upto_id: number }> {
  return db.transaction(async (trx) => {
    const cp = (
      await trx.raw(
        `SELECT upto_id, pending_id, pending_xmax IS NOT NULL AND pg_snapshot_xmin(pg_current_snapshot()) >= pending_xmax AS safe
           FROM ledger_checkpoint WHERE id = 1 FOR UPDATE`,
      )
    ).rows[0];
    let upto = Number(cp.upto_id);
    let folded = 0;
    if (cp.safe && Number(cp.pending_id) > upto) {
      const r = await trx.raw(
        `INSERT INTO ledger_checkpoint_sums (sku, location, ${SUM_COLUMNS.join(', ')})
         SELECT sku, location, ${LEDGER_SUMS} FROM stock_movements WHERE id > ? AND id <= ? GROUP BY sku, location
         ON CONFLICT (sku, location) DO UPDATE SET ${SUM_COLUMNS.map((c) => `${c} = ledger_checkpoint_sums.${c} + EXCLUDED.${c}`).join(', ')}`,
        [upto, cp.pending_id],
      );
      folded = r.rowCount ?? 0;
      upto = Number(cp.pending_id);
    }
    await trx.raw(
      `UPDATE ledger_checkpoint SET upto_id = ?, advanced_at = now(),
              (pending_id, pending_xmax) = (SELECT COALESCE(max(id), 0), pg_snapshot_xmax(pg_current_snapshot()) FROM stock_movements)
        WHERE id = 1`,
      [upto],
    );
    return { folded, upto_id: upto };
  });
}

/**
 * Every SKU's (or SKU × location's) figures against its ledger. The ledger side is the checkpoint's
 * sums plus the movements after it (an index range on the newest ids), so a refresh costs what the
 * catalogue and the last minutes hold, not the whole history.
 */
export async function ledgerReport(db: Db, opts: { by?: 'sku' | 'location' } = {}): Promise<LedgerReport> {
  const perLocation = opts.by === 'location';
  const key = perLocation ? 'sku, location' : 'sku';
  const { rows } = await db.raw(
    `WITH parts AS (
       SELECT sku, location, ${SUM_COLUMNS.join(', ')} FROM ledger_checkpoint_sums
       UNION ALL
       SELECT sku, location, ${LEDGER_SUMS} FROM stock_movements
        WHERE id > (SELECT upto_id FROM ledger_checkpoint WHERE id = 1) GROUP BY sku, location),
     m AS (
       SELECT ${key},
              sum("initial") AS initial, sum("receipt") AS receipts, -sum("sale") AS sales, sum("return") AS returns,
              sum("adjustment") AS adjustments, sum("count") AS counts, sum("transfer_in") AS transfers_in,
              -sum("transfer_out") AS transfers_out, sum(reserved) AS expected_reserved
         FROM parts GROUP BY ${key}),
     s AS (SELECT ${key}, on_hand, reserved FROM ${perLocation ? 'stock_levels' : 'stock'})
     SELECT COALESCE(s.sku, m.sku) AS sku, ${perLocation ? 'COALESCE(s.location, m.location) AS location,' : ''}
            COALESCE(m.initial, 0)::bigint AS initial, COALESCE(m.receipts, 0)::bigint AS receipts,
            COALESCE(m.sales, 0)::bigint AS sales, COALESCE(m.returns, 0)::bigint AS returns,
            COALESCE(m.adjustments, 0)::bigint AS adjustments, COALESCE(m.counts, 0)::bigint AS counts,
            COALESCE(m.transfers_in, 0)::bigint AS transfers_in, COALESCE(m.transfers_out, 0)::bigint AS transfers_out,
            (COALESCE(m.initial, 0) + COALESCE(m.receipts, 0) - COALESCE(m.sales, 0) + COALESCE(m.returns, 0)
              + COALESCE(m.adjustments, 0) + COALESCE(m.counts, 0) + COALESCE(m.transfers_in, 0) - COALESCE(m.transfers_out, 0))::bigint AS expected_on_hand,
            COALESCE(s.on_hand, 0) AS on_hand,
            COALESCE(m.expected_reserved, 0)::bigint AS expected_reserved,
            COALESCE(s.reserved, 0) AS reserved
       FROM s FULL JOIN m ON m.sku = s.sku ${perLocation ? 'AND m.location = s.location' : ''}
      ORDER BY 1${perLocation ? ', 2' : ''}`,
  );
  const data = rows.map((r: any): LedgerRow => ({
    sku: r.sku,
    ...(perLocation ? { location: r.location } : {}),
    initial: r.initial,
    receipts: r.receipts,
    sales: r.sales,
    returns: r.returns,
    adjustments: r.adjustments,
    counts: r.counts,
    transfers_in: r.transfers_in,
    transfers_out: r.transfers_out,
    expected_on_hand: r.expected_on_hand,
    on_hand: r.on_hand,
    ok: r.expected_on_hand === r.on_hand,
    expected_reserved: r.expected_reserved,
    reserved: r.reserved,
    reserved_ok: r.expected_reserved === r.reserved,
  }));
  const mismatches = data.filter((r: LedgerRow) => !r.ok);
  return { generated_at: new Date().toISOString(), ok: mismatches.length === 0, data, mismatches };
}

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<T>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** BullMQ's counts per queue (read from Redis); 503 when Redis does not answer. */
export async function queuesReport(queues: Record<string, Queue>): Promise<QueuesReport> {
  try {
    const data = await within(
      2000,
      Promise.all(
        Object.values(queues).map(async (q): Promise<QueueCounts> => {
          const [c, paused] = await Promise.all([
            q.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed', 'waiting-children'),
            q.isPaused(),
          ]);
          return {
            name: q.name,
            waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
            active: c.active ?? 0,
            delayed: c.delayed ?? 0,
            failed: c.failed ?? 0,
            completed: c.completed ?? 0,
            waiting_children: c['waiting-children'] ?? 0,
            paused,
          };
        }),
      ),
    );
    return { generated_at: new Date().toISOString(), data };
  } catch (err) {
    throw new UnavailableError(`Redis is unavailable: ${(err as Error).message}`, 5, { cause: err });
  }
}

export interface AlertReadings {
  waitingOrders: number;
  oldestBackorderSeconds: number;
  skus: { sku: string; waiting: number; oldestSeconds: number }[];
  outboxBacklog: number;
  outboxOldestSeconds: number;
  deliveries: { pending: number; failed: number };
}

/**
 * What an operator alerts on, read at each /metrics scrape, each from a partial index (none scans
 * the history): orders waiting for stock and the age of the oldest wait (overall and for the `top`
 * SKUs whose oldest wait is oldest), the outbox rows not yet published and the oldest, and
 * customer notifications pending and failed.
 */
export async function alertReadings(db: Executor, top = 20): Promise<AlertReadings> {
  const { rows } = await db.raw(
    `SELECT
       (SELECT count(*) FROM orders WHERE status = 'awaiting_stock') AS waiting_orders,
       (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(awaiting_since)), 0) FROM orders WHERE status = 'awaiting_stock') AS oldest,
       (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS outbox,
       (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) FROM outbox WHERE published_at IS NULL) AS outbox_oldest,
       (SELECT count(*) FROM notifications WHERE status = 'pending') AS pending,
       (SELECT count(*) FROM notifications WHERE status = 'failed') AS failed,
       (SELECT COALESCE(json_agg(t ORDER BY t.oldest DESC, t.sku), '[]'::json) FROM (
          SELECT w.sku, w.waiting, EXTRACT(EPOCH FROM now() - o.awaiting_since) AS oldest
            FROM (SELECT sku, count(*) AS waiting, min(seq) AS head FROM order_lines
                   WHERE waiting AND NOT reserved GROUP BY sku) w
            JOIN order_lines l ON l.sku = w.sku AND l.seq = w.head AND l.waiting AND NOT l.reserved
            JOIN orders o ON o.id = l.order_id
           ORDER BY o.awaiting_since NULLS LAST LIMIT ?) t) AS skus`,
    [top],
  );
  const r = rows[0];
  return {
    waitingOrders: Number(r.waiting_orders),
    oldestBackorderSeconds: Number(r.oldest),
    skus: (r.skus as { sku: string; waiting: number; oldest: number }[]).map((s) => ({
      sku: s.sku,
      waiting: Number(s.waiting),
      oldestSeconds: Number(s.oldest ?? 0),
    })),
    outboxBacklog: Number(r.outbox),
    outboxOldestSeconds: Number(r.outbox_oldest),
    deliveries: { pending: Number(r.pending), failed: Number(r.failed) },
  };
}
