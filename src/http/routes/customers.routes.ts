import { Router } from 'express';
import type { AppContext } from '../../app/context';
import {
  createCustomer,
  createCustomerSchema,
  getCustomer,
  listCustomers,
  listCustomersQuerySchema,
  updateCustomer,
  updateCustomerSchema,
} from '../../customers';
import { refusePrivateTarget } from '../../notifications';
import { idempotencyKeySchema, listOrders, listOrdersQuerySchema } from '../../orders';
import { parseInput } from '../../platform/validation';
import type { Guards } from '../guards';

export function customersRoutes(ctx: AppContext, g: Guards): Router {
  const r = Router();
  // Like an endpoint's url (change 8 of part 2): under deny a non-public webhook_url is 400 at
  // create and PATCH, and it is still checked before each attempt (one stored before).
  const deny = ctx.config.WEBHOOK_PRIVATE_TARGETS === 'deny';
  r.post('/', g.intake, async (req, res) => {
    const rawKey = req.headers['idempotency-key'];
    const key = rawKey === undefined ? undefined : parseInput(idempotencyKeySchema, rawKey, 'Idempotency-Key');
    const input = parseInput(createCustomerSchema, req.body, 'body');
    await refusePrivateTarget(deny, input.webhook_url, 'body.webhook_url');
    const { body, replayed } = await createCustomer(
      ctx,
      input,
      key === undefined ? undefined : { principal: req.principal!.id, key },
    );
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(201).location(`/v1/customers/${body.id}`).json(body);
  });
  r.get('/', g.intakeRead, async (req, res) => {
    res.json(await listCustomers(ctx.db, parseInput(listCustomersQuerySchema, req.query, 'query')));
  });
  r.get('/:id', g.intakeRead, async (req, res) => {
    res.json(await getCustomer(ctx.db, g.id(req.params.id, 'customer')));
  });
  // The contract lets intake create and read customers; changing one is an operator's act.
  r.patch('/:id', g.operator, async (req, res) => {
    const id = g.id(req.params.id, 'customer');
    const input = parseInput(updateCustomerSchema, req.body, 'body');
    await refusePrivateTarget(deny, input.webhook_url, 'body.webhook_url');
    res.json(await updateCustomer(ctx.db, id, input));
  });
  // A customer's orders are orders: feed reads them too (change 15).
  r.get('/:id/orders', g.ordersRead, async (req, res) => {
    const q = parseInput(listOrdersQuerySchema.omit({ customer_id: true }), req.query, 'query');
    const id = (await getCustomer(ctx.db, g.id(req.params.id, 'customer'))).id;
    res.json(await listOrders(ctx.db, { ...q, customer_id: id }));
  });
  return r;
}
