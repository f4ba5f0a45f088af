import type { Context } from '../app/context';
import { ValidationError } from '../platform/errors';
import { addToOutbox, publishAfterCommit } from '../jobs/outbox';
import { JOB, QUEUES } from '../jobs/queues';
import { applyStockChanges, inStockTransaction, readStockRows } from '../inventory';
import { allocateSkus } from '../orders';
import type { RestockEvent } from './restocks.schemas';

/** Job ids may not contain ':'; event ids are free text, so the job id is a digest of it. */
export function restockJobId(eventId: string): string {
  return `restock-${Buffer.from(eventId).toString('base64url')}`.slice(0, 400);
}

/**
 * Records restock events (each `event_id` once, forever) and their jobs in one transaction.
 * The whole batch is checked first: one unknown SKU and nothing is stored.
 */
export async function receiveRestocks(ctx: Context, events: RestockEvent[], batch = events.length > 1): Promise<{ accepted: number; duplicates: number }> {
  const skus = [...new Set(events.map((e) => e.sku))];
  const { outbox, accepted } = await ctx.db.transaction(async (trx) => {
    const known = new Set(await trx('products').whereIn('sku', skus).pluck('sku'));
    const unknown = events.map((e, i) => ({ e, i })).filter(({ e }) => !known.has(e.sku));
    if (unknown.length) {
      throw new ValidationError(`unknown SKU ${unknown[0].e.sku}`, unknown.slice(0, 50).map(({ e, i }) => ({ path: batch ? `body.events.${i}.sku` : 'body.sku', message: `unknown SKU ${e.sku}` })));
    }
    const inserted: { event_id: string }[] = [];
    for (let i = 0; i < events.length; i += 500) {
      const chunk = events.slice(i, i + 500);
      inserted.push(...(await trx('restock_events')
        .insert(chunk.map((e) => ({ event_id: e.event_id, sku: e.sku, quantity: e.quantity, occurred_at: e.occurred_at ?? null })))
        .onConflict('event_id').ignore().returning('event_id')));
    }
    const outbox = await addToOutbox(trx, inserted.map((r) => ({
      queue: QUEUES.restocks, job_name: JOB.applyRestock, job_id: restockJobId(r.event_id), data: { eventId: r.event_id },
    })));
    return { outbox, accepted: inserted.length };
  });
  await publishAfterCommit(ctx, outbox);
  return { accepted, duplicates: events.length - accepted };
}

/** The restock job: a `receipt` movement (once per event), then FIFO allocation on that SKU. */
export async function applyRestock(ctx: Context, eventId: string): Promise<{ applied: boolean; reserved: number }> {
  const applied = await inStockTransaction(ctx.db, 'receipt', async (trx) => {
    const ev = await trx('restock_events').where({ event_id: eventId }).forUpdate().first();
    if (!ev || ev.applied_at) return ev ? { sku: ev.sku as string, fresh: false } : undefined;
    const row = (await readStockRows(trx, [ev.sku])).get(ev.sku);
    if (!row) return undefined;
    await applyStockChanges(trx, [{ row, on_hand: ev.quantity }],
      [{ sku: ev.sku, type: 'receipt', quantity: ev.quantity, event_id: eventId, reason: 'restock' }], 'receipt');
    await trx('restock_events').where({ event_id: eventId }).update({ applied_at: trx.fn.now() });
    return { sku: ev.sku as string, fresh: true };
  });
  if (!applied) return { applied: false, reserved: 0 };
  // Allocation also runs for an already-applied event: a crash may have come between the two.
  const reserved = await allocateSkus(ctx, [applied.sku]);
  return { applied: applied.fresh, reserved };
}
