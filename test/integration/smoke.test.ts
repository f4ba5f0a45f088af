import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder, stockOf } from '../helpers/factories';
import { useHarness, waitFor } from '../helpers/harness';

const h = useHarness({ workers: false });

describe('order pipeline smoke', () => {
  it('when an order is placed and workers run, then it is confirmed and stock reserved', async () => {
    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 5);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 2 }]);
    expect(o.status).toBe('received');
    const order = await waitFor(async () => {
      const r = await h().api('GET', `/v1/orders/${o.id}`, { role: 'intake' });
      return r.body.status === 'confirmed' && r.body;
    }, { what: 'confirmed' });
    expect(order.lines[0]).toMatchObject({ sku: p.sku, quantity: 2, unit_price_cents: 1250, reserved: 2 });
    expect(order.total_cents).toBe(2500);
    expect(await stockOf(h(), p.sku)).toMatchObject({ on_hand: 5, reserved: 2, backordered: 0 });
  });
});
