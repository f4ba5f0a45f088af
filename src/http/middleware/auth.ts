import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { ApiKey, Role } from '../../platform/config';
import { AppError } from '../../platform/errors';

/** `id` is a short digest of the key itself: stable when API_KEYS is reordered, never the key. */
export interface Principal {
  role: Role;
  name: string;
  id: string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Finds the key in constant time per candidate (hashes first, so lengths never leak). */
export function makeKeyLookup(keys: ApiKey[]): (presented: string) => Principal | undefined {
  const table = keys.map((k) => ({
    hash: digest(k.key),
    role: k.role,
    name: k.name,
    id: digest(`orderflow:${k.key}`).toString('hex').slice(0, 24),
  }));
  return (presented) => {
    const h = digest(presented);
    let found: Principal | undefined;
    for (const k of table) if (timingSafeEqual(h, k.hash) && !found) found = { role: k.role, name: k.name, id: k.id };
    return found;
  };
}

export function presentedKey(req: Request, allowBasic: boolean): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const [scheme, value] = header.split(/\s+/, 2);
  if (/^bearer$/i.test(scheme) && value) return value;
  if (allowBasic && /^basic$/i.test(scheme) && value) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : undefined;
  }
  return undefined;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      principal?: Principal;
      requestId: string;
    }
  }
}

/**
 * Role check. `operator` may do everything. With `browser: true` (board, dashboard, metrics) the
 * operator key is also accepted as the HTTP Basic password, and a 401 asks the browser for it.
 */
export function requireRole(
  lookup: (k: string) => Principal | undefined,
  roles: Role[],
  opts: { browser?: boolean } = {},
) {
  return (req: Request, res: Response, next: NextFunction) => {
    const key = presentedKey(req, !!opts.browser);
    const principal = key === undefined ? undefined : lookup(key);
    if (!principal) {
      if (opts.browser) res.setHeader('WWW-Authenticate', 'Basic realm="orderflow operators", charset="UTF-8"');
      return next(new AppError('unauthorized', key === undefined ? 'missing API key' : 'unknown API key'));
    }
    if (principal.role !== 'operator' && !roles.includes(principal.role)) {
      return next(new AppError('forbidden', `role ${principal.role} may not do this`));
    }
    req.principal = principal;
    next();
  };
}
