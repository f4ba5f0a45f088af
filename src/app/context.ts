import { createJobPublisher, PublishedMarker } from '../jobs/publisher';
import { closeQueues, createQueues, type Queues } from '../jobs/queues';
import { allocateSkus } from '../orders';
import type { Config } from '../platform/config';
import type { Context } from '../platform/context';
import { createDb } from '../platform/db';
import { setStatsSink, StatsSink, statsKey } from '../platform/metrics';
import { createRedis, type RedisClient } from '../platform/redis';

/** The domain's context plus what the entry points use: the BullMQ queues (board, reconciler) and stats. */
export interface AppContext extends Context {
  redis: RedisClient;
  queues: Queues;
  stats: StatsSink;
  /** Marks outbox rows published after their jobs were added (batched, off the request path). */
  published: PublishedMarker;
}

/** Wires one process: database, Redis, queues, the job publisher, and the after-commit handlers. */
export function createContext(config: Config): AppContext {
  const db = createDb(config.DATABASE_URL, config.DB_POOL_MAX);
  // Opened on first use (pools start empty), so a worker process holds none of these.
  const intakeDb = createDb(config.DATABASE_URL, config.INTAKE_IN_FLIGHT);
  const redis = createRedis(config, 'producer');
  const queues = createQueues(config, redis);
  const stats = new StatsSink(redis, statsKey(config.QUEUE_PREFIX));
  setStatsSink(stats);
  const published = new PublishedMarker(db);
  const ctx: AppContext = {
    config,
    db,
    intakeDb,
    redis,
    queues,
    stats,
    published,
    jobs: createJobPublisher(queues, published),
    afterCommit: { serveSkus: (skus) => allocateSkus(ctx, skus) },
  };
  return ctx;
}

export async function closeContext(ctx: AppContext): Promise<void> {
  await ctx.published.close();
  await ctx.stats.close();
  await closeQueues(ctx.queues);
  ctx.redis.disconnect();
  await ctx.intakeDb?.destroy();
  await ctx.db.destroy();
}

export type { Context };
