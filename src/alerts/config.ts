/**
 * The `alerts` section of the config: named destinations (webhook, smtp: their keys come from the transports,
 * deliver/config.ts), rules over the events a pipeline stores, and how deliveries are retried. Its keys are
 * declared here once (`ALERT_RULE_FIELDS`, `ALERT_DELIVERY_FIELDS`) and reach validation (config/load.ts), the
 * example config and the reference docs (config/render.ts) from here.
 *
 * A rule is checked against the source it reads: the filter keys and `by` keys each source has (rules.ts), the
 * destinations named, and the pipelines it may apply to — a pgaudit rule needs the events in DuckDB, so a pipeline
 * whose duckdb sink has store_events: false cannot take one.
 */
import type { ObjectSpec, SectionOptions } from '../core/config-spec.js';
import { ALERT_SOURCES, GROUP_KEYS, parseRuleFilter, type AlertSource, type RuleFilter } from './rules.js';
import {
  SMTP_DESTINATION_FIELDS,
  toSmtpDestination,
  toWebhookDestination,
  WEBHOOK_DESTINATION_FIELDS,
  type SmtpDestinationOptions,
  type WebhookDestinationOptions,
} from './deliver/config.js';
import type { Destination } from './deliver/index.js';

/** The keys of one rule (a list item of alerts.rules). */
export const ALERT_RULE_FIELDS = {
  name: {
    type: 'string',
    required: true,
    example: 'failed-logins',
    description: "The rule's name (letters, digits, _ . -), unique: it names the alert, and it is part of each alert's idempotency key.",
  },
  source: {
    type: 'enum',
    values: ALERT_SOURCES,
    required: true,
    example: 'logon_failures',
    description:
      'What the rule reads, as the pipelines store it: pgaudit (audit events of pg_logs and rds_logs pipelines), logon_failures (their failed logins), row_changes (pg_audit_table), app_events (sql_outbox, django_auditlog).',
  },
  filter: {
    type: 'string',
    example: 'class=DDL&object=salary',
    description:
      "Which events match, in the terms of the UI's URL: KEY=VALUE joined by &, a comma for several values (OR), URL-encoded. pgaudit: server, user, database, application, client, class, command, object (substring), outcome (success, error), text (substring of the statement; q also works). row_changes: server, table (TABLE or SCHEMA.TABLE), action (INSERT, UPDATE, DELETE, TRUNCATE), user, application, client, text (row data, changed fields, query). app_events: source (the pipeline's name), table, actor, operation, text (the message). logon_failures: server, user, database, client, text (reason and detail). Text and object match case-insensitively; the rest exactly. No filter: every event.",
  },
  count: {
    type: 'integer',
    minimum: 1,
    example: 5,
    description:
      'A threshold: fire when this many matching events of one key (by) fall in one window (with window). Fires once per key and window, when the count is reached — not once per event.',
  },
  window: {
    type: 'string',
    example: '5m',
    description:
      'With count: the window, e.g. 30s, 5m, 1h, 1d. Windows are aligned to the clock by event time (a 5m window runs :00–:05, :05–:10 …), so a burst that straddles a boundary counts in two windows.',
  },
  by: {
    type: 'string_or_list',
    example: 'user',
    description:
      'With count, or cooldown: what a key is — pgaudit: server, user, database, application, client, class, command, object; row_changes: server, table, action, user, application, client; app_events: source, table, actor, operation; logon_failures: server, user, database, client (client_addr also works). Default: one key for the whole rule.',
  },
  cooldown: {
    type: 'string',
    example: '30m',
    description:
      'At most one alert per key (by) in each period of this length (aligned to the clock by event time). Without it a filter rule fires once per matching event, and a threshold rule once per window. With count, at least as long as window.',
  },
  to: {
    type: 'string_or_list',
    required: true,
    example: 'security-mail',
    description: 'The destinations (names under alerts.destinations) each alert is delivered to.',
  },
  pipelines: {
    type: 'string_or_list',
    example: 'db1',
    description: "The pipelines whose events the rule reads; default: every pipeline of the rule's source.",
  },
} as const satisfies ObjectSpec;

/** The keys of alerts.delivery: how the outbox of alerts is delivered. */
export const ALERT_DELIVERY_FIELDS = {
  concurrency: { type: 'integer', default: 4, minimum: 1, description: 'Deliveries in flight at once (per DuckDB store).' },
  max_attempts: {
    type: 'integer',
    default: 10,
    minimum: 1,
    description:
      'Attempts of a delivery before it becomes a dead letter (`auditship status` lists them). A receiver that refuses for good (an HTTP 4xx other than 408 and 429, an SMTP 5xx reply, a bad setting) dead-letters it at once.',
  },
  backoff_initial_ms: {
    type: 'integer',
    default: 5000,
    minimum: 1,
    description:
      'The wait before the second attempt; it doubles with each attempt (with jitter: 50–100 % of it), up to backoff_max_ms. A Retry-After of the receiver is respected.',
  },
  backoff_max_ms: { type: 'integer', default: 900000, minimum: 1, description: 'The longest wait between two attempts.' },
  poll_interval_ms: {
    type: 'integer',
    default: 1000,
    minimum: 10,
    description: 'How often `run --follow` looks for alerts due for delivery (new alerts are also delivered right after the commit that fires them).',
  },
  run_deadline_ms: {
    type: 'integer',
    default: 30000,
    minimum: 0,
    description:
      'A one-shot `auditship run` delivers what is due after its pipelines finished, for at most this long; what is left (a retry due later, a receiver that does not answer) is delivered by the next run.',
  },
} as const satisfies ObjectSpec;

export type AlertRuleOptions = SectionOptions<typeof ALERT_RULE_FIELDS>;
export type AlertDeliveryOptions = SectionOptions<typeof ALERT_DELIVERY_FIELDS>;

/** A rule as loaded: checked, its filter parsed, its durations in milliseconds. */
export interface AlertRule {
  name: string;
  source: AlertSource;
  filter: RuleFilter;
  /** The filter as written (URL terms), for display. */
  filterText: string;
  /** 1 for a filter rule. */
  count: number;
  /** With count: the window; null for a filter rule. */
  windowMs: number | null;
  cooldownMs: number | null;
  by: string[];
  to: string[];
  /** The pipelines it reads; null: every pipeline of its source. */
  pipelines: string[] | null;
}

export interface AlertsConfig {
  destinations: Map<string, Destination>;
  rules: AlertRule[];
  delivery: AlertDeliveryOptions;
}

/** What a pipeline needs for alerts: the whole section (destinations, delivery) and the rules that read it. */
export interface PipelineAlerts {
  config: AlertsConfig;
  rules: AlertRule[];
}

/** What config/load.ts lends the decoder: its key checker (one vocabulary of problems) and the pipelines loaded. */
export interface AlertsLoadContext {
  checkFields(obj: Record<string, unknown>, fields: ObjectSpec, path: string, what: string, problems: string[], out: Record<string, unknown>): void;
  pipelines: { name: string; events: string | undefined; sourceType: string; storeEvents: boolean; stateInS3: boolean }[];
  problems: string[];
}

const DURATION = /^(\d+)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30s`, `5m`, `1h`, `2d` (or `500ms`) in milliseconds; undefined when malformed or zero. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = DURATION.exec(value.trim());
  const ms = m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
  return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
}

/** The event kinds of the pipelines a rule of this source reads. */
function readsFrom(source: AlertSource, events: string | undefined): boolean {
  return source === 'row_changes' ? events === 'row_changes' : source === 'app_events' ? events === 'app_events' : events === 'pgaudit';
}

const DESTINATION_TYPES: Record<string, ObjectSpec> = { webhook: WEBHOOK_DESTINATION_FIELDS, smtp: SMTP_DESTINATION_FIELDS };

/** Decodes `alerts` (after interpolation); problems go to ctx.problems. Returns the per-pipeline view. */
export function decodeAlerts(raw: unknown, ctx: AlertsLoadContext): { config: AlertsConfig; byPipeline: Map<string, PipelineAlerts> } | undefined {
  const { problems } = ctx;
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push('alerts: must be a mapping (destinations, rules, delivery)');
    return undefined;
  }
  const section = raw as Record<string, unknown>;
  for (const key of Object.keys(section))
    if (!['destinations', 'rules', 'delivery'].includes(key)) problems.push(`alerts.${key}: unknown key; allowed: destinations, rules, delivery`);
  const destinations = new Map<string, Destination>();
  const rawDest = section['destinations'];
  if (rawDest !== undefined && rawDest !== null) {
    if (typeof rawDest !== 'object' || Array.isArray(rawDest)) problems.push('alerts.destinations: a mapping of names to { type: webhook | smtp, … }');
    else
      for (const [name, d] of Object.entries(rawDest as Record<string, unknown>)) {
        const at = `alerts.destinations.${name}`;
        if (!/^[A-Za-z0-9_.-]+$/.test(name)) problems.push(`${at}: destination names may use letters, digits, _ . and -`);
        if (!d || typeof d !== 'object' || Array.isArray(d)) {
          problems.push(`${at}: a mapping with a type (webhook or smtp)`);
          continue;
        }
        const type = (d as Record<string, unknown>)['type'];
        const fields = typeof type === 'string' ? DESTINATION_TYPES[type] : undefined;
        if (!fields) {
          problems.push(`${at}.type: ${type === undefined ? 'missing' : JSON.stringify(type) + ' is not a destination type'}; allowed: webhook, smtp`);
          continue;
        }
        const out: Record<string, unknown> = {};
        ctx.checkFields(d as Record<string, unknown>, fields, at, `for a ${type} destination`, problems, out);
        destinations.set(name, destinationOf(type as 'webhook' | 'smtp', name, out, at, problems));
      }
  }
  const delivery: Record<string, unknown> = {};
  const rawDelivery = section['delivery'];
  if (rawDelivery !== undefined && rawDelivery !== null && (typeof rawDelivery !== 'object' || Array.isArray(rawDelivery)))
    problems.push('alerts.delivery: must be a mapping (concurrency, max_attempts, …)');
  ctx.checkFields(
    rawDelivery && typeof rawDelivery === 'object' && !Array.isArray(rawDelivery) ? (rawDelivery as Record<string, unknown>) : {},
    ALERT_DELIVERY_FIELDS,
    'alerts.delivery',
    'in alerts.delivery',
    problems,
    delivery,
  );
  const rules: AlertRule[] = [];
  const rawRules = section['rules'];
  if (rawRules !== undefined && rawRules !== null && !Array.isArray(rawRules))
    problems.push('alerts.rules: a list of rules ({ name, source, filter | count + window, to })');
  const names = new Set<string>();
  for (const [i, r] of (Array.isArray(rawRules) ? rawRules : []).entries()) {
    const at = `alerts.rules[${i}]`;
    if (!r || typeof r !== 'object' || Array.isArray(r)) {
      problems.push(`${at}: a mapping { name, source, filter | count + window, to }`);
      continue;
    }
    const before = problems.length;
    const out: Record<string, unknown> = {};
    ctx.checkFields(r as Record<string, unknown>, ALERT_RULE_FIELDS, at, 'in a rule', problems, out);
    if (problems.length > before) continue;
    const o = out as AlertRuleOptions;
    const rule = decodeRule(o, at, destinations, ctx);
    if (!rule) continue;
    if (names.has(rule.name)) problems.push(`${at}.name: ${rule.name} names two rules`);
    names.add(rule.name);
    rules.push(rule);
  }
  const config: AlertsConfig = { destinations, rules, delivery: delivery as AlertDeliveryOptions };
  const byPipeline = new Map<string, PipelineAlerts>();
  for (const p of ctx.pipelines) {
    const mine = rules.filter((rule) => readsFrom(rule.source, p.events) && (rule.pipelines === null || rule.pipelines.includes(p.name)));
    if (mine.length) byPipeline.set(p.name, { config, rules: mine });
  }
  return { config, byPipeline };
}

function decodeRule(o: AlertRuleOptions, at: string, destinations: Map<string, Destination>, ctx: AlertsLoadContext): AlertRule | undefined {
  const { problems } = ctx;
  const before = problems.length;
  if (!/^[A-Za-z0-9_.-]{1,80}$/.test(o.name)) problems.push(`${at}.name: at most 80 letters, digits, _ . and -`);
  const source = o.source;
  const filterText = o.filter ?? '';
  const filter = parseRuleFilter(source, filterText);
  if (typeof filter === 'string') problems.push(`${at}.filter: ${filter}`);
  const windowMs = o.window === undefined ? null : (parseDuration(o.window) ?? null);
  if (o.window !== undefined && windowMs === null) problems.push(`${at}.window: "${o.window}" is not a duration such as 30s, 5m, 1h or 1d`);
  const cooldownMs = o.cooldown === undefined ? null : (parseDuration(o.cooldown) ?? null);
  if (o.cooldown !== undefined && cooldownMs === null) problems.push(`${at}.cooldown: "${o.cooldown}" is not a duration such as 30s, 5m, 1h or 1d`);
  if (o.count !== undefined && o.window === undefined) problems.push(`${at}: count needs a window (e.g. window: 5m): N events of one key within it`);
  if (o.window !== undefined && o.count === undefined) problems.push(`${at}: window needs a count (e.g. count: 5)`);
  if (windowMs !== null && cooldownMs !== null && cooldownMs < windowMs) problems.push(`${at}.cooldown: at least as long as the window (${o.window})`);
  const by = (o.by ?? []).map((b) => (b === 'client_addr' ? 'client' : b));
  for (const b of by)
    if (!GROUP_KEYS[source].includes(b)) problems.push(`${at}.by: "${b}" is not a key of ${source} events; allowed: ${GROUP_KEYS[source].join(', ')}`);
  if (by.length && o.count === undefined && o.cooldown === undefined)
    problems.push(`${at}.by: keys group a threshold (count + window) or a cooldown; this rule has neither`);
  for (const d of o.to) if (!destinations.has(d)) problems.push(`${at}.to: no destination named ${d} under alerts.destinations`);
  const pipelines = o.pipelines ?? null;
  const candidates = ctx.pipelines.filter((p) => readsFrom(source, p.events));
  for (const name of pipelines ?? []) {
    const p = ctx.pipelines.find((q) => q.name === name);
    if (!p) problems.push(`${at}.pipelines: no pipeline named ${name}`);
    else if (!readsFrom(source, p.events)) problems.push(`${at}.pipelines: pipeline ${name} (${p.sourceType}) does not store ${source} events`);
  }
  const applies = pipelines === null ? candidates : candidates.filter((p) => pipelines.includes(p.name));
  for (const p of applies) {
    if (source === 'pgaudit' && !p.storeEvents)
      problems.push(
        `${at}: pipeline ${p.name} keeps its pgaudit events out of DuckDB (store_events: false), where rules are evaluated; store them there, or list the rule's pipelines:`,
      );
    if (p.stateInS3)
      problems.push(`${at}: pipeline ${p.name} keeps its state in S3, and alerts are not delivered from such runs yet; list the rule's pipelines: without it`);
  }
  if (problems.length > before) return undefined;
  return {
    name: o.name,
    source,
    filter: filter as RuleFilter,
    filterText,
    count: o.count ?? 1,
    windowMs,
    cooldownMs,
    by,
    to: o.to,
    pipelines,
  };
}

/** The decoded keys of a destination as the transport takes it. */
function destinationOf(type: 'webhook' | 'smtp', name: string, out: Record<string, unknown>, at: string, problems: string[]): Destination {
  return type === 'webhook'
    ? toWebhookDestination(name, { type, ...out } as WebhookDestinationOptions, at, problems)
    : toSmtpDestination(name, { type, ...out } as SmtpDestinationOptions);
}
