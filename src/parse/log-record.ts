import type { CsvError } from './csv.js';
import { AUDIT_PREFIX, parsePgAuditMessage, type PgAuditFields } from './pgaudit.js';
import type { TimestampResolver } from './timestamp.js';
import { applicationNameOf, isSessionMessage, sessionRecordKind, sessionTimeOf, type SessionRecord } from './session-log.js';
import { TimestampError } from './timestamp.js';

/**
 * One PostgreSQL server log record carrying a pgaudit entry, with every csvlog/jsonlog column the event
 * model keeps. Times are epoch milliseconds (UTC); `query_id` stays a string because it is a full int64.
 */
export interface PgAuditRecord extends PgAuditFields {
  log_time_ms: number;
  user_name: string | null;
  database_name: string | null;
  process_id: number | null;
  client_addr: string | null;
  client_port: number | null;
  session_id: string;
  session_line_num: number;
  command_tag: string | null;
  session_start_ms: number | null;
  virtual_transaction_id: string | null;
  transaction_id: number | null;
  error_severity: string | null;
  application_name: string | null;
  backend_type: string | null;
  leader_pid: number | null;
  query_id: string | null;
  /** The message exactly as logged (`AUDIT: ...`). */
  message: string;
  /** Set by the reader on records that travel as objects: their context and kind ids (session-tracker.ts). */
  context_id?: number;
  kind_id?: number;
}

/** The server log columns of a PgAuditRecord (everything but the pgaudit fields). */
type LogColumns = Omit<PgAuditRecord, keyof PgAuditFields>;

/** Joins log columns and pgaudit fields in one object literal: V8 keeps a fixed-shape object (no spread). */
function auditRecord(l: LogColumns, a: PgAuditFields): PgAuditRecord {
  return {
    log_time_ms: l.log_time_ms,
    user_name: l.user_name,
    database_name: l.database_name,
    process_id: l.process_id,
    client_addr: l.client_addr,
    client_port: l.client_port,
    session_id: l.session_id,
    session_line_num: l.session_line_num,
    command_tag: l.command_tag,
    session_start_ms: l.session_start_ms,
    virtual_transaction_id: l.virtual_transaction_id,
    transaction_id: l.transaction_id,
    error_severity: l.error_severity,
    application_name: l.application_name,
    backend_type: l.backend_type,
    leader_pid: l.leader_pid,
    query_id: l.query_id,
    message: l.message,
    audit_type: a.audit_type,
    statement_id: a.statement_id,
    substatement_id: a.substatement_id,
    class: a.class,
    command: a.command,
    object_type: a.object_type,
    object_name: a.object_name,
    statement: a.statement,
    parameter: a.parameter,
    rows: a.rows,
  };
}

/** What became of one log record. */
export type RecordOutcome =
  { kind: 'audit'; record: PgAuditRecord } | { kind: 'session'; record: SessionRecord } | { kind: 'other' } | { kind: 'bad'; reason: string };

/** csvlog column counts by PostgreSQL version: 12 → 23, 13 → 24, 14–18 → 26. */
export const CSVLOG_COLUMN_COUNTS = [23, 24, 26] as const;

const OTHER: RecordOutcome = { kind: 'other' };
const INTEGER = /^-?\d+$/;

function int(value: string | null | undefined): number | null {
  return value != null && INTEGER.test(value) ? Number(value) : null;
}

/** Splits csvlog `connection_from` (`host:port`, `[local]`, `::1:5432`) into address and port. */
function splitConnectionFrom(value: string | null): [string | null, number | null] {
  if (value === null) return [null, null];
  const colon = value.lastIndexOf(':');
  if (colon <= 0 || !INTEGER.test(value.slice(colon + 1))) return [value, null];
  return [value.slice(0, colon), Number(value.slice(colon + 1))];
}

/** A record's identity and times, or why it has none (a malformed time, no session). */
function recordIdentity(
  sessionId: string | null | undefined,
  lineNum: number | null,
  logTime: string,
  sessionStart: string | null,
  times: TimestampResolver,
  missing: string,
): { sessionId: string; lineNum: number; logTime: number; sessionStart: number | null } | { kind: 'bad'; reason: string } {
  if (!sessionId || lineNum === null) return { kind: 'bad', reason: missing };
  try {
    return { sessionId, lineNum, logTime: times.toEpochMs(logTime), sessionStart: sessionStart ? times.toEpochMs(sessionStart) : null };
  } catch (err) {
    if (err instanceof TimestampError && err.code !== 'malformed') throw err;
    return { kind: 'bad', reason: (err as Error).message };
  }
}

/**
 * Maps the decoded fields of one csvlog record. `expectedColumns` is the count detected for the file.
 */
export function csvlogRecord(fields: (string | null)[], csvError: CsvError | null, expectedColumns: number, times: TimestampResolver): RecordOutcome {
  if (csvError) return { kind: 'bad', reason: `csvlog record is not valid CSV (${csvError})` };
  const message = fields[13];
  if (fields.length !== expectedColumns) {
    if (message == null || !message.startsWith(AUDIT_PREFIX)) {
      if (fields.length < 14) return { kind: 'bad', reason: `csvlog record has ${fields.length} columns, expected ${expectedColumns}` };
    }
    return { kind: 'bad', reason: `csvlog record has ${fields.length} columns, expected ${expectedColumns}` };
  }
  if (message == null || !message.startsWith(AUDIT_PREFIX)) {
    return isSessionMessage(fields[11], message) ? csvlogSessionRecord(fields, message ?? '', times) : OTHER;
  }
  for (const i of [3, 10, 24, 25]) {
    const v = fields[i];
    if (v != null && !INTEGER.test(v))
      return { kind: 'bad', reason: 'csvlog record has a malformed number (process_id, transaction_id, leader_pid or query_id)' };
  }
  const audit = parsePgAuditMessage(message);
  if (!audit.ok) return { kind: 'bad', reason: audit.reason };
  const id = recordIdentity(fields[5], int(fields[6]), fields[0] ?? '', fields[8] ?? null, times, 'csvlog record has no session_id or session_line_num');
  if ('kind' in id) return id;
  const { sessionId, lineNum, logTime, sessionStart } = id;
  const [addr, port] = splitConnectionFrom(fields[4] ?? null);
  const a = audit.fields;
  return {
    kind: 'audit',
    record: auditRecord(
      {
        log_time_ms: logTime,
        user_name: fields[1] ?? null,
        database_name: fields[2] ?? null,
        process_id: int(fields[3]),
        client_addr: addr,
        client_port: port,
        session_id: sessionId,
        session_line_num: lineNum,
        command_tag: fields[7] ?? null,
        session_start_ms: sessionStart,
        virtual_transaction_id: fields[9] ?? null,
        transaction_id: int(fields[10]),
        error_severity: fields[11] ?? null,
        // jsonlog omits an empty application_name; csvlog writes "". Both become NULL.
        application_name: fields[22] || null,
        backend_type: fields[23] ?? null,
        leader_pid: int(fields[24]),
        query_id: fields[25] ?? null,
        message,
      },
      a,
    ),
  };
}

/** A connection, disconnection, authentication failure or error record of csvlog (see session-log.ts). */
function csvlogSessionRecord(fields: (string | null)[], message: string, times: TimestampResolver): RecordOutcome {
  const severity = fields[11] ?? null;
  const sqlstate = fields[12] || null;
  const kind = sessionRecordKind(severity, sqlstate, message);
  if (kind === null) return OTHER;
  const id = recordIdentity(fields[5], int(fields[6]), fields[0] ?? '', fields[8] ?? null, times, 'csvlog record has no session_id or session_line_num');
  if ('kind' in id) return id;
  const { sessionId, lineNum, logTime, sessionStart } = id;
  const [addr, port] = splitConnectionFrom(fields[4] ?? null);
  return {
    kind: 'session',
    record: {
      kind,
      log_time_ms: logTime,
      user_name: fields[1] || null,
      database_name: fields[2] || null,
      process_id: int(fields[3]),
      client_addr: addr,
      client_port: port,
      session_id: sessionId,
      session_line_num: lineNum,
      session_start_ms: sessionStart,
      virtual_transaction_id: fields[9] || null,
      transaction_id: int(fields[10]),
      severity,
      sqlstate,
      message,
      detail: fields[14] || null,
      application_name: fields[22] || (kind === 'connect' ? applicationNameOf(message) : null),
      backend_type: fields[23] || null,
      query: kind === 'error' ? fields[19] || null : null,
      duration_ms: kind === 'disconnect' ? sessionTimeOf(message) : null,
    },
  };
}

/** A connection, disconnection, authentication failure or error record of jsonlog (see session-log.ts). */
function jsonlogSessionRecord(o: Record<string, unknown>, message: string, times: TimestampResolver): RecordOutcome {
  const severity = str(o['error_severity']);
  const sqlstate = str(o['state_code']);
  const kind = sessionRecordKind(severity, sqlstate, message);
  if (kind === null) return OTHER;
  const id = recordIdentity(
    str(o['session_id']),
    num(o['line_num']),
    str(o['timestamp']) ?? '',
    str(o['session_start']),
    times,
    'jsonlog record has no session_id or line_num',
  );
  if ('kind' in id) return id;
  const { sessionId, lineNum, logTime, sessionStart } = id;
  return {
    kind: 'session',
    record: {
      kind,
      log_time_ms: logTime,
      user_name: str(o['user']) || null,
      database_name: str(o['dbname']) || null,
      process_id: num(o['pid']),
      client_addr: str(o['remote_host']),
      client_port: num(o['remote_port']),
      session_id: sessionId,
      session_line_num: lineNum,
      session_start_ms: sessionStart,
      virtual_transaction_id: str(o['vxid']) || null,
      transaction_id: num(o['txid']),
      severity,
      sqlstate,
      message,
      detail: str(o['detail']),
      application_name: str(o['application_name']) || (kind === 'connect' ? applicationNameOf(message) : null),
      backend_type: str(o['backend_type']),
      query: kind === 'error' ? str(o['statement']) : null,
      duration_ms: kind === 'disconnect' ? sessionTimeOf(message) : null,
    },
  };
}

/** Cheap pre-test of a jsonlog line for a session record (before JSON.parse). */
const SESSION_LINE = /"error_severity":"(?:ERROR|FATAL|PANIC)"|"message":"(?:connection authorized: |replication connection authorized: |disconnection: )/;

const MESSAGE_MARKER = '"message":"AUDIT: ';

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null;
}
function num(v: unknown): number | null {
  return typeof v === 'number' ? v : typeof v === 'string' && INTEGER.test(v) ? Number(v) : null;
}

/** jsonlog writes query_id as a bare int64; JSON.parse rounds those beyond 2^53, so reread the digits. */
function exactQueryId(v: unknown, line: string): string | null {
  if (typeof v === 'string') return INTEGER.test(v) ? v : null;
  if (typeof v !== 'number') return null;
  if (Number.isSafeInteger(v)) return String(v);
  return /"query_id":(-?\d+)/.exec(line)?.[1] ?? String(v);
}

/** Maps one jsonlog line (without its newline). Lines that are not pgaudit entries are skipped unparsed. */
export function jsonlogRecord(line: string, times: TimestampResolver): RecordOutcome {
  if (line.indexOf(MESSAGE_MARKER) < 0) {
    // Not an audit entry — unless the line is not JSON at all, which is worth a quarantine.
    if (line.length === 0 || line.charCodeAt(0) !== 123 /* { */ || line.charCodeAt(line.length - 1) !== 125) {
      return line.trim() === '' ? OTHER : { kind: 'bad', reason: 'jsonlog line is not a JSON object' };
    }
    if (!SESSION_LINE.test(line)) return OTHER;
  }
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { kind: 'bad', reason: 'jsonlog line is not valid JSON' };
  }
  if (o === null || typeof o !== 'object') return { kind: 'bad', reason: 'jsonlog line is not a JSON object' };
  const message = o['message'];
  if (typeof message !== 'string' || !message.startsWith(AUDIT_PREFIX)) {
    return typeof message === 'string' && isSessionMessage(str(o['error_severity']), message) ? jsonlogSessionRecord(o, message, times) : OTHER;
  }
  const audit = parsePgAuditMessage(message);
  if (!audit.ok) return { kind: 'bad', reason: audit.reason };
  const id = recordIdentity(
    str(o['session_id']),
    num(o['line_num']),
    str(o['timestamp']) ?? '',
    str(o['session_start']),
    times,
    'jsonlog record has no session_id or line_num',
  );
  if ('kind' in id) return id;
  const { sessionId, lineNum, logTime, sessionStart } = id;
  const txid = num(o['txid']);
  const a = audit.fields;
  return {
    kind: 'audit',
    record: auditRecord(
      {
        log_time_ms: logTime,
        user_name: str(o['user']),
        database_name: str(o['dbname']),
        process_id: num(o['pid']),
        client_addr: str(o['remote_host']),
        client_port: num(o['remote_port']),
        session_id: sessionId,
        session_line_num: lineNum,
        command_tag: str(o['ps']),
        session_start_ms: sessionStart,
        virtual_transaction_id: str(o['vxid']),
        transaction_id: txid,
        error_severity: str(o['error_severity']),
        application_name: str(o['application_name']) || null,
        backend_type: str(o['backend_type']),
        leader_pid: num(o['leader_pid']),
        query_id: exactQueryId(o['query_id'], line),
        message,
      },
      a,
    ),
  };
}
