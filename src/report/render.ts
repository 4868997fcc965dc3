import type { ReportData, ReportEvent } from './build.js';
import { barList, dayChart, esc, fmt, htmlTable, mdCell, mdTable } from './parts.js';
import { sourcesHtml, sourcesMarkdown } from './render-sources.js';

/** Markdown and HTML forms of a report (the JSON form is the ReportData itself). */

/** A fenced block that no backtick run inside the text can close. */
function mdFence(text: string, lang = 'sql'): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${lang}\n${text}\n${fence}\n`;
}

function mdEvents(events: ReportEvent[], withError: boolean): string {
  if (!events.length) return '_none_\n';
  return events
    .map((e) => {
      const head = `**${e.log_time}** · ${e.server} · ${e.user_name ?? '?'}@${e.database_name ?? '?'}${e.client_addr ? ` from ${e.client_addr}` : ''} · ${e.class ?? ''} ${e.command ?? ''}${e.object_name ? ` ${e.object_name}` : ''} · ${e.outcome}${e.sqlstate ? ` (${e.sqlstate})` : ''}`;
      const err = withError && e.error_message ? `\n> ${e.error_message.replace(/\r?\n/g, ' ')}\n` : '';
      return `- ${mdCell(head)}${err}\n${mdFence(e.statement ?? '')}`;
    })
    .join('\n');
}

function truncNote(r: ReportData, section: string, shown: number): string {
  const t = r.truncated.find((x) => x.section === section);
  return t ? `\n_Showing the first ${fmt(shown)} of ${fmt(t.total)}; use a shorter range or \`auditship query\` for the rest._\n` : '';
}

export function renderMarkdown(r: ReportData): string {
  const out: string[] = [];
  out.push(`# Audit report ${r.since} – ${r.until}\n`);
  out.push(`Servers: ${r.servers.length ? r.servers.join(', ') : '(none)'} · generated ${r.generated_at} by auditship\n`);
  out.push(
    mdTable(
      ['events', 'users', 'sessions', 'failed statements', 'failed logins'],
      [[fmt(r.totals.events), fmt(r.totals.users), fmt(r.totals.sessions), fmt(r.totals.failed_statements), fmt(r.totals.logon_failures)]],
    ),
  );
  out.push('## Events by class and command\n');
  out.push(
    mdTable(
      ['class', 'command', 'events'],
      r.by_class_command.map((x) => [x.class, x.command, fmt(x.n)]),
    ),
  );
  out.push('## DDL and role/privilege changes\n');
  out.push(mdEvents(r.changes, true) + truncNote(r, 'changes', r.changes.length));
  out.push('## Tables read and written, per user\n');
  out.push(
    mdTable(
      ['user', 'object', 'type', 'reads', 'writes', 'first', 'last'],
      r.access.map((a) => [a.user_name ?? '', a.object_name, a.object_type ?? '', fmt(a.reads), fmt(a.writes), a.first, a.last]),
    ) + truncNote(r, 'access', r.access.length),
  );
  out.push('## Failed logins\n');
  out.push(
    mdTable(
      ['time', 'server', 'user', 'database', 'client', 'sqlstate', 'reason'],
      r.logon_failures.map((f) => [f.log_time, f.server, f.user_name ?? '', f.database_name ?? '', f.client_addr ?? '', f.sqlstate ?? '', f.reason]),
    ) + truncNote(r, 'logon_failures', r.logon_failures.length),
  );
  out.push('## Failed statements\n');
  out.push(mdEvents(r.failed_statements, true) + truncNote(r, 'failed_statements', r.failed_statements.length));
  if (r.unaudited_errors.length) {
    out.push('\nErrors of statements pgaudit did not log (never executed, e.g. syntax errors), by SQLSTATE:\n');
    out.push(
      mdTable(
        ['sqlstate', 'errors'],
        r.unaudited_errors.map((e) => [e.sqlstate ?? '', fmt(e.n)]),
      ),
    );
  }
  out.push(sourcesMarkdown(r));
  return out.join('\n');
}

// ---- HTML ----------------------------------------------------------------------------------------------

function htmlEvents(events: ReportEvent[]): string {
  if (!events.length) return '<p class="none">none</p>';
  return events
    .map(
      (e) =>
        `<div class="event ${e.outcome}"><div class="meta"><b>${esc(e.log_time)}</b> · ${esc(e.server)} · ${esc(e.user_name ?? '?')}@${esc(e.database_name ?? '?')}${e.client_addr ? ` from ${esc(e.client_addr)}` : ''} · <span class="cls">${esc(e.class ?? '')}</span> ${esc(e.command ?? '')} ${esc(e.object_name ?? '')} · <span class="outcome">${esc(e.outcome)}${e.sqlstate ? ` ${esc(e.sqlstate)}` : ''}</span></div>${e.error_message ? `<div class="error">${esc(e.error_message)}</div>` : ''}<pre>${esc(e.statement ?? '')}</pre></div>`,
    )
    .join('');
}

const STYLE = `body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border-bottom:1px solid #eee;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}.none{color:#888;font-style:italic}
.totals{display:flex;gap:1rem;flex-wrap:wrap}.totals div{background:#f6f7f9;border-radius:6px;padding:.6rem 1rem}.totals b{display:block;font-size:1.3rem}
.chart{width:100%;height:auto;font-size:11px;fill:#444}.chart .grid{stroke:#eee}.legend{margin:.3rem 0}.key{margin-right:1rem}.key i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
.event{border-left:3px solid #59a14f;padding:.3rem .6rem;margin:.6rem 0;background:#fafafa}.event.error{border-left-color:#e15759}
.event pre{white-space:pre-wrap;word-break:break-word;margin:.3rem 0 0;font-size:12.5px}.error{color:#b00020}.outcome{font-weight:600}.meta{font-size:13px}`;

export function renderHtml(r: ReportData): string {
  const tn = (section: string, shown: number) => {
    const t = r.truncated.find((x) => x.section === section);
    return t ? `<p class="none">Showing the first ${esc(fmt(shown))} of ${esc(fmt(t.total))}.</p>` : '';
  };
  const failedPerUser = new Map<string, number>();
  for (const f of r.logon_failures)
    failedPerUser.set(`${f.user_name ?? '?'} from ${f.client_addr ?? '?'}`, (failedPerUser.get(`${f.user_name ?? '?'} from ${f.client_addr ?? '?'}`) ?? 0) + 1);
  const topFailed = [...failedPerUser]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([label, n]) => ({ label, n }));
  const perUser = new Map<string, number>();
  for (const a of r.access) perUser.set(a.user_name ?? '?', (perUser.get(a.user_name ?? '?') ?? 0) + a.reads + a.writes);
  const topUsers = [...perUser]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([label, n]) => ({ label, n }));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Audit report ${esc(r.since)} – ${esc(r.until)}</title><style>${STYLE}</style></head><body>
<h1>Audit report ${esc(r.since)} – ${esc(r.until)}</h1>
<p>Servers: ${esc(r.servers.join(', ') || '(none)')} · generated ${esc(r.generated_at)} by auditship</p>
<div class="totals"><div><b>${esc(fmt(r.totals.events))}</b>events</div><div><b>${esc(fmt(r.totals.users))}</b>users</div><div><b>${esc(fmt(r.totals.sessions))}</b>sessions</div><div><b>${esc(fmt(r.totals.failed_statements))}</b>failed statements</div><div><b>${esc(fmt(r.totals.logon_failures))}</b>failed logins</div></div>
<h2>Events per day by class</h2>${dayChart(r)}
<h2>Events by class and command</h2>${htmlTable(
    ['class', 'command', 'events'],
    r.by_class_command.map((x) => [x.class, x.command, fmt(x.n)]),
    new Set([2]),
  )}
<h2>DDL and role/privilege changes</h2>${htmlEvents(r.changes)}${tn('changes', r.changes.length)}
<h2>Tables read and written, per user</h2>${barList(topUsers, '#4e79a7', 'reads and writes per user')}
${htmlTable(
  ['user', 'object', 'type', 'reads', 'writes', 'first', 'last'],
  r.access.map((a) => [a.user_name ?? '', a.object_name, a.object_type ?? '', fmt(a.reads), fmt(a.writes), a.first, a.last]),
  new Set([3, 4]),
)}${tn('access', r.access.length)}
<h2>Failed logins</h2>${barList(topFailed, '#e15759', 'failed logins by user and client')}
${htmlTable(
  ['time', 'server', 'user', 'database', 'client', 'sqlstate', 'reason'],
  r.logon_failures.map((f) => [f.log_time, f.server, f.user_name ?? '', f.database_name ?? '', f.client_addr ?? '', f.sqlstate ?? '', f.reason]),
)}${tn('logon_failures', r.logon_failures.length)}
<h2>Failed statements</h2>${htmlEvents(r.failed_statements)}${tn('failed_statements', r.failed_statements.length)}
${
  r.unaudited_errors.length
    ? `<p>Errors of statements pgaudit did not log (never executed, e.g. syntax errors), by SQLSTATE:</p>${htmlTable(
        ['sqlstate', 'errors'],
        r.unaudited_errors.map((e) => [e.sqlstate ?? '', fmt(e.n)]),
        new Set([1]),
      )}`
    : ''
}
${sourcesHtml(r)}
</body></html>
`;
}
