import type { Knex } from 'knex';

/**
 * Webhook endpoints (operators' integrations), their deliveries and every delivery attempt.
 * - `webhook_endpoints`: a URL subscribed to event types (`{*}` = all), its `whsec_` secret and,
 *   for a while after a rotation, the previous one; `failing_since` is the first failed attempt
 *   since the last success (automatic disabling reads it).
 * - `endpoint_deliveries`: one row per (event, endpoint), like `notifications` per (event, channel);
 *   `seq` orders the delivery log (newest first) and is its cursor.
 * - `delivery_attempts`: one row per attempt of an endpoint delivery or a customer notification
 *   (`delivery_id` is the one or the other, `kind` says which): when, status code or error, duration.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('webhook_endpoints', (t) => {
    t.uuid('id').primary();
    t.text('url').notNullable();
    t.specificType('types', 'text[]').notNullable();
    t.text('description');
    t.text('status').notNullable().defaultTo('active');
    t.text('secret').notNullable();
    t.text('previous_secret');
    t.timestamp('previous_secret_expires_at', { useTz: true });
    t.timestamp('failing_since', { useTz: true });
    t.timestamp('disabled_at', { useTz: true });
    t.text('disabled_reason');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE webhook_endpoints
    ADD CONSTRAINT webhook_endpoints_status CHECK (status IN ('active', 'disabled')),
    ADD CONSTRAINT webhook_endpoints_types CHECK (cardinality(types) BETWEEN 1 AND 100)`);
  await knex.raw("CREATE INDEX webhook_endpoints_types ON webhook_endpoints USING gin (types) WHERE status = 'active'");

  await knex.schema.createTable('endpoint_deliveries', (t) => {
    t.uuid('id').primary();
    t.bigIncrements('seq', { primaryKey: false });
    t.uuid('event_id').notNullable().references('events.id').onDelete('CASCADE');
    t.uuid('endpoint_id').notNullable().references('webhook_endpoints.id').onDelete('CASCADE');
    t.text('status').notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('last_status_code');
    t.text('last_error');
    t.timestamp('delivered_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['event_id', 'endpoint_id']);
  });
  await knex.raw(`ALTER TABLE endpoint_deliveries
    ADD CONSTRAINT endpoint_deliveries_status CHECK (status IN ('pending', 'delivered', 'failed'))`);
  await knex.raw('CREATE INDEX endpoint_deliveries_log ON endpoint_deliveries (endpoint_id, seq)');
  await knex.raw(
    "CREATE INDEX endpoint_deliveries_pending ON endpoint_deliveries (endpoint_id) WHERE status = 'pending'",
  );

  await knex.schema.createTable('delivery_attempts', (t) => {
    t.bigIncrements('id');
    t.uuid('delivery_id').notNullable();
    t.text('kind').notNullable();
    t.uuid('event_id').notNullable().references('events.id').onDelete('CASCADE');
    t.integer('attempt_no').notNullable();
    t.timestamp('at', { useTz: true }).notNullable();
    t.integer('status_code');
    t.text('error');
    t.integer('duration_ms').notNullable();
    t.unique(['delivery_id', 'attempt_no']);
    t.index(['event_id']);
  });
  await knex.raw(`ALTER TABLE delivery_attempts
    ADD CONSTRAINT delivery_attempts_kind CHECK (kind IN ('notification', 'endpoint'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('delivery_attempts');
  await knex.schema.dropTable('endpoint_deliveries');
  await knex.schema.dropTable('webhook_endpoints');
}
