import type { Queue } from 'bullmq';
import { rawPrepared, type Db } from '../platform/db';
import { logger } from '../platform/logger';
import type { JobPublisher, OutboxRow } from '../platform/outbox';
import type { QueueName } from '../platform/job-catalog';
import type { Queues } from './queues';

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
export async function enqueueReplacingFinished(
  queue: Queue,
  name: string,
  data: object,
  jobId: string,
): Promise<'added' | 'queued' | 'busy'> {
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
    else if ((await enqueueReplacingFinished(queueOf(queues, r.queue), r.job_name, r.data, r.job_id)) === 'busy')
      busy.add(Number(r.id));
  }
  for (const [name, list] of plain) {
    await queueOf(queues, name).addBulk(
      list.map((r) => ({ name: r.job_name, data: r.data, opts: { jobId: r.job_id } })),
    );
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
    const done = () => {
      this.publishing.delete(p);
    };
    p.then(done, done);
  }
  mark(ids: number[]): void {
    this.ids.push(...ids);
    if (!this.timer)
      this.timer = setTimeout(() => {
        this.inflight = this.flush();
      }, 100);
  }
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ids = this.ids;
    this.ids = [];
    if (ids.length === 0) return;
    await rawPrepared(
      this.db,
      'UPDATE outbox SET published_at = now() WHERE id = ANY(?::bigint[]) AND published_at IS NULL',
      [ids],
    ).catch((err) =>
      logger.warn({ err: err.message }, 'could not mark outbox rows published; the relay will republish them'),
    );
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
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The JobPublisher the unit of work uses: after a commit, publish now if Redis answers (a dead
 * Redis must not hold the request: give up after a moment and leave it to the relay), and mark the
 * rows published in the background. `publishSoon` is for intake: the caller answers as soon as the
 * rows are committed; the outbox row is the promise that the job will exist: if this publish fails
 * or the process dies first, the relay publishes it 2 s later. Shutdown waits for publishes still
 * running (PublishedMarker.close).
 */
export function createJobPublisher(queues: Queues, marker: PublishedMarker): JobPublisher {
  const publish = async (rows: OutboxRow[]): Promise<void> => {
    if (rows.length === 0) return;
    try {
      const busy = await withTimeout(publishRows(queues, rows), PUBLISH_TIMEOUT_MS, 'Redis did not answer in time');
      marker.mark(rows.map((r) => Number(r.id)).filter((id) => !busy.has(id)));
    } catch (err) {
      logger.warn(
        { err: (err as Error).message, rows: rows.length },
        'publish after commit failed; the outbox relay will publish',
      );
    }
  };
  return {
    publish,
    publishSoon: (rows) => {
      if (rows.length) marker.track(publish(rows));
    },
  };
}
