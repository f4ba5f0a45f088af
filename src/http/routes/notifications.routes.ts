import { Router } from 'express';
import type { AppContext } from '../../app/context';
import { listOrderNotifications, resendNotification } from '../../notifications';
import { emptyBodySchema } from '../../orders';
import { parseInput } from '../../platform/validation';
import type { Guards } from '../guards';

/** GET /v1/orders/:id/notifications, POST /v1/notifications/:id/resend (mounted at /v1). */
export function notificationsRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.get('/orders/:id/notifications', g.ordersRead, async (req, res) => {
    res.json(await listOrderNotifications(ctx.db, g.id(req.params.id, 'order')));
  });
  r.post('/notifications/:id/resend', g.operator, async (req, res) => {
    const id = g.id(req.params.id, 'notification');
    parseInput(emptyBodySchema, req.body, 'body');
    res.status(202).json(await resendNotification(ctx, id));
  });
  return r;
}
