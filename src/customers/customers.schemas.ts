import { z } from 'zod';
import { httpUrl } from '../platform/validation';

/** A time as sent (ISO 8601, UTC); `format: date-time` in the OpenAPI document. */
const timestamp = z.string().meta({ format: 'date-time' });

const name = z.string().trim().min(1).max(200);
const email = z.string().trim().max(254).pipe(z.email('must be an e-mail address'));
const phone = z
  .string()
  .trim()
  .max(40)
  .regex(/^[0-9+() .-]*$/, 'must be a phone number')
  .nullable();

export const createCustomerSchema = z.object({
  email,
  name,
  phone: phone.optional(),
  webhook_url: httpUrl.nullable().optional(),
});
export const updateCustomerSchema = z
  .object({
    email: email.optional(),
    name: name.optional(),
    phone: phone.optional(),
    webhook_url: httpUrl.nullable().optional(),
    /** A blocked customer's orders are rejected by the worker ("customer is blocked"). */
    blocked: z.boolean().optional(),
  })
  .refine(
    (v) => Object.values(v).some((x) => x !== undefined),
    'at least one of email, name, phone, webhook_url, blocked is required',
  );

export type CreateCustomer = z.infer<typeof createCustomerSchema>;
export type UpdateCustomer = z.infer<typeof updateCustomerSchema>;

export const customerSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  name: z.string(),
  phone: z.string().nullable(),
  webhook_url: z.string().nullable(),
  blocked: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Customer = z.infer<typeof customerSchema>;
