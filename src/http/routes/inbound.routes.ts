import { Router } from 'express';
import type { AppContext } from '../../app/context';
import {
  createInbound,
  createInboundSchema,
  getInbound,
  inboundQuerySchema,
  listInbound,
  patchInbound,
  patchInboundSchema,
} from '../../restocks';
import { parseInput } from '../../platform/validation';
import { actorOf, type Guards } from '../guards';

/** Expected shipments: recorded by the feed (or an operator), read by feed, operator and viewer. */
export function inboundRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.post('/', g.feed, async (req, res) => {
    const { created, inbound } = await createInbound(
      ctx,
      parseInput(createInboundSchema, req.body, 'body'),
      actorOf(req),
    );
    res
      .status(created ? 201 : 200)
      .location(`/v1/inbound/${encodeURIComponent(inbound.inbound_id)}`)
      .json(inbound);
  });
  r.get('/', g.feedRead, async (req, res) => {
    res.json(await listInbound(ctx.db, parseInput(inboundQuerySchema, req.query, 'query')));
  });
  r.get('/:inbound_id', g.feedRead, async (req, res) => {
    res.json(await getInbound(ctx.db, String(req.params.inbound_id)));
  });
  r.patch('/:inbound_id', g.feed, async (req, res) => {
    const id = (await getInbound(ctx.db, String(req.params.inbound_id))).inbound_id;
    res.json(await patchInbound(ctx, id, parseInput(patchInboundSchema, req.body, 'body'), actorOf(req)));
  });
  return r;
}
