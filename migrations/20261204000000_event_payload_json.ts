import type { Knex } from 'knex';

/**
 * `events.payload` becomes `json`, as `orders.metadata` is: jsonb stores an object with its keys
 * sorted, so an order's metadata given as {"channel":"web","a":"b"} came back from the feed and in
 * every webhook body as {"a":"b","channel":"web"}, while GET /v1/orders/:id (json) kept it as
 * given. json keeps the text as written; nothing queries inside a payload on a hot path (only
 * `->` reads, which json has too). Events written before this keep the sorted order they were
 * stored with: jsonb did not keep the original.
 *
 * The change rewrites the table under an exclusive lock, in time proportional to the events kept
 * (EVENT_RETENTION_DAYS); nothing writes an event meanwhile, so run it in a quiet moment.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE events ALTER COLUMN payload TYPE jsonb USING payload::jsonb');
}
