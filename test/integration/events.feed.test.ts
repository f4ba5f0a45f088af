import { describe, expect, it } from 'vitest';
import { addSkuEvents } from '../../src/events';
import { checkInvariants } from '../../src/invariants';
import { pruneRecords } from '../../src/jobs/reconciler';
import { runUnitOfWork } from '../../src/platform/unit-of-work';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { useHarness, waitFor, type Harness } from '../helpers/harness';

interface FeedEvent {
  id: string;
  type: string;
  sequence: number;
  created_at: string;
  subject: { type: string; id: string };
  subject_sequence: number;
  previous_event_id: string | null;
  data: any;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads the feed from `after` until a page comes back empty; returns the events and the last cursor. */
async function drain(h: Harness, query = '', after?: string): Promise<{ events: FeedEvent[]; cursor: string }> {
  const events: FeedEvent[] = [];
  let cursor = after;
  for (;;) {
    const qs = [cursor === undefined ? '' : `after=${cursor}`, query].filter(Boolean).join('&');
    const r = await h.api('GET', `/v1/events${qs ? `?${qs}` : ''}`, { role: 'viewer' });
    expect(r.status, r.text).toBe(200);
    expect(typeof r.body.next_cursor).toBe('string');
    events.push(...r.body.data);
    if (r.body.data.length === 0) return { events, cursor: r.body.next_cursor };
    cursor = r.body.next_cursor;
  }
}

describe('the event feed', () => {
  const h = useHarness({ workers: false });

  it('when orders move, then GET /v1/events lists their events in sequence order, numbered per subject and linked, and filters by type and subject', async () => {
    await h().startWorkers();
    const customer = await makeCustomer(h());
    const product = await makeProduct(h(), 5, { low_stock_threshold: 2 });
    const a = await placeOrder(h(), customer.id, [{ sku: product.sku, quantity: 2 }]);
    await untilStatus(h(), a.id, 'confirmed');
    const b = await placeOrder(h(), customer.id, [{ sku: product.sku, quantity: 2 }]);
    await untilStatus(h(), b.id, 'confirmed');
    expect((await h().api('POST', `/v1/orders/${a.id}/fulfill`, { role: 'operator' })).status).toBe(200);
    await untilStatus(h(), a.id, 'completed');

    const all = await waitFor(
      async () => {
        const { events } = await drain(h());
        return events.length >= 5 && events;
      },
      { what: 'five events in the feed' },
    );
    const sequences = all.map((e) => e.sequence);
    expect(sequences).toEqual([...sequences].sort((x, y) => x - y));
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
    // Order a: confirmed, then fulfilled (its status, then its shipment) — numbered 1, 2, 3 and linked.
    const ofA = all.filter((e) => e.subject.type === 'order' && e.subject.id === a.id);
    expect(ofA.map((e) => e.type)).toEqual(['order.confirmed', 'order.completed', 'shipment.created']);
    expect(ofA.map((e) => e.subject_sequence)).toEqual([1, 2, 3]);
    expect(ofA.map((e) => e.previous_event_id)).toEqual([null, ofA[0].id, ofA[1].id]);
    expect(ofA[0].data.order.id).toBe(a.id);
    // Stock 5 with threshold 2: reserving 2 leaves 3, reserving 2 more leaves 1 → one low-stock event.
    const ofSku = all.filter((e) => e.subject.type === 'sku');
    expect(ofSku.map((e) => [e.type, e.subject.id, e.subject_sequence, e.data.available])).toEqual([
      ['inventory.low_stock', product.sku, 1, 1],
    ]);

    const confirmed = await drain(h(), 'types=order.confirmed');
    expect(confirmed.events.map((e) => e.subject.id).sort()).toEqual([a.id, b.id].sort());
    // A filtered reader's cursor moves past what it does not want: the next page starts after all of it.
    expect(Number(confirmed.cursor)).toBe(Math.max(...sequences));
    const bySubject = await drain(h(), `subject=${b.id}`);
    expect(bySubject.events.map((e) => e.type)).toEqual(['order.confirmed']);
    const inventory = await drain(h(), 'types=inventory.*,return.created');
    expect(inventory.events.map((e) => e.type)).toEqual(['inventory.low_stock']);

    // With nothing new, next_cursor is the cursor given, so a tailing reader polls with it.
    const last = String(Math.max(...sequences));
    const idle = await h().api('GET', `/v1/events?after=${last}`, { role: 'intake' });
    expect(idle.body).toEqual({ data: [], next_cursor: last });
    const page = await h().api('GET', `/v1/events?limit=2`, { role: 'operator' });
    expect(page.body.data.map((e: FeedEvent) => e.id)).toEqual(all.slice(0, 2).map((e) => e.id));
    expect(page.body.next_cursor).toBe(String(all[1].sequence));

    // A cursor above every number ever issued is not one the feed gave: 400 naming it, not an empty page.
    const beyond = await h().api('GET', `/v1/events?after=${Number(last) + 1_000_000}`, { role: 'intake' });
    expect(beyond.status).toBe(400);
    expect(beyond.body.error.details.map((d: any) => d.path)).toEqual(['query.after']);
    for (const bad of ['after=abc', 'after=-1', 'types=order.shipped', 'limit=0', 'limit=1001', 'colour=red']) {
      const r = await h().api('GET', `/v1/events?${bad}`, { role: 'intake' });
      expect(r.status, bad).toBe(400);
      expect(r.body.error.code).toBe('validation_failed');
    }
    expect((await h().api('GET', '/v1/events', { role: 'feed' })).status).toBe(403);
    expect((await h().api('GET', '/v1/events', { role: null })).status).toBe(401);
  });

  it('when a sold-out SKU with a waiting order is restocked beyond it, then one inventory.back_in_stock event says what is available, after the wait is served', async () => {
    await h().startWorkers();
    const customer = await makeCustomer(h());
    const product = await makeProduct(h(), 0);
    const order = await placeOrder(h(), customer.id, [{ sku: product.sku, quantity: 3 }]);
    await untilStatus(h(), order.id, 'awaiting_stock');
    // 2 units serve nobody (the line wants 3 whole) and available stays 0 while it waits.
    expect(
      (
        await h().api('POST', '/v1/restocks', {
          role: 'feed',
          body: { event_id: `r1-${product.sku}`, sku: product.sku, quantity: 2 },
        })
      ).status,
    ).toBe(202);
    expect(
      (
        await h().api('POST', '/v1/restocks', {
          role: 'feed',
          body: { event_id: `r2-${product.sku}`, sku: product.sku, quantity: 5 },
        })
      ).status,
    ).toBe(202);
    await untilStatus(h(), order.id, 'confirmed');
    const events = await waitFor(
      async () => {
        const { events } = await drain(h(), `subject=${product.sku}`);
        return events.length > 0 && events;
      },
      { what: 'an inventory event for the SKU' },
    );
    expect(events.map((e) => [e.type, e.data.available, e.subject_sequence])).toEqual([
      ['inventory.back_in_stock', 4, 1],
    ]);
  });

  it('when events are older than EVENT_RETENTION_DAYS, then pruning removes the settled ones only, and the feed starts at the oldest kept', async () => {
    const ctx = h().ctx;
    await runUnitOfWork(ctx, 'test', (uow) =>
      addSkuEvents(
        uow,
        ['old-settled', 'old-unsettled', 'recent'].map((k) => ({
          type: 'inventory.count_variance',
          subject: { type: 'sku' as const, id: `R-${k}` },
          data: { k },
        })),
      ),
    );
    const days = ctx.config.EVENT_RETENTION_DAYS;
    await ctx
      .db('events')
      .where({ subject_id: 'R-old-settled' })
      .update({
        created_at: ctx.db.raw(`now() - make_interval(days => ?) - interval '1 hour'`, [days]),
        settled_at: ctx.db.fn.now(),
      });
    await ctx
      .db('events')
      .where({ subject_id: 'R-old-unsettled' })
      .update({
        created_at: ctx.db.raw(`now() - make_interval(days => ?) - interval '1 hour'`, [days]),
        settled_at: null,
      });
    await ctx.db('events').where({ subject_id: 'R-recent' }).update({ settled_at: ctx.db.fn.now() });
    await waitFor(async () => {
      await h().api('GET', '/v1/events?limit=1', { role: 'viewer' }); // numbers what has committed
      return (await ctx.db('events').whereLike('subject_id', 'R-%').whereNull('sequence')).length === 0;
    });
    expect((await pruneRecords(ctx)).events).toBe(1);
    expect((await ctx.db('events').whereLike('subject_id', 'R-%').pluck('subject_id')).sort()).toEqual([
      'R-old-unsettled',
      'R-recent',
    ]);
    const { events } = await drain(h(), 'types=inventory.count_variance');
    expect(events.map((e) => e.subject.id).filter((id) => id.startsWith('R-'))).toEqual([
      'R-old-unsettled',
      'R-recent',
    ]);
  });

  it('when 8 writers hold their transactions open for random times, then a reader following next_cursor gets every committed event once, in sequence order, and a naive reader by write order skips some', async () => {
    // The sequencer runs in a worker process of its own, and the API numbers on read too: two of them compete.
    const worker = h().spawnWorker({ SEQUENCER_INTERVAL_MS: '20' });
    const ctx = h().ctx;
    const committed = new Set<string>();
    const rolledBack = new Set<string>();
    let writing = true;
    class Abort extends Error {}

    const writer = async (w: number) => {
      for (let i = 0; i < 25; i++) {
        const abort = Math.random() < 0.1;
        // Most commit at once; some hold their transaction (and their written event) open up to 1.5 s.
        const hold = Math.random() < 0.25 ? 200 + Math.random() * 1300 : Math.random() * 20;
        let ids: string[] = [];
        try {
          await runUnitOfWork(ctx, 'test-writer', async (uow) => {
            await addSkuEvents(
              uow,
              Array.from({ length: 1 + (i % 3) }, (_, k) => ({
                type: 'inventory.count_variance',
                subject: { type: 'sku' as const, id: `W-${w}-${k % 2}` },
                data: { writer: w, i },
              })),
            );
            const { rows } = await uow.trx.raw(
              `SELECT id FROM events WHERE payload->'data'->>'writer' = ? AND payload->'data'->>'i' = ?`,
              [String(w), String(i)],
            );
            ids = rows.map((r: { id: string }) => r.id);
            await sleep(hold);
            if (abort) throw new Abort();
          });
          ids.forEach((id) => committed.add(id));
        } catch (err) {
          if (!(err instanceof Abort)) throw err;
          ids.forEach((id) => rolledBack.add(id));
        }
      }
    };

    const seen: FeedEvent[] = [];
    const reader = (async () => {
      let cursor: string | undefined;
      for (;;) {
        const done = !writing;
        // Counted before the page is read: were it counted after, the last event could be numbered
        // between the two and the reader would stop one event short.
        const unnumbered = done
          ? Number((await ctx.db('events').whereNull('sequence').count<{ count: string }[]>('* as count'))[0].count)
          : -1;
        const r = await h().api('GET', `/v1/events?limit=20${cursor ? `&after=${cursor}` : ''}`, { role: 'intake' });
        expect(r.status).toBe(200);
        // Only the writers' events (an earlier test of this file left others in the feed).
        seen.push(...r.body.data.filter((e: FeedEvent) => e.subject.id.startsWith('W-')));
        cursor = r.body.next_cursor;
        // Caught up after the last writer finished, with nothing waiting to be numbered.
        if (done && unnumbered === 0 && r.body.data.length === 0) return;
        await sleep(10);
      }
    })();
    // The naive reader: pages by the id each event was given when written (time-ordered, like a
    // sequence number taken at insert), so it passes events whose transaction commits late.
    const naiveSeen = new Set<string>();
    const naive = (async () => {
      let cursor = '00000000-0000-0000-0000-000000000000';
      for (;;) {
        const done = !writing;
        const rows: { id: string }[] = await ctx
          .db('events')
          .where('id', '>', cursor)
          .where('subject_id', 'like', 'W-%')
          .orderBy('id')
          .limit(20);
        rows.forEach((r) => naiveSeen.add(r.id));
        if (rows.length) cursor = rows[rows.length - 1].id;
        if (done && rows.length === 0) return;
        await sleep(10);
      }
    })();

    await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
    writing = false;
    await Promise.all([reader, naive]);
    worker.kill();

    expect(committed.size).toBeGreaterThan(300);
    expect(rolledBack.size).toBeGreaterThan(0);
    const ids = seen.map((e) => e.id);
    expect(new Set(ids).size, 'each event once').toBe(ids.length);
    expect(new Set(ids)).toEqual(committed);
    const sequences = seen.map((e) => e.sequence);
    expect(sequences, 'in sequence order').toEqual([...sequences].sort((x, y) => x - y));
    // Per subject: 1, 2, 3 … with no gap, each linked to the one before, in feed order.
    const bySubject = new Map<string, FeedEvent[]>();
    for (const e of seen) bySubject.set(e.subject.id, [...(bySubject.get(e.subject.id) ?? []), e]);
    for (const [subject, events] of bySubject) {
      expect(
        events.map((e) => e.subject_sequence),
        subject,
      ).toEqual(events.map((_, k) => k + 1));
      expect(events.map((e) => e.previous_event_id)).toEqual([null, ...events.slice(0, -1).map((e) => e.id)]);
    }
    // Proof that this test can fail: the naive reader, on the same writers, missed events.
    const missed = [...committed].filter((id) => !naiveSeen.has(id));
    expect(missed.length, 'events the naive reader skipped').toBeGreaterThan(0);

    // The invariant checker agrees, and names a broken link or a gap when there is one.
    expect((await checkInvariants(ctx.db, { graceSeconds: 1000 })).counts['event-numbering']).toBe(0);
    const [victim] = [...bySubject.values()][0].slice(1);
    await ctx.db('events').where({ id: victim.id }).update({ previous_event_id: null });
    expect((await checkInvariants(ctx.db, { graceSeconds: 1000 })).counts['event-numbering']).toBe(1);
  }, 120_000);
});
