/**
 * A small metrics registry — counters, gauges, histograms with fixed buckets — rendered in the Prometheus text
 * exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/). No dependency.
 *
 * A family has a name, a help text and a fixed list of label names; `labels({...})` returns the child of one
 * set of label values, which callers keep: an increment is then a field update, with no lookup and no
 * allocation. Label values must come from bounded sets (a pipeline name, a kind): never put statement text,
 * parameters, row data or secrets in a label.
 *
 * Rendering: per family `# HELP` (backslash and newline escaped) and `# TYPE`, then its samples, grouped;
 * label values escape backslash, double quote and newline; a histogram gives cumulative `_bucket{le="…"}`
 * lines ending with `le="+Inf"` (= `_count`), then `_sum` and `_count`. Collectors registered with
 * onCollect() run before each render (for values read at scrape time: ages, memory).
 */

export type LabelValues = Readonly<Record<string, string>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value as the text format writes it between double quotes. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** A HELP text as the text format writes it (backslash and newline escaped; quotes stay). */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

/** A sample value: Go's ParseFloat reads what JavaScript prints (1e+21, 0.001), plus +Inf, -Inf, NaN. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export interface FamilyOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
}

export interface HistogramOptions extends FamilyOptions {
  /** Upper bounds, strictly increasing and finite; `+Inf` is added. */
  buckets: readonly number[];
}

export class CounterChild {
  value = 0;
  /** Adds `n` (≥ 0). */
  inc(n = 1): void {
    if (!(n >= 0)) throw new RangeError(`a counter only goes up (inc by ${n})`);
    this.value += n;
  }
  /** Sets the total, for a count kept elsewhere that only grows (process CPU seconds). */
  set(v: number): void {
    this.value = v;
  }
}

export class GaugeChild {
  value = 0;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
}

export class HistogramChild {
  /** Observations per bucket (not cumulative); the last one is +Inf's. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    if (Number.isNaN(v)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

type Kind = 'counter' | 'gauge' | 'histogram';

abstract class Family<C> {
  /** Children by their label values (joined), in the order they were made. */
  readonly children = new Map<string, { values: string[]; child: C }>();
  readonly labelNames: readonly string[];
  abstract readonly kind: Kind;

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[] = [],
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new Error(`${name}: invalid label name ${JSON.stringify(l)}`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new Error(`${name}: a label name twice`);
    this.labelNames = [...labelNames];
  }

  protected abstract make(): C;

  /** The child of these label values (every label name, no other), made on first use. */
  labels(values: LabelValues = {}): C {
    const given = Object.keys(values);
    if (given.length !== this.labelNames.length || given.some((k) => !this.labelNames.includes(k))) {
      throw new Error(`${this.name} takes the labels ${this.labelNames.join(', ') || '(none)'}; got ${given.join(', ') || '(none)'}`);
    }
    const vals = this.labelNames.map((n) => {
      const v = values[n];
      if (typeof v !== 'string') throw new Error(`${this.name}: label ${n} must be a string`);
      return v;
    });
    const key = vals.join('\u0000');
    let entry = this.children.get(key);
    if (!entry) {
      entry = { values: vals, child: this.make() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  /** `{a="x",b="y"}` (with `extra` pairs appended), or '' without labels. */
  protected labelText(values: string[], extra: [string, string][] = []): string {
    const pairs = this.labelNames.map((n, i) => [n, values[i]!] as [string, string]).concat(extra);
    return pairs.length ? `{${pairs.map(([n, v]) => `${n}="${escapeLabelValue(v)}"`).join(',')}}` : '';
  }

  abstract samples(out: string[]): void;

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`);
    this.samples(out);
  }
}

export class Counter extends Family<CounterChild> {
  readonly kind = 'counter';
  constructor(name: string, help: string, labelNames?: readonly string[]) {
    super(name, help, labelNames);
    if (!name.endsWith('_total')) throw new Error(`counter ${name}: a counter's name ends with _total`);
  }
  protected make(): CounterChild {
    return new CounterChild();
  }
  samples(out: string[]): void {
    for (const { values, child } of this.children.values()) out.push(`${this.name}${this.labelText(values)} ${formatValue(child.value)}`);
  }
}

export class Gauge extends Family<GaugeChild> {
  readonly kind = 'gauge';
  protected make(): GaugeChild {
    return new GaugeChild();
  }
  /** Drops every child (a collector that sets only the series that exist now). */
  clear(): void {
    this.children.clear();
  }
  samples(out: string[]): void {
    for (const { values, child } of this.children.values()) out.push(`${this.name}${this.labelText(values)} ${formatValue(child.value)}`);
  }
}

export class Histogram extends Family<HistogramChild> {
  readonly kind = 'histogram';
  readonly bounds: readonly number[];
  constructor(name: string, help: string, labelNames: readonly string[] | undefined, buckets: readonly number[]) {
    super(name, help, labelNames);
    if (this.labelNames.includes('le')) throw new Error(`${name}: le is the bucket label of a histogram`);
    if (buckets.length === 0) throw new Error(`${name}: a histogram needs buckets`);
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]!) || (i > 0 && buckets[i]! <= buckets[i - 1]!))
        throw new Error(`${name}: buckets must be finite and strictly increasing`);
    }
    this.bounds = [...buckets];
  }
  protected make(): HistogramChild {
    return new HistogramChild(this.bounds);
  }
  samples(out: string[]): void {
    for (const { values, child } of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += child.counts[i]!;
        const le = i < this.bounds.length ? formatValue(this.bounds[i]!) : '+Inf';
        out.push(`${this.name}_bucket${this.labelText(values, [['le', le]])} ${formatValue(cumulative)}`);
      }
      out.push(`${this.name}_sum${this.labelText(values)} ${formatValue(child.sum)}`);
      out.push(`${this.name}_count${this.labelText(values)} ${formatValue(child.count)}`);
    }
  }
}

/** The Content-Type of the text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class Registry {
  private readonly families: Family<unknown>[] = [];
  private readonly names = new Set<string>();
  private readonly collectors: (() => void)[] = [];

  private add<F extends Family<unknown>>(f: F): F {
    // A histogram's sample names (_bucket, _sum, _count) must not be another family's name either.
    const taken = f instanceof Histogram ? [f.name, `${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : [f.name];
    for (const n of taken) if (this.names.has(n)) throw new Error(`metric ${n} is registered twice`);
    for (const n of taken) this.names.add(n);
    this.families.push(f);
    return f;
  }

  counter(o: FamilyOptions): Counter {
    return this.add(new Counter(o.name, o.help, o.labelNames));
  }
  gauge(o: FamilyOptions): Gauge {
    return this.add(new Gauge(o.name, o.help, o.labelNames));
  }
  histogram(o: HistogramOptions): Histogram {
    return this.add(new Histogram(o.name, o.help, o.labelNames, o.buckets));
  }

  /** Runs before every render: for values read when scraped. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  collect(): void {
    for (const fn of this.collectors) fn();
  }

  /** Every family in the text format 0.0.4, ending with a newline. */
  render(): string {
    this.collect();
    const out: string[] = [];
    for (const f of this.families) f.render(out);
    return out.length ? `${out.join('\n')}\n` : '';
  }
}
