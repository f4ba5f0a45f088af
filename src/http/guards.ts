import type { Request, RequestHandler } from 'express';
import type { Actor } from '../platform/actor';
import type { ApiKey } from '../platform/config';
import { NotFoundError } from '../platform/errors';
import { ACCESS, type AccessKind } from './access';
import { uuidParam } from '../platform/validation';
import { makeKeyLookup, requireRole } from './middleware/auth';
import { checkQuery, jsonBody } from './middleware/request';
import { OPERATIONS } from './openapi';

/** One guard per access kind (see access.ts), and the path id check. */
export type Guards = Record<AccessKind, RequestHandler> & {
  /** A path id that is not a UUID cannot exist: 404. */
  id(value: unknown, what: string): string;
};

/**
 * A guard, then the body: 401 and 403 are decided before a byte of the body is read, so a caller
 * without the right key cannot make the server buffer or parse up to 1 MiB (and gets 401/403, not
 * 400/413/415). Routes with no guard (health, docs) take no body.
 */
const thenBody =
  (guard: RequestHandler): RequestHandler =>
  (req, res, next) =>
    guard(req, res, (err?: unknown) =>
      err
        ? next(err)
        : jsonBody(req, res, (e?: unknown) => {
            if (e) return next(e);
            try {
              checkQuery(req, takesQuery(req));
            } catch (q) {
              return next(q);
            }
            next();
          }),
    );

/**
 * Whether the matched route declares a query in the operation table (src/http/openapi.ts): one
 * that does parses it strictly with its schema; one that does not refuses every parameter. A
 * route missing from the table is left to its own parsing (the contract test finds it missing).
 */
const QUERY_OF = new Map(OPERATIONS.map((op) => [`${op.method.toUpperCase()} ${op.path}`, !!op.query]));
function takesQuery(req: Request): boolean {
  const route = (req as Request & { route?: { path?: unknown } }).route?.path;
  if (typeof route !== 'string') return true;
  const path = `${req.baseUrl}${route}`.replace(/:(\w+)/g, '{$1}').replace(/(.)\/$/, '$1');
  return QUERY_OF.get(`${req.method === 'HEAD' ? 'GET' : req.method} ${path}`) ?? true;
}

/** The route guards for these keys. */
export function createGuards(apiKeys: ApiKey[]): Guards {
  const lookup = makeKeyLookup(apiKeys);
  const guard = (kind: AccessKind) =>
    thenBody(requireRole(lookup, [...ACCESS[kind]], kind === 'browser' ? { browser: true } : {}));
  return {
    ...(Object.fromEntries((Object.keys(ACCESS) as AccessKind[]).map((k) => [k, guard(k)])) as Record<
      AccessKind,
      RequestHandler
    >),
    id(value, what) {
      if (!uuidParam.safeParse(value).success) throw new NotFoundError(what);
      return String(value).toLowerCase();
    },
  };
}

/** Who a request acts for: its key's role and name (the name is the role unless API_KEYS names the key). */
export function actorOf(req: Request): Actor | undefined {
  const p = req.principal;
  if (!p) return undefined;
  return { role: p.role, name: p.name };
}
