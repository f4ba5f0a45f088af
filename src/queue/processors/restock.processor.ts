import { UnrecoverableError, type Job } from 'bullmq';
import type { Context } from '../../context';
import { allocateSkus } from '../../modules/orders';
import { applyRestock } from '../../modules/restocks';
import { JOB, type RestockJob } from '../queues';

/** `restocks`: apply a receipt (once per event id) and serve that SKU's waiting lines in FIFO order. */
export function createRestockProcessor(ctx: Context) {
  return async (job: Job<RestockJob>) => {
    if (job.name === JOB.allocate && 'sku' in job.data) return { reserved: await allocateSkus(ctx, [job.data.sku]) };
    if ('eventId' in job.data && typeof job.data.eventId === 'string') return applyRestock(ctx, job.data.eventId);
    throw new UnrecoverableError(`unknown restock job ${job.name}`);
  };
}
