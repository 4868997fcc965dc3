/**
 * `auditship check` and `init` read the server's settings and catalogs; on a server that audits everything
 * (pgaudit.log = 'all', catalog reads included) those reads must not land in the audit log — a shipper's own
 * queries are noise that feeds itself. Checked in the csvlog a real PostgreSQL 15 + pgaudit cluster writes:
 * a query of another session in the same window is there, the CLI's (application_name auditship) are not.
 * A role that may not set pgaudit.log still gets its checks, audited like any role.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js';
import { hasStackTrace, lines, runCli, scratchDir } from '../helpers/ingest-cli.js';
import { parseCsv, readLogText } from '../helpers/raw-logs.js';

/** csvlog columns (0-based): message, application_name. */
const MESSAGE = 13;
const APPLICATION = 22;

describe('check and init keep their own queries out of the audit log', () => {
  let cluster: PgCluster;
  const scratch = scratchDir('own-queries');

  before(async () => {
    cluster = await startPgCluster({ logDestination: 'csvlog' });
    await cluster.exec('CREATE ROLE monitor LOGIN; GRANT pg_read_all_settings TO monitor');
  });
  after(async () => {
    await cluster?.stop();
    scratch.cleanup();
  });

  /** The pgaudit records written since `from` (the file sizes then): [application_name, message]. */
  async function auditRecordsSince(from: Map<string, number>): Promise<[string, string][]> {
    await cluster.flushLogs();
    const out: [string, string][] = [];
    for (const file of cluster.logFiles().filter((f) => f.endsWith('.csv'))) {
      const text = readLogText(file).slice(from.get(file) ?? 0);
      for (const r of parseCsv(text)) {
        if (r[MESSAGE]?.startsWith('AUDIT: ')) out.push([r[APPLICATION] ?? '', r[MESSAGE]]);
      }
    }
    return out;
  }
  async function logSizes(): Promise<Map<string, number>> {
    await cluster.flushLogs();
    return new Map(cluster.logFiles().map((f) => [f, readLogText(f).length]));
  }
  /** A statement of another session, audited: proof the window's records are in the log. */
  async function otherSession(marker: string): Promise<void> {
    await cluster.exec(`SET application_name = 'other'; SELECT '${marker}' AS marker`);
  }

  test('as a superuser: check, check --config (its table sources) and init read everything, and none of it is audited', async () => {
    const from = await logSizes();
    const marker = `marker-${randomUUID()}`;
    const checked = await runCli(['check', '--url', cluster.url()]);
    assert.ok(!hasStackTrace(checked.stdout + checked.stderr), checked.stderr);
    const out = lines(checked.stdout);
    assert.match(out[0]!, /^✔ connected to .* as superuser postgres$/);
    assert.ok(out.includes("✔ pgaudit.log = 'all' audits READ, WRITE, FUNCTION, ROLE, DDL, MISC, MISC_SET"), checked.stdout);
    await otherSession(marker);
    const init = await runCli(['init', '--url', cluster.url(), '--output', join(scratch.dir, 'auditship.yaml')]);
    assert.equal(init.code, 0, init.stdout + init.stderr);
    // check --config also connects every table source the way its pipeline does.
    const config = join(scratch.dir, 'tables.yaml');
    writeFileSync(
      config,
      [
        'pipelines:',
        '  outbox:',
        `    source: { type: sql_outbox, url: "${cluster.url()}" }`,
        `    sinks: [ { type: duckdb, path: "${join(scratch.dir, 'outbox.duckdb')}" } ]`,
        '  table:',
        `    source: { type: pg_audit_table, url: "${cluster.url()}" }`,
        `    sinks: [ { type: duckdb, path: "${join(scratch.dir, 'table.duckdb')}" } ]`,
        '',
      ].join('\n'),
    );
    const tables = await runCli(['check', '--config', config]);
    assert.ok(!hasStackTrace(tables.stdout + tables.stderr), tables.stderr);
    assert.match(tables.stdout, /pipeline outbox: source sql_outbox .*audit_logs/);
    assert.match(tables.stdout, /pipeline table: source pg_audit_table .*auditship\.logged_actions/);

    const records = await auditRecordsSince(from);
    assert.ok(
      records.some(([app, m]) => app === 'other' && m.includes(marker)),
      `the other session's SELECT is audited:\n${records.map((r) => r.join(' | ')).join('\n')}`,
    );
    const ours = records.filter(([app, m]) => app === 'auditship' || /pg_settings|pg_file_settings|pg_db_role_setting|pg_extension/.test(m));
    assert.deepEqual(ours, [], 'no audit record of check or init');
  });

  test('a role that may not set pgaudit.log: the checks run as before (the SET is refused silently), audited like any role', async () => {
    const from = await logSizes();
    const url = cluster.url().replace('postgres@', 'monitor@');
    const checked = await runCli(['check', '--url', url]);
    assert.ok(!hasStackTrace(checked.stdout + checked.stderr), checked.stderr);
    assert.equal(checked.stderr, '');
    const out = lines(checked.stdout);
    assert.match(out[0]!, /^✔ connected to .* as monitor \(pg_read_all_settings\)$/);
    assert.ok(
      out.some((l) => l.startsWith("✔ pgaudit.log = 'all' audits READ")),
      checked.stdout,
    );
    assert.ok(!out.some((l) => /permission denied/.test(l)), checked.stdout);
    // The same records the superuser's run left out are here: the first test's absence is not a blind spot.
    const records = await auditRecordsSince(from);
    assert.ok(
      records.some(([app, m]) => app === 'auditship' && /pg_settings/.test(m)),
      `monitor's reads are audited:\n${records.map((r) => r.join(' | ')).join('\n')}`,
    );
  });
});
