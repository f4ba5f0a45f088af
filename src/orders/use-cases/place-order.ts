import { v7 as uuidv7 } from 'uuid';
import { systemActor, type Actor } from '../../platform/actor';
import type { Context } from '../../platform/context';
import { ConflictError } from '../../platform/errors';
import { GroupCommit } from '../../platform/group-commit';
import { runStatement, runUnitOfWork } from '../../platform/unit-of-work';
import type { PlaceOrder } from '../orders.schemas';
import { idempotent, requestHash } from '../../platform/idempotency';
import { insertOrders, type Accepted, type Duplicate, type Placed } from '../sql/insert-orders';

type Pending = { id: string; input: PlaceOrder; actor: Actor };

/**
 * Intake without an Idempotency-Key goes through group commit: requests that arrive while an
 * insert runs are inserted together by the next one (one statement, one commit, one addBulk). Each
 * request is answered once its own order and outbox row are committed; the group's jobs are added
 * in the background meanwhile, so the next group's insert need not wait for Redis. The inserts
 * run on the intake's own connections (ctx.intakeDb), not the pool other requests share.
 */
function createIntake(ctx: Context): GroupCommit<Pending, Accepted | Duplicate> {
  return new GroupCommit<Pending, Accepted | Duplicate>({
    maxBatch: ctx.config.INTAKE_BATCH_MAX,
    maxInFlight: ctx.config.INTAKE_IN_FLIGHT,
    commit: (group) =>
      runStatement(
        ctx,
        async (sink) => {
          const placed = await insertOrders(ctx.intakeDb ?? ctx.db, group);
          const stored = placed.filter((p): p is Placed => !('duplicate' in p));
          sink.jobsWritten(stored.map((p) => p.outbox));
          return placed.map((p) => ('duplicate' in p ? p : p.accepted));
        },
        { publish: 'background' },
      ),
  });
}

const intakes = new WeakMap<Context, GroupCommit<Pending, Accepted | Duplicate>>();
function intakeOf(ctx: Context): GroupCommit<Pending, Accepted | Duplicate> {
  let g = intakes.get(ctx);
  if (!g) intakes.set(ctx, (g = createIntake(ctx)));
  return g;
}

/** change 7: one order per (key name, external_ref); the one that holds it is named (Location). */
function duplicateRef(d: Duplicate): never {
  throw new ConflictError(
    'an order with this external_ref was already placed with this key name',
    [{ path: 'external_ref', message: `already used by order ${d.existing ?? '(unknown)'}` }],
    d.existing ? `/v1/orders/${d.existing}` : undefined,
  );
}
const accepted = (r: Accepted | Duplicate): Accepted => ('duplicate' in r ? duplicateRef(r) : r);

/**
 * Intake. The order and its outbox row are committed before this returns; the job (job id =
 * order id) is added at once in the background, or by the relay if Redis cannot take it now.
 * With an Idempotency-Key the key row, the order and the stored response share one transaction,
 * so concurrent duplicates wait on the key and replay the winner's response.
 */
export async function placeOrder(
  ctx: Context,
  principal: string,
  input: PlaceOrder,
  key?: string,
  actor: Actor = systemActor('intake'),
): Promise<{ body: Accepted; replayed: boolean }> {
  if (key === undefined)
    return { body: accepted(await intakeOf(ctx).submit({ id: uuidv7(), input, actor })), replayed: false };
  // The request's identity is the validated order: zod emits its keys in schema order with
  // defaults applied, so key order and omitted defaults do not make a different request; nor do a
  // UUID's letter case or an explicit null external_ref (the order stored would be the same). The
  // metadata is part of it, compared as a set of pairs; none (or {}) leaves the identity as it was
  // before metadata existed, so keys stored by an older version still replay.
  const metadata = Object.entries(input.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const identity = {
    ...input,
    customer_id: input.customer_id.toLowerCase(),
    external_ref: input.external_ref ?? undefined,
    metadata: metadata.length ? metadata : undefined,
  };
  const hash = requestHash(identity);
  return runUnitOfWork(
    ctx,
    'intake',
    (uow) =>
      idempotent(uow.trx, { principal, key, hash, status: 202 }, async () => {
        const [placed] = await insertOrders(uow.trx, [{ id: uuidv7(), input, actor }]);
        if ('duplicate' in placed) duplicateRef(placed);
        uow.jobsWritten([placed.outbox]);
        return { body: placed.accepted, orderId: placed.accepted.id };
      }),
    { retry: false, publish: 'background' },
  );
}
