import { describe, expect, it } from 'vitest';
import { makeProduct, stockOf } from '../helpers/factories';
import { useHarness, waitFor, type Harness } from '../helpers/harness';

const h = useHarness();

const restock = (hh: Harness, body: unknown) => hh.api('POST', '/v1/restocks', { role: 'feed', body });
const storedEvents = (hh: Harness, ids: string[]) => hh.ctx.db('restock_events').whereIn('event_id', ids);

describe('restock ids mean one thing', () => {
  it('when an event_id seen before comes with another SKU, then the batch is 409 naming it and nothing of it is applied', async () => {
    await h().startWorkers();
    const a = await makeProduct(h(), 0);
    const b = await makeProduct(h(), 0);
    expect((await restock(h(), { event_id: 'same-1', sku: a.sku, quantity: 2 })).status).toBe(202);
    const reused = await restock(h(), {
      events: [
        { event_id: 'fresh-1', sku: b.sku, quantity: 5 },
        { event_id: 'same-1', sku: b.sku, quantity: 2 },
      ],
    });
    expect(reused.status).toBe(409);
    expect(reused.body.error.code).toBe('conflict');
    expect(reused.body.error.details).toEqual([
      { path: 'body.events.1.event_id', message: 'event_id same-1 was received before with another sku' },
    ]);
    // Another quantity, location or inbound_id is the same conflict.
    const loc = `L-${a.sku.slice(4)}`;
    expect((await h().api('POST', '/v1/locations', { body: { code: loc, name: 'East' } })).status).toBe(201);
    for (const [other, what] of [
      [{ quantity: 3 }, 'quantity'],
      [{ quantity: 2, location: loc }, 'location'],
    ] as const) {
      const r = await restock(h(), { event_id: 'same-1', sku: a.sku, ...other });
      expect(r.status).toBe(409);
      expect(r.body.error.details).toEqual([
        { path: 'body.event_id', message: `event_id same-1 was received before with another ${what}` },
      ]);
    }
    await waitFor(async () => (await stockOf(h(), a.sku)).on_hand === 2, { what: 'the first receipt' });
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedEvents(h(), ['fresh-1'])).toHaveLength(0);
    expect((await stockOf(h(), b.sku)).on_hand).toBe(0);
    expect((await stockOf(h(), a.sku)).on_hand).toBe(2);
    // An identical resend (location main written out or left out) stays a duplicate.
    expect((await restock(h(), { event_id: 'same-1', sku: a.sku, quantity: 2, location: 'main' })).body).toEqual({
      accepted: 0,
      duplicates: 1,
    });
  });

  it('when one event_id is twice in a batch, then 400 naming the second and nothing is stored', async () => {
    const p = await makeProduct(h(), 0);
    const r = await restock(h(), {
      events: [
        { event_id: 'tw-1', sku: p.sku, quantity: 1 },
        { event_id: 'tw-2', sku: p.sku, quantity: 1 },
        { event_id: 'tw-1', sku: p.sku, quantity: 1 },
      ],
    });
    expect(r.status).toBe(400);
    expect(r.body.error.details).toEqual([
      { path: 'body.events.2.event_id', message: 'event_id tw-1 is also events.0' },
    ]);
    expect(await storedEvents(h(), ['tw-1', 'tw-2'])).toHaveLength(0);
  });

  it('when an event_id has leading or trailing whitespace, then 400 and it is not trimmed into another id', async () => {
    const p = await makeProduct(h(), 0);
    expect((await restock(h(), { event_id: 'g', sku: p.sku, quantity: 1 })).status).toBe(202);
    for (const id of ['  g ', 'g ', ' g', '\tg', 'g\n']) {
      const r = await restock(h(), { event_id: id, sku: p.sku, quantity: 1 });
      expect(r.status, JSON.stringify(id)).toBe(400);
      expect(r.body.error.details).toEqual([
        { path: 'body.event_id', message: 'must not start or end with whitespace' },
      ]);
    }
    // Inner spaces are part of the id, as given.
    expect((await restock(h(), { event_id: 'g  h', sku: p.sku, quantity: 1 })).body).toEqual({
      accepted: 1,
      duplicates: 0,
    });
    expect((await storedEvents(h(), ['g', 'g  h'])).map((e) => e.event_id).sort()).toEqual(['g', 'g  h']);
    expect(await h().ctx.db('restock_events').where({ sku: p.sku })).toHaveLength(2);
  });
});
