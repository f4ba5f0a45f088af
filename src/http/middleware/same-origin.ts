import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../../platform/errors';

/**
 * Basic credentials ride along on cross-site requests just like cookies, so a write made with them
 * (the board's, the console's) must come from our own pages: Sec-Fetch-Site (or, failing that,
 * Origin) has to be ours.
 */
export function sameOriginWrites(req: Request, _res: Response, next: NextFunction): void {
  if (['GET', 'HEAD', 'OPTIONS'].includes(req.method)) return next();
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  let crossSite = site !== undefined && site !== 'same-origin' && site !== 'none';
  if (site === undefined && origin !== undefined) {
    try {
      crossSite = new URL(origin).host !== req.headers.host;
    } catch {
      crossSite = true;
    }
  }
  if (crossSite) return next(new AppError('forbidden', 'cross-site requests may not change the board or the console'));
  next();
}
