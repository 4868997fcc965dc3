import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startPgCluster, type PgCluster } from './pg-cluster.js';
import { filesOfFormat, readCsvlog, readJsonlog, type RawLogRecord } from './raw-logs.js';

describe('throwaway PostgreSQL cluster with pgaudit', () => {
  let cluster: PgCluster;

  before(async () => {
    cluster = await startPgCluster({ settings: { 'pgaudit.log_rows': 'on' } });
  });
  after(async () => {
    await cluster?.stop();
  });

  const probe = `SELECT 'harness, "probe"' AS probe`;
  const auditOf = (records: RawLogRecord[]): RawLogRecord[] => records.filter((r) => r.applicationName === 'harness' && r.audit?.statement === probe);

  test('an audited SELECT appears as an AUDIT: SESSION line in both the csvlog and the jsonlog', async () => {
    const client = await cluster.client();
    try {
      await client.query("SET application_name = 'harness'");
      await client.query(probe);
    } finally {
      await client.end();
    }
    await cluster.flushLogs();

    const files = cluster.logFiles();
    assert.ok(
      files.every((f) => f.startsWith(cluster.logDir + '/')),
      'absolute paths in the log dir',
    );
    assert.deepEqual(files, [...files].sort());
    const csv = filesOfFormat(files, 'csvlog');
    const json = filesOfFormat(files, 'jsonlog');
    assert.equal(csv.length, 1);
    assert.equal(json.length, 1);

    const raw = readFileSync(json[0]!, 'utf8');
    assert.match(raw, /"message":"AUDIT: SESSION,\d+,1,READ,SELECT,,,\\"SELECT 'harness, \\"\\"probe\\"\\"' AS probe\\",<none>,1"/);
    assert.match(readFileSync(csv[0]!, 'utf8'), /"AUDIT: SESSION,\d+,1,READ,SELECT,,,""SELECT 'harness, """"probe""""' AS probe"",<none>,1"/);

    for (const records of [readJsonlog(json), readCsvlog(csv)]) {
      const found = auditOf(records);
      assert.equal(found.length, 1);
      assert.equal(found[0]!.audit!.auditType, 'SESSION');
      assert.equal(found[0]!.audit!.rows, 1, 'settings reach postgresql.conf (pgaudit.log_rows)');
      assert.equal(found[0]!.dbname, 'postgres');
      assert.match(found[0]!.timestamp, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/);
    }
  });

  test('the server runs with the requested configuration', async () => {
    const client = await cluster.client();
    try {
      const { rows } = await client.query<{ name: string; setting: string }>(
        `SELECT name, setting FROM pg_settings
          WHERE name IN ('log_destination', 'log_timezone', 'logging_collector', 'pgaudit.log', 'pgaudit.log_parameter',
                         'pgaudit.log_relation', 'log_directory', 'unix_socket_directories', 'port')`,
      );
      const settings = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
      assert.deepEqual(settings, {
        log_destination: 'csvlog,jsonlog',
        log_directory: cluster.logDir,
        log_timezone: 'UTC',
        logging_collector: 'on',
        'pgaudit.log': 'all',
        'pgaudit.log_parameter': 'on',
        'pgaudit.log_relation': 'on',
        port: String(cluster.port),
        unix_socket_directories: cluster.socketDir,
      });
      const ext = await client.query("SELECT extversion FROM pg_extension WHERE extname = 'pgaudit'");
      assert.equal(ext.rowCount, 1);
    } finally {
      await client.end();
    }
  });

  test('rotate() switches to new files and keeps the old ones', async () => {
    const before = cluster.currentLogFiles();
    assert.deepEqual(Object.keys(before).sort(), ['csvlog', 'jsonlog']);
    await cluster.rotate();
    const afterRotation = cluster.currentLogFiles();
    assert.notEqual(afterRotation['csvlog'], before['csvlog']);
    assert.notEqual(afterRotation['jsonlog'], before['jsonlog']);
    await cluster.exec("SET application_name = 'after-rotation'; SELECT 2 AS after_rotation");
    await cluster.flushLogs();

    const json = filesOfFormat(cluster.logFiles(), 'jsonlog');
    assert.equal(json.length, 2);
    assert.equal(json[1], afterRotation['jsonlog']);
    const late = readJsonlog(json).filter((r) => r.applicationName === 'after-rotation' && r.audit !== null);
    assert.equal(late.length, 2);
    assert.ok(late.every((r) => r.file === afterRotation['jsonlog']));

    await cluster.rotate(); // a second rotation right away must still get a new name
    assert.notEqual(cluster.currentLogFiles()['jsonlog'], afterRotation['jsonlog']);
  });

  test('stop() shuts the server down and removes the temp dir', async () => {
    const { baseDir, port } = cluster;
    assert.ok(existsSync(baseDir));
    await cluster.stop();
    assert.equal(existsSync(baseDir), false);
    await assert.rejects(
      (async () => {
        const pg = (await import('pg')).default;
        const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', connectionTimeoutMillis: 2000 });
        await c.connect();
      })(),
    );
    await cluster.stop(); // idempotent
  });
});

describe('startPgCluster options', () => {
  test('a cluster without jsonlog and with another time zone', async () => {
    const cluster = await startPgCluster({ logDestination: 'csvlog', logTimezone: 'Europe/Berlin' });
    try {
      await cluster.exec("SET application_name = 'csv-only'; SELECT 1");
      await cluster.flushLogs();
      assert.deepEqual(Object.keys(cluster.currentLogFiles()), ['csvlog']);
      assert.equal(filesOfFormat(cluster.logFiles(), 'jsonlog').length, 0);
      const records = readCsvlog(filesOfFormat(cluster.logFiles(), 'csvlog')).filter((r) => r.applicationName === 'csv-only');
      assert.equal(records.filter((r) => r.audit !== null).length, 2);
      assert.match(records[0]!.timestamp, / CES?T$/);
    } finally {
      await cluster.stop();
    }
  });
});
