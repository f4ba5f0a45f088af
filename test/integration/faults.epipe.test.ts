import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { makeCustomer, makeProduct } from '../helpers/factories';
import { KEYS, ROOT, useHarness, waitFor } from '../helpers/harness';
import { freePort } from '../helpers/private-redis';

const h = useHarness();

interface Readerless {
  child: ChildProcess;
  url: string;
  firstLine: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `node src/app/main.ts <mode> | head -1`: the process's stdout is a pipe whose reader takes the
 * first line and goes away, so every later write to stdout fails with EPIPE. Logs at info.
 */
async function startReaderless(mode: 'api' | 'all', extraEnv: Record<string, string> = {}): Promise<Readerless> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/app/main.ts', mode], {
    cwd: ROOT,
    env: { ...process.env, ...h().env, PORT: String(port), LOG_LEVEL: 'info', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const firstLine = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      child.stdout!.off('data', onData);
      child.stdout!.destroy(); // the reader is gone: the pipe has no reading end any more
      resolve(buf.slice(0, nl));
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code }) => reject(new Error(`exited ${code} before its first line: ${stderr}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, {
    timeout: 60_000,
    what: `${mode} on ${port}`,
  });
  return { child, url, firstLine, stderr: () => stderr, exited };
}

async function placeOrder(url: string, customerId: string, sku: string): Promise<{ status: number; id?: string }> {
  try {
    const res = await fetch(`${url}/v1/orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.intake}`, 'content-type': 'application/json' },
      body: JSON.stringify({ customer_id: customerId, lines: [{ sku, quantity: 1 }] }),
    });
    const body = (await res.json().catch(() => ({}))) as { id?: string };
    return { status: res.status, id: body.id };
  } catch {
    return { status: 0 };
  }
}

/** An order whose body is sent in two halves, so the request is surely in flight between them. */
function halfSentOrder(url: string, body: unknown): { sent: Promise<void>; rest(): Promise<number> } {
  const payload = Buffer.from(JSON.stringify(body));
  const cut = Math.floor(payload.length / 2);
  const req = http.request(`${url}/v1/orders`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${KEYS.intake}`,
      'content-type': 'application/json',
      'content-length': payload.length,
    },
  });
  const status = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
  });
  const sent = new Promise<void>((resolve) => req.write(payload.subarray(0, cut), () => setTimeout(resolve, 200)));
  return { sent, rest: () => (req.end(payload.subarray(cut)), status) };
}

describe('fault: stdout reader gone (EPIPE) at SIGTERM', () => {
  for (const mode of ['api', 'all'] as const) {
    it(`when the ${mode} process's stdout reader has gone and it logs, then SIGTERM still drains: in-flight orders are answered and stored, and it exits 0`, async () => {
      const c = await makeCustomer(h());
      const p = await makeProduct(h(), 1000);
      const proc = await startReaderless(mode);
      try {
        expect(proc.firstLine).toMatch(/orderflow (API )?listening/);
        // Every request logs a line at info, each one a failed write now.
        const accepted: string[] = [];
        for (let i = 0; i < 20; i++) {
          const r = await placeOrder(proc.url, c.id, p.sku);
          expect(r.status).toBe(202);
          accepted.push(r.id!);
        }
        // One order is half sent when the signal comes: it must still be answered and stored.
        const half = halfSentOrder(proc.url, { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] });
        await half.sent;
        proc.child.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 300));
        expect(await half.rest()).toBe(202);
        const exit = await Promise.race([
          proc.exited,
          new Promise<'still running'>((r) => setTimeout(() => r('still running'), 30_000)),
        ]);
        expect(exit, proc.stderr()).toEqual({ code: 0, signal: null });
        const rows = await h().ctx.db('orders').where({ customer_id: c.id }).select('id');
        expect(rows).toHaveLength(accepted.length + 1);
        expect(rows.map((r) => r.id)).toEqual(expect.arrayContaining(accepted));
      } finally {
        if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
        await proc.exited;
      }
    });
  }

  it('when a drain is stuck on a request that never finishes, then a second SIGTERM exits at once (code 1), reader gone or not', async () => {
    const c = await makeCustomer(h());
    const p = await makeProduct(h(), 10);
    // The hard deadline (SHUTDOWN_TIMEOUT_MS + 5 s) is far away: only the second signal can end it.
    const proc = await startReaderless('api', { SHUTDOWN_TIMEOUT_MS: '120000' });
    try {
      const stuck = halfSentOrder(proc.url, { customer_id: c.id, lines: [{ sku: p.sku, quantity: 1 }] });
      await stuck.sent;
      proc.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 1000));
      expect(proc.child.exitCode).toBeNull(); // still draining: the half-sent request holds it
      proc.child.kill('SIGTERM');
      const exit = await Promise.race([
        proc.exited,
        new Promise<'still running'>((r) => setTimeout(() => r('still running'), 30_000)),
      ]);
      expect(exit, proc.stderr()).toEqual({ code: 1, signal: null });
    } finally {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
      await proc.exited;
    }
  });
});
