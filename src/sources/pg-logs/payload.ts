import type { PgAuditRecord, SessionRecord } from '../../parse/index.js';

/** What a pg_logs batch carries: packed rows (parse/packed.ts), plus the records that could not be packed. */
export interface PgAuditPayload {
  /** Packed rows (PACKED_COLUMNS order). */
  packed: Buffer;
  packedCount: number;
  /** Records holding US/RS/GS characters, which the packed form cannot carry. */
  objects: PgAuditRecord[];
  /** Sessions with `<previously logged>` records in this batch (pgaudit.log_statement_once). */
  markerSessions: string[];
  /** Connection, disconnection, authentication failure and error records of the range (correlation). */
  sessionRecords: SessionRecord[];
}
