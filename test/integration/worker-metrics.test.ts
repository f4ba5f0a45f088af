import { describe, expect, it } from 'vitest';
import { KEYS, useHarness, waitFor } from '../helpers/harness';
import { makeCustomer, makeProduct, placeOrder, untilStatus } from '../helpers/factories';
import { freePort } from '../helpers/private-redis';

const h = useHarness();

/** The value of one series in a Prometheus text exposition, or undefined when it is not there. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('a worker process serves its own metrics on METRICS_PORT', () => {
  it('when a separate worker process confirms orders, then its /metrics counts their jobs, for an operator or viewer key only', async () => {
    const port = await freePort();
    const worker = h().spawnWorker({ METRICS_PORT: String(port), HOST: '127.0.0.1' });
    const url = `http://127.0.0.1:${port}/metrics`;
    await waitFor(async () => (await fetch(url).catch(() => undefined))?.status === 401, {
      timeout: 60_000,
      what: `the worker's metrics port\n${worker.output().slice(-2000)}`,
    });
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const orders = [];
    for (let i = 0; i < 3; i++) orders.push(await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]));
    for (const o of orders) await untilStatus(h(), o.id, 'confirmed', { timeout: 30_000 });

    const read = (key?: string) =>
      fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} }).then(async (r) => ({
        status: r.status,
        text: await r.text(),
      }));
    expect((await read()).status).toBe(401);
    expect((await read('not-a-key')).status).toBe(401);
    expect((await read(KEYS.intake)).status).toBe(403);
    const series = 'orderflow_job_duration_seconds_count{queue="orders",outcome="completed"}';
    // The worker, not this test's process (which runs no workers), processed them.
    const byViewer = await waitFor(
      async () => {
        const r = await read(KEYS.viewer);
        return r.status === 200 && (sample(r.text, series) ?? 0) >= 3 && r;
      },
      { timeout: 10_000, what: 'the worker counted 3 order jobs' },
    );
    expect(byViewer.text).toContain('process_resident_memory_bytes');
    // Its own series only: the deployment-wide scrape-time gauges are the API's.
    for (const name of [
      'orderflow_queue_jobs',
      'orderflow_orders_waiting',
      'orderflow_outbox_backlog',
      'orderflow_deliveries',
    ])
      expect(byViewer.text).not.toContain(`# TYPE ${name} `);
    expect(byViewer.text).toContain('# TYPE orderflow_job_duration_seconds histogram');
    const basic = `Basic ${Buffer.from(`x:${KEYS.operator}`).toString('base64')}`;
    expect((await fetch(url, { headers: { authorization: basic } })).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/v1/orders`)).status).toBe(404);
  });
});
