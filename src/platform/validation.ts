import { z } from 'zod';
import { ValidationError } from './errors';

/** Parses `input` with `schema` or throws ValidationError with one {path, message} per bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, where = ''): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = result.error.issues.slice(0, 50).map((i) => ({
    path: [where, ...i.path.map(String)].filter(Boolean).join('.') || '(root)',
    message: i.message,
  }));
  throw new ValidationError(
    `invalid ${where || 'request'}: ${details
      .map((d) => `${d.path}: ${d.message}`)
      .slice(0, 3)
      .join('; ')}`,
    details,
  );
}

export const uuidParam = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID');
export const skuSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 . _ -');
export const limitSchema = z.coerce.number().int().min(1).max(200).default(50);
export const httpUrl = z
  .string()
  .max(2048)
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && !!u.hostname;
    } catch {
      return false;
    }
  }, 'must be an http or https URL');

/** Opaque cursor: base64url of a JSON value. Malformed → validation error on `cursor`. */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
export function decodeCursor<S extends z.ZodType>(schema: S, cursor: string | undefined): z.infer<S> | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    raw = undefined;
  }
  return parseInput(schema, raw, 'cursor');
}
