import type { AlertMessage } from './deliver/index.js';

/**
 * An alert as stored (a row of `alerts`) and as a transport sends it (AlertMessage). The text is built from the
 * stored values only — already redacted by the pipeline, the statement of a sample cut to 300 characters — and
 * capped; the transports cap their renderings again (MAX_ALERT_BYTES).
 */
export interface StoredAlert {
  alert_id: string;
  rule: string;
  source: string;
  pipeline: string;
  server: string | null;
  group_key: string | null;
  /** ISO times (UTC). */
  window_start: string | null;
  window_ms: number | null;
  first_event_time: string | null;
  last_event_time: string | null;
  matched: number;
  threshold: number;
  /** The event's identity, for an alert per event. */
  event_id: string | null;
  /** JSON array of flat objects. */
  samples: string | null;
  fired_at: string;
}

/** The columns of a StoredAlert, as SQL over `alerts` aliased `a`. */
export const ALERT_COLUMNS = `a.alert_id, a.rule, a.source, a.pipeline, a.server, a.group_key,
  strftime(a.window_start, '%Y-%m-%dT%H:%M:%S.%gZ') AS window_start, a.window_ms::DOUBLE AS window_ms,
  strftime(a.first_event_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS first_event_time, strftime(a.last_event_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS last_event_time,
  a.matched::DOUBLE AS matched, a.threshold::DOUBLE AS threshold, a.event_id, a.samples, strftime(a.fired_at, '%Y-%m-%dT%H:%M:%S.%gZ') AS fired_at`;

const MAX_TEXT = 4000;

/** A row of ALERT_COLUMNS (numbers may come as strings or bigints from a reader) as a StoredAlert. */
export function storedAlertOf(r: Record<string, unknown>): StoredAlert {
  const s = (k: string) => (r[k] === null || r[k] === undefined ? null : String(r[k]));
  const n = (k: string) => (r[k] === null || r[k] === undefined ? null : Number(r[k]));
  return {
    alert_id: String(r['alert_id']),
    rule: String(r['rule']),
    source: String(r['source']),
    pipeline: String(r['pipeline']),
    server: s('server'),
    group_key: s('group_key') || null,
    window_start: s('window_start'),
    window_ms: n('window_ms'),
    first_event_time: s('first_event_time'),
    last_event_time: s('last_event_time'),
    matched: n('matched') ?? 0,
    threshold: n('threshold') ?? 1,
    event_id: s('event_id'),
    samples: s('samples'),
    fired_at: String(r['fired_at']),
  };
}

export function samplesOf(a: StoredAlert): Record<string, string | number | null>[] {
  try {
    const v = JSON.parse(a.samples ?? '[]') as unknown;
    if (!Array.isArray(v)) return [];
    return v
      .slice(0, 5)
      .map((o) =>
        Object.fromEntries(
          Object.entries((o ?? {}) as Record<string, unknown>).map(([k, x]) => [k, x === null || typeof x === 'number' ? x : String(x)] as const),
        ),
      );
  } catch {
    return [];
  }
}

/** `5m`, `1h`, `2d`: a window or cooldown for display. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** The message a transport sends for a stored alert. */
export function alertMessage(a: StoredAlert, filterText?: string): AlertMessage {
  const samples = samplesOf(a);
  const threshold = a.window_ms !== null && a.threshold > 1;
  const key = a.group_key ? `, ${a.group_key}` : '';
  const title = threshold
    ? `auditship: ${a.rule} fired (${a.matched} events in ${formatDuration(a.window_ms!)}${key})`
    : `auditship: ${a.rule} fired (${a.source}${key})`;
  const lines = [
    `Rule ${a.rule} fired on ${a.source} events of pipeline ${a.pipeline}${a.server ? ` (${a.server})` : ''}.`,
    ...(filterText ? [`Filter: ${filterText}`] : []),
    ...(a.group_key ? [`Key: ${a.group_key}`] : []),
    ...(threshold
      ? [`${a.matched} matching events (threshold ${a.threshold}) in the ${formatDuration(a.window_ms!)} window from ${a.window_start}.`]
      : a.window_ms !== null
        ? [`First matching event of the ${formatDuration(a.window_ms)} period from ${a.window_start} (one alert per period).`]
        : a.matched > 1
          ? [`This event and ${a.matched - 1} more matched in one commit: a rule fires at most 1000 alerts per commit (give it a cooldown).`]
          : []),
    `Events: ${a.first_event_time ?? '?'}${a.last_event_time && a.last_event_time !== a.first_event_time ? ` – ${a.last_event_time}` : ''}`,
    ...(samples.length ? ['', samples.length > 1 ? 'Examples:' : 'Event:'] : []),
    ...samples.map(
      (s) =>
        '  ' +
        Object.entries(s)
          .filter(([, v]) => v !== null && v !== '')
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(' '),
    ),
  ];
  let text = lines.join('\n');
  if (text.length > MAX_TEXT) text = `${text.slice(0, MAX_TEXT - 1)}…`;
  return {
    id: a.alert_id,
    rule: a.rule,
    title,
    text,
    fields: {
      rule: a.rule,
      source: a.source,
      pipeline: a.pipeline,
      server: a.server,
      key: a.group_key,
      matched: a.matched,
      threshold: a.threshold,
      window: a.window_ms === null ? null : formatDuration(a.window_ms),
      window_start: a.window_start,
      first: a.first_event_time,
      last: a.last_event_time,
      event: a.event_id,
    },
    firedAt: a.fired_at,
    samples,
  };
}
