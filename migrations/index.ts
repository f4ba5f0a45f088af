import type { Knex } from 'knex';
import * as init from './20261125000000_init';

/**
 * Every migration in order, imported statically so tsx, vitest and the compiled build load them
 * the same way. A new migration file must be added here (a unit test checks the folder against this list).
 */
export const MIGRATIONS: Record<string, Knex.Migration> = {
  '20261125000000_init': init,
};
