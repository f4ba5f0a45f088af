import type { Context } from '../platform/context';
import type { Trx } from '../platform/db';
import { ConflictError, ValidationError, type ErrorDetail } from '../platform/errors';
import { applyStockChanges, assertLocations, readStockForWrite } from '../inventory';
import { JOB, QUEUES } from '../platform/job-catalog';
import { runUnitOfWork } from '../platform/unit-of-work';
import { receiveAgainstInbound } from './inbound.service';
import type { RestockEvent } from './restocks.schemas';

/** Job ids may not contain ':'; event ids are free text, so the job id is a digest of it. */
export function restockJobId(eventId: string): string {
  return `restock-${Buffer.from(eventId).toString('base64url')}`.slice(0, 400);
}

/**
 * Records restock events (each `event_id` once, forever) and their jobs in one transaction.
 * The whole batch is checked first: one unknown SKU, location or inbound shipment, or one
 * `event_id` twice, and nothing is stored (400). An `event_id` stored before means one thing: sent
 * again with the same sku, quantity, location and inbound_id it is a duplicate (not applied again);
 * with any of them different the batch is 409 `conflict` naming it, and nothing is stored. The
 * comparison is made after the insert, against the row that won it, so two batches racing with one
 * new id and different contents cannot both pass.
 */
export async function receiveRestocks(
  ctx: Context,
  events: RestockEvent[],
  batch = events.length > 1,
): Promise<{ accepted: number; duplicates: number }> {
  const at = (i: number, field: string) => (batch ? `body.events.${i}.${field}` : `body.${field}`);
  const firstIndex = new Map<string, number>();
  const repeated: ErrorDetail[] = [];
  events.forEach((e, i) => {
    const first = firstIndex.get(e.event_id);
    if (first === undefined) firstIndex.set(e.event_id, i);
    else repeated.push({ path: at(i, 'event_id'), message: `event_id ${e.event_id} is also events.${first}` });
  });
  if (repeated.length)
    throw new ValidationError(`${repeated[0].message}: one event_id twice in the batch`, repeated.slice(0, 50));
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
          unknown.slice(0, 50).map(({ e, i }) => ({ path: at(i, 'sku'), message: `unknown SKU ${e.sku}` })),
        );
      }
      await assertLocations(
        trx,
        events.flatMap((e, i) => (e.location ? [{ code: e.location, path: at(i, 'location') }] : [])),
      );
      const inbound = await inboundFor(trx, events, at);
      const rows = events.map((e) => ({
        event_id: e.event_id,
        sku: e.sku,
        quantity: e.quantity,
        location: e.location ?? (e.inbound_id ? inbound.get(e.inbound_id)!.location : 'main'),
        inbound_id: e.inbound_id ?? null,
        occurred_at: e.occurred_at ?? null,
      }));
      const inserted = new Set<string>();
      for (let i = 0; i < rows.length; i += 500) {
        for (const r of await trx('restock_events')
          .insert(rows.slice(i, i + 500))
          .onConflict('event_id')
          .ignore()
          .returning('event_id'))
          inserted.add(r.event_id);
      }
      const seen = rows.map((r, i) => ({ r, i })).filter(({ r }) => !inserted.has(r.event_id));
      if (seen.length) {
        const stored = new Map<string, any>(
          (
            await trx('restock_events')
              .whereIn(
                'event_id',
                seen.map(({ r }) => r.event_id),
              )
              .select('event_id', 'sku', 'quantity', 'location', 'inbound_id')
          ).map((s: any) => [s.event_id, s]),
        );
        const clashes: ErrorDetail[] = [];
        for (const { r, i } of seen) {
          const s = stored.get(r.event_id);
          const differs = (['sku', 'quantity', 'location', 'inbound_id'] as const).filter(
            (k) => (s?.[k] ?? null) !== r[k],
          );
          if (differs.length)
            clashes.push({
              path: at(i, 'event_id'),
              message: `event_id ${r.event_id} was received before with another ${differs.join(', ')}`,
            });
        }
        if (clashes.length) throw new ConflictError(`${clashes[0].message}; nothing was applied`, clashes.slice(0, 50));
      }
      await uow.addJobs(
        [...inserted].map((eventId) => ({
          queue: QUEUES.restocks,
          job_name: JOB.applyRestock,
          job_id: restockJobId(eventId),
          data: { eventId },
        })),
      );
      return inserted.size;
    },
    { retry: false },
  );
  return { accepted, duplicates: events.length - accepted };
}

/**
 * The inbound shipments the events name, checked: an unknown inbound_id, one for another SKU, or
 * one at another location than the event names is 400 for the whole batch.
 */
async function inboundFor(
  trx: Trx,
  events: RestockEvent[],
  at: (i: number, f: string) => string,
): Promise<Map<string, { sku: string; location: string }>> {
  const ids = [...new Set(events.flatMap((e) => (e.inbound_id ? [e.inbound_id] : [])))];
  const found = new Map<string, { sku: string; location: string }>(
    ids.length
      ? (await trx('inbound').whereIn('inbound_id', ids).select('inbound_id', 'sku', 'location')).map((r: any) => [
          r.inbound_id,
          r,
        ])
      : [],
  );
  const bad: ErrorDetail[] = [];
  events.forEach((e, i) => {
    if (!e.inbound_id) return;
    const ib = found.get(e.inbound_id);
    if (!ib) bad.push({ path: at(i, 'inbound_id'), message: `unknown inbound_id ${e.inbound_id}` });
    else if (ib.sku !== e.sku)
      bad.push({ path: at(i, 'inbound_id'), message: `inbound ${e.inbound_id} is for SKU ${ib.sku}, not ${e.sku}` });
    else if (e.location && ib.location !== e.location)
      bad.push({
        path: at(i, 'location'),
        message: `inbound ${e.inbound_id} is expected at ${ib.location}, not ${e.location}`,
      });
  });
  if (bad.length) throw new ValidationError(bad[0].message, bad.slice(0, 50));
  return found;
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
    const row = (await readStockForWrite(uow, [ev.sku])).get(ev.sku);
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
    if (ev.inbound_id) await receiveAgainstInbound(trx, ev.inbound_id, ev.quantity);
    return { applied: true };
  });
}
