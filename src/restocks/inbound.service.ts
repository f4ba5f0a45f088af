import { createHash } from 'node:crypto';
import { z } from 'zod';
import { assertLocations } from '../inventory';
import type { Actor } from '../platform/actor';
import type { Context } from '../platform/context';
import type { Executor, Trx } from '../platform/db';
import { ConflictError, InvalidStateError, NotFoundError, ValidationError } from '../platform/errors';
import { runUnitOfWork } from '../platform/unit-of-work';
import { listCursor } from '../platform/validation';
import type { CreateInbound, Inbound, InboundQuery, PatchInbound } from './inbound.schemas';

/** An inbound shipment as the API shows it (statuses: open, received, cancelled). */
export const INBOUND_JSON = (i: string) => `json_build_object('inbound_id', ${i}.inbound_id, 'sku', ${i}.sku,
  'location', ${i}.location, 'quantity', ${i}.quantity, 'received', ${i}.received,
  'outstanding', GREATEST(0, ${i}.quantity - ${i}.received),
  'expected_at', to_char(${i}.expected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'status', ${i}.status)`;

const hashOf = (v: { sku: string; location: string; quantity: number; expected_at: string }) =>
  createHash('sha256')
    .update(JSON.stringify([v.sku, v.location, v.quantity, new Date(v.expected_at).toISOString()]))
    .digest('base64url');

async function readInbound(db: Executor, id: string): Promise<(Inbound & { request_hash: string }) | undefined> {
  const { rows } = await db.raw(
    `SELECT i.request_hash, ${INBOUND_JSON('i')} AS j FROM inbound i WHERE i.inbound_id = ?`,
    [id],
  );
  return rows[0] ? { ...rows[0].j, request_hash: rows[0].request_hash } : undefined;
}

/**
 * Records an expected shipment. The same inbound_id with the same body (sku, location, quantity,
 * expected_at as an instant) again is a replay: 200 with the shipment as it is now; with another
 * body it is 409 `conflict`.
 */
export async function createInbound(
  ctx: Context,
  input: CreateInbound,
  actor: Actor | undefined,
): Promise<{ created: boolean; inbound: Inbound }> {
  const location = input.location ?? 'main';
  const hash = hashOf({ ...input, location });
  const existing = await readInbound(ctx.db, input.inbound_id);
  if (!existing) {
    if (!(await ctx.db('products').where({ sku: input.sku }).first('sku')))
      throw new ValidationError(`unknown SKU ${input.sku}`, [
        { path: 'body.sku', message: `unknown SKU ${input.sku}` },
      ]);
    await assertLocations(ctx.db, [{ code: location, path: 'body.location' }]);
    const inserted = await runUnitOfWork(
      ctx,
      'inbound',
      async (uow) =>
        (
          await uow
            .trx('inbound')
            .insert({
              inbound_id: input.inbound_id,
              sku: input.sku,
              location,
              quantity: input.quantity,
              expected_at: input.expected_at,
              request_hash: hash,
              actor_role: uow.actor.role,
              actor_name: uow.actor.name,
            })
            .onConflict('inbound_id')
            .ignore()
            .returning('inbound_id')
        ).length > 0,
      { actor, retry: false },
    );
    const now = (await readInbound(ctx.db, input.inbound_id))!;
    if (inserted) return { created: true, inbound: strip(now) };
    return replayOrConflict(now, hash);
  }
  return replayOrConflict(existing, hash);
}

function replayOrConflict(stored: Inbound & { request_hash: string }, hash: string) {
  if (stored.request_hash !== hash)
    throw new ConflictError(`inbound_id ${stored.inbound_id} was used with another body`, [
      { path: 'body.inbound_id', message: 'already used with another sku, location, quantity or expected_at' },
    ]);
  return { created: false, inbound: strip(stored) };
}

const strip = ({ request_hash: _h, ...i }: Inbound & { request_hash: string }): Inbound => i;

export async function getInbound(db: Executor, id: string): Promise<Inbound> {
  const i = await readInbound(db, id);
  if (!i) throw new NotFoundError('inbound shipment');
  return strip(i);
}

/**
 * Changes quantity or expected_at, or cancels. A cancelled shipment stays cancelled: another
 * change to it is 409 `invalid_state` (cancelling it again is a no-op). The status follows the
 * figures: `received` once nothing is outstanding, `open` again if the quantity is raised.
 */
export async function patchInbound(ctx: Context, id: string, input: PatchInbound, actor?: Actor): Promise<Inbound> {
  await runUnitOfWork(
    ctx,
    'inbound',
    async (uow) => {
      const { trx } = uow;
      const row = await trx('inbound').where({ inbound_id: id }).forUpdate().first('status');
      if (!row) throw new NotFoundError('inbound shipment');
      if (row.status === 'cancelled') {
        if (input.quantity === undefined && input.expected_at === undefined) return;
        throw new InvalidStateError(`inbound ${id} is cancelled`);
      }
      await trx.raw(
        `UPDATE inbound i SET quantity = COALESCE(?::bigint, i.quantity), expected_at = COALESCE(?::timestamptz, i.expected_at),
                status = CASE WHEN ?::text = 'cancelled' THEN 'cancelled'
                              WHEN i.received >= COALESCE(?::bigint, i.quantity) THEN 'received' ELSE 'open' END,
                updated_at = now()
          WHERE i.inbound_id = ?`,
        [input.quantity ?? null, input.expected_at ?? null, input.status ?? null, input.quantity ?? null, id],
      );
    },
    { actor },
  );
  return getInbound(ctx.db, id);
}

const inboundCursor = listCursor('inbound', z.tuple([z.iso.datetime(), z.string()]));

/** By expected_at, then inbound_id (keyset paging). */
export async function listInbound(
  db: Executor,
  q: InboundQuery,
): Promise<{ data: Inbound[]; next_cursor: string | null }> {
  const after = inboundCursor.decode(q.cursor);
  const query = db('inbound as i')
    .select(db.raw(`${INBOUND_JSON('i')} AS j`))
    .orderBy([{ column: 'i.expected_at' }, { column: 'i.inbound_id' }])
    .limit(q.limit + 1);
  if (q.sku) query.where('i.sku', q.sku);
  if (q.status) query.where('i.status', q.status);
  if (after) query.whereRaw('(i.expected_at, i.inbound_id) > (?::timestamptz, ?)', after);
  const rows: Inbound[] = (await query).map((r: any) => r.j);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    data: page,
    next_cursor: rows.length > q.limit ? inboundCursor.encode([last.expected_at, last.inbound_id]) : null,
  };
}

/** A restock received against an inbound shipment (in the receipt's transaction): `received` rises. */
export async function receiveAgainstInbound(trx: Trx, id: string, quantity: number): Promise<void> {
  // In SET every column is the row's value before this update (the latest committed, once locked).
  await trx.raw(
    `UPDATE inbound SET received = received + ?::bigint, updated_at = now(),
            status = CASE WHEN status = 'cancelled' THEN 'cancelled'
                          WHEN received + ?::bigint >= quantity THEN 'received' ELSE 'open' END
      WHERE inbound_id = ?`,
    [quantity, quantity, id],
  );
}
