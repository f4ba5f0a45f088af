import { v7 as uuidv7 } from 'uuid';
import type { Db, Executor } from '../platform/db';
import { advisoryKey, rawPrepared } from '../platform/db';
import { ValidationError } from '../platform/errors';
import { QUEUES } from '../platform/job-catalog';
import type { UnitOfWork } from '../platform/unit-of-work';
import type { EventSubject, EventsQuery } from './events.schemas';

const iso = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export interface NewEvent {
  type: string;
  subject: EventSubject & { type: 'sku' };
  data: Record<string, unknown>;
}

/**
 * Writes events about SKUs in the unit's transaction, each numbered within its subject (1, 2, 3 …
 * with no gap, linked to the previous one) under that subject's `event_subjects` row lock, and
 * gives each its delivery job. Order events are written with their transition (orders/sql).
 */
export async function addSkuEvents(uow: UnitOfWork, events: NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  const { trx } = uow;
  const subjects = [...new Set(events.map((e) => e.subject.id))].sort();
  await trx.raw(
    `INSERT INTO event_subjects (subject_type, subject_id) SELECT 'sku', s FROM unnest(?::text[]) s ON CONFLICT DO NOTHING`,
    [subjects],
  );
  const { rows } = await trx.raw(
    `SELECT subject_id, last_sequence, last_event_id FROM event_subjects
      WHERE subject_type = 'sku' AND subject_id = ANY(?::text[]) ORDER BY subject_id FOR UPDATE`,
    [subjects],
  );
  const last = new Map<string, { n: number; id: string | null }>(
    rows.map((r: { subject_id: string; last_sequence: number; last_event_id: string | null }) => [
      r.subject_id,
      { n: r.last_sequence, id: r.last_event_id },
    ]),
  );
  const written = events.map((e) => {
    const prev = last.get(e.subject.id)!;
    const row = { id: uuidv7(), n: prev.n + 1, previous: prev.id, ...e };
    last.set(e.subject.id, { n: row.n, id: row.id });
    return row;
  });
  await rawPrepared(
    trx,
    `INSERT INTO events (id, order_id, transition_no, type, payload, created_at, subject_type, subject_id, subject_sequence, previous_event_id)
     SELECT v.id, NULL, v.n, v.type,
            json_build_object('id', v.id, 'type', v.type, 'created_at', ${iso('now()')}, 'data', v.data), now(),
            'sku', v.subject, v.n, v.previous
       FROM unnest(?::uuid[], ?::int[], ?::text[], ?::json[], ?::text[], ?::uuid[]) AS v(id, n, type, data, subject, previous)`,
    [
      written.map((w) => w.id),
      written.map((w) => w.n),
      written.map((w) => w.type),
      written.map((w) => JSON.stringify(w.data)),
      written.map((w) => w.subject.id),
      written.map((w) => w.previous) as string[],
    ],
  );
  await trx.raw(
    `UPDATE event_subjects s SET last_sequence = v.n, last_event_id = v.id
       FROM unnest(?::text[], ?::int[], ?::uuid[]) AS v(subject, n, id)
      WHERE s.subject_type = 'sku' AND s.subject_id = v.subject`,
    [[...last.keys()], [...last.values()].map((l) => l.n), [...last.values()].map((l) => l.id) as string[]],
  );
  await uow.addJobs(
    written.map((w) => ({
      queue: QUEUES.notifications,
      job_name: `${w.type} ${w.subject.id}`,
      job_id: w.id,
      data: { eventId: w.id },
    })),
  );
}

const SEQUENCER_LOCK = advisoryKey('orderflow:event-sequencer');

/**
 * The sequencer: numbers committed events in the order they were written. One runs at a time
 * (a transaction-level advisory lock; a second caller returns at once with -1). Its statement
 * runs after the lock is taken, so it sees every event committed before, and each run's numbers
 * are above every earlier run's: numbers become visible in increasing order, and a reader that
 * follows `sequence > cursor` can never pass a number that is still to appear.
 * Returns how many events it numbered.
 */
export async function stampSequences(db: Db, max = 5000): Promise<number> {
  return db.transaction(async (trx) => {
    const lock = await trx.raw('SELECT pg_try_advisory_xact_lock(?::bigint) AS ok', [SEQUENCER_LOCK]);
    if (!lock.rows[0].ok) return -1;
    const { rows } = await rawPrepared(
      trx,
      `SELECT id FROM events WHERE sequence IS NULL ORDER BY written_at, subject_sequence, id LIMIT ?`,
      [max],
    );
    if (rows.length === 0) return 0;
    const ids = rows.map((r: { id: string }) => r.id);
    // Locked in id order first, as a delivery outcome locks the events it settles: two statements
    // updating the same events in different orders deadlock, and each deadlock stalled both for
    // deadlock_timeout (1 s; 7 in a 30-minute soak before this).
    await rawPrepared(trx, `SELECT 1 FROM events WHERE id = ANY(?::uuid[]) ORDER BY id FOR NO KEY UPDATE`, [ids]);
    const base = await trx.raw(`SELECT nextval('event_sequence') AS b`);
    const first = Number(base.rows[0].b);
    if (ids.length > 1) await trx.raw(`SELECT setval('event_sequence', ?::bigint)`, [first + ids.length - 1]);
    await rawPrepared(
      trx,
      `UPDATE events e SET sequence = ?::bigint + v.k - 1
         FROM unnest(?::uuid[]) WITH ORDINALITY AS v(id, k) WHERE e.id = v.id`,
      [first, ids],
    );
    return ids.length;
  });
}

/** Runs the sequencer every `intervalMs` (sooner while there is a backlog) until stopped. */
export function startSequencer(db: Db, intervalMs: number, onError: (err: unknown) => void): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = (async () => {
      let again = false;
      try {
        again = (await stampSequences(db)) >= 5000;
      } catch (err) {
        onError(err);
      }
      if (!stopped) timer = setTimeout(tick, again ? 0 : intervalMs);
    })();
  };
  timer = setTimeout(tick, 0);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/**
 * What a webhook sends for the event row `e`, as the parts `eventBody` joins: the payload written
 * with it, and its place in its subject's numbering (known when it is written; `sequence` is not,
 * so the body leaves it out). Joined in JS, not in SQL: jsonb (`payload::jsonb || …`) sorts every
 * object's keys, an order's metadata included, and json has no merge. json_build_object takes the
 * json payload as its text, unparsed.
 */
export const EVENT_BODY_SQL = (e: string) =>
  `json_build_object('payload', ${e}.payload, 'subject', json_build_object('type', ${e}.subject_type, 'id', ${e}.subject_id),
     'subject_sequence', ${e}.subject_sequence, 'previous_event_id', ${e}.previous_event_id)`;

/** The parts EVENT_BODY_SQL reads. */
export interface EventBodyParts<P extends object = Record<string, unknown>> {
  payload: P;
  subject: EventSubject;
  subject_sequence: number;
  previous_event_id: string | null;
}

/** The event as a webhook sends it: the payload's keys as written, then its place in its subject's numbering. */
export function eventBody<P extends object>(parts: EventBodyParts<P>) {
  return {
    ...parts.payload,
    subject: parts.subject,
    subject_sequence: parts.subject_sequence,
    previous_event_id: parts.previous_event_id,
  };
}

/** A feed row: the event's columns and its payload (json, read in JS: `->` on json parses the text again per key). */
const FEED_ROW_JSON = `json_build_object('id', e.id, 'type', e.type, 'sequence', e.sequence,
  'subject', json_build_object('type', e.subject_type, 'id', e.subject_id),
  'subject_sequence', e.subject_sequence, 'previous_event_id', e.previous_event_id, 'payload', e.payload)`;

interface FeedRow extends EventBodyParts<{ created_at: string; data: unknown }> {
  id: string;
  type: string;
  sequence: number;
}

/** A feed row in the contract's key order, its data (an order's metadata included) as written. */
const feedEvent = (r: FeedRow) => ({
  id: r.id,
  type: r.type,
  sequence: r.sequence,
  created_at: r.payload.created_at,
  subject: r.subject,
  subject_sequence: r.subject_sequence,
  previous_event_id: r.previous_event_id,
  data: r.payload.data,
});

/**
 * A page of the feed: numbered events after the cursor, in `sequence` order. `next_cursor` is the
 * last event returned, or, when the page is not full, the highest number this statement can see
 * (every event up to it is visible: see stampSequences), so a filtered reader moves past events it
 * does not want; with nothing new it is the cursor given.
 */
export async function listEvents(db: Executor, q: EventsQuery): Promise<{ data: unknown[]; next_cursor: string }> {
  const after = q.after ?? '0';
  const where: string[] = ['e.sequence IS NOT NULL', 'e.sequence > ?::bigint'];
  const bindings: (string | string[])[] = [after];
  if (q.types?.length) {
    const exact = q.types.filter((t) => !t.endsWith('.*'));
    const prefixes = q.types.filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -1));
    where.push(`(e.type = ANY(?::text[]) OR e.type LIKE ANY(?::text[]))`);
    bindings.push(
      exact,
      prefixes.map((p) => `${p}%`),
    );
  }
  if (q.subject) {
    where.push('e.subject_id = ?');
    bindings.push(q.subject);
  }
  const { rows } = await db.raw(
    `WITH page AS (
       SELECT e.sequence, ${FEED_ROW_JSON} AS j FROM events e WHERE ${where.join(' AND ')} ORDER BY e.sequence LIMIT ?)
     SELECT (SELECT max(sequence) FROM events) AS horizon,
            (SELECT json_agg(j ORDER BY sequence) FROM page) AS data,
            (SELECT max(sequence) FROM page) AS last, (SELECT count(*) FROM page) AS n`,
    [...bindings, q.limit],
  );
  const r = rows[0];
  const data = ((r.data ?? []) as FeedRow[]).map(feedEvent);
  if (data.length === 0 && BigInt(after) > BigInt(r.horizon ?? 0)) await assertCursorIssued(db, after);
  let next = after;
  if (Number(r.n) >= q.limit) next = String(r.last);
  else if (r.horizon !== null && BigInt(r.horizon) > BigInt(after)) next = String(r.horizon);
  return { data, next_cursor: next };
}

/**
 * A cursor above every number the sequencer has handed out was never given by the feed (a typo, or
 * a cursor kept from another installation or from before a restore): read from it, the feed would
 * answer empty pages until the numbers catch up and then skip what came before. 400, naming it.
 * The sequence, not the newest event, is the bound: pruning may have removed every event.
 */
async function assertCursorIssued(db: Executor, after: string): Promise<void> {
  const { rows } = await db.raw(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS issued FROM event_sequence`);
  const issued = String(rows[0].issued);
  if (BigInt(after) > BigInt(issued))
    throw new ValidationError(`invalid query: query.after: no event has been numbered above ${issued}`, [
      {
        path: 'query.after',
        message: `is beyond the newest sequence number issued (${issued}): not a cursor of this feed`,
      },
    ]);
}

/** Deletes events older than the retention whose deliveries are settled; returns how many. */
export async function pruneEvents(db: Db, retentionDays: number, batch = 5000): Promise<number> {
  const r = await db.raw(
    `DELETE FROM events WHERE id IN (
       SELECT id FROM events WHERE created_at < now() - make_interval(days => ?) AND settled_at IS NOT NULL
          AND sequence IS NOT NULL ORDER BY created_at LIMIT ?)`,
    [retentionDays, batch],
  );
  return r.rowCount ?? 0;
}
