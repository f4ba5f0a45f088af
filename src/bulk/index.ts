export * from './bulk.schemas';
export {
  countBulk,
  createBulkAction,
  getBulkAction,
  listBulkActions,
  runBulkAction,
  runningBulkActions,
} from './bulk.service';
