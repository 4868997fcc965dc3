import type { ReportData } from './build.js';

/**
 * The pieces both report renderings are made of (render.ts for pgaudit events, render-sources.ts for row
 * changes and application events): numbers, Markdown and HTML tables, SVG charts.
 */
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
export function mdCell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '';
  return String(v).replaceAll('\\', '\\\\').replaceAll('|', '\\|').replace(/\r?\n/g, '<br>');
}

export function mdTable(head: string[], rows: unknown[][]): string {
  if (!rows.length) return '_none_\n';
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(mdCell).join(' | ')} |`)].join('\n') + '\n';
}

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
