import { UnrecoverableError, type Job } from 'bullmq';
import type { AppContext } from '../../app/context';
import {
  createSenders,
  deliverEvent,
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
 * no stalled re-run starts with attemptsMade ≥ attempts. A retry keeps the count (bull-board does
 * not reset it), so it does. A job added again under the same id (resend, reconciler, relay) is a
 * new job, counted from 0. A retry with `resetAttemptsMade` looks like a first run: it resends
 * nothing, and sends only what is still pending.
 */
const isRetryOfFinishedJob = (job: Pick<Job, 'attemptsMade' | 'opts'>) => job.attemptsMade >= (job.opts.attempts ?? 1);

/**
 * `notifications`: deliver one event on its pending channels and endpoints (`deliver`), or send a
 * recovered endpoint what it missed, in order (`recover-endpoint`). A failed delivery throws so
 * BullMQ retries with backoff; the last attempt (NOTIFY_MAX_ATTEMPTS) marks it failed and settles the event.
 * A retry from the board sends again what is failed: a deliver job resends the event's failed
 * deliveries as `POST /v1/notifications/:id/resend` does (a new job, a fresh NOTIFY_MAX_ATTEMPTS),
 * a recovery runs again as a new job. Delivered ones are never sent again.
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
      return recoverDeliveries(ctx, senders.endpoint, endpointId, since, { final });
    }
    const eventId = (job.data as Partial<NotificationJob> | undefined)?.eventId;
    if (typeof eventId !== 'string') throw new UnrecoverableError('job has no eventId');
    if (retried) {
      // Nothing failed (a retried completed job, or one whose rows are pending): an ordinary run.
      const resent = await resendFailedDeliveries(ctx, eventId);
      if (resent > 0) return { event_id: eventId, resent };
    }
    return deliverEvent(ctx, senders, eventId, { final });
  };
}
