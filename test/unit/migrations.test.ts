import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, migrateLatest, migrateRollbackAll, type Db } from '../../src/platform/db';
import { MIGRATIONS } from '../../migrations';
import { createTestDatabase, ROOT } from '../helpers/harness';
import { PART1_TABLES } from '../helpers/tables';

const TABLES: string[] = [...PART1_TABLES];

describe('migrations/index.ts', () => {
  it('when a migration file exists, then it is listed in migrations/index.ts (and every listed one has a file)', () => {
    const files = readdirSync(path.join(ROOT, 'migrations'))
      .filter((f) => /\.(ts|js|mts|cts)$/.test(f) && !f.endsWith('.d.ts') && !/^index\./.test(f))
      .map((f) => f.replace(/\.[mc]?[tj]s$/, ''));
    expect(files.length).toBeGreaterThan(0);
    expect(Object.keys(MIGRATIONS).sort()).toEqual([...new Set(files)].sort());
    for (const [name, m] of Object.entries(MIGRATIONS)) {
      expect(name).toMatch(/^\d{14}_[a-z0-9_]+$/);
      expect(typeof m.up, name).toBe('function');
      expect(typeof m.down, name).toBe('function');
    }
  });
});

describe('migrate down and up', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url, 2);
  });
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  const schema = async () =>
    (
      await db.raw(`
    SELECT c.table_name, c.column_name, c.data_type, c.is_nullable, coalesce(c.column_default, '') AS column_default
      FROM information_schema.columns c WHERE c.table_schema = 'public' AND c.table_name NOT LIKE 'knex_%'
     ORDER BY 1, 2`)
    ).rows;
  const constraints = async () =>
    (
      await db.raw(`
    SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
     WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text NOT LIKE 'knex_%' ORDER BY 1, 2`)
    ).rows;
  const indexes = async () =>
    (
      await db.raw(
        `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'knex_%' ORDER BY 1`,
      )
    ).rows;
  const tables = async () =>
    (await db.raw(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'knex_%'`)).rows
      .map((r: any) => r.tablename)
      .sort();

  it('when a migrated database is rolled back to zero and migrated again, then the schema is exactly as before and works', async () => {
    const before = { columns: await schema(), constraints: await constraints(), indexes: await indexes() };
    expect(await tables()).toEqual(expect.arrayContaining(TABLES));

    await migrateRollbackAll(db);
    expect(await tables()).toEqual([]);
    expect(
      (await db.raw(`SELECT count(*)::int AS n FROM pg_class WHERE relkind = 'S' AND relname = 'order_seq'`)).rows[0].n,
    ).toBe(0);
    expect((await db('knex_migrations').count({ n: '*' }).first())!.n).toBe(0);

    await migrateLatest(db);
    expect({ columns: await schema(), constraints: await constraints(), indexes: await indexes() }).toEqual(before);
    expect((await db('knex_migrations').pluck('name')).sort()).toEqual(Object.keys(MIGRATIONS).sort());
    await migrateLatest(db); // a second run is a no-op
    expect(await db('knex_migrations').count({ n: '*' }).first()).toEqual({ n: Object.keys(MIGRATIONS).length });

    // The constraints are live: a stock row can never hold more reserved than on hand.
    await db('products').insert({ sku: 'MIG-1', name: 'x', price_cents: 1 });
    await db('stock').insert({ sku: 'MIG-1', on_hand: 2 });
    await expect(db('stock').where({ sku: 'MIG-1' }).update({ reserved: 3 })).rejects.toMatchObject({ code: '23514' });
    await expect(db('stock').where({ sku: 'MIG-1' }).update({ on_hand: -1 })).rejects.toMatchObject({ code: '23514' });
  });
});
