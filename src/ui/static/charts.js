// Hand-drawn SVG charts: stacked bars over time, horizontal top-N bars. Each chart is redrawn at its
// container's width (ResizeObserver), so text keeps its size whatever the window.
import { clear, fmtInt, fmtSpan, fmtTime, h, s } from './dom.js';

const CLASS_COLORS = {
  READ: '#3b82f6',
  WRITE: '#f59e0b',
  DDL: '#8b5cf6',
  ROLE: '#ef4444',
  FUNCTION: '#10b981',
  MISC: '#64748b',
  MISC_SET: '#14b8a6',
};
const EXTRA_COLORS = ['#ec4899', '#84cc16', '#06b6d4', '#a855f7', '#f97316', '#0ea5e9'];

/** The colour of a pgaudit class (fixed for the known ones, stable for others). */
export function classColor(name) {
  if (name && CLASS_COLORS[name]) return CLASS_COLORS[name];
  let hash = 0;
  for (const ch of String(name ?? '')) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return EXTRA_COLORS[hash % EXTRA_COLORS.length];
}

const renderers = new WeakMap();
const observer =
  typeof ResizeObserver === 'function'
    ? new ResizeObserver((entries) => {
        for (const e of entries) renderers.get(e.target)?.();
      })
    : null;

/** Draws with `draw(width)` now and again whenever the container's width changes. */
function mount(container, draw) {
  let lastWidth = -1;
  const render = () => {
    const width = Math.max(240, Math.floor(container.clientWidth || 480));
    if (width === lastWidth) return;
    lastWidth = width;
    clear(container).append(draw(width));
  };
  renderers.set(container, render);
  observer?.observe(container);
  lastWidth = -1;
  render();
}

/** 0..max rounded up to 1, 2 or 5 × 10^k, with its tick step. */
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { max: 1, step: 1 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? 10 * mag;
  const stepInt = Math.max(1, step);
  return { max: Math.ceil(max / stepInt) * stepInt, step: stepInt };
}

const TIME_STEPS = [
  1e3,
  5e3,
  15e3,
  30e3,
  60e3,
  300e3,
  900e3,
  1800e3,
  3600e3,
  3 * 3600e3,
  6 * 3600e3,
  12 * 3600e3,
  86400e3,
  2 * 86400e3,
  7 * 86400e3,
  14 * 86400e3,
  30 * 86400e3,
  91 * 86400e3,
  365 * 86400e3,
];

function timeTicks(from, to, maxTicks) {
  const span = to - from;
  const step = TIME_STEPS.find((st) => span / st <= maxTicks) ?? TIME_STEPS[TIME_STEPS.length - 1];
  const out = [];
  for (let t = Math.ceil(from / step) * step; t <= to && out.length < 50; t += step) out.push(t);
  return { ticks: out, step };
}

function tickLabel(t, step, prev) {
  const full = fmtTime(t, { millis: false });
  const date = full.slice(0, 10);
  const time = step < 60e3 ? full.slice(11, 19) : full.slice(11, 16);
  if (step >= 86400e3) return date;
  return prev === null || fmtTime(prev).slice(0, 10) !== date ? `${date.slice(5)} ${time}` : time;
}

function emptySvg(width, height, testid, message) {
  return s(
    'svg',
    { width, height, viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', 'data-testid': testid, 'data-empty': 'true', role: 'img', 'aria-label': message },
    s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'empty-text' }, message),
  );
}

/**
 * Stacked bars over time. `series`: { bucket_ms, points: [{ t, class, n }] } (`class` may be absent: one
 * series). `range`: { from, to } in ms to span (either may be undefined). `onPick(t, bucketMs)` zooms.
 */
export function drawTimeSeries(
  container,
  series,
  { testid, range = {}, color = classColor, onPick, label = 'events', emptyText = 'No events in this range.' } = {},
) {
  const bucket = Math.max(1, Number(series?.bucket_ms) || 1);
  const byT = new Map();
  const totals = new Map();
  for (const p of series?.points ?? []) {
    const t = Number(p.t);
    const key = p.class ?? '';
    const n = Number(p.n) || 0;
    if (!byT.has(t)) byT.set(t, new Map());
    byT.get(t).set(key, (byT.get(t).get(key) ?? 0) + n);
    totals.set(key, (totals.get(key) ?? 0) + n);
  }
  // Biggest class at the bottom of each stack.
  const keys = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || a.localeCompare(b));
  mount(container, (width) => {
    const height = 210;
    if (byT.size === 0) return emptySvg(width, height, testid, emptyText);
    const ts = [...byT.keys()].sort((a, b) => a - b);
    let from = Math.min(ts[0], Number.isFinite(range.from) ? range.from : Infinity);
    let to = Math.max(ts[ts.length - 1] + bucket, Number.isFinite(range.to) ? range.to : -Infinity);
    if (to - from < bucket) to = from + bucket;
    const m = { top: 10, right: 12, bottom: 26, left: 46 };
    const w = width - m.left - m.right;
    const hgt = height - m.top - m.bottom;
    const stackMax = Math.max(...ts.map((t) => [...byT.get(t).values()].reduce((a, b) => a + b, 0)));
    const y = niceScale(stackMax);
    const x = (t) => m.left + ((t - from) / (to - from)) * w;
    const yPx = (v) => m.top + hgt - (v / y.max) * hgt;
    const svg = s('svg', {
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      class: 'chart-svg',
      'data-testid': testid,
      role: 'img',
      'aria-label': `${label} over time`,
    });
    const grid = s('g', { class: 'grid' });
    for (let v = 0; v <= y.max; v += y.step) {
      grid.append(
        s('line', { x1: m.left, x2: width - m.right, y1: yPx(v), y2: yPx(v) }),
        s('text', { x: m.left - 6, y: yPx(v) + 4, 'text-anchor': 'end', class: 'axis-label' }, fmtInt(v)),
      );
    }
    svg.append(grid);
    const { ticks, step } = timeTicks(from, to, Math.max(2, Math.floor(w / 110)));
    const xAxis = s('g', { class: 'x-axis' });
    let prev = null;
    for (const t of ticks) {
      const text = tickLabel(t, step, prev);
      // Labels near an edge are anchored inside the chart rather than cut off.
      const half = text.length * 3.3;
      const anchor = x(t) + half > width - 2 ? 'end' : x(t) - half < 2 ? 'start' : 'middle';
      xAxis.append(
        s('line', { x1: x(t), x2: x(t), y1: m.top + hgt, y2: m.top + hgt + 4 }),
        s('text', { x: x(t), y: height - 8, 'text-anchor': anchor, class: 'axis-label' }, text),
      );
      prev = t;
    }
    xAxis.append(s('line', { x1: m.left, x2: width - m.right, y1: m.top + hgt, y2: m.top + hgt }));
    svg.append(xAxis);
    const barW = Math.max(1, (bucket / (to - from)) * w - ((bucket / (to - from)) * w > 4 ? 1 : 0));
    const bars = s('g', { class: 'bars' });
    for (const t of ts) {
      const counts = byT.get(t);
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      const title = [
        `${fmtTime(t, { millis: false })} UTC, ${fmtSpan(bucket)}: ${fmtInt(total)} ${label}`,
        ...keys.filter((k) => counts.has(k) && k !== '').map((k) => `  ${k}: ${fmtInt(counts.get(k))}`),
      ].join('\n');
      const group = s('g', { class: onPick ? 'bar pickable' : 'bar', 'data-t': t }, s('title', null, title));
      let acc = 0;
      for (const k of keys) {
        const n = counts.get(k);
        if (!n) continue;
        const y0 = yPx(acc);
        const y1 = yPx(acc + n);
        group.append(s('rect', { x: x(t), y: y1, width: barW, height: Math.max(1, y0 - y1), fill: color(k), 'data-class': k }));
        acc += n;
      }
      if (onPick) group.addEventListener('click', () => onPick(t, bucket));
      bars.append(group);
    }
    svg.append(bars);
    return svg;
  });
  return keys.map((k) => ({ key: k, n: totals.get(k), color: color(k) }));
}

/** Horizontal bars of a top list: [{ key, n }]. `onPick(key)` filters by it. */
export function drawTopBars(container, entries, { testid, color = '#3b82f6', onPick, emptyText = 'No events in this range.' } = {}) {
  const list = (entries ?? []).filter((e) => Number(e.n) > 0);
  mount(container, (width) => {
    const row = 24;
    const height = Math.max(120, list.length * row + 12);
    if (list.length === 0) return emptySvg(width, 120, testid, emptyText);
    const labelW = Math.min(220, Math.floor(width * 0.4));
    const countW = 64;
    const barMax = width - labelW - countW - 16;
    const max = Math.max(...list.map((e) => Number(e.n)));
    const maxChars = Math.floor((labelW - 10) / 7);
    const svg = s('svg', {
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      class: 'chart-svg',
      'data-testid': testid,
      role: 'img',
      'aria-label': 'top list',
    });
    list.forEach((e, i) => {
      const key = e.key === null || e.key === undefined ? '(none)' : String(e.key);
      const shown = key.length > maxChars ? key.slice(0, Math.max(1, maxChars - 1)) + '…' : key;
      const y = 6 + i * row;
      const bw = Math.max(2, (Number(e.n) / max) * barMax);
      const g = s(
        'g',
        { class: onPick ? 'hbar pickable' : 'hbar', 'data-key': key },
        s('title', null, `${key}: ${fmtInt(e.n)}`),
        s('rect', { class: 'hit', x: 0, y, width, height: row, fill: 'transparent' }),
        s('text', { x: labelW - 8, y: y + row / 2 + 4, 'text-anchor': 'end', class: 'bar-label' }, shown),
        s('rect', { x: labelW, y: y + 4, width: bw, height: row - 8, rx: 2, fill: color }),
        s('text', { x: labelW + bw + 6, y: y + row / 2 + 4, class: 'bar-count' }, fmtInt(e.n)),
      );
      if (onPick) g.addEventListener('click', () => onPick(e.key));
      svg.append(g);
    });
    return svg;
  });
}

/** The legend of a stacked chart: one swatch per class, clickable. */
export function legend(container, items, onPick) {
  clear(container);
  for (const it of items) {
    const sw = h('span', { class: 'swatch' });
    sw.style.backgroundColor = it.color;
    const el = h(
      onPick ? 'button' : 'span',
      { class: 'legend-item', type: onPick ? 'button' : undefined, title: onPick ? `Filter by class ${it.key}` : undefined },
      sw,
      it.key || '(none)',
      h('span', { class: 'legend-n' }, fmtInt(it.n)),
    );
    if (onPick) el.addEventListener('click', () => onPick(it.key));
    container.append(el);
  }
}
