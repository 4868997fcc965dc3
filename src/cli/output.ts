import type { RunSummary } from '../jobs/ingest.js';
import type { OutboxRunSummary } from '../jobs/outbox.js';
import type { TableRunSummary } from '../jobs/table.js';

/** Human formatting of numbers, sizes and durations for the CLI. */
export const n = (x: number) => x.toLocaleString('en');
export function size(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}
export function duration(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : `${(ms / 1000).toFixed(2)} s`;
}

export function formatSummary(s: RunSummary | TableRunSummary | OutboxRunSummary): string {
  if ('marked' in s) {
    if (s.locked) return `${s.pipeline}: another shipper holds ${s.table}'s lock; nothing shipped this time`;
    return (
      `${s.pipeline}: ${n(s.stored)} new events (${n(s.duplicates)} already stored), ${n(s.marked)} marked sent in ${s.table}` +
      `${s.purged ? `, ${n(s.purged)} old sent rows purged` : ''} in ${duration(s.durationMs)} → ${s.db}` +
      (s.quarantined ? `; ${n(s.quarantined)} row(s) quarantined (table app_quarantine)` : '') +
      (s.skipped ? `; ${n(s.skipped)} row(s) quarantined earlier left unsent` : '') +
      (s.search ?? [])
        .map(
          (x) =>
            `\n  → ${x.url}: ${n(x.created)} documents created, ${n(x.duplicates)} already there${x.deadLettered ? `, ${n(x.deadLettered)} refused (es_dead_letters)` : ''}`,
        )
        .join('')
    );
  }
  if (!('filesRead' in s)) {
    return (
      `${s.pipeline}: ${n(s.stored)} new row changes (${n(s.duplicates)} already stored) from ${s.table}` +
      `${s.deleted ? `, ${n(s.deleted)} shipped rows deleted` : ''} in ${duration(s.durationMs)} → ${s.db}` +
      (s.quarantined ? `; ${n(s.quarantined)} row(s) quarantined (table row_quarantine)` : '') +
      (s.search ?? [])
        .map(
          (x) =>
            `\n  → ${x.url}: ${n(x.created)} documents created, ${n(x.duplicates)} already there${x.deadLettered ? `, ${n(x.deadLettered)} refused (es_dead_letters)` : ''}`,
        )
        .join('')
    );
  }
  const lines = [
    `${s.pipeline}: ${n(s.stored)} new audit events (${n(s.duplicates)} already stored) from ${n(s.filesRead)} file(s), ` +
      `${size(s.bytes)} in ${duration(s.durationMs)} → ${s.db}` +
      (s.quarantined ? `; ${n(s.quarantined)} record(s) quarantined (see: auditship status)` : ''),
  ];
  for (const x of s.search ?? [])
    lines.push(
      `  → ${x.url}: ${n(x.created)} documents created, ${n(x.duplicates)} already there${x.correlated ? `, ${n(x.correlated)} sessions, logon failures and outcomes` : ''}${x.deadLettered ? `, ${n(x.deadLettered)} refused (es_dead_letters)` : ''}`,
    );
  if (s.unchanged) lines.push(`  – ${n(s.unchanged)} file(s) read before and unchanged`);
  // Why files were passed over, one line per reason.
  const reasons = new Map<string, string[]>();
  for (const k of s.skipped ?? []) reasons.set(k.reason, [...(reasons.get(k.reason) ?? []), k.path]);
  for (const [reason, paths] of reasons) lines.push(`  – ${paths.length === 1 ? paths[0] : `${n(paths.length)} files (${paths[0]}, …)`}: ${reason}`);
  if (s.filesSkipped > (s.skipped?.length ?? 0)) lines.push(`  – and ${n(s.filesSkipped - (s.skipped?.length ?? 0))} more file(s) passed over`);
  for (const d of s.damaged ?? []) lines.push(`  ! ${d.file}: ${d.reason}; the records before the damage are stored`);
  for (const e of s.errors) lines.push(`  ✘ ${e.file}: ${e.message}`);
  return lines.join('\n');
}

/** Renders rows as an aligned text table; long cells are cut (use --format csv or json for full values). */
export function formatTable(columns: string[], rows: unknown[][], maxCell = 80): string {
  const cell = (v: unknown) => {
    let s = v === null || v === undefined ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    s = s.replace(/\r?\n/g, '↵');
    return s.length > maxCell ? s.slice(0, maxCell - 1) + '…' : s;
  };
  const body = rows.map((r) => r.map(cell));
  const widths = columns.map((c, i) => Math.max(c.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}
