import { Router } from 'express';
import type { Context } from '../../app/context';
import {
  adjustmentSchema, adjustStock, createProduct, createProductSchema, getProduct, inventoryQuerySchema, listInventory,
  updateProduct, updateProductSchema,
} from '../../inventory';
import { logger } from '../../platform/logger';
import { allocateSkus } from '../../orders';
import { parseInput } from '../../platform/validation';
import type { Guards } from '../app';

export function productsRoutes(ctx: Context, g: Guards): Router {
  const r = Router();
  r.post('/', g.operator, async (req, res) => {
    const product = await createProduct(ctx.db, parseInput(createProductSchema, req.body, 'body'));
    res.status(201).location(`/v1/products/${encodeURIComponent(product.sku)}`).json(product);
  });
  r.get('/:sku', g.operator, async (req, res) => { res.json(await getProduct(ctx.db, String(req.params.sku))); });
  r.patch('/:sku', g.operator, async (req, res) => {
    res.json(await updateProduct(ctx.db, (await getProduct(ctx.db, String(req.params.sku))).sku, parseInput(updateProductSchema, req.body, 'body')));
  });
  return r;
}

export function inventoryRoutes(ctx: Context, g: Guards): Router {
  const r = Router();
  r.get('/', g.operator, async (req, res) => { res.json(await listInventory(ctx.db, parseInput(inventoryQuerySchema, req.query, 'query'))); });
  r.post('/:sku/adjustments', g.operator, async (req, res) => {
    const sku = (await getProduct(ctx.db, String(req.params.sku))).sku;
    const movement = await adjustStock(ctx.db, sku, parseInput(adjustmentSchema, req.body, 'body'));
    if (movement.quantity > 0) {
      // Stock arrived: serve the waiting lines. The adjustment is committed, so a failure here must not turn
      // into an error the client would retry (adding twice); the maintenance sweep serves what was missed.
      try {
        await allocateSkus(ctx, [sku]);
        return void res.status(201).json({ ...movement, stock: (await getProduct(ctx.db, sku)).stock });
      } catch (err) {
        logger.warn({ err, sku, requestId: req.requestId }, 'allocation after an adjustment failed; the maintenance sweep will serve it');
      }
    }
    res.status(201).json(movement);
  });
  return r;
}
