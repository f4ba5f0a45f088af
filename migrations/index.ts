import type { Knex } from 'knex';
import * as init from './20261125000000_init';
import * as stockBigint from './20261126000000_stock_bigint';
import * as reprocessingIndex from './20261126000001_orders_reprocessing_index';
import * as locations from './20261201000000_locations';
import * as events from './20261202000000_events';
import * as processingAttempts from './20261202000005_processing_attempts';
import * as bulkActions from './20261202000006_bulk_actions';
import * as counts from './20261202000001_counts';
import * as inbound from './20261202000002_inbound';
import * as webhookEndpoints from './20261202000003_webhook_endpoints';
import * as intake from './20261202000004_intake';
import * as ledgerCheckpoints from './20261202000007_ledger_checkpoints';
import * as eventPayloadJson from './20261204000000_event_payload_json';
import * as idempotencyBodyJson from './20261204000001_idempotency_body_json';
import * as countSuperseded from './20261207000000_count_superseded';

/**
 * Every migration in order, imported statically so tsx, vitest and the compiled build load them
 * the same way. A new migration file must be added here (a unit test checks the folder against this list).
 */
export const MIGRATIONS: Record<string, Knex.Migration> = {
  '20261125000000_init': init,
  '20261126000000_stock_bigint': stockBigint,
  '20261126000001_orders_reprocessing_index': reprocessingIndex,
  '20261201000000_locations': locations,
  '20261202000000_events': events,
  '20261202000005_processing_attempts': processingAttempts,
  '20261202000006_bulk_actions': bulkActions,
  '20261202000001_counts': counts,
  '20261202000002_inbound': inbound,
  '20261202000003_webhook_endpoints': webhookEndpoints,
  '20261202000004_intake': intake,
  '20261202000007_ledger_checkpoints': ledgerCheckpoints,
  '20261204000000_event_payload_json': eventPayloadJson,
  '20261204000001_idempotency_body_json': idempotencyBodyJson,
  '20261207000000_count_superseded': countSuperseded,
};
