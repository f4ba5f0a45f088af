export * from './notifications.schemas';
export * from './endpoints.schemas';
export {
  createSenders,
  deliverEvent,
  DeliveryBusyError,
  failedDeliveriesOf,
  listOrderNotifications,
  resendFailedDeliveries,
  resendInUnit,
  resendNotification,
  webhookBody,
  type DeliveryResult,
  type Senders,
} from './notifications.service';
export {
  countDisabledEndpoints,
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listDeliveries,
  listEndpoints,
  recoverEndpoint,
  requeueRecovery,
  rotateSecret,
  SECRET_OVERLAP_HOURS,
  updateEndpoint,
} from './endpoints.service';
export { recoverDeliveries } from './recovery';
export { assertPublicTarget, DEV_WEBHOOK_SECRET, DeliveryError, refusePrivateTarget, signWebhook } from './webhook';
export { renderEmail } from './email';
