import express, { type Express, type Request } from 'express';
import helmet from 'helmet';
import type { AppContext } from '../app/context';
import { createGuards } from './guards';
import { errorHandler, notFoundHandler } from './middleware/errors';
import { rateLimit } from './middleware/rate-limit';
import { keepMountPath, requestLog } from './middleware/request-log';
import { requestId } from './middleware/request';
import { bulkRoutes } from './routes/bulk.routes';
import { consoleApiBridge, consoleRoutes } from './routes/console.routes';
import { customersRoutes } from './routes/customers.routes';
import { eventsRoutes } from './routes/events.routes';
import { endpointsRoutes } from './routes/endpoints.routes';
import { healthRoutes } from './routes/health.routes';
import { inventoryRoutes, locationsRoutes, productsRoutes } from './routes/inventory.routes';
import { notificationsRoutes } from './routes/notifications.routes';
import { operatorRoutes } from './routes/operators.routes';
import { ordersRoutes } from './routes/orders.routes';
import { restocksRoutes } from './routes/restocks.routes';
import { inboundRoutes } from './routes/inbound.routes';

/** An express app as every server of ours starts: no X-Powered-By, no ETag, the simple query parser. */
export function baseApp(): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  return app;
}

/** Builds the HTTP app; never listens. */
export function createApp(ctx: AppContext): Express {
  const app = baseApp();
  const guards = createGuards(ctx.config.API_KEYS);
  app.use(requestId);
  app.use(requestLog);
  app.use(helmet({ contentSecurityPolicy: false }));
  if (ctx.config.RATE_LIMIT_RPS > 0) app.use(rateLimit(ctx.config, ctx.redis));
  app.use(consoleApiBridge(ctx.config.API_KEYS));
  // The intake path first: fewest layers to walk for the busiest endpoint (the health routes are
  // GETs of their own paths, so after it they answer the same).
  app.use('/v1/orders', keepMountPath, ordersRoutes(ctx, guards));
  app.use(healthRoutes(ctx));
  app.use('/v1', keepMountPath, notificationsRoutes(ctx, guards));
  app.use('/v1/customers', keepMountPath, customersRoutes(ctx, guards));
  app.use('/v1/products', keepMountPath, productsRoutes(ctx, guards));
  app.use('/v1/inventory', keepMountPath, inventoryRoutes(ctx, guards));
  app.use('/v1/locations', keepMountPath, locationsRoutes(ctx, guards));
  app.use('/v1/restocks', keepMountPath, restocksRoutes(ctx, guards));
  app.use('/v1/events', keepMountPath, eventsRoutes(ctx, guards));
  app.use('/v1/bulk-actions', keepMountPath, bulkRoutes(ctx, guards));
  app.use('/v1/inbound', keepMountPath, inboundRoutes(ctx, guards));
  app.use('/v1/webhook-endpoints', keepMountPath, endpointsRoutes(ctx, guards));
  // Mounted at the root: each says so, or a request that passed the /v1 routers unmatched would
  // keep their mount path and be logged as /v1/v1/reports/… (keepMountPath).
  app.use(keepMountPath, operatorRoutes(ctx, guards));
  app.use(keepMountPath, consoleRoutes(guards));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}

export type { Request };
