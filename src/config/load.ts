import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseColumnRule, parseJsonPath, parsePattern } from '../redact/rules.js';
import { parseSavedSearch } from '../ui/saved-searches.js';
import { createRequire } from 'node:module';
import { ConfigError } from '../core/errors.js';
import { SINKS, SOURCES, serverOf, sinkDeclaration, sourceDeclaration, type SinkConfig, type SourceConfig } from '../connectors.js';
import type { SectionOptions } from '../core/config-spec.js';
import { archiveLocation } from '../sinks/archive/declaration.js';
import { decodeAlerts, type AlertsConfig, type PipelineAlerts } from '../alerts/config.js';
import {
  METRICS_SECTION,
  PIPELINE_KEYS,
  REDACTION_SECTION,
  STATE_SECTION,
  TOP_LEVEL_KEYS,
  UI_SECTION,
  type ConnectorSpec,
  type FieldSpec,
  type ObjectSpec,
} from './schema.js';

export { archiveLocation };
export type { SinkConfig, SourceConfig };

/**
 * Loading a YAML config: `${VAR}` / `${VAR:-default}` interpolation from the environment, then validation
 * against the schema. Every problem is collected, one line per wrong key: path, what is wrong, what is
 * allowed; all are reported together as one ConfigError.
 */
/** A connector section as checked, before it is known to be one type's (typed: SourceConfig, SinkConfig). */
type CheckedSection = { type: string } & Record<string, unknown>;

/** A pipeline as loaded: its source and sinks decoded to their typed options, defaults filled. */
export interface PipelineConfig {
  name: string;
  source: SourceConfig;
  sinks: SinkConfig[];
  /** The config's redaction policy (absent: the default, on). */
  redaction?: RedactionConfig;
  /** The DuckDB file kept in S3 between runs (absent: on the local disk only). */
  state?: StateConfig;
  /** The alert rules that read this pipeline's events, with the config's destinations (src/alerts). */
  alerts?: PipelineAlerts;
}

/** A pipeline's `state` section (schema.ts STATE_SECTION). */
export type StateConfig = SectionOptions<typeof STATE_SECTION>;

/** A string_or_list value as a list. */
export function listOf(v: unknown): string[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
}

/** The top-level `redaction` section (schema.ts REDACTION_SECTION). */
export type RedactionConfig = SectionOptions<typeof REDACTION_SECTION>;

/** The top-level `ui` section (schema.ts UI_SECTION). */
export type UiConfig = SectionOptions<typeof UI_SECTION>;

/** The top-level `metrics` section (schema.ts METRICS_SECTION). */
export type MetricsConfig = SectionOptions<typeof METRICS_SECTION>;

export interface Config {
  pipelines: PipelineConfig[];
  redaction: RedactionConfig;
  ui?: UiConfig;
  metrics?: MetricsConfig;
  alerts?: AlertsConfig;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$/i;
const UNITS: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1 << 20, gb: 1e9, gib: 1 << 30, tb: 1e12, tib: 2 ** 40 };

/** Parses `16MB`, `1GiB`, `4096` into bytes; undefined when malformed. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  if (typeof value !== 'string') return undefined;
  const m = SIZE.exec(value.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]!);
}

/** Replaces `${VAR}` and `${VAR:-default}` in every string; `$${` stays a literal `${`. */
export function interpolate(value: unknown, path: string, env: NodeJS.ProcessEnv, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(
      /\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
      (whole, escaped: string | undefined, name: string, fallback: string | undefined) => {
        if (escaped) return whole.slice(1);
        const v = env[name];
        if (v !== undefined && v !== '') return v;
        if (fallback !== undefined) return fallback;
        problems.push(`${path}: environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
        return '';
      },
    );
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, `${path}[${i}]`, env, problems));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, path ? `${path}.${k}` : k, env, problems);
    return out;
  }
  return value;
}

function describeType(spec: FieldSpec): string {
  switch (spec.type) {
    case 'enum':
      return `one of ${spec.values!.join(', ')}`;
    case 'string_or_list':
      return 'a path or a list of paths';
    case 'size':
      return spec.minimum !== undefined ? `a size such as 16MB or 1GiB, at least ${spec.minimum} bytes` : 'a size such as 16MB or 1GiB';
    case 'integer':
      return spec.minimum !== undefined ? `an integer ≥ ${spec.minimum}` : 'an integer';
    case 'url':
      return `a ${spec.schemes!.map((s) => `${s}://`).join(', ')} URL`;
    default:
      return `a ${spec.type}`;
  }
}

/**
 * What is wrong with a connection URL, or null: a scheme the connector does not speak, or text that does not
 * parse the way the connector parses it. The words never repeat the URL, which may hold a password.
 */
export function urlProblem(value: string, spec: FieldSpec): string | null {
  const schemes = spec.schemes ?? [];
  const names = schemes.map((s) => `${s}://`);
  const expected = `expected a URL starting with ${names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names[0]}`;
  const example = spec.example !== undefined ? `, e.g. ${String(spec.example)}` : '';
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return `${expected} (this one has no scheme://)${example}`;
  if (!schemes.includes(scheme)) return `${expected}, not ${scheme}://${example}`;
  if (!parsesAsUrl(value, scheme)) {
    return `not a valid ${scheme}:// URL: check HOST:PORT, and percent-encode @ : / ? # % in the user name and password (%40 %3A %2F %3F %23 %25)`;
  }
  return null;
}

/** True when the connector for `scheme` can read `url`. */
function parsesAsUrl(url: string, scheme: string): boolean {
  let text = url;
  if (scheme === 'postgres' || scheme === 'postgresql') {
    // As pg reads it (pg-connection-string): spaces and stray % signs are encoded first, and a URL without a
    // host (a socket directory in ?host=, postgresql://user@/db?host=/run/postgresql) is allowed.
    if (/ |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(text)) text = encodeURI(text).replace(/%25(\d\d)/g, '%$1');
    text = text.replace('@/', '@localhost/');
  }
  try {
    new URL(text);
    return true;
  } catch {
    return false;
  }
}

function checkField(value: unknown, spec: FieldSpec, path: string, problems: string[]): unknown {
  const bad = () => {
    problems.push(`${path}: ${JSON.stringify(value)} is not ${describeType(spec)}`);
    return undefined;
  };
  switch (spec.type) {
    case 'string':
      return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : bad();
    // A ${VAR} reference gives a string: digits and true/false are taken as the number or boolean they say.
    case 'boolean':
      return typeof value === 'boolean' ? value : value === 'true' ? true : value === 'false' ? false : bad();
    case 'integer': {
      const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
      if (typeof n === 'number' && Number.isInteger(n) && (spec.minimum === undefined || n >= spec.minimum)) return n;
      return bad();
    }
    case 'enum':
      return typeof value === 'string' && spec.values!.includes(value) ? value : bad();
    case 'size': {
      const bytes = parseSize(value);
      return bytes !== undefined && (spec.minimum === undefined || bytes >= spec.minimum) ? bytes : bad();
    }
    case 'url': {
      const problem = typeof value === 'string' ? urlProblem(value, spec) : `${JSON.stringify(value)} is not ${describeType(spec)}`;
      if (problem === null) return value;
      problems.push(`${path}: ${problem}`);
      return undefined;
    }
    case 'string_or_list':
      if (typeof value === 'string' && value) return [value];
      if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v)) return value;
      return bad();
  }
}

/** Validates one source or sink object against its spec; fills defaults. */
export function checkConnector(
  raw: unknown,
  specs: Record<string, { spec: ConnectorSpec }>,
  what: 'source' | 'sink',
  path: string,
  problems: string[],
): CheckedSection | undefined {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`${path}: must be a mapping with a "type" key (one of ${Object.keys(specs).join(', ')})`);
    return undefined;
  }
  const obj = raw as Record<string, unknown>;
  const type = obj['type'];
  const spec = typeof type === 'string' && Object.hasOwn(specs, type) ? specs[type]!.spec : undefined;
  if (!spec) {
    problems.push(
      `${path}.type: ${type === undefined ? 'missing' : JSON.stringify(type) + ' is not a ' + what + ' type'}; allowed: ${Object.keys(specs).join(', ')}`,
    );
    return undefined;
  }
  const out: CheckedSection = { type: spec.kind };
  checkFields(obj, spec.fields, path, `for a ${spec.kind} ${what}`, problems, out);
  return out;
}

/** Decodes a source section (validated, defaults filled) into its typed options; problems go to `problems`. */
export function decodeSource(raw: unknown, at: string, problems: string[]): SourceConfig | undefined {
  return checkConnector(raw, SOURCES, 'source', at, problems) as SourceConfig | undefined;
}

/** Decodes a sink section into its typed options; problems go to `problems`. */
export function decodeSink(raw: unknown, at: string, problems: string[]): SinkConfig | undefined {
  return checkConnector(raw, SINKS, 'sink', at, problems) as SinkConfig | undefined;
}

/** Checks the keys of a mapping against their specs into `out` (defaults filled); `type` is skipped. */
function checkFields(obj: Record<string, unknown>, fields: ObjectSpec, path: string, what: string, problems: string[], out: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'type') continue;
    const fieldSpec = fields[key];
    if (!fieldSpec) {
      problems.push(`${path}.${key}: unknown key ${what}; allowed: ${Object.keys(fields).join(', ')}`);
      continue;
    }
    if (value === null || value === undefined) continue;
    // An empty ${VAR:-} leaves a key that is not text out, as if it were not written.
    if (value === '' && fieldSpec.type !== 'string' && fieldSpec.type !== 'url') continue;
    const checked = checkField(value, fieldSpec, `${path}.${key}`, problems);
    if (checked !== undefined) out[key] = checked;
  }
  for (const [key, fieldSpec] of Object.entries(fields)) {
    if (out[key] !== undefined) continue;
    if (key in obj && obj[key] !== null && obj[key] !== undefined && obj[key] !== '') continue; // given, and wrong: reported above
    if (fieldSpec.required) problems.push(`${path}.${key}: required (${fieldSpec.description.split(/\.(?:\s|$)/)[0]})`);
    else if (fieldSpec.default !== undefined) out[key] = fieldSpec.type === 'size' ? parseSize(fieldSpec.default) : fieldSpec.default;
  }
}

/** Validates a parsed config document (after interpolation). Throws ConfigError with every problem. */
export function validateConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const data = interpolate(doc, '', env, problems);
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(['config: must be a mapping with a "pipelines" key']);
  const top = data as Record<string, unknown>;
  for (const key of Object.keys(top)) {
    if (!(TOP_LEVEL_KEYS as readonly string[]).includes(key)) problems.push(`${key}: unknown top-level key; allowed: ${TOP_LEVEL_KEYS.join(', ')}`);
  }
  const pipelines: PipelineConfig[] = [];
  const archiveUsers = new Map<string, string>();
  const rawPipelines = top['pipelines'];
  if (!rawPipelines || typeof rawPipelines !== 'object' || Array.isArray(rawPipelines) || Object.keys(rawPipelines).length === 0) {
    problems.push('pipelines: required — a mapping of pipeline names to { source, sinks }');
  } else {
    for (const [name, rawPipeline] of Object.entries(rawPipelines as Record<string, unknown>)) {
      const path = `pipelines.${name}`;
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) problems.push(`${path}: pipeline names may use letters, digits, _ . and -`);
      if (!rawPipeline || typeof rawPipeline !== 'object' || Array.isArray(rawPipeline)) {
        problems.push(`${path}: must be a mapping with keys source and sinks`);
        continue;
      }
      const p = rawPipeline as Record<string, unknown>;
      for (const key of Object.keys(p)) {
        if (!(PIPELINE_KEYS as readonly string[]).includes(key)) problems.push(`${path}.${key}: unknown key; allowed: ${PIPELINE_KEYS.join(', ')}`);
      }
      const checkedSource = checkConnector(p['source'], SOURCES, 'source', `${path}.source`, problems);
      const source = checkedSource as SourceConfig | undefined;
      const sourceDecl = source ? sourceDeclaration(source.type) : undefined;
      const sinks: SinkConfig[] = [];
      const rawSinks = p['sinks'];
      if (!Array.isArray(rawSinks) || rawSinks.length === 0) {
        problems.push(`${path}.sinks: required — a list of sinks, e.g. [ { type: duckdb, path: ./auditship.duckdb } ]`);
      } else {
        rawSinks.forEach((s, i) => {
          const sink = checkConnector(s, SINKS, 'sink', `${path}.sinks[${i}]`, problems);
          if (sink) sinks.push(sink as SinkConfig);
        });
      }
      if (sinks.length && sinks[sinks.length - 1]!.type !== 'duckdb') {
        problems.push(`${path}.sinks: the last sink must be duckdb (it keeps the pipeline's checkpoints, and the dead letters of search sinks)`);
      }
      const last = sinks[sinks.length - 1];
      const logSource = sourceDecl?.events === 'pgaudit';
      if (last?.type === 'duckdb' && last.store_events === false && (sinks.length < 2 || !logSource)) {
        problems.push(
          `${path}.sinks: store_events: false needs a search or archive sink before the duckdb sink, in a pg_logs or rds_logs pipeline (else the events would go nowhere)`,
        );
      }
      if (source && sourceDecl?.problems) problems.push(...sourceDecl.problems(source as never, `${path}.source`));
      sinks.forEach((sink, i) => {
        const at = `${path}.sinks[${i}]`;
        const decl = sinkDeclaration(sink.type);
        if (sourceDecl && !decl.accepts.includes(sourceDecl.events))
          problems.push(`${at}: ${decl.mismatch ?? `the ${sink.type} sink does not take the ${sourceDecl.events} events of a ${source!.type} source`}`);
        if (decl.problems) problems.push(...decl.problems(sink as never, at));
        if (sink.type !== 'archive') return;
        // Each archive keeps one manifest per server: two pipelines of one server must not share a place.
        const where = archiveLocation(sink);
        const server = source ? serverOf(source) : 'default';
        const other = archiveUsers.get(`${where}\0${server}`);
        if (other && other !== name)
          problems.push(
            `${at}: pipeline ${other} archives server ${server} to the same place; give one of them another prefix or server name (each keeps its own manifest)`,
          );
        archiveUsers.set(`${where}\0${server}`, name);
      });
      let state: StateConfig | undefined;
      if (p['state'] !== undefined && p['state'] !== null) {
        if (typeof p['state'] !== 'object' || Array.isArray(p['state'])) problems.push(`${path}.state: must be a mapping (bucket, key, …)`);
        else {
          const out: Record<string, unknown> = {};
          checkFields(p['state'] as Record<string, unknown>, STATE_SECTION, `${path}.state`, 'in a state section', problems, out);
          state = out as StateConfig;
          if (typeof state.key === 'string' && (state.key === '' || state.key.endsWith('/')))
            problems.push(`${path}.state.key: a key of an object, not a prefix`);
          if (state.endpoint !== undefined && !/^https?:\/\/[^/]/.test(state.endpoint)) problems.push(`${path}.state.endpoint: an http:// or https:// URL`);
        }
      }
      if (source && sinks.length) pipelines.push({ name, source, sinks, ...(state ? { state } : {}) });
    }
  }
  let ui: UiConfig | undefined;
  if (top['ui'] !== undefined && top['ui'] !== null) {
    if (typeof top['ui'] !== 'object' || Array.isArray(top['ui'])) problems.push('ui: must be a mapping (listen, token, basic_auth)');
    else {
      const out: Record<string, unknown> = {};
      checkFields(top['ui'] as Record<string, unknown>, UI_SECTION, 'ui', 'in the ui section', problems, out);
      if (typeof out['token'] === 'string' && out['token'].length < 16) problems.push('ui.token: at least 16 characters (e.g. `openssl rand -hex 16`)');
      if (typeof out['basic_auth'] === 'string' && !/^[^:]+:.+$/.test(out['basic_auth'])) problems.push('ui.basic_auth: USER:PASSWORD, both non-empty');
      const names = new Set<string>();
      for (const spec of listOf(out['saved_searches'])) {
        const s = parseSavedSearch(spec);
        if (typeof s === 'string') problems.push(`ui.saved_searches: ${s}`);
        else if (names.has(s.name)) problems.push(`ui.saved_searches: ${s.name}: named twice`);
        else names.add(s.name);
      }
      ui = out;
    }
  }
  let metrics: MetricsConfig | undefined;
  if (top['metrics'] !== undefined && top['metrics'] !== null) {
    if (typeof top['metrics'] !== 'object' || Array.isArray(top['metrics'])) problems.push('metrics: must be a mapping (listen)');
    else {
      const out: Record<string, unknown> = {};
      checkFields(top['metrics'] as Record<string, unknown>, METRICS_SECTION, 'metrics', 'in the metrics section', problems, out);
      metrics = out;
    }
  }
  let redaction: RedactionConfig = { enabled: true, raw_logs_may_leave_host: true };
  if (top['redaction'] !== undefined && top['redaction'] !== null) {
    if (typeof top['redaction'] !== 'object' || Array.isArray(top['redaction'])) problems.push('redaction: must be a mapping (enabled)');
    else {
      const out: Record<string, unknown> = {};
      checkFields(top['redaction'] as Record<string, unknown>, REDACTION_SECTION, 'redaction', 'in the redaction section', problems, out);
      redaction = out as RedactionConfig;
      const rules: [keyof RedactionConfig, (s: string) => unknown][] = [
        ['patterns', parsePattern],
        ['columns', parseColumnRule],
        ['json_paths', parseJsonPath],
      ];
      for (const [key, parse] of rules) {
        for (const spec of listOf(redaction[key])) {
          const r = parse(spec);
          if (typeof r === 'string') problems.push(`redaction.${key}: ${r}`);
        }
      }
    }
  }
  // A DuckDB file kept in S3 is fetched and written back whole: every pipeline on that file names the same object.
  const stateOf = new Map<string, { pipeline: string; where: string }>();
  for (const p of pipelines) {
    const db = p.sinks[p.sinks.length - 1];
    if (db?.type !== 'duckdb') continue;
    const where = p.state ? `s3://${p.state.bucket}/${p.state.key}` : 'the local disk only';
    const other = stateOf.get(resolve(db.path));
    if (other && other.where !== where)
      problems.push(
        `pipelines.${p.name}.state: pipeline ${other.pipeline} keeps ${db.path} in ${other.where}, this one in ${where}; give them one state or separate DuckDB files`,
      );
    else stateOf.set(resolve(db.path), { pipeline: p.name, where });
  }
  for (const p of pipelines) {
    p.redaction = redaction;
    if (redaction.raw_logs_may_leave_host === false)
      p.sinks.forEach((sink, i) => {
        if (sink.type === 'archive' && sink.form === 'files' && sink.bucket !== undefined)
          problems.push(
            `pipelines.${p.name}.sinks[${i}]: the files form uploads the raw log files, secrets and all, and redaction.raw_logs_may_leave_host is false; use form ndjson or parquet (redacted), or a local directory`,
          );
      });
  }
  const alerts = decodeAlerts(top['alerts'], {
    checkFields,
    problems,
    pipelines: pipelines.map((p) => {
      const db = p.sinks[p.sinks.length - 1];
      return {
        name: p.name,
        events: sourceDeclaration(p.source.type)?.events,
        sourceType: p.source.type,
        storeEvents: db?.type !== 'duckdb' || db.store_events !== false,
        stateInS3: p.state !== undefined,
      };
    }),
  });
  for (const p of pipelines) {
    const mine = alerts?.byPipeline.get(p.name);
    if (mine) p.alerts = mine;
  }
  if (problems.length) throw new ConfigError(problems);
  return { pipelines, redaction, ...(ui ? { ui } : {}), ...(metrics ? { metrics } : {}), ...(alerts ? { alerts: alerts.config } : {}) };
}

/** Reads and validates a YAML config file. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([
      code === 'ENOENT'
        ? `${path}: config file not found (copy auditship.example.yaml, or pass --config FILE)`
        : `${path}: cannot read the config file (${code ?? (err as Error).message})`,
    ]);
  }
  return parseConfig(text, path, env);
}

/** Parses and validates a config given as YAML (or JSON) text; `origin` names it in the problems. */
export function parseConfig(text: string, origin: string, env: NodeJS.ProcessEnv = process.env): Config {
  // Loaded here, not at start: commands without a config file (ingest) should not pay for it.
  const { parseDocument } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    throw new ConfigError(doc.errors.map((e) => `${origin}: YAML syntax error at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`));
  }
  try {
    return validateConfig(doc.toJS(), env);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems.map((p) => `${origin}: ${p}`));
    throw err;
  }
}
