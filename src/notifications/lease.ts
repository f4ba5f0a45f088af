import { randomUUID } from 'node:crypto';
import type { Context } from '../platform/context';
import { redisKey } from '../platform/redis';

const RELEASE_LEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * One run per event at a time, across processes: a short Redis lease, long enough for every
 * channel to time out. Without it, a stalled job picked up again while its first run is still
 * sending would deliver twice. Returns the release, or undefined when another run holds it.
 */
export async function takeLease(ctx: Context, eventId: string): Promise<(() => Promise<void>) | undefined> {
  const key = redisKey(ctx.config, `notify-lease:${eventId}`); // QUEUE_PREFIX's hash tag: the queues' slot
  const token = randomUUID();
  const ttl = ctx.config.NOTIFY_TIMEOUT_MS * 4 + 10_000;
  if ((await ctx.redis.set(key, token, 'PX', ttl, 'NX')) !== 'OK') return undefined;
  return async () => {
    await ctx.redis.eval(RELEASE_LEASE, 1, key, token).catch(() => undefined);
  };
}

/** Another run of the same event holds its lease (a stalled job running twice): retry later. */
export class DeliveryBusyError extends Error {
  constructor(eventId: string) {
    super(`event ${eventId} is being delivered by another run`);
    this.name = 'DeliveryBusyError';
  }
}
