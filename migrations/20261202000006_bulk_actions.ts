import type { Knex } from 'knex';

/**
 * Bulk actions: the set of items matched when the action was created, each acted on at most once
 * (an item's state changes in the same transaction as the action on it), so a run that dies
 * mid-way is resumed by the next without repeating what was done.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('bulk_actions', (t) => {
    t.uuid('id').primary();
    t.text('action').notNullable();
    t.jsonb('filter').notNullable();
    t.text('reason');
    t.text('status').notNullable().defaultTo('running');
    t.integer('matched').notNullable().defaultTo(0);
    t.integer('done').notNullable().defaultTo(0);
    t.integer('skipped').notNullable().defaultTo(0);
    t.integer('failed').notNullable().defaultTo(0);
    t.text('actor_role').notNullable();
    t.text('actor_name').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('completed_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE bulk_actions
    ADD CONSTRAINT bulk_actions_action CHECK (action IN ('retry_orders', 'cancel_orders', 'resend_deliveries')),
    ADD CONSTRAINT bulk_actions_status CHECK (status IN ('running', 'completed'))`);
  await knex.raw(`CREATE INDEX bulk_actions_running ON bulk_actions (created_at) WHERE status = 'running'`);
  await knex.schema.createTable('bulk_action_items', (t) => {
    t.uuid('bulk_id').notNullable().references('bulk_actions.id').onDelete('CASCADE');
    t.integer('position').notNullable();
    t.text('item_id').notNullable();
    t.text('state').notNullable().defaultTo('pending');
    t.text('error');
    t.primary(['bulk_id', 'position']);
    t.unique(['bulk_id', 'item_id']);
  });
  await knex.raw(
    `ALTER TABLE bulk_action_items ADD CONSTRAINT bulk_items_state CHECK (state IN ('pending', 'done', 'skipped', 'failed'))`,
  );
  await knex.raw(`CREATE INDEX bulk_items_pending ON bulk_action_items (bulk_id, position) WHERE state = 'pending'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('bulk_action_items');
  await knex.schema.dropTable('bulk_actions');
}
