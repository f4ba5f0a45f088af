import { expect } from 'vitest';
import type { ApiResponse, Harness } from './harness';

/**
 * Tables whose every row is fingerprinted. `outbox` is only counted: its `published_at` is set
 * asynchronously after a commit (PublishedMarker), which is not a change a request made. Events are
 * fingerprinted without `sequence` and `settled_at`, which the sequencer and the deliveries set
 * after the commit that wrote them.
 */
const HASHED = [
  'customers',
  'products',
  'stock',
  'stock_movements',
  'orders',
  'order_lines',
  'order_history',
  'idempotency_keys',
  'events',
  'notifications',
  'restock_events',
] as const;
const COUNTED = ['outbox'] as const;

export type Snapshot = Record<string, string>;

/** A fingerprint of the whole database: row count and an md5 of every row, per table. */
export async function snapshot(h: Harness): Promise<Snapshot> {
  const out: Snapshot = {};
  for (const t of HASHED) {
    const from =
      t === 'events'
        ? `(SELECT id, order_id, transition_no, type, payload, created_at, subject_type, subject_id, subject_sequence, previous_event_id FROM events)`
        : `"${t}"`;
    const { rows } = await h.ctx.db.raw(
      `SELECT count(*)::int AS n, coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS md5 FROM ${from} x`,
    );
    out[t] = `${rows[0].n}:${rows[0].md5}`;
  }
  for (const t of COUNTED) {
    const { rows } = await h.ctx.db.raw('SELECT count(*)::int AS n FROM ??', [t]);
    out[t] = String(rows[0].n);
  }
  return out;
}

/** Asserts the contract's error body: {error: {code, message, details: [{path, message}]}} and X-Request-Id. */
export function expectError(res: ApiResponse, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.error?.code }, res.text).toEqual({ status, code });
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(typeof res.body.error.message).toBe('string');
  expect(res.body.error.message.length).toBeGreaterThan(0);
  expect(Array.isArray(res.body.error.details)).toBe(true);
  for (const d of res.body.error.details) {
    expect(typeof d.path).toBe('string');
    expect(typeof d.message).toBe('string');
  }
  expect(res.headers.get('content-type') ?? '').toMatch(/^application\/json/);
  expect(res.headers.get('x-request-id') ?? '').not.toBe('');
}

/** Runs `act` and asserts that it changed nothing in the database. */
export async function expectNothingChanged<T>(h: Harness, act: () => Promise<T>): Promise<T> {
  const before = await snapshot(h);
  const result = await act();
  expect(await snapshot(h)).toEqual(before);
  return result;
}

/**
 * Columns that change after the request that wrote the row has been answered, by design: the
 * sequencer numbers events and deliveries settle them; the PublishedMarker stamps outbox rows.
 */
const LATE_COLUMNS: Record<string, string[]> = { events: ['sequence', 'settled_at'], outbox: ['published_at'] };
let allTables: { table: string; columns: string[] }[] | undefined;

/**
 * A fingerprint of every table of the schema (found from the catalog, so a table added by a later
 * migration is covered without naming it here) in one round trip: row count and an md5 of every
 * row, without the columns in LATE_COLUMNS. With `queues`, also each BullMQ queue's job counts.
 */
export async function snapshotAll(h: Harness, opts: { queues?: boolean } = {}): Promise<Snapshot> {
  if (!allTables) {
    const { rows } = await h.ctx.db.raw(
      `SELECT c.table_name AS t, array_agg(c.column_name::text ORDER BY c.ordinal_position) AS cols
         FROM information_schema.columns c JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
        WHERE c.table_schema = current_schema() AND c.table_name NOT LIKE 'knex_migrations%'
        GROUP BY c.table_name ORDER BY c.table_name`,
    );
    allTables = rows.map((r: { t: string; cols: string[] }) => ({
      table: r.t,
      columns: r.cols.filter((c) => !(LATE_COLUMNS[r.t] ?? []).includes(c)),
    }));
  }
  const parts = allTables!.map(
    ({ table, columns }) =>
      `SELECT '${table}' AS t, count(*)::int AS n, coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS md5
         FROM (SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM "${table}") x`,
  );
  const { rows } = await h.ctx.db.raw(parts.join('\nUNION ALL\n'));
  const out: Snapshot = {};
  for (const r of rows) out[r.t] = `${r.n}:${r.md5}`;
  if (opts.queues) {
    for (const [name, q] of Object.entries(h.ctx.queues)) out[`queue:${name}`] = JSON.stringify(await q.getJobCounts());
  }
  return out;
}
