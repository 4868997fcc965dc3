import { ExitError } from '../../core/errors.js';
import { readDaemonStatus, type DaemonStatus } from '../../state/daemon-status.js';
import { sqlString } from '../../duckdb/sql.js';
import { openStoreReader } from '../../sinks/duckdb/reader.js';
import { DAMAGE_REASON_PREFIX } from '../../core/connector.js';
import { AlertQueries, type AlertCounts, type DeadLetter } from '../../alerts/queries.js';
import { DEFAULT_DB, defineCommand, parseCommandArgs } from '../args.js';
import { formatTable, n, size } from '../output.js';

export const usage = 'auditship status [--db FILE] [--json]';
export const summary =
  "Show per server, pipeline and file: bytes and events ingested, offset, last event time, quarantined records; per audit table: rows shipped, cursor; per application table: rows shipped, quarantined, purged; documents a search cluster refused for good (es_dead_letters), by reason; while run --follow holds the database, each pipeline's state and lag (with --json also its metrics: counters, lag, checkpoint age).";

export const spec = defineCommand({
  name: 'status',
  summary,
  usage,
  flags: {
    db: { type: 'string', value: 'FILE', description: 'the DuckDB store, opened read-only (or asked of the process writing it)', default: DEFAULT_DB },
    json: { type: 'boolean', description: 'print the status as one JSON object' },
  },
});

export async function status(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(argv, spec);
  const path = values.db ?? './auditship.duckdb';
  // Read through the process writing the file, if one does (ingest, run, run --follow).
  const db = openStoreReader(path, { lingerMs: 0 });
  try {
    const daemon = readDaemonStatus(path);
    const present = new Set((await db.sql(`SELECT table_name FROM information_schema.tables`)).rows.map((r) => String(r[0])));
    if (!present.has('ingest_files') && !present.has('table_cursors') && !present.has('app_sources'))
      throw new ExitError(1, `${db.path} has no auditship state (not written by auditship)`);
    if (daemon && !values.json) printDaemonStatus(daemon);
    const apps = present.has('app_sources')
      ? await db.all(`
      SELECT source_name, source_table, kind, rows_shipped, rows_quarantined, rows_purged,
             strftime(last_event_time, '%Y-%m-%d %H:%M:%S%z') AS last_event_time, strftime(last_purge_at, '%Y-%m-%d %H:%M:%S%z') AS last_purge_at,
             strftime(updated_at, '%Y-%m-%d %H:%M:%S%z') AS updated_at
      FROM app_sources ORDER BY source_name, source_table`)
      : [];
    const cursors = present.has('table_cursors')
      ? await db.all(`
      SELECT server, source_table, rows_shipped, rows_quarantined, strftime(last_event_time, '%Y-%m-%d %H:%M:%S%z') AS last_event_time,
             strftime(updated_at, '%Y-%m-%d %H:%M:%S%z') AS updated_at, cursor
      FROM table_cursors ORDER BY server, source_table`)
      : [];
    // Documents a search cluster refused for good, by sink and kind of reason (the part before the first
    // colon: a server's reason may quote a field's value after it).
    const dead = present.has('es_dead_letters')
      ? await db.all(`
      SELECT server, sink, trim(split_part(reason, ':', 1)) AS reason, count(*) AS documents,
             strftime(max(dead_at), '%Y-%m-%d %H:%M:%S%z') AS last_at
      FROM es_dead_letters GROUP BY ALL ORDER BY server, sink, reason`)
      : [];
    // Alerts: deliveries per state, and the dead letters (rule, destination, last error line).
    const alertQueries = new AlertQueries(db);
    const alerts = present.has('alert_outbox') ? { ...(await alertQueries.counts()), dead_letters: await alertQueries.deadLetters() } : undefined;
    const alertJson = alerts ? { alerts } : {};
    // The daemon's counters per pipeline (its metrics, as of its last status write) under `metrics`.
    const following = daemon ? (({ metrics, ...rest }) => ({ daemon: rest, ...(metrics ? { metrics } : {}) }))(daemon) : {};
    if (!present.has('ingest_files')) {
      if (values.json) {
        process.stdout.write(JSON.stringify({ db: db.path, tables: cursors, apps, dead_letters: dead, ...alertJson, ...following }) + '\n');
        return;
      }
      printCursors(cursors);
      printApps(apps);
      printDeadLetters(dead);
      printAlerts(alerts);
      return;
    }
    const rows = await db.all(`
      SELECT server, pipeline, file_name, path, format, compression, bytes_ingested, events, byte_offset, size,
             strftime(last_event_time, '%Y-%m-%d %H:%M:%S%z') AS last_event_time,
             (SELECT count(*) FROM quarantine q WHERE q.server = f.server AND q.fingerprint = f.fingerprint) AS quarantined,
             CASE WHEN EXISTS (SELECT 1 FROM quarantine q WHERE q.server = f.server AND q.fingerprint = f.fingerprint
                                 AND starts_with(q.reason, ${sqlString(DAMAGE_REASON_PREFIX)})) THEN 'damaged'
                  WHEN complete THEN 'done' ELSE 'active' END AS state, fingerprint
      FROM ingest_files f ORDER BY server, pipeline, coalesce(last_event_time, updated_at), file_name`);
    const [t] = (await db.all(`
      SELECT (SELECT count(*) FROM audit_logs) AS events, (SELECT count(*) FROM quarantine) AS quarantined,
             (SELECT strftime(max(log_time), '%Y-%m-%d %H:%M:%S%z') FROM audit_logs) AS last_event_time`)) as [Record<string, unknown>];
    // Events every sink does not hold: refused by a search cluster for good, or archived beside Parquet.
    const heldBack = {
      es_dead_letters: present.has('es_dead_letters') ? Number((await db.all('SELECT count(*) AS n FROM es_dead_letters'))[0]!['n']) : 0,
      archive_rejects: present.has('archive_objects')
        ? Number(
            (
              await db.all(
                `SELECT coalesce(sum(json_array_length(entry::JSON -> 'rejected')), 0) AS n FROM archive_objects WHERE key LIKE 'pgaudit-rejects/%' OR key LIKE '%/pgaudit-rejects/%'`,
              )
            )[0]!['n'],
          )
        : 0,
    };
    if (values.json) {
      process.stdout.write(
        JSON.stringify({ db: db.path, files: rows, totals: { ...t, ...heldBack }, tables: cursors, apps, dead_letters: dead, ...alertJson, ...following }) +
          '\n',
      );
      return;
    }
    printCursors(cursors);
    printApps(apps);
    if (rows.length === 0) {
      printDeadLetters(dead);
      printAlerts(alerts);
      if (cursors.length === 0 && apps.length === 0) process.stdout.write(`${db.path}: no files ingested yet\n`);
      return;
    }
    // Each pipeline keeps its own checkpoints ('' : those of a store upgraded from version 3, until a pipeline
    // of their server opens it).
    const groups = [...new Set(rows.map((x) => `${String(x['server'])}\0${String(x['pipeline'])}`))];
    for (const group of groups) {
      const [server, pipeline] = group.split('\0') as [string, string];
      const mine = rows.filter((x) => x['server'] === server && x['pipeline'] === pipeline);
      process.stdout.write(
        `server ${server}, ${pipeline ? `pipeline ${pipeline}` : 'checkpoints from before they were kept per pipeline (the next pipeline of this server to run takes them over)'}\n`,
      );
      process.stdout.write(
        formatTable(
          ['file', 'format', 'ingested', 'events', 'offset', 'last event', 'quarantined', 'state'],
          mine.map((x) => [
            x['file_name'],
            `${x['format']}${x['compression'] !== 'none' ? '+' + x['compression'] : ''}`,
            size(Number(x['bytes_ingested'])),
            n(Number(x['events'])),
            n(Number(x['byte_offset'])),
            x['last_event_time'],
            n(Number(x['quarantined'])),
            x['state'],
          ]),
          60,
        ) + '\n\n',
      );
    }
    printDeadLetters(dead);
    printAlerts(alerts);
    process.stdout.write(
      `${db.path}: ${n(Number(t['events']))} audit events, ${n(Number(t['quarantined']))} quarantined records, last event ${t['last_event_time'] ?? '-'}\n`,
    );
    if (heldBack.archive_rejects)
      process.stdout.write(
        `${n(heldBack.archive_rejects)} event(s) Parquet could not take, archived as NDJSON.gz under pgaudit-rejects/ (reasons in the manifest)\n`,
      );
  } finally {
    await db.close();
  }
}

function printDaemonStatus(st: DaemonStatus): void {
  process.stdout.write(`${st.db} is held by auditship run --follow (PID ${st.pid}, since ${st.startedAt}); its state as of ${st.updatedAt}:\n`);
  process.stdout.write(
    formatTable(
      ['pipeline', 'kind', 'state', 'shipped', 'backlog', 'lag', 'detail'],
      st.pipelines.map((p) => [
        p.pipeline,
        p.kind,
        p.state,
        n(Number(p['shipped'] ?? p['stored'] ?? 0)),
        p['backlogRows'] === undefined ? '-' : n(Number(p['backlogRows'])),
        p['unsent'] !== undefined ? `${n(Number(p['unsent']))} unsent` : typeof p['lagMs'] === 'number' ? `${(Number(p['lagMs']) / 1000).toFixed(1)} s` : '-',
        p['error'] ? String(p['error']) : p['kind'] === 'pg_audit_table' ? `${p['mode'] ?? ''}${p['listening'] ? ', listening' : ', polling'}` : '',
      ]),
      100,
    ) + '\n',
  );
}

function printCursors(cursors: Record<string, unknown>[]): void {
  if (cursors.length === 0) return;
  process.stdout.write(
    formatTable(
      ['server', 'audit table', 'rows shipped', 'quarantined', 'last event', 'updated', 'cursor'],
      cursors.map((c) => {
        const cur = JSON.parse(String(c['cursor'])) as { mode: string; txid: string; eventId: string };
        return [
          c['server'],
          c['source_table'],
          n(Number(c['rows_shipped'])),
          n(Number(c['rows_quarantined'])),
          c['last_event_time'],
          c['updated_at'],
          cur.mode === 'lag_window' ? `event_id ${cur.eventId}` : `(${cur.txid}, ${cur.eventId})`,
        ];
      }),
      60,
    ) + '\n\n',
  );
}

function printApps(apps: Record<string, unknown>[]): void {
  if (apps.length === 0) return;
  process.stdout.write(
    formatTable(
      ['source', 'table', 'kind', 'rows shipped', 'quarantined', 'purged', 'last event', 'last purge', 'updated'],
      apps.map((a) => [
        a['source_name'],
        a['source_table'],
        a['kind'],
        n(Number(a['rows_shipped'])),
        n(Number(a['rows_quarantined'])),
        n(Number(a['rows_purged'] ?? 0)),
        a['last_event_time'],
        a['last_purge_at'] ?? '-',
        a['updated_at'],
      ]),
      60,
    ) + '\n\n',
  );
}

function printDeadLetters(dead: Record<string, unknown>[]): void {
  if (dead.length === 0) return;
  process.stdout.write('documents refused for good by a search cluster (es_dead_letters: the documents and the full reasons)\n');
  process.stdout.write(
    formatTable(
      ['server', 'sink', 'reason', 'documents', 'last'],
      dead.map((d) => [d['server'], d['sink'], d['reason'], n(Number(d['documents'])), d['last_at']]),
      60,
    ) + '\n\n',
  );
}

function printAlerts(alerts: (AlertCounts & { dead_letters: DeadLetter[] }) | undefined): void {
  if (!alerts) return;
  process.stdout.write(`alerts: ${n(alerts.pending)} deliveries pending, ${n(alerts.delivered)} delivered, ${n(alerts.dead)} dead letters\n`);
  if (alerts.dead_letters.length === 0) {
    process.stdout.write('\n');
    return;
  }
  process.stdout.write(
    formatTable(
      ['rule', 'destination', 'attempts', 'fired', 'dead since', 'last error'],
      alerts.dead_letters.map((d) => [d.rule, d.destination, n(d.attempts), d.fired_at, d.dead_at, d.last_error ?? '']),
      100,
    ) + '\n\n',
  );
}
