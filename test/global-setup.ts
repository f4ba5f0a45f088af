import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createDb, migrateLatest, withDatabase } from '../src/platform/db';
import { resolveLocalServices } from '../src/platform/local-services';
import { startRedisCluster, type RedisClusterHandle } from './helpers/redis-cluster';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
    redisUrl: string;
    /** TEST_REDIS_CLUSTER=1: the private cluster's REDIS_CLUSTER_NODES; '' otherwise. */
    redisClusterNodes: string;
    templateDb: string;
    runId: string;
  }
}

/**
 * Real PostgreSQL and Redis for every test: the ones configured (TEST_DATABASE_URL / TEST_REDIS_URL),
 * else the machine's on the default ports, else the same embedded fallback as `npm start`.
 * One migrated template database per run; each test file clones it.
 * TEST_REDIS_CLUSTER=1 (`npm run test:cluster`): a private 3-master Redis Cluster is started on
 * free ports and every harness uses it (REDIS_CLUSTER_NODES, hash-tagged prefixes).
 */
export default async function setup(project: TestProject) {
  const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const local = await resolveLocalServices({
    databaseUrl: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    databaseDefaulted: !process.env.TEST_DATABASE_URL,
    redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisDefaulted: !process.env.TEST_REDIS_URL,
  });
  let cluster: RedisClusterHandle | undefined;
  if (process.env.TEST_REDIS_CLUSTER === '1') cluster = await startRedisCluster(3);
  const adminUrl = withDatabase(local.databaseUrl, 'postgres');
  const templateDb = `of_tpl_${runId}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  // Databases left by runs that were killed before their teardown (older than 3 hours) go now.
  const stale = await admin.query(
    `SELECT datname FROM pg_database WHERE datname ~ '^of_(tpl_)?[0-9a-z]{8}[0-9a-f]{6}'`,
  );
  for (const { datname } of stale.rows) {
    const started = parseInt(
      String(datname)
        .replace(/^of_(tpl_)?/, '')
        .slice(0, 8),
      36,
    );
    if (Date.now() - started > 3 * 3600_000)
      await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => undefined);
  }
  await admin.query(`CREATE DATABASE ${templateDb}`);
  const db = createDb(withDatabase(adminUrl, templateDb), 2);
  await migrateLatest(db);
  await db.destroy();
  await admin.end();

  project.provide('pgUrl', adminUrl);
  project.provide('redisUrl', local.redisUrl);
  project.provide('redisClusterNodes', cluster?.nodes ?? '');
  project.provide('templateDb', templateDb);
  project.provide('runId', runId);

  return async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    const { rows } = await c.query(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`of_%${runId}%`]);
    for (const r of rows) await c.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`).catch(() => undefined);
    await c.end();
    await cluster?.stop();
    await local.stop();
  };
}
