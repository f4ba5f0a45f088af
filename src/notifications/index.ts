export * from './notifications.schemas';
export {
  createSenders,
  deliverEvent,
  DeliveryBusyError,
  listOrderNotifications,
  resendInUnit,
  resendNotification,
  webhookBody,
  type DeliveryResult,
  type Senders,
} from './notifications.service';
export { assertPublicTarget, DEV_WEBHOOK_SECRET, DeliveryError, signWebhook } from './webhook';
export { renderEmail } from './email';
