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
