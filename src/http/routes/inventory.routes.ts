import { Router } from 'express';
import type { AppContext } from '../../app/context';
import {
  adjustmentSchema,
  adjustStock,
  createProduct,
  createProductSchema,
  getProduct,
  inventoryQuerySchema,
  listInventory,
  updateProduct,
  updateProductSchema,
  transferSchema,
  transferStock,
  createLocation,
  createLocationSchema,
  listLocations,
  getLocation,
  updateLocation,
  updateLocationSchema,
  countSchema,
} from '../../inventory';
import { applyCount, getCount } from '../../orders';
import { skuQueue } from '../../orders';
import { INBOUND_JSON } from '../../restocks';
import { parseInput } from '../../platform/validation';
import { actorOf, type Guards } from '../guards';

export function productsRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.post('/', g.operator, async (req, res) => {
    const product = await createProduct(ctx, parseInput(createProductSchema, req.body, 'body'), actorOf(req));
    res
      .status(201)
      .location(`/v1/products/${encodeURIComponent(product.sku)}`)
      .json(product);
  });
  r.get('/:sku', g.catalog, async (req, res) => {
    res.json(await getProduct(ctx.db, String(req.params.sku)));
  });
  r.patch('/:sku', g.operator, async (req, res) => {
    res.json(
      await updateProduct(
        ctx.db,
        (await getProduct(ctx.db, String(req.params.sku))).sku,
        parseInput(updateProductSchema, req.body, 'body'),
      ),
    );
  });
  return r;
}

export function inventoryRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.post('/counts', g.feed, async (req, res) => {
    const outcome = await applyCount(ctx, parseInput(countSchema, req.body, 'body'), actorOf(req));
    res.status(202).json(outcome.accepted ? { accepted: true } : { accepted: false, duplicate: true });
  });
  r.get('/counts/:count_id', g.countRead, async (req, res) => {
    res.json(await getCount(ctx.db, String(req.params.count_id)));
  });
  r.get('/', g.catalog, async (req, res) => {
    res.json(await listInventory(ctx.db, parseInput(inventoryQuerySchema, req.query, 'query')));
  });
  r.get('/:sku/queue', g.read, async (req, res) => {
    const sku = (await getProduct(ctx.db, String(req.params.sku))).sku;
    res.json(await skuQueue(ctx.db, sku, INBOUND_JSON));
  });
  r.post('/:sku/adjustments', g.operator, async (req, res) => {
    const sku = (await getProduct(ctx.db, String(req.params.sku))).sku;
    res.status(201).json(await adjustStock(ctx, sku, parseInput(adjustmentSchema, req.body, 'body'), actorOf(req)));
  });
  r.post('/:sku/transfers', g.operator, async (req, res) => {
    const sku = (await getProduct(ctx.db, String(req.params.sku))).sku;
    res.status(201).json(await transferStock(ctx, sku, parseInput(transferSchema, req.body, 'body'), actorOf(req)));
  });
  return r;
}

export function locationsRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.post('/', g.operator, async (req, res) => {
    const location = await createLocation(ctx.db, parseInput(createLocationSchema, req.body, 'body'));
    res
      .status(201)
      .location(`/v1/locations/${encodeURIComponent(location.code)}`)
      .json(location);
  });
  r.get('/', g.read, async (_req, res) => {
    res.json(await listLocations(ctx.db));
  });
  r.get('/:code', g.read, async (req, res) => {
    res.json(await getLocation(ctx.db, String(req.params.code)));
  });
  r.patch('/:code', g.operator, async (req, res) => {
    res.json(
      await updateLocation(
        ctx,
        String(req.params.code),
        parseInput(updateLocationSchema, req.body, 'body'),
        actorOf(req),
      ),
    );
  });
  return r;
}
