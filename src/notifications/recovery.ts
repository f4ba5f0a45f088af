import { EVENT_BODY_SQL, eventBody, type EventBodyParts } from '../events';
import type { Context } from '../platform/context';
import { attemptEndpoint, type EndpointSender } from './endpoints.service';
import { DeliveryBusyError, takeLease } from './lease';
import type { EventPayload } from './notifications.schemas';
import { DeliveryError } from './webhook';

export interface RecoveryResult {
  endpoint_id: string;
  delivered: number;
  failed: number;
}

/**
 * The `recover-endpoint` job: every event since `since` that the endpoint subscribes to and did
 * not receive (no delivery, or a failed one) gets a pending delivery, and they are sent one at a
 * time in `sequence` order (the feed's; an event not numbered yet comes last, in write order). A failure stops the run and throws, so the queue retries
 * it with backoff and it resumes at the same event: order is kept. On the `final` attempt the
 * failed delivery and every one after it are marked failed. Each event's lease is held while it is
 * sent, so its own `deliver` job never sends it at the same time; a delivered one is never resent.
 */
export async function recoverDeliveries(
  ctx: Context,
  send: EndpointSender,
  endpointId: string,
  since: string,
  opts: { final: boolean },
): Promise<RecoveryResult> {
  const { db } = ctx;
  const result: RecoveryResult = { endpoint_id: endpointId, delivered: 0, failed: 0 };
  await db.raw(
    `INSERT INTO endpoint_deliveries (id, event_id, endpoint_id)
     SELECT gen_random_uuid(), e.id, w.id
     FROM webhook_endpoints w
     JOIN events e ON e.created_at >= ?::timestamptz
       AND (w.types @> '{*}'::text[] OR w.types @> ARRAY[e.type]::text[])
     WHERE w.id = ? AND w.status = 'active'
     ORDER BY e.sequence NULLS LAST, e.written_at, e.id
     ON CONFLICT (event_id, endpoint_id) DO UPDATE SET status = 'pending', updated_at = now()
       WHERE endpoint_deliveries.status = 'failed'`,
    [since, endpointId],
  );
  for (;;) {
    const batch: { id: string; event_id: string; endpoint_id: string; body: EventBodyParts<EventPayload> }[] = await db(
      'endpoint_deliveries as d',
    )
      .join('events as e', 'e.id', 'd.event_id')
      .where({ 'd.endpoint_id': endpointId, 'd.status': 'pending' })
      .where('e.created_at', '>=', since)
      .orderByRaw('e.sequence NULLS LAST, e.written_at, e.id')
      .limit(100)
      .select('d.id', 'd.event_id', 'd.endpoint_id', db.raw(`${EVENT_BODY_SQL('e')} AS body`));
    if (batch.length === 0) return result;
    for (const row of batch) {
      const release = await takeLease(ctx, row.event_id);
      if (!release) throw new DeliveryBusyError(row.event_id);
      let outcome: Awaited<ReturnType<typeof attemptEndpoint>>;
      try {
        outcome = await attemptEndpoint(ctx, send, row, eventBody(row.body), opts.final);
      } finally {
        await release();
      }
      if (outcome === 'delivered') result.delivered += 1;
      if (outcome === 'failed') result.failed += 1;
      if (outcome === 'pending') {
        const d = await db('endpoint_deliveries').where({ id: row.id }).first('last_error');
        throw new DeliveryError(
          `recovery of endpoint ${endpointId} stopped at event ${row.event_id}: ${d?.last_error}`,
        );
      }
      if (outcome === 'failed' && opts.final) {
        // The last attempt: what is left after the failed one is failed too (a resend or another recovery can retry).
        const rest = await db.raw(
          `UPDATE endpoint_deliveries d SET status = 'failed', last_error = 'recovery gave up after NOTIFY_MAX_ATTEMPTS', updated_at = now()
           FROM events e
           WHERE e.id = d.event_id AND d.endpoint_id = ? AND d.status = 'pending' AND e.created_at >= ?::timestamptz`,
          [endpointId, since],
        );
        result.failed += rest.rowCount ?? 0;
        return result;
      }
    }
  }
}
