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
} from '../../inventory';
import { parseInput } from '../../platform/validation';
import type { Guards } from '../guards';

export function productsRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  r.post('/', g.operator, async (req, res) => {
    const product = await createProduct(ctx.db, parseInput(createProductSchema, req.body, 'body'));
    res
      .status(201)
      .location(`/v1/products/${encodeURIComponent(product.sku)}`)
      .json(product);
  });
  r.get('/:sku', g.operator, async (req, res) => {
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
  r.get('/', g.operator, async (req, res) => {
    res.json(await listInventory(ctx.db, parseInput(inventoryQuerySchema, req.query, 'query')));
  });
  r.post('/:sku/adjustments', g.operator, async (req, res) => {
    const sku = (await getProduct(ctx.db, String(req.params.sku))).sku;
    res.status(201).json(await adjustStock(ctx, sku, parseInput(adjustmentSchema, req.body, 'body')));
  });
  return r;
}
