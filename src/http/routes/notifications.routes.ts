import { Router } from 'express';
import type { Context } from '../../context';
import type { Guards } from '../app';

/** GET /v1/orders/:id/notifications, POST /v1/notifications/:id/resend (mounted at /v1). */
export function notificationsRoutes(_ctx: Context, _g: Guards): Router {
  return Router();
}
