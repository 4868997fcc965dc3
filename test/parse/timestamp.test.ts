/**
 * TimestampResolver (src/parse/timestamp.ts): PostgreSQL log_time / session_start_time text → epoch ms,
 * never a wrong time. Covers exact suffixes (UTC, numeric), the fixed-abbreviation table, ambiguous
 * abbreviations, log_timezone resolution across DST changes, and malformed text.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TimestampError, TimestampResolver } from '../../src/parse/timestamp.js';
import { forAll, type Rng } from '../helpers/prng.js';

const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0) => Date.UTC(y, mo - 1, d, h, mi, s, ms);

function throwsCode(fn: () => unknown, code: TimestampError['code'] | undefined, label: string): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(err instanceof TimestampError, `${label}: expected a TimestampError, got ${String(err)}`);
      if (code !== undefined) assert.equal(err.code, code, `${label}: code (message: ${err.message})`);
      return true;
    },
    label,
  );
}

describe('exact suffixes', () => {
  const r = new TimestampResolver();

  test('UTC and GMT, with milliseconds', () => {
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.123 UTC'), utc(2024, 5, 1, 12, 0, 0, 123));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.000 GMT'), utc(2024, 5, 1, 12));
    assert.equal(r.toEpochMs('2024-12-31 23:59:59.999 UTC'), utc(2024, 12, 31, 23, 59, 59, 999));
    assert.equal(r.toEpochMs('2024-02-29 00:00:00.001 UTC'), utc(2024, 2, 29, 0, 0, 0, 1));
  });

  test('numeric offsets -03, +0530, +05:30, -0930, +14', () => {
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.000 -03'), utc(2024, 5, 1, 15));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.000 +0530'), utc(2024, 5, 1, 6, 30));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.000 +05:30'), utc(2024, 5, 1, 6, 30));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.250 -0930'), utc(2024, 5, 1, 21, 30, 0, 250));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.000 +14'), utc(2024, 4, 30, 22));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.000 +00'), utc(2024, 5, 1, 12));
  });

  test('fixed abbreviations: CET, CEST, EST, EDT, JST', () => {
    assert.equal(r.toEpochMs('2024-01-15 12:00:00.000 CET'), utc(2024, 1, 15, 11));
    assert.equal(r.toEpochMs('2024-07-15 12:00:00.000 CEST'), utc(2024, 7, 15, 10));
    assert.equal(r.toEpochMs('2024-01-15 12:00:00.000 EST'), utc(2024, 1, 15, 17));
    assert.equal(r.toEpochMs('2024-07-15 12:00:00.000 EDT'), utc(2024, 7, 15, 16));
    assert.equal(r.toEpochMs('2024-07-15 12:00:00.000 JST'), utc(2024, 7, 15, 3));
  });

  test('session_start_time form without milliseconds', () => {
    assert.equal(r.toEpochMs('2026-11-22 03:11:56 UTC'), utc(2026, 11, 22, 3, 11, 56));
    assert.equal(r.toEpochMs('2024-07-15 12:00:00 CEST'), utc(2024, 7, 15, 10));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00 +05:30'), utc(2024, 5, 1, 6, 30));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00 -03'), utc(2024, 5, 1, 15));
  });

  test('milliseconds are added to the cached second (same second, different ms and forms)', () => {
    const c = new TimestampResolver();
    assert.equal(c.toEpochMs('2024-05-01 12:00:00 CEST'), utc(2024, 5, 1, 10));
    assert.equal(c.toEpochMs('2024-05-01 12:00:00.500 CEST'), utc(2024, 5, 1, 10, 0, 0, 500));
    assert.equal(c.toEpochMs('2024-05-01 12:00:00.007 CEST'), utc(2024, 5, 1, 10, 0, 0, 7));
    assert.equal(c.toEpochMs('2024-05-01 12:00:00.007 CET'), utc(2024, 5, 1, 11, 0, 0, 7));
  });
});

describe('ambiguous abbreviations', () => {
  test('IST, CST, PST (and unknown names) without log_timezone → unknown_zone', () => {
    const r = new TimestampResolver();
    for (const abbrev of ['IST', 'CST', 'PST', 'AST', 'XYZT']) {
      throwsCode(() => r.toEpochMs(`2024-05-01 12:00:00.000 ${abbrev}`), 'unknown_zone', abbrev);
      throwsCode(() => r.toEpochMs(`2024-05-01 12:00:00 ${abbrev}`), 'unknown_zone', `${abbrev} without ms`);
    }
  });

  test('the error names the fix (log_timezone)', () => {
    assert.throws(() => new TimestampResolver().toEpochMs('2024-05-01 12:00:00.000 IST'), /log_timezone/);
  });

  test("with log_timezone 'Asia/Kolkata', IST resolves to +05:30", () => {
    const r = new TimestampResolver('Asia/Kolkata');
    assert.equal(r.toEpochMs('2024-05-01 12:00:00.000 IST'), utc(2024, 5, 1, 6, 30));
    assert.equal(r.toEpochMs('2024-05-01 12:00:00 IST'), utc(2024, 5, 1, 6, 30));
    assert.equal(r.toEpochMs('2024-12-31 23:59:59.999 IST'), utc(2024, 12, 31, 18, 29, 59, 999));
  });

  test("with log_timezone 'America/Chicago', CST/CDT resolve by the zone", () => {
    const r = new TimestampResolver('America/Chicago');
    assert.equal(r.toEpochMs('2024-01-15 12:00:00.000 CST'), utc(2024, 1, 15, 18));
    assert.equal(r.toEpochMs('2024-07-15 12:00:00.000 CDT'), utc(2024, 7, 15, 17));
  });
});

describe('log_timezone across DST changes (Europe/Berlin)', () => {
  test('autumn: 2024-10-27 02:00–03:00 local happens twice; the abbreviation picks the instant', () => {
    for (const r of [new TimestampResolver('Europe/Berlin'), new TimestampResolver()]) {
      assert.equal(r.toEpochMs('2024-10-27 02:30:00.000 CEST'), utc(2024, 10, 27, 0, 30));
      assert.equal(r.toEpochMs('2024-10-27 02:30:00.000 CET'), utc(2024, 10, 27, 1, 30));
      // again, from the cache, in the other order
      assert.equal(r.toEpochMs('2024-10-27 02:30:00.250 CET'), utc(2024, 10, 27, 1, 30, 0, 250));
      assert.equal(r.toEpochMs('2024-10-27 02:30:00.250 CEST'), utc(2024, 10, 27, 0, 30, 0, 250));
      // the edges of the repeated hour
      assert.equal(r.toEpochMs('2024-10-27 02:00:00.000 CEST'), utc(2024, 10, 27, 0));
      assert.equal(r.toEpochMs('2024-10-27 02:59:59.999 CEST'), utc(2024, 10, 27, 0, 59, 59, 999));
      assert.equal(r.toEpochMs('2024-10-27 02:00:00.000 CET'), utc(2024, 10, 27, 1));
      assert.equal(r.toEpochMs('2024-10-27 03:00:00.000 CET'), utc(2024, 10, 27, 2));
    }
  });

  test('the hours around the change resolve normally', () => {
    const r = new TimestampResolver('Europe/Berlin');
    assert.equal(r.toEpochMs('2024-10-27 01:59:59.000 CEST'), utc(2024, 10, 26, 23, 59, 59));
    assert.equal(r.toEpochMs('2024-10-27 03:00:01.000 CET'), utc(2024, 10, 27, 2, 0, 1));
    assert.equal(r.toEpochMs('2024-03-31 01:59:59.000 CET'), utc(2024, 3, 31, 0, 59, 59));
    assert.equal(r.toEpochMs('2024-03-31 03:00:00.000 CEST'), utc(2024, 3, 31, 1));
  });

  test('spring gap: 2024-03-31 02:30:00 CET does not exist → invalid_local_time', () => {
    const r = new TimestampResolver('Europe/Berlin');
    throwsCode(() => r.toEpochMs('2024-03-31 02:30:00 CET'), 'invalid_local_time', 'session_start form');
    throwsCode(() => r.toEpochMs('2024-03-31 02:30:00.000 CET'), 'invalid_local_time', 'log_time form');
    throwsCode(() => r.toEpochMs('2024-03-31 02:00:00.000 CEST'), 'invalid_local_time', 'gap start');
  });

  test('an abbreviation contradicting log_timezone is an error, not a guess', () => {
    const berlin = new TimestampResolver('Europe/Berlin');
    throwsCode(() => berlin.toEpochMs('2024-07-01 12:00:00.000 CET'), undefined, 'CET in July');
    throwsCode(() => berlin.toEpochMs('2024-01-15 12:00:00.000 CEST'), undefined, 'CEST in January');
    throwsCode(() => berlin.toEpochMs('2024-07-01 12:00:00.000 EDT'), undefined, 'EDT in Berlin');
    // Numeric offsets and UTC say exactly what they mean, whatever log_timezone is configured.
    assert.equal(berlin.toEpochMs('2024-07-01 12:00:00.000 +03'), Date.UTC(2024, 6, 1, 9));
    assert.equal(berlin.toEpochMs('2024-07-01 12:00:00.000 UTC'), Date.UTC(2024, 6, 1, 12));
    throwsCode(() => new TimestampResolver('Asia/Kolkata').toEpochMs('2024-07-01 12:00:00.000 JST'), undefined, 'JST in Kolkata');
    // the error message points at the setting
    assert.throws(() => berlin.toEpochMs('2024-07-01 12:00:00.000 CET'), /log_timezone/);
  });
});

describe('malformed text', () => {
  const r = new TimestampResolver();

  test("not a PostgreSQL log timestamp → 'malformed'", () => {
    for (const text of [
      '',
      'garbage',
      '2024-05-01',
      '2024-05-01 12:00:00',
      '2024-05-01 12:00:00.000',
      '2024-05-01 12:00:00.000 ',
      '2024-05-01T12:00:00.000Z',
      '2024-05-01T12:00:00.000 UTC',
      '2024-5-01 12:00:00 UTC',
      '24-05-01 12:00:00 UTC',
      '2024-05-01 12:00:00.12 UTC',
      '2024-05-01 12:00:00.1234 UTC',
      '2024-05-01 12:00:00.abc UTC',
      '2024-05-01 12:00:00.12a UTC',
      '2024-05-01 12:00 UTC',
      '2024-05-01 12:00:00  UTC',
      '2024-05-01 12:00:00.000  UTC',
      ' 2024-05-01 12:00:00 UTC',
      '2024-05-01 12:00:00 UTC ',
      '2024-05-01 12:00:00.000 UTC extra',
      '2024-13-01 12:00:00 UTC',
      '2024-05-32 12:00:00 UTC',
      '2024-05-01 24:00:00 UTC',
      '2024-05-01 12:60:00 UTC',
      '2024-05-01 12:00:61 UTC',
      '２０２４-05-01 12:00:00 UTC',
    ]) {
      throwsCode(() => r.toEpochMs(text), 'malformed', JSON.stringify(text));
    }
  });

  test('impossible calendar dates are malformed, not rolled into the next month', () => {
    for (const text of [
      '2024-02-30 12:00:00 UTC',
      '2023-02-29 12:00:00.000 UTC',
      '2024-04-31 12:00:00 UTC',
      '2024-00-10 12:00:00 UTC',
      '2024-04-00 12:00:00 UTC',
    ]) {
      throwsCode(() => r.toEpochMs(text), 'malformed', text);
    }
  });

  test('numeric offsets that PostgreSQL never writes are rejected', () => {
    for (const text of ['2024-05-01 12:00:00.000 +05:', '2024-05-01 12:00:00.000 +0599', '2024-05-01 12:00:00.000 +05:7']) {
      throwsCode(() => r.toEpochMs(text), undefined, text);
    }
  });
});

describe('constructor', () => {
  test('an unknown IANA zone throws', () => {
    for (const zone of ['Mars/Olympus_Mons', 'Europe/Berlinn', 'CEST+2', 'not a zone']) {
      throwsCode(() => new TimestampResolver(zone), 'unknown_zone', zone);
    }
    assert.throws(() => new TimestampResolver('Mars/Olympus_Mons'), /IANA/);
  });

  test('known zones are accepted', () => {
    for (const zone of ['UTC', 'Etc/UTC', 'Europe/Berlin', 'Asia/Kolkata', 'America/New_York', 'Australia/Lord_Howe']) {
      assert.doesNotThrow(() => new TimestampResolver(zone), zone);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Property: render random instants the way PostgreSQL does for a zone, resolve them back.

interface ZoneCase {
  zone: string;
  /** The abbreviation PostgreSQL prints for an offset (minutes east). */
  abbrev: (offset: number) => string;
  /** UTC instants of DST changes in a year (to sample the repeated and skipped hours often). */
  changes: (year: number) => number[];
  /** Whether every abbreviation this zone prints is in the fixed table (resolvable without log_timezone). */
  fixed: boolean;
}

function lastSunday(year: number, month: number): number {
  const last = new Date(Date.UTC(year, month, 0)); // last day of `month` (1-based)
  return last.getUTCDate() - last.getUTCDay();
}
function nthSunday(year: number, month: number, n: number): number {
  const first = new Date(Date.UTC(year, month - 1, 1)).getUTCDay();
  return 1 + ((7 - first) % 7) + 7 * (n - 1);
}
function numericAbbrev(offset: number): string {
  const sign = offset < 0 ? '-' : '+';
  const a = Math.abs(offset);
  const h = String(Math.floor(a / 60)).padStart(2, '0');
  return a % 60 === 0 ? `${sign}${h}` : `${sign}${h}${String(a % 60).padStart(2, '0')}`;
}
function named(table: Record<number, string>): (offset: number) => string {
  return (offset) => {
    const a = table[offset];
    if (a === undefined) throw new Error(`no abbreviation for offset ${offset}`);
    return a;
  };
}

const ZONES: ZoneCase[] = [
  {
    zone: 'Europe/Berlin',
    abbrev: named({ 60: 'CET', 120: 'CEST' }),
    fixed: true,
    changes: (y) => [Date.UTC(y, 2, lastSunday(y, 3), 1), Date.UTC(y, 9, lastSunday(y, 10), 1)],
  },
  {
    zone: 'America/New_York',
    abbrev: named({ [-300]: 'EST', [-240]: 'EDT' }),
    fixed: true,
    changes: (y) => [Date.UTC(y, 2, nthSunday(y, 3, 2), 7), Date.UTC(y, 10, nthSunday(y, 11, 1), 6)],
  },
  { zone: 'Asia/Kolkata', abbrev: named({ 330: 'IST' }), fixed: false, changes: () => [] },
  {
    zone: 'Australia/Lord_Howe',
    abbrev: numericAbbrev,
    fixed: true,
    // DST (+11) from the first Sunday of October 02:00 local (15:00 UTC the day before) to the first Sunday of April 02:00 local (15:00 UTC before)
    changes: (y) => [Date.UTC(y, 3, nthSunday(y, 4, 1) - 1, 15), Date.UTC(y, 9, nthSunday(y, 10, 1) - 1, 15, 30)],
  },
];

const partsFormatters = new Map<string, Intl.DateTimeFormat>();
function localParts(zone: string, ms: number): { local: number; text: (withMillis: boolean) => string } {
  let f = partsFormatters.get(zone);
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
    partsFormatters.set(zone, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  const local = Date.UTC(Number(p['year']), Number(p['month']) - 1, Number(p['day']), Number(p['hour']), Number(p['minute']), Number(p['second']), ms % 1000);
  const base = `${p['year']}-${p['month']}-${p['day']} ${p['hour']}:${p['minute']}:${p['second']}`;
  return { local, text: (withMillis) => (withMillis ? `${base}.${String(ms % 1000).padStart(3, '0')}` : base) };
}

function sampleInstant(rng: Rng, z: ZoneCase): number {
  const year = rng.int(2008, 2036);
  const changes = z.changes(year);
  if (changes.length > 0 && rng.bool(0.6)) {
    // within ±90 minutes of a DST change: repeated and skipped hours are covered often
    return rng.pick(changes) + rng.int(-90 * 60_000, 90 * 60_000);
  }
  return rng.int(Date.UTC(year, 0, 1), Date.UTC(year + 1, 0, 1) - 1);
}

describe('property: PostgreSQL-rendered local times resolve back to the instant', () => {
  for (const z of ZONES) {
    test(`${z.zone}: with log_timezone${z.fixed ? ' and without' : ''}`, () => {
      const shared = new TimestampResolver(z.zone);
      const plain = new TimestampResolver();
      forAll<number>(
        { name: `render/resolve ${z.zone}`, seed: 0x7135_0000 + z.zone.length, runs: 1500, show: (ms) => `${ms} (${new Date(ms).toISOString()})` },
        (rng) => sampleInstant(rng, z),
        (ms) => {
          const { local, text } = localParts(z.zone, ms);
          const offset = Math.round((local - ms) / 60_000);
          const withMs = `${text(true)} ${z.abbrev(offset)}`;
          const noMs = `${text(false)} ${z.abbrev(offset)}`;
          const second = ms - (ms % 1000);
          assert.equal(shared.toEpochMs(withMs), ms, withMs);
          assert.equal(shared.toEpochMs(noMs), second, noMs);
          assert.equal(new TimestampResolver(z.zone).toEpochMs(withMs), ms, `${withMs} (fresh resolver)`);
          if (z.fixed) assert.equal(plain.toEpochMs(withMs), ms, `${withMs} (no log_timezone)`);
        },
      );
    });
  }
});
