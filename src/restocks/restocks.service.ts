import type { Context } from '../platform/context';
import { ValidationError } from '../platform/errors';
import { applyStockChanges, assertLocations, readStockRows } from '../inventory';
import { JOB, QUEUES } from '../platform/job-catalog';
import { runUnitOfWork } from '../platform/unit-of-work';
import type { RestockEvent } from './restocks.schemas';

/** Job ids may not contain ':'; event ids are free text, so the job id is a digest of it. */
export function restockJobId(eventId: string): string {
  return `restock-${Buffer.from(eventId).toString('base64url')}`.slice(0, 400);
}

/**
 * Records restock events (each `event_id` once, forever) and their jobs in one transaction.
 * The whole batch is checked first: one unknown SKU and nothing is stored.
 */
export async function receiveRestocks(
  ctx: Context,
  events: RestockEvent[],
  batch = events.length > 1,
): Promise<{ accepted: number; duplicates: number }> {
  const skus = [...new Set(events.map((e) => e.sku))];
  const accepted = await runUnitOfWork(
    ctx,
    'restock-intake',
    async (uow) => {
      const { trx } = uow;
      const known = new Set(await trx('products').whereIn('sku', skus).pluck('sku'));
      const unknown = events.map((e, i) => ({ e, i })).filter(({ e }) => !known.has(e.sku));
      if (unknown.length) {
        throw new ValidationError(
          `unknown SKU ${unknown[0].e.sku}`,
          unknown.slice(0, 50).map(({ e, i }) => ({
            path: batch ? `body.events.${i}.sku` : 'body.sku',
            message: `unknown SKU ${e.sku}`,
          })),
        );
      }
      await assertLocations(
        trx,
        events.flatMap((e, i) =>
          e.location ? [{ code: e.location, path: batch ? `body.events.${i}.location` : 'body.location' }] : [],
        ),
      );
      const inserted: { event_id: string }[] = [];
      for (let i = 0; i < events.length; i += 500) {
        const chunk = events.slice(i, i + 500);
        inserted.push(
          ...(await trx('restock_events')
            .insert(
              chunk.map((e) => ({
                event_id: e.event_id,
                sku: e.sku,
                quantity: e.quantity,
                location: e.location ?? 'main',
                occurred_at: e.occurred_at ?? null,
              })),
            )
            .onConflict('event_id')
            .ignore()
            .returning('event_id')),
        );
      }
      await uow.addJobs(
        inserted.map((r) => ({
          queue: QUEUES.restocks,
          job_name: JOB.applyRestock,
          job_id: restockJobId(r.event_id),
          data: { eventId: r.event_id },
        })),
      );
      return inserted.length;
    },
    { retry: false },
  );
  return { accepted, duplicates: events.length - accepted };
}

/**
 * The restock job: a `receipt` movement (once per event); once committed, FIFO allocation on that
 * SKU. Allocation is asked for also when the event was applied already: a crash may have come
 * between the two.
 */
export async function applyRestock(ctx: Context, eventId: string): Promise<{ applied: boolean }> {
  return runUnitOfWork(ctx, 'receipt', async (uow) => {
    const { trx } = uow;
    const ev = await trx('restock_events').where({ event_id: eventId }).forUpdate().first();
    if (!ev) return { applied: false };
    uow.serveSkus([ev.sku]);
    if (ev.applied_at) return { applied: false };
    const row = (await readStockRows(trx, [ev.sku])).get(ev.sku);
    if (!row) return { applied: false };
    await applyStockChanges(
      uow,
      [{ row, levels: [{ location: ev.location, on_hand: ev.quantity }] }],
      [
        {
          sku: ev.sku,
          location: ev.location,
          type: 'receipt',
          quantity: ev.quantity,
          event_id: eventId,
          reason: 'restock',
        },
      ],
      'receipt',
    );
    await trx('restock_events').where({ event_id: eventId }).update({ applied_at: trx.fn.now() });
    return { applied: true };
  });
}
