export * from './events.schemas';
export {
  addSkuEvents,
  EVENT_BODY_SQL,
  eventBody,
  type EventBodyParts,
  listEvents,
  pruneEvents,
  stampSequences,
  startSequencer,
  type NewEvent,
} from './events.service';
