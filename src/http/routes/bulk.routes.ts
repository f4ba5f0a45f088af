import { Router } from 'express';
import type { AppContext } from '../../app/context';
import {
  bulkRequestSchema,
  countBulk,
  createBulkAction,
  getBulkAction,
  listBulkActions,
  listBulkActionsQuerySchema,
} from '../../bulk';
import { parseInput } from '../../platform/validation';
import { actorOf, type Guards } from '../guards';

/** POST /v1/bulk-actions (dry run or start), GET /v1/bulk-actions (newest first), GET /v1/bulk-actions/:id (progress). */
export function bulkRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.post('/', g.operator, async (req, res) => {
    const body = parseInput(bulkRequestSchema, req.body, 'body');
    if (body.dry_run) {
      res.json(await countBulk(ctx.db, body));
      return;
    }
    const bulk = await createBulkAction(ctx, body, actorOf(req) ?? { role: 'operator', name: 'operator' });
    res.status(202).location(`/v1/bulk-actions/${bulk.id}`).json(bulk);
  });
  r.get('/', g.read, async (req, res) => {
    res.json(await listBulkActions(ctx.db, parseInput(listBulkActionsQuerySchema, req.query, 'query')));
  });
  r.get('/:id', g.read, async (req, res) => {
    res.json(await getBulkAction(ctx.db, g.id(req.params.id, 'bulk action')));
  });
  return r;
}
