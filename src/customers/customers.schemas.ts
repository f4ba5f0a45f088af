import { z } from 'zod';
import { emailSchema, httpUrl, limitSchema, metadataSchema } from '../platform/validation';

/** A time as sent (ISO 8601, UTC); `format: date-time` in the OpenAPI document. */
const timestamp = z.string().meta({ format: 'date-time' });

const name = z.string().trim().min(1).max(200);
/** Internationalised addresses too (`zoë@exämple.com`); unique case-insensitively. */
const email = emailSchema;
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
  metadata: metadataSchema.optional(),
});
export const updateCustomerSchema = z
  .object({
    email: email.optional(),
    name: name.optional(),
    phone: phone.optional(),
    webhook_url: httpUrl.nullable().optional(),
    /** A blocked customer's orders are rejected by the worker ("customer is blocked"). */
    blocked: z.boolean().optional(),
    /** Replaces the customer's metadata as a whole. */
    metadata: metadataSchema.optional(),
  })
  .refine(
    (v) => Object.values(v).some((x) => x !== undefined),
    'at least one of email, name, phone, webhook_url, blocked, metadata is required',
  );

export const listCustomersQuerySchema = z.object({
  email: z.string().trim().min(1).max(254).optional().describe('matched case-insensitively, whole address'),
  limit: limitSchema,
  cursor: z.string().max(500).optional(),
});

export type CreateCustomer = z.infer<typeof createCustomerSchema>;
export type UpdateCustomer = z.infer<typeof updateCustomerSchema>;
export type ListCustomersQuery = z.infer<typeof listCustomersQuerySchema>;

export const customerSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  name: z.string(),
  phone: z.string().nullable(),
  webhook_url: z.string().nullable(),
  blocked: z.boolean(),
  metadata: z.record(z.string(), z.string()).describe('as given ({} when none was)'),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Customer = z.infer<typeof customerSchema>;
export const customerPageSchema = z.object({ data: z.array(customerSchema), next_cursor: z.string().nullable() });
