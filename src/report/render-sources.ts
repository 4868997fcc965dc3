import type { ReportData } from './build.js';
import { barList, dayChart, esc, fmt, htmlTable, mdTable } from './parts.js';

/** The report's sections of row changes and application events, in Markdown and HTML (render.ts writes the rest). */

export function sourcesMarkdown(r: ReportData): string {
  const out: string[] = [];
  const rc = r.row_changes;
  if (rc) {
    out.push(`## Row changes (trigger audit tables): ${fmt(rc.total)}\n`);
    out.push(
      mdTable(
        ['table', 'action', 'changes'],
        rc.by_table_action.map((x) => [x.table, x.action, fmt(x.n)]),
      ),
    );
    out.push('Changes per user:\n');
    out.push(
      mdTable(
        ['user', 'changes'],
        rc.top_users.map((u) => [u.user_name ?? '(none)', fmt(u.n)]),
      ),
    );
    out.push('Changes per day:\n');
    out.push(
      mdTable(
        ['day', 'action', 'changes'],
        rc.per_day.map((d) => [d.day, d.action, fmt(d.n)]),
      ),
    );
  }
  const ae = r.app_events;
  if (ae) {
    out.push(`## Application events (outbox, django-auditlog): ${fmt(ae.total)}\n`);
    out.push(
      mdTable(
        ['source', 'operation', 'events'],
        ae.by_source_operation.map((x) => [x.source, x.operation, fmt(x.n)]),
      ),
    );
    out.push('Events per actor:\n');
    out.push(
      mdTable(
        ['actor', 'events'],
        ae.top_actors.map((a) => [a.actor ?? '(none)', fmt(a.n)]),
      ),
    );
    out.push('Events per day:\n');
    out.push(
      mdTable(
        ['day', 'operation', 'events'],
        ae.per_day.map((d) => [d.day, d.operation, fmt(d.n)]),
      ),
    );
  }
  return out.join('\n');
}

export function sourcesHtml(r: ReportData): string {
  const out: string[] = [];
  const rc = r.row_changes;
  if (rc) {
    out.push(`<h2>Row changes (trigger audit tables): ${esc(fmt(rc.total))}</h2>`);
    out.push(dayChart({ per_day: rc.per_day.map((d) => ({ day: d.day, class: d.action, n: d.n })) }));
    out.push(
      htmlTable(
        ['table', 'action', 'changes'],
        rc.by_table_action.map((x) => [x.table, x.action, fmt(x.n)]),
        new Set([2]),
      ),
    );
    out.push(
      '<h3>Changes per user</h3>',
      barList(
        rc.top_users.slice(0, 10).map((u) => ({ label: u.user_name ?? '(none)', n: u.n })),
        '#f28e2b',
        'row changes per user',
      ),
    );
  }
  const ae = r.app_events;
  if (ae) {
    out.push(`<h2>Application events (outbox, django-auditlog): ${esc(fmt(ae.total))}</h2>`);
    out.push(dayChart({ per_day: ae.per_day.map((d) => ({ day: d.day, class: d.operation, n: d.n })) }));
    out.push(
      htmlTable(
        ['source', 'operation', 'events'],
        ae.by_source_operation.map((x) => [x.source, x.operation, fmt(x.n)]),
        new Set([2]),
      ),
    );
    out.push(
      '<h3>Events per actor</h3>',
      barList(
        ae.top_actors.slice(0, 10).map((a) => ({ label: a.actor ?? '(none)', n: a.n })),
        '#59a14f',
        'application events per actor',
      ),
    );
  }
  return out.join('\n');
}
