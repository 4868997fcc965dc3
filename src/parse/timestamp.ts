/**
 * PostgreSQL log timestamps → epoch milliseconds, never a wrong time.
 *
 * csvlog `log_time` and jsonlog `timestamp` look like `2024-05-01 12:00:00.123 CEST`; `session_start_time`
 * has no milliseconds. The suffix is the *abbreviation* of `log_timezone` (or a numeric one such as `+03`,
 * `-0330` for zones without a name), which is ambiguous in general. Resolution order:
 *  1. numeric abbreviations and UTC/GMT/UCT/Z are exact;
 *  2. with `log_timezone` (an IANA name) configured, the zone gives the offset; in the repeated hour at the
 *     end of DST the abbreviation picks the candidate (known table, or what this resolver saw earlier);
 *  3. without it, a table of abbreviations that mean one offset in current tzdata;
 *  4. anything else is an error naming the fix (configure `log_timezone`).
 */

/** Abbreviations that mean a single UTC offset (minutes) in current tzdata. Ambiguous ones (IST, CST,
 * CDT, PST, AST, BST is kept: only Europe/London uses it today) are deliberately absent. */
const FIXED_ABBREVIATIONS: Record<string, number> = {
  UTC: 0,
  UCT: 0,
  GMT: 0,
  Z: 0,
  WET: 0,
  WEST: 60,
  BST: 60,
  CET: 60,
  CEST: 120,
  MET: 60,
  MEST: 120,
  EET: 120,
  EEST: 180,
  MSK: 180,
  IDT: 180,
  SAST: 120,
  WAT: 60,
  CAT: 120,
  EAT: 180,
  PKT: 300,
  WIB: 420,
  WITA: 480,
  WIT: 540,
  HKT: 480,
  JST: 540,
  KST: 540,
  AWST: 480,
  ACST: 570,
  ACDT: 630,
  AEST: 600,
  AEDT: 660,
  NZST: 720,
  NZDT: 780,
  ChST: 600,
  HST: -600,
  HDT: -540,
  AKST: -540,
  AKDT: -480,
  PDT: -420,
  MST: -420,
  MDT: -360,
  EST: -300,
  EDT: -240,
  NST: -210,
  NDT: -150,
  SST: -660,
};

export class TimestampError extends Error {
  constructor(
    message: string,
    readonly code: 'malformed' | 'unknown_zone' | 'ambiguous' | 'invalid_local_time',
  ) {
    super(message);
  }
}

/** Parses `+03`, `-0330`, `+05:30` as minutes east of UTC; `undefined` if the text is not numeric. */
function numericOffset(abbrev: string): number | undefined {
  const m = /^([+-])(\d\d)(?::?([0-5]\d))?$/.exec(abbrev);
  if (!m) return undefined;
  const minutes = Number(m[2]) * 60 + Number(m[3] ?? 0);
  return m[1] === '-' ? -minutes : minutes;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** Offset of `zone` (minutes east of UTC) at the instant `utcMs`. */
export function zoneOffsetAt(zone: string, utcMs: number): number {
  const parts = formatter(zone).formatToParts(new Date(utcMs));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const local = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return Math.round((local - Math.floor(utcMs / 1000) * 1000) / 60000);
}

/** Throws a clear error when `zone` is not an IANA time zone name this Node.js knows. */
export function assertTimeZone(zone: string): void {
  try {
    formatter(zone);
  } catch {
    throw new TimestampError(`"${zone}" is not an IANA time zone name (for example Europe/Berlin)`, 'unknown_zone');
  }
}

/**
 * Converts PostgreSQL log timestamps to epoch milliseconds. One resolver per source: it caches per second
 * and remembers which offset each abbreviation had, to settle the repeated hour.
 */
export class TimestampResolver {
  private readonly cache = new Map<string, number>();
  private readonly learned = new Map<string, number>();

  constructor(private readonly logTimezone?: string) {
    if (logTimezone) assertTimeZone(logTimezone);
  }

  /** `2024-05-01 12:00:00.123 UTC` or `2024-05-01 12:00:00 UTC` → epoch ms. Throws TimestampError. */
  toEpochMs(text: string): number {
    // The second-resolution prefix and the abbreviation decide the offset; cache on them.
    const len = text.length;
    let msPart = 0;
    let key: string;
    if (len > 24 && text.charCodeAt(19) === 46 /* . */ && text.charCodeAt(23) === 32) {
      const d0 = text.charCodeAt(20) - 48,
        d1 = text.charCodeAt(21) - 48,
        d2 = text.charCodeAt(22) - 48;
      if (d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw malformed(text);
      msPart = d0 * 100 + d1 * 10 + d2;
      key = text.slice(0, 19) + text.slice(23);
    } else {
      key = text;
    }
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached + msPart;
    const value = this.resolve(key);
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(key, value);
    return value + msPart;
  }

  private resolve(text: string): number {
    const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) (\S+)$/.exec(text);
    if (!m) throw malformed(text);
    const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
    const wall = Date.UTC(year, month - 1, day, hour, minute, second);
    // Date.UTC rolls 2024-02-30 into March: a date that does not round-trip does not exist.
    const check = new Date(wall);
    if (
      Number.isNaN(wall) ||
      hour > 23 ||
      minute > 59 ||
      second > 59 ||
      check.getUTCFullYear() !== year ||
      check.getUTCMonth() !== month - 1 ||
      check.getUTCDate() !== day
    )
      throw malformed(text);
    const abbrev = m[7]!;
    const numeric = numericOffset(abbrev);
    const fixed = numeric ?? FIXED_ABBREVIATIONS[abbrev];
    // Numeric offsets and UTC are exact whatever log_timezone says.
    if (numeric !== undefined || fixed === 0) return wall - fixed! * 60000;
    if (!this.logTimezone) {
      if (fixed === undefined) {
        throw new TimestampError(
          `time zone abbreviation "${abbrev}" is ambiguous or unknown; set log_timezone to the server's IANA zone (SHOW log_timezone)`,
          'unknown_zone',
        );
      }
      return wall - fixed * 60000;
    }
    const zone = this.logTimezone;
    const candidates = new Set<number>();
    for (const probe of [-86400000, 0, 86400000]) {
      const o = zoneOffsetAt(zone, wall + probe);
      if (zoneOffsetAt(zone, wall - o * 60000) === o) candidates.add(o);
    }
    const list = [...candidates];
    if (list.length === 0) {
      throw new TimestampError(`${text} does not exist in log_timezone ${zone} (a skipped DST hour); is log_timezone right?`, 'invalid_local_time');
    }
    let chosen: number | undefined;
    if (list.length === 1) {
      chosen = list[0]!;
      if (fixed !== undefined && fixed !== chosen) {
        throw new TimestampError(
          `time zone abbreviation "${abbrev}" (UTC${fmt(fixed)}) contradicts log_timezone ${zone} (UTC${fmt(chosen)} at ${text}); is log_timezone right?`,
          'ambiguous',
        );
      }
      this.learned.set(abbrev, chosen);
    } else {
      const hint = fixed ?? this.learned.get(abbrev);
      chosen = list.find((o) => o === hint);
      if (chosen === undefined) {
        throw new TimestampError(`${text} falls in the repeated hour of ${zone} and "${abbrev}" does not tell which one`, 'ambiguous');
      }
    }
    return wall - chosen * 60000;
  }
}

function fmt(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const a = Math.abs(minutes);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

function malformed(text: string): TimestampError {
  return new TimestampError(`"${text.slice(0, 40)}" is not a PostgreSQL log timestamp`, 'malformed');
}
