import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkInvariants } from '../../src/invariants';
import { useHarness, type Harness } from '../helpers/harness';
import { level, makeCustomerId, makeLocation, makeProductAt, orderReaching } from '../helpers/locations-kit';

/**
 * Guarantee 8 as a property: whatever movements happen before and after counted_at, and whenever
 * the count is posted among them, the variance booked is counted − (the ledger at counted_at), and
 * nothing that moved after counted_at is undone. The model is the ledger of one (SKU, location) as
 * a list of signed on-hand changes.
 */
const h = useHarness();

type Op =
  | { kind: 'adjust'; delta: number }
  | { kind: 'transfer'; out: boolean; quantity: number }
  | { kind: 'receipt'; quantity: number }
  | { kind: 'sale'; quantity: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .integer({ min: -6, max: 8 })
      .filter((d) => d !== 0)
      .map((delta) => ({ kind: 'adjust' as const, delta })),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('transfer' as const),
      out: fc.boolean(),
      quantity: fc.integer({ min: 1, max: 4 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('receipt' as const), quantity: fc.integer({ min: 1, max: 5 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sale' as const), quantity: fc.integer({ min: 1, max: 3 }) }) },
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function dbNow(x: Harness): Promise<string> {
  const { rows } = await x.ctx.db.raw(`SELECT clock_timestamp() AS t`);
  return (rows[0].t as Date).toISOString();
}

/** Runs one op against the API; returns the on-hand change it made at main (0 if refused). */
async function run(
  x: Harness,
  sku: string,
  other: string,
  customer: string,
  onHand: number,
  otherOnHand: number,
  op: Op,
) {
  switch (op.kind) {
    case 'adjust': {
      const r = await x.api('POST', `/v1/inventory/${sku}/adjustments`, { body: { delta: op.delta, reason: 'prop' } });
      if (onHand + op.delta < 0) {
        expect(r.status).toBe(409);
        return 0;
      }
      expect(r.status).toBe(201);
      return op.delta;
    }
    case 'transfer': {
      const [from, to] = op.out ? ['main', other] : [other, 'main'];
      const r = await x.api('POST', `/v1/inventory/${sku}/transfers`, { body: { from, to, quantity: op.quantity } });
      if ((op.out ? onHand : otherOnHand) < op.quantity) {
        expect(r.status).toBe(409);
        return 0;
      }
      expect(r.status).toBe(201);
      return op.out ? -op.quantity : op.quantity;
    }
    case 'receipt': {
      const r = await x.api('POST', '/v1/restocks', {
        role: 'feed',
        body: { event_id: `p-${randomUUID()}`, sku, quantity: op.quantity },
      });
      expect(r.status).toBe(202);
      for (let i = 0; i < 200 && (await level(x.ctx.db, sku, 'main')).on_hand !== onHand + op.quantity; i++)
        await sleep(20);
      return op.quantity;
    }
    case 'sale': {
      if (onHand < op.quantity) return 0;
      const o = await orderReaching(x, customer, [{ sku, quantity: op.quantity }], 'confirmed');
      const r = await x.api('POST', `/v1/orders/${o.id}/fulfill`, { role: 'feed' });
      expect(r.status).toBe(200);
      return -op.quantity;
    }
  }
}

describe('stock counts: property', () => {
  it('when movements of every kind interleave with a count taken at any point and posted at any later point, then the variance booked is counted − the ledger at counted_at and nothing after it is undone', async () => {
    await h().startWorkers();
    const x = h();
    const other = await makeLocation(x, 500); // behind main (100): sales come from main
    const customer = await makeCustomerId(x);
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 12 }),
        fc.array(opArb, { minLength: 1, maxLength: 7 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: -5, max: 5 }),
        async (initial, ops, takeAt, postAfter, shrink) => {
          runs++;
          const sku = await makeProductAt(x, { main: initial, [other]: 6 });
          const take = takeAt % (ops.length + 1); // counted_at falls before op `take`
          const post = take + (postAfter % (ops.length - take + 1)); // posted before op `post`
          let onHand = initial;
          let otherOnHand = 6;
          let atCount = initial;
          let countedAt = '';
          let counted = 0;
          let variance = 0;
          const countId = `pc-${randomUUID()}`;
          const postCount = async () => {
            const r = await x.api('POST', '/v1/inventory/counts', {
              role: 'feed',
              body: { count_id: countId, counted_at: countedAt, items: [{ sku, on_hand: counted }] },
            });
            const after = onHand - atCount;
            if (counted + after < 0) {
              expect(r.status).toBe(409);
              return false;
            }
            expect(r.status, r.text).toBe(202);
            variance = counted - atCount;
            onHand += variance;
            return true;
          };
          let posted: boolean | undefined;
          for (let i = 0; i <= ops.length; i++) {
            if (i === take) {
              await sleep(2);
              countedAt = await dbNow(x);
              await sleep(2);
              atCount = onHand;
              counted = Math.max(0, atCount + shrink);
            }
            if (i === post) posted = await postCount();
            if (i === ops.length) break;
            const d = await run(x, sku, other, customer, onHand, otherOnHand, ops[i]);
            onHand += d;
            if (ops[i].kind === 'transfer') otherOnHand -= d;
          }
          expect(await level(x.ctx.db, sku, 'main')).toMatchObject({ on_hand: onHand });
          if (!posted) return;
          const got = await x.api('GET', `/v1/inventory/counts/${countId}`);
          expect(got.body.items).toEqual([{ sku, counted, expected: atCount, variance }]);
          // Again: a duplicate, nothing more booked.
          const again = await x.api('POST', '/v1/inventory/counts', {
            role: 'feed',
            body: { count_id: countId, counted_at: countedAt, items: [{ sku, on_hand: counted }] },
          });
          expect(again.body).toEqual({ accepted: false, duplicate: true });
          expect(await level(x.ctx.db, sku, 'main')).toMatchObject({ on_hand: onHand });
        },
      ),
      { numRuns: 30 },
    );
    const report = await checkInvariants(x.ctx.db);
    expect(report.problems).toEqual([]);
    expect(report.counts['count-ledger']).toBe(0);
    const counts = Number((await x.ctx.db('stock_count_items').count({ n: '*' }).first())!.n);
    expect(runs).toBeGreaterThanOrEqual(30);
    expect(counts).toBeGreaterThan(10);
  }, 120_000);
});
