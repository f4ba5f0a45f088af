import knex, { type Knex } from 'knex';
import pg from 'pg';
import { MIGRATIONS } from '../../migrations';

// bigint columns (seq, cents) fit comfortably in a JS number; count(*) too.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

export type Db = Knex;
export type Trx = Knex.Transaction;
export type Executor = Knex | Knex.Transaction;

export function createDb(url: string, poolMax = 20): Db {
  return knex({
    client: 'pg',
    connection: { connectionString: url, connectionTimeoutMillis: 3000 },
    pool: { min: 0, max: poolMax, acquireTimeoutMillis: 5000, idleTimeoutMillis: 10000 },
    acquireConnectionTimeout: 5000,
  });
}

export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

/** Creates the database named in `url` when it does not exist (concurrent callers are fine). */
export async function ensureDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres'), connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`).catch((err) => {
        if (err.code !== '42P04' && err.code !== '23505') throw err; // created meanwhile
      });
    }
  } finally {
    await client.end();
  }
}

/** Migrations come from migrations/index.ts, named without extension (same history under tsx and dist). */
class MigrationSource implements Knex.MigrationSource<string> {
  async getMigrations(): Promise<string[]> { return Object.keys(MIGRATIONS).sort(); }
  getMigrationName(name: string): string { return name; }
  async getMigration(name: string): Promise<Knex.Migration> { return MIGRATIONS[name]; }
}

export async function migrateLatest(db: Db): Promise<void> {
  await db.migrate.latest({ migrationSource: new MigrationSource() });
}

export async function migrateRollbackAll(db: Db): Promise<void> {
  await db.migrate.rollback({ migrationSource: new MigrationSource() }, true);
}
