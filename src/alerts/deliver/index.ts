/**
 * Alert delivery: the transports that carry one fired alert to a receiver — a webhook (our JSON, Slack, Microsoft
 * Teams) or an e-mail through an SMTP relay. The outbox of alert rules (retries, backoff, dead letters) calls
 * deliver() once per attempt and reads the outcome: resolved = the receiver accepted the alert; a DeliveryError
 * says whether a retry can help (`retryable`, with `retryAfterMs` when the receiver asked for a pause).
 *
 * Every attempt of one alert carries the same idempotency key (AlertMessage.id): the webhook's Idempotency-Key
 * and X-Auditship-Alert-Id headers, the e-mail's Message-ID <id@auditship>, so that a receiver — or a person —
 * recognises the repeat that follows a lost answer. Every rendering is capped at MAX_ALERT_BYTES.
 *
 * Files: types.ts (the message, the destinations, DeliveryError), payload.ts (the formats and the cap),
 * webhook.ts, smtp.ts, config.ts (the config keys of a destination, for the one config schema).
 * Local receivers for tests are in test/alert-receivers/.
 */
import { deliverSmtp } from './smtp.js';
import { DeliveryError, type AlertMessage, type Destination } from './types.js';
import { deliverWebhook } from './webhook.js';

export { DeliveryError };
export type { AlertMessage, DeliveryErrorCode, Destination, SmtpDestination, WebhookDestination } from './types.js';
export { CUT_MARK, MAX_ALERT_BYTES, MAX_SUBJECT_CHARS, renderEmailBody, renderWebhookBody, emailSubject } from './payload.js';
export {
  DESTINATION_SPECS,
  SMTP_DESTINATION_FIELDS,
  SMTP_DESTINATION_SPEC,
  WEBHOOK_DESTINATION_FIELDS,
  WEBHOOK_DESTINATION_SPEC,
  parseHeaderLines,
  toSmtpDestination,
  toWebhookDestination,
  type SmtpDestinationOptions,
  type WebhookDestinationOptions,
} from './config.js';
export { deliverWebhook } from './webhook.js';
export { deliverSmtp, messageIdOf } from './smtp.js';

/**
 * Delivers one message; resolves when the receiver accepted it; rejects with DeliveryError (never echoing
 * secrets or the body). Honors signal and timeout_ms (a hanging receiver ends in a retryable DeliveryError at
 * the timeout).
 */
export function deliver(dest: Destination, msg: AlertMessage, opts: { signal?: AbortSignal } = {}): Promise<void> {
  switch (dest.type) {
    case 'webhook':
      return deliverWebhook(dest, msg, opts);
    case 'smtp':
      return deliverSmtp(dest, msg, opts);
    default: {
      const other: never = dest;
      return Promise.reject(new DeliveryError(`unknown destination type ${JSON.stringify((other as { type?: unknown }).type)}`, false, { code: 'config' }));
    }
  }
}
