import type { Redis } from 'ioredis';
import type { Config } from '../platform/config';
import { createDb, type Db } from '../platform/db';
import { createRedis } from '../platform/redis';
import { closeQueues, createQueues, type Queues } from '../jobs/queues';
import { setStatsSink, StatsSink, statsKey } from '../platform/metrics';
import { PublishedMarker } from '../jobs/outbox';

/** What services need: configuration, the database (the record) and the queues (transport). */
export interface Context {
  config: Config;
  db: Db;
  redis: Redis;
  queues: Queues;
  stats: StatsSink;
  /** Marks outbox rows published after their jobs were added (batched, off the request path). */
  published: PublishedMarker;
}

export function createContext(config: Config): Context {
  const db = createDb(config.DATABASE_URL, config.DB_POOL_MAX);
  const redis = createRedis(config.REDIS_URL, 'producer');
  const queues = createQueues(config, redis);
  const stats = new StatsSink(redis, statsKey(config.QUEUE_PREFIX));
  setStatsSink(stats);
  return { config, db, redis, queues, stats, published: new PublishedMarker(db) };
}

export async function closeContext(ctx: Context): Promise<void> {
  await ctx.published.close();
  await ctx.stats.close();
  await closeQueues(ctx.queues);
  ctx.redis.disconnect();
  await ctx.db.destroy();
}
