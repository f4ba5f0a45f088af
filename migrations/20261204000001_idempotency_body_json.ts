import type { Knex } from 'knex';

/**
 * `idempotency_keys.response_body` becomes `json`, as `events.payload` did: jsonb stores objects
 * with their keys sorted, so a replayed POST /v1/customers answered its customer with every key
 * (metadata's too) in another order than the first answer. json keeps the text as written. Bodies
 * stored before this keep the sorted order they were stored with; keys are pruned after 48 hours,
 * so the table is small and the rewrite short.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE idempotency_keys ALTER COLUMN response_body TYPE json USING response_body::json');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE idempotency_keys ALTER COLUMN response_body TYPE jsonb USING response_body::jsonb');
}
