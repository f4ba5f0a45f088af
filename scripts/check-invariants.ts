/**
 * `npm run check`: checks the contract's invariants against DATABASE_URL (and the orders queue on
 * REDIS_URL / QUEUE_PREFIX). Prints each problem; exits 1 when there is any, 0 when all hold.
 * INVARIANT_GRACE_SECONDS (default RECONCILE_AFTER_SECONDS × 2) is how long a `received` order may go without a live job.
 */
import { Queue } from 'bullmq';
import { loadConfigOrExit } from '../src/platform/config';
import { createDb } from '../src/platform/db';
import { checkInvariants } from '../src/invariants';
import { createRedis, sentinelsOf } from '../src/platform/redis';
import { QUEUES } from '../src/jobs/queues';

async function run(): Promise<number> {
  const config = loadConfigOrExit();
  const db = createDb(config.DATABASE_URL, 2);
  const redis = createRedis(config.REDIS_URL, 'producer', sentinelsOf(config));
  const orders = new Queue(QUEUES.orders, { connection: redis, prefix: config.QUEUE_PREFIX });
  try {
    const grace = Number(process.env.INVARIANT_GRACE_SECONDS ?? config.RECONCILE_AFTER_SECONDS * 2);
    // The producer connection queues nothing while connecting: wait for it (briefly) before asking.
    const redisUp = await new Promise<boolean>((resolve) => {
      if (redis.status === 'ready') return resolve(true);
      const timer = setTimeout(() => resolve(false), 3000);
      redis.once('ready', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!redisUp) process.stdout.write('Redis is unreachable: received orders are checked by age only\n');
    const report = await checkInvariants(db, { queues: redisUp ? { orders } : undefined, graceSeconds: grace });
    for (const p of report.problems) process.stdout.write(`${p}\n`);
    const rules = Object.entries(report.counts)
      .map(([k, n]) => `${k} ${n === 0 ? 'ok' : n}`)
      .join(', ');
    process.stdout.write(
      `${report.ok ? 'all invariants hold' : `${report.problems.length} problem line(s)`}: ${rules}\n`,
    );
    return report.ok ? 0 : 1;
  } finally {
    await orders.close().catch(() => undefined);
    redis.disconnect();
    await db.destroy();
  }
}

run().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`check failed: ${(err as Error).message}\n`);
    process.exit(2);
  },
);
