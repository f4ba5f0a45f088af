import type { Knex } from 'knex';

// The whole data model the contract implies. PostgreSQL is the record; Redis only transports ids.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE SEQUENCE IF NOT EXISTS order_seq AS bigint');

  await knex.schema.createTable('customers', (t) => {
    t.uuid('id').primary();
    t.text('email').notNullable();
    t.text('name').notNullable();
    t.text('phone');
    t.text('webhook_url');
    t.boolean('blocked').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('CREATE UNIQUE INDEX customers_email_unique ON customers (lower(email))');

  await knex.schema.createTable('products', (t) => {
    t.text('sku').primary();
    t.text('name').notNullable();
    t.bigInteger('price_cents').notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw('ALTER TABLE products ADD CONSTRAINT products_price_nonneg CHECK (price_cents >= 0)');

  // One versioned row per SKU: every update is `WHERE sku = ? AND version = ?`.
  await knex.schema.createTable('stock', (t) => {
    t.text('sku').primary().references('products.sku').onDelete('CASCADE');
    t.integer('on_hand').notNullable().defaultTo(0);
    t.integer('reserved').notNullable().defaultTo(0);
    t.integer('backordered').notNullable().defaultTo(0);
    t.integer('version').notNullable().defaultTo(0);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE stock
    ADD CONSTRAINT stock_reserved_range CHECK (0 <= reserved AND reserved <= on_hand),
    ADD CONSTRAINT stock_backordered_nonneg CHECK (backordered >= 0)`);

  // The ledger. quantity is the signed change of on_hand for initial/receipt/sale/adjustment
  // (sale is negative) and the signed change of reserved for reservation/release.
  await knex.schema.createTable('stock_movements', (t) => {
    t.bigIncrements('id');
    t.text('sku').notNullable().references('products.sku').onDelete('CASCADE');
    t.text('type').notNullable();
    t.integer('quantity').notNullable();
    t.uuid('order_id');
    t.text('event_id');
    t.text('reason');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['sku', 'type']);
    t.index(['order_id']);
  });
  await knex.raw(`ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_type
    CHECK (type IN ('initial','receipt','reservation','release','sale','adjustment'))`);

  // No foreign key to customers: intake validates shape only, the worker rejects unknown customers.
  await knex.schema.createTable('orders', (t) => {
    t.uuid('id').primary();
    t.bigInteger('seq').notNullable().unique().defaultTo(knex.raw("nextval('order_seq')"));
    t.uuid('customer_id').notNullable();
    t.text('status').notNullable().defaultTo('received');
    t.text('status_reason');
    t.text('on_insufficient_stock').notNullable().defaultTo('backorder');
    t.text('external_ref');
    t.bigInteger('total_cents');
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('transitions').notNullable().defaultTo(0);
    t.timestamp('awaiting_since', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['customer_id', 'seq']);
    t.index(['status', 'seq']);
  });
  await knex.raw(`ALTER TABLE orders ADD CONSTRAINT orders_status CHECK (status IN
    ('received','confirmed','awaiting_stock','rejected','failed','cancelled','completed'))`);
  await knex.raw(`CREATE INDEX orders_received_updated ON orders (updated_at) WHERE status = 'received'`);
  await knex.raw(`CREATE INDEX orders_awaiting_since ON orders (awaiting_since) WHERE status = 'awaiting_stock'`);

  // A line is reserved whole or not at all; a waiting line sits in its SKU's queue at the order's seq.
  await knex.schema.createTable('order_lines', (t) => {
    t.uuid('order_id').notNullable().references('orders.id').onDelete('CASCADE');
    t.integer('line_no').notNullable();
    t.text('sku').notNullable();
    t.integer('quantity').notNullable();
    t.bigInteger('unit_price_cents');
    t.boolean('reserved').notNullable().defaultTo(false);
    t.boolean('waiting').notNullable().defaultTo(false);
    t.bigInteger('seq').notNullable();
    t.primary(['order_id', 'sku']);
  });
  // FIFO allocation reads only the head of one SKU's queue.
  await knex.raw(`CREATE INDEX order_lines_waiting_fifo ON order_lines (sku, seq)
    WHERE waiting AND NOT reserved`);
  await knex.raw(`CREATE INDEX order_lines_sku ON order_lines (sku, seq)`);

  await knex.schema.createTable('order_history', (t) => {
    t.bigIncrements('id');
    t.uuid('order_id').notNullable().references('orders.id').onDelete('CASCADE');
    t.text('status').notNullable();
    t.text('detail');
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['order_id', 'id']);
  });

  await knex.schema.createTable('idempotency_keys', (t) => {
    t.text('principal').notNullable();
    t.text('key').notNullable();
    t.text('request_hash').notNullable();
    t.integer('status_code');
    t.jsonb('response_body');
    t.uuid('order_id');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['principal', 'key']);
    t.index(['created_at']);
  });

  // Events are written in the transaction of the transition they describe: one per transition.
  await knex.schema.createTable('events', (t) => {
    t.uuid('id').primary();
    t.uuid('order_id').notNullable().references('orders.id').onDelete('CASCADE');
    t.integer('transition_no').notNullable();
    t.text('type').notNullable();
    t.jsonb('payload').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // Set when every channel is delivered or failed (or there is none): the reconciler re-enqueues the rest.
    t.timestamp('settled_at', { useTz: true });
    t.unique(['order_id', 'transition_no']);
  });
  await knex.raw('CREATE INDEX events_unsettled ON events (created_at) WHERE settled_at IS NULL');

  // Jobs to publish to BullMQ; a relay publishes rows whose publish after commit did not happen.
  await knex.schema.createTable('outbox', (t) => {
    t.bigIncrements('id');
    t.text('queue').notNullable();
    t.text('job_name').notNullable();
    t.text('job_id').notNullable();
    t.jsonb('data').notNullable();
    // Re-processing (edit, retry, resend) must replace a finished job that still holds the same id.
    t.boolean('replace_finished').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('published_at', { useTz: true });
  });
  await knex.raw('CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL');

  await knex.schema.createTable('notifications', (t) => {
    t.uuid('id').primary();
    t.uuid('event_id').notNullable().references('events.id').onDelete('CASCADE');
    t.uuid('order_id').notNullable();
    t.text('channel').notNullable();
    t.text('target').notNullable();
    t.text('status').notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('last_error');
    t.timestamp('delivered_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['event_id', 'channel']);
    t.index(['order_id']);
  });

  await knex.schema.createTable('restock_events', (t) => {
    t.text('event_id').primary();
    t.text('sku').notNullable();
    t.integer('quantity').notNullable();
    t.timestamp('occurred_at', { useTz: true });
    t.timestamp('received_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('applied_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'restock_events',
    'notifications',
    'outbox',
    'events',
    'idempotency_keys',
    'order_history',
    'order_lines',
    'orders',
    'stock_movements',
    'stock',
    'products',
    'customers',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
  await knex.raw('DROP SEQUENCE IF EXISTS order_seq');
}
