import { splitCsv } from './csv.js';

/**
 * The pgaudit message: `AUDIT: ` followed by a CSV record of 9 fields, or 10 with `pgaudit.log_rows`.
 * Fields are decoded exactly once (the message itself was already decoded from csvlog or jsonlog); the
 * parameter field keeps pgaudit's inner CSV list as written. Markers such as `<none>`, `<not logged>`,
 * `<previously logged>` and `<long param suppressed>` stay as written. Empty fields are NULL.
 */
export interface PgAuditFields {
  audit_type: string;
  statement_id: number;
  substatement_id: number;
  class: string;
  command: string | null;
  object_type: string | null;
  object_name: string | null;
  statement: string | null;
  parameter: string | null;
  /** Only with `pgaudit.log_rows = on` (pgaudit 1.6+). */
  rows: number | null;
}

export const AUDIT_PREFIX = 'AUDIT: ';
/** What pgaudit writes in STATEMENT and PARAMETER after the first entry when `log_statement_once` is on. */
export const PREVIOUSLY_LOGGED = '<previously logged>';

export type PgAuditResult = { ok: true; fields: PgAuditFields } | { ok: false; reason: string };

const INTEGER = /^\d+$/;

/** Parses a message that starts with `AUDIT: `. */
export function parsePgAuditMessage(message: string): PgAuditResult {
  if (!message.startsWith(AUDIT_PREFIX)) return { ok: false, reason: 'message does not start with "AUDIT: "' };
  const { fields: f, error } = splitCsv(message, AUDIT_PREFIX.length);
  if (error) return { ok: false, reason: `pgaudit message is not valid CSV (${error})` };
  if (f.length !== 9 && f.length !== 10) return { ok: false, reason: `pgaudit message has ${f.length} fields, expected 9 or 10` };
  const [auditType, statementId, substatementId, klass] = f;
  if (auditType !== 'SESSION' && auditType !== 'OBJECT') return { ok: false, reason: 'pgaudit AUDIT_TYPE is neither SESSION nor OBJECT' };
  if (!statementId || !INTEGER.test(statementId) || !substatementId || !INTEGER.test(substatementId)) {
    return { ok: false, reason: 'pgaudit STATEMENT_ID or SUBSTATEMENT_ID is not an integer' };
  }
  if (!klass) return { ok: false, reason: 'pgaudit CLASS is empty' };
  let rows: number | null = null;
  if (f.length === 10) {
    const r = f[9];
    if (r != null) {
      if (!INTEGER.test(r)) return { ok: false, reason: 'pgaudit ROWS is not an integer' };
      rows = Number(r);
    }
  }
  return {
    ok: true,
    fields: {
      audit_type: auditType,
      statement_id: Number(statementId),
      substatement_id: Number(substatementId),
      class: klass,
      command: f[4] ?? null,
      object_type: f[5] ?? null,
      object_name: f[6] ?? null,
      statement: f[7] ?? null,
      parameter: f[8] ?? null,
      rows,
    },
  };
}

/**
 * Decodes pgaudit's PARAMETER field into the list of bound values (NULL = `null`). Markers
 * (`<none>`, `<not logged>`, `<previously logged>`) are not lists and return `null`.
 */
export function decodeParameterList(parameter: string | null): (string | null)[] | null {
  if (parameter === null || parameter === '<none>' || parameter === '<not logged>' || parameter === PREVIOUSLY_LOGGED) return null;
  const { fields, error } = splitCsv(parameter);
  return error ? null : fields;
}
