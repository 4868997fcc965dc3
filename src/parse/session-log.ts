/**
 * The server log records (not pgaudit entries) that correlation needs, from the same csvlog/jsonlog files:
 *  - `connect`: "connection authorized: user=… database=… application_name=…" (log_connections);
 *  - `disconnect`: "disconnection: session time: H:MM:SS.mmm user=… database=… host=… port=…"
 *    (log_disconnections);
 *  - `logon_failure`: a FATAL record of SQLSTATE class 28 (invalid authorization: a wrong password, no
 *    pg_hba.conf entry, an unknown role);
 *  - `error`: any other ERROR, FATAL or PANIC of a session — the outcome of the statement it ended.
 * Everything else in the log (checkpoints, autovacuum, warnings) is skipped, as before.
 */
export type SessionRecordKind = 'connect' | 'disconnect' | 'logon_failure' | 'error';

export interface SessionRecord {
  kind: SessionRecordKind;
  log_time_ms: number;
  user_name: string | null;
  database_name: string | null;
  process_id: number | null;
  client_addr: string | null;
  client_port: number | null;
  session_id: string;
  session_line_num: number;
  session_start_ms: number | null;
  virtual_transaction_id: string | null;
  transaction_id: number | null;
  severity: string | null;
  sqlstate: string | null;
  message: string;
  detail: string | null;
  application_name: string | null;
  backend_type: string | null;
  /**
   * errors: the statement the server logged with the error (log_min_error_statement). It only serves to
   * find the audited statement the error ended, and is not stored.
   */
  query: string | null;
  /** disconnect: the session time the server reported. */
  duration_ms: number | null;
}

const CONNECT = ['connection authorized: ', 'replication connection authorized: '];
const DISCONNECT = 'disconnection: ';

/** True for the messages and severities a SessionRecord is made of (a cheap test before full parsing). */
export function isSessionMessage(severity: string | null | undefined, message: string | null | undefined): boolean {
  if (severity === 'ERROR' || severity === 'FATAL' || severity === 'PANIC') return true;
  if (!message) return false;
  return message.startsWith(DISCONNECT) || CONNECT.some((p) => message.startsWith(p));
}

/** The kind of a record, or null when correlation does not use it. */
export function sessionRecordKind(severity: string | null, sqlstate: string | null, message: string): SessionRecordKind | null {
  if (severity === 'LOG') {
    if (message.startsWith(DISCONNECT)) return 'disconnect';
    if (CONNECT.some((p) => message.startsWith(p))) return 'connect';
    return null;
  }
  if (severity === 'FATAL' && sqlstate !== null && sqlstate.startsWith('28')) return 'logon_failure';
  if (severity === 'ERROR' || severity === 'FATAL' || severity === 'PANIC') return 'error';
  return null;
}

/** `application_name=…` of a connection authorized message (it runs to an " SSL enabled (" / " GSS (" suffix). */
export function applicationNameOf(message: string): string | null {
  const at = message.indexOf(' application_name=');
  if (at < 0) return null;
  let value = message.slice(at + ' application_name='.length);
  for (const suffix of [' SSL enabled (', ' GSS (']) {
    const cut = value.indexOf(suffix);
    if (cut >= 0) value = value.slice(0, cut);
  }
  return value === '' ? null : value;
}

/** The session time of a disconnection message (`session time: 1:02:03.456`) in ms, or null. */
export function sessionTimeOf(message: string): number | null {
  const m = /session time: (\d+):(\d\d):(\d\d)\.(\d{3})/.exec(message);
  if (!m) return null;
  return ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]);
}
