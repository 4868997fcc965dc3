import { decodeSink, decodeSource } from '../../config/load.js';
import { DUCKDB_SINK } from '../../sinks/duckdb/config.js';
import { PG_LOGS_SOURCE } from '../../sources/pg-logs/config.js';
import { ConfigError, ExitError } from '../../core/errors.js';
import { createLogger, quietLogger } from '../../core/log.js';
import { profile } from '../../core/profile.js';
import { onInterrupt } from '../signals.js';
import { createProgress, noProgress } from '../../core/progress.js';
import { runIngestPipeline } from '../../jobs/ingest.js';
import { COMMON_OUTPUT_OPTIONS, configDefault, defineCommand, parseCommandArgs } from '../args.js';
import { formatSummary } from '../output.js';

export const usage =
  'auditship ingest [--db FILE] [--server NAME] [--skip-active] [--force] [--glob GLOB] [--log-timezone ZONE] [--prefer-format jsonlog|csvlog] [--store-message] [--ledger] [--profile] [--quiet] [--json] PATH...';

export const summary = 'Ingest PostgreSQL log files or directories (pgaudit) into DuckDB.';

export const spec = defineCommand({
  name: 'ingest',
  summary,
  usage,
  flags: {
    db: {
      type: 'string',
      value: 'FILE',
      description: 'the DuckDB file the events go into (created when missing)',
      default: configDefault(DUCKDB_SINK, 'path'),
    },
    server: {
      type: 'string',
      value: 'NAME',
      description: "name of the PostgreSQL server the logs come from; part of every event's identity",
      default: configDefault(PG_LOGS_SOURCE, 'server'),
    },
    'skip-active': { type: 'boolean', description: 'skip the file the server is writing now (by default it is read up to its last complete record)' },
    force: { type: 'boolean', description: 'read every file again from its start, replacing the events stored from it' },
    glob: {
      type: 'string',
      value: 'GLOB',
      description: 'which file names in a directory are log files (*, ?, [..] and {a,b})',
      default: configDefault(PG_LOGS_SOURCE, 'file_glob'),
    },
    'log-timezone': {
      type: 'string',
      value: 'ZONE',
      description:
        "the server's log_timezone as an IANA name (SHOW log_timezone); without it a file whose times carry an ambiguous zone abbreviation (IST, CST) fails",
    },
    'prefer-format': {
      type: 'string',
      value: 'jsonlog|csvlog',
      description: 'when the server writes both, the format to read',
      default: configDefault(PG_LOGS_SOURCE, 'prefer_format'),
    },
    ledger: {
      type: 'boolean',
      description: 'append a hash-chained ledger entry with each committed batch (auditship verify checks the store against it); the sink option ledger',
    },
    'store-message': {
      type: 'boolean',
      description: 'also store each raw pgaudit message (audit_logs.raw_message); without it the message is rebuilt from the parsed fields',
    },
    profile: { type: 'boolean', description: 'print on stderr where the time went, per step' },
    ...COMMON_OUTPUT_OPTIONS,
  },
  notes: `  PATH: a log file, or the server's log_directory (not recursive); several may be given. csvlog and jsonlog
  files, plain, .gz or .zst.
  Exit codes: 0 ok, 1 a file failed or no log file was found, 2 usage error; 130/143 after Ctrl-C/SIGTERM
  (what was read is committed).`,
});

export async function ingest(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, spec);
  if (positionals.length === 0) throw new ExitError(2, `no PATH given (a log file or the server's log_directory)\nusage: ${usage}`);
  const problems: string[] = [];
  const rawSource: Record<string, unknown> = { type: 'pg_logs', path: positionals };
  if (values.server !== undefined) rawSource['server'] = values.server;
  if (values['skip-active']) rawSource['skip_active'] = true;
  if (values.glob !== undefined) rawSource['file_glob'] = values.glob;
  if (values['log-timezone'] !== undefined) rawSource['log_timezone'] = values['log-timezone'];
  if (values['prefer-format'] !== undefined) rawSource['prefer_format'] = values['prefer-format'];
  const source = decodeSource(rawSource, 'ingest', problems);
  const rawSink: Record<string, unknown> = { type: 'duckdb' };
  if (values.db !== undefined) rawSink['path'] = values.db;
  if (values['store-message']) rawSink['store_message'] = true;
  if (values.ledger) rawSink['ledger'] = true;
  const sink = decodeSink(rawSink, 'ingest', problems);
  if (problems.length || !source || !sink) throw new ConfigError(problems.map((p) => p.replace(/^ingest\./, '--')));
  const log = values.quiet ? quietLogger() : createLogger();
  const progress = values.quiet || values.json ? noProgress : createProgress(process.stderr, log);
  if (values.profile) profile.start();
  const interrupt = onInterrupt();
  let summaryResult;
  try {
    summaryResult = await runIngestPipeline(
      { name: 'ingest', source, sinks: [sink] },
      { force: Boolean(values.force), log, progress, requireLogFiles: true, signal: interrupt.signal },
    );
  } finally {
    interrupt.dispose();
  }
  if (values.profile) process.stderr.write(profile.table(`ingest of ${summaryResult.events} events, ${summaryResult.bytes} bytes`) + '\n');
  if (values.json) process.stdout.write(JSON.stringify(summaryResult) + '\n');
  else if (!values.quiet) process.stdout.write(formatSummary(summaryResult) + '\n');
  interrupt.exitIfInterrupted(`${summaryResult.stored.toLocaleString('en')} new events committed`);
  if (!summaryResult.ok) {
    throw new ExitError(1, values.json || !values.quiet ? '' : summaryResult.errors.map((e) => `${e.file}: ${e.message}`).join('\n'));
  }
}
