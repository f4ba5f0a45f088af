export * from './bulk.schemas';
export { countBulk, createBulkAction, getBulkAction, runBulkAction, runningBulkActions } from './bulk.service';
