import { Worker } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { reconcile } from '../../src/jobs/reconciler';
import { JOB, QUEUES } from '../../src/platform/job-catalog';
import { createRedis } from '../../src/platform/redis';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { useHarness, waitFor } from '../helpers/harness';

const h = useHarness({ workers: false });

describe('reconciler', () => {
  it('when received orders have a waiting, a delayed, a finished or no job, then only the finished and the missing ones get a job again', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const q = h().ctx.queues.orders;
    const order = async () => {
      const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
      await waitFor(async () => q.getJob(o.id), { what: `the job of ${o.id}` });
      return o.id;
    };
    // A worker that finishes a job without touching its order: the record still says received.
    const finished = await order();
    const connection = createRedis(h().config, 'worker');
    const w = new Worker(QUEUES.orders, async () => 'done', { connection, prefix: h().config.QUEUE_PREFIX });
    await waitFor(async () => (await q.getJobState(finished)) === 'completed', { what: 'one job finished' });
    await w.close();
    connection.disconnect();
    const [waiting, delayed, gone] = [await order(), await order(), await order()];
    await (await q.getJob(delayed))!.remove();
    await q.add(JOB.processOrder, { orderId: delayed }, { jobId: delayed, delay: 60_000 });
    await (await q.getJob(gone))!.remove();
    expect(await Promise.all([finished, waiting, delayed, gone].map((id) => q.getJobState(id)))).toEqual([
      'completed',
      'waiting',
      'delayed',
      'unknown',
    ]);
    const ids = [finished, waiting, delayed, gone];
    await h()
      .ctx.db('orders')
      .whereIn('id', ids)
      .update({ updated_at: h().ctx.db.raw("now() - interval '1 hour'") });

    expect((await reconcile(h().ctx)).orders).toBe(2);
    expect(await Promise.all(ids.map((id) => q.getJobState(id)))).toEqual(['waiting', 'waiting', 'delayed', 'waiting']);
    // All four are live now: a second pass adds nothing.
    expect((await reconcile(h().ctx)).orders).toBe(0);
  });
});
