import { z } from 'zod';
import type { Order } from '../orders';

/** A time as sent (ISO 8601, UTC); `format: date-time` in the OpenAPI document. */
const timestamp = z.string().meta({ format: 'date-time' });

export const CHANNELS = ['webhook', 'email'] as const;
export type Channel = (typeof CHANNELS)[number];
export const NOTIFICATION_STATUSES = ['pending', 'delivered', 'failed'] as const;

/** What is sent: the event as written with its transition (the webhook body, exactly). */
export interface EventPayload {
  id: string;
  type: string;
  created_at: string;
  subject?: { type: 'order' | 'sku'; id: string };
  subject_sequence?: number;
  previous_event_id?: string | null;
  data: { order: Order };
}

/** One channel of one event, as GET /v1/orders/:id/notifications shows it. */
export const notificationSchema = z.object({
  id: z.uuid(),
  event_id: z.uuid(),
  event_type: z.string(),
  channel: z.enum(CHANNELS),
  target: z.string(),
  status: z.enum(NOTIFICATION_STATUSES),
  attempts: z.number().int(),
  last_error: z.string().nullable(),
  delivered_at: timestamp.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
});
export type Notification = z.infer<typeof notificationSchema>;

export const orderNotificationsSchema = z.object({ data: z.array(notificationSchema) });
