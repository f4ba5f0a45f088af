import type { AppContext } from '../app/context';
import type { OutboxRow } from '../platform/outbox';
import { publishRows, withTimeout } from './publisher';

/**
 * The relay: publishes rows that were not published after their commit (Redis was down, the
 * process died). Rows are claimed with SKIP LOCKED so several worker processes can relay at once.
 */
export async function relayOutbox(
  ctx: Pick<AppContext, 'db' | 'queues'>,
  opts: { olderThanMs?: number; limit?: number } = {},
): Promise<number> {
  const olderThan = opts.olderThanMs ?? 2000;
  return ctx.db.transaction(async (trx) => {
    const rows: OutboxRow[] = await trx('outbox')
      .whereNull('published_at')
      .where('created_at', '<', trx.raw(`now() - make_interval(secs => ?)`, [olderThan / 1000]))
      .orderBy('id')
      .limit(opts.limit ?? 500)
      .forUpdate()
      .skipLocked()
      .select('id', 'queue', 'job_name', 'job_id', 'data', 'replace_finished');
    if (rows.length === 0) return 0;
    const busy = await withTimeout(publishRows(ctx.queues, rows), 5000, 'Redis did not answer the relay in time');
    const done = rows.map((r) => Number(r.id)).filter((id) => !busy.has(id));
    if (done.length) await trx('outbox').whereIn('id', done).update({ published_at: trx.fn.now() });
    return done.length;
  });
}
