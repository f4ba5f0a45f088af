import type { Knex } from 'knex';

// Orders back in `received` after having been processed (edited, retried) keep their place in their
// SKUs' queues; allocation and processing look them up on every run, so they get an index of their
// own, small whatever the number of new orders waiting to be processed.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`CREATE INDEX orders_reprocessing ON orders (seq) WHERE status = 'received' AND attempts > 0`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX orders_reprocessing');
}
