import type { Knex } from 'knex';

/**
 * Stock counts (snapshots from a warehouse): one row per `count_id` (kept forever, so a resend is
 * known), one row per item with what was counted, what the ledger expected at `counted_at` and the
 * variance booked. `horizon` is a value of the movements' id sequence taken while the count held
 * its stock rows: every movement of its SKUs the count saw has a smaller id, every later one a
 * larger id, so the checker can recompute `expected` from the ledger exactly.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('stock_counts', (t) => {
    t.text('count_id').primary();
    t.text('location').notNullable().references('locations.code');
    t.timestamp('counted_at', { useTz: true }).notNullable();
    t.text('request_hash').notNullable();
    t.bigInteger('horizon');
    t.text('actor_role').notNullable();
    t.text('actor_name').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.createTable('stock_count_items', (t) => {
    t.text('count_id').notNullable().references('stock_counts.count_id').onDelete('CASCADE');
    t.integer('item_no').notNullable();
    t.text('sku').notNullable().references('products.sku').onDelete('CASCADE');
    t.bigInteger('counted').notNullable();
    t.bigInteger('expected').notNullable();
    t.bigInteger('variance').notNullable();
    t.primary(['count_id', 'sku']);
  });
  // A count sums the on-hand movements of each (SKU, location) since counted_at (at most 7 days back).
  await knex.raw(`CREATE INDEX stock_movements_sku_location_created ON stock_movements (sku, location, created_at)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP INDEX IF EXISTS stock_movements_sku_location_created`);
  await knex.schema.dropTable('stock_count_items');
  await knex.schema.dropTable('stock_counts');
}
