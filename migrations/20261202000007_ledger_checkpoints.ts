import type { Knex } from 'knex';

/**
 * The ledger report without reading the whole movement history per refresh: the sums per (SKU,
 * location) and movement type of every movement up to `upto_id` are kept here, and a report adds
 * only the movements after it. `pending_id` / `pending_xmax` are the next checkpoint's candidate:
 * the largest movement id visible at one run and the snapshot's xmax then. The following run folds
 * movements up to `pending_id` in only once every transaction that was running at that moment has
 * ended (snapshot xmin ≥ `pending_xmax`), so no movement with a smaller id can still commit later.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('ledger_checkpoint_sums', (t) => {
    t.text('sku').notNullable();
    t.text('location').notNullable();
    for (const c of [
      'initial',
      'receipt',
      'sale',
      'return',
      'adjustment',
      'count',
      'transfer_in',
      'transfer_out',
      'reserved',
    ])
      t.bigInteger(c).notNullable().defaultTo(0);
    t.primary(['sku', 'location']);
  });
  await knex.raw(`CREATE TABLE ledger_checkpoint (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    upto_id bigint NOT NULL DEFAULT 0,
    pending_id bigint,
    pending_xmax xid8,
    advanced_at timestamptz
  )`);
  await knex.raw('INSERT INTO ledger_checkpoint (id) VALUES (1)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('ledger_checkpoint');
  await knex.schema.dropTable('ledger_checkpoint_sums');
}
