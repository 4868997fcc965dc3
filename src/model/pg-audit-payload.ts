import type { CorrelationBatch, EventContext, EventKind, PgAuditRecord } from '../parse/index.js';

/**
 * What a pg_logs batch carries: packed rows (parse/packed.ts), the records that could not be packed, the
 * contexts and kinds its events reference, and what it adds to correlation (parse/session-tracker.ts).
 */
export interface PgAuditPayload {
  /** Packed rows (EVENT_ROW_COLUMNS order). */
  packed: Buffer;
  packedCount: number;
  /** Where each packed row ends (after its LF), when the parser recorded it (the ledger hashes rows in identity order). */
  packedEnds?: Uint32Array;
  /** Records holding GS characters or too long to pack, with context_id and kind_id set. */
  objects: PgAuditRecord[];
  /** Contexts and kinds the batch's events use (every one they use, whether new or not). */
  contexts: EventContext[];
  kinds: EventKind[];
  /** Sessions with `<previously logged>` records in this batch (pgaudit.log_statement_once). */
  markerSessions: string[];
  /** Sessions, failed logins, statement errors and outcomes, and the state of open sessions. */
  correlation: CorrelationBatch;
}
