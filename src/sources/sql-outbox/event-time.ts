import { assertTimeZone, zoneOffsetAt } from '../../parse/timestamp.js';

/**
 * Event times of application audit messages → epoch microseconds (UTC), never a guessed time.
 *  - ISO 8601 / SQL text: `2022-10-13T12:34:56.000Z`, `2022-10-13T12:34:56.000+0300`, `+03:00`, `+03`,
 *    `2022-10-13 12:34:56.123456+00` (PostgreSQL), up to microseconds; a date alone is midnight.
 *  - Text without an offset (MySQL DATETIME, `timestamp without time zone`, a naive message field) is
 *    wall time in `naiveZone` (an IANA name; UTC by default).
 *  - A JSON number is epoch seconds, or milliseconds when above 1e11 (year 5138 in seconds).
 * Anything else is null: the caller quarantines the row with the reason.
 */
const ISO = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?)?\s*(Z|z|UTC|[+-]\d\d(?::?\d\d)?)?$/;

export class EventTimeParser {
  constructor(private readonly naiveZone = 'UTC') {
    if (naiveZone !== 'UTC') assertTimeZone(naiveZone);
  }

  /** Epoch microseconds, or null when `text` is not a time. */
  parseText(text: string): number | null {
    const m = ISO.exec(text.trim());
    if (!m) return null;
    const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const [hour, minute, second] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
    const wallMs = Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59));
    const check = new Date(wallMs);
    if (Number.isNaN(wallMs) || check.getUTCDate() !== day || check.getUTCMonth() !== month - 1) return null;
    const frac = m[7] ? Number((m[7] + '000000').slice(0, 6)) : 0;
    const zone = m[8];
    let offsetMin: number;
    if (zone === undefined) {
      offsetMin = this.naiveZone === 'UTC' ? 0 : localOffset(this.naiveZone, wallMs);
    } else if (zone === 'Z' || zone === 'z' || zone === 'UTC') {
      offsetMin = 0;
    } else {
      const z = /^([+-])(\d\d):?(\d\d)?$/.exec(zone)!;
      const mins = Number(z[2]) * 60 + Number(z[3] ?? 0);
      if (mins > 18 * 60) return null;
      offsetMin = z[1] === '-' ? -mins : mins;
    }
    return (wallMs - offsetMin * 60_000) * 1000 + frac;
  }

  /** A value found in a message: a string time or an epoch number. */
  parseValue(v: unknown): number | null {
    if (typeof v === 'string') return this.parseText(v);
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) {
      const ms = v > 1e11 ? v : v * 1000;
      return Math.round(ms * 1000);
    }
    return null;
  }
}

/** The zone's offset for a wall time (the earlier instant when the wall time occurs twice). */
function localOffset(zone: string, wallMs: number): number {
  const first = zoneOffsetAt(zone, wallMs);
  const second = zoneOffsetAt(zone, wallMs - first * 60_000);
  return Math.max(first, second);
}

/** `2022-10-13T12:34:56.123456Z` for epoch microseconds. */
export function isoMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  const rest = us - ms * 1000;
  const base = new Date(ms).toISOString(); // ...sss Z
  return `${base.slice(0, 23)}${String(rest).padStart(3, '0')}Z`;
}

/** Follows a dotted path (`audit_event.date_time`; '' = the root) into a parsed message. */
export function atPath(obj: unknown, path: string[]): unknown {
  let cur = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}
