import { UnrecoverableError, type Job } from 'bullmq';
import type { Context } from '../../app/context';
import { housekeeping, reconcile } from '../reconciler';
import { JOB } from '../queues';

/** `maintenance`: the reconciler and housekeeping, run by BullMQ job schedulers. */
export function createMaintenanceProcessor(ctx: Context) {
  return async (job: Job) => {
    if (job.name === JOB.reconcile) return reconcile(ctx);
    if (job.name === JOB.expireBackorders) return housekeeping(ctx);
    throw new UnrecoverableError(`unknown maintenance job ${job.name}`);
  };
}
