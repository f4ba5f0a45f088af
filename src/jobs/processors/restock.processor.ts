import { UnrecoverableError, type Job } from 'bullmq';
import type { AppContext } from '../../app/context';
import { applyRestock } from '../../restocks';
import { JOB, type RestockJob } from '../queues';

/** `restocks`: apply a receipt (once per event id) and serve that SKU's waiting lines in FIFO order. */
export function createRestockProcessor(ctx: AppContext) {
  return async (job: Job<RestockJob>) => {
    if (job.name === JOB.applyRestock && typeof job.data?.eventId === 'string')
      return applyRestock(ctx, job.data.eventId);
    throw new UnrecoverableError(`unknown restock job ${job.name}`);
  };
}
