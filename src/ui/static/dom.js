// Small DOM helpers. Audit data is hostile input: it only ever becomes text nodes or attribute values,
// never markup (no innerHTML anywhere in this app).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: h('td', { class: 'x', 'data-id': id }, 'text', child). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Text with every case-insensitive occurrence of `needle` in a <mark> (as text nodes; nothing is parsed). */
export function highlighted(text, needle) {
  if (!needle) return [text];
  const out = [];
  const lower = text.toLowerCase();
  const n = needle.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(n); i >= 0 && out.length < 200; i = lower.indexOf(n, at)) {
    if (i > at) out.push(text.slice(at, i));
    out.push(h('mark', null, text.slice(i, i + n.length)));
    at = i + n.length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Parses the times the API sends (ISO-8601, or DuckDB's `2024-05-01 12:00:00.123+00`) to epoch ms. */
export function parseTime(value) {
  if (value === null || value === undefined) return NaN;
  if (typeof value === 'number') return value;
  let v = String(value).trim().replace(' ', 'T');
  if (/[+-]\d\d$/.test(v)) v += ':00';
  else if (!/(Z|[+-]\d\d:?\d\d)$/i.test(v)) v += 'Z';
  return Date.parse(v);
}

/** `2024-05-01 12:00:00.123` (UTC). */
export function fmtTime(value, { millis = true } = {}) {
  const ms = parseTime(value);
  if (!Number.isFinite(ms)) return value === null || value === undefined ? '' : String(value);
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${millis ? '.' + pad(d.getUTCMilliseconds(), 3) : ''}`;
}

/** The value of a datetime-local input showing `ms` in UTC. */
export function toInputValue(ms) {
  if (!Number.isFinite(ms)) return '';
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** A datetime-local input's value read as UTC, in epoch ms (NaN when empty or malformed). */
export function fromInputValue(value) {
  if (!value) return NaN;
  return Date.parse(value.length === 16 ? `${value}:00Z` : `${value}Z`);
}

const intFormat = new Intl.NumberFormat('en-US');
export function fmtInt(n) {
  return n === null || n === undefined ? '' : intFormat.format(Number(n));
}

/** 1234567 ms → `20 min 34.567 s`. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return '';
  let rest = Number(ms);
  const days = Math.floor(rest / 86_400_000);
  rest -= days * 86_400_000;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const mins = Math.floor(rest / 60_000);
  rest -= mins * 60_000;
  const secs = (rest / 1000).toFixed(3);
  const parts = [];
  if (days) parts.push(`${days} d`);
  if (days || hours) parts.push(`${hours} h`);
  if (days || hours || mins) parts.push(`${mins} min`);
  parts.push(`${secs} s`);
  return parts.join(' ');
}

/** A short span for an axis or a label: 90000 → `1.5 min`. */
export function fmtSpan(ms) {
  const units = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
    [1000, 's'],
  ];
  for (const [size, name] of units) if (ms >= size) return `${+(ms / size).toFixed(1)} ${name}`;
  return `${ms} ms`;
}
