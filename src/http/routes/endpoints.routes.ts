import { Router } from 'express';
import type { AppContext } from '../../app/context';
import {
  createEndpoint,
  createEndpointSchema,
  deleteEndpoint,
  getEndpoint,
  listDeliveries,
  listDeliveriesQuerySchema,
  listEndpoints,
  recoverEndpoint,
  recoverEndpointSchema,
  rotateSecret,
  updateEndpoint,
  updateEndpointSchema,
} from '../../notifications';
import { emptyBodySchema } from '../../orders';
import { parseInput } from '../../platform/validation';
import type { Guards } from '../guards';

/** Webhook endpoints (mounted at /v1/webhook-endpoints): operators write, viewers read. */
export function endpointsRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  const id = (v: unknown) => g.id(v, 'webhook endpoint');
  r.post('/', g.operator, async (req, res) => {
    res.status(201).json(await createEndpoint(ctx, parseInput(createEndpointSchema, req.body, 'body')));
  });
  r.get('/', g.read, async (_req, res) => {
    res.json(await listEndpoints(ctx.db));
  });
  r.get('/:id', g.read, async (req, res) => {
    res.json(await getEndpoint(ctx.db, id(req.params.id)));
  });
  r.patch('/:id', g.operator, async (req, res) => {
    const endpointId = id(req.params.id);
    res.json(await updateEndpoint(ctx, endpointId, parseInput(updateEndpointSchema, req.body, 'body')));
  });
  r.delete('/:id', g.operator, async (req, res) => {
    const endpointId = id(req.params.id);
    parseInput(emptyBodySchema, req.body, 'body');
    await deleteEndpoint(ctx.db, endpointId);
    res.status(204).end();
  });
  r.post('/:id/rotate-secret', g.operator, async (req, res) => {
    const endpointId = id(req.params.id);
    parseInput(emptyBodySchema, req.body, 'body');
    res.json(await rotateSecret(ctx.db, endpointId));
  });
  r.post('/:id/recover', g.operator, async (req, res) => {
    const endpointId = id(req.params.id);
    const { since } = parseInput(recoverEndpointSchema, req.body, 'body');
    res.status(202).json(await recoverEndpoint(ctx, endpointId, since));
  });
  r.get('/:id/deliveries', g.read, async (req, res) => {
    const endpointId = id(req.params.id);
    res.json(await listDeliveries(ctx.db, endpointId, parseInput(listDeliveriesQuerySchema, req.query, 'query')));
  });
  return r;
}
