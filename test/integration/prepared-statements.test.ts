import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, rawPrepared, SAVED_PLAN_MAX_ROWS, type Db } from '../../src/platform/db';
import { createTestDatabase } from '../helpers/harness';

/**
 * rawPrepared on one pooled connection (pool of 1, so every call and every check below meets the
 * same server session): what PostgreSQL's own view of its prepared statements says was planned.
 */
let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = createDb(testDb.url, 1);
});
afterAll(async () => {
  await db?.destroy();
  await testDb?.drop();
});

/** The session's counts for the statement whose text contains `marker`. */
async function plans(marker: string): Promise<{ generic: number; custom: number } | undefined> {
  const { rows } = await db.raw(
    `SELECT generic_plans::int AS generic, custom_plans::int AS custom FROM pg_prepared_statements WHERE statement LIKE ?`,
    [`%${marker}%`],
  );
  return rows[0];
}

// A lookup by a parameter array, with a subquery: the shape of the delivery and event statements.
// Left to choose, PostgreSQL plans the first five calls for their values whatever it decides later.
const BY_IDS = (marker: string) =>
  `SELECT o.id, (SELECT count(*) FROM order_lines l WHERE l.order_id = o.id) AS n, '${marker}' AS m
     FROM orders o WHERE o.id = ANY(?::uuid[]) AND o.status = ?`;

describe('rawPrepared: named prepared statements, and the saved plan when asked for', () => {
  it('when a small batch runs 10 times, then it is prepared once on the connection and runs with the same name each time', async () => {
    for (let i = 0; i < 10; i++) await rawPrepared(db, BY_IDS('named-10'), [[crypto.randomUUID()], 'received']);
    const p = await plans('named-10');
    expect(p).toBeDefined(); // prepared, under a name (an unnamed statement is not in the view)
    expect(p!.generic + p!.custom).toBe(10);
  });

  it('when a small batch runs outside a transaction, then no call is planned for its values and the connection is back to auto after it, also after a failed statement; inside one PostgreSQL chooses', async () => {
    for (let i = 0; i < 8; i++) await rawPrepared(db, BY_IDS('generic-8'), [[crypto.randomUUID()], 'received']);
    expect(await plans('generic-8')).toEqual({ generic: 8, custom: 0 });
    expect((await db.raw('SHOW plan_cache_mode')).rows[0].plan_cache_mode).toBe('auto');

    await db.transaction(async (trx) => {
      await rawPrepared(trx, BY_IDS('generic-trx'), [[crypto.randomUUID()], 'received']);
      expect((await trx.raw('SHOW plan_cache_mode')).rows[0].plan_cache_mode).toBe('auto');
    });
    // In a transaction the plan is PostgreSQL's choice (no extra round trips while rows are locked).
    expect(await plans('generic-trx')).toEqual({ generic: 0, custom: 1 });

    // A statement that fails (bad uuid) outside a transaction: the setting is still reset.
    await expect(rawPrepared(db, BY_IDS('generic-fail'), [['not-a-uuid'], 'received'])).rejects.toThrow(/uuid/);
    expect((await db.raw('SHOW plan_cache_mode')).rows[0].plan_cache_mode).toBe('auto');
  });

  it('when a batch has more rows than SAVED_PLAN_MAX_ROWS, then it is planned for its values as an unnamed statement', async () => {
    const ids = Array.from({ length: SAVED_PLAN_MAX_ROWS + 1 }, () => crypto.randomUUID());
    for (let i = 0; i < 3; i++) await rawPrepared(db, BY_IDS('large-batch'), [ids, 'received']);
    expect(await plans('large-batch')).toBeUndefined(); // never prepared under a name
    await rawPrepared(db, BY_IDS('large-batch'), [ids.slice(0, SAVED_PLAN_MAX_ROWS), 'received']);
    expect(await plans('large-batch')).toEqual({ generic: 1, custom: 0 });
  });
});
