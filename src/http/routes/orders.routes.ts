import { Router } from 'express';
import type { AppContext } from '../../app/context';
import {
  cancelOrder,
  cancelOrderSchema,
  emptyBodySchema,
  fulfillOrder,
  getOrder,
  idempotencyKeySchema,
  listOrders,
  listOrdersQuerySchema,
  patchOrder,
  patchOrderSchema,
  placeOrder,
  placeOrderSchema,
  retryOrder,
  returnInputSchema,
  returnOrder,
  shipmentInputSchema,
  shipOrder,
  listShipments,
  listReturns,
  orderTimeline,
} from '../../orders';
import { parseInput } from '../../platform/validation';
import { actorOf, type Guards } from '../guards';

export function ordersRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.post('/', g.intake, async (req, res) => {
    const rawKey = req.headers['idempotency-key'];
    const key = rawKey === undefined ? undefined : parseInput(idempotencyKeySchema, rawKey, 'Idempotency-Key');
    const input = parseInput(placeOrderSchema, req.body, 'body');
    const { body, replayed } = await placeOrder(ctx, req.principal!.id, input, key, actorOf(req));
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(202).location(`/v1/orders/${body.id}`).json(body);
  });
  r.get('/', g.ordersRead, async (req, res) => {
    res.json(await listOrders(ctx.db, parseInput(listOrdersQuerySchema, req.query, 'query')));
  });
  r.get('/:id', g.ordersRead, async (req, res) => {
    res.json(await getOrder(ctx.db, g.id(req.params.id, 'order')));
  });
  r.patch('/:id', g.intake, async (req, res) => {
    const id = g.id(req.params.id, 'order');
    res.status(202).json(await patchOrder(ctx, id, parseInput(patchOrderSchema, req.body, 'body'), actorOf(req)));
  });
  const cancel = async (req: any, res: any) => {
    const id = g.id(req.params.id, 'order');
    res.json(await cancelOrder(ctx, id, parseInput(cancelOrderSchema, req.body, 'body').reason, actorOf(req)));
  };
  r.post('/:id/cancel', g.intake, cancel);
  r.delete('/:id', g.intake, cancel);
  r.post('/:id/fulfill', g.feed, async (req, res) => {
    const id = g.id(req.params.id, 'order');
    parseInput(emptyBodySchema, req.body, 'body');
    res.json(await fulfillOrder(ctx, id, actorOf(req)));
  });
  r.post('/:id/retry', g.operator, async (req, res) => {
    const id = g.id(req.params.id, 'order');
    parseInput(emptyBodySchema, req.body, 'body');
    res.status(202).json(await retryOrder(ctx, id, actorOf(req)));
  });
  r.post('/:id/shipments', g.feed, async (req, res) => {
    const id = g.id(req.params.id, 'order');
    const { shipment, replayed } = await shipOrder(
      ctx,
      id,
      parseInput(shipmentInputSchema, req.body, 'body'),
      actorOf(req),
    );
    res.status(replayed ? 200 : 201).json(shipment);
  });
  r.get('/:id/timeline', g.intakeRead, async (req, res) => {
    res.json(await orderTimeline(ctx.db, g.id(req.params.id, 'order')));
  });
  r.get('/:id/shipments', g.ordersRead, async (req, res) => {
    const id = (await getOrder(ctx.db, g.id(req.params.id, 'order'))).id;
    res.json({ data: await listShipments(ctx.db, id) });
  });
  r.post('/:id/returns', g.feed, async (req, res) => {
    const id = g.id(req.params.id, 'order');
    const { ret, replayed } = await returnOrder(ctx, id, parseInput(returnInputSchema, req.body, 'body'), actorOf(req));
    res.status(replayed ? 200 : 201).json(ret);
  });
  r.get('/:id/returns', g.ordersRead, async (req, res) => {
    const id = (await getOrder(ctx.db, g.id(req.params.id, 'order'))).id;
    res.json({ data: await listReturns(ctx.db, id) });
  });
  return r;
}
