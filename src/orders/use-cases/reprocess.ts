import { JOB, QUEUES } from '../../platform/job-catalog';
import type { UnitOfWork } from '../../platform/unit-of-work';

/** The order is processed again: its job is added after commit, replacing a finished job of the same id. */
export async function reprocessAfterCommit(uow: UnitOfWork, orderId: string): Promise<void> {
  await uow.addJobs([
    { queue: QUEUES.orders, job_name: JOB.processOrder, job_id: orderId, data: { orderId }, replace_finished: true },
  ]);
}
