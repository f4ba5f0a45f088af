import { Router } from 'express';
import type { AppContext } from '../../app/context';
import { parseRestockRequest, receiveRestocks } from '../../restocks';
import { parseInput } from '../../platform/validation';
import type { Guards } from '../guards';

export function restocksRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.post('/', g.feed, async (req, res) => {
    const events = parseRestockRequest(req.body, (s, v) => parseInput(s, v, 'body'));
    res
      .status(202)
      .json(await receiveRestocks(ctx, events, req.body && typeof req.body === 'object' && 'events' in req.body));
  });
  return r;
}
