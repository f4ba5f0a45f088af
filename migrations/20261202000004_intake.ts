import type { Knex } from 'knex';

/**
 * Intake, part 2: metadata on orders and customers; who placed an order (the API key's name), so
 * that `external_ref` is unique per key name; and the indexes behind the order queries.
 *
 * - `metadata` is `json`, not `jsonb`: json keeps the text as given (key order included), which is
 *   what the API promises to return; nothing queries inside it.
 * - `orders.key_name` is set at intake from now on. Orders from before have none and are left out
 *   of the unique index (partial: `key_name IS NOT NULL`), so duplicates among old rows cannot
 *   break it, and an old order never blocks a new one.
 * - pg_trgm serves the substring filter `reason` (and the e-mail in `q`) when the extension can
 *   be created here; without it the filters still work (a scan bounded by the other filters and
 *   the page), see docs/operations.md.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE orders ADD COLUMN metadata json NOT NULL DEFAULT '{}'::json, ADD COLUMN key_name text`);
  await knex.raw(`ALTER TABLE customers ADD COLUMN metadata json NOT NULL DEFAULT '{}'::json`);
  await knex.raw(`CREATE UNIQUE INDEX orders_external_ref_per_key ON orders (key_name, external_ref)
    WHERE key_name IS NOT NULL AND external_ref IS NOT NULL`);
  // GET /v1/orders?external_ref= (any key name, old rows too), created_from/to, updated_since.
  await knex.raw(`CREATE INDEX orders_external_ref ON orders (external_ref) WHERE external_ref IS NOT NULL`);
  await knex.raw(`CREATE INDEX orders_created_at ON orders (created_at)`);
  await knex.raw(`CREATE INDEX orders_updated_at ON orders (updated_at)`);
  // The extension may be refused (no contrib, no privilege): then the trigram index is skipped.
  await knex.raw(`DO $$
    BEGIN
      BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
      EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm is not available (%): reason filters scan', SQLERRM;
      END;
      IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX orders_status_reason_trgm ON orders USING gin (status_reason gin_trgm_ops)';
      END IF;
    END $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS orders_status_reason_trgm');
  await knex.raw('DROP INDEX orders_updated_at, orders_created_at, orders_external_ref, orders_external_ref_per_key');
  await knex.raw('ALTER TABLE customers DROP COLUMN metadata');
  await knex.raw('ALTER TABLE orders DROP COLUMN metadata, DROP COLUMN key_name');
}
