import { v7 as uuidv7 } from 'uuid';
import type { Db } from '../platform/db';
import { ConflictError, NotFoundError } from '../platform/errors';
import type { CreateCustomer, Customer, UpdateCustomer } from './customers.schemas';

interface CustomerRow {
  id: string;
  email: string;
  name: string;
  phone: string | null;
  webhook_url: string | null;
  blocked: boolean;
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
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
});

const emailTaken = (err: any) => err?.code === '23505' && String(err?.constraint ?? '').includes('email');

export async function createCustomer(db: Db, input: CreateCustomer): Promise<Customer> {
  try {
    const [row] = await db('customers')
      .insert({
        id: uuidv7(),
        email: input.email,
        name: input.name,
        phone: input.phone ?? null,
        webhook_url: input.webhook_url ?? null,
      })
      .returning('*');
    return toCustomer(row);
  } catch (err) {
    if (emailTaken(err))
      throw new ConflictError('a customer with this e-mail already exists', [
        { path: 'email', message: 'already taken' },
      ]);
    throw err;
  }
}

export async function getCustomer(db: Db, id: string): Promise<Customer> {
  const row = await db('customers').where({ id }).first();
  if (!row) throw new NotFoundError('customer');
  return toCustomer(row);
}

export async function updateCustomer(db: Db, id: string, input: UpdateCustomer): Promise<Customer> {
  const patch = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  try {
    const [row] = await db('customers')
      .where({ id })
      .update({ ...patch, updated_at: db.fn.now() })
      .returning('*');
    if (!row) throw new NotFoundError('customer');
    return toCustomer(row);
  } catch (err) {
    if (emailTaken(err))
      throw new ConflictError('a customer with this e-mail already exists', [
        { path: 'email', message: 'already taken' },
      ]);
    throw err;
  }
}
