import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { sleep } from './setup';

export interface CeilingResult {
  jobs: number;
  seconds: number;
  ops: number;
  attempts: number;
  conflicts: number;
  conflict_rate: number;
  concurrency: number;
  lock: 'for-update' | 'none';
}

/**
 * The worker ceiling: a bare BullMQ worker (same Redis, same database, same machine) running ONE
 * reservation transaction per job, three statements:
 *   SELECT on_hand, reserved, version FROM stock WHERE sku = $1 [FOR UPDATE]
 *   UPDATE stock SET reserved = reserved + q, version = version + 1 WHERE sku = $1 AND version = $v
 *   INSERT INTO stock_movements (... 'reservation' ...)
 * With `lock: 'for-update'` (the ceiling) the row lock serializes a hot SKU and no check is lost;
 * with `lock: 'none'` (the naive optimistic design) a lost version check rolls back and retries
 * after the same full-jitter backoff our code uses.
 * No validation, no order rows, no history, no events, no outbox: the floor of work per order.
 * Jobs are queued first with the queue paused; the clock runs from resume to the last completion.
 */
export async function runCeilingWorker(opts: {
  redisUrl: string;
  databaseUrl: string;
  prefix: string;
  jobs: { sku: string; quantity: number }[];
  concurrency: number;
  poolMax: number;
  lock: 'for-update' | 'none';
}): Promise<CeilingResult> {
  const select = `SELECT on_hand, reserved, version FROM stock WHERE sku = $1${opts.lock === 'for-update' ? ' FOR UPDATE' : ''}`;
  const producer = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
  const connection = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('reserve', {
    connection: producer,
    prefix: opts.prefix,
    defaultJobOptions: { removeOnComplete: { age: 3600, count: 5000 }, attempts: 3 },
  });
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolMax });
  // An idle client told to go (the database dropped as the run ends) must not crash the bench.
  pool.on('error', () => undefined);
  let attempts = 0;
  let conflicts = 0;
  try {
    await queue.pause();
    for (let i = 0; i < opts.jobs.length; i += 1000) {
      await queue.addBulk(
        opts.jobs.slice(i, i + 1000).map((j) => {
          const id = uuidv7();
          return { name: 'reserve', data: { orderId: id, sku: j.sku, quantity: j.quantity }, opts: { jobId: id } };
        }),
      );
    }
    // Warm the pool so connection set-up is not timed (ours is warm too: its context made the orders).
    await Promise.all(
      Array.from({ length: opts.poolMax }, async () => {
        const c = await pool.connect();
        await c.query('SELECT 1');
        c.release();
      }),
    );

    const reserve = async (data: { orderId: string; sku: string; quantity: number }) => {
      for (let attempt = 1; ; attempt++) {
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          const { rows } = await c.query(select, [data.sku]);
          if (rows.length === 0 || rows[0].on_hand - rows[0].reserved < data.quantity)
            throw new Error(`no stock for ${data.sku}`);
          attempts++;
          const upd = await c.query(
            'UPDATE stock SET reserved = reserved + $2, version = version + 1, updated_at = now() WHERE sku = $1 AND version = $3',
            [data.sku, data.quantity, rows[0].version],
          );
          if (upd.rowCount === 0) {
            conflicts++;
            await c.query('ROLLBACK');
            c.release();
            await sleep(Math.random() * Math.min(2 * 2 ** attempt, 200));
            continue;
          }
          await c.query(
            `INSERT INTO stock_movements (sku, type, quantity, order_id, reason) VALUES ($1, 'reservation', $2, $3, 'ceiling')`,
            [data.sku, data.quantity, data.orderId],
          );
          await c.query('COMMIT');
          c.release();
          return;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          c.release();
          throw err;
        }
      }
    };

    let done = 0;
    let failed = 0;
    let t1 = 0;
    let finish: () => void = () => undefined;
    const finished = new Promise<void>((r) => {
      finish = r;
    });
    const worker = new Worker('reserve', async (job) => reserve(job.data), {
      connection,
      prefix: opts.prefix,
      concurrency: opts.concurrency,
      autorun: true,
    });
    worker.on('error', () => undefined);
    worker.on('completed', () => {
      if (++done + failed === opts.jobs.length) {
        t1 = performance.now();
        finish();
      }
    });
    worker.on('failed', () => {
      if (done + ++failed === opts.jobs.length) {
        t1 = performance.now();
        finish();
      }
    });
    await worker.waitUntilReady();
    const t0 = performance.now();
    await queue.resume();
    await finished;
    await worker.close();
    if (failed) throw new Error(`${failed} ceiling jobs failed`);
    const seconds = (t1 - t0) / 1000;
    return {
      jobs: done,
      seconds,
      ops: done / seconds,
      attempts,
      conflicts,
      conflict_rate: attempts ? conflicts / attempts : 0,
      concurrency: opts.concurrency,
      lock: opts.lock,
    };
  } finally {
    await queue.close();
    producer.disconnect();
    connection.disconnect();
    await pool.end();
  }
}
