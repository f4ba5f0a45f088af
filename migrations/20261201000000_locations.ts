import type { Knex } from 'knex';

/**
 * Stock in several locations, orders shipped in parts, returns, and who did what.
 * - `locations`, with `main` always there; `stock_levels`: one versioned row per (SKU, location)
 *   with 0 ≤ reserved ≤ on_hand. The per-SKU `stock` row stays: it holds the SKU's totals (the
 *   sums of its levels, kept in the same statements) and `backordered`, the SKU's queue.
 * - `order_line_allocations`: where a line's units are reserved and shipped from.
 * - `shipments`, `returns` (idempotent by their ids); `order_lines.shipped` / `returned`.
 * - `location` and `actor` on movements, `actor` on history; new movement types and the
 *   `partially_shipped` status.
 * An existing single-location database moves to `main`: every stock row becomes its level there,
 * every reserved line an allocation there (a completed order's lines shipped from there).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('locations', (t) => {
    t.text('code').primary();
    t.text('name').notNullable();
    t.integer('priority').notNullable().defaultTo(100);
    t.boolean('active').notNullable().defaultTo(true);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE locations
    ADD CONSTRAINT locations_code CHECK (code ~ '^[A-Za-z0-9._-]{1,32}$'),
    ADD CONSTRAINT locations_priority CHECK (priority BETWEEN 0 AND 1000)`);
  await knex('locations').insert({ code: 'main', name: 'Main', priority: 100 });

  await knex.schema.createTable('stock_levels', (t) => {
    t.text('sku').notNullable().references('products.sku').onDelete('CASCADE');
    t.text('location').notNullable().references('locations.code');
    t.bigInteger('on_hand').notNullable().defaultTo(0);
    t.bigInteger('reserved').notNullable().defaultTo(0);
    t.bigInteger('version').notNullable().defaultTo(0);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['sku', 'location']);
    t.index(['location', 'sku']);
  });
  await knex.raw(
    `ALTER TABLE stock_levels ADD CONSTRAINT stock_levels_reserved_range CHECK (0 <= reserved AND reserved <= on_hand)`,
  );
  await knex.raw(`INSERT INTO stock_levels (sku, location, on_hand, reserved, version, updated_at)
    SELECT sku, 'main', on_hand, reserved, version, updated_at FROM stock`);

  await knex.schema.alterTable('products', (t) => {
    t.bigInteger('low_stock_threshold');
  });
  await knex.schema.alterTable('restock_events', (t) => {
    t.text('location').notNullable().defaultTo('main').references('locations.code');
  });

  await knex.schema.alterTable('order_lines', (t) => {
    t.bigInteger('shipped').notNullable().defaultTo(0);
    t.bigInteger('returned').notNullable().defaultTo(0);
  });
  await knex.schema.createTable('order_line_allocations', (t) => {
    t.uuid('order_id').notNullable();
    t.text('sku').notNullable();
    t.text('location').notNullable().references('locations.code');
    t.bigInteger('reserved').notNullable().defaultTo(0);
    t.bigInteger('shipped').notNullable().defaultTo(0);
    t.primary(['order_id', 'sku', 'location']);
    t.foreign(['order_id', 'sku']).references(['order_id', 'sku']).inTable('order_lines').onDelete('CASCADE');
    t.index(['sku', 'location']);
  });
  await knex.raw(
    `ALTER TABLE order_line_allocations ADD CONSTRAINT allocations_nonneg CHECK (reserved >= 0 AND shipped >= 0)`,
  );
  // Reserved lines are reserved at main; a completed order's lines were sold there: shipped.
  await knex.raw(`INSERT INTO order_line_allocations (order_id, sku, location, reserved, shipped)
    SELECT l.order_id, l.sku, 'main',
           CASE WHEN o.status = 'completed' THEN 0 ELSE l.quantity END,
           CASE WHEN o.status = 'completed' THEN l.quantity ELSE 0 END
      FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE l.reserved`);
  await knex.raw(
    `UPDATE order_lines l SET shipped = l.quantity FROM orders o WHERE o.id = l.order_id AND o.status = 'completed' AND l.reserved`,
  );

  await knex.schema.alterTable('stock_movements', (t) => {
    t.text('location').notNullable().defaultTo('main').references('locations.code');
    t.text('actor_role').notNullable().defaultTo('system');
    t.text('actor_name').notNullable().defaultTo('orderflow');
    t.index(['sku', 'location']);
  });
  await knex.raw(`ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_type, ADD CONSTRAINT stock_movements_type
    CHECK (type IN ('initial','receipt','reservation','release','sale','adjustment','return','count','transfer_out','transfer_in'))`);
  await knex.schema.alterTable('order_history', (t) => {
    t.text('actor_role').notNullable().defaultTo('system');
    t.text('actor_name').notNullable().defaultTo('orderflow');
  });
  await knex.raw(`ALTER TABLE orders DROP CONSTRAINT orders_status, ADD CONSTRAINT orders_status CHECK (status IN
    ('received','confirmed','awaiting_stock','partially_shipped','rejected','failed','cancelled','completed'))`);

  for (const table of ['shipments', 'returns']) {
    await knex.schema.createTable(table, (t) => {
      t.uuid('id').primary();
      t.text(table === 'shipments' ? 'shipment_id' : 'return_id')
        .notNullable()
        .unique();
      t.uuid('order_id').notNullable().references('orders.id').onDelete('CASCADE');
      if (table === 'shipments') {
        t.text('location').notNullable().references('locations.code');
        t.text('carrier');
        t.text('tracking');
      } else t.text('reason');
      t.jsonb('lines').notNullable();
      t.text('request_hash').notNullable();
      t.text('actor_role').notNullable();
      t.text('actor_name').notNullable();
      t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
      t.index(['order_id', 'created_at']);
    });
  }
  // An order fulfilled before locations shipped its lines from main: one shipment records it.
  await knex.raw(`INSERT INTO shipments (id, shipment_id, order_id, location, lines, request_hash, actor_role, actor_name, created_at)
    SELECT gen_random_uuid(), 'fulfil-' || o.id, o.id, 'main',
           jsonb_agg(jsonb_build_object('sku', l.sku, 'quantity', l.quantity) ORDER BY l.line_no), 'migrated', 'system', 'migration', o.updated_at
      FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE o.status = 'completed' AND l.reserved GROUP BY o.id, o.updated_at`);
  await knex.schema.createTable('transfers', (t) => {
    t.bigIncrements('id');
    t.text('sku').notNullable().references('products.sku').onDelete('CASCADE');
    t.text('from_location').notNullable().references('locations.code');
    t.text('to_location').notNullable().references('locations.code');
    t.bigInteger('quantity').notNullable();
    t.text('reason');
    t.text('actor_role').notNullable();
    t.text('actor_name').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  // Events of other subjects than an order transition (shipment.created, return.created) share the
  // per-order numbering; transition_no stays the order's event ordinal.
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('transfers');
  await knex.schema.dropTable('returns');
  await knex.schema.dropTable('shipments');
  await knex.raw(`ALTER TABLE orders DROP CONSTRAINT orders_status, ADD CONSTRAINT orders_status CHECK (status IN
    ('received','confirmed','awaiting_stock','rejected','failed','cancelled','completed'))`);
  await knex.schema.alterTable('order_history', (t) => {
    t.dropColumn('actor_role');
    t.dropColumn('actor_name');
  });
  await knex.raw(`DELETE FROM stock_movements WHERE type IN ('return','count','transfer_out','transfer_in')`);
  await knex.raw(`ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_type, ADD CONSTRAINT stock_movements_type
    CHECK (type IN ('initial','receipt','reservation','release','sale','adjustment'))`);
  await knex.schema.alterTable('stock_movements', (t) => {
    t.dropColumn('location');
    t.dropColumn('actor_role');
    t.dropColumn('actor_name');
  });
  await knex.schema.dropTable('order_line_allocations');
  await knex.schema.alterTable('order_lines', (t) => {
    t.dropColumn('shipped');
    t.dropColumn('returned');
  });
  await knex.schema.alterTable('restock_events', (t) => {
    t.dropColumn('location');
  });
  await knex.schema.alterTable('products', (t) => {
    t.dropColumn('low_stock_threshold');
  });
  await knex.schema.dropTable('stock_levels');
  await knex.schema.dropTable('locations');
}
