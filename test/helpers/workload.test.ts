import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startPgCluster, type PgCluster } from './pg-cluster.js';
import { compareWithLogs, filesOfFormat, readCsvlog, readJsonlog, type RawLogRecord } from './raw-logs.js';
import { renderParameters, runWorkload, timezoneSample, type ExpectedEvent } from './workload.js';

describe('runWorkload expectations match what PostgreSQL 15 + pgaudit wrote', () => {
  let cluster: PgCluster;
  let events: ExpectedEvent[];
  let json: RawLogRecord[];

  before(async () => {
    cluster = await startPgCluster();
    events = await runWorkload(cluster);
    json = readJsonlog(filesOfFormat(cluster.logFiles(), 'jsonlog'));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('every expected event is in the jsonlog (application_name + class + command + statement)', () => {
    const missing = events.filter(
      (e) =>
        !json.some(
          (r) =>
            r.applicationName === e.sessionApplicationName &&
            r.audit !== null &&
            r.audit.class === e.class &&
            r.audit.command === e.command &&
            (e.statementOnce ? r.audit.statement === '<previously logged>' : r.audit.statement === e.statement),
        ),
    );
    assert.deepEqual(
      missing.map((e) => `${e.sessionApplicationName} ${e.class} ${e.command} ${e.statement.slice(0, 80)}`),
      [],
    );
  });

  test('per application name, the jsonlog audit records are exactly the expected events, field by field', () => {
    assert.deepEqual(compareWithLogs(events, json), []);
  });

  test('the csvlog files (one of them gzipped) hold the same audit records', () => {
    const csvFiles = filesOfFormat(cluster.logFiles(), 'csvlog');
    assert.equal(csvFiles.filter((f) => f.endsWith('.csv.gz')).length, 1);
    assert.ok(!cluster.logFiles().includes(csvFiles.find((f) => f.endsWith('.gz'))!.slice(0, -3)), 'the original is replaced');
    assert.deepEqual(compareWithLogs(events, readCsvlog(csvFiles)), []);
  });

  test('the workload covers the cases the parser must handle', () => {
    const has = (p: (e: ExpectedEvent) => boolean, what: string): void => assert.ok(events.some(p), what);
    for (const c of ['READ', 'WRITE', 'FUNCTION', 'ROLE', 'DDL', 'MISC'] as const) has((e) => e.class === c, `class ${c}`);
    has((e) => e.rows === null, '9-field records');
    has((e) => e.rows !== null, '10-field records (ROWS)');
    has((e) => e.auditType === 'OBJECT', 'OBJECT records');
    has((e) => e.auditType === 'OBJECT' && e.database === 'auditship_objects', 'pgaudit.role set per database');
    has((e) => e.statementOnce && e.rows !== null, '<previously logged> with ROWS');
    has((e) => e.statementOnce && e.substatementId > 1, '<previously logged> in a substatement');
    has((e) => e.substatementId > 1, 'substatements');
    has((e) => e.statement.includes('\n') && e.objectName?.includes('\n') === true, 'newlines in statement and object name');
    has((e) => e.objectName === 'public."we""ird, name\nx"', 'quoted identifier');
    has((e) => e.statement.includes('Zürich 東京 🦆'), 'unicode');
    has(
      (e) => e.parameter === renderParameters([42, 'a,"b"', null, 'line1\nline2', '', 'Zürich 東京 🦆']),
      'parameters with NULL, comma, quotes, newline, empty',
    );
    has((e) => e.parameter === '42,"a,""b""",,"line1\nline2",,Zürich 東京 🦆', 'parameter rendering');
    has((e) => e.parameter === null, 'empty PARAMETER field');
    has((e) => e.statement.endsWith('<REDACTED>'), 'redacted password');
    has((e) => Buffer.byteLength(e.statement) > 10 * 1024 * 1024, '10 MB statement');
  });

  test('the rotation happened in the middle of a session', () => {
    const files = new Set(json.filter((r) => r.applicationName === 'wl-params' && r.audit !== null).map((r) => r.file));
    assert.equal(files.size, 2);
    const sessions = new Set(json.filter((r) => r.applicationName === 'wl-params').map((r) => r.sessionId));
    assert.equal(sessions.size, 1);
  });
});

/** Local wall-clock text in `timeZone` → epoch ms (two fixed-point steps; fine outside DST gaps). */
function zonedToEpochMs(text: string, timeZone: string): { epochMs: number; abbreviation: string } {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3}) (\S+)$/.exec(text);
  assert.ok(m, `log_time format: ${text}`);
  const [, y, mo, d, h, mi, s, ms, abbreviation] = m;
  const asUtc = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!, +ms!);
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  const offsetAt = (t: number): number => {
    const p = Object.fromEntries(fmt.formatToParts(t).map((x) => [x.type, x.value]));
    return Date.UTC(+p['year']!, +p['month']! - 1, +p['day']!, +p['hour']!, +p['minute']!, +p['second']!) - Math.floor(t / 1000) * 1000;
  };
  let t = asUtc - offsetAt(asUtc);
  t = asUtc - offsetAt(t);
  return { epochMs: t, abbreviation: abbreviation! };
}

describe('log_time in non-UTC log_timezone', () => {
  const zones = [
    { zone: 'Europe/Berlin', abbreviations: ['CET', 'CEST'] },
    { zone: 'Asia/Kolkata', abbreviations: ['IST'] },
    { zone: 'America/Sao_Paulo', abbreviations: ['-03'] },
  ];
  const clusters: PgCluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((c) => c.stop()));
  });

  for (const { zone, abbreviations } of zones) {
    test(`${zone}: log_time read in the server's zone matches clock_timestamp() of the statement`, async () => {
      const cluster = await startPgCluster({ logTimezone: zone });
      clusters.push(cluster);
      const samples = await timezoneSample(cluster);
      const files = cluster.logFiles();
      for (const records of [readJsonlog(filesOfFormat(files, 'jsonlog')), readCsvlog(filesOfFormat(files, 'csvlog'))]) {
        for (const sample of samples) {
          const found = records.filter((r) => r.applicationName === 'tz-sample' && r.audit?.statement === sample.statement);
          assert.equal(found.length, 1);
          const { epochMs, abbreviation } = zonedToEpochMs(found[0]!.timestamp, zone);
          assert.ok(abbreviations.includes(abbreviation), `${zone} abbreviation ${abbreviation}`);
          assert.ok(Math.abs(epochMs - sample.serverEpochMs) < 2000, `${found[0]!.timestamp} vs ${new Date(sample.serverEpochMs).toISOString()}`);
        }
      }
    });
  }
});
