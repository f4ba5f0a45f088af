import type { Knex } from 'knex';

/**
 * Inbound stock and backorder visibility.
 * - `inbound`: expected shipments per (SKU, location), `received` counted by the restock events
 *   that name them; `status` open | received | cancelled.
 * - `restock_events.inbound_id`: the inbound shipment a restock counts against (part of what an
 *   `event_id` means, with sku, quantity and location).
 * - `order_lines.queue_rank` / `queue_units_before` and `queue_offsets`: a waiting line's place in
 *   its SKU's queue, materialized in the transaction that changes that queue (position =
 *   queue_rank − offsets.lines, units ahead = queue_units_before − offsets.units), so reading an
 *   order costs O(its lines), never O(queue); serving the head moves only the offsets.
 * - a partial index on sales by time for the replenishment report.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('inbound', (t) => {
    t.text('inbound_id').primary();
    t.text('sku').notNullable().references('products.sku').onDelete('CASCADE');
    t.text('location').notNullable().references('locations.code');
    t.bigInteger('quantity').notNullable();
    t.bigInteger('received').notNullable().defaultTo(0);
    t.timestamp('expected_at', { useTz: true }).notNullable();
    t.text('status').notNullable().defaultTo('open');
    t.text('request_hash').notNullable();
    t.text('actor_role').notNullable();
    t.text('actor_name').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE inbound
    ADD CONSTRAINT inbound_status CHECK (status IN ('open', 'received', 'cancelled')),
    ADD CONSTRAINT inbound_quantity CHECK (quantity >= 1 AND received >= 0)`);
  // ETA reads a SKU's open shipments by expected_at; the list filters by SKU and status.
  await knex.raw(`CREATE INDEX inbound_open ON inbound (sku, expected_at, inbound_id) WHERE status = 'open'`);
  await knex.raw(`CREATE INDEX inbound_sku_status ON inbound (sku, status, expected_at, inbound_id)`);
  await knex.raw(`CREATE INDEX inbound_list ON inbound (expected_at, inbound_id)`);

  await knex.schema.alterTable('restock_events', (t) => {
    t.text('inbound_id').references('inbound.inbound_id');
  });

  await knex.schema.alterTable('order_lines', (t) => {
    t.bigInteger('queue_rank');
    t.bigInteger('queue_units_before');
  });
  await knex.schema.createTable('queue_offsets', (t) => {
    t.text('sku').primary().references('products.sku').onDelete('CASCADE');
    t.bigInteger('lines').notNullable().defaultTo(0);
    t.bigInteger('units').notNullable().defaultTo(0);
  });
  await knex.raw(`WITH q AS (
      SELECT order_id, sku, row_number() OVER w AS n,
             COALESCE(sum(quantity) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
        FROM order_lines WHERE waiting AND NOT reserved
      WINDOW w AS (PARTITION BY sku ORDER BY seq))
    UPDATE order_lines l SET queue_rank = q.n, queue_units_before = q.before
      FROM q WHERE l.order_id = q.order_id AND l.sku = q.sku`);

  await knex.raw(
    `CREATE INDEX stock_movements_sales ON stock_movements (created_at, sku, location) WHERE type = 'sale'`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS stock_movements_sales');
  await knex.schema.dropTable('queue_offsets');
  await knex.schema.alterTable('order_lines', (t) => {
    t.dropColumn('queue_rank');
    t.dropColumn('queue_units_before');
  });
  await knex.schema.alterTable('restock_events', (t) => {
    t.dropColumn('inbound_id');
  });
  await knex.schema.dropTable('inbound');
}
