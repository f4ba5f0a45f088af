import { describe, expect, it } from 'vitest';
import { applyStockChanges, readStockRows } from '../../src/inventory';
import { runUnitOfWork } from '../../src/platform/unit-of-work';
import { useHarness, waitFor, type Harness } from '../helpers/harness';

interface FeedEvent {
  id: string;
  type: string;
  subject: { type: string; id: string };
  subject_sequence: number;
  previous_event_id: string | null;
  data: any;
}

/** Every event of one subject in the feed, in sequence order. */
async function eventsOf(h: Harness, subject: string): Promise<FeedEvent[]> {
  const out: FeedEvent[] = [];
  let cursor: string | undefined;
  for (;;) {
    const qs = [`subject=${encodeURIComponent(subject)}`, cursor === undefined ? '' : `after=${cursor}`]
      .filter(Boolean)
      .join('&');
    const r = await h.api('GET', `/v1/events?${qs}`, { role: 'viewer' });
    expect(r.status, r.text).toBe(200);
    out.push(...r.body.data);
    if (r.body.data.length === 0) return out;
    cursor = r.body.next_cursor;
  }
}

/** The inventory.low_stock / back_in_stock events of a SKU as [type, data, subject_sequence]. */
async function availabilityOf(h: Harness, sku: string) {
  return (await eventsOf(h, sku))
    .filter((e) => e.type === 'inventory.low_stock' || e.type === 'inventory.back_in_stock')
    .map((e) => [e.type, e.data, e.subject_sequence]);
}

async function product(h: Harness, sku: string, byLocation: Record<string, number>, threshold: number | null) {
  const res = await h.api('POST', '/v1/products', {
    body: {
      sku,
      name: 'Widget',
      price_cents: 500,
      initial_stock_by_location: byLocation,
      ...(threshold === null ? {} : { low_stock_threshold: threshold }),
    },
  });
  expect(res.status, res.text).toBe(201);
}

const available = async (h: Harness, sku: string) =>
  (await h.api('GET', `/v1/products/${sku}`, { role: 'viewer' })).body.stock.available;

describe('inventory events: decided once per unit of work', () => {
  const h = useHarness({ workers: false });

  it('when one unit of work takes a SKU from 5 to 0 and then to 1, then the feed says low_stock at 1 and no back_in_stock; a SKU taken 0 → 3 → 0 or 3 → 0 → 3 says nothing', async () => {
    const tag = String(Date.now());
    const [falls, blips, dips] = ['F', 'B', 'D'].map((k) => `IU${k}-${tag}`);
    await product(h(), falls, { main: 5 }, 2);
    await product(h(), blips, { main: 0 }, 2);
    await product(h(), dips, { main: 3 }, 2);
    const steps: Record<string, number[]> = { [falls]: [-5, 1], [blips]: [3, -3], [dips]: [-3, 3] };
    await runUnitOfWork(h().ctx, 'test', async (uow) => {
      for (const k of [0, 1]) {
        const rows = await readStockRows(uow.trx, Object.keys(steps));
        await applyStockChanges(
          uow,
          Object.entries(steps).map(([sku, d]) => ({
            row: rows.get(sku)!,
            levels: [{ location: 'main', on_hand: d[k] }],
          })),
          Object.entries(steps).map(([sku, d]) => ({
            sku,
            location: 'main',
            type: 'adjustment' as const,
            quantity: d[k],
            reason: 'test',
          })),
          'test',
        );
      }
    });
    expect(await available(h(), falls)).toBe(1);
    const events = await waitFor(
      async () => {
        const e = await availabilityOf(h(), falls);
        return e.length > 0 && e;
      },
      { what: 'the low-stock event' },
    );
    expect(events).toEqual([['inventory.low_stock', { sku: falls, available: 1, threshold: 2 }, 1]]);
    expect(await availabilityOf(h(), blips)).toEqual([]);
    expect(await availabilityOf(h(), dips)).toEqual([]);
  });
});
