import type { Knex } from 'knex';

/**
 * One event record for everything the system announces (order transitions, shipments, returns,
 * inventory events), readable as a feed that never skips:
 * - `subject_type` / `subject_id`: what the event is about (`order` + order id, or `sku` + SKU);
 *   `subject_sequence` counts 1, 2, 3 … per subject with no gap, `previous_event_id` links to the
 *   subject's previous event. Both are written in the event's own transaction, under the subject's
 *   row lock (the order row; for a SKU the `event_subjects` counter row).
 * - `sequence`: NULL when written, stamped after commit by the sequencer, which runs one at a time
 *   (advisory lock) and numbers only events already committed. So sequence numbers become visible
 *   in increasing order, and a reader following `sequence > cursor` never skips one.
 * - `order_id` becomes nullable: an inventory event belongs to no order.
 * Existing events are order events: they get their subject from the order, their numbering from
 * `transition_no`, and sequence numbers in the order they were created.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE SEQUENCE IF NOT EXISTS event_sequence AS bigint');
  await knex.schema.alterTable('events', (t) => {
    t.text('subject_type');
    t.text('subject_id');
    t.integer('subject_sequence');
    t.uuid('previous_event_id');
    t.bigInteger('sequence');
  });
  // When the row was written (not when its transaction began): a subject's later event is always
  // written after its earlier one committed, so the sequencer numbers them in this order.
  await knex.raw('ALTER TABLE events ADD COLUMN written_at timestamptz NOT NULL DEFAULT clock_timestamp()');
  await knex.raw(`UPDATE events e SET subject_type = 'order', subject_id = e.order_id::text, subject_sequence = e.transition_no,
      previous_event_id = (SELECT p.id FROM events p WHERE p.order_id = e.order_id AND p.transition_no = e.transition_no - 1)`);
  await knex.raw(`UPDATE events e SET sequence = n.s FROM (
      SELECT id, nextval('event_sequence') AS s FROM (SELECT id FROM events ORDER BY created_at, order_id, transition_no) x) n
    WHERE e.id = n.id`);
  await knex.raw(`ALTER TABLE events
    ALTER COLUMN subject_type SET NOT NULL, ALTER COLUMN subject_id SET NOT NULL, ALTER COLUMN subject_sequence SET NOT NULL,
    ALTER COLUMN order_id DROP NOT NULL,
    ADD CONSTRAINT events_subject_type CHECK (subject_type IN ('order', 'sku')),
    ADD CONSTRAINT events_subject_sequence_positive CHECK (subject_sequence >= 1)`);
  await knex.raw('CREATE UNIQUE INDEX events_sequence ON events (sequence) WHERE sequence IS NOT NULL');
  await knex.raw('CREATE INDEX events_unsequenced ON events (written_at, subject_sequence, id) WHERE sequence IS NULL');
  await knex.raw('CREATE UNIQUE INDEX events_subject_numbering ON events (subject_type, subject_id, subject_sequence)');
  await knex.raw('CREATE INDEX events_subject_feed ON events (subject_id, sequence) WHERE sequence IS NOT NULL');
  await knex.raw('CREATE INDEX events_type_feed ON events (type, sequence) WHERE sequence IS NOT NULL');
  await knex.raw('CREATE INDEX events_created ON events (created_at)');

  // The numbering of subjects that have no row of their own to count on (a SKU's inventory events).
  await knex.schema.createTable('event_subjects', (t) => {
    t.text('subject_type').notNullable();
    t.text('subject_id').notNullable();
    t.integer('last_sequence').notNullable().defaultTo(0);
    t.uuid('last_event_id');
    t.primary(['subject_type', 'subject_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('event_subjects');
  await knex.raw('DELETE FROM events WHERE order_id IS NULL');
  for (const i of [
    'events_sequence',
    'events_unsequenced',
    'events_subject_numbering',
    'events_subject_feed',
    'events_type_feed',
    'events_created',
  ])
    await knex.raw(`DROP INDEX IF EXISTS ${i}`);
  await knex.raw(`ALTER TABLE events DROP CONSTRAINT events_subject_type, DROP CONSTRAINT events_subject_sequence_positive,
    ALTER COLUMN order_id SET NOT NULL`);
  await knex.schema.alterTable('events', (t) => {
    t.dropColumn('subject_type');
    t.dropColumn('subject_id');
    t.dropColumn('subject_sequence');
    t.dropColumn('previous_event_id');
    t.dropColumn('sequence');
    t.dropColumn('written_at');
  });
  await knex.raw('DROP SEQUENCE IF EXISTS event_sequence');
}
