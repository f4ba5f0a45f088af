import { createHash } from 'node:crypto';
import type { Executor } from './db';
import { AppError } from './errors';

/**
 * Idempotency-Key, one semantics for every POST that takes it (orders, customers): the key row,
 * the write and the stored answer share one transaction, so a concurrent duplicate waits on the
 * key and then replays the winner's answer. Same key and same request → the first answer
 * (`replayed`); same key, other request → 422 `idempotency_key_reused`. Keys are scoped by the
 * caller's key id (`principal`) and, for anything but orders, by the resource (`scope`), so one
 * key string used for an order and a customer names two requests. Rows are kept 24 h at least
 * (the maintenance sweep removes older ones).
 */
export const requestHash = (identity: unknown) => createHash('sha256').update(JSON.stringify(identity)).digest('hex');

export interface IdempotencyRow<T> {
  request_hash: string;
  response_body: T | null;
}

/** Claims (principal, key) for this request; false if another request holds or held it. */
export async function claimIdempotencyKey(
  trx: Executor,
  principal: string,
  key: string,
  hash: string,
): Promise<boolean> {
  const claimed = await trx.raw(
    `INSERT INTO idempotency_keys (principal, key, request_hash) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING key`,
    [principal, key, hash],
  );
  return claimed.rows.length > 0;
}

export async function readIdempotencyKey<T>(
  trx: Executor,
  principal: string,
  key: string,
): Promise<IdempotencyRow<T> | undefined> {
  return trx('idempotency_keys').where({ principal, key }).first('request_hash', 'response_body');
}

export async function storeIdempotentResponse(
  trx: Executor,
  principal: string,
  key: string,
  statusCode: number,
  body: unknown,
  orderId?: string,
): Promise<void> {
  await trx('idempotency_keys')
    .where({ principal, key })
    .update({ status_code: statusCode, response_body: body as object, order_id: orderId ?? null });
}

const inProgress = () =>
  new AppError('idempotency_in_progress', 'a request with this Idempotency-Key is in progress; retry shortly');

/**
 * Inside the caller's transaction: replays the stored answer of (principal, key) when the request
 * is the same, refuses another request under it, or else runs `write` and stores its answer.
 */
export async function idempotent<T>(
  trx: Executor,
  at: { principal: string; key: string; hash: string; status: number },
  write: () => Promise<{ body: T; orderId?: string }>,
): Promise<{ body: T; replayed: boolean }> {
  const { principal, key, hash } = at;
  if (!(await claimIdempotencyKey(trx, principal, key, hash))) {
    const prior = await readIdempotencyKey<T>(trx, principal, key);
    if (!prior) throw inProgress();
    if (prior.request_hash !== hash)
      throw new AppError('idempotency_key_reused', 'this Idempotency-Key was used with a different request body', [
        { path: 'Idempotency-Key', message: 'already used with a different body' },
      ]);
    if (!prior.response_body) throw inProgress();
    return { body: prior.response_body, replayed: true };
  }
  const { body, orderId } = await write();
  await storeIdempotentResponse(trx, principal, key, at.status, body, orderId);
  return { body, replayed: false };
}
