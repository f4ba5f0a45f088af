import { Router } from 'express';
import type { AppContext } from '../../app/context';
import { errorEnvelope } from '../error-envelope';
import { noQuery } from '../middleware/request';

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<T>((_, rej) => {
        timer = setTimeout(() => rej(new Error('timeout')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The producer connection has no offline queue: while it is still connecting, wait for it (bounded by the caller). */
async function redisPing(ctx: AppContext): Promise<string> {
  const r = ctx.redis;
  if (r.status === 'connecting' || r.status === 'connect' || r.status === 'wait' || r.status === 'reconnecting') {
    await new Promise<void>((resolve, reject) => {
      r.once('ready', resolve);
      setTimeout(() => reject(new Error('redis not ready')), 2000).unref();
    });
  }
  return r.ping();
}

/** /healthz: the process is up. /readyz: PostgreSQL and Redis answer; 503 names the one that does not. */
export function healthRoutes(ctx: AppContext): Router {
  const r = Router();
  r.get('/healthz', noQuery, (_req, res) => {
    res.json({ status: 'ok' });
  });
  r.get('/readyz', noQuery, async (_req, res) => {
    const [pg, redis] = await Promise.allSettled([within(2000, ctx.db.raw('SELECT 1')), within(2000, redisPing(ctx))]);
    const down = [pg.status === 'rejected' ? 'postgresql' : null, redis.status === 'rejected' ? 'redis' : null].filter(
      Boolean,
    ) as string[];
    const checks = {
      postgresql: pg.status === 'fulfilled' ? 'ok' : 'down',
      redis: redis.status === 'fulfilled' ? 'ok' : 'down',
    };
    if (down.length === 0) return void res.json({ status: 'ready', checks });
    res.setHeader('Retry-After', '5');
    res.status(503).json({
      ...errorEnvelope(
        'unavailable',
        `not ready: ${down.join(' and ')} unreachable`,
        down.map((d) => ({ path: d, message: 'unreachable' })),
      ),
      checks,
    });
  });
  return r;
}
