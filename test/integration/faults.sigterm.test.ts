import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  faultSeed,
  figures,
  orderBody,
  printFigures,
  rng,
  runIntake,
  setupShop,
  waitSettled,
  expectCleanRun,
} from '../helpers/fault-kit';
import { makeCustomer } from '../helpers/factories';
import { KEYS, useHarness, waitFor, type WorkerProcess } from '../helpers/harness';
import { freePort } from '../helpers/private-redis';

const h = useHarness();
const ROOT = path.resolve(__dirname, '../..');

const TOTAL = 1200;
const API_TERM_AT = 300;
const WORKER_TERM_AT = 650;

/**
 * An order whose body is sent in two halves: the request is surely in flight between them. `rest()`
 * sends the second half and resolves with the status (0 if the connection failed).
 */
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
  // Resolves once the headers and the first half are on the wire (then give the server a moment to read them).
  const sent = new Promise<void>((resolve) => req.write(payload.subarray(0, cut), () => setTimeout(resolve, 150)));
  return {
    sent,
    rest: async () => {
      req.end(payload.subarray(cut));
      return status;
    },
  };
}

async function startApi(): Promise<{ proc: WorkerProcess; url: string }> {
  const port = await freePort();
  const proc = h().spawnWorker({ PORT: String(port) }, 'api');
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, {
    timeout: 30_000,
    what: `API on ${port}`,
  });
  return { proc, url };
}

describe('fault: SIGTERM to an API process and a worker process under load', () => {
  it('when the API and then the worker get SIGTERM mid-run, then in-flight requests finish, active jobs finish or are handed back, both exit 0, and nothing is lost', async () => {
    const seed = faultSeed();
    const r = rng(seed);
    const shop = await setupShop(h(), { skus: 20, hot: 5, hotStock: 5, coldStock: 200, customers: 10 });
    const [a, b] = await Promise.all([startApi(), startApi()]);
    let worker = h().spawnWorker({ ORDER_CONCURRENCY: '8' });

    let aTerminatedAt = Infinity;
    let halfSentStatus = -1;
    const outsider = await makeCustomer(h());
    let turn = 0;
    const onA = { finishedAfterTerm: 0, refusedAfterTerm: 0, errorsAfterTerm: 0 };
    const term = {
      apiExit: undefined as number | null | undefined,
      apiDrainMs: 0,
      workerExit: undefined as number | null | undefined,
      workerDrainMs: 0,
      activeAtTerm: 0,
      activeAfterExit: -1,
    };
    let pending: Promise<void> = Promise.resolve();

    const stats = await runIntake({
      total: TOTAL,
      concurrency: 8,
      body: () => orderBody(r, shop),
      // Round-robin over both APIs, as a load balancer would, until A is draining.
      baseUrl: () => (aTerminatedAt === Infinity && turn++ % 2 === 0 ? a.url : b.url),
      onAttempt: (x) => {
        if (x.baseUrl !== a.url || x.startedAt > aTerminatedAt || x.endedAt < aTerminatedAt) return;
        // Sent before SIGTERM, answered after: the drain let it finish (or the connection dropped).
        if (x.status === 202) onA.finishedAfterTerm++;
        else if (x.status === 0) onA.refusedAfterTerm++;
        else onA.errorsAfterTerm++;
      },
      onAccepted: async (n) => {
        if (n === API_TERM_AT) {
          // One request certainly in flight at SIGTERM (the others are in flight or not, by timing).
          const half = halfSentOrder(a.url, { ...orderBody(r, shop), customer_id: outsider.id }); // not counted among the shop's orders
          await half.sent;
          aTerminatedAt = Date.now();
          a.proc.kill('SIGTERM');
          pending = pending.then(async () => {
            await new Promise((res) => setTimeout(res, 300)); // the signal is handled, the drain has begun
            halfSentStatus = await half.rest();
            term.apiExit = await a.proc.exited;
            term.apiDrainMs = Date.now() - aTerminatedAt;
          });
        }
        if (n === WORKER_TERM_AT) {
          pending = pending.then(async () => {
            term.activeAtTerm = await h().ctx.queues.orders.getActiveCount();
            const t0 = Date.now();
            worker.kill('SIGTERM');
            term.workerExit = await worker.exited;
            term.workerDrainMs = Date.now() - t0;
            // Before any other worker runs: nothing may be left `active` (it finished or went back to wait).
            term.activeAfterExit = await h().ctx.queues.orders.getActiveCount();
            worker = h().spawnWorker({ ORDER_CONCURRENCY: '8' });
          });
        }
      },
    });
    await pending;

    const settled = await waitSettled(h().ctx.db, stats.accepted, 90_000);
    await new Promise((res) => setTimeout(res, 1500));
    const f = await figures(h().ctx.db, stats.accepted, h().ctx.queues);
    const inDb = await h().ctx.db('orders').whereIn('customer_id', shop.customers).count({ n: '*' }).first();
    printFigures('sigterm', seed, f, {
      ...term,
      ...onA,
      halfSentStatus,
      networkErrors: stats.networkErrors,
      replayed: stats.replayed,
      ordersInDb: Number(inDb?.n),
    });
    if (term.apiExit !== 0) process.stdout.write(`API output:\n${a.proc.output().slice(-3000)}\n`);

    expect(term.apiExit).toBe(0);
    expect(term.workerExit).toBe(0);
    expect(term.activeAtTerm).toBeGreaterThan(0);
    expect(term.activeAfterExit).toBe(0);
    expect(halfSentStatus).toBe(202); // half its body had arrived at SIGTERM: the drain let it finish and answered it
    expect(onA.errorsAfterTerm).toBe(0); // none of them got a 5xx from the draining process
    expectCleanRun({ stats, ordersInDb: Number(inDb?.n), unsettled: settled.unsettled, f, total: TOTAL });
    b.proc.kill('SIGTERM');
    expect(await b.proc.exited).toBe(0);
  }, 240_000);
});

describe('npm start under a process manager and at a terminal', () => {
  /** `npm start` in a process group of its own, as a terminal or a process manager runs it. */
  async function npmStart() {
    const port = await freePort();
    const child = spawn('npm', ['start'], {
      cwd: ROOT,
      detached: true,
      env: { ...process.env, ...h().env, PORT: String(port), LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok, {
      timeout: 60_000,
      what: `npm start on ${port}`,
    });
    const answers = async () => (await fetch(`${url}/healthz`).catch(() => undefined)) !== undefined;
    return { child, exited, answers, out: () => out };
  }
  const count = (text: string, msg: string) => text.split('\n').filter((l) => l.includes(`"msg":"${msg}`)).length;

  it('when SIGTERM goes to npm alone, or Ctrl-C to the whole group (npm forwards it: the app gets it twice), then the app drains once and exits 0, and nothing is left listening', async () => {
    for (const how of ['SIGTERM to npm', 'SIGINT to the group'] as const) {
      const run = await npmStart();
      try {
        if (how === 'SIGTERM to npm') run.child.kill('SIGTERM');
        else process.kill(-run.child.pid!, 'SIGINT');
        const code = await Promise.race([
          run.exited,
          new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000)),
        ]);
        expect(code, `${how}: ${run.out()}`).toBe(0);
        expect(count(run.out(), 'draining'), how).toBe(1);
        expect(count(run.out(), 'stopped'), how).toBe(1);
        expect(run.out(), how).not.toContain('second signal');
        expect(await run.answers(), `${how}: still listening`).toBe(false);
      } finally {
        try {
          process.kill(-run.child.pid!, 'SIGKILL');
        } catch {
          // the group is gone
        }
      }
    }
  }, 150_000);
});
