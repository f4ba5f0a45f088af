import { randomBytes, randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { Context } from '../platform/context';
import type { Db, Executor } from '../platform/db';
import { NotFoundError } from '../platform/errors';
import { JOB, QUEUES } from '../platform/job-catalog';
import { logger } from '../platform/logger';
import { countStat, metrics } from '../platform/metrics';
import { runUnitOfWork } from '../platform/unit-of-work';
import { listCursor } from '../platform/validation';
import { z } from 'zod';
import type { CreateEndpoint, Delivery, Endpoint, ListDeliveriesQuery, UpdateEndpoint } from './endpoints.schemas';
import type { EventPayload } from './notifications.schemas';
import { assertPublicTarget, DeliveryError, refusePrivateTarget, webhookKey } from './webhook';

/** How long a rotated-out secret still signs deliveries (beside the new one). */
export const SECRET_OVERLAP_HOURS = 24;

/** Sends one event to one endpoint URL signed with every key given; resolves with the 2xx status. */
export type EndpointSender = (url: string, keys: Buffer[], event: EventPayload) => Promise<number>;

interface EndpointRow {
  id: string;
  url: string;
  types: string[];
  description: string | null;
  status: 'active' | 'disabled';
  secret: string;
  disabled_at: Date | null;
  disabled_reason: 'operator' | 'failing' | null;
  created_at: Date;
  updated_at: Date;
}

const toEndpoint = (r: EndpointRow): Endpoint => ({
  id: r.id,
  url: r.url,
  types: r.types,
  description: r.description ?? null,
  status: r.status,
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
  disabled_at: r.disabled_at ? r.disabled_at.toISOString() : null,
  disabled_reason: r.disabled_reason ?? null,
});

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/**
 * Under WEBHOOK_PRIVATE_TARGETS=deny an endpoint may not aim at a non-public address (checked again
 * at each send). `path` names what the refusal is about: `body.url`; `body.status` when an endpoint
 * made under `allow` is turned active again without a new url; `url` (the endpoint's own) when it
 * is recovered.
 */
async function checkTarget(ctx: Context, url: string | undefined, path = 'body.url'): Promise<void> {
  await refusePrivateTarget(ctx.config.WEBHOOK_PRIVATE_TARGETS === 'deny', url, path, (refusal) =>
    path === 'body.url'
      ? refusal
      : `the endpoint's url is ${refusal}: give it a public url${path === 'url' ? ' (PATCH) first' : ''}`,
  );
}

export async function createEndpoint(ctx: Context, input: CreateEndpoint): Promise<Endpoint & { secret: string }> {
  await checkTarget(ctx, input.url);
  const secret = newSecret();
  const [row] = await ctx
    .db('webhook_endpoints')
    .insert({ id: uuidv7(), url: input.url, types: input.types, description: input.description ?? null, secret })
    .returning('*');
  return { ...toEndpoint(row), secret };
}

export async function listEndpoints(db: Db): Promise<{ data: Endpoint[] }> {
  const rows = await db('webhook_endpoints').orderBy('id');
  return { data: rows.map(toEndpoint) };
}

export async function getEndpoint(db: Executor, id: string): Promise<Endpoint> {
  const row = await db('webhook_endpoints').where({ id }).first();
  if (!row) throw new NotFoundError('webhook endpoint');
  return toEndpoint(row);
}

export async function updateEndpoint(ctx: Context, id: string, input: UpdateEndpoint): Promise<Endpoint> {
  await checkTarget(ctx, input.url);
  const { db } = ctx;
  // Turned active as it is: its url (perhaps set under `allow`) must pass as a new one would.
  if (input.status === 'active' && input.url === undefined) {
    const current = await db('webhook_endpoints').where({ id }).first('url');
    if (!current) throw new NotFoundError('webhook endpoint');
    await checkTarget(ctx, current.url, 'body.status');
  }
  const patch: Record<string, unknown> = { updated_at: db.fn.now() };
  if (input.url !== undefined) patch.url = input.url;
  if (input.types !== undefined) patch.types = input.types;
  if (input.description !== undefined) patch.description = input.description;
  if (input.status === 'disabled') {
    patch.status = 'disabled';
    patch.disabled_at = db.raw("CASE WHEN status = 'disabled' THEN disabled_at ELSE now() END");
    patch.disabled_reason = db.raw("CASE WHEN status = 'disabled' THEN disabled_reason ELSE 'operator' END");
  } else if (input.status === 'active') {
    Object.assign(patch, { status: 'active', disabled_at: null, disabled_reason: null, failing_since: null });
  }
  const [row] = await db('webhook_endpoints').where({ id }).update(patch).returning('*');
  if (!row) throw new NotFoundError('webhook endpoint');
  return toEndpoint(row);
}

/** Deletes the endpoint with its delivery log; deliveries still pending are dropped (never sent). */
export async function deleteEndpoint(db: Db, id: string): Promise<void> {
  const n = await db('webhook_endpoints').where({ id }).delete();
  if (n === 0) throw new NotFoundError('webhook endpoint');
}

/** A new secret; the one it replaces still signs every delivery (second signature) for SECRET_OVERLAP_HOURS. */
export async function rotateSecret(db: Db, id: string): Promise<{ secret: string }> {
  const secret = newSecret();
  const rows = await db('webhook_endpoints')
    .where({ id })
    .update({
      previous_secret: db.ref('secret'),
      previous_secret_expires_at: db.raw(`now() + interval '${SECRET_OVERLAP_HOURS} hours'`),
      secret,
      updated_at: db.fn.now(),
    })
    .returning('id');
  if (rows.length === 0) throw new NotFoundError('webhook endpoint');
  return { secret };
}

/**
 * Active again, and one job (queue notifications) that sends, in event order, every event since
 * `since` that this endpoint subscribes to and did not receive.
 */
export async function recoverEndpoint(ctx: Context, id: string, since: string): Promise<Endpoint> {
  // Active again is active again: under deny, not at a url that PATCH would refuse to reactivate.
  const current = await ctx.db('webhook_endpoints').where({ id }).first('url');
  if (!current) throw new NotFoundError('webhook endpoint');
  await checkTarget(ctx, current.url, 'url');
  return runUnitOfWork(ctx, 'recover-endpoint', async (uow) => {
    const [row] = await uow
      .trx('webhook_endpoints')
      .where({ id })
      .update({
        status: 'active',
        disabled_at: null,
        disabled_reason: null,
        failing_since: null,
        updated_at: uow.trx.fn.now(),
      })
      .returning('*');
    if (!row) throw new NotFoundError('webhook endpoint');
    await uow.addJobs([recoveryJob(id, since)]);
    return toEndpoint(row);
  });
}

/** A `recover-endpoint` job of its own id (so NOTIFY_MAX_ATTEMPTS of its own). */
const recoveryJob = (endpointId: string, since: string) => ({
  queue: QUEUES.notifications,
  job_name: JOB.recoverEndpoint,
  job_id: `recover-${endpointId}-${randomUUID()}`,
  data: { endpointId, since: new Date(since).toISOString() },
});

/**
 * Retry of a recovery's job from the board (it gave up on its last attempt): the same recovery
 * again as a new job, with a fresh budget. The endpoint's status is left as it is: a recovery sends
 * only to an active endpoint. Returns the new job's id.
 */
export async function requeueRecovery(ctx: Context, endpointId: string, since: string): Promise<string> {
  return runUnitOfWork(ctx, 'recover-endpoint', async (uow) => {
    const job = recoveryJob(endpointId, since);
    await uow.addJobs([job]);
    return job.job_id;
  });
}

/** [endpoint id, seq]: one endpoint's cursor is not another's. */
const deliveryCursor = listCursor('endpoint-deliveries', z.tuple([z.string(), z.number().int().positive()]));

/** The endpoint's deliveries, newest first, keyset-paginated on their seq. */
export async function listDeliveries(
  db: Db,
  id: string,
  q: ListDeliveriesQuery,
): Promise<{ data: Delivery[]; next_cursor: string | null }> {
  const cursor = deliveryCursor.decode(q.cursor);
  if (cursor && cursor[0] !== id) deliveryCursor.refuse();
  const after = cursor?.[1];
  if (!(await db('webhook_endpoints').where({ id }).first('id'))) throw new NotFoundError('webhook endpoint');
  const query = db('endpoint_deliveries as d')
    .join('events as e', 'e.id', 'd.event_id')
    .where('d.endpoint_id', id)
    .orderBy('d.seq', 'desc')
    .limit(q.limit + 1)
    .select(
      'd.seq',
      'd.id',
      'd.event_id',
      'e.type as event_type',
      'd.status',
      'd.attempts',
      'd.last_status_code',
      'd.last_error',
      'd.delivered_at',
    );
  if (q.status) query.where('d.status', q.status);
  if (after !== undefined) query.where('d.seq', '<', after);
  const rows = await query;
  const page = rows.slice(0, q.limit);
  return {
    data: page.map(({ seq: _seq, delivered_at, ...r }) => ({
      ...r,
      delivered_at: delivered_at ? (delivered_at as Date).toISOString() : null,
    })),
    next_cursor: rows.length > q.limit ? deliveryCursor.encode([id, Number(page[page.length - 1].seq)]) : null,
  };
}

// ---- delivery --------------------------------------------------------------------------------

/** A pending (event, endpoint) delivery as the delivering run reads it. */
export interface EndpointDeliveryRow {
  id: string;
  event_id: string;
  endpoint_id: string;
  status: string;
}

function recordEndpoint(outcome: 'delivered' | 'retry' | 'failed'): void {
  metrics.notificationOutcomes.inc({ channel: 'endpoint', outcome });
  countStat(`endpoint_deliveries_${outcome}`);
}

/**
 * One attempt of one endpoint delivery: claimed first (the attempt counts even if the process
 * dies mid-send), sent with the endpoint's secret (and the previous one during a rotation's
 * overlap), then its outcome, the attempt row and the endpoint's failing clock in one statement
 * (an endpoint it disables gets disabled_at and updated_at).
 * A delivery to an endpoint no longer active is failed unsent.
 */
export async function attemptEndpoint(
  ctx: Context,
  send: EndpointSender,
  row: Pick<EndpointDeliveryRow, 'id' | 'event_id' | 'endpoint_id'>,
  event: EventPayload,
  final: boolean,
): Promise<'delivered' | 'pending' | 'failed' | 'skipped'> {
  const { db, config } = ctx;
  // `(… = 'pending') IS TRUE`: found by its key, not by scanning the pending index (notifications.service.ts).
  const claimed = await db.raw(
    `UPDATE endpoint_deliveries d SET attempts = d.attempts + 1, updated_at = now()
     FROM webhook_endpoints w
     WHERE d.id = ? AND (d.status = 'pending') IS TRUE AND w.id = d.endpoint_id AND w.status = 'active'
     RETURNING d.attempts, w.url, w.secret,
       CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret`,
    [row.id],
  );
  const c = claimed.rows[0] as { attempts: number; url: string; secret: string; previous_secret: string | null };
  if (!c) {
    const dropped = await db.raw(
      `UPDATE endpoint_deliveries d SET status = 'failed', last_error = 'endpoint is disabled', updated_at = now()
       WHERE d.id = ? AND (d.status = 'pending') IS TRUE
         AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.status = 'active')
       RETURNING d.id`,
      [row.id],
    );
    return dropped.rows.length > 0 ? 'failed' : 'skipped';
  }
  const at = new Date();
  let statusCode: number | null = null;
  let error: string | null = null;
  let permanent = false;
  try {
    if (config.WEBHOOK_PRIVATE_TARGETS === 'deny') await assertPublicTarget(c.url);
    const keys = [webhookKey(c.secret)];
    if (c.previous_secret) keys.push(webhookKey(c.previous_secret));
    statusCode = await send(c.url, keys, event);
  } catch (err) {
    error = (err instanceof DeliveryError ? err.message : `unexpected: ${(err as Error).message}`).slice(0, 1000);
    statusCode = err instanceof DeliveryError ? (err.statusCode ?? null) : null;
    permanent = err instanceof DeliveryError && err.permanent;
  }
  const outcome = error === null ? 'delivered' : final || permanent ? 'failed' : 'pending';
  const hours = config.ENDPOINT_DISABLE_AFTER_HOURS;
  const result = await db.raw(
    `WITH d AS (
       UPDATE endpoint_deliveries SET status = ?, last_status_code = ?::int, last_error = ?,
         delivered_at = CASE WHEN ? THEN now() END, updated_at = now()
       WHERE id = ? AND (status = 'pending') IS TRUE RETURNING id),
     a AS (
       INSERT INTO delivery_attempts (delivery_id, kind, event_id, attempt_no, at, status_code, error, duration_ms)
       VALUES (?, 'endpoint', ?, ?, ?, ?::int, ?, ?)),
     w AS (
       UPDATE webhook_endpoints SET
         failing_since = CASE WHEN ? THEN NULL ELSE coalesce(failing_since, ?::timestamptz) END,
         -- One decision, read off the row as it stands (a failure reaches here only while active: WHERE).
         (status, disabled_at, disabled_reason, updated_at) = (
           SELECT CASE WHEN off THEN 'disabled' ELSE status END, CASE WHEN off THEN now() ELSE disabled_at END,
                  CASE WHEN off THEN 'failing' ELSE disabled_reason END, CASE WHEN off THEN now() ELSE updated_at END
           FROM (SELECT NOT ? AND coalesce(failing_since, ?::timestamptz) <= now() - make_interval(secs => ?) AS off) s)
       WHERE id = ? AND (CASE WHEN ? THEN failing_since IS NOT NULL ELSE status = 'active' END)
       RETURNING status, disabled_reason, (disabled_at = now()) AS just_disabled)
     SELECT (SELECT count(*) FROM d)::int AS recorded, (SELECT just_disabled FROM w) AS just_disabled`,
    [
      outcome,
      statusCode,
      error,
      outcome === 'delivered',
      row.id,
      row.id,
      row.event_id,
      c.attempts,
      at,
      statusCode,
      error,
      Date.now() - at.getTime(),
      error === null,
      at,
      error === null,
      at,
      hours * 3600,
      row.endpoint_id,
      error === null,
    ],
  );
  if (result.rows[0]?.just_disabled) {
    metrics.endpointsDisabledTotal.inc();
    countStat('endpoints_disabled');
    logger.warn(
      { endpointId: row.endpoint_id, hours },
      'webhook endpoint disabled: every delivery failed for ENDPOINT_DISABLE_AFTER_HOURS; POST /v1/webhook-endpoints/:id/recover once it is back',
    );
  }
  recordEndpoint(outcome === 'pending' ? 'retry' : outcome);
  return outcome;
}

/** Disabled endpoints right now by reason (the /metrics gauge), both reasons always present. */
export async function countDisabledEndpoints(db: Db): Promise<Record<'operator' | 'failing', number>> {
  const rows: { reason: string; n: string }[] = await db('webhook_endpoints')
    .where({ status: 'disabled' })
    .groupBy('disabled_reason')
    .select('disabled_reason as reason', db.raw('count(*) AS n'));
  const out = { operator: 0, failing: 0 };
  for (const r of rows) out[r.reason === 'failing' ? 'failing' : 'operator'] += Number(r.n);
  return out;
}
