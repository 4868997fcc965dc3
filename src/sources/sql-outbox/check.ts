import { failure, notingLogger, withTimeout, type CheckResult } from '../../core/check.js';
import { maskUrl } from '../../core/postgres.js';
import { outboxSourceConfig, type AppTableConfig } from './config.js';

/** `auditship check` of a sql_outbox or django_auditlog source: it connects, and the table is there. */
export async function checkAppTable(pipeline: string, src: AppTableConfig): Promise<CheckResult> {
  const url = src.url;
  const label = `pipeline ${pipeline}: source ${src.type} ${maskUrl(url)} ${src.table}`;
  const { openOutboxSource } = await import('./index.js');
  const notes: string[] = [];
  let opened: Awaited<ReturnType<typeof openOutboxSource>> | undefined;
  try {
    opened = await withTimeout(openOutboxSource(outboxSourceConfig(src, pipeline), notingLogger(notes), pipeline), maskUrl(url));
    const server = opened.client.version.split(/[\s-]/)[0];
    return {
      id: src.type,
      ok: true,
      what: `${label}: the table ${opened.mapping.table} exists (${opened.client.dialect === 'postgres' ? 'PostgreSQL' : 'MariaDB/MySQL'} ${server})${notes.length ? `; note: ${notes.join('; ')}` : ''}`,
    };
  } catch (err) {
    return failure(src.type, label, err, 'check source.url and source.table');
  } finally {
    await opened?.close().catch(() => {});
  }
}
