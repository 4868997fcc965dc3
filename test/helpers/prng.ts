/**
 * A small seeded PRNG (mulberry32) and a hand-rolled property runner for deterministic property tests.
 *
 * Every run of a property gets its own case seed derived from the base seed, so a failure names one case
 * that can be replayed alone:
 *   PROP_SEED=<base>   reruns every property with another base seed (default: the one in the test);
 *   PROP_CASE=<case>   runs only the case with that case seed (printed on failure);
 *   PROP_RUNS=<n>      overrides the number of runs per property.
 */

/** mulberry32: a fast 32-bit generator, good enough for test inputs. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  private readonly next01: () => number;

  constructor(readonly seed: number) {
    this.next01 = mulberry32(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next01();
  }

  /** An integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next01() * (max - min + 1));
  }

  /** True with probability `p`. */
  bool(p = 0.5): boolean {
    return this.next01() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next01() * items.length)]!;
  }

  /** Picks by weight: `[[3, 'a'], [1, 'b']]` yields 'a' three times as often as 'b'. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of items) total += w;
    let r = this.next01() * total;
    for (const [w, v] of items) {
      r -= w;
      if (r < 0) return v;
    }
    return items[items.length - 1]![1];
  }
}

/** The seed of run `i` of a property with base seed `base`. */
export function caseSeed(base: number, i: number): number {
  let h = (base ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Shows an input for a failure message: JSON (so CR, LF and quotes are visible), cut to a readable size. */
export function showInput(value: unknown, limit = 4000): string {
  const s = JSON.stringify(value, (_k, v: unknown) => (v === undefined ? '<undefined>' : v));
  return s.length > limit ? `${s.slice(0, limit)}… (${s.length} chars)` : s;
}

export interface PropertyOptions<T> {
  name: string;
  /** Base seed; PROP_SEED overrides it. */
  seed: number;
  /** Number of runs; PROP_RUNS overrides it. */
  runs: number;
  /** Renders the failing input (default: JSON). */
  show?: (input: T) => string;
}

/**
 * Runs `check` on `runs` generated inputs. On the first failure throws an error naming the base seed, the
 * run, its case seed and the input, with the original assertion error as `cause` and in the message.
 */
export function forAll<T>(opts: PropertyOptions<T>, generate: (rng: Rng) => T, check: (input: T, rng: Rng) => void): number {
  const base = envInt('PROP_SEED') ?? opts.seed;
  const only = envInt('PROP_CASE');
  const runs = envInt('PROP_RUNS') ?? opts.runs;
  const show = opts.show ?? ((v: T) => showInput(v));
  let done = 0;
  for (let i = 0; i < runs; i++) {
    const s = only ?? caseSeed(base, i);
    const rng = new Rng(s);
    const input = generate(rng);
    try {
      check(input, rng);
    } catch (err) {
      const e = err as Error;
      throw new Error(
        `property "${opts.name}" failed: base seed ${base}, run ${i}, case seed ${s} ` + `(replay: PROP_CASE=${s})\ninput: ${show(input)}\n${e.message}`,
        { cause: err },
      );
    }
    done++;
    if (only !== undefined) break;
  }
  return done;
}
