import { failure, notingLogger, withTimeout, type CheckResult } from '../../core/check.js';
import { maskUrl } from '../../core/postgres.js';
import { tableSourceOptions, type PgAuditTableConfig } from './config.js';

/** `auditship check` of a pg_audit_table source: it connects, and the audit table is there (and which cursor it gets). */
export async function checkPgAuditTable(pipeline: string, src: PgAuditTableConfig): Promise<CheckResult> {
  const url = src.url;
  const label = `pipeline ${pipeline}: source pg_audit_table ${maskUrl(url)} ${src.table}`;
  const { PgAuditTableSource } = await import('./source.js');
  const notes: string[] = [];
  const source = new PgAuditTableSource(tableSourceOptions(src), notingLogger(notes));
  try {
    await withTimeout(source.connect(), maskUrl(url));
    return { id: 'pg_audit_table', ok: true, what: `${label}: the table ${source.layout.name} exists (cursor ${source.layout.mode})` };
  } catch (err) {
    return failure('pg_audit_table', label, err, 'check source.url and source.table');
  } finally {
    await source.close().catch(() => {});
  }
}
