/** A row of `sessions` (times in epoch ms). */
export interface StoredSession {
  process_id: number | null;
  user_name: string | null;
  database_name: string | null;
  client_addr: string | null;
  client_port: number | null;
  application_name: string | null;
  backend_type: string | null;
  session_start_ms: number | null;
  connected_at_ms: number | null;
  disconnected_at_ms: number | null;
  duration_ms: number | null;
}
