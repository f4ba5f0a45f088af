import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  portAnswers,
  startEmbeddedPostgres,
  startLocalRedis,
  type LocalService,
} from '../../src/platform/local-services';
import { prepareDatabase } from '../../src/platform/prepare-database';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function waitClosed(port: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (!(await portAnswers(port))) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function tableExists(url: string, table: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [`public.${table}`])).rows[0].ok;
  } finally {
    await c.end();
  }
}

// What `npm start` falls back to when no server is configured, exercised directly on free ports.
describe('embedded services (the no-server fallback of npm start and npm test)', () => {
  const started: LocalService[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('when an embedded PostgreSQL is started in a fresh directory, then prepareDatabase creates and migrates the database; a restart keeps the data', async () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), 'of-embedded-'));
    dirs.push(parent);
    chmodSync(parent, 0o755); // as root, the postgres user must be able to reach the data directory
    const dataDir = path.join(parent, 'pg');
    const port = await freePort();

    const t0 = Date.now();
    const first = await startEmbeddedPostgres(port, dataDir);
    started.push(first);
    const startMs = Date.now() - t0;
    expect(first.url).toBe(`postgres://postgres:postgres@127.0.0.1:${port}/orderflow`);
    expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
    if (process.getuid?.() === 0) expect(statSync(dataDir).uid).not.toBe(0);

    await prepareDatabase(first.url);
    expect(await tableExists(first.url, 'orders')).toBe(true);
    expect(await tableExists(first.url, 'stock_movements')).toBe(true);

    // Restart on the same directory: no second initdb, the migrated data is still there.
    await first.stop();
    started.pop();
    expect(await waitClosed(port)).toBe(true);
    const second = await startEmbeddedPostgres(port, dataDir);
    started.push(second);
    expect(await tableExists(second.url, 'orders')).toBe(true);
    await prepareDatabase(second.url); // idempotent
    await second.stop();
    started.pop();
    expect(await waitClosed(port)).toBe(true);
    console.info(`embedded PostgreSQL: first start (initdb + start) ${startMs} ms`);
  });

  it('when a local redis-server is started, then it answers with maxmemory-policy noeviction and stops cleanly', async () => {
    const port = await freePort();
    const redis = await startLocalRedis(port);
    started.push(redis);
    expect(redis.url).toBe(`redis://127.0.0.1:${port}`);
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      expect(await client.ping()).toBe('PONG');
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    } finally {
      client.disconnect();
    }
    await redis.stop();
    started.pop();
    expect(await waitClosed(port)).toBe(true);
  });
});
