import { Redis } from 'ioredis';
import { v7 as uuidv7 } from 'uuid';
import type { AppContext } from '../../src/app/context';
import { JOB } from '../../src/jobs/queues';

export interface RedisMemoryResult {
  jobs: number;
  used_memory_delta: number;
  bytes_per_job: number;
  key_bytes_per_job: number;
  keys: number;
}

async function usedMemory(r: Redis): Promise<number> {
  const info = await r.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

/** Sum of MEMORY USAGE over every key under the prefix (independent of other users of this Redis). */
async function keyBytes(r: Redis, prefix: string): Promise<{ bytes: number; keys: number }> {
  let cursor = '0';
  let bytes = 0;
  let keys = 0;
  do {
    const [next, batch] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (batch.length) {
      const p = r.pipeline();
      for (const k of batch) p.memory('USAGE', k, 'SAMPLES', 0);
      for (const [, v] of (await p.exec()) ?? []) bytes += Number(v ?? 0);
      keys += batch.length;
    }
  } while (cursor !== '0');
  return { bytes, keys };
}

/**
 * `jobs` order jobs waiting in the real `orders` queue (its default job options) with no worker:
 * the exact intake job shape, name `process-order`, data {orderId}, job id = the order's uuid.
 * They are added with queue.addBulk in chunks of 1000 (what publishRows calls), not through HTTP.
 * Reports INFO used_memory delta / jobs (the figure) and, as a cross-check that other users of
 * the shared Redis cannot disturb, the sum of MEMORY USAGE over the prefix's keys / jobs.
 */
export async function measureQueuedOrderMemory(ctx: AppContext, jobs: number): Promise<RedisMemoryResult> {
  const r = new Redis(ctx.config.REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    await ctx.queues.orders.waitUntilReady();
    await ctx.queues.orders.add('warm-up', { orderId: uuidv7() }, { jobId: uuidv7() }); // creates the queue's meta keys
    const keys0 = await keyBytes(r, ctx.config.QUEUE_PREFIX);
    const before = await usedMemory(r);
    for (let i = 0; i < jobs; i += 1000) {
      await ctx.queues.orders.addBulk(
        Array.from({ length: Math.min(1000, jobs - i) }, () => {
          const orderId = uuidv7();
          return { name: JOB.processOrder, data: { orderId }, opts: { jobId: orderId } };
        }),
      );
    }
    const after = await usedMemory(r);
    const keys1 = await keyBytes(r, ctx.config.QUEUE_PREFIX);
    const waiting = await ctx.queues.orders.getWaitingCount();
    if (waiting < jobs) throw new Error(`only ${waiting} of ${jobs} jobs are waiting`);
    return {
      jobs,
      used_memory_delta: after - before,
      bytes_per_job: (after - before) / jobs,
      key_bytes_per_job: (keys1.bytes - keys0.bytes) / jobs,
      keys: keys1.keys,
    };
  } finally {
    r.disconnect();
  }
}
