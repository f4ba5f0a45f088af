import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct, placeOrder } from '../helpers/factories';
import { bearer, KEYS, rawRequest, useHarness } from '../helpers/harness';
import { expectError, expectNothingChanged } from '../helpers/snapshot';

const h = useHarness({ workers: false });

const UUID = '0190d6c1-0000-7000-8000-000000000000';

const raw = (method: string, url: string, opts?: Parameters<typeof rawRequest>[3]) =>
  rawRequest(h(), method, url, opts);

/**
 * Writes `request` byte for byte on a fresh socket and resolves with the first response as soon as
 * its headers and Content-Length bytes have arrived (the socket need not close), or rejects after
 * `timeoutMs` with what has arrived so far.
 */
async function rawHttp(request: string, timeoutMs = 3000) {
  const { port } = new URL(h().baseUrl);
  return new Promise<{ status: number; headers: Headers; text: string; body: any }>((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `no complete response within ${timeoutMs} ms; got: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`,
        ),
      );
    }, timeoutMs);
    const tryParse = (final: boolean) => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0)
        return final
          ? reject(new Error(`connection closed before a response: ${JSON.stringify(buf.toString('latin1'))}`))
          : undefined;
      const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers = new Headers();
      for (const l of lines) {
        const i = l.indexOf(':');
        headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
      }
      const length = Number(headers.get('content-length') ?? NaN);
      const bodyBytes = buf.subarray(end + 4);
      if (!final && (Number.isNaN(length) || bodyBytes.length < length)) return undefined;
      clearTimeout(timer);
      socket.destroy();
      const text = bodyBytes.subarray(0, Number.isNaN(length) ? undefined : length).toString('utf8');
      let body: any;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, text, body });
    };
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      tryParse(false);
    });
    socket.on('end', () => tryParse(true));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(request);
  });
}

describe('authentication comes before the body', () => {
  it('when a write has no key, then 401 whatever the body (broken JSON, text, over 1 MiB); a wrong role gets 403 before its body is judged', async () => {
    const cases: [string, Record<string, string>, string | Uint8Array, number, string][] = [
      ['no key, broken JSON', { 'content-type': 'application/json' }, '{bad', 401, 'unauthorized'],
      ['no key, text body', { 'content-type': 'text/plain' }, 'hello', 401, 'unauthorized'],
      [
        'no key, 1.1 MB body',
        { 'content-type': 'application/json' },
        `{"a":"${'x'.repeat(1_100_000)}"}`,
        401,
        'unauthorized',
      ],
      [
        'unknown key, broken JSON',
        { 'content-type': 'application/json', authorization: 'Bearer nope' },
        '{bad',
        401,
        'unauthorized',
      ],
      ['feed key, text body', { ...bearer('feed'), 'content-type': 'text/plain' }, 'hello', 403, 'forbidden'],
      ['feed key, broken JSON', { ...bearer('feed'), 'content-type': 'application/json' }, '{bad', 403, 'forbidden'],
      [
        'intake key, 1.1 MB body to an operator route',
        { ...bearer('intake'), 'content-type': 'application/json' },
        `{"a":"${'x'.repeat(1_100_000)}"}`,
        403,
        'forbidden',
      ],
    ];
    for (const [what, headers, body, status, code] of cases) {
      const url = what.includes('operator route') ? '/v1/products' : '/v1/orders';
      const res = await expectNothingChanged(h(), () => raw('POST', url, { headers, body }));
      expect.soft({ what, status: res.status, code: res.body?.error?.code }).toEqual({ what, status, code });
      expectError(res, status, code);
    }
    // The right key still gets the body checks.
    expectError(
      await raw('POST', '/v1/orders', {
        headers: { ...bearer('intake'), 'content-type': 'text/plain' },
        body: 'hello',
      }),
      415,
      'unsupported_media_type',
    );
    expectError(
      await raw('POST', '/v1/orders', {
        headers: { ...bearer('intake'), 'content-type': 'application/json' },
        body: '{bad',
      }),
      400,
      'invalid_json',
    );
  });

  it('when a client without a key announces a large body and sends none of it, then 401 comes at once (the server does not wait to read it)', async () => {
    const res = await rawHttp(
      'POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"cus',
    );
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    // The operator's Basic login on the board is refused the same way before anything is read.
    const board = await rawHttp(
      'PUT /admin/queues/api/queues/orders/pause HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n{',
    );
    expect(board.status).toBe(401);
    expect(board.headers.get('www-authenticate')).toMatch(/^Basic/);
  });
});

describe('empty bodies', () => {
  it('when cancel is posted chunked with an empty body and no Content-Type, then the order is cancelled; a non-empty chunked text body is 415', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 3);
    const o1 = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const a = await rawHttp(
      `POST /v1/orders/${o1.id}/cancel HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.intake}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    );
    expect(a.status, a.text).toBe(200);
    expect(a.body.status).toBe('cancelled');
    // The same through fetch with an empty stream body.
    const o2 = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    const empty = new ReadableStream({
      start(ctl) {
        ctl.close();
      },
    });
    const b = await fetch(`${h().baseUrl}/v1/orders/${o2.id}/cancel`, {
      method: 'POST',
      headers: bearer('intake'),
      body: empty,
      duplex: 'half',
    } as RequestInit);
    expect(b.status, await b.clone().text()).toBe(200);
    expect((await b.json()).status).toBe('cancelled');
    // A chunked body with bytes in it and no JSON type is still refused, and the order stays as it is.
    const o3 = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    for (const type of ['', 'Content-Type: text/plain\r\n']) {
      const e = await expectNothingChanged(h(), () =>
        rawHttp(
          `POST /v1/orders/${o3.id}/cancel HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.intake}\r\n${type}Transfer-Encoding: chunked\r\n\r\n6\r\nplease\r\n0\r\n\r\n`,
        ),
      );
      expect(e.status, e.text).toBe(415);
      expect(e.body.error.code).toBe('unsupported_media_type');
    }
    // A chunked JSON body is read as JSON.
    const d = await rawHttp(
      `POST /v1/orders/${o3.id}/cancel HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.intake}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n{"reason":"gone"}\r\n0\r\n\r\n`,
    );
    expect(d.status, d.text).toBe(200);
    expect(d.body.status_reason).toBe('gone');
  });
});

describe("Node's own HTTP refusals", () => {
  it('when the headers are too large (20 KB) or a header line is malformed, then the refusal is a JSON error with X-Request-Id', async () => {
    const big = await rawHttp(`GET /v1/orders HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(big.status).toBe(431);
    expect(big.headers.get('content-type')).toMatch(/^application\/json/);
    expect(big.body).toEqual({
      error: { code: 'validation_failed', message: expect.stringMatching(/too large/), details: [] },
    });
    expect(big.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    const bad = await rawHttp('GET /v1/orders HTTP/1.1\r\nHost: x\r\nThis line has no colon\r\n\r\n');
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toMatch(/^application\/json/);
    expect(bad.body).toEqual({
      error: { code: 'validation_failed', message: expect.stringMatching(/malformed/), details: [] },
    });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('error shapes', () => {
  it('when a documented path is asked with a method it does not take, then 404 not_found names the methods it takes, also in Allow; nothing changes', async () => {
    for (const [method, url, allow] of [
      ['PUT', '/v1/orders', 'GET, HEAD, POST'],
      ['POST', `/v1/orders/${UUID}/timeline`, 'GET, HEAD'],
      ['DELETE', '/v1/inventory/counts', 'POST'],
    ] as const) {
      const res = await expectNothingChanged(h(), () => h().api(method, url, { role: 'operator', body: {} }));
      expectError(res, 404, 'not_found');
      expect(res.headers.get('allow'), `${method} ${url}`).toBe(allow);
      expect(res.body.error.message).toBe(`no route for ${method} ${url}: it takes ${allow}`);
    }
    const nowhere = await h().api('GET', '/v1/nowhere', { role: 'operator' });
    expectError(nowhere, 404, 'not_found');
    expect(nowhere.headers.get('allow')).toBeNull();
  });

  it('when a gzip-declared body is not gzip, then 400 says it could not be decoded; real gzip JSON is accepted; an unknown encoding is 415', async () => {
    const json = { 'content-type': 'application/json', ...bearer('intake') };
    const broken = await expectNothingChanged(h(), () =>
      raw('POST', '/v1/customers', {
        headers: { ...json, 'content-encoding': 'gzip' },
        body: '{"email":"gz@example.test","name":"G"}',
      }),
    );
    expectError(broken, 400, 'invalid_json');
    expect(broken.body.error.message).toMatch(/could not be decoded.*gzip/i);
    const ok = await raw('POST', '/v1/customers', {
      headers: { ...json, 'content-encoding': 'gzip' },
      body: gzipSync('{"email":"gz@example.test","name":"G"}'),
    });
    expect(ok.status, ok.text).toBe(201);
    const unknown = await expectNothingChanged(h(), () =>
      raw('POST', '/v1/customers', { headers: { ...json, 'content-encoding': 'compress' }, body: '{}' }),
    );
    expectError(unknown, 415, 'unsupported_media_type');
    expect(unknown.body.error.message).toMatch(/compress/);
  });

  it('when a number is beyond what a stock count can be (low_stock, an adjustment lifting on_hand past 2^53 − 1), then 400 names the field in details', async () => {
    for (const n of ['9007199254740992', '1e30', '99999999999999999999']) {
      const low = await raw('GET', `/v1/inventory?low_stock=${n}`, { headers: bearer('operator') });
      expectError(low, 400, 'validation_failed');
      expect(low.body.error.details, n).toEqual([
        { path: 'query.low_stock', message: expect.stringMatching(/9007199254740991/) },
      ]);
    }
    for (const n of ['2147483648', '9007199254740991'])
      expect((await raw('GET', `/v1/inventory?low_stock=${n}`, { headers: bearer('operator') })).status, n).toBe(200);

    const p = await makeProduct(h(), 1);
    // Arrange: a SKU 5 units below the limit (reaching it for real takes nine million adjustments).
    await h()
      .ctx.db('stock')
      .where({ sku: p.sku })
      .update({ on_hand: Number.MAX_SAFE_INTEGER - 5 });
    const adjust = (delta: number) =>
      raw('POST', `/v1/inventory/${p.sku}/adjustments`, {
        headers: { ...bearer('operator'), 'content-type': 'application/json' },
        body: JSON.stringify({ delta, reason: 'count' }),
      });
    const over = await expectNothingChanged(h(), () => adjust(1_000_000));
    expectError(over, 400, 'validation_failed');
    expect(over.body.error.details).toEqual([{ path: 'body.delta', message: 'must be at most 5' }]);
    const exact = await adjust(5);
    expect(exact.status, exact.text).toBe(201);
    expect(exact.body.stock.on_hand).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("when the board's API refuses (unknown queue, broken percent-encoding), then the error has the contract's shape and the board's key", async () => {
    const auth = bearer('operator');
    const missing = await raw('GET', '/admin/queues/api/queues/no-such-queue/metrics', { headers: auth });
    expectError(missing, 404, 'not_found');
    expect(missing.body.error).toMatchObject({ message: 'queue not found', key: 'ERRORS.QUEUE_NOT_FOUND' });
    const job = await raw('GET', '/admin/queues/api/queues/orders/no-such-job', { headers: auth });
    expectError(job, 404, 'not_found');
    expect(job.body.error.message).toBe('job not found');
    const garbled = await raw('GET', '/admin/queues/api/queues/%ZZ/metrics', { headers: auth });
    expectError(garbled, 400, 'validation_failed');
    expect(garbled.body.error.message).toMatch(/percent-encoding/);
    expect(garbled.text).not.toMatch(/ERRORS\.INTERNAL_SERVER_ERROR|\bat .*\.js/);
    // Successes are untouched.
    const ok = await raw('GET', '/admin/queues/api/queues', { headers: auth });
    expect(ok.status).toBe(200);
    expect(Array.isArray(ok.body.queues)).toBe(true);
  });
});

describe('bodies of retry and resend', () => {
  it('when retry or resend gets a body that is not an object (array, null, number), then 400 like cancel and fulfil, and nothing changes', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 3);
    const o = await placeOrder(h(), c.id, [{ sku: p.sku, quantity: 1 }]);
    await h().ctx.db('orders').where({ id: o.id }).update({ status: 'failed', status_reason: 'test' });
    const json = { ...bearer('operator'), 'content-type': 'application/json' };
    for (const body of ['[1,2]', 'null', '42', '"x"']) {
      for (const url of [`/v1/orders/${o.id}/retry`, `/v1/notifications/${UUID}/resend`, `/v1/orders/${o.id}/cancel`]) {
        const res = await expectNothingChanged(h(), () => raw('POST', url, { headers: json, body }));
        expect.soft({ url, body, status: res.status }).toEqual({ url, body, status: 400 });
        expectError(res, 400, 'validation_failed');
      }
    }
    // An unknown field is 400 (change 10); an empty object or no body at all works.
    expectError(
      await expectNothingChanged(h(), () =>
        raw('POST', `/v1/orders/${o.id}/retry`, { headers: json, body: '{"note":"again"}' }),
      ),
      400,
      'validation_failed',
    );
    const ok = await raw('POST', `/v1/orders/${o.id}/retry`, { headers: json, body: '{}' });
    expect(ok.status, ok.text).toBe(202);
    expect(ok.body.status).toBe('received');
    expectError(await raw('POST', `/v1/notifications/${UUID}/resend`, { headers: json, body: '{}' }), 404, 'not_found');
    expectError(
      await raw('POST', `/v1/notifications/${UUID}/resend`, { headers: bearer('operator') }),
      404,
      'not_found',
    );
  });
});
