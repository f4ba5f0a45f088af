import nodemailer from 'nodemailer';
import { DeliveryError } from './webhook';
import type { EventPayload } from './notifications.schemas';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STATUS_TEXT: Record<string, string> = {
  confirmed: 'is confirmed: every item is reserved for you',
  awaiting_stock: 'is waiting for stock; we will tell you when it is confirmed',
  rejected: 'could not be accepted',
  failed: 'could not be processed; our team will look at it',
  cancelled: 'has been cancelled',
  completed: 'has been fulfilled',
  received: 'has been received and is being processed',
};

/** A short plain-text and HTML message naming the order and its new status. */
export function renderEmail(event: EventPayload): { subject: string; text: string; html: string } {
  const o = event.data.order;
  const said = STATUS_TEXT[o.status] ?? `is now ${o.status}`;
  const reason = o.status_reason ? ` (${o.status_reason})` : '';
  const lines = o.lines.map((l) => `  ${l.quantity} x ${l.sku}`).join('\n');
  const total = o.total_cents == null ? '' : `Total: ${(o.total_cents / 100).toFixed(2)}\n`;
  const text = `Your order ${o.id} ${said}${reason}.\n\nStatus: ${o.status}\n${lines}\n${total}\nReference: ${event.id}\n`;
  const html =
    `<p>Your order <strong>${escapeHtml(o.id)}</strong> ${escapeHtml(said)}${escapeHtml(reason)}.</p>` +
    `<p>Status: <strong>${escapeHtml(o.status)}</strong></p>` +
    `<ul>${o.lines.map((l) => `<li>${l.quantity} x ${escapeHtml(l.sku)}</li>`).join('')}</ul>` +
    (total ? `<p>${escapeHtml(total.trim())}</p>` : '') +
    `<p style="color:#777">Reference: ${escapeHtml(event.id)}</p>`;
  return { subject: `Order ${o.id}: ${o.status.replace('_', ' ')}`, text, html };
}

/** Adds connection/greeting/socket timeouts to the SMTP URL unless it sets its own. */
function withTimeouts(smtpUrl: string, timeoutMs: number): string {
  const u = new URL(smtpUrl);
  for (const k of ['connectionTimeout', 'greetingTimeout', 'socketTimeout'])
    if (!u.searchParams.has(k)) u.searchParams.set(k, String(timeoutMs));
  return u.toString();
}

export interface Mailer {
  send(to: string, event: EventPayload): Promise<void>;
}

/** nodemailer over SMTP_URL. The Message-ID is derived from the event id, so a resend is recognisable. */
export function createMailer(smtpUrl: string, from: string, timeoutMs: number): Mailer {
  const transport = nodemailer.createTransport(withTimeouts(smtpUrl, timeoutMs));
  return {
    async send(to, event) {
      try {
        await transport.sendMail({ from, to, messageId: `<${event.id}@orderflow>`, ...renderEmail(event) });
      } catch (err) {
        const e = err as { code?: string; responseCode?: number; message?: string };
        const code = e.responseCode ? `SMTP ${e.responseCode}` : e.code;
        throw new DeliveryError(`${code ? `${code}: ` : ''}${e.message ?? String(err)}`.slice(0, 500), { cause: err });
      }
    },
  };
}
