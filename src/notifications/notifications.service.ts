import { randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { Config } from '../platform/config';
import type { Context } from '../platform/context';
import type { Db, Executor } from '../platform/db';
import { InvalidStateError, NotFoundError } from '../platform/errors';
import { countStat, metrics } from '../platform/metrics';
import { JOB, QUEUES } from '../platform/job-catalog';
import { runUnitOfWork, type UnitOfWork } from '../platform/unit-of-work';
import { isoSql } from '../orders';
import { createMailer } from './email';
import type { Channel, EventPayload, Notification } from './notifications.schemas';
import { assertPublicTarget, DeliveryError, postWebhook, webhookKey } from './webhook';

/** How each channel sends one event to one target; throws DeliveryError when the attempt failed. */
export interface Senders {
  webhook(url: string, event: EventPayload): Promise<void>;
  /** Absent when SMTP_URL is not set: no e-mail channel is planned. */
  email?: (to: string, event: EventPayload) => Promise<void>;
}

/** The webhook body: the event payload, keys in the contract's order. */
export function webhookBody(event: EventPayload): string {
  return JSON.stringify({
    id: event.id,
    type: event.type,
    created_at: event.created_at,
    subject: event.subject,
    subject_sequence: event.subject_sequence,
    previous_event_id: event.previous_event_id,
    data: event.data,
  });
}

export function createSenders(config: Config): Senders {
  const key = webhookKey(config.WEBHOOK_SECRET);
  const timeoutMs = config.NOTIFY_TIMEOUT_MS;
  const mailer = config.SMTP_URL ? createMailer(config.SMTP_URL, config.SMTP_FROM, timeoutMs) : undefined;
  return {
    webhook: async (url, event) => {
      // The operator's own NOTIFY_WEBHOOK_URL may be internal; a customer's webhook_url may not, when denied.
      if (config.WEBHOOK_PRIVATE_TARGETS === 'deny' && url !== config.NOTIFY_WEBHOOK_URL) await assertPublicTarget(url);
      return postWebhook(url, event.id, webhookBody(event), { key, timeoutMs });
    },
    email: mailer ? (to, event) => mailer.send(to, event) : undefined,
  };
}

/** Another run of the same event holds its lease (a stalled job running twice): retry later. */
export class DeliveryBusyError extends Error {
  constructor(eventId: string) {
    super(`event ${eventId} is being delivered by another run`);
    this.name = 'DeliveryBusyError';
  }
}

export interface DeliveryResult {
  event_id: string;
  /** 'settled': nothing was left to do; 'missing': the event no longer exists. */
  skipped?: 'settled' | 'missing';
  delivered: Channel[];
  failed: Channel[];
  pending: Channel[];
  settled: boolean;
}

interface NotificationRow {
  id: string;
  event_id: string;
  order_id: string;
  channel: Channel;
  target: string;
  status: string;
  attempts: number;
}

const RELEASE_LEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * One run per event at a time, across processes: a short Redis lease, long enough for every
 * channel to time out. Without it, a stalled job picked up again while its first run is still
 * sending would deliver twice.
 */
async function takeLease(ctx: Context, eventId: string): Promise<(() => Promise<void>) | undefined> {
  const key = `${ctx.config.QUEUE_PREFIX}:notify-lease:${eventId}`;
  const token = randomUUID();
  const ttl = ctx.config.NOTIFY_TIMEOUT_MS * 4 + 10_000;
  if ((await ctx.redis.set(key, token, 'PX', ttl, 'NX')) !== 'OK') return undefined;
  return async () => {
    await ctx.redis.eval(RELEASE_LEASE, 1, key, token).catch(() => undefined);
  };
}

/** The channels an event is sent on, decided on its first run and stored (unique per event and channel). */
async function planChannels(
  ctx: Context,
  senders: Senders,
  event: { id: string; order_id: string; type: string },
): Promise<void> {
  // A customer is told of its orders' transitions and shipments; other events (returns) are for integrators.
  if (!CUSTOMER_EVENTS.test(event.type)) return;
  const customer = await ctx
    .db('orders as o')
    .leftJoin('customers as c', 'c.id', 'o.customer_id')
    .where('o.id', event.order_id)
    .first('c.email', 'c.webhook_url');
  const plan: { channel: Channel; target: string }[] = [];
  const url = customer?.webhook_url ?? ctx.config.NOTIFY_WEBHOOK_URL;
  if (url) plan.push({ channel: 'webhook', target: url });
  if (senders.email && customer?.email) plan.push({ channel: 'email', target: customer.email });
  if (plan.length === 0) return;
  await ctx
    .db('notifications')
    .insert(plan.map((p) => ({ id: uuidv7(), event_id: event.id, order_id: event.order_id, ...p })))
    .onConflict(['event_id', 'channel'])
    .ignore();
}

/** The body of an event: what was written with it, and its place in its subject's numbering. */
const eventPayload = (e: {
  payload: EventPayload;
  subject_type: 'order' | 'sku';
  subject_id: string;
  subject_sequence: number;
  previous_event_id: string | null;
}): EventPayload => ({
  ...e.payload,
  subject: { type: e.subject_type, id: e.subject_id },
  subject_sequence: e.subject_sequence,
  previous_event_id: e.previous_event_id,
});

const CUSTOMER_EVENTS = /^(order\.|shipment\.created$)/;

/** Sets settled_at once no channel of the event is pending (also when it has none). */
async function settleIfDone(db: Db, eventId: string): Promise<boolean> {
  await db('events')
    .where({ id: eventId })
    .whereNull('settled_at')
    .whereNotExists(db('notifications').where({ event_id: eventId, status: 'pending' }).select(db.raw('1')))
    .update({ settled_at: db.fn.now() });
  const e = await db('events').where({ id: eventId }).first('settled_at');
  return !!e?.settled_at;
}

function record(channel: Channel, outcome: 'delivered' | 'retry' | 'failed'): void {
  metrics.notificationOutcomes.inc({ channel, outcome });
  countStat(`notifications_${outcome}`);
}

/** One attempt on one channel: counted first (a crash mid-send still counts), then its outcome recorded. */
async function attemptChannel(
  db: Db,
  senders: Senders,
  row: NotificationRow,
  event: EventPayload,
  final: boolean,
): Promise<'delivered' | 'pending' | 'failed' | 'skipped'> {
  const claimed = await db('notifications')
    .where({ id: row.id, status: 'pending' })
    .update({ attempts: db.raw('attempts + 1'), updated_at: db.fn.now() })
    .returning('id');
  if (claimed.length === 0) return 'skipped';
  try {
    if (row.channel === 'webhook') await senders.webhook(row.target, event);
    else if (senders.email) await senders.email(row.target, event);
    else throw new DeliveryError('e-mail is not configured on this worker (SMTP_URL unset)');
  } catch (err) {
    const message = (err instanceof DeliveryError ? err.message : `unexpected: ${(err as Error).message}`).slice(
      0,
      1000,
    );
    const failed = final || (err instanceof DeliveryError && err.permanent);
    await db('notifications')
      .where({ id: row.id, status: 'pending' })
      .update({ last_error: message, status: failed ? 'failed' : 'pending', updated_at: db.fn.now() });
    record(row.channel, failed ? 'failed' : 'retry');
    return failed ? 'failed' : 'pending';
  }
  await db('notifications')
    .where({ id: row.id, status: 'pending' })
    .update({ status: 'delivered', delivered_at: db.fn.now(), updated_at: db.fn.now() });
  record(row.channel, 'delivered');
  return 'delivered';
}

/**
 * Delivers one event on every channel that is still pending. Channels already delivered (or failed)
 * are never sent again by a retry or a second run. A channel that fails stays pending and this
 * throws, so the queue retries with backoff; on the `final` attempt it is marked failed instead.
 * The event is settled once nothing is pending.
 */
export async function deliverEvent(
  ctx: Context,
  senders: Senders,
  eventId: string,
  opts: { final: boolean },
): Promise<DeliveryResult> {
  const result: DeliveryResult = { event_id: eventId, delivered: [], failed: [], pending: [], settled: false };
  const event = await ctx
    .db('events')
    .where({ id: eventId })
    .first(
      'id',
      'order_id',
      'type',
      'payload',
      'settled_at',
      'subject_type',
      'subject_id',
      'subject_sequence',
      'previous_event_id',
    );
  if (!event) return { ...result, skipped: 'missing' };
  if (event.settled_at) return { ...result, skipped: 'settled', settled: true };
  const release = await takeLease(ctx, eventId);
  if (!release) throw new DeliveryBusyError(eventId);
  try {
    let rows: NotificationRow[] = await ctx.db('notifications').where({ event_id: eventId }).orderBy('channel');
    if (rows.length === 0) {
      await planChannels(ctx, senders, event);
      rows = await ctx.db('notifications').where({ event_id: eventId }).orderBy('channel');
    }
    const pending = rows.filter((r) => r.status === 'pending');
    const outcomes = await Promise.all(
      pending.map((r) => attemptChannel(ctx.db, senders, r, eventPayload(event), opts.final)),
    );
    for (const [i, outcome] of outcomes.entries()) if (outcome !== 'skipped') result[outcome].push(pending[i].channel);
    result.settled = await settleIfDone(ctx.db, eventId);
  } finally {
    await release();
  }
  if (result.pending.length > 0 || result.failed.length > 0) {
    const errors = await ctx
      .db('notifications')
      .where({ event_id: eventId })
      .whereIn('channel', [...result.pending, ...result.failed])
      .select('channel', 'last_error');
    throw new DeliveryError(errors.map((e) => `${e.channel}: ${e.last_error}`).join('; '));
  }
  return result;
}

const NOTIFICATION_COLUMNS = (db: Executor) => [
  'n.id',
  'n.event_id',
  'e.type as event_type',
  'n.channel',
  'n.target',
  'n.status',
  'n.attempts',
  'n.last_error',
  db.raw(`CASE WHEN n.delivered_at IS NULL THEN NULL ELSE ${isoSql('n.delivered_at')} END AS delivered_at`),
  db.raw(`${isoSql('n.created_at')} AS created_at`),
  db.raw(`${isoSql('n.updated_at')} AS updated_at`),
];

/** The delivery log of one order: every event per channel, oldest event first. */
export async function listOrderNotifications(db: Db, orderId: string): Promise<{ data: Notification[] }> {
  if (!(await db('orders').where({ id: orderId }).first('id'))) throw new NotFoundError('order');
  const data = await db('notifications as n')
    .join('events as e', 'e.id', 'n.event_id')
    .where('n.order_id', orderId)
    .orderBy([{ column: 'e.created_at' }, { column: 'e.transition_no' }, { column: 'n.channel' }])
    .select(NOTIFICATION_COLUMNS(db));
  return { data };
}

async function getNotification(db: Executor, id: string): Promise<Notification> {
  const n = await db('notifications as n')
    .join('events as e', 'e.id', 'n.event_id')
    .where('n.id', id)
    .first(NOTIFICATION_COLUMNS(db));
  if (!n) throw new NotFoundError('notification');
  return n;
}

/**
 * Operator resend of a delivered or failed notification: back to pending, the event unsettled, and
 * its job enqueued again through the outbox (replacing the finished job of the same id).
 */
export async function resendNotification(ctx: Context, id: string): Promise<Notification> {
  await runUnitOfWork(ctx, 'resend', (uow) => resendInUnit(uow, id));
  return getNotification(ctx.db, id);
}

/** Resend in the caller's unit: 404 if there is no such notification, 409 while it is pending. */
export async function resendInUnit(uow: UnitOfWork, id: string): Promise<void> {
  {
    const { trx } = uow;
    const n = await trx('notifications').where({ id }).forUpdate().first('id', 'event_id', 'status');
    if (!n) throw new NotFoundError('notification');
    if (n.status === 'pending') throw new InvalidStateError('notification is pending: it is still being delivered');
    await trx('notifications')
      .where({ id })
      .update({ status: 'pending', delivered_at: null, updated_at: trx.fn.now() });
    await trx('events').where({ id: n.event_id }).update({ settled_at: null });
    await uow.addJobs([
      {
        queue: QUEUES.notifications,
        job_name: JOB.deliver,
        job_id: n.event_id,
        data: { eventId: n.event_id },
        replace_finished: true,
      },
    ]);
  }
}
