import { Router } from 'express';
import type { AppContext } from '../../app/context';
import { eventsQuerySchema, listEvents, stampSequences } from '../../events';
import { parseInput } from '../../platform/validation';
import type { Guards } from '../guards';

/** GET /v1/events: the feed of every event in `sequence` order, followed with `next_cursor`. */
export function eventsRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.get('/', g.intakeRead, async (req, res) => {
    const q = parseInput(eventsQuerySchema, req.query, 'query');
    // Number what has committed since the sequencer's last run (a no-op when another process is at it),
    // so a reader is not a sequencer interval behind.
    await stampSequences(ctx.db);
    res.json(await listEvents(ctx.db, q));
  });
  return r;
}
