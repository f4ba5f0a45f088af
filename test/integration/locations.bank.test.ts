import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkInvariants } from '../../src/invariants';
import { faultSeed, rng } from '../helpers/fault-kit';
import { useHarness, waitFor, type WorkerProcess } from '../helpers/harness';
import { ledgerBreaks, makeCustomerId, makeLocation, makeProductAt } from '../helpers/locations-kit';

const h = useHarness();

const RUN_MS = Number(process.env.BANK_RUN_MS ?? 32_000);
const KILL_AT_MS = [RUN_MS * 0.3, RUN_MS * 0.65];
const PER_LOCATION = 15;

type Lines = { sku: string; quantity: number }[];

/**
 * The bank test (guarantee 7, units are conserved; guarantee 11, shipments and returns happen
 * once): four locations and a few SKUs; for half a minute, concurrently, orders, shipments,
 * fulfilments, returns, transfers, restocks and adjustments (with locations) and cancels, while
 * a worker process is SIGKILLed twice and restarted. Once everything settles, every unit is
 * accounted for: by what the API answered, by the ledger, per SKU and per (SKU, location).
 */
describe('fault: the bank test — units are conserved across locations', () => {
  it('when transfers, orders, shipments, returns, restocks and adjustments run concurrently over 4 locations while a worker is SIGKILLed twice, then every SKU total equals initial + receipts − sales + returns + adjustments, no row is below its reservations, and the invariants hold', async () => {
    const seed = faultSeed();
    const r = rng(seed);
    const locs = [
      await makeLocation(h(), 10),
      await makeLocation(h(), 20),
      await makeLocation(h(), 30),
      await makeLocation(h(), 40),
    ];
    const skus: string[] = [];
    for (let i = 0; i < 4; i++)
      skus.push(await makeProductAt(h(), Object.fromEntries(locs.map((l) => [l, PER_LOCATION]))));
    const customers = [await makeCustomerId(h()), await makeCustomerId(h()), await makeCustomerId(h())];

    const env = { ORDER_CONCURRENCY: '4' };
    const workers: WorkerProcess[] = [h().spawnWorker(env), h().spawnWorker(env)];
    const kills: (string | null)[] = [];

    // What the API said happened (client-side books).
    const book = Object.fromEntries(skus.map((s) => [s, { receipts: 0, adjustments: 0 }]));
    const shipments = new Map<string, { order_id: string; location: string; lines: Lines }>();
    const returns = new Map<
      string,
      { order_id: string; lines: (Lines[number] & { disposition: string; location: string | null })[] }
    >();
    const orders: string[] = [];
    const unexpected: string[] = [];
    const tally: Record<string, number> = {};
    const count = (k: string) => (tally[k] = (tally[k] ?? 0) + 1);
    const expectStatus = (what: string, res: { status: number; text: string }, ok: number[]) => {
      count(`${what} ${res.status}`);
      if (!ok.includes(res.status)) unexpected.push(`${what} ${res.status} ${res.text.slice(0, 200)}`);
      return ok.includes(res.status);
    };
    const shippedOrders: string[] = [];
    const recordShipment = (s: any) => {
      if (!shipments.has(s.id)) shippedOrders.push(s.order_id);
      shipments.set(s.id, { order_id: s.order_id, location: s.location, lines: s.lines });
    };

    const started = Date.now();
    const running = () => Date.now() - started < RUN_MS;
    const pause = (ms: number) => new Promise((res) => setTimeout(res, ms));
    const loop = async (fn: () => Promise<void>, gap: number) => {
      while (running()) {
        try {
          await fn();
        } catch (err) {
          unexpected.push(`thrown: ${(err as Error).message}`);
        }
        await pause(gap);
      }
    };
    const someOrder = async () => {
      if (orders.length === 0) return undefined;
      const res = await h().api('GET', `/v1/orders/${r.pick(orders)}`);
      return res.status === 200 ? res.body : undefined;
    };

    const intake = async () => {
      const lines = new Map<string, number>();
      const n = r.int(1, 2);
      while (lines.size < n) lines.set(r.pick(skus), r.int(1, 4));
      const res = await h().api('POST', '/v1/orders', {
        role: 'intake',
        body: { customer_id: r.pick(customers), lines: [...lines].map(([sku, quantity]) => ({ sku, quantity })) },
      });
      if (expectStatus('order', res, [202])) orders.push(res.body.id);
    };
    const shipper = async () => {
      const o = await someOrder();
      if (!o || !['confirmed', 'partially_shipped', 'awaiting_stock'].includes(o.status)) return;
      if (o.status !== 'awaiting_stock' && r.next() < 0.25) {
        const f = await h().api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
        if (expectStatus('fulfil', f, [200, 409]) && f.status === 200) f.body.shipments.forEach(recordShipment);
        return;
      }
      const at = new Map<string, Lines>();
      for (const l of o.lines)
        for (const a of l.allocations)
          if (a.reserved > 0)
            at.set(a.location, [...(at.get(a.location) ?? []), { sku: l.sku, quantity: r.int(1, a.reserved) }]);
      if (at.size === 0) return;
      const location = r.pick([...at.keys()]);
      const body = { shipment_id: `bank-${randomUUID()}`, location, lines: at.get(location)! };
      const s = await h().api('POST', `/v1/orders/${o.id}/shipments`, { role: 'feed', body });
      if (expectStatus('ship', s, [201, 409]) && s.status === 201) {
        recordShipment(s.body);
        // A client that did not see the answer sends it again: the same shipment, applied once.
        if (r.next() < 0.3) {
          const again = await h().api('POST', `/v1/orders/${o.id}/shipments`, { role: 'feed', body });
          if (expectStatus('ship-replay', again, [200]) && again.body.id !== s.body.id)
            unexpected.push(`replayed shipment ${again.body.id} is not ${s.body.id}`);
        }
      }
    };
    const returner = async () => {
      if (shippedOrders.length === 0) return;
      const o = (await h().api('GET', `/v1/orders/${r.pick(shippedOrders)}`)).body;
      const line = o?.lines.find((l: any) => l.shipped > l.returned);
      if (!line) return;
      const body = {
        return_id: `bank-${randomUUID()}`,
        lines: [
          {
            sku: line.sku,
            quantity: r.int(1, line.shipped - line.returned),
            disposition: r.next() < 0.7 ? 'restock' : 'damaged',
          },
        ],
      };
      const res = await h().api('POST', `/v1/orders/${o.id}/returns`, { role: 'feed', body });
      if (expectStatus('return', res, [201, 409]) && res.status === 201) returns.set(res.body.id, res.body);
    };
    const transferer = async () => {
      const from = r.pick(locs);
      const to = r.pick(locs.filter((l) => l !== from));
      const res = await h().api('POST', `/v1/inventory/${r.pick(skus)}/transfers`, {
        body: { from, to, quantity: r.int(1, 4), reason: 'bank' },
      });
      expectStatus('transfer', res, [201, 409]);
    };
    let restockNo = 0;
    const restocker = async () => {
      const sku = r.pick(skus);
      const quantity = r.int(1, 4);
      const res = await h().api('POST', '/v1/restocks', {
        role: 'feed',
        body: { event_id: `bank-${seed}-${++restockNo}`, sku, quantity, location: r.pick(locs) },
      });
      if (expectStatus('restock', res, [202]) && res.body.accepted === 1) book[sku].receipts += quantity;
    };
    const adjuster = async () => {
      const sku = r.pick(skus);
      const delta = r.pick([-2, -1, 1, 2, 3]);
      const res = await h().api('POST', `/v1/inventory/${sku}/adjustments`, {
        body: { delta, reason: 'bank', location: r.pick(locs) },
      });
      if (expectStatus('adjust', res, [201, 409]) && res.status === 201) book[sku].adjustments += delta;
    };
    const canceller = async () => {
      const o = await someOrder();
      if (!o) return;
      const res = await h().api('POST', `/v1/orders/${o.id}/cancel`, { role: 'intake', body: { reason: 'bank' } });
      expectStatus('cancel', res, [200, 409]);
    };
    const killer = async () => {
      for (const at of KILL_AT_MS) {
        await pause(Math.max(0, at - (Date.now() - started)));
        const victim = workers.shift()!;
        victim.kill('SIGKILL');
        await victim.exited;
        kills.push(victim.child.signalCode);
        workers.push(h().spawnWorker(env));
      }
    };

    await Promise.all([
      loop(intake, 60),
      loop(shipper, 30),
      loop(shipper, 30),
      loop(returner, 60),
      loop(transferer, 40),
      loop(restocker, 100),
      loop(adjuster, 150),
      loop(canceller, 400),
      killer(),
    ]);
    const ranFor = Date.now() - started;

    // Settle: every order processed, every restock applied, no queue head that free stock could serve.
    const db = h().ctx.db;
    await waitFor(
      async () =>
        Number(
          (await db('orders').whereIn('id', orders).where({ status: 'received' }).count({ n: '*' }).first())!.n,
        ) === 0 &&
        Number(
          (await db('restock_events').whereIn('sku', skus).whereNull('applied_at').count({ n: '*' }).first())!.n,
        ) === 0,
      { timeout: 45_000, interval: 250, what: 'orders processed and restocks applied' },
    );
    const servableHeads = async () =>
      (
        await db.raw(
          `SELECT DISTINCT ON (l.sku) l.sku, l.quantity,
                  (SELECT COALESCE(SUM(v.on_hand - v.reserved), 0) FROM stock_levels v JOIN locations c ON c.code = v.location
                    WHERE v.sku = l.sku AND c.active) AS free
             FROM order_lines l WHERE l.sku = ANY(?) AND l.waiting AND NOT l.reserved ORDER BY l.sku, l.seq`,
          [skus],
        )
      ).rows.filter((x: any) => Number(x.quantity) <= Number(x.free));
    await waitFor(async () => (await servableHeads()).length === 0, { timeout: 15_000, what: 'queues served' });

    // 1. By the API's answers: on_hand = initial + receipts − sales + returns + adjustments, per SKU.
    const sold = Object.fromEntries(skus.map((s) => [s, 0]));
    for (const s of shipments.values()) for (const l of s.lines) sold[l.sku] += l.quantity;
    const restocked = Object.fromEntries(skus.map((s) => [s, 0]));
    for (const x of returns.values())
      for (const l of x.lines) if (l.disposition === 'restock') restocked[l.sku] += l.quantity;
    const stock = new Map(
      (await db('stock').whereIn('sku', skus).select('sku', 'on_hand', 'reserved', 'backordered')).map((s: any) => [
        s.sku,
        s,
      ]),
    );
    const initial = PER_LOCATION * locs.length;
    const byAnswers = skus.map((s) => ({
      sku: s,
      on_hand: Number(stock.get(s).on_hand),
      expected: initial + book[s].receipts - sold[s] + restocked[s] + book[s].adjustments,
    }));
    expect(byAnswers.filter((x) => x.on_hand !== x.expected)).toEqual([]);

    // 2. By the ledger, per SKU: the same sums, and transfers net to zero.
    const { rows: ledger } = await db.raw(
      `SELECT sku,
              SUM(quantity) FILTER (WHERE type = 'initial') AS initial,
              SUM(quantity) FILTER (WHERE type = 'receipt') AS receipts,
              -SUM(quantity) FILTER (WHERE type = 'sale') AS sales,
              SUM(quantity) FILTER (WHERE type = 'return') AS returns,
              SUM(quantity) FILTER (WHERE type = 'adjustment') AS adjustments,
              SUM(quantity) FILTER (WHERE type IN ('transfer_in', 'transfer_out')) AS transfers_net,
              COUNT(*) FILTER (WHERE type = 'transfer_in') AS transfers
         FROM stock_movements WHERE sku = ANY(?) GROUP BY sku ORDER BY sku`,
      [skus],
    );
    for (const l of ledger) {
      const n = (v: unknown) => Number(v ?? 0);
      expect({
        sku: l.sku,
        initial: n(l.initial),
        receipts: n(l.receipts),
        sales: n(l.sales),
        returns: n(l.returns),
        adjustments: n(l.adjustments),
        transfers_net: n(l.transfers_net),
      }).toEqual({
        sku: l.sku,
        initial,
        receipts: book[l.sku].receipts,
        sales: sold[l.sku],
        returns: restocked[l.sku],
        adjustments: book[l.sku].adjustments,
        transfers_net: 0,
      });
      expect(n(stock.get(l.sku).on_hand)).toBe(
        n(l.initial) + n(l.receipts) - n(l.sales) + n(l.returns) + n(l.adjustments),
      );
    }

    // 3. Per (SKU, location): the ledger equation, 0 ≤ reserved ≤ on_hand; totals = Σ levels.
    expect(await ledgerBreaks(db, skus)).toEqual({ perLevel: [], perSku: [] });
    // Reserved per (SKU, location) is exactly what the allocations hold.
    const { rows: heldBreaks } = await db.raw(
      `SELECT v.sku, v.location, v.reserved, COALESCE(a.held, 0) AS held FROM stock_levels v
         LEFT JOIN (SELECT sku, location, SUM(reserved) AS held FROM order_line_allocations GROUP BY sku, location) a
           ON a.sku = v.sku AND a.location = v.location
        WHERE v.sku = ANY(?) AND v.reserved <> COALESCE(a.held, 0)`,
      [skus],
    );
    expect(heldBreaks).toEqual([]);

    // 4. Shipments and returns happened once: the API's answers are the shipments table, each unit one sale.
    const dbShipments = await db('shipments').whereIn('order_id', orders).select('id', 'lines');
    expect(dbShipments.map((s: any) => s.id).sort()).toEqual([...shipments.keys()].sort());
    expect(Number((await db('returns').whereIn('order_id', orders).count({ n: '*' }).first())!.n)).toBe(returns.size);
    const { rows: lineBreaks } = await db.raw(
      `WITH sales AS (SELECT order_id, sku, -SUM(quantity) AS sold FROM stock_movements WHERE type = 'sale' AND order_id = ANY(?::uuid[]) GROUP BY 1, 2),
            alloc AS (SELECT order_id, sku, SUM(shipped) AS shipped, SUM(reserved) AS reserved FROM order_line_allocations GROUP BY 1, 2)
       SELECT l.order_id, l.sku, l.quantity, l.shipped, l.returned, o.status,
              COALESCE(s.sold, 0) AS sold, COALESCE(a.shipped, 0) AS alloc_shipped, COALESCE(a.reserved, 0) AS alloc_reserved
         FROM order_lines l JOIN orders o ON o.id = l.order_id
         LEFT JOIN sales s ON s.order_id = l.order_id AND s.sku = l.sku
         LEFT JOIN alloc a ON a.order_id = l.order_id AND a.sku = l.sku
        WHERE l.order_id = ANY(?::uuid[])
          AND (l.shipped <> COALESCE(s.sold, 0) OR l.shipped <> COALESCE(a.shipped, 0) OR l.returned > l.shipped
               OR l.shipped > l.quantity
               OR (l.reserved AND o.status IN ('confirmed', 'partially_shipped', 'awaiting_stock')
                   AND COALESCE(a.reserved, 0) + l.shipped <> l.quantity)
               OR ((NOT l.reserved OR o.status IN ('cancelled', 'completed', 'rejected', 'failed')) AND COALESCE(a.reserved, 0) <> 0))`,
      [orders, orders],
    );
    expect(lineBreaks).toEqual([]);

    // 5. Each status follows its units; backordered is the waiting lines.
    const { rows: statusBreaks } = await db.raw(
      `SELECT o.id, o.status, SUM(l.shipped) AS shipped, SUM(l.quantity) AS units,
              COUNT(*) FILTER (WHERE NOT l.reserved) AS unreserved, COUNT(*) FILTER (WHERE l.waiting AND NOT l.reserved) AS waiting
         FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.id = ANY(?::uuid[]) GROUP BY o.id, o.status
       HAVING (o.status = 'confirmed' AND (SUM(l.shipped) > 0 OR COUNT(*) FILTER (WHERE NOT l.reserved) > 0))
           OR (o.status = 'partially_shipped' AND (SUM(l.shipped) = 0 OR SUM(l.shipped) = SUM(l.quantity) OR COUNT(*) FILTER (WHERE NOT l.reserved) > 0))
           OR (o.status = 'completed' AND SUM(l.shipped) <> SUM(l.quantity))
           OR (o.status = 'awaiting_stock' AND COUNT(*) FILTER (WHERE l.waiting AND NOT l.reserved) = 0)
           OR (o.status = 'received')`,
      [orders],
    );
    expect(statusBreaks).toEqual([]);
    const { rows: queueBreaks } = await db.raw(
      `SELECT s.sku, s.backordered, COALESCE(w.q, 0) AS waiting FROM stock s
         LEFT JOIN (SELECT sku, SUM(quantity) AS q FROM order_lines WHERE waiting AND NOT reserved GROUP BY sku) w ON w.sku = s.sku
        WHERE s.sku = ANY(?) AND s.backordered <> COALESCE(w.q, 0)`,
      [skus],
    );
    expect(queueBreaks).toEqual([]);

    const report = await checkInvariants(db, { queues: h().ctx.queues, graceSeconds: 5 });
    const statuses = Object.fromEntries(
      (await db('orders').whereIn('id', orders).groupBy('status').select('status').count({ n: '*' })).map((x: any) => [
        x.status,
        Number(x.n),
      ]),
    );
    process.stdout.write(
      `BANK-FIGURES ${JSON.stringify({
        seed,
        ranFor,
        kills,
        orders: orders.length,
        statuses,
        shipments: shipments.size,
        returns: returns.size,
        transfers: ledger.reduce((s: number, l: any) => s + Number(l.transfers), 0),
        units: Object.fromEntries(
          skus.map((s) => [
            s,
            { on_hand: Number(stock.get(s).on_hand), sold: sold[s], ...book[s], returned: restocked[s] },
          ]),
        ),
        tally,
        invariantProblems: report.problems.slice(0, 20),
      })}\n`,
    );
    if (unexpected.length)
      process.stdout.write(`worker output:\n${workers.map((w) => w.output().slice(-2000)).join('\n---\n')}\n`);

    expect(unexpected).toEqual([]);
    expect(kills).toEqual(['SIGKILL', 'SIGKILL']);
    // The run did real work of every kind.
    expect(shipments.size).toBeGreaterThan(10);
    expect(returns.size).toBeGreaterThan(3);
    expect(tally['transfer 201'] ?? 0).toBeGreaterThan(10);
    // Every rule of the checker, the per-location ones included (levels, allocations, shipments, transfers).
    expect(report.problems).toEqual([]);
    for (const w of workers) expect(w.child.exitCode).toBeNull();
  }, 150_000);
});
