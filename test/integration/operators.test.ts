import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { createHarness, KEYS, useHarness, waitFor } from '../helpers/harness';
import { parsePrometheus, sampleSum } from '../helpers/prometheus';

const h = useHarness({ workers: false });
const basic = (key: string) => `Basic ${Buffer.from(`ops:${key}`).toString('base64')}`;
const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${h().baseUrl}${path}`, { headers, redirect: 'manual' });

async function scrape() {
  const res = await get('/metrics', { authorization: basic(KEYS.operator) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

describe('operators: auth on the browser pages', () => {
  it('when the board, dashboard or metrics are opened without a key, then 401 asks for Basic auth; a wrong role gets 403', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues', '/dashboard', '/dashboard/data', '/metrics']) {
      const anon = await get(path);
      expect(anon.status, path).toBe(401);
      expect(anon.headers.get('www-authenticate'), path).toMatch(/^Basic realm="orderflow operators"/);
      expect((await anon.json()).error.code).toBe('unauthorized');
      expect((await get(path, { authorization: basic('not-a-key') })).status, path).toBe(401);
      expect((await get(path, { authorization: basic(KEYS.intake) })).status, path).toBe(403);
      expect((await get(path, { authorization: `Bearer ${KEYS.operator}` })).status, path).toBe(200);
      expect((await get(path, { authorization: basic(KEYS.operator) })).status, path).toBe(200);
    }
  });

  it('when the board is opened, then it lists every queue and its page loads nothing from third parties', async () => {
    const page = await get('/admin/queues', { authorization: basic(KEYS.operator) });
    const html = await page.text();
    expect(html).toContain('<base href="/admin/queues/"');
    expect(html).not.toMatch(/https?:\/\//);
    const api = await (await get('/admin/queues/api/queues', { authorization: basic(KEYS.operator) })).json();
    expect(api.queues.map((q: any) => q.name).sort()).toEqual([
      'bulk',
      'maintenance',
      'notifications',
      'orders',
      'restocks',
    ]);
    expect(api.queues.every((q: any) => q.allowRetries && !q.readOnlyMode)).toBe(true);
  });

  it('when a write to the board comes from another site, then it is refused; from the board itself or a script it goes through', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 1);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await waitFor(async () => (await h().ctx.queues.orders.getJob(o.id)) ?? false, { what: 'job queued' });
    const pause = (headers: Record<string, string>) =>
      fetch(`${h().baseUrl}/admin/queues/api/queues/orders/pause`, {
        method: 'PUT',
        headers: { authorization: basic(KEYS.operator), ...headers },
      });
    const refused = await pause({ 'sec-fetch-site': 'cross-site' });
    expect(refused.status).toBe(403);
    expect((await refused.json()).error.code).toBe('forbidden');
    expect((await pause({ origin: 'https://evil.example' })).status).toBe(403);
    expect((await pause({ origin: 'null' })).status).toBe(403);
    expect((await pause({ 'sec-fetch-site': 'same-site' })).status).toBe(403);
    expect(await h().ctx.queues.orders.isPaused()).toBe(false);

    expect((await pause({ 'sec-fetch-site': 'same-origin', origin: h().baseUrl })).status).toBe(200);
    expect(await h().ctx.queues.orders.isPaused()).toBe(true);
    const resume = await fetch(`${h().baseUrl}/admin/queues/api/queues/orders/resume`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${KEYS.operator}` },
    });
    expect(resume.status).toBe(200);
    expect(await h().ctx.queues.orders.isPaused()).toBe(false);
  });
});

describe('operators: /metrics', () => {
  it('when orders flow, then /metrics parses as Prometheus text and its counters, histograms and queue gauges move', async () => {
    const before = await scrape();
    for (const family of [
      'orderflow_http_request_duration_seconds',
      'orderflow_order_transitions_total',
      'orderflow_queue_jobs',
      'orderflow_job_duration_seconds',
      'orderflow_optimistic_conflicts_total',
      'orderflow_optimistic_retries_total',
      'orderflow_notification_outcomes_total',
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(before.types.has(family), family).toBe(true);
    }
    expect(before.types.get('orderflow_http_request_duration_seconds')).toBe('histogram');
    expect(before.types.get('orderflow_order_transitions_total')).toBe('counter');
    expect(before.types.get('orderflow_queue_jobs')).toBe('gauge');
    const confirmed = { from: 'received', to: 'confirmed' };
    const posted = (e: ReturnType<typeof parsePrometheus>) =>
      e.samples
        .filter(
          (s) =>
            s.name === 'orderflow_http_request_duration_seconds_count' &&
            s.labels.method === 'POST' &&
            s.labels.status === '202' &&
            s.labels.route.startsWith('/v1/orders'),
        )
        .reduce((n, s) => n + s.value, 0);

    await h().startWorkers();
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }])).id);
    await waitFor(
      async () => {
        const n = await h()
          .ctx.db('orders')
          .whereIn('id', ids)
          .where({ status: 'confirmed' })
          .count({ n: '*' })
          .first();
        return Number(n?.n) === 4;
      },
      { what: '4 orders confirmed' },
    );
    await waitFor(async () => (await h().ctx.queues.orders.getJobCounts('completed')).completed === 4, {
      what: '4 jobs completed',
    });

    const after = await scrape();
    expect(
      sampleSum(after, 'orderflow_order_transitions_total', confirmed) -
        sampleSum(before, 'orderflow_order_transitions_total', confirmed),
    ).toBe(4);
    expect(posted(after) - posted(before)).toBe(4);
    expect(
      sampleSum(after, 'orderflow_job_duration_seconds_count', { queue: 'orders', outcome: 'completed' }) -
        sampleSum(before, 'orderflow_job_duration_seconds_count', { queue: 'orders', outcome: 'completed' }),
    ).toBeGreaterThanOrEqual(4);
    // Queue depths are read from BullMQ at scrape time, for this deployment's queues.
    expect(sampleSum(after, 'orderflow_queue_jobs', { queue: 'orders', state: 'completed' })).toBe(4);
    expect(sampleSum(after, 'orderflow_queue_jobs', { queue: 'orders', state: 'waiting' })).toBe(0);
    for (const q of ['orders', 'restocks', 'notifications', 'maintenance']) {
      expect(
        after.samples.some(
          (s) => s.name === 'orderflow_queue_jobs' && s.labels.queue === q && s.labels.state === 'failed',
        ),
        q,
      ).toBe(true);
    }
    // Every histogram's buckets are cumulative and end in +Inf = _count.
    const buckets = after.samples.filter(
      (s) =>
        s.name === 'orderflow_http_request_duration_seconds_bucket' &&
        s.labels.route.startsWith('/v1/orders') &&
        s.labels.method === 'POST',
    );
    expect(buckets.find((b) => b.labels.le === '+Inf')?.value).toBe(posted(after));
  });
});

describe('operators: route labels', () => {
  it('when requests end in 4xx errors, then their metrics carry the route pattern, not "/" or a bare sub-path', async () => {
    await h().api('POST', '/v1/orders', { role: 'intake', body: { customer_id: 'nope', lines: [] } }); // 400
    await h().api('POST', '/v1/restocks', { role: 'feed', body: { event_id: 'x' } }); // 400
    await h().api('POST', '/v1/orders/0190d6c1-0000-7000-8000-00000000dead/fulfill', { role: 'operator' }); // 404
    await h().api('GET', '/v1/products/NOPE-NOPE', { role: 'operator' }); // 404
    const m = await scrape();
    const routes = (status: string) =>
      new Set(
        m.samples
          .filter((s) => s.name === 'orderflow_http_request_duration_seconds_count' && s.labels.status === status)
          .map((s) => `${s.labels.method} ${s.labels.route}`),
      );
    expect([...routes('400')].sort()).toEqual(['POST /v1/orders', 'POST /v1/restocks']);
    expect([...routes('404')].sort()).toEqual(['GET /v1/products/:sku', 'POST /v1/orders/:id/fulfill']);
  });

  it('when the reports and the console are called, then their metrics carry their own path, not one prefixed by a /v1 router they passed', async () => {
    for (const path of ['/v1/reports/orders', '/v1/reports/queues', '/console/session'])
      expect((await h().api('GET', path, { role: 'operator' })).status, path).toBe(200);
    const m = await scrape();
    const seen = new Set(
      m.samples
        .filter((s) => s.name === 'orderflow_http_request_duration_seconds_count' && s.labels.status === '200')
        .map((s) => s.labels.route),
    );
    for (const route of ['/v1/reports/orders', '/v1/reports/queues', '/console/session'])
      expect(seen.has(route), `${route} in ${[...seen].join(', ')}`).toBe(true);
    expect([...seen].filter((r) => r.startsWith('/v1/v1'))).toEqual([]);
  });
});

describe('operators: /docs', () => {
  it('when /docs is opened, then the viewer is served locally and the OpenAPI 3.1 document lists every endpoint with schemas from the validators', async () => {
    const redirect = await get('/docs');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.get('location')).toBe('/docs/');
    const html = await (await get('/docs/')).text();
    expect(html).toContain('swagger-ui-bundle.js');
    expect(html).not.toMatch(/src="https?:/);
    expect((await get('/docs/swagger-ui-bundle.js')).status).toBe(200);
    const init = await (await get('/docs/swagger-ui-init.js')).text();
    expect(init).toContain('/docs/openapi.json');

    const doc = await (await get('/docs/openapi.json')).json();
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.entries(doc.paths).flatMap(([path, methods]: [string, any]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    for (const op of [
      'POST /v1/customers',
      'GET /v1/customers/{id}',
      'PATCH /v1/customers/{id}',
      'GET /v1/customers/{id}/orders',
      'POST /v1/products',
      'GET /v1/products/{sku}',
      'GET /v1/inventory',
      'POST /v1/inventory/{sku}/adjustments',
      'POST /v1/orders',
      'GET /v1/orders',
      'GET /v1/orders/{id}',
      'PATCH /v1/orders/{id}',
      'POST /v1/orders/{id}/cancel',
      'DELETE /v1/orders/{id}',
      'POST /v1/orders/{id}/fulfill',
      'POST /v1/orders/{id}/retry',
      'POST /v1/restocks',
      'GET /v1/orders/{id}/notifications',
      'GET /v1/reports/orders',
      'GET /v1/reports/inventory',
      'GET /v1/reports/ledger',
      'GET /v1/reports/queues',
      'GET /healthz',
      'GET /readyz',
      'GET /metrics',
    ]) {
      expect(ops, op).toContain(op);
    }
    // The body schema is the zod validator's: limits and defaults come through.
    const place = doc.paths['/v1/orders'].post;
    // Bodies are named components (#/components/schemas/...): follow the $ref.
    const deref = (node: any): any =>
      node?.$ref
        ? deref(
            node.$ref
              .slice(2)
              .split('/')
              .reduce((n: any, k: string) => n[k], doc),
          )
        : node;
    const body = deref(place.requestBody.content['application/json'].schema);
    expect(body.required).toEqual(['customer_id', 'lines']);
    expect(body.properties.lines).toMatchObject({ type: 'array', minItems: 1, maxItems: 100 });
    expect(body.properties.lines.items.properties.quantity).toMatchObject({
      type: 'integer',
      minimum: 1,
      maximum: 10000,
    });
    expect(body.properties.on_insufficient_stock).toMatchObject({
      enum: ['backorder', 'reject'],
      default: 'backorder',
    });
    expect(place.parameters.find((p: any) => p.name === 'Idempotency-Key')).toMatchObject({
      in: 'header',
      schema: { maxLength: 255 },
    });
    expect(place.security).toEqual([{ bearer: [] }]);
    const list = doc.paths['/v1/orders'].get.parameters;
    expect(list.find((p: any) => p.name === 'limit')).toMatchObject({
      in: 'query',
      required: false,
      schema: { maximum: 200 },
    });
    expect(
      deref(doc.paths['/v1/reports/ledger'].get.responses['200'].content['application/json'].schema).properties
        .mismatches.type,
    ).toBe('array');
  });
});

describe('operators: request log', () => {
  it('when a request is served by a real API process, then one JSON line carries its request id, route, status and duration', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as any).port;
        s.close(() => resolve(p));
      });
    });
    const api = h().spawnWorker({ LOG_LEVEL: 'info', PORT: String(port) }, 'api');
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, { what: 'API up', timeout: 30000 });
    const c = await makeCustomer(h());
    const res = await fetch(`${base}/v1/customers/${c.id}`, {
      headers: { authorization: `Bearer ${KEYS.intake}`, 'x-request-id': 'trace-me-42' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('trace-me-42');
    const line = await waitFor(
      async () =>
        api
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l))
          .find((l) => l.requestId === 'trace-me-42'),
      { what: 'request log line' },
    );
    expect(line).toMatchObject({
      msg: 'request',
      method: 'GET',
      route: '/v1/customers/:id',
      path: `/v1/customers/${c.id}`,
      status: 200,
      level: 30,
    });
    expect(typeof line.ms).toBe('number');
    expect(JSON.stringify(line)).not.toContain(KEYS.intake);
    api.kill('SIGTERM');
    expect(await api.exited).toBe(0);
  });
});

describe('operators: schedulers', () => {
  it('when workers restart with another MAINTENANCE_INTERVAL_MS, then the housekeeping schedulers follow it', async () => {
    const first = await h().startWorkers(['maintenance']);
    const every = async (name: string) => Number((await h().ctx.queues.maintenance.getJobScheduler(name))?.every);
    expect(await every('expire-backorders')).toBe(1000);
    await first.close();
    const again = await createHarness(h().env.DATABASE_URL, {
      env: { QUEUE_PREFIX: h().env.QUEUE_PREFIX, MAINTENANCE_INTERVAL_MS: '2000' },
    });
    try {
      await again.startWorkers(['maintenance']);
      expect(await every('expire-backorders')).toBe(2000);
      expect(await every('prune-records')).toBe(2000);
    } finally {
      await again.close();
    }
  });
});

describe('operators: alert gauges', () => {
  it('when orders wait for stock and the outbox has a backlog, then /metrics shows the waiting orders, the age of the oldest wait overall and per SKU, and the backlog', async () => {
    await h().startWorkers(['orders']);
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 0);
    const waiting: { id: string }[] = [];
    for (let i = 0; i < 3; i++) waiting.push(await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]));
    await waitFor(
      async () =>
        Number(
          (
            await h()
              .ctx.db('orders')
              .whereIn(
                'id',
                waiting.map((o) => o.id),
              )
              .where({ status: 'awaiting_stock' })
              .count({ n: '*' })
              .first()
          )?.n,
        ) === 3,
      { what: '3 waiting' },
    );
    await h()
      .ctx.db('orders')
      .whereIn(
        'id',
        waiting.map((o) => o.id),
      )
      .update({ awaiting_since: h().ctx.db.raw(`now() - interval '90 seconds'`) });
    await h()
      .ctx.db('outbox')
      .insert({
        queue: 'orders',
        job_name: 'x',
        job_id: 'never-published',
        data: '{}',
        created_at: h().ctx.db.raw(`now() - interval '1 hour'`),
      });
    const m = await scrape();
    expect(sampleSum(m, 'orderflow_orders_waiting', {})).toBeGreaterThanOrEqual(3);
    expect(sampleSum(m, 'orderflow_backorder_oldest_age_seconds', {})).toBeGreaterThanOrEqual(90);
    expect(sampleSum(m, 'orderflow_sku_waiting_lines', { sku: p.sku })).toBe(3);
    expect(sampleSum(m, 'orderflow_sku_backorder_oldest_age_seconds', { sku: p.sku })).toBeGreaterThanOrEqual(90);
    expect(sampleSum(m, 'orderflow_outbox_backlog', {})).toBeGreaterThanOrEqual(1);
    expect(sampleSum(m, 'orderflow_outbox_oldest_age_seconds', {})).toBeGreaterThanOrEqual(3600);
    expect(m.types.get('orderflow_deliveries')).toBe('gauge');
    await h().ctx.db('outbox').where({ job_id: 'never-published' }).delete();
  });
});
