/**
 * What an alert transport receives (an AlertMessage and a Destination) and how it fails (DeliveryError).
 * The outbox of alert rules codes against exactly these shapes; index.ts re-exports them.
 */

/** One alert, rendered by each transport in its own format. */
export interface AlertMessage {
  /** Idempotency key: stable across retries and restarts (e.g. "a1b2c3…"); receivers drop repeats by it. */
  id: string;
  /** The rule's name. */
  rule: string;
  /** One line, e.g. "auditship: failed-logins fired (7 events, user=alice)". */
  title: string;
  /** Plain-text body (already redacted by the caller; the transports still cap it). */
  text: string;
  /** E.g. {rule, source, matched, window, key, first, last, server}. */
  fields: Record<string, string | number | null>;
  /** ISO-8601. */
  firedAt: string;
  /** Up to a few example events (already redacted) as flat objects. */
  samples: Record<string, string | number | null>[];
}

/** An HTTP(S) endpoint that takes a JSON POST: our own format, a Slack incoming webhook or a Teams workflow. */
export type WebhookDestination = {
  type: 'webhook';
  name: string;
  url: string;
  format: 'json' | 'slack' | 'teams';
  headers: Record<string, string>;
  timeout_ms: number;
};

/** A mail relay (submission port) that forwards the alert as a plain-text e-mail. */
export type SmtpDestination = {
  type: 'smtp';
  name: string;
  host: string;
  port: number;
  security: 'starttls' | 'tls' | 'none';
  username?: string;
  password?: string;
  from: string;
  to: string[];
  timeout_ms: number;
  tls_reject_unauthorized: boolean;
  ca_file?: string;
};

export type Destination = WebhookDestination | SmtpDestination;

/** What went wrong, for callers that want more than `retryable` (metrics, the outbox's bookkeeping). */
export type DeliveryErrorCode =
  /** The receiver answered with an HTTP status or an SMTP reply that is not success. */
  | 'rejected'
  /** No connection, or the connection broke. */
  | 'connection'
  /** No answer within timeout_ms. */
  | 'timeout'
  /** The caller's signal aborted the delivery. */
  | 'aborted'
  /** TLS could not be set up (no STARTTLS offered, certificate not trusted, handshake failed). */
  | 'tls'
  /** The destination's settings cannot work (a bad URL or header, an unreadable ca_file). */
  | 'config';

/**
 * A delivery that did not happen. The message names the destination by its `name` and says what happened —
 * never the URL (webhook URLs carry secrets in their path), the password, or the alert's text.
 */
export class DeliveryError extends Error {
  /** From an HTTP Retry-After header (seconds or a date), when the receiver sent one. */
  declare readonly retryAfterMs?: number;
  readonly code: DeliveryErrorCode;
  /** The HTTP status or SMTP reply code, when the receiver answered. */
  declare readonly status?: number;

  constructor(
    message: string,
    readonly retryable: boolean,
    options: { code?: DeliveryErrorCode; retryAfterMs?: number; status?: number } = {},
  ) {
    // No `cause`: the errors of fetch and of the SMTP client may carry the URL or the server's words, and
    // whatever logs a DeliveryError could print its cause.
    super(message);
    this.name = 'DeliveryError';
    this.code = options.code ?? (retryable ? 'connection' : 'rejected');
    // Set only when known (declared fields), so that an error prints without `retryAfterMs: undefined`.
    if (options.retryAfterMs !== undefined) (this as { retryAfterMs?: number }).retryAfterMs = options.retryAfterMs;
    if (options.status !== undefined) (this as { status?: number }).status = options.status;
  }
}
