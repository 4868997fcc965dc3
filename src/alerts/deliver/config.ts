/**
 * The config keys of an alert destination, in the vocabulary of every connector (core/config-spec.ts), for the
 * alerts section of the one config schema. `${VAR}` interpolation (for url, headers and password) is the
 * loader's; these specs only say what a key is.
 */
import type { ConnectorSpec, ObjectSpec, Options } from '../../core/config-spec.js';
import type { SmtpDestination, WebhookDestination } from './types.js';

export const WEBHOOK_DESTINATION_FIELDS = {
  url: {
    type: 'url',
    schemes: ['https', 'http'],
    required: true,
    example: '${SLACK_WEBHOOK_URL}',
    description:
      "The endpoint that takes the POST. Slack's and Teams' webhook URLs are themselves the credential: take it from the environment; it is never logged, and errors name the destination, not the URL.",
  },
  format: {
    type: 'enum',
    values: ['json', 'slack', 'teams'],
    default: 'json',
    description:
      "json: auditship's own {id, rule, title, text, fields, fired_at, samples}; slack: a Slack incoming-webhook message (Block Kit); teams: an Adaptive Card for a Microsoft Teams Workflows webhook.",
  },
  headers: {
    type: 'string_or_list',
    example: 'Authorization: Bearer ${ALERT_TOKEN}',
    description:
      'Extra request headers, each "Name: value" (e.g. an Authorization header; never logged). Content-Type, Idempotency-Key and X-Auditship-Alert-Id are always set by auditship.',
  },
  timeout_ms: {
    type: 'integer',
    default: 10000,
    minimum: 100,
    description: 'A request without an answer for this long fails and is retried.',
  },
} as const satisfies ObjectSpec;

export const SMTP_DESTINATION_FIELDS = {
  host: { type: 'string', required: true, example: 'smtp.example.com', description: 'The mail relay (submission server).' },
  port: { type: 'integer', default: 587, minimum: 1, description: 'Its port: 587 for STARTTLS, 465 for implicit TLS, 25 for an internal relay.' },
  security: {
    type: 'enum',
    values: ['starttls', 'tls', 'none'],
    default: 'starttls',
    description:
      'starttls: upgrade with STARTTLS and refuse to send when the server does not offer it; tls: TLS from the first byte (port 465); none: plain text (an internal relay only: a password would travel in clear).',
  },
  username: { type: 'string', example: 'alerts@example.com', description: 'AUTH PLAIN or LOGIN with this user; none when absent.' },
  password: { type: 'string', example: '${SMTP_PASSWORD}', description: 'The password for username (take it from the environment; it is never logged).' },
  from: { type: 'string', required: true, example: 'auditship <alerts@example.com>', description: 'The sender address (header and envelope).' },
  to: { type: 'string_or_list', required: true, example: 'dba-oncall@example.com', description: 'Recipient address, or a list of them.' },
  timeout_ms: {
    type: 'integer',
    default: 30000,
    minimum: 100,
    description: 'The whole exchange (connect, TLS, AUTH, DATA) must end within this; otherwise it fails and is retried.',
  },
  tls_reject_unauthorized: {
    type: 'boolean',
    default: true,
    description: "Check the server's certificate (chain and host name). Turn off only for a test relay; rather give its CA in ca_file.",
  },
  ca_file: {
    type: 'string',
    example: '/etc/ssl/certs/internal-ca.pem',
    description: "A PEM file of the CA(s) that signed the server's certificate, instead of the system's.",
  },
} as const satisfies ObjectSpec;

export const WEBHOOK_DESTINATION_SPEC = {
  kind: 'webhook',
  description: 'POSTs each alert as JSON to an HTTP(S) endpoint: our own format, Slack or Microsoft Teams.',
  fields: WEBHOOK_DESTINATION_FIELDS,
} as const satisfies ConnectorSpec;

export const SMTP_DESTINATION_SPEC = {
  kind: 'smtp',
  description: 'Sends each alert as a plain-text e-mail through an SMTP relay.',
  fields: SMTP_DESTINATION_FIELDS,
} as const satisfies ConnectorSpec;

/** The destination kinds by `type`, in the shape config/load.ts's checkConnector takes. */
export const DESTINATION_SPECS = { webhook: { spec: WEBHOOK_DESTINATION_SPEC }, smtp: { spec: SMTP_DESTINATION_SPEC } } as const;

export type WebhookDestinationOptions = Options<typeof WEBHOOK_DESTINATION_SPEC>;
export type SmtpDestinationOptions = Options<typeof SMTP_DESTINATION_SPEC>;

/** "Name: value" lines as headers; a line without a colon or name is a problem (the value is not quoted). */
export function parseHeaderLines(lines: readonly string[], path: string, problems: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  lines.forEach((line, i) => {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      problems.push(`${path}[${i}]: expected "Name: value" with an HTTP header name before the colon`);
      return;
    }
    headers[name] = line.slice(colon + 1).trim();
  });
  return headers;
}

/** The Destination deliver() takes, from a validated webhook section named `name`. */
export function toWebhookDestination(name: string, o: WebhookDestinationOptions, path: string, problems: string[]): WebhookDestination {
  return {
    type: 'webhook',
    name,
    url: o.url,
    format: o.format,
    headers: parseHeaderLines(o.headers ?? [], `${path}.headers`, problems),
    timeout_ms: o.timeout_ms,
  };
}

/** The Destination deliver() takes, from a validated smtp section named `name`. */
export function toSmtpDestination(name: string, o: SmtpDestinationOptions): SmtpDestination {
  return {
    type: 'smtp',
    name,
    host: o.host,
    port: o.port,
    security: o.security,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    from: o.from,
    to: o.to,
    timeout_ms: o.timeout_ms,
    tls_reject_unauthorized: o.tls_reject_unauthorized,
    ...(o.ca_file !== undefined ? { ca_file: o.ca_file } : {}),
  };
}
