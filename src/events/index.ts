export * from './events.schemas';
export {
  addSkuEvents,
  EVENT_BODY_SQL,
  listEvents,
  pruneEvents,
  stampSequences,
  startSequencer,
  type NewEvent,
} from './events.service';
