import type { Job } from 'bullmq';
import type { Context } from '../../context';
import type { NotificationJob } from '../queues';

// Placeholder until the notifications module lands: records the event as settled.
export function createNotificationProcessor(ctx: Context) {
  return async (job: Job<NotificationJob>) => {
    await ctx.db('events').where({ id: job.data.eventId }).whereNull('settled_at').update({ settled_at: ctx.db.fn.now() });
    return { channels: 0 };
  };
}
