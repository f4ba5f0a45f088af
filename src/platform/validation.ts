import { z } from 'zod';
import { ValidationError } from './errors';

/**
 * Strict input, for every schema: the same schema with every object in it refusing keys it does
 * not declare (z.strictObject semantics), deep through optional, nullable, default, arrays, unions,
 * pipes and records. An object that already says what to do with other keys (a catchall, e.g.
 * z.looseObject) keeps it. Refinements and metadata are kept. `parseInput` applies it to every
 * schema it is given, so a route's body and query schemas are strict without saying so.
 */
const strictCache = new WeakMap<z.ZodType, z.ZodType>();
export function strict<S extends z.ZodType>(schema: S): S {
  const hit = strictCache.get(schema);
  if (hit) return hit as S;
  const out = strictify(schema);
  strictCache.set(schema, out);
  return out as S;
}

function strictify(schema: z.ZodType): z.ZodType {
  const def = (schema as any)._zod.def;
  const s = (x: unknown) => strict(x as z.ZodType);
  let next: Record<string, unknown> | undefined;
  switch (def.type) {
    case 'object': {
      const shape = Object.fromEntries(
        Object.entries(def.shape as Record<string, z.ZodType>).map(([k, v]) => [k, s(v)]),
      );
      next = { ...def, shape, catchall: def.catchall ?? z.never() };
      break;
    }
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'nonoptional':
    case 'readonly':
    case 'catch':
      next = { ...def, innerType: s(def.innerType) };
      break;
    case 'array':
      next = { ...def, element: s(def.element) };
      break;
    case 'pipe':
      next = { ...def, in: s(def.in), out: s(def.out) };
      break;
    case 'union':
      next = { ...def, options: def.options.map(s) };
      break;
    case 'intersection':
      next = { ...def, left: s(def.left), right: s(def.right) };
      break;
    case 'record':
      next = { ...def, valueType: s(def.valueType) };
      break;
    default:
      return schema;
  }
  const clone = (schema as any).clone(next) as z.ZodType;
  const meta = z.globalRegistry.get(schema);
  if (meta) z.globalRegistry.add(clone, meta);
  return clone;
}

/** One {path, message} per issue; an unknown key is named by its own path (a query's: "unknown parameter"). */
function detailsOf(issues: z.core.$ZodIssue[], where: string): { path: string; message: string }[] {
  const join = (p: PropertyKey[]) => [where, ...p.map(String)].filter(Boolean).join('.') || '(root)';
  return issues
    .flatMap((i) =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => ({
            path: join([...i.path, k]),
            message: where === 'query' ? 'unknown parameter' : 'unknown field',
          }))
        : [{ path: join(i.path), message: i.message }],
    )
    .slice(0, 50);
}

/**
 * Parses `input` with `schema`, strictly (see `strict`), or throws ValidationError with one
 * {path, message} per bad field (an unknown field is named `<where>.<path>`: "unknown field").
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, where = ''): z.infer<S> {
  const result = strict(schema).safeParse(input);
  if (result.success) return result.data as z.infer<S>;
  const details = detailsOf(result.error.issues, where);
  throw new ValidationError(
    `invalid ${where || 'request'}: ${details
      .map((d) => `${d.path}: ${d.message}`)
      .slice(0, 3)
      .join('; ')}`,
    details,
  );
}

/**
 * An e-mail address, internationalised ones too (RFC 6531: UTF-8 in the local part and the
 * domain, e.g. `zoë@exämple.com`): one @, a local part of 1–64 without spaces, controls or
 * `<>()[],;:"\\`, a domain of dot-separated labels (letters of any script, digits, hyphens inside)
 * with at least one dot. Stored as given (trimmed).
 */
const EMAIL =
  /^(?!\.)(?!.*\.\.)[^\s@<>()[\],;:"\\\p{Cc}]{1,64}(?<!\.)@(?=.{1,253}$)(?:[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}-]{0,61}[\p{L}\p{N}\p{M}])?\.)+(?:[\p{L}\p{M}]{2,63}|[xX][nN]--[a-zA-Z0-9-]{1,59})$/u;
export const emailSchema = z.string().trim().max(254).regex(EMAIL, 'must be an e-mail address');

/**
 * `metadata` of orders and customers: up to 50 keys of 1–40 characters, each value a string of
 * at most 500 characters. Stored (jsonb) and returned as given.
 */
export const metadataSchema = z
  .record(z.string(), z.string().max(500, 'at most 500 characters'))
  .superRefine((m, ctx) => {
    const keys = Object.keys(m);
    if (keys.length > 50) ctx.addIssue({ code: 'custom', message: 'at most 50 keys' });
    // Characters are code points, as for the values and JSON Schema's maxLength (not UTF-16 units).
    for (const k of keys)
      if (k.length < 1 || [...k].length > 40)
        ctx.addIssue({ code: 'custom', path: [k], message: 'keys are 1-40 characters' });
  })
  .meta({
    description: 'up to 50 keys of 1-40 characters, string values of up to 500 characters; returned as given',
    maxProperties: 50,
    propertyNames: { minLength: 1, maxLength: 40 },
  });

/**
 * An id of the caller's choosing (a restock's event_id, an inbound_id, a shipment_id, a return_id),
 * taken exactly as given: 1–255 characters that neither start nor end with whitespace (such an id
 * is 400, never trimmed into another id).
 */
export const externalIdSchema = z
  .string()
  .min(1)
  .max(255)
  .refine((v) => !/^\s|\s$/.test(v), 'must not start or end with whitespace');

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

/**
 * The page cursors of one list: base64url of `[list, value]`, opaque to clients. A cursor that
 * list did not issue — garbage, malformed, another list's, a value its schema refuses — is 400 on
 * `query.cursor` with one message. Cursors are not signed: an edited value that is still one the
 * list could have issued pages on from there, as a client could by filtering itself.
 */
export function listCursor<S extends z.ZodType>(list: string, schema: S) {
  const encode = (value: z.infer<S>): string => Buffer.from(JSON.stringify([list, value])).toString('base64url');
  const decode = (cursor: string | undefined): z.infer<S> | undefined => {
    if (cursor === undefined || cursor === '') return undefined;
    let raw: unknown;
    try {
      // Only what encode writes: the decoder skips characters outside base64url, so a cursor is
      // checked by encoding what it holds back.
      raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
      if (Buffer.from(JSON.stringify(raw)).toString('base64url') !== cursor) raw = undefined;
    } catch {
      raw = undefined;
    }
    const parsed = Array.isArray(raw) && raw.length === 2 && raw[0] === list ? schema.safeParse(raw[1]) : undefined;
    if (parsed?.success) return parsed.data as z.infer<S>;
    return refuse();
  };
  /** For a cursor that decodes but belongs to another instance of the list (another endpoint's). */
  const refuse = (): never => {
    // How a cursor is made is not the client's business: one message, whatever was wrong with it.
    const message = 'not a cursor this list issued: pass next_cursor back as it came';
    throw new ValidationError(`invalid query: query.cursor: ${message}`, [{ path: 'query.cursor', message }]);
  };
  return { encode, decode, refuse };
}
