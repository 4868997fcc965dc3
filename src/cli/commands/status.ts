import { ExitError } from '../../core/errors.js';
import { openDatabase } from '../../sinks/duckdb/database.js';
import { parseCommandArgs } from '../args.js';
import { formatTable, n, size } from '../output.js';

export const usage = 'auditship status [--db FILE] [--json]';
export const summary = 'Show per server and file: bytes and events ingested, offset, last event time, quarantined records.';

export async function status(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(argv, {
    db: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, usage);
  if (values.help) { process.stdout.write(`${summary}\nusage: ${usage}\n`); return; }
  const db = await openDatabase(values.db ?? './auditship.duckdb', { readOnly: true, memoryLimit: '1GB', threads: 2 });
  try {
    const tables = await db.connection.runAndReadAll(`SELECT count(*) FROM information_schema.tables WHERE table_name = 'ingest_files'`);
    if (Number(tables.getRows()[0]![0]) === 0) throw new ExitError(1, `${db.path} has no auditship state (not written by auditship ingest)`);
    const r = await db.connection.runAndReadAll(`
      SELECT server, file_name, path, format, compression, bytes_ingested, events, byte_offset, size,
             strftime(last_event_time, '%Y-%m-%d %H:%M:%S%z') AS last_event_time,
             (SELECT count(*) FROM quarantine q WHERE q.server = f.server AND q.fingerprint = f.fingerprint) AS quarantined,
             CASE WHEN complete THEN 'done' ELSE 'active' END AS state, fingerprint
      FROM ingest_files f ORDER BY server, coalesce(last_event_time, updated_at), file_name`);
    const rows = r.getRowObjectsJson();
    const totals = await db.connection.runAndReadAll(`
      SELECT (SELECT count(*) FROM audit_logs) AS events, (SELECT count(*) FROM quarantine) AS quarantined,
             (SELECT strftime(max(log_time), '%Y-%m-%d %H:%M:%S%z') FROM audit_logs) AS last_event_time`);
    const t = totals.getRowObjectsJson()[0]!;
    if (values.json) {
      process.stdout.write(JSON.stringify({ db: db.path, files: rows, totals: t }) + '\n');
      return;
    }
    if (rows.length === 0) {
      process.stdout.write(`${db.path}: no files ingested yet\n`);
      return;
    }
    const servers = [...new Set(rows.map((x) => String(x['server'])))];
    for (const server of servers) {
      const mine = rows.filter((x) => x['server'] === server);
      process.stdout.write(`server ${server}\n`);
      process.stdout.write(formatTable(
        ['file', 'format', 'ingested', 'events', 'offset', 'last event', 'quarantined', 'state'],
        mine.map((x) => [
          x['file_name'], `${x['format']}${x['compression'] !== 'none' ? '+' + x['compression'] : ''}`, size(Number(x['bytes_ingested'])),
          n(Number(x['events'])), n(Number(x['byte_offset'])), x['last_event_time'], n(Number(x['quarantined'])), x['state'],
        ]), 60) + '\n\n');
    }
    process.stdout.write(`${db.path}: ${n(Number(t['events']))} audit events, ${n(Number(t['quarantined']))} quarantined records, last event ${t['last_event_time'] ?? '-'}\n`);
  } finally {
    db.close();
  }
}
