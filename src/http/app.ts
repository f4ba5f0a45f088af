import express, { type Express, type Request, type RequestHandler } from 'express';
import helmet from 'helmet';
import type { AppContext } from '../app/context';
import { NotFoundError } from '../platform/errors';
import { uuidParam } from '../platform/validation';
import { makeKeyLookup, requireRole } from './middleware/auth';
import { errorHandler, notFoundHandler } from './middleware/errors';
import { rateLimit } from './middleware/rate-limit';
import { requestLog } from './middleware/request-log';
import { jsonBody, requestId } from './middleware/request';
import { customersRoutes } from './routes/customers.routes';
import { healthRoutes } from './routes/health.routes';
import { inventoryRoutes, productsRoutes } from './routes/inventory.routes';
import { notificationsRoutes } from './routes/notifications.routes';
import { operatorRoutes } from './routes/operators.routes';
import { ordersRoutes } from './routes/orders.routes';
import { restocksRoutes } from './routes/restocks.routes';

export interface Guards {
  intake: RequestHandler; feed: RequestHandler; operator: RequestHandler;
  /** Operator key as Bearer or HTTP Basic password; a browser gets the login prompt. */
  browser: RequestHandler;
  /** A path id that is not a UUID cannot exist: 404. */
  id(value: unknown, what: string): string;
}

/**
 * A guard, then the body: 401 and 403 are decided before a byte of the body is read, so a caller
 * without the right key cannot make the server buffer or parse up to 1 MiB (and gets 401/403, not
 * 400/413/415). Routes with no guard (health, docs) take no body.
 */
const thenBody = (guard: RequestHandler): RequestHandler => (req, res, next) =>
  guard(req, res, (err?: unknown) => (err ? next(err) : jsonBody(req, res, next)));

/** Builds the HTTP app; never listens. */
export function createApp(ctx: AppContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  const lookup = makeKeyLookup(ctx.config.API_KEYS);
  const guards: Guards = {
    intake: thenBody(requireRole(lookup, ['intake'])),
    feed: thenBody(requireRole(lookup, ['feed'])),
    operator: thenBody(requireRole(lookup, ['operator'])),
    browser: thenBody(requireRole(lookup, ['operator'], { browser: true })),
    id(value, what) {
      if (!uuidParam.safeParse(value).success) throw new NotFoundError(what);
      return String(value).toLowerCase();
    },
  };
  app.use(requestId);
  app.use(requestLog);
  app.use(helmet({ contentSecurityPolicy: false }));
  if (ctx.config.RATE_LIMIT_RPS > 0) app.use(rateLimit(ctx.config));
  // The intake path first: fewest layers to walk for the busiest endpoint (the health routes are
  // GETs of their own paths, so after it they answer the same).
  app.use('/v1/orders', ordersRoutes(ctx, guards));
  app.use(healthRoutes(ctx));
  app.use('/v1', notificationsRoutes(ctx, guards));
  app.use('/v1/customers', customersRoutes(ctx, guards));
  app.use('/v1/products', productsRoutes(ctx, guards));
  app.use('/v1/inventory', inventoryRoutes(ctx, guards));
  app.use('/v1/restocks', restocksRoutes(ctx, guards));
  app.use(operatorRoutes(ctx, guards));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}

export type { Request };
