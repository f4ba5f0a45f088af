import { UnrecoverableError, type Job } from 'bullmq';
import { runBulkAction } from '../../bulk';
import type { Context } from '../../platform/context';
import type { BulkJob } from '../../platform/job-catalog';

/** `bulk`: runs or resumes one bulk action (its pending items; the done ones are never repeated). */
export function createBulkProcessor(ctx: Context) {
  return async (job: Job<BulkJob>) => {
    const bulkId = job.data?.bulkId;
    if (typeof bulkId !== 'string') throw new UnrecoverableError('job has no bulkId');
    return runBulkAction(ctx, bulkId);
  };
}
