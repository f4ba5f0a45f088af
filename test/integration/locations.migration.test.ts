import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MIGRATIONS } from '../../migrations';
import { checkInvariants } from '../../src/invariants';
import { createDb, MigrationSource, withDatabase, type Db } from '../../src/platform/db';
import { createHarness } from '../helpers/harness';
import { PART1_TABLES } from '../helpers/tables';

const source = new MigrationSource();
const BEFORE_LOCATIONS = '20261126000001_orders_reprocessing_index';

/** Migrates one step at a time until `last` is applied. */
async function migrateUpTo(db: Db, last: string) {
  for (const name of Object.keys(MIGRATIONS).sort()) {
    await db.migrate.up({ migrationSource: source, name });
    if (name === last) return;
  }
  throw new Error(`no migration ${last}`);
}

const OLD_TABLES = PART1_TABLES;

async function counts(db: Db): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of OLD_TABLES) out[t] = Number((await db(t).count({ n: '*' }).first())!.n);
  return out;
}

/**
 * Rows written the way the single-location (pre-locations) code writes them: stock rows and their
 * ledger (initial, receipt, reservation, release, sale, adjustment), and orders in every status,
 * each transition with its history entry, its event and its notification.
 */
async function fillLikeBefore(db: Db) {
  const customer = randomUUID();
  await db('customers').insert({ id: customer, email: 'old@example.test', name: 'Old Customer' });
  await db('products').insert([
    { sku: 'OLD-A', name: 'A', price_cents: 100 },
    { sku: 'OLD-B', name: 'B', price_cents: 250 },
    { sku: 'OLD-C', name: 'C', price_cents: 999 },
  ]);
  // A: initial 10, restock +5, adjustment −1, completed order sold 2 → on_hand 12; reserved 3 + 1.
  // B: initial 4, reserved 1. C: nothing on hand, 5 waiting.
  await db('stock').insert([
    { sku: 'OLD-A', on_hand: 12, reserved: 4, backordered: 0, version: 9 },
    { sku: 'OLD-B', on_hand: 4, reserved: 1, backordered: 0, version: 2 },
    { sku: 'OLD-C', on_hand: 0, reserved: 0, backordered: 5, version: 1 },
  ]);
  await db('restock_events').insert({
    event_id: 'old-rs-1',
    sku: 'OLD-A',
    quantity: 5,
    applied_at: db.fn.now(),
  });

  const ids: Record<string, string> = {};
  const order = async (
    name: string,
    status: string,
    lines: { sku: string; quantity: number; reserved: boolean; waiting: boolean; price: number | null }[],
    path: string[],
  ) => {
    const id = randomUUID();
    ids[name] = id;
    const transitions = path.length - 1; // no event for intake (received)
    const total = lines.every((l) => l.price !== null) ? lines.reduce((s, l) => s + l.quantity * l.price!, 0) : null;
    const [{ seq }] = await db('orders')
      .insert({
        id,
        customer_id: customer,
        status,
        status_reason:
          status === 'rejected' ? 'unknown SKU X' : status === 'awaiting_stock' ? 'insufficient stock' : null,
        total_cents: total,
        attempts: status === 'received' ? 0 : 1,
        transitions,
        awaiting_since: status === 'awaiting_stock' ? db.fn.now() : null,
        external_ref: `old-${name}`,
      })
      .returning('seq');
    await db('order_lines').insert(
      lines.map((l, i) => ({
        order_id: id,
        line_no: i + 1,
        sku: l.sku,
        quantity: l.quantity,
        unit_price_cents: l.price,
        reserved: l.reserved,
        waiting: l.waiting,
        seq,
      })),
    );
    await db('order_history').insert(path.map((s) => ({ order_id: id, status: s, detail: `${s} (old)` })));
    for (let n = 1; n <= transitions; n++) {
      const eventId = randomUUID();
      const type = `order.${path[n]}`;
      await db('events').insert({
        id: eventId,
        order_id: id,
        transition_no: n,
        type,
        payload: JSON.stringify({ id: eventId, type, created_at: new Date().toISOString(), data: { order: { id } } }),
        settled_at: db.fn.now(),
      });
      await db('notifications').insert({
        id: randomUUID(),
        event_id: eventId,
        order_id: id,
        channel: 'webhook',
        target: 'http://127.0.0.1:9/hook',
        status: 'delivered',
        attempts: 1,
        delivered_at: db.fn.now(),
      });
      await db('outbox').insert({
        queue: 'notifications',
        job_name: 'deliver',
        job_id: eventId,
        data: JSON.stringify({ eventId }),
        published_at: db.fn.now(),
      });
    }
    await db('outbox').insert({
      queue: 'orders',
      job_name: 'process',
      job_id: id,
      data: JSON.stringify({ orderId: id }),
      published_at: status === 'received' ? null : db.fn.now(),
    });
    return id;
  };
  const line = (sku: string, quantity: number, state: 'reserved' | 'waiting' | 'none', price: number | null = 100) => ({
    sku,
    quantity,
    reserved: state === 'reserved',
    waiting: state === 'waiting',
    price,
  });
  await order('completed', 'completed', [line('OLD-A', 2, 'reserved')], ['received', 'confirmed', 'completed']);
  await order(
    'confirmed',
    'confirmed',
    [line('OLD-A', 3, 'reserved'), line('OLD-B', 1, 'reserved', 250)],
    ['received', 'confirmed'],
  );
  await order(
    'awaiting',
    'awaiting_stock',
    [line('OLD-A', 1, 'reserved'), line('OLD-C', 5, 'waiting', 999)],
    ['received', 'awaiting_stock'],
  );
  await order('cancelled', 'cancelled', [line('OLD-A', 2, 'none')], ['received', 'confirmed', 'cancelled']);
  await order('rejected', 'rejected', [line('OLD-B', 1, 'none', null)], ['received', 'rejected']);
  await order('failed', 'failed', [line('OLD-B', 2, 'none', null)], ['received', 'failed']);
  await order('received', 'received', [line('OLD-B', 1, 'none', null)], ['received']);
  await db('idempotency_keys').insert({
    principal: 'intake',
    key: 'old-key-1',
    request_hash: 'h',
    status_code: 202,
    response_body: JSON.stringify({ id: ids.confirmed }),
    order_id: ids.confirmed,
  });

  const mv = (sku: string, type: string, quantity: number, extra: Record<string, unknown> = {}) => ({
    sku,
    type,
    quantity,
    reason: type,
    ...extra,
  });
  await db('stock_movements').insert([
    mv('OLD-A', 'initial', 10),
    mv('OLD-B', 'initial', 4),
    mv('OLD-A', 'receipt', 5, { event_id: 'old-rs-1' }),
    mv('OLD-A', 'adjustment', -1),
    mv('OLD-A', 'reservation', 2, { order_id: ids.completed }),
    mv('OLD-A', 'sale', -2, { order_id: ids.completed }),
    mv('OLD-A', 'reservation', 3, { order_id: ids.confirmed }),
    mv('OLD-B', 'reservation', 1, { order_id: ids.confirmed }),
    mv('OLD-A', 'reservation', 1, { order_id: ids.awaiting }),
    mv('OLD-A', 'reservation', 2, { order_id: ids.cancelled }),
    mv('OLD-A', 'release', -2, { order_id: ids.cancelled }),
  ]);
  return ids;
}

describe('locations: migrating a single-location database', () => {
  let name: string;
  let url: string;
  let db: Db;
  beforeAll(async () => {
    name = `of_${inject('runId')}_${process.pid}_premig`;
    const admin = new pg.Client({ connectionString: inject('pgUrl') });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    url = withDatabase(inject('pgUrl'), name);
    db = createDb(url, 4);
  });
  afterAll(async () => {
    await db?.destroy();
    const admin = new pg.Client({ connectionString: inject('pgUrl') });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  });

  it('when a database filled by the pre-locations code is migrated to latest, then every stock row is its main level, reserved lines are allocations at main, completed lines shipped, nothing is lost and the invariants hold', async () => {
    await migrateUpTo(db, BEFORE_LOCATIONS);
    const [, pending] = await db.migrate.list({ migrationSource: source });
    expect(pending.map((p: any) => p.file ?? p)[0]).toBe('20261201000000_locations'); // later ones follow it
    const ids = await fillLikeBefore(db);
    const before = await counts(db);
    const stockBefore = await db('stock').orderBy('sku').select('sku', 'on_hand', 'reserved', 'backordered', 'version');
    const movementsBefore = await db('stock_movements')
      .orderBy('id')
      .select('id', 'sku', 'type', 'quantity', 'order_id');
    // (The checker knows the locations model, so it runs on the migrated database only.)

    await db.migrate.latest({ migrationSource: source });
    const [, left] = await db.migrate.list({ migrationSource: source });
    expect(left).toEqual([]);

    // Nothing lost or added in any table that was there.
    expect(await counts(db)).toEqual(before);
    expect(await db('stock').orderBy('sku').select('sku', 'on_hand', 'reserved', 'backordered', 'version')).toEqual(
      stockBefore,
    );
    // Every stock row is a `main` level with the same figures.
    const levels = await db('stock_levels').orderBy('sku').select('sku', 'location', 'on_hand', 'reserved', 'version');
    expect(levels).toEqual(
      stockBefore.map((s: any) => ({
        sku: s.sku,
        location: 'main',
        on_hand: s.on_hand,
        reserved: s.reserved,
        version: s.version,
      })),
    );
    expect(await db('locations').pluck('code')).toEqual(['main']);
    // Every movement is where it was, now at main and by the system.
    const movementsAfter = await db('stock_movements')
      .orderBy('id')
      .select('id', 'sku', 'type', 'quantity', 'order_id', 'location', 'actor_role');
    expect(movementsAfter).toEqual(movementsBefore.map((m: any) => ({ ...m, location: 'main', actor_role: 'system' })));

    // Reserved lines are allocations at main; a completed order's lines shipped from there.
    const allocations = await db('order_line_allocations')
      .orderBy(['order_id', 'sku'])
      .select('order_id', 'sku', 'location', 'reserved', 'shipped');
    const expected = [
      { order_id: ids.completed, sku: 'OLD-A', location: 'main', reserved: 0, shipped: 2 },
      { order_id: ids.confirmed, sku: 'OLD-A', location: 'main', reserved: 3, shipped: 0 },
      { order_id: ids.confirmed, sku: 'OLD-B', location: 'main', reserved: 1, shipped: 0 },
      { order_id: ids.awaiting, sku: 'OLD-A', location: 'main', reserved: 1, shipped: 0 },
    ].sort((a, b) => (a.order_id + a.sku < b.order_id + b.sku ? -1 : 1));
    expect(allocations).toEqual(expected);
    const shipped = await db('order_lines').where('shipped', '>', 0).select('order_id', 'sku', 'shipped', 'returned');
    expect(shipped).toEqual([{ order_id: ids.completed, sku: 'OLD-A', shipped: 2, returned: 0 }]);
    const waiting = await db('order_lines').where({ waiting: true, reserved: false }).select('order_id', 'sku');
    expect(waiting).toEqual([{ order_id: ids.awaiting, sku: 'OLD-C' }]);
    expect(await db('orders').orderBy('seq').pluck('status')).toEqual([
      'completed',
      'confirmed',
      'awaiting_stock',
      'cancelled',
      'rejected',
      'failed',
      'received',
    ]);
    expect(new Set(await db('order_history').pluck('actor_role'))).toEqual(new Set(['system']));

    const report = await checkInvariants(db);
    expect(report.problems).toEqual([]);

    // The migrated database works with today's code: the API shows the old orders in the new shape,
    // the confirmed one ships from main and the waiting one is served by a restock at main.
    const h = await createHarness(url);
    try {
      await h.startWorkers();
      const done = await h.api('GET', `/v1/orders/${ids.completed}`);
      expect(done.status).toBe(200);
      expect(done.body.lines[0]).toMatchObject({
        reserved: 0,
        shipped: 2,
        allocations: [{ location: 'main', reserved: 0, shipped: 2 }],
      });
      expect(done.body.shipments).toEqual([
        expect.objectContaining({
          shipment_id: `fulfil-${ids.completed}`,
          location: 'main',
          lines: [{ sku: 'OLD-A', quantity: 2 }],
        }),
      ]);
      const f = await h.api('POST', `/v1/orders/${ids.confirmed}/fulfill`, { role: 'feed' });
      expect(f.status).toBe(200);
      expect(f.body.status).toBe('completed');
      expect(f.body.shipments.map((s: any) => s.location)).toEqual(['main']);
      const p = await h.api('GET', '/v1/products/OLD-A');
      expect(p.body.stock).toMatchObject({ on_hand: 9, reserved: 1 });
      expect(p.body.locations).toEqual([expect.objectContaining({ location: 'main', on_hand: 9, reserved: 1 })]);
      const rs = await h.api('POST', '/v1/restocks', {
        role: 'feed',
        body: { event_id: 'new-rs-1', sku: 'OLD-C', quantity: 5 },
      });
      expect(rs.status).toBe(202);
      const start = Date.now();
      let status = '';
      while (Date.now() - start < 20_000) {
        status = (await h.api('GET', `/v1/orders/${ids.awaiting}`)).body.status;
        if (status === 'confirmed') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe('confirmed');
    } finally {
      await h.close();
    }
  });
});
