import type { ReportData, ReportEvent } from './build.js';
import { sourcesHtml, sourcesMarkdown } from './render-sources.js';

/** Markdown and HTML forms of a report (the JSON form is the ReportData itself). */

const CLASS_COLORS: Record<string, string> = {
  READ: '#4e79a7',
  WRITE: '#f28e2b',
  DDL: '#e15759',
  ROLE: '#b07aa1',
  FUNCTION: '#59a14f',
  MISC: '#9c755f',
  MISC_SET: '#bab0ac',
};
const colorOf = (c: string, i: number) => CLASS_COLORS[c] ?? ['#76b7b2', '#edc948', '#ff9da7', '#af7aa1'][i % 4]!;

export const fmt = (x: number) => x.toLocaleString('en-US');

// ---- Markdown -------------------------------------------------------------------------------------------

/** A Markdown table cell: pipes escaped, newlines as <br>. */
function mdCell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '';
  return String(v).replaceAll('\\', '\\\\').replaceAll('|', '\\|').replace(/\r?\n/g, '<br>');
}

export function mdTable(head: string[], rows: unknown[][]): string {
  if (!rows.length) return '_none_\n';
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`)].join('\n') + '\n';
}

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

export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function htmlTable(head: string[], rows: unknown[][], numeric: Set<number> = new Set()): string {
  if (!rows.length) return '<p class="none">none</p>';
  return `<table><thead><tr>${head.map((h, i) => `<th${numeric.has(i) ? ' class="num"' : ''}>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c, i) => `<td${numeric.has(i) ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

/** Stacked bars per day and class, as an inline SVG. */
export function dayChart(r: Pick<ReportData, 'per_day'>): string {
  const days = [...new Set(r.per_day.map((p) => p.day))].sort();
  if (!days.length) return '<p class="none">no events in this range</p>';
  const classes = [...new Set(r.per_day.map((p) => p.class))].sort();
  const totals = new Map<string, number>();
  for (const p of r.per_day) totals.set(p.day, (totals.get(p.day) ?? 0) + p.n);
  const max = Math.max(...totals.values());
  const W = 900,
    H = 240,
    left = 60,
    bottom = 40,
    top = 10;
  const bw = (W - left - 10) / days.length;
  const y = (v: number) => H - bottom - (v / max) * (H - bottom - top);
  const bars: string[] = [];
  days.forEach((d, i) => {
    let acc = 0;
    classes.forEach((c, ci) => {
      const v = r.per_day.find((p) => p.day === d && p.class === c)?.n ?? 0;
      if (!v) return;
      const y0 = y(acc),
        y1 = y(acc + v);
      bars.push(
        `<rect x="${(left + i * bw + 1).toFixed(1)}" y="${y1.toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${Math.max(0.5, y0 - y1).toFixed(1)}" fill="${colorOf(c, ci)}"><title>${esc(`${d} ${c}: ${fmt(v)}`)}</title></rect>`,
      );
      acc += v;
    });
  });
  const step = Math.max(1, Math.ceil(days.length / 10));
  const labels = days
    .map((d, i) =>
      i % step === 0 ? `<text x="${(left + i * bw + bw / 2).toFixed(1)}" y="${H - bottom + 16}" text-anchor="middle">${esc(d.slice(5))}</text>` : '',
    )
    .join('');
  const ticks = [0, 0.5, 1]
    .map(
      (f) =>
        `<text x="${left - 6}" y="${(y(max * f) + 4).toFixed(1)}" text-anchor="end">${esc(fmt(Math.round(max * f)))}</text><line x1="${left}" x2="${W - 10}" y1="${y(max * f).toFixed(1)}" y2="${y(max * f).toFixed(1)}" class="grid"/>`,
    )
    .join('');
  const legend = classes.map((c, ci) => `<span class="key"><i style="background:${colorOf(c, ci)}"></i>${esc(c)}</span>`).join('');
  return `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="events per day by class" class="chart">${ticks}${bars.join('')}${labels}</svg><div class="legend">${legend}</div>`;
}

/** Horizontal bars of the largest values. */
export function barList(items: { label: string; n: number }[], color: string, aria: string): string {
  if (!items.length) return '<p class="none">none</p>';
  const max = Math.max(...items.map((i) => i.n));
  const W = 900,
    row = 22;
  const body = items
    .map((it, i) => {
      const w = Math.max(1, (it.n / max) * (W - 330));
      return `<text x="0" y="${i * row + 15}">${esc(it.label.length > 40 ? it.label.slice(0, 39) + '…' : it.label)}</text><rect x="260" y="${i * row + 4}" width="${w.toFixed(1)}" height="${row - 8}" fill="${color}"><title>${esc(`${it.label}: ${fmt(it.n)}`)}</title></rect><text x="${(266 + w).toFixed(1)}" y="${i * row + 15}">${esc(fmt(it.n))}</text>`;
    })
    .join('');
  return `<svg viewBox="0 0 ${W} ${items.length * row + 4}" role="img" aria-label="${esc(aria)}" class="chart">${body}</svg>`;
}

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
