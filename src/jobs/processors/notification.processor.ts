import { UnrecoverableError, type Job } from 'bullmq';
import type { AppContext } from '../../app/context';
import {
  createSenders,
  deliverEvent,
  DeliveryError,
  failedDeliveriesOf,
  recoverDeliveries,
  requeueRecovery,
  resendFailedDeliveries,
  type Senders,
} from '../../notifications';
import { JOB, type NotificationJob, type RecoverEndpointJob } from '../queues';

/**
 * Whether this run is a retry of a job that had finished for good (bull-board's retry, BullMQ's
 * `job.retry()`), rather than a run of the job's own attempts or a stale duplicate of one.
 * BullMQ counts `attemptsMade` when a run ends (failed or completed), never when a stalled job is
 * picked up again, and a job whose count reaches `attempts` is finished: no attempt of its own and
 * no stalled re-run starts with attemptsMade ≥ attempts. A job failed early (a delivery no retry can
 * fix: failForGood) carries `finished: true` in its data instead. A retry keeps both (bull-board
 * does not reset them), so it is seen. A job added again under the same id (resend, reconciler,
 * relay) is a new job, counted from 0. A retry with `resetAttemptsMade` of a job failed at its
 * last attempt looks like a first run: it resends nothing, and sends only what is still pending.
 */
const isRetryOfFinishedJob = (job: Pick<Job, 'attemptsMade' | 'opts' | 'data'>) =>
  job.attemptsMade >= (job.opts.attempts ?? 1) || (job.data as { finished?: unknown } | undefined)?.finished === true;

/**
 * Ends the job failed now, without the retries left: what failed cannot be fixed by sending again
 * (a refused target, a disabled endpoint, the last attempt). The mark in its data lets a retry
 * from the board be told from the job's own runs.
 */
async function failForGood(job: Job, message: string): Promise<never> {
  await job.updateData({ ...(job.data as object), finished: true });
  throw new UnrecoverableError(message);
}

/**
 * `notifications`: deliver one event on its pending channels and endpoints (`deliver`), or send a
 * recovered endpoint what it missed, in order (`recover-endpoint`). A failed delivery throws so
 * BullMQ retries with backoff; the last attempt (NOTIFY_MAX_ATTEMPTS) marks it failed and settles the event.
 * A job ends failed whenever a delivery of its event (or of its recovery) ended failed, even when
 * the rest was delivered on a later attempt, so the board's failed list is where an operator finds
 * every delivery given up on. A retry from the board sends again what is failed: a deliver job
 * resends the event's failed deliveries as `POST /v1/notifications/:id/resend` does (a new job, a
 * fresh NOTIFY_MAX_ATTEMPTS), a recovery runs again as a new job. Delivered ones are never sent again.
 */
export function createNotificationProcessor(ctx: AppContext, senders: Senders = createSenders(ctx.config)) {
  return async (job: Job<NotificationJob | RecoverEndpointJob>) => {
    const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const retried = isRetryOfFinishedJob(job);
    if (job.name === JOB.recoverEndpoint) {
      const { endpointId, since } = (job.data ?? {}) as Partial<RecoverEndpointJob>;
      if (typeof endpointId !== 'string' || typeof since !== 'string')
        throw new UnrecoverableError('job has no endpointId or since');
      if (retried) return { endpoint_id: endpointId, requeued: await requeueRecovery(ctx, endpointId, since) };
      const result = await recoverDeliveries(ctx, senders.endpoint, endpointId, since, { final });
      if (result.failed > 0)
        return failForGood(
          job,
          `recovery of endpoint ${endpointId}: ${result.failed} deliveries failed, ${result.delivered} delivered`,
        );
      return result;
    }
    const eventId = (job.data as Partial<NotificationJob> | undefined)?.eventId;
    if (typeof eventId !== 'string') throw new UnrecoverableError('job has no eventId');
    if (retried) {
      // Nothing failed (a retried completed job, or one whose rows are pending): an ordinary run.
      const resent = await resendFailedDeliveries(ctx, eventId);
      if (resent > 0) return { event_id: eventId, resent };
    }
    let result: Awaited<ReturnType<typeof deliverEvent>>;
    try {
      result = await deliverEvent(ctx, senders, eventId, { final });
    } catch (err) {
      // Nothing is left pending and something failed: retrying cannot change the outcome.
      if (err instanceof DeliveryError && err.permanent) return failForGood(job, err.message);
      throw err;
    }
    // Settled on a later attempt: what an earlier one gave up on (a refused target) still fails the job.
    if (result.settled && job.attemptsMade > 0) {
      const failed = await failedDeliveriesOf(ctx, eventId);
      if (failed.length > 0) return failForGood(job, `settled with failed deliveries: ${failed.join('; ')}`);
    }
    return result;
  };
}
