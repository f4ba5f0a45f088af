import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { Actor } from '../platform/actor';
import type { Context } from '../platform/context';
import type { Db, Executor, Trx } from '../platform/db';
import { InvalidStateError, NotFoundError } from '../platform/errors';
import { QUEUES } from '../platform/job-catalog';
import { logger } from '../platform/logger';
import { runUnitOfWork, type UnitOfWork } from '../platform/unit-of-work';
import { resendInUnit } from '../notifications';
import { boundInstant, cancelInUnit, isoSql, retryInUnit } from '../orders';
import { listCursor, uuidParam } from '../platform/validation';
import type { BulkAction, BulkRequest, ListBulkActionsQuery } from './bulk.schemas';

const FINAL = ['rejected', 'completed', 'cancelled'];

/** The items an action would act on, as one SELECT of `id` (and an ordering key), from its filter. */
function matching(db: Executor, req: BulkRequest) {
  if (req.action === 'resend_deliveries') {
    // Customer notifications by their id, webhook endpoint deliveries as `endpoint:<id>`.
    const f = req.filter;
    const channels = db('notifications as n')
      .join('events as e', 'e.id', 'n.event_id')
      .where('n.status', 'failed')
      .select(db.raw('n.id::text AS id'), 'n.created_at', 'n.id as k');
    const endpoints = db('endpoint_deliveries as d')
      .join('events as e', 'e.id', 'd.event_id')
      .where('d.status', 'failed')
      .select(db.raw(`'endpoint:' || d.id::text AS id`), 'd.created_at', 'd.id as k');
    for (const q of [channels, endpoints]) {
      if (f.type) q.where('e.type', f.type);
      if (f.since) q.where('e.created_at', '>=', f.since);
    }
    if (f.endpoint_id) endpoints.where('d.endpoint_id', f.endpoint_id);
    const all = f.endpoint_id ? endpoints : channels.unionAll(endpoints, true);
    return db.from(all.as('x')).select('x.id', db.raw('row_number() OVER (ORDER BY x.created_at, x.k) AS position'));
  }
  const f = req.filter;
  const q = db('orders as o').select(
    db.raw('o.id::text AS id'),
    db.raw('row_number() OVER (ORDER BY o.seq) AS position'),
  );
  if (req.action === 'retry_orders') q.where('o.status', 'failed');
  else q.whereNotIn('o.status', FINAL);
  if (f.status) q.where('o.status', f.status);
  if (f.reason) q.whereRaw(`strpos(lower(o.status_reason), lower(?)) > 0`, [f.reason]);
  if (f.customer_id) q.where('o.customer_id', f.customer_id);
  if (f.created_from) q.where('o.created_at', '>=', boundInstant(f.created_from, 'body.filter.created_from'));
  if (f.created_to) q.where('o.created_at', '<', boundInstant(f.created_to, 'body.filter.created_to', true));
  if (f.ids) q.whereIn('o.id', f.ids);
  if (f.sku)
    q.whereExists(db('order_lines as l').whereRaw('l.order_id = o.id').where('l.sku', f.sku).select(db.raw('1')));
  return q;
}

const BULK_COLUMNS = (db: Executor) => [
  'id',
  'action',
  'filter',
  'reason',
  'matched',
  'done',
  'skipped',
  'failed',
  'status',
  db.raw(`json_build_object('role', actor_role, 'name', actor_name) AS actor`),
  db.raw(`${isoSql('created_at')} AS created_at`),
  db.raw(`CASE WHEN completed_at IS NULL THEN NULL ELSE ${isoSql('completed_at')} END AS completed_at`),
];

export async function getBulkAction(db: Executor, id: string): Promise<BulkAction> {
  const row = await db('bulk_actions').where({ id }).first(BULK_COLUMNS(db));
  if (!row) throw new NotFoundError('bulk action');
  return row;
}

const bulkCursor = listCursor('bulk-actions', z.object({ id: uuidParam }));

/**
 * Newest first, keyset on id: ids are UUID v7, so their order is the order of creation (as for
 * customers), and the primary key serves every page.
 */
export async function listBulkActions(
  db: Executor,
  q: ListBulkActionsQuery,
): Promise<{ data: BulkAction[]; next_cursor: string | null }> {
  const after = bulkCursor.decode(q.cursor);
  const query = db('bulk_actions')
    .select(BULK_COLUMNS(db))
    .orderBy('id', 'desc')
    .limit(q.limit + 1);
  if (after) query.where('id', '<', after.id);
  const rows: BulkAction[] = await query;
  const page = rows.slice(0, q.limit);
  return {
    data: page,
    next_cursor: rows.length > q.limit ? bulkCursor.encode({ id: page[page.length - 1].id }) : null,
  };
}

/** A dry run: how many items the action would act on now, and up to 20 of their ids. */
export async function countBulk(db: Db, req: BulkRequest): Promise<{ matched: number; sample: string[] }> {
  const rows = await db
    .with('m', matching(db, req))
    .from('m')
    .select(db.raw('count(*) OVER () AS n'), 'id')
    .orderBy('position')
    .limit(20);
  return { matched: Number(rows[0]?.n ?? 0), sample: rows.map((r: { id: string }) => r.id) };
}

/**
 * Creates the action with exactly the items matched now (later changes to the data do not change
 * the set) and its job, in one transaction.
 */
export async function createBulkAction(ctx: Context, req: BulkRequest, actor: Actor): Promise<BulkAction> {
  const id = uuidv7();
  await runUnitOfWork(
    ctx,
    'bulk-create',
    async (uow) => {
      const { trx } = uow;
      await trx('bulk_actions').insert({
        id,
        action: req.action,
        filter: JSON.stringify(req.filter),
        reason: req.reason ?? null,
        actor_role: actor.role,
        actor_name: actor.name,
      });
      const m = matching(trx, req);
      const inserted = await trx.raw(
        `INSERT INTO bulk_action_items (bulk_id, position, item_id) SELECT ?::uuid, m.position, m.id FROM (${m.toQuery()}) m`,
        [id],
      );
      const matched = inserted.rowCount ?? 0;
      await trx('bulk_actions').where({ id }).update({ matched });
      // Every action answers `running` (the contract's 202) and its job completes it, one that
      // matched nothing too: at once, as it finds no pending item.
      await uow.addJobs([
        { queue: QUEUES.bulk, job_name: `${req.action} ×${matched}`, job_id: id, data: { bulkId: id } },
      ]);
    },
    { actor },
  );
  return getBulkAction(ctx.db, id);
}

type ItemOutcome = 'done' | 'skipped';

async function actOn(uow: UnitOfWork, action: string, itemId: string, reason: string | null, bulkId: string) {
  const detail = reason ?? `bulk action ${bulkId}`;
  if (action === 'retry_orders') await retryInUnit(uow, itemId, `retried by bulk action ${bulkId}`);
  else if (action === 'cancel_orders') await cancelInUnit(uow, itemId, detail);
  else await resendInUnit(uow, itemId);
}

async function lockItem(trx: Trx, bulkId: string, position: number) {
  return trx('bulk_action_items').where({ bulk_id: bulkId, position }).forUpdate().first('item_id', 'state');
}

/**
 * Runs (or resumes) one bulk action: every pending item, in order, each in its own transaction
 * that also marks the item and counts it, so an item is acted on at most once however often the
 * run dies and starts again. An item that no longer qualifies (the order moved on) is `skipped`;
 * an unexpected error marks it `failed` with the message.
 */
export async function runBulkAction(ctx: Context, bulkId: string): Promise<{ processed: number }> {
  const bulk = await ctx.db('bulk_actions').where({ id: bulkId }).first();
  if (!bulk || bulk.status === 'completed') return { processed: 0 };
  const actor: Actor = { role: bulk.actor_role, name: bulk.actor_name };
  let processed = 0;
  for (;;) {
    const pending: { position: number }[] = await ctx
      .db('bulk_action_items')
      .where({ bulk_id: bulkId, state: 'pending' })
      .orderBy('position')
      .limit(100)
      .select('position');
    if (pending.length === 0) break;
    // Items are independent: a few at a time, each in its own transaction.
    let next = 0;
    const lane = async () => {
      while (next < pending.length) await runItem(pending[next++].position);
    };
    await Promise.all(Array.from({ length: ITEMS_IN_FLIGHT }, lane));
  }
  await ctx
    .db('bulk_actions')
    .where({ id: bulkId, status: 'running' })
    .whereNotExists(ctx.db('bulk_action_items').where({ bulk_id: bulkId, state: 'pending' }).select(ctx.db.raw('1')))
    .update({ status: 'completed', completed_at: ctx.db.fn.now(), updated_at: ctx.db.fn.now() });
  return { processed };

  async function runItem(position: number): Promise<void> {
    try {
      await runUnitOfWork(
        ctx,
        'bulk',
        async (uow) => {
          const item = await lockItem(uow.trx, bulkId, position);
          if (!item || item.state !== 'pending') return;
          let outcome: ItemOutcome = 'done';
          try {
            await uow.savepoint(() => actOn(uow, bulk.action, item.item_id, bulk.reason, bulkId));
          } catch (err) {
            if (!(err instanceof InvalidStateError || err instanceof NotFoundError)) throw err;
            outcome = 'skipped';
          }
          await mark(uow.trx, bulkId, position, outcome, null);
        },
        { actor },
      );
    } catch (err) {
      logger.warn({ bulkId, position, err: (err as Error).message }, 'bulk action item failed');
      await ctx.db.transaction(async (trx) => {
        const item = await lockItem(trx, bulkId, position);
        if (item?.state === 'pending') await mark(trx, bulkId, position, 'failed', (err as Error).message);
      });
    }
    processed++;
  }
}

const ITEMS_IN_FLIGHT = 8;

async function mark(
  trx: Trx,
  bulkId: string,
  position: number,
  state: 'done' | 'skipped' | 'failed',
  error: string | null,
) {
  await trx('bulk_action_items')
    .where({ bulk_id: bulkId, position })
    .update({ state, error: error?.slice(0, 1000) ?? null });
  await trx('bulk_actions')
    .where({ id: bulkId })
    .update({ [state]: trx.raw('?? + 1', [state]), updated_at: trx.fn.now() });
}

/** Running actions (for the reconciler: one without a live job gets one again). */
export async function runningBulkActions(db: Db): Promise<string[]> {
  return db('bulk_actions').where({ status: 'running' }).orderBy('created_at').limit(1000).pluck('id');
}
