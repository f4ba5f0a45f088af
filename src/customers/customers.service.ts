import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { Context } from '../platform/context';
import type { Db, Executor } from '../platform/db';
import { ConflictError, NotFoundError } from '../platform/errors';
import { idempotent, requestHash } from '../platform/idempotency';
import { runUnitOfWork } from '../platform/unit-of-work';
import { listCursor, uuidParam } from '../platform/validation';
import type { CreateCustomer, Customer, ListCustomersQuery, UpdateCustomer } from './customers.schemas';

interface CustomerRow {
  id: string;
  email: string;
  name: string;
  phone: string | null;
  webhook_url: string | null;
  blocked: boolean;
  metadata: Record<string, string> | null;
  created_at: Date;
  updated_at: Date;
}

const toCustomer = (r: CustomerRow): Customer => ({
  id: r.id,
  email: r.email,
  name: r.name,
  phone: r.phone ?? null,
  webhook_url: r.webhook_url ?? null,
  blocked: !!r.blocked,
  metadata: r.metadata ?? {},
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
});

const emailTaken = (err: any) => err?.code === '23505' && String(err?.constraint ?? '').includes('email');

/** 409 naming the customer that holds the e-mail (Location and details), change 12. */
async function takenBy(db: Executor, email: string): Promise<never> {
  const holder = await db('customers').whereRaw('lower(email) = lower(?)', [email]).first('id');
  throw new ConflictError(
    'a customer with this e-mail already exists',
    [{ path: 'body.email', message: `already taken by customer ${holder?.id ?? '(unknown)'}` }],
    holder ? `/v1/customers/${holder.id}` : undefined,
  );
}

/** The insert; an e-mail taken (case-insensitively) inserts nothing and names its holder. */
async function insertCustomer(db: Executor, input: CreateCustomer): Promise<Customer> {
  const { rows } = await db.raw(
    `INSERT INTO customers (id, email, name, phone, webhook_url, metadata) VALUES (?, ?, ?, ?, ?, ?::json)
     ON CONFLICT ((lower(email))) DO NOTHING RETURNING *`,
    [
      uuidv7(),
      input.email,
      input.name,
      input.phone ?? null,
      input.webhook_url ?? null,
      JSON.stringify(input.metadata ?? {}),
    ],
  );
  if (!rows.length) return takenBy(db, input.email);
  return toCustomer(rows[0]);
}

/**
 * Creates a customer. With an Idempotency-Key (scoped to customers and the caller's key), the
 * same body again replays the first answer and another body is 422, as for orders.
 */
export async function createCustomer(
  ctx: Context,
  input: CreateCustomer,
  idempotency?: { principal: string; key: string },
): Promise<{ body: Customer; replayed: boolean }> {
  if (!idempotency) return { body: await insertCustomer(ctx.db, input), replayed: false };
  const metadata = Object.entries(input.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = requestHash({
    ...input,
    phone: input.phone ?? null,
    webhook_url: input.webhook_url ?? null,
    metadata,
  });
  return runUnitOfWork(
    ctx,
    'customer',
    (uow) =>
      idempotent(
        uow.trx,
        { principal: `customers:${idempotency.principal}`, key: idempotency.key, hash, status: 201 },
        async () => ({ body: await insertCustomer(uow.trx, input) }),
      ),
    { retry: false },
  );
}

export async function getCustomer(db: Db, id: string): Promise<Customer> {
  const row = await db('customers').where({ id }).first();
  if (!row) throw new NotFoundError('customer');
  return toCustomer(row);
}

const customerCursor = listCursor('customers', z.object({ id: uuidParam }));

/** Newest first (ids are UUID v7), keyset on id; `email` is matched whole, case-insensitively (its unique index). */
export async function listCustomers(
  db: Db,
  q: ListCustomersQuery,
): Promise<{ data: Customer[]; next_cursor: string | null }> {
  const after = customerCursor.decode(q.cursor);
  const query = db('customers')
    .orderBy('id', 'desc')
    .limit(q.limit + 1);
  if (q.email !== undefined) query.whereRaw('lower(email) = lower(?)', [q.email]);
  if (after) query.where('id', '<', after.id);
  const rows: CustomerRow[] = await query;
  const page = rows.slice(0, q.limit);
  return {
    data: page.map(toCustomer),
    next_cursor: rows.length > q.limit ? customerCursor.encode({ id: page[page.length - 1].id }) : null,
  };
}

export async function updateCustomer(db: Db, id: string, input: UpdateCustomer): Promise<Customer> {
  const patch: Record<string, unknown> = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  if (input.metadata !== undefined) patch.metadata = db.raw('?::json', [JSON.stringify(input.metadata)]);
  try {
    const [row] = await db('customers')
      .where({ id })
      .update({ ...patch, updated_at: db.fn.now() })
      .returning('*');
    if (!row) throw new NotFoundError('customer');
    return toCustomer(row);
  } catch (err) {
    if (emailTaken(err) && input.email) return takenBy(db, input.email);
    throw err;
  }
}
