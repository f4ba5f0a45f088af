import { UnrecoverableError, type Job } from 'bullmq';
import type { AppContext } from '../../app/context';
import { expireBackorders } from '../../orders';
import { pruneRecords, reconcile } from '../reconciler';
import { JOB } from '../queues';

/** `maintenance`: the reconciler, backorder expiry and pruning, each run by a BullMQ job scheduler. */
export function createMaintenanceProcessor(ctx: AppContext) {
  return async (job: Job) => {
    if (job.name === JOB.reconcile) return reconcile(ctx);
    if (job.name === JOB.expireBackorders) return { expired: await expireBackorders(ctx) };
    if (job.name === JOB.pruneRecords) return pruneRecords(ctx);
    throw new UnrecoverableError(`unknown maintenance job ${job.name}`);
  };
}
