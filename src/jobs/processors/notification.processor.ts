import { UnrecoverableError, type Job } from 'bullmq';
import type { AppContext } from '../../app/context';
import { createSenders, deliverEvent, recoverDeliveries, type Senders } from '../../notifications';
import { JOB, type NotificationJob, type RecoverEndpointJob } from '../queues';

/**
 * `notifications`: deliver one event on its pending channels and endpoints (`deliver`), or send a
 * recovered endpoint what it missed, in order (`recover-endpoint`). A failed delivery throws so
 * BullMQ retries with backoff; the last attempt (NOTIFY_MAX_ATTEMPTS) marks it failed and settles the event.
 */
export function createNotificationProcessor(ctx: AppContext, senders: Senders = createSenders(ctx.config)) {
  return async (job: Job<NotificationJob | RecoverEndpointJob>) => {
    const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (job.name === JOB.recoverEndpoint) {
      const { endpointId, since } = (job.data ?? {}) as Partial<RecoverEndpointJob>;
      if (typeof endpointId !== 'string' || typeof since !== 'string')
        throw new UnrecoverableError('job has no endpointId or since');
      return recoverDeliveries(ctx, senders.endpoint, endpointId, since, { final });
    }
    const eventId = (job.data as Partial<NotificationJob> | undefined)?.eventId;
    if (typeof eventId !== 'string') throw new UnrecoverableError('job has no eventId');
    return deliverEvent(ctx, senders, eventId, { final });
  };
}
