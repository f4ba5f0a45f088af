import { createHash } from 'node:crypto';
import knex, { type Knex } from 'knex';
import pg from 'pg';
import { MIGRATIONS } from '../../migrations';

// bigint columns (seq, cents) fit comfortably in a JS number; count(*) too.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

export type Db = Knex;
export type Trx = Knex.Transaction;
export type Executor = Knex | Knex.Transaction;

/**
 * Every pooled connection runs with `jit = off`. The order path's statements build each order's
 * JSON with correlated subqueries, whose estimated cost passes PostgreSQL's jit_above_cost on a batch
 * of a few hundred orders although they run in tens of milliseconds; JIT then compiled about 200
 * functions per statement, 1.4 s each time (docs/benchmarks.md, "No JIT on our connections").
 * Nothing here scans enough for JIT to pay back.
 */
const noJit = (conn: pg.Client, done: (err: Error | null, conn: pg.Client) => void) => {
  conn.query('SET jit = off', (err) => done(err ?? null, conn));
};

export function createDb(url: string, poolMax = 20): Db {
  return knex({
    client: 'pg',
    connection: { connectionString: url, connectionTimeoutMillis: 3000 },
    pool: { min: 0, max: poolMax, acquireTimeoutMillis: 5000, idleTimeoutMillis: 10000, afterCreate: noJit },
    acquireConnectionTimeout: 5000,
  });
}

/** Statement text → the name it is prepared under (a hash of the text, so every process agrees). */
const preparedNames = new Map<string, string>();

/** Batches up to this many rows run on a saved plan; larger ones are planned for their values. */
export const SAVED_PLAN_MAX_ROWS = 8;

/**
 * `db.raw(sql, bindings)` for the hot statements of the order and delivery paths (stock and level
 * updates, lines, totals, attempts, allocations, transitions and their events, delivery claims and
 * outcomes, the sequencer, the relay's marking), by batch size:
 * - **Small** (no array binding longer than SAVED_PLAN_MAX_ROWS: a quiet minute's one or two
 *   orders): a named prepared statement; outside a transaction (delivery claims and outcomes,
 *   the relay's marking, order reads) run on the plan PostgreSQL saved for it
 *   (`plan_cache_mode = force_generic_plan`, set and reset around this statement alone). At a hundred orders a second, planning these CTEs on
 *   every call cost as much as running them, and left to choose PostgreSQL kept planning them
 *   (docs/benchmarks.md, "Prepared statements and saved plans for small batches").
 * - **Large** (a full batch of the production-shaped bench): as before, a statement planned for
 *   its values. The saved plan is costed for a handful of rows; run on 100–250 it made the
 *   production-shaped phase a quarter slower and the three-endpoint one a third.
 * `sql` takes knex's bindings (`?` or `:name`) and must have one shape whatever the values (arrays,
 * never lists of `?`): each text is a statement of its own on every connection. Inside a
 * transaction it runs on the transaction's connection. The setting never outlives the statement:
 * session-wide, knex's own queries would get generic plans too, and a status passed as a
 * parameter could then no longer use a partial index.
 */
export async function rawPrepared<R = any>(
  db: Executor,
  sql: string,
  bindings: readonly Knex.RawBinding[] | Knex.ValueDict,
): Promise<pg.QueryResult<R & pg.QueryResultRow>> {
  const values = Array.isArray(bindings) ? bindings : Object.values(bindings);
  const rows = Math.max(0, ...values.map((v) => (Array.isArray(v) ? v.length : 0)));
  if (rows > SAVED_PLAN_MAX_ROWS) {
    return (await db.raw(sql, bindings as Knex.RawBinding[])) as pg.QueryResult<R & pg.QueryResultRow>;
  }
  const native = db
    .raw(sql, bindings as Knex.RawBinding[])
    .toSQL()
    .toNative();
  let name = preparedNames.get(native.sql);
  if (!name) {
    name = `orderflow_${createHash('sha256').update(native.sql).digest('hex').slice(0, 24)}`;
    preparedNames.set(native.sql, name);
  }
  const conn: pg.Client & { __knex__disposed?: unknown } = await db.client.acquireConnection();
  const query = { name, text: native.sql, values: native.bindings as unknown[] };
  try {
    // In a transaction: prepared, with PostgreSQL's own choice of plan. Two more round trips per
    // statement kept rows locked longer: under the bank test's kills a fulfil lost its version
    // check 30 times in a row (503) in one full run.
    if (db.isTransaction) return await conn.query<R & pg.QueryResultRow>(query);
    await conn.query('SET plan_cache_mode = force_generic_plan');
    try {
      return await conn.query<R & pg.QueryResultRow>(query);
    } finally {
      await conn.query('RESET plan_cache_mode').catch((err: Error) => {
        // A connection that could not be reset must not serve anyone else: knex discards it.
        conn.__knex__disposed = err;
      });
    }
  } finally {
    await db.client.releaseConnection(conn);
  }
}

export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

/** A signed 64-bit advisory-lock key for a name (the same in every process, whatever the server). */
export function advisoryKey(name: string): string {
  return BigInt.asIntN(64, createHash('sha256').update(name).digest().readBigUInt64BE(0)).toString();
}

/**
 * Runs `fn` while holding the session-level advisory lock `name` in `url`'s database, on a
 * connection of its own (advisory locks are per database; the lock ends with the connection, so a
 * process that dies holding it releases it). `onWait` is called when another session holds it.
 */
export async function withAdvisoryLock<T>(
  url: string,
  name: string,
  fn: (client: pg.Client) => Promise<T>,
  onWait?: () => void,
): Promise<T> {
  const key = advisoryKey(name);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined); // a lost connection fails the next query instead
  await client.connect();
  try {
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key]);
    if (!rows[0].ok) {
      onWait?.();
      await client.query('SELECT pg_advisory_lock($1::bigint)', [key]);
    }
    try {
      return await fn(client);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [key]).catch(() => undefined);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** true when the database named in `url` exists and accepts this user (checked by connecting to it). */
async function databaseExists(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === '3D000') return false; // invalid_catalog_name: no such database
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Creates the database named in `url` when it does not exist. Concurrent callers are serialised by
 * an advisory lock on the `postgres` maintenance database (keyed by the database name), which is
 * only needed when the database is missing.
 */
export async function ensureDatabase(url: string, onWait?: () => void): Promise<void> {
  if (await databaseExists(url)) return;
  const name = databaseName(url);
  await withAdvisoryLock(
    withDatabase(url, 'postgres'),
    `orderflow:create-database:${name}`,
    async (client) => {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (!rowCount) {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`).catch((err) => {
          if (err.code !== '42P04' && err.code !== '23505') throw err; // created meanwhile by a process without the lock
        });
      }
    },
    onWait,
  );
}

/** Migrations come from migrations/index.ts, named without extension (same history under tsx and dist). */
export class MigrationSource implements Knex.MigrationSource<string> {
  async getMigrations(): Promise<string[]> {
    return Object.keys(MIGRATIONS).sort();
  }
  getMigrationName(name: string): string {
    return name;
  }
  async getMigration(name: string): Promise<Knex.Migration> {
    return MIGRATIONS[name];
  }
}

export async function migrateLatest(db: Db): Promise<void> {
  await db.migrate.latest({ migrationSource: new MigrationSource() });
}

/**
 * Migrates `url`'s database to latest while holding an advisory lock in that database, so processes
 * starting together take turns: the first migrates, the others then find nothing to do. (knex's own
 * lock does not cover creating its migrations tables, refuses instead of waiting when held, and stays
 * held when its process dies mid-migration.)
 */
export async function migrateLatestLocked(url: string, onWait?: () => void): Promise<void> {
  await withAdvisoryLock(
    url,
    'orderflow:migrate',
    async () => {
      const db = createDb(url, 2);
      try {
        // Holding the advisory lock, no other orderflow process is migrating: a knex lock still taken
        // was left by one killed mid-migration, and would refuse every start from now on.
        await db.migrate.forceFreeMigrationsLock({ migrationSource: new MigrationSource() });
        await migrateLatest(db);
      } finally {
        await db.destroy();
      }
    },
    onWait,
  );
}

export async function migrateRollbackAll(db: Db): Promise<void> {
  await db.migrate.rollback({ migrationSource: new MigrationSource() }, true);
}
