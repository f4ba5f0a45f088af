import { v7 as uuidv7 } from 'uuid';
import type { Config } from '../platform/config';
import type { Context } from '../platform/context';
import type { Db, Executor } from '../platform/db';
import { InvalidStateError, NotFoundError } from '../platform/errors';
import { countStat, metrics } from '../platform/metrics';
import { JOB, QUEUES } from '../platform/job-catalog';
import { runUnitOfWork } from '../platform/unit-of-work';
import { isoSql } from '../orders';
import { createMailer } from './email';
import type { Channel, EventPayload, Notification } from './notifications.schemas';
import { attemptEndpoint, planEndpoints, type EndpointDeliveryRow, type EndpointSender } from './endpoints.service';
import { DeliveryBusyError, takeLease } from './lease';
import { assertPublicTarget, DeliveryError, postWebhook, webhookKey } from './webhook';

/** How each channel sends one event to one target; throws DeliveryError when the attempt failed. */
export interface Senders {
  webhook(url: string, event: EventPayload): Promise<void | number>;
  /** Absent when SMTP_URL is not set: no e-mail channel is planned. */
  email?: (to: string, event: EventPayload) => Promise<void>;
  /** A webhook endpoint's delivery, signed with the keys given (its secret, and the previous one in a rotation). */
  endpoint: EndpointSender;
}

/** The webhook body: the event payload, keys in the contract's order. */
export function webhookBody(event: EventPayload): string {
  return JSON.stringify({ id: event.id, type: event.type, created_at: event.created_at, data: event.data });
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
    endpoint: (url, keys, event) => postWebhook(url, event.id, webhookBody(event), { key: keys, timeoutMs }),
  };
}

export { DeliveryBusyError };

export interface DeliveryResult {
  event_id: string;
  /** 'settled': nothing was left to do; 'missing': the event no longer exists. */
  skipped?: 'settled' | 'missing';
  delivered: Channel[];
  failed: Channel[];
  pending: Channel[];
  /** Webhook endpoint deliveries of this run, by outcome (endpoint ids). */
  endpoints: { delivered: string[]; failed: string[]; pending: string[] };
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

/**
 * The channels and endpoints an event is sent on, decided on its first run and stored (unique per
 * event and channel, per event and endpoint), in one transaction so a crash plans all or nothing.
 */
async function planDeliveries(
  ctx: Context,
  senders: Senders,
  event: { id: string; order_id: string | null; type: string },
): Promise<void> {
  const plan: { channel: Channel; target: string }[] = [];
  // A customer is told of its orders' transitions and shipments; other events (returns) are for integrators.
  if (CUSTOMER_EVENTS.test(event.type) && event.order_id) {
    const customer = await ctx
      .db('orders as o')
      .leftJoin('customers as c', 'c.id', 'o.customer_id')
      .where('o.id', event.order_id)
      .first('c.email', 'c.webhook_url');
    const url = customer?.webhook_url ?? ctx.config.NOTIFY_WEBHOOK_URL;
    if (url) plan.push({ channel: 'webhook', target: url });
    if (senders.email && customer?.email) plan.push({ channel: 'email', target: customer.email });
  }
  await ctx.db.transaction(async (trx) => {
    if (plan.length > 0)
      await trx('notifications')
        .insert(plan.map((p) => ({ id: uuidv7(), event_id: event.id, order_id: event.order_id, ...p })))
        .onConflict(['event_id', 'channel'])
        .ignore();
    await planEndpoints(trx, [event.id]);
  });
}

const CUSTOMER_EVENTS = /^(order\.|shipment\.created$)/;

/** Sets settled_at once no channel or endpoint delivery of the event is pending (also when it has none). */
async function settleIfDone(db: Db, eventId: string): Promise<boolean> {
  const r = await db.raw(
    `WITH s AS (
       UPDATE events SET settled_at = now()
       WHERE id = ? AND settled_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM notifications WHERE event_id = ? AND status = 'pending')
         AND NOT EXISTS (SELECT 1 FROM endpoint_deliveries WHERE event_id = ? AND status = 'pending')
       RETURNING id)
     SELECT EXISTS (SELECT 1 FROM s) OR EXISTS (SELECT 1 FROM events WHERE id = ? AND settled_at IS NOT NULL) AS settled`,
    [eventId, eventId, eventId, eventId],
  );
  return !!r.rows[0]?.settled;
}

function record(channel: Channel, outcome: 'delivered' | 'retry' | 'failed'): void {
  metrics.notificationOutcomes.inc({ channel, outcome });
  countStat(`notifications_${outcome}`);
}

/**
 * One attempt on one channel: counted first (a crash mid-send still counts), then its outcome and
 * the attempt row recorded in one statement.
 */
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
    .returning('attempts');
  if (claimed.length === 0) return 'skipped';
  const at = new Date();
  let error: string | null = null;
  let statusCode: number | null = null;
  let permanent = false;
  try {
    if (row.channel === 'webhook') statusCode = (await senders.webhook(row.target, event)) ?? null;
    else if (senders.email) await senders.email(row.target, event);
    else throw new DeliveryError('e-mail is not configured on this worker (SMTP_URL unset)');
  } catch (err) {
    error = (err instanceof DeliveryError ? err.message : `unexpected: ${(err as Error).message}`).slice(0, 1000);
    statusCode = err instanceof DeliveryError ? (err.statusCode ?? null) : null;
    permanent = err instanceof DeliveryError && err.permanent;
  }
  const outcome = error === null ? 'delivered' : final || permanent ? 'failed' : 'pending';
  await db.raw(
    `WITH n AS (
       UPDATE notifications SET status = ?, delivered_at = CASE WHEN ? THEN now() ELSE delivered_at END,
         last_error = CASE WHEN ? THEN last_error ELSE ? END, updated_at = now()
       WHERE id = ? AND status = 'pending' RETURNING id)
     INSERT INTO delivery_attempts (delivery_id, kind, event_id, attempt_no, at, status_code, error, duration_ms)
     VALUES (?, 'notification', ?, ?, ?, ?::int, ?, ?)`,
    [
      outcome,
      outcome === 'delivered',
      outcome === 'delivered',
      error,
      row.id,
      row.id,
      row.event_id,
      claimed[0].attempts,
      at,
      statusCode,
      error,
      Date.now() - at.getTime(),
    ],
  );
  record(row.channel, outcome === 'pending' ? 'retry' : outcome);
  return outcome;
}

/**
 * Delivers one event on every channel and endpoint still pending. What was already delivered (or
 * failed) is never sent again by a retry or a second run. A delivery that fails stays pending and
 * this throws, so the queue retries with backoff; on the `final` attempt it is marked failed
 * instead. The event is settled once nothing is pending.
 */
export async function deliverEvent(
  ctx: Context,
  senders: Senders,
  eventId: string,
  opts: { final: boolean },
): Promise<DeliveryResult> {
  const result: DeliveryResult = {
    event_id: eventId,
    delivered: [],
    failed: [],
    pending: [],
    endpoints: { delivered: [], failed: [], pending: [] },
    settled: false,
  };
  const event = await ctx.db('events').where({ id: eventId }).first('id', 'order_id', 'type', 'payload', 'settled_at');
  if (!event) return { ...result, skipped: 'missing' };
  if (event.settled_at) return { ...result, skipped: 'settled', settled: true };
  const release = await takeLease(ctx, eventId);
  if (!release) throw new DeliveryBusyError(eventId);
  const load = async () => {
    const [channels, endpoints] = await Promise.all([
      ctx.db('notifications').where({ event_id: eventId }).orderBy('channel') as Promise<NotificationRow[]>,
      ctx.db('endpoint_deliveries').where({ event_id: eventId }).orderBy('seq') as Promise<EndpointDeliveryRow[]>,
    ]);
    return { channels, endpoints };
  };
  try {
    let rows = await load();
    if (rows.channels.length === 0 && rows.endpoints.length === 0) {
      await planDeliveries(ctx, senders, event);
      rows = await load();
    }
    const payload = event.payload as EventPayload;
    const pending = rows.channels.filter((r) => r.status === 'pending');
    const pendingEndpoints = rows.endpoints.filter((r) => r.status === 'pending');
    const [outcomes, endpointOutcomes] = await Promise.all([
      Promise.all(pending.map((r) => attemptChannel(ctx.db, senders, r, payload, opts.final))),
      Promise.all(pendingEndpoints.map((r) => attemptEndpoint(ctx, senders.endpoint, r, payload, opts.final))),
    ]);
    for (const [i, outcome] of outcomes.entries()) if (outcome !== 'skipped') result[outcome].push(pending[i].channel);
    for (const [i, outcome] of endpointOutcomes.entries())
      if (outcome !== 'skipped') result.endpoints[outcome].push(pendingEndpoints[i].endpoint_id);
    result.settled = await settleIfDone(ctx.db, eventId);
  } finally {
    await release();
  }
  const failedChannels = [...result.pending, ...result.failed];
  const failedEndpoints = [...result.endpoints.pending, ...result.endpoints.failed];
  if (failedChannels.length > 0 || failedEndpoints.length > 0) {
    const [errors, endpointErrors] = await Promise.all([
      ctx
        .db('notifications')
        .where({ event_id: eventId })
        .whereIn('channel', failedChannels)
        .select('channel', 'last_error'),
      ctx
        .db('endpoint_deliveries')
        .where({ event_id: eventId })
        .whereIn('endpoint_id', failedEndpoints)
        .select('endpoint_id', 'last_error'),
    ]);
    throw new DeliveryError(
      [
        ...errors.map((e) => `${e.channel}: ${e.last_error}`),
        ...endpointErrors.map((e) => `endpoint ${e.endpoint_id}: ${e.last_error}`),
      ].join('; '),
    );
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
  await runUnitOfWork(ctx, 'resend', async (uow) => {
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
  });
  return getNotification(ctx.db, id);
}
