import type { Queue } from 'bullmq';
import type { Context } from '../app/context';
import type { Db, Trx } from '../platform/db';
import { logger } from '../platform/logger';
import type { Queues, QueueName } from './queues';

/** A job to publish, stored in the transaction that made it necessary. */
export interface OutboxRow {
  id?: number; queue: QueueName; job_name: string; job_id: string; data: Record<string, unknown>; replace_finished?: boolean;
}

export async function addToOutbox(trx: Trx, rows: OutboxRow[]): Promise<OutboxRow[]> {
  if (rows.length === 0) return [];
  const out: OutboxRow[] = [];
  for (let i = 0; i < rows.length; i += 1000) {
    const inserted = await trx('outbox').insert(rows.slice(i, i + 1000).map((r) => ({
      queue: r.queue, job_name: r.job_name, job_id: r.job_id, data: JSON.stringify(r.data), replace_finished: !!r.replace_finished,
    }))).returning(['id', 'queue', 'job_name', 'job_id', 'data', 'replace_finished']);
    out.push(...inserted);
  }
  return out;
}

function queueOf(queues: Queues, name: QueueName): Queue {
  const q = (queues as Record<string, Queue>)[name];
  if (!q) throw new Error(`unknown queue ${name}`);
  return q;
}

/**
 * Adds one job, replacing a finished job of the same id. A job of that id still to run (waiting,
 * delayed) will do the work: 'queued'. One running now may already be past the point where it read
 * what changed (an edit committed while its order was being processed): 'busy', add it again once
 * that run has finished.
 */
export async function enqueueReplacingFinished(queue: Queue, name: string, data: object, jobId: string): Promise<'added' | 'queued' | 'busy'> {
  const existing = await queue.getJob(jobId);
  if (existing) {
    const state = await existing.getState();
    if (state === 'active') return 'busy';
    if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return 'queued';
    await existing.remove().catch(() => undefined);
  }
  await queue.add(name, data, { jobId });
  return 'added';
}

/**
 * Publishes rows to BullMQ (job id = row.job_id, so a second publish is a no-op). Returns the ids of
 * rows that could not be published yet (their job is running: see enqueueReplacingFinished); they
 * stay unpublished and the relay tries them again. Throws if Redis is down.
 */
export async function publishRows(queues: Queues, rows: OutboxRow[]): Promise<Set<number>> {
  const plain = new Map<QueueName, OutboxRow[]>();
  const busy = new Set<number>();
  for (const r of rows) {
    if (!r.replace_finished) plain.set(r.queue, [...(plain.get(r.queue) ?? []), r]);
    else if ((await enqueueReplacingFinished(queueOf(queues, r.queue), r.job_name, r.data, r.job_id)) === 'busy') busy.add(Number(r.id));
  }
  for (const [name, list] of plain) {
    await queueOf(queues, name).addBulk(list.map((r) => ({ name: r.job_name, data: r.data, opts: { jobId: r.job_id } })));
  }
  return busy;
}

/**
 * Marks rows published in batches, off the request path; an unmarked row is only republished
 * (harmless). One UPDATE per 100 ms with the ids as one array parameter: at intake rates this is
 * one statement per few hundred orders (the relay only looks at rows older than 2 s).
 */
export class PublishedMarker {
  private ids: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> = Promise.resolve();
  /** Publishes started by publishSoon and not finished yet: close() waits for them. */
  private publishing = new Set<Promise<unknown>>();
  constructor(private db: Db) {}
  track(p: Promise<unknown>): void {
    this.publishing.add(p);
    const done = () => { this.publishing.delete(p); };
    p.then(done, done);
  }
  mark(ids: number[]): void {
    this.ids.push(...ids);
    if (!this.timer) this.timer = setTimeout(() => { this.inflight = this.flush(); }, 100);
  }
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ids = this.ids;
    this.ids = [];
    if (ids.length === 0) return;
    await this.db.raw('UPDATE outbox SET published_at = now() WHERE id = ANY(?::bigint[]) AND published_at IS NULL', [ids])
      .catch((err) => logger.warn({ err: err.message }, 'could not mark outbox rows published; the relay will republish them'));
  }
  async close(): Promise<void> {
    await Promise.allSettled([...this.publishing]);
    await this.inflight;
    await this.flush();
  }
}

const PUBLISH_TIMEOUT_MS = 1000;

/** BullMQ waits for a connection forever; callers that must not hang bound it. */
export async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); })]);
  } finally { clearTimeout(timer); }
}

/** After a commit: publish now if Redis answers; otherwise the relay will. Never throws. */
export async function publishAfterCommit(ctx: Context, rows: OutboxRow[]): Promise<boolean> {
  if (rows.length === 0) return true;
  try {
    // A dead Redis must not hold the request: give up after a moment and leave it to the relay.
    const busy = await withTimeout(publishRows(ctx.queues, rows), PUBLISH_TIMEOUT_MS, 'Redis did not answer in time');
    ctx.published.mark(rows.map((r) => Number(r.id)).filter((id) => !busy.has(id)));
    return busy.size === 0;
  } catch (err) {
    logger.warn({ err: (err as Error).message, rows: rows.length }, 'publish after commit failed; the outbox relay will publish');
    return false;
  }
}

/**
 * For intake: the caller answers as soon as the rows are committed and the jobs are added in the
 * background (bounded by the same 1 s). The outbox row is the promise that the job will exist: if
 * this publish fails or the process dies first, the relay publishes it 2 s later. Shutdown
 * (closeContext) waits for publishes still running.
 */
export function publishSoon(ctx: Context, rows: OutboxRow[]): void {
  ctx.published.track(publishAfterCommit(ctx, rows));
}

/**
 * The relay: publishes rows that were not published after their commit (Redis was down, the
 * process died). Rows are claimed with SKIP LOCKED so several worker processes can relay at once.
 */
export async function relayOutbox(ctx: Context, opts: { olderThanMs?: number; limit?: number } = {}): Promise<number> {
  const olderThan = opts.olderThanMs ?? 2000;
  return ctx.db.transaction(async (trx) => {
    const rows: OutboxRow[] = await trx('outbox').whereNull('published_at')
      .where('created_at', '<', trx.raw(`now() - make_interval(secs => ?)`, [olderThan / 1000]))
      .orderBy('id').limit(opts.limit ?? 500).forUpdate().skipLocked()
      .select('id', 'queue', 'job_name', 'job_id', 'data', 'replace_finished');
    if (rows.length === 0) return 0;
    const busy = await withTimeout(publishRows(ctx.queues, rows), 5000, 'Redis did not answer the relay in time');
    const done = rows.map((r) => Number(r.id)).filter((id) => !busy.has(id));
    if (done.length) await trx('outbox').whereIn('id', done).update({ published_at: trx.fn.now() });
    return done.length;
  });
}
