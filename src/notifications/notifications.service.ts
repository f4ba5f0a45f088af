import type { Config } from '../platform/config';
import type { Context } from '../platform/context';
import { rawPrepared, type Db, type Executor } from '../platform/db';
import { InvalidStateError, NotFoundError } from '../platform/errors';
import { GroupCommit } from '../platform/group-commit';
import { countStat, metrics } from '../platform/metrics';
import { JOB, QUEUES } from '../platform/job-catalog';
import { runUnitOfWork, type UnitOfWork } from '../platform/unit-of-work';
import { EVENT_BODY_SQL, eventBody, type EventBodyParts } from '../events';
import { isoSql } from '../orders';
import { createMailer } from './email';
import type { Channel, EventPayload, Notification } from './notifications.schemas';
import type { EndpointSender } from './endpoints.service';
import { DeliveryBusyError, takeLease } from './lease';
import { logger } from '../platform/logger';
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

const CUSTOMER_EVENTS = '^(order\\.|shipment\\.created$)';

/*
 * `(x.status = 'pending') IS TRUE`, `(e.settled_at IS NULL) IS TRUE`: the same test, written so
 * that the partial indexes of what waits (`notifications_pending`, `events_unsettled`, …) cannot
 * serve it, and these rows are found by their key. Statistics taken while little waited estimate
 * such an index at one row, so PostgreSQL scanned it for every row looked up by id: on a table of
 * 3 million notifications, about 145 index rows per order delivered, and a backlog (a receiver down for an
 * hour) would make every claim and outcome read all of it (docs/benchmarks.md, "Growth").
 */

/**
 * Plans (on an event's first run) and claims (on every run), for many events in ONE statement: the
 * customer's channels (webhook to webhook_url or NOTIFY_WEBHOOK_URL, e-mail when SMTP is set; for
 * order.* and shipment.created) and a delivery per active endpoint subscribed to the type are
 * inserted already claimed (attempts = 1) when the event has none yet; otherwise every pending one
 * is claimed (attempts + 1). A pending delivery whose endpoint is no longer active is failed unsent.
 * One row per event id asked: the event (null when settled or missing) and what to send.
 */
const CLAIM_SQL = `
WITH ev AS (
  SELECT e.id, e.order_id, e.type,
         ${EVENT_BODY_SQL('e')} AS body,
         EXISTS (SELECT 1 FROM notifications n WHERE n.event_id = e.id)
           OR EXISTS (SELECT 1 FROM endpoint_deliveries d WHERE d.event_id = e.id) AS planned
  FROM events e WHERE e.id = ANY(:ids::uuid[]) AND (e.settled_at IS NULL) IS TRUE),
cust AS (
  SELECT ev.id AS event_id, ev.order_id, c.email, coalesce(c.webhook_url, :fallback::text) AS url
  FROM ev JOIN orders o ON o.id = ev.order_id LEFT JOIN customers c ON c.id = o.customer_id
  WHERE NOT ev.planned AND ev.type ~ '${CUSTOMER_EVENTS}'),
new_n AS (
  INSERT INTO notifications (id, event_id, order_id, channel, target, attempts)
  SELECT gen_random_uuid(), cust.event_id, cust.order_id, ch.channel, ch.target, 1
  FROM cust
  CROSS JOIN LATERAL (VALUES ('webhook', cust.url), ('email', CASE WHEN :email THEN cust.email END)) AS ch(channel, target)
  WHERE ch.target IS NOT NULL
  ORDER BY cust.event_id, ch.channel
  ON CONFLICT (event_id, channel) DO NOTHING
  RETURNING id, event_id, channel, target, attempts),
new_e AS (
  INSERT INTO endpoint_deliveries (id, event_id, endpoint_id, attempts)
  SELECT gen_random_uuid(), ev.id, w.id, 1
  FROM ev JOIN webhook_endpoints w
    ON w.status = 'active' AND (w.types @> '{*}'::text[] OR w.types @> ARRAY[ev.type]::text[])
  WHERE NOT ev.planned
  ORDER BY ev.id, w.id
  ON CONFLICT (event_id, endpoint_id) DO NOTHING
  RETURNING id, event_id, endpoint_id, attempts),
old_n AS (
  UPDATE notifications n SET attempts = n.attempts + 1, updated_at = now()
  FROM ev WHERE ev.planned AND n.event_id = ev.id AND (n.status = 'pending') IS TRUE
  RETURNING n.id, n.event_id, n.channel, n.target, n.attempts),
old_e AS (
  UPDATE endpoint_deliveries d SET attempts = d.attempts + 1, updated_at = now()
  FROM ev, webhook_endpoints w
  WHERE ev.planned AND d.event_id = ev.id AND (d.status = 'pending') IS TRUE AND w.id = d.endpoint_id AND w.status = 'active'
  RETURNING d.id, d.event_id, d.endpoint_id, d.attempts),
dropped AS (
  UPDATE endpoint_deliveries d SET status = 'failed', last_error = 'endpoint is disabled', updated_at = now()
  FROM ev
  WHERE ev.planned AND d.event_id = ev.id AND (d.status = 'pending') IS TRUE
    AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.status = 'active')
  RETURNING d.event_id, d.endpoint_id),
chans AS (SELECT * FROM new_n UNION ALL SELECT * FROM old_n),
ends AS (SELECT * FROM new_e UNION ALL SELECT * FROM old_e)
SELECT asked.id,
  (SELECT e.settled_at IS NOT NULL FROM events e WHERE e.id = asked.id) AS settled,
  (SELECT ev.body FROM ev WHERE ev.id = asked.id) AS body,
  (SELECT coalesce(json_agg(json_build_object('id', c.id, 'channel', c.channel, 'target', c.target, 'attempts', c.attempts)
     ORDER BY c.channel), '[]') FROM chans c WHERE c.event_id = asked.id) AS channels,
  (SELECT coalesce(json_agg(json_build_object(
      'id', x.id, 'endpoint_id', x.endpoint_id, 'attempts', x.attempts, 'url', w.url, 'secret', w.secret,
      'previous_secret', CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END) ORDER BY x.endpoint_id), '[]')
   FROM ends x JOIN webhook_endpoints w ON w.id = x.endpoint_id WHERE x.event_id = asked.id) AS endpoints,
  (SELECT coalesce(json_agg(dr.endpoint_id), '[]') FROM dropped dr WHERE dr.event_id = asked.id) AS dropped
FROM unnest(:ids::uuid[]) AS asked(id)`;

/**
 * Every outcome of many runs in ONE statement: each channel's and endpoint's status, its attempt
 * row, the endpoints' failing clocks (one failing for ENDPOINT_DISABLE_AFTER_HOURS is disabled, its
 * updated_at with it; any success in the batch clears the clock), and each event settled when nothing of it is left
 * pending. Endpoint rows are locked in id order, so concurrent batches cannot deadlock on them.
 */
const RESULT_SQL = `
WITH r AS (
  SELECT * FROM json_to_recordset(:results::json) AS x(
    id uuid, event_id uuid, kind text, endpoint_id uuid, status text, status_code int, error text,
    attempt_no int, at timestamptz, duration_ms int)),
un AS (
  UPDATE notifications n SET status = r.status,
    delivered_at = CASE WHEN r.status = 'delivered' THEN now() ELSE n.delivered_at END,
    last_error = coalesce(r.error, n.last_error), updated_at = now()
  FROM r WHERE r.kind = 'notification' AND n.id = r.id AND (n.status = 'pending') IS TRUE
  RETURNING n.id),
ue AS (
  UPDATE endpoint_deliveries d SET status = r.status, last_status_code = r.status_code, last_error = r.error,
    delivered_at = CASE WHEN r.status = 'delivered' THEN now() END, updated_at = now()
  FROM r WHERE r.kind = 'endpoint' AND d.id = r.id AND (d.status = 'pending') IS TRUE
  RETURNING d.id),
a AS (
  INSERT INTO delivery_attempts (delivery_id, kind, event_id, attempt_no, at, status_code, error, duration_ms)
  SELECT r.id, r.kind, r.event_id, r.attempt_no, r.at, r.status_code, r.error, r.duration_ms FROM r),
per AS (
  SELECT endpoint_id, bool_or(error IS NULL) AS ok, min(at) FILTER (WHERE error IS NOT NULL) AS first_fail
  FROM r WHERE kind = 'endpoint' GROUP BY endpoint_id),
lk AS (
  SELECT w.id FROM webhook_endpoints w JOIN per ON per.endpoint_id = w.id
  WHERE CASE WHEN per.ok THEN w.failing_since IS NOT NULL ELSE w.status = 'active' END
  ORDER BY w.id FOR NO KEY UPDATE OF w),
w AS (
  UPDATE webhook_endpoints w SET
    failing_since = CASE WHEN per.ok THEN NULL ELSE coalesce(w.failing_since, per.first_fail) END,
    (status, disabled_at, disabled_reason, updated_at) = (
      SELECT CASE WHEN off THEN 'disabled' ELSE w.status END, CASE WHEN off THEN now() ELSE w.disabled_at END,
             CASE WHEN off THEN 'failing' ELSE w.disabled_reason END, CASE WHEN off THEN now() ELSE w.updated_at END
      FROM (SELECT NOT per.ok AND coalesce(w.failing_since, per.first_fail) <= now() - make_interval(secs => :secs) AS off) s)
  FROM per JOIN lk ON lk.id = per.endpoint_id
  WHERE w.id = per.endpoint_id
  RETURNING w.id, (w.status = 'disabled' AND w.disabled_at = now()) AS just_disabled),
-- The events' rows are locked in id order before any is updated, as the sequencer locks them:
-- two statements that update the same events in different orders deadlock (seen in the soak).
le AS (
  SELECT e.id FROM events e WHERE e.id = ANY(:events::uuid[]) AND (e.settled_at IS NULL) IS TRUE
  ORDER BY e.id FOR NO KEY UPDATE OF e),
s AS (
  UPDATE events e SET settled_at = now()
  FROM le WHERE e.id = le.id AND (e.settled_at IS NULL) IS TRUE
    AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_id = e.id AND (n.status = 'pending') IS TRUE
                    AND n.id NOT IN (SELECT id FROM r WHERE status <> 'pending'))
    AND NOT EXISTS (SELECT 1 FROM endpoint_deliveries d WHERE d.event_id = e.id AND (d.status = 'pending') IS TRUE
                    AND d.id NOT IN (SELECT id FROM r WHERE status <> 'pending'))
  RETURNING e.id)
SELECT asked.id,
  EXISTS (SELECT 1 FROM s WHERE s.id = asked.id)
    OR EXISTS (SELECT 1 FROM events e WHERE e.id = asked.id AND e.settled_at IS NOT NULL) AS settled,
  (SELECT coalesce(json_agg(w.id), '[]') FROM w WHERE w.just_disabled) AS disabled
FROM unnest(:events::uuid[]) AS asked(id)`;

interface Claimed {
  settled: boolean | null;
  /** The event's payload and numbering (EVENT_BODY_SQL), joined by eventBody. */
  body: EventBodyParts<EventPayload> | null;
  channels: ClaimedChannel[];
  endpoints: ClaimedEndpoint[];
  dropped: string[];
}

/**
 * Claims and outcomes of the deliveries running at once in this process go to PostgreSQL
 * together (group commit: one statement per group, up to 100 events). Each event is in one group
 * at a time (its lease), so groups in flight never touch the same delivery rows.
 */
interface Batchers {
  claim: GroupCommit<string, Claimed>;
  result: GroupCommit<{ eventId: string; outcomes: Outcome[] }, { settled: boolean; disabled: string[] }>;
}
const batchers = new WeakMap<Db, Map<boolean, Batchers>>();
function batchersOf(ctx: Context, hasEmail: boolean): Batchers {
  const perDb = batchers.get(ctx.db) ?? new Map<boolean, Batchers>();
  batchers.set(ctx.db, perDb);
  let b = perDb.get(hasEmail);
  if (b) return b;
  const { db, config } = ctx;
  b = {
    claim: new GroupCommit<string, Claimed>({
      maxBatch: 100,
      maxInFlight: 2,
      lingerMs: config.WORKER_BATCH_LINGER_MS,
      commit: async (ids) => {
        const rows = (
          await rawPrepared(db, CLAIM_SQL, { ids, fallback: config.NOTIFY_WEBHOOK_URL ?? null, email: hasEmail })
        ).rows as (Claimed & { id: string })[];
        const byId = new Map(rows.map((r) => [r.id, r]));
        return ids.map((id) => byId.get(id)!);
      },
    }),
    result: new GroupCommit({
      maxBatch: 100,
      maxInFlight: 2,
      lingerMs: config.WORKER_BATCH_LINGER_MS,
      commit: async (items) => {
        const events = items.map((i) => i.eventId);
        const rows = (
          await rawPrepared(db, RESULT_SQL, {
            results: JSON.stringify(items.flatMap((i) => i.outcomes.map((o) => ({ ...o, event_id: i.eventId })))),
            events,
            secs: config.ENDPOINT_DISABLE_AFTER_HOURS * 3600,
          })
        ).rows as { id: string; settled: boolean; disabled: string[] }[];
        const byId = new Map(rows.map((r) => [r.id, r]));
        // The endpoints disabled by this group are reported once, with its first item.
        return events.map((id, k) => ({ settled: byId.get(id)!.settled, disabled: k === 0 ? rows[0].disabled : [] }));
      },
    }),
  };
  perDb.set(hasEmail, b);
  return b;
}

interface ClaimedChannel {
  id: string;
  channel: Channel;
  target: string;
  attempts: number;
}
interface ClaimedEndpoint {
  id: string;
  endpoint_id: string;
  attempts: number;
  url: string;
  secret: string;
  previous_secret: string | null;
}
interface Outcome {
  id: string;
  kind: 'notification' | 'endpoint';
  endpoint_id: string | null;
  status: 'delivered' | 'pending' | 'failed';
  status_code: number | null;
  error: string | null;
  attempt_no: number;
  at: string;
  duration_ms: number;
}

function record(channel: Channel | 'endpoint', outcome: 'delivered' | 'retry' | 'failed'): void {
  metrics.notificationOutcomes.inc({ channel, outcome });
  countStat(channel === 'endpoint' ? `endpoint_deliveries_${outcome}` : `notifications_${outcome}`);
}

/** One send; the outcome of the attempt (never throws). */
async function attempt(
  send: () => Promise<void | number>,
  base: Pick<Outcome, 'id' | 'kind' | 'endpoint_id' | 'attempt_no'>,
  final: boolean,
): Promise<Outcome> {
  const at = new Date();
  let error: string | null = null;
  let statusCode: number | null = null;
  let permanent = false;
  try {
    statusCode = (await send()) ?? null;
  } catch (err) {
    error = (err instanceof DeliveryError ? err.message : `unexpected: ${(err as Error).message}`).slice(0, 1000);
    statusCode = err instanceof DeliveryError ? (err.statusCode ?? null) : null;
    permanent = err instanceof DeliveryError && err.permanent;
  }
  const status = error === null ? 'delivered' : final || permanent ? 'failed' : 'pending';
  return {
    ...base,
    status,
    status_code: statusCode,
    error,
    at: at.toISOString(),
    duration_ms: Date.now() - at.getTime(),
  };
}

/**
 * Delivers one event on every channel and endpoint still pending. What was already delivered (or
 * failed) is never sent again by a retry or a second run: each attempt is claimed before it is
 * sent (so a crash mid-send still counts it) and a claim only takes pending rows. Two runs of one
 * event never overlap (a Redis lease). A delivery that fails stays pending and this throws, so the
 * queue retries with backoff; on the `final` attempt it is marked failed instead. The event is
 * settled once nothing is pending. Two statements per run: claim, then outcomes.
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
  const release = await takeLease(ctx, eventId);
  if (!release) throw new DeliveryBusyError(eventId);
  const errors: string[] = [];
  try {
    const b = batchersOf(ctx, !!senders.email);
    const claimed = await b.claim.submit(eventId);
    if (claimed.settled === null) return { ...result, skipped: 'missing' };
    if (claimed.settled || !claimed.body) return { ...result, skipped: 'settled', settled: true };
    const payload: EventPayload = eventBody(claimed.body);
    const deny = ctx.config.WEBHOOK_PRIVATE_TARGETS === 'deny';
    const outcomes = await Promise.all([
      ...claimed.channels.map((c) =>
        attempt(
          async () => {
            if (c.channel === 'webhook') return senders.webhook(c.target, payload);
            if (senders.email) return senders.email(c.target, payload);
            throw new DeliveryError('e-mail is not configured on this worker (SMTP_URL unset)');
          },
          { id: c.id, kind: 'notification', endpoint_id: null, attempt_no: c.attempts },
          opts.final,
        ),
      ),
      ...claimed.endpoints.map((e) =>
        attempt(
          async () => {
            if (deny) await assertPublicTarget(e.url);
            const keys = [webhookKey(e.secret)];
            if (e.previous_secret) keys.push(webhookKey(e.previous_secret));
            return senders.endpoint(e.url, keys, payload);
          },
          { id: e.id, kind: 'endpoint', endpoint_id: e.endpoint_id, attempt_no: e.attempts },
          opts.final,
        ),
      ),
    ]);
    const done = await b.result.submit({ eventId, outcomes });
    result.settled = done.settled;
    for (const id of done.disabled) {
      metrics.endpointsDisabledTotal.inc();
      countStat('endpoints_disabled');
      logger.warn(
        { endpointId: id, hours: ctx.config.ENDPOINT_DISABLE_AFTER_HOURS },
        'webhook endpoint disabled: every delivery failed for ENDPOINT_DISABLE_AFTER_HOURS; POST /v1/webhook-endpoints/:id/recover once it is back',
      );
    }
    for (const [i, o] of outcomes.entries()) {
      const c = i < claimed.channels.length ? claimed.channels[i] : undefined;
      const label = c ? c.channel : `endpoint ${o.endpoint_id}`;
      record(c ? c.channel : 'endpoint', o.status === 'pending' ? 'retry' : o.status);
      if (c) result[o.status].push(c.channel);
      else result.endpoints[o.status].push(o.endpoint_id!);
      if (o.error) errors.push(`${label}: ${o.error}`);
    }
    for (const id of claimed.dropped) {
      result.endpoints.failed.push(id);
      errors.push(`endpoint ${id}: endpoint is disabled`);
    }
  } finally {
    await release();
  }
  if (errors.length === 0) return result;
  // Permanent: nothing of this run is left pending, so a retry would have nothing to send.
  const left = result.pending.length + result.endpoints.pending.length;
  throw new DeliveryError(errors.join('; '), { permanent: left === 0 });
}

/**
 * The event's deliveries that ended failed (customer channels and endpoints), each as
 * `<channel or endpoint id>: <last error>`, for a job that settled its event on a later attempt.
 */
export async function failedDeliveriesOf(ctx: Context, eventId: string): Promise<string[]> {
  const rows = (
    await ctx.db.raw(
      `SELECT n.channel AS label, n.last_error FROM notifications n WHERE n.event_id = ? AND n.status = 'failed'
       UNION ALL
       SELECT 'endpoint ' || d.endpoint_id, d.last_error FROM endpoint_deliveries d WHERE d.event_id = ? AND d.status = 'failed'
       ORDER BY 1`,
      [eventId, eventId],
    )
  ).rows as { label: string; last_error: string | null }[];
  return rows.map((r) => `${r.label}: ${r.last_error ?? 'failed'}`);
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

/**
 * Resend in the caller's unit: a failed (or delivered) customer notification, or, with an id
 * `endpoint:<uuid>`, a webhook endpoint's delivery, goes back to pending and its event's job is
 * enqueued again. 404 if there is no such delivery, 409 while it is pending.
 */
export async function resendInUnit(uow: UnitOfWork, id: string): Promise<void> {
  const { trx } = uow;
  const endpoint = id.startsWith('endpoint:');
  const table = endpoint ? 'endpoint_deliveries' : 'notifications';
  const rowId = endpoint ? id.slice('endpoint:'.length) : id;
  const n = await trx(table).where({ id: rowId }).forUpdate().first('id', 'event_id', 'status');
  if (!n) throw new NotFoundError(endpoint ? 'delivery' : 'notification');
  if (n.status === 'pending') throw new InvalidStateError('the delivery is pending: it is still being delivered');
  await reopenDeliveries(uow, n.event_id, endpoint ? { endpoints: [rowId] } : { notifications: [rowId] });
}

/**
 * Retry of an event's job from the board (its deliveries were marked failed on its last attempt):
 * every failed delivery of the event, customer channels and endpoints, is resent as resendInUnit
 * resends one, in one unit with one new job; a delivered one is left alone. Returns how many it
 * resent (0: nothing of the event is failed).
 */
export async function resendFailedDeliveries(ctx: Context, eventId: string): Promise<number> {
  return runUnitOfWork(ctx, 'resend', async (uow) => {
    const failed = (table: string) =>
      uow
        .trx(table)
        .where({ event_id: eventId, status: 'failed' })
        .orderBy('id')
        .forUpdate()
        .select('id')
        .then((rows: { id: string }[]) => rows.map((r) => r.id));
    const notifications = await failed('notifications');
    const endpoints = await failed('endpoint_deliveries');
    if (notifications.length + endpoints.length === 0) return 0;
    await reopenDeliveries(uow, eventId, { notifications, endpoints });
    return notifications.length + endpoints.length;
  });
}

/**
 * Deliveries of one event back to pending, the event unsettled, and its job enqueued again through
 * the outbox, replacing the finished job of the same id: the new job has NOTIFY_MAX_ATTEMPTS of its
 * own. (While that job is still running, the outbox relay adds the new one once it has finished.)
 */
async function reopenDeliveries(
  uow: UnitOfWork,
  eventId: string,
  ids: { notifications?: string[]; endpoints?: string[] },
): Promise<void> {
  const { trx } = uow;
  for (const [table, rows] of [
    ['notifications', ids.notifications ?? []],
    ['endpoint_deliveries', ids.endpoints ?? []],
  ] as const) {
    if (rows.length === 0) continue;
    await trx(table).whereIn('id', rows).update({ status: 'pending', delivered_at: null, updated_at: trx.fn.now() });
  }
  await trx('events').where({ id: eventId }).update({ settled_at: null });
  await uow.addJobs([
    {
      queue: QUEUES.notifications,
      job_name: JOB.deliver,
      job_id: eventId,
      data: { eventId },
      replace_finished: true,
    },
  ]);
}
