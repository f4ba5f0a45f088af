import { UnrecoverableError, type Job } from 'bullmq';
import type { AppContext } from '../../app/context';
import { createSenders, deliverEvent, type Senders } from '../../notifications';
import type { NotificationJob } from '../queues';

/**
 * `notifications`: deliver one event on its pending channels. A failed channel throws so BullMQ
 * retries with backoff; the last attempt (NOTIFY_MAX_ATTEMPTS) marks it failed and settles the event.
 */
export function createNotificationProcessor(ctx: AppContext, senders: Senders = createSenders(ctx.config)) {
  return async (job: Job<NotificationJob>) => {
    const eventId = job.data?.eventId;
    if (typeof eventId !== 'string') throw new UnrecoverableError('job has no eventId');
    const final = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    return deliverEvent(ctx, senders, eventId, { final });
  };
}
