export * from './events.schemas';
export { addSkuEvents, listEvents, pruneEvents, stampSequences, startSequencer, type NewEvent } from './events.service';
