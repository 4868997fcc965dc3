/**
 * A strict reader of the Prometheus text exposition format 0.0.4, written from the format's description
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) and sharing no code with src/core/metrics.ts:
 * the oracle the metrics tests hold the daemon's output against. Stricter than Prometheus itself: any line
 * it does not understand is an error.
 *
 *  - `# HELP name text` (text escapes only `\\` and `\n`), `# TYPE name counter|gauge|histogram|summary|untyped`:
 *    each at most once per name, before the family's first sample; no other comment, no empty line;
 *  - a sample is `name{label="value",...} value` (an optional integer timestamp after it); label values escape
 *    only `\\`, `\"` and `\n`; a value is a Go float, `+Inf`, `-Inf` or `NaN`;
 *  - every sample belongs to a family declared by TYPE (a histogram's `_bucket`, `_sum`, `_count`), the samples of
 *    one family are together, no series twice;
 *  - a counter is never negative or NaN; per histogram series: `le` buckets in increasing order, counts
 *    non-decreasing, the last `+Inf`, equal to `_count`, and a `_sum`;
 *  - the text ends with a newline.
 */

export interface PromSample {
  /** The sample's own name (`x_bucket` for a bucket). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: string;
  help?: string;
  samples: PromSample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|Inf)$|^NaN$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, where: string): number {
  if (!FLOAT.test(text)) throw new Error(`${where}: "${text}" is not a sample value`);
  if (text === 'NaN') return NaN;
  if (/^[+-]?Inf$/.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  return Number(text);
}

/** `{a="x",b="y"}` from position 0 of `s`: the labels and where the set ends. */
function parseLabels(s: string, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = 1;
  if (s[i] === '}') return { labels, end: i + 1 };
  for (;;) {
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: a label without =`);
    const name = s.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name "${name}"`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: the value of ${name} is not quoted`);
    let v = '';
    let j = eq + 2;
    for (;;) {
      const c = s[j];
      if (c === undefined) throw new Error(`${where}: unterminated value of ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = s[j + 1];
        if (e === '\\') v += '\\';
        else if (e === '"') v += '"';
        else if (e === 'n') v += '\n';
        else throw new Error(`${where}: bad escape \\${e ?? ''} in the value of ${name}`);
        j += 2;
        continue;
      }
      v += c;
      j++;
    }
    labels[name] = v;
    j++;
    if (s[j] === '}') return { labels, end: j + 1 };
    if (s[j] !== ',') throw new Error(`${where}: expected , or } after label ${name}`);
    i = j + 1;
    if (s[i] === '}') throw new Error(`${where}: a trailing comma in the label set`);
  }
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_m, e: string) => {
    if (e === '\\') return '\\';
    if (e === 'n') return '\n';
    throw new Error(`${where}: bad escape \\${e} in HELP`);
  });
}

const seriesKey = (name: string, labels: Record<string, string>) => `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;

/** Parses and checks a scrape; throws with the line number on the first violation. */
export function parsePrometheusText(text: string): Map<string, PromFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the text does not end with a newline');
  const families = new Map<string, PromFamily>();
  const finished = new Set<string>();
  const series = new Set<string>();
  let current: string | null = null;
  const lines = text.split('\n');
  lines.pop();
  const enter = (family: string, where: string) => {
    if (current === family) return;
    if (finished.has(family)) throw new Error(`${where}: the samples of ${family} are not together`);
    if (current !== null) finished.add(current);
    current = family;
  };
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line === '') throw new Error(`${where}: empty line`);
    if (/[\r\t]/.test(line) || line !== line.trim()) throw new Error(`${where}: stray whitespace`);
    if (line.startsWith('#')) {
      const m = new RegExp(`^# (HELP|TYPE) (${NAME})(?: (.*))?$`).exec(line);
      if (!m) throw new Error(`${where}: a comment that is neither HELP nor TYPE: ${line}`);
      const [, what, name, rest] = m as unknown as [string, string, string, string | undefined];
      const f = families.get(name);
      if (f && f.samples.length) throw new Error(`${where}: ${what} of ${name} after its samples`);
      if (what === 'TYPE') {
        if (!rest || !TYPES.has(rest)) throw new Error(`${where}: bad type "${rest}"`);
        if (f?.type) throw new Error(`${where}: TYPE of ${name} twice`);
        if (f) f.type = rest;
        else families.set(name, { name, type: rest, samples: [] });
      } else {
        if (f?.help !== undefined) throw new Error(`${where}: HELP of ${name} twice`);
        const help = unescapeHelp(rest ?? '', where);
        if (f) f.help = help;
        else families.set(name, { name, type: '', help, samples: [] });
      }
      enter(name, where);
      return;
    }
    const m = new RegExp(`^(${NAME})`).exec(line);
    if (!m) throw new Error(`${where}: not a sample: ${line}`);
    const name = m[1]!;
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      const l = parseLabels(rest, where);
      labels = l.labels;
      rest = rest.slice(l.end);
    }
    const vm = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
    if (!vm) throw new Error(`${where}: expected " value [timestamp]" after the labels: ${line}`);
    const value = parseValue(vm[1]!, where);
    let family = families.get(name);
    if (!family || !family.type) {
      const base = /^(.*)_(bucket|sum|count)$/.exec(name);
      const h = base ? families.get(base[1]!) : undefined;
      if (h && (h.type === 'histogram' || (h.type === 'summary' && base![2] !== 'bucket'))) family = h;
    }
    if (!family || !family.type) throw new Error(`${where}: ${name} has no TYPE`);
    if (family.type === 'histogram' && name === family.name) throw new Error(`${where}: a histogram's samples are _bucket, _sum and _count`);
    if (name.endsWith('_bucket') && family.type === 'histogram' && !('le' in labels)) throw new Error(`${where}: a bucket without le`);
    if (family.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${vm[1]}`);
    enter(family.name, where);
    const key = seriesKey(name, labels);
    if (series.has(key)) throw new Error(`${where}: series ${name}${JSON.stringify(labels)} twice`);
    series.add(key);
    family.samples.push({ name, labels, value });
  });
  for (const f of families.values()) {
    if (!f.type) throw new Error(`${f.name}: HELP without TYPE`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

function checkHistogram(f: PromFamily): void {
  const groups = new Map<string, { buckets: { le: number; v: number }[]; sum?: number; count?: number }>();
  const groupOf = (labels: Record<string, string>) => {
    const { le: _le, ...rest } = labels;
    const key = seriesKey('', rest);
    let g = groups.get(key);
    if (!g) {
      g = { buckets: [] };
      groups.set(key, g);
    }
    return g;
  };
  for (const s of f.samples) {
    const g = groupOf(s.labels);
    if (s.name === `${f.name}_bucket`) {
      const le = s.labels['le']!;
      g.buckets.push({ le: le === '+Inf' ? Infinity : parseValue(le, `${f.name} le`), v: s.value });
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
  }
  for (const [key, g] of groups) {
    const what = `${f.name}${key}`;
    if (g.buckets.length === 0) throw new Error(`${what}: no buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]!.le > g.buckets[i - 1]!.le)) throw new Error(`${what}: le not increasing`);
      if (!(g.buckets[i]!.v >= g.buckets[i - 1]!.v)) throw new Error(`${what}: buckets not cumulative`);
    }
    const last = g.buckets[g.buckets.length - 1]!;
    if (last.le !== Infinity) throw new Error(`${what}: no +Inf bucket`);
    if (g.count === undefined || g.sum === undefined) throw new Error(`${what}: _sum or _count missing`);
    if (last.v !== g.count) throw new Error(`${what}: +Inf bucket ${last.v} is not _count ${g.count}`);
  }
}

/** The value of the one sample `name` whose labels include `labels`; undefined when there is none. */
export function sampleValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    const hits = f.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    if (hits.length > 1) throw new Error(`${name}${JSON.stringify(labels)} matches ${hits.length} samples`);
    if (hits.length === 1) return hits[0]!.value;
  }
  return undefined;
}
