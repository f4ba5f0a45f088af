import { UnrecoverableError, type Job } from 'bullmq';
import type { AppContext } from '../../app/context';
import { expireBackorders } from '../../orders';
import { checkpointLedger } from '../../reports';
import { pruneRecords, reconcile } from '../reconciler';
import { JOB } from '../queues';

/** `maintenance`: the reconciler, backorder expiry, pruning and the ledger checkpoint, each run by a BullMQ job scheduler. */
export function createMaintenanceProcessor(ctx: AppContext) {
  return async (job: Job) => {
    if (job.name === JOB.reconcile) return reconcile(ctx);
    if (job.name === JOB.expireBackorders) return { expired: await expireBackorders(ctx) };
    if (job.name === JOB.pruneRecords) return pruneRecords(ctx);
    if (job.name === JOB.checkpointLedger) return checkpointLedger(ctx.db);
    throw new UnrecoverableError(`unknown maintenance job ${job.name}`);
  };
}
