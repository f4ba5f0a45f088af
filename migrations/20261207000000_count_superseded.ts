import type { Knex } from 'knex';

/**
 * A count item that an already-booked count of a later `counted_at` supersedes (the same SKU and
 * location) books nothing and names that count here. The index finds a SKU's counts at a
 * location, which a count now looks up for each of its items.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE stock_count_items ADD COLUMN superseded_by text');
  await knex.raw('CREATE INDEX stock_count_items_sku ON stock_count_items (sku) WHERE superseded_by IS NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS stock_count_items_sku');
  await knex.raw('ALTER TABLE stock_count_items DROP COLUMN superseded_by');
}
