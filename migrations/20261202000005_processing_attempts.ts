import type { Knex } from 'knex';

/**
 * Each run of an order's processing, kept in PostgreSQL so an order's timeline outlives Redis
 * (BullMQ forgets a job's attempts when Redis loses its data or prunes the job): its number for
 * that order, the outcome (the status it reached, `error` for a run that failed and will be
 * retried, `failed` for the last), the error, and how long it took.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('processing_attempts', (t) => {
    t.bigIncrements('id');
    t.uuid('order_id').notNullable().references('orders.id').onDelete('CASCADE');
    t.integer('attempt').notNullable();
    t.text('outcome').notNullable();
    t.text('error');
    t.integer('duration_ms');
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['order_id', 'id']);
  });
  // /metrics counts pending and failed notifications at every scrape: from these, not the history.
  await knex.raw(`CREATE INDEX notifications_pending ON notifications (created_at) WHERE status = 'pending'`);
  await knex.raw(`CREATE INDEX notifications_failed ON notifications (created_at) WHERE status = 'failed'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS notifications_pending');
  await knex.raw('DROP INDEX IF EXISTS notifications_failed');
  await knex.schema.dropTable('processing_attempts');
}
