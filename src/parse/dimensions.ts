/**
 * The dimensions of an event: what it shares with its session (context) and what kind of entry it is (kind).
 * The session tracker assigns their ids; packed rows and the store reference them.
 */

/** Who, from where, in which session and file: the columns an event shares with its session. */
export interface EventContext {
  id: number;
  session_id: string;
  user_name: string | null;
  database_name: string | null;
  client_addr: string | null;
  client_port: number | null;
  application_name: string | null;
  backend_type: string | null;
  session_start_ms: number | null;
  process_id: number | null;
  leader_pid: number | null;
}

/** What kind of entry an event is. */
export interface EventKind {
  id: number;
  audit_type: string | null;
  class: string | null;
  command: string | null;
  object_type: string | null;
  command_tag: string | null;
  error_severity: string | null;
}
