import type { Trx } from './db';
import type { QueueName } from './job-catalog';

/** A job to publish, stored in the transaction that made it necessary. */
export interface OutboxRow {
  id?: number;
  queue: QueueName;
  job_name: string;
  job_id: string;
  data: Record<string, unknown>;
  replace_finished?: boolean;
}

/**
 * Adds jobs to BullMQ after the transaction that stored their outbox rows committed. Implemented by
 * the job layer (jobs/publisher.ts); neither method throws: a row not published now is published
 * by the relay.
 */
export interface JobPublisher {
  /** Publishes now (bounded by a short timeout) and waits for it. */
  publish(rows: OutboxRow[]): Promise<void>;
  /** Publishes in the background; the caller answers at once. */
  publishSoon(rows: OutboxRow[]): void;
}

export async function insertOutboxRows(trx: Trx, rows: OutboxRow[]): Promise<OutboxRow[]> {
  if (rows.length === 0) return [];
  const out: OutboxRow[] = [];
  for (let i = 0; i < rows.length; i += 1000) {
    const inserted = await trx('outbox')
      .insert(
        rows.slice(i, i + 1000).map((r) => ({
          queue: r.queue,
          job_name: r.job_name,
          job_id: r.job_id,
          data: JSON.stringify(r.data),
          replace_finished: !!r.replace_finished,
        })),
      )
      .returning(['id', 'queue', 'job_name', 'job_id', 'data', 'replace_finished']);
    out.push(...inserted);
  }
  return out;
}
