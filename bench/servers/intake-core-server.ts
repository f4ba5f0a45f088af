// Diagnostic for the intake figure: the durable core of POST /v1/orders without the app around it.
// express.json + the same zod schema + placeOrder (PostgreSQL commit, then the job added), and
// none of createApp's middleware (request id, access log, metrics, helmet, auth, routers).
// Its rate, between the ceiling's and the app's, splits the gap into durability and HTTP layers.
import express from 'express';
import { loadConfigOrExit } from '../../src/platform/config';
import { closeContext, createContext } from '../../src/app/context';
import { placeOrder, placeOrderSchema } from '../../src/orders';
import { redisReady, serveForBench } from './serve';

const ctx = createContext(loadConfigOrExit());
const app = express();
app.use(express.json());
app.post('/v1/orders', async (req, res) => {
  const parsed = placeOrderSchema.safeParse(req.body);
  if (!parsed.success) {
    res.status(400).json({ error: { code: 'validation_failed' } });
    return;
  }
  const { body } = await placeOrder(ctx, 'intake#core', parsed.data);
  res.status(202).location(`/v1/orders/${body.id}`).json(body);
});
serveForBench(app, redisReady(ctx.redis), () => closeContext(ctx));
