import type { Knex } from 'knex';

// Stock figures as bigint. As integers, `on_hand` overflowed at 2,147,483,647: restocks of up to
// 1,000,000 per event and 1,000 events per request were accepted (202) and then could never be
// applied, their jobs retrying forever. `version` too: a hot SKU updated a thousand times a second
// would run out of integer versions in about 25 days. bigint values reach JavaScript as numbers
// (src/db.ts), exact up to 2^53 − 1.
const COLUMNS = ['on_hand', 'reserved', 'backordered', 'version'];

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE stock ${COLUMNS.map((c) => `ALTER COLUMN ${c} TYPE bigint`).join(', ')}`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE stock ${COLUMNS.map((c) => `ALTER COLUMN ${c} TYPE integer`).join(', ')}`);
}
