/**
 * Every queue's name, job name and payload in one place: the contract between the code that asks
 * for work (an outbox row) and the workers that do it. Plain data, so the domain can name a job
 * without importing BullMQ. Payloads carry ids only: PostgreSQL holds the data.
 */
export const QUEUES = {
  orders: 'orders',
  restocks: 'restocks',
  notifications: 'notifications',
  maintenance: 'maintenance',
  bulk: 'bulk',
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

export interface OrderJob {
  orderId: string;
  /** Set on a failed job an operator retries in the board: who, for the order's history (change 2). */
  retriedBy?: { role: string; name: string };
}
export interface RestockJob {
  eventId: string;
}
export interface NotificationJob {
  eventId: string;
}
/** Job `recover-endpoint` (queue notifications): send what a webhook endpoint missed since `since`. */
export interface RecoverEndpointJob {
  endpointId: string;
  since: string;
}

export interface BulkJob {
  bulkId: string;
}

export const JOB = {
  processOrder: 'process-order',
  applyRestock: 'apply-restock',
  deliver: 'deliver',
  recoverEndpoint: 'recover-endpoint',
  reconcile: 'reconcile',
  expireBackorders: 'expire-backorders',
  pruneRecords: 'prune-records',
  checkpointLedger: 'checkpoint-ledger',
  runBulkAction: 'run-bulk-action',
} as const;
