import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { prepareDatabase } from '../../src/platform/prepare-database';
import { advisoryKey, ensureDatabase, withDatabase } from '../../src/platform/db';
import { MIGRATIONS } from '../../migrations';
import {
  API_KEYS,
  ROOT,
  createTestDatabase,
  deletePrefix,
  testPrefix,
  testRedisEnv,
  testRedisTarget,
  waitFor,
} from '../helpers/harness';

interface Proc {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(name: string, script: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { name, child, output: () => out, exited };
}

/** The pino line `msg` logged by a process, parsed, once it is there. */
function logLine(p: Proc, msg: string): Record<string, unknown> | undefined {
  for (const line of p.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const rec = JSON.parse(line) as Record<string, unknown>;
      if (rec.msg === msg) return rec;
    } catch {
      /* not a log line */
    }
  }
  return undefined;
}

const alive = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null;

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: inject('pgUrl') });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const dropDatabase = (name: string) => admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));

// What `docker compose up` does: the API, a worker and a migration start at the same moment against
// a database that does not exist yet. Each must come up; the database is created and migrated once.
describe('processes starting together on a fresh database', () => {
  const created: string[] = [];
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const name of created) await dropDatabase(name).catch(() => undefined);
    for (const prefix of prefixes) await deletePrefix(testRedisTarget(), prefix).catch(() => undefined);
  });

  it('when an API, a worker and npm run migrate start at once on a database that does not exist, ten times, then every one comes up and each migration is recorded once', async () => {
    const rounds = 10;
    const migrations = Object.keys(MIGRATIONS).sort();
    const timings: number[] = [];
    const stops: number[] = [];
    let waited = 0; // processes that found the lock taken (the race really happened)
    for (let round = 1; round <= rounds; round++) {
      const name = `of_${inject('runId')}_${process.pid}_start${round}`;
      const prefix = testPrefix(`${inject('runId')}_${process.pid}_start${round}`);
      created.push(name);
      prefixes.push(prefix);
      expect(
        await admin((c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).then((r) => r.rowCount),
      ).toBe(0);
      const env = {
        NODE_ENV: 'test',
        LOG_LEVEL: 'info',
        DATABASE_URL: withDatabase(inject('pgUrl'), name),
        ...testRedisEnv(),
        QUEUE_PREFIX: prefix,
        API_KEYS,
        PORT: '0',
        SHUTDOWN_TIMEOUT_MS: '3000',
      };
      const t0 = Date.now();
      const procs = [
        start('api', 'src/app/main.ts', ['api'], env),
        start('worker', 'src/app/main.ts', ['worker'], env),
        start('migrate', 'src/app/migrate.ts', [], env),
      ];
      const [api, worker, migrate] = procs;
      const describeAll = () => procs.map((p) => `--- ${p.name} (exit ${p.child.exitCode}):\n${p.output()}`).join('\n');
      try {
        // Every process is up (or, for the migration, done) — or one of them died: then fail at once.
        const died = new Promise<never>((_, reject) => {
          for (const p of procs) {
            void p.exited.then((code) => {
              if (p !== migrate || code !== 0) reject(new Error(`${p.name} exited ${code}\n${describeAll()}`));
            });
          }
        });
        died.catch(() => undefined); // observed by the race below; later exits (the SIGTERM) are awaited there
        const up = Promise.all([
          waitFor(
            async () => {
              const port = logLine(api, 'orderflow API listening')?.port;
              return port ? (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 : false;
            },
            { timeout: 60_000, what: 'the API to answer /readyz 200' },
          ),
          waitFor(async () => !!logLine(worker, 'orderflow workers running'), {
            timeout: 60_000,
            what: 'the worker to run',
          }),
          migrate.exited,
        ]);
        const [, , migrateCode] = await Promise.race([up, died]);
        timings.push(Date.now() - t0);
        waited += procs.filter((p) => /another process is (creating|migrating) the database/.test(p.output())).length;
        expect(migrateCode, describeAll()).toBe(0);
        expect(migrate.output()).toMatch(/migrations are up to date/);
        expect(alive(api) && alive(worker), describeAll()).toBe(true);
        expect(logLine(api, 'orderflow API listening')?.host).toBe('127.0.0.1'); // HOST unset, NODE_ENV=test

        const url = withDatabase(inject('pgUrl'), name);
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        try {
          const { rows } = await c.query<{ name: string; n: number }>(
            'SELECT name, count(*)::int AS n FROM knex_migrations GROUP BY name ORDER BY name',
          );
          expect(rows).toEqual(migrations.map((m) => ({ name: m, n: 1 })));
        } finally {
          await c.end();
        }

        // A clean stop, too: both exit 0 on SIGTERM.
        const t1 = Date.now();
        api.child.kill('SIGTERM');
        worker.child.kill('SIGTERM');
        expect(await api.exited, describeAll()).toBe(0);
        expect(await worker.exited, describeAll()).toBe(0);
        stops.push(Date.now() - t1);
      } finally {
        for (const p of procs) if (alive(p)) p.child.kill('SIGKILL');
        await Promise.all(procs.map((p) => p.exited));
      }
      await dropDatabase(name);
    }
    console.info(
      `concurrent start: ${rounds} rounds, time to all up ${Math.min(...timings)}-${Math.max(...timings)} ms, ${waited} processes waited for a lock, stop ${Math.min(...stops)}-${Math.max(...stops)} ms`,
    );
  }, 300_000); // ~40-60 s alone; three tsx start-ups a round are slow on a busy machine
});

// The locks themselves, made deterministic: a test session holds one, prepareDatabase must wait.
describe('prepareDatabase under its advisory locks', () => {
  const names: string[] = [];
  let n = 0;
  const fresh = () => {
    const name = `of_${inject('runId')}_${process.pid}_lock${++n}`;
    names.push(name);
    return name;
  };
  afterAll(async () => {
    for (const name of names) await dropDatabase(name).catch(() => undefined);
  });

  /** Holds advisory lock `lock` in database `db` until release() (a session of its own, as another process would). */
  async function hold(db: string, lock: string) {
    const c = new pg.Client({ connectionString: withDatabase(inject('pgUrl'), db) });
    await c.connect();
    await c.query('SELECT pg_advisory_lock($1::bigint)', [advisoryKey(lock)]);
    return { release: () => c.end() };
  }
  const settled = async (p: Promise<unknown>, ms: number) =>
    Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  const exists = async (name: string) =>
    (await admin((c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]))).rowCount === 1;
  const migrated = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      if (!(await c.query("SELECT to_regclass('public.knex_migrations') AS t")).rows[0].t) return [];
      return (await c.query<{ name: string }>('SELECT name FROM knex_migrations ORDER BY name')).rows.map(
        (r) => r.name,
      );
    } finally {
      await c.end();
    }
  };

  it('when another session is creating the database (holds the create lock), then prepareDatabase waits, then creates and migrates it', async () => {
    const name = fresh();
    const url = withDatabase(inject('pgUrl'), name);
    const lock = await hold('postgres', `orderflow:create-database:${name}`);
    const run = prepareDatabase(url);
    run.catch(() => undefined);
    try {
      expect(await settled(run, 1000)).toBe(false);
      expect(await exists(name)).toBe(false);
    } finally {
      await lock.release();
    }
    await run;
    expect(await migrated(url)).toEqual(Object.keys(MIGRATIONS).sort());
  });

  it('when another session is migrating (holds the migrate lock), then prepareDatabase waits, then migrates once', async () => {
    const name = fresh();
    const url = withDatabase(inject('pgUrl'), name);
    await ensureDatabase(url);
    const lock = await hold(name, 'orderflow:migrate');
    const run = prepareDatabase(url);
    run.catch(() => undefined);
    try {
      expect(await settled(run, 1000)).toBe(false);
      expect(await migrated(url)).toEqual([]);
    } finally {
      await lock.release();
    }
    await run;
    expect(await migrated(url)).toEqual(Object.keys(MIGRATIONS).sort());
  });

  it("when a process was killed mid-migration (knex's lock row left taken), then the next start frees it and comes up", async () => {
    const name = fresh();
    const url = withDatabase(inject('pgUrl'), name);
    await prepareDatabase(url);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('UPDATE knex_migrations_lock SET is_locked = 1');
    } finally {
      await c.end();
    }
    await prepareDatabase(url); // knex alone: "Migration table is already locked"
    expect(await migrated(url)).toEqual(Object.keys(MIGRATIONS).sort());
  });
});

/** This machine's first non-loopback IPv4 address, if it has one. */
const externalIPv4 = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

/** 'connected', or the error code connecting to host:port gave. */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

// Where the API listens (HOST) and what a process says about it at start.
describe('start-up: the listening address and the operator notification target', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const procs: Proc[] = [];
  const prefix = testPrefix(`${inject('runId')}_${process.pid}_host`);
  afterAll(async () => {
    for (const p of procs) if (alive(p)) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await db?.drop();
    await deletePrefix(testRedisTarget(), prefix).catch(() => undefined);
  });

  /** A start in development as a new user makes it: no HOST, no API_KEYS, no notification target. */
  async function startDev(mode: 'all' | 'api', extra: Record<string, string> = {}) {
    db ??= await createTestDatabase();
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !['HOST', 'API_KEYS', 'NOTIFY_WEBHOOK_URL', 'SMTP_URL', 'PORT'].includes(k)) env[k] = v;
    }
    const p = start(mode, 'src/app/main.ts', [mode], {
      ...env,
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      DATABASE_URL: db.url,
      ...testRedisEnv(),
      QUEUE_PREFIX: prefix,
      PORT: '0',
      ...extra,
    });
    procs.push(p);
    const listening = await waitFor(
      async () => logLine(p, 'orderflow API listening') ?? (!alive(p) && Promise.reject(new Error(p.output()))),
      { timeout: 45_000, what: `the ${mode} process to listen` },
    );
    return { p, host: listening.host as string, port: listening.port as number };
  }

  it('when `npm start` runs in development without HOST, then the API listens on 127.0.0.1 only, prints that address, and says once that there is no operator notification target', async () => {
    const { p, host, port } = await startDev('all');
    expect(host).toBe('127.0.0.1');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    if (externalIPv4) expect(await tryConnect(externalIPv4, port)).toBe('ECONNREFUSED');
    await waitFor(async () => /development API keys/.test(p.output()), { what: 'the development keys' });
    expect(p.output()).toContain(
      `orderflow listening on http://127.0.0.1:${port} (console /console, board /admin/queues`,
    );
    // The next line says which PostgreSQL and Redis it uses and why (here: both configured by the test).
    expect(p.output()).toMatch(
      /\nusing PostgreSQL postgres:\/\/\S+ \(configured\); Redis (redis:\/\/\S+|cluster \S+) \(configured\), queue prefix \S+\n/,
    );
    const notice = p
      .output()
      .split('\n')
      .filter((l) => l.includes('no operator notification target'));
    expect(notice, p.output()).toHaveLength(1);
    expect(notice[0]).toContain("customer notifications go only to customers' own webhook_url");
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });

  it.skipIf(!externalIPv4)(
    'when HOST=0.0.0.0, then the API also answers on a non-loopback interface, and the log says 0.0.0.0',
    async () => {
      const { p, host, port } = await startDev('api', { HOST: '0.0.0.0' });
      expect(host).toBe('0.0.0.0');
      expect(await tryConnect(externalIPv4!, port)).toBe('connected');
      expect((await fetch(`http://${externalIPv4}:${port}/healthz`)).status).toBe(200);
      expect(p.output()).not.toContain('no operator notification target'); // the API alone sends no notifications
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    },
  );
});
