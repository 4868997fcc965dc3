/**
 * A faithful in-memory stand-in for the part of the Elasticsearch / OpenSearch REST API that the
 * auditship bulk sink and its tests use: root info and product check, content negotiation
 * (`compatible-with`), basic / API key / bearer auth with a read-only principal, composable index
 * templates, implicit index creation with template or dynamic mappings, `_bulk` with per-item results
 * (409 on `create` of an existing id, mapping errors per flavor), near-real-time visibility with refresh,
 * `_count`, `_search`, `_cat/indices`, `_mapping`, index deletion, `_has_privileges` — plus a fault
 * injection and statistics API under `/_test/…` (not part of Elasticsearch). See README.md beside it.
 *
 * In process:  const es = await startEsServer({ flavor: 'elasticsearch' }); … await es.close();
 * As a process: node --import tsx test/es-server/server.ts --port 0 --flavor opensearch
 *               prints one line {"url":"http://127.0.0.1:PORT"} on stdout once listening.
 *
 * Only node: built-ins. All state is in memory; documents are kept as their raw JSON text.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------------
// Options, handle, faults, stats
// ---------------------------------------------------------------------------------------------------

export type Flavor = 'elasticsearch' | 'opensearch';

/**
 * A user: a superuser, a read-only one (`viewer`), or `createOnly` — a role with create_doc and create_index on
 * every index (an ingest role that may add documents but not overwrite or update them).
 */
export interface EsUser {
  username: string;
  password: string;
  readOnly?: boolean;
  createOnly?: boolean;
}
export interface EsApiKey {
  id: string;
  key: string;
  name?: string;
  owner?: string;
  readOnly?: boolean;
}
export interface EsBearerToken {
  token: string;
  principal?: string;
  readOnly?: boolean;
}

/** Security is enabled when any credential is configured; then every request must authenticate. */
export interface EsAuthOptions {
  users?: EsUser[];
  apiKeys?: EsApiKey[];
  bearerTokens?: EsBearerToken[];
}

export interface EsServerOptions {
  port?: number;
  host?: string;
  flavor?: Flavor;
  /** Default 8.15.0 (Elasticsearch) or 2.17.0 (OpenSearch). */
  version?: string;
  clusterName?: string;
  nodeName?: string;
  auth?: EsAuthOptions;
  /** `http.max_content_length`: bytes, or a size such as "100mb" (default). */
  maxContentLength?: number | string;
  /** 'nrt' (default): documents become searchable on refresh, as in Elasticsearch; 'immediate': at once. */
  refresh?: 'nrt' | 'immediate';
  /** `action.destructive_requires_name`; default true for Elasticsearch (8.0+), false for OpenSearch. */
  destructiveRequiresName?: boolean;
  /** `http.compression`: gzip responses when the client sends Accept-Encoding: gzip (default true). */
  compression?: boolean;
  /** `index.mapping.total_fields.limit` default (1000). */
  totalFieldsLimit?: number;
  /** `index.max_result_window` default (10000). */
  maxResultWindow?: number;
}

export interface FaultSettings {
  /** The next N bulk requests are answered 429 (whole request, nothing applied). */
  bulk429?: number;
  /** The next N bulk requests are answered 503 (whole request, nothing applied). */
  bulk503?: number;
  /** Every Nth item of each bulk request is answered with an item-level 429 (not applied); 0 disables. */
  item429Every?: number;
  /** The next N bulk requests have their socket reset after the body was read, without an answer. */
  resetNext?: number;
  /** With resetNext: apply the documents first, then reset (the client cannot know they were stored). */
  resetAfterApply?: boolean;
  /** Every bulk request is answered this many milliseconds late (documents applied after the delay). */
  delayMs?: number;
  /** Recorded only: stats count the bulk requests that arrived while this many were already in flight. */
  maxConcurrentBulk?: number | null;
}

export type FaultState = Required<FaultSettings>;

export interface EsStats {
  flavor: Flavor;
  version: string;
  bulkRequests: number;
  inFlight: number;
  maxInFlight: number;
  /** Documents stored now, all indices (whatever was refreshed). */
  docs: number;
  /** Bulk items seen, and how they ended. */
  items: number;
  created: number;
  updated: number;
  deleted: number;
  conflicts: number;
  itemErrors: Record<string, number>;
  /** Whole bulk requests answered 429 / 503 by fault injection. */
  rejected429: number;
  rejected503: number;
  /** Bulk items answered 429 by fault injection. */
  items429: number;
  resets: number;
  maxConcurrentBulk: number | null;
  /** Bulk requests that arrived while maxConcurrentBulk were already in flight. */
  concurrencyExceeded: number;
  rejected413: number;
  unauthorized401: number;
  forbidden403: number;
  /**
   * Requests that arrived, whatever the answer (not /_test): all of them; GET/HEAD / (cluster info); index and
   * component template PUT/POST; `<target>/_mapping` PUT/POST; `_security/user/_has_privileges`.
   */
  requests: number;
  rootInfo: number;
  templatePuts: number;
  mappingPuts: number;
  privilegeChecks: number;
  indices: Record<string, number>;
  faults: FaultState;
  /** Of the server process (all of it, when run in process). */
  memory: { rssMB: number; heapUsedMB: number };
}

export type ControlCommand = { op: 'faults'; faults: FaultSettings } | { op: 'reset' } | { op: 'stats' } | { op: 'refresh' };

export interface EsServerHandle {
  url: string;
  port: number;
  flavor: Flavor;
  version: string;
  stats(): EsStats;
  setFaults(faults: FaultSettings): FaultState;
  /** Clears every index, template, fault and counter. */
  reset(): void;
  /** The same commands as the /_test API, in process. */
  control(cmd: ControlCommand): Promise<unknown>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const js = JSON.stringify;

/** Sets an own enumerable property (safe for keys such as "__proto__"). */
function setOwn(o: Obj, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function getOwn(o: unknown, k: string): unknown {
  return isObj(o) && hasOwn(o, k) ? o[k] : undefined;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
function randomId(len: number): string {
  const b = randomBytes(len);
  let s = '';
  for (let i = 0; i < len; i++) s += B64URL[b[i]! & 63];
  return s;
}

/** A 20-character id shaped like Elasticsearch's auto-generated ids. */
function autoId(): string {
  return randomId(20);
}

function parseSize(v: number | string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?\s*$/i.exec(v);
  if (!m) throw new Error(`bad size ${v}`);
  const mult: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };
  return Math.floor(Number(m[1]) * mult[(m[2] ?? 'b').toLowerCase()]!);
}

/** "1s", "500ms", "1m", "-1" → milliseconds (-1: never). */
function parseTime(v: string): number {
  if (v === '-1') return -1;
  const m = /^(\d+(?:\.\d+)?)(nanos|micros|ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) return 1000;
  const mult: Record<string, number> = { nanos: 1e-6, micros: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };
  return Number(m[1]) * mult[m[2] ?? 'ms']!;
}

function formatBytes(n: number): string {
  const units = ['b', 'kb', 'mb', 'gb', 'tb'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n}b` : `${Number(v.toFixed(1))}${units[i]}`;
}

/** Java Map/List toString, as Elasticsearch prints a value preview. */
function javaString(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(javaString).join(', ')}]`;
  if (isObj(v))
    return `{${Object.keys(v)
      .map((k) => `${k}=${javaString(v[k])}`)
      .join(', ')}}`;
  return String(v);
}

/** Simple `*` wildcard match (index patterns, template patterns, field patterns). */
function globMatch(pattern: string, s: string): boolean {
  if (!pattern.includes('*')) return pattern === s;
  const parts = pattern.split('*');
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (!s.startsWith(first) || s.length < first.length + last.length || !s.endsWith(last)) return false;
  let pos = first.length;
  const end = s.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const p = parts[i]!;
    const at = s.indexOf(p, pos);
    if (at < 0 || at + p.length > end) return false;
    pos = at + p.length;
  }
  return true;
}

/** Whether two `*` patterns can match a common string. */
function globsOverlap(p: string, q: string): boolean {
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = i * 100003 + j;
    const m = memo.get(key);
    if (m !== undefined) return m;
    let r: boolean;
    if (i === p.length && j === q.length) r = true;
    else if (i < p.length && p[i] === '*') r = go(i + 1, j) || (j < q.length && go(i, j + 1));
    else if (j < q.length && q[j] === '*') r = go(i, j + 1) || (i < p.length && go(i + 1, j));
    else r = i < p.length && j < q.length && p[i] === q[j] && go(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  return go(0, 0);
}

// ---------------------------------------------------------------------------------------------------
// Errors in the Elasticsearch shape
// ---------------------------------------------------------------------------------------------------

interface ErrObj {
  type: string;
  reason: string;
  caused_by?: ErrObj;
  [k: string]: unknown;
}

function errObj(type: string, reason: string, extra?: Obj, causedBy?: ErrObj): ErrObj {
  const e: ErrObj = { type, reason, ...extra };
  if (causedBy) e.caused_by = causedBy;
  return e;
}

interface Reply {
  status: number;
  /** A JSON string (content type negotiated), or raw text with contentType set. */
  body?: string;
  contentType?: string;
  headers?: Record<string, string | string[]>;
  /** Internal: reset the socket instead of answering. */
  reset?: boolean;
}

function jsonReply(status: number, body: unknown): Reply {
  return { status, body: typeof body === 'string' ? body : js(body) };
}

function errorReply(status: number, e: ErrObj, rootCause?: ErrObj[]): Reply {
  const { caused_by: _c, ...top } = e;
  return jsonReply(status, { error: { root_cause: rootCause ?? [top], ...e }, status });
}

class HttpError extends Error {
  constructor(readonly reply: Reply) {
    super(reply.body ?? String(reply.status));
  }
}

function fail(status: number, type: string, reason: string, extra?: Obj, causedBy?: ErrObj): never {
  throw new HttpError(errorReply(status, errObj(type, reason, extra, causedBy)));
}

function indexNotFound(name: string): ErrObj {
  return errObj('index_not_found_exception', `no such index [${name}]`, {
    'resource.type': 'index_or_alias',
    'resource.id': name,
    index_uuid: '_na_',
    index: name,
  });
}

// ---------------------------------------------------------------------------------------------------
// Mappings
// ---------------------------------------------------------------------------------------------------

interface MNode {
  type?: string;
  properties?: Record<string, MNode>;
  fields?: Record<string, MNode>;
  dynamic?: unknown;
  enabled?: boolean;
  format?: string;
  ignore_malformed?: boolean;
  value?: unknown;
  [k: string]: unknown;
}

type Dyn = 'true' | 'false' | 'strict' | 'runtime';

function dynOf(v: unknown, inherited: Dyn): Dyn {
  if (v === undefined || v === null) return inherited;
  if (v === true || v === 'true') return 'true';
  if (v === false || v === 'false') return 'false';
  if (v === 'strict') return 'strict';
  if (v === 'runtime') return 'runtime';
  return inherited;
}

const KNOWN_TYPES = new Set([
  'text',
  'keyword',
  'constant_keyword',
  'wildcard',
  'match_only_text',
  'long',
  'integer',
  'short',
  'byte',
  'double',
  'float',
  'half_float',
  'scaled_float',
  'unsigned_long',
  'date',
  'date_nanos',
  'boolean',
  'binary',
  'ip',
  'object',
  'nested',
  'flattened',
  'flat_object',
  'geo_point',
  'geo_shape',
  'point',
  'shape',
  'completion',
  'search_as_you_type',
  'token_count',
  'alias',
  'dense_vector',
  'sparse_vector',
  'rank_feature',
  'rank_features',
  'integer_range',
  'long_range',
  'float_range',
  'double_range',
  'date_range',
  'ip_range',
  'histogram',
  'aggregate_metric_double',
  'version',
  'percolator',
  'join',
  'semantic_text',
  'knn_vector',
  'annotated_text',
  'murmur3',
  'counted_keyword',
  'passthrough',
  'match_only_text',
]);
const STRING_TYPES = new Set([
  'keyword',
  'text',
  'match_only_text',
  'wildcard',
  'constant_keyword',
  'search_as_you_type',
  'version',
  'annotated_text',
  'counted_keyword',
]);
// Values are compared as doubles, which cannot hold 2^63 - 1 or 2^64 - 1: the bounds are the doubles those
// literals always were (2^63, 2^64), so 2^63 itself passes here where Elasticsearch refuses it.
const INT_RANGES: Record<string, [number, number, string]> = {
  long: [-(2 ** 63), 2 ** 63, 'a long'],
  integer: [-2147483648, 2147483647, 'an integer'],
  short: [-32768, 32767, 'a short'],
  byte: [-128, 127, 'a byte'],
  unsigned_long: [0, 2 ** 64, 'an unsigned long'],
};
const FLOAT_TYPES = new Set(['double', 'float', 'half_float', 'scaled_float']);
const ROOT_MAPPING_KEYS = new Set([
  'properties',
  'dynamic',
  'dynamic_templates',
  'date_detection',
  'numeric_detection',
  'dynamic_date_formats',
  '_source',
  '_routing',
  '_meta',
  '_field_names',
  '_data_stream_timestamp',
  'enabled',
  'runtime',
  'subobjects',
  '_size',
  '_doc_count',
]);
const METADATA_FIELDS = new Set([
  '_id',
  '_index',
  '_source',
  '_routing',
  '_seq_no',
  '_version',
  '_primary_term',
  '_ignored',
  '_field_names',
  '_tier',
  '_nested_path',
  '_data_stream_timestamp',
]);

const isObjectNode = (n: MNode): boolean => n.type === undefined || n.type === 'object' || n.type === 'nested';

function deepClone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(js(v)) as T);
}

/** Validates a mapping definition (template, index creation); throws mapper_parsing_exception. */
function validateMappings(m: unknown): void {
  if (m === undefined || m === null) return;
  if (!isObj(m)) fail(400, 'mapper_parsing_exception', 'Failed to parse mapping: mappings must be an object');
  const root = m;
  const bad = Object.keys(root).filter((k) => !ROOT_MAPPING_KEYS.has(k));
  if (bad.length) {
    const reason = `Root mapping definition has unsupported parameters:  ${bad.map((k) => `[${k} : ${javaString(root[k])}]`).join(' ')}`;
    fail(400, 'mapper_parsing_exception', `Failed to parse mapping: ${reason}`, undefined, errObj('mapper_parsing_exception', reason));
  }
  const walk = (props: unknown, prefix: string): void => {
    if (props === undefined) return;
    if (!isObj(props)) fail(400, 'mapper_parsing_exception', `Failed to parse mapping: Expected map for property [properties] on field [${prefix || '_doc'}]`);
    for (const [name, def] of Object.entries(props)) {
      const full = prefix ? `${prefix}.${name}` : name;
      if (!isObj(def))
        fail(
          400,
          'mapper_parsing_exception',
          `Failed to parse mapping: Expected map for property [fields] on field [${full}] but got a class java.lang.String`,
        );
      const d = def as MNode;
      if (d.type !== undefined && (typeof d.type !== 'string' || !KNOWN_TYPES.has(d.type))) {
        const reason = `No handler for type [${String(d.type)}] declared on field [${name}]`;
        fail(400, 'mapper_parsing_exception', `Failed to parse mapping: ${reason}`, undefined, errObj('mapper_parsing_exception', reason));
      }
      if (d.properties !== undefined) walk(d.properties, full);
      if (d.fields !== undefined) walk(d.fields, full);
    }
  };
  walk(root.properties, '');
}

/** Merges mapping b into a (properties deep, everything else replaced); returns a. */
function mergeMappings(a: Obj, b: Obj | undefined): Obj {
  if (!b) return a;
  for (const [k, v] of Object.entries(b)) {
    if (k === 'properties' && isObj(v)) {
      const ap = isObj(a.properties) ? a.properties : {};
      for (const [f, def] of Object.entries(v)) {
        const cur = getOwn(ap, f);
        if (isObj(cur) && isObj(def) && isObjectNode(cur) && isObjectNode(def)) setOwn(ap, f, mergeMappings(cur, def));
        else setOwn(ap, f, deepClone(def));
      }
      a.properties = ap;
    } else if (k === 'dynamic_templates' && Array.isArray(v)) {
      a.dynamic_templates = [...(Array.isArray(a.dynamic_templates) ? a.dynamic_templates : []), ...deepClone(v)];
    } else {
      setOwn(a, k, deepClone(v));
    }
  }
  return a;
}

function countFields(props: unknown): number {
  if (!isObj(props)) return 0;
  let n = 0;
  for (const def of Object.values(props)) {
    n++;
    if (isObj(def)) n += countFields(def.properties) + countFields(def.fields);
  }
  return n;
}

/** Resolves a field path (incl. multi-fields such as `x.keyword`) in a mapping. */
function resolveField(root: MNode, path: string): { node: MNode; sourcePath: string } | undefined {
  const segs = path.split('.');
  let node: MNode = root;
  let i = 0;
  const src: string[] = [];
  while (i < segs.length) {
    let found = false;
    // Longest match first: properties may contain dots only through object nesting, but be lenient.
    for (let j = segs.length; j > i; j--) {
      const key = segs.slice(i, j).join('.');
      const props = node.properties;
      if (props && hasOwn(props, key)) {
        node = props[key]!;
        src.push(key);
        i = j;
        found = true;
        break;
      }
      if (!isObjectNode(node) && node.fields && hasOwn(node.fields, key) && j === segs.length) {
        node = node.fields[key]!;
        i = j;
        found = true;
        break;
      }
    }
    if (!found) return undefined;
  }
  return { node, sourcePath: src.join('.') };
}

/** All values at a dotted path of a parsed source (arrays flattened; dotted keys honoured). */
function valuesAt(src: unknown, path: string): unknown[] {
  const segs = path.split('.');
  const out: unknown[] = [];
  const go = (node: unknown, i: number): void => {
    if (node === null || node === undefined) return;
    if (Array.isArray(node)) {
      for (const el of node) go(el, i);
      return;
    }
    if (i === segs.length) {
      out.push(node);
      return;
    }
    if (!isObj(node)) return;
    let key = '';
    for (let j = i; j < segs.length; j++) {
      key = j === i ? segs[j]! : `${key}.${segs[j]!}`;
      if (hasOwn(node, key)) go(node[key], j + 1);
    }
  };
  go(src, 0);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Dates, IPs, text
// ---------------------------------------------------------------------------------------------------

const DEFAULT_DATE_FORMAT = 'strict_date_optional_time||epoch_millis';
const DEFAULT_DATE_NANOS_FORMAT = 'strict_date_optional_time_nanos||epoch_millis';
const ISO_RE = /^([+-]?\d{4,9})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$/;
const ISO_LENIENT_RE =
  /^([+-]?\d{1,9})(?:-(\d{1,2})(?:-(\d{1,2})(?:T(\d{1,2})(?::(\d{1,2})(?::(\d{1,2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$/;

function daysInMonth(y: number, m: number): number {
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1] ?? 0;
}

function utcMillis(y: number, mo: number, d: number, h: number, mi: number, s: number, frac: string | undefined, zone: string | undefined): number | null {
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 59) return null;
  const ms = frac ? Number(frac.padEnd(3, '0').slice(0, 3)) : 0;
  const dt = new Date(Date.UTC(2000, mo - 1, d, h, mi, s, ms));
  dt.setUTCFullYear(y);
  let t = dt.getTime();
  if (zone && zone !== 'Z') {
    const zm = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone);
    if (!zm) return null;
    const off = Number(zm[2]) * 60 + Number(zm[3] ?? 0);
    if (Number(zm[2]) > 18) return null;
    t -= (zm[1] === '-' ? -1 : 1) * off * 60000;
  }
  return t;
}

function parseIso(s: string, strict: boolean, requireTime = false, requireFull = false): number | null {
  const m = (strict ? ISO_RE : ISO_LENIENT_RE).exec(s);
  if (!m) return null;
  if (strict && !/^\d{4}$/.test(m[1]!)) return null;
  if (strict && s.includes(' ')) return null;
  if (requireTime && m[4] === undefined) return null;
  if (requireFull && (m[6] === undefined || m[8] === undefined)) return null;
  return utcMillis(Number(m[1]), Number(m[2] ?? 1), Number(m[3] ?? 1), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0), m[7], m[8]);
}

/** Java DateTimeFormatter pattern (common letters) → regex with capture roles. */
function javaPatternParser(pattern: string): ((s: string) => number | null) | null {
  const roles: string[] = [];
  let re = '';
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "'") {
      const end = pattern.indexOf("'", i + 1);
      const lit = pattern.slice(i + 1, end < 0 ? undefined : end);
      re += lit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      i = end < 0 ? pattern.length : end + 1;
      continue;
    }
    if (/[a-zA-Z]/.test(c)) {
      let j = i;
      while (j < pattern.length && pattern[j] === c) j++;
      const n = j - i;
      switch (c) {
        case 'y':
        case 'u':
          re += n === 2 ? '(\\d{2})' : '(\\d{4})';
          roles.push('y');
          break;
        case 'M':
          re += n >= 3 ? '([A-Za-z]{3,9})' : n === 2 ? '(\\d{2})' : '(\\d{1,2})';
          roles.push(n >= 3 ? 'Mname' : 'M');
          break;
        case 'd':
          re += n === 2 ? '(\\d{2})' : '(\\d{1,2})';
          roles.push('d');
          break;
        case 'H':
          re += n === 2 ? '(\\d{2})' : '(\\d{1,2})';
          roles.push('H');
          break;
        case 'm':
          re += n === 2 ? '(\\d{2})' : '(\\d{1,2})';
          roles.push('m');
          break;
        case 's':
          re += n === 2 ? '(\\d{2})' : '(\\d{1,2})';
          roles.push('s');
          break;
        case 'S':
          re += `(\\d{${n}})`;
          roles.push('S');
          break;
        case 'Z':
          re += '(Z|[+-]\\d{4}|[+-]\\d{2}:\\d{2})';
          roles.push('Z');
          break;
        case 'X':
        case 'x':
          re += '(Z|[+-]\\d{2}(?::?\\d{2})?)';
          roles.push('Z');
          break;
        default:
          return null; // unsupported letter: caller is lenient
      }
      i = j;
      continue;
    }
    re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    i++;
  }
  const rx = new RegExp(`^${re}$`);
  const months = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
  return (s: string) => {
    const m = rx.exec(s);
    if (!m) return null;
    let y = 1970,
      mo = 1,
      d = 1,
      h = 0,
      mi = 0,
      sec = 0;
    let frac: string | undefined;
    let zone: string | undefined;
    roles.forEach((r, k) => {
      const v = m[k + 1]!;
      if (r === 'y') y = v.length === 2 ? 2000 + Number(v) : Number(v);
      else if (r === 'M') mo = Number(v);
      else if (r === 'Mname') mo = months.indexOf(v.slice(0, 3).toLowerCase()) + 1;
      else if (r === 'd') d = Number(v);
      else if (r === 'H') h = Number(v);
      else if (r === 'm') mi = Number(v);
      else if (r === 's') sec = Number(v);
      else if (r === 'S') frac = v;
      else if (r === 'Z') zone = v === 'Z' ? 'Z' : v.length === 5 && !v.includes(':') ? `${v.slice(0, 3)}:${v.slice(3)}` : v;
    });
    return utcMillis(y, mo, d, h, mi, sec, frac, zone);
  };
}

const formatCache = new Map<string, ((s: string) => number | null)[]>();

/** Parses a date value with an Elasticsearch `format` ("a||b"); null when no format accepts it. */
function parseDate(value: unknown, format: string): number | null {
  if (typeof value !== 'string' && typeof value !== 'number') return null;
  let parsers = formatCache.get(format);
  if (!parsers) {
    parsers = format.split('||').map((f) => {
      const name = f.trim();
      switch (name) {
        case 'epoch_millis':
          return (s: string) => (/^-?\d+(\.\d+)?$/.test(s) ? Math.trunc(Number(s)) : null);
        case 'epoch_second':
          return (s: string) => (/^-?\d+(\.\d+)?$/.test(s) ? Math.trunc(Number(s) * 1000) : null);
        case 'strict_date_optional_time':
        case 'strict_date_optional_time_nanos':
          return (s: string) => parseIso(s, true);
        case 'date_optional_time':
        case 'date_optional_time_nanos':
        case 'iso8601':
          return (s: string) => parseIso(s, false);
        case 'strict_date_time':
        case 'strict_date_time_no_millis':
          return (s: string) => parseIso(s, true, true, true);
        case 'date_time':
        case 'date_time_no_millis':
          return (s: string) => parseIso(s, false, true, true);
        case 'strict_date':
        case 'date':
        case 'yyyy-MM-dd':
          return (s: string) => (/^\d{4}-\d{2}-\d{2}$/.test(s) ? parseIso(s, true) : null);
        case 'basic_date':
          return (s: string) => {
            const m = /^(\d{4})(\d{2})(\d{2})$/.exec(s);
            return m ? utcMillis(+m[1]!, +m[2]!, +m[3]!, 0, 0, 0, undefined, undefined) : null;
          };
        default: {
          if (/^[a-z_]+$/.test(name))
            return (s: string) => {
              const t = Date.parse(s);
              return Number.isFinite(t) ? t : null;
            }; // other built-in names: lenient
          return (
            javaPatternParser(name) ??
            ((s: string) => {
              const t = Date.parse(s);
              return Number.isFinite(t) ? t : null;
            })
          );
        }
      }
    });
    formatCache.set(format, parsers);
  }
  const s = typeof value === 'number' ? String(value) : value;
  for (const p of parsers) {
    const t = p(s);
    if (t !== null && Number.isFinite(t)) return t;
  }
  return null;
}

/** Dynamic date detection (default dynamic_date_formats): at least a full date. */
function looksLikeDate(s: string, formats: unknown): boolean {
  if (Array.isArray(formats)) return formats.some((f) => typeof f === 'string' && parseDate(s, f) !== null);
  if (s.length < 10 || s.length > 40) return false;
  const c = s.charCodeAt(0);
  if (c < 48 || c > 57) return false;
  if (/^\d{4}-\d{2}-\d{2}/.test(s)) return parseIso(s, true) !== null;
  return /^\d{4}\/\d{2}\/\d{2}( \d{2}:\d{2}:\d{2})?( [+-]\d{4})?$/.test(s);
}

/** Date math for range queries: now, now-1d/d, 2024-01-01||+1M. */
function dateMath(expr: unknown, format: string, roundUp: boolean): number | null {
  if (typeof expr === 'number') return parseDate(expr, format);
  if (typeof expr !== 'string') return null;
  let base: number | null;
  let ops: string;
  if (expr.startsWith('now')) {
    base = Date.now();
    ops = expr.slice(3);
  } else {
    const at = expr.indexOf('||');
    base = parseDate(at < 0 ? expr : expr.slice(0, at), format);
    ops = at < 0 ? '' : expr.slice(at + 2);
  }
  if (base === null) return null;
  const d = new Date(base);
  const re = /([+-])(\d+)([yMwdhHms])|\/([yMwdhHms])/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(ops))) {
    if (m[1]) {
      const n = Number(m[2]) * (m[1] === '-' ? -1 : 1);
      switch (m[3]) {
        case 'y':
          d.setUTCFullYear(d.getUTCFullYear() + n);
          break;
        case 'M':
          d.setUTCMonth(d.getUTCMonth() + n);
          break;
        case 'w':
          d.setUTCDate(d.getUTCDate() + 7 * n);
          break;
        case 'd':
          d.setUTCDate(d.getUTCDate() + n);
          break;
        case 'h':
        case 'H':
          d.setUTCHours(d.getUTCHours() + n);
          break;
        case 'm':
          d.setUTCMinutes(d.getUTCMinutes() + n);
          break;
        case 's':
          d.setUTCSeconds(d.getUTCSeconds() + n);
          break;
        default:
          break; // the pattern allows no other unit
      }
    } else {
      const u = m[4]!;
      const start = new Date(d.getTime());
      if (u === 'y') start.setUTCMonth(0, 1);
      if (u === 'y' || u === 'M') start.setUTCDate(1);
      if (u === 'w') start.setUTCDate(start.getUTCDate() - ((start.getUTCDay() + 6) % 7));
      if ('yMwd'.includes(u)) start.setUTCHours(0, 0, 0, 0);
      if (u === 'h' || u === 'H') start.setUTCMinutes(0, 0, 0);
      if (u === 'm') start.setUTCSeconds(0, 0);
      if (u === 's') start.setUTCMilliseconds(0);
      if (roundUp) {
        const end = new Date(start.getTime());
        switch (u) {
          case 'y':
            end.setUTCFullYear(end.getUTCFullYear() + 1);
            break;
          case 'M':
            end.setUTCMonth(end.getUTCMonth() + 1);
            break;
          case 'w':
            end.setUTCDate(end.getUTCDate() + 7);
            break;
          case 'd':
            end.setUTCDate(end.getUTCDate() + 1);
            break;
          case 'h':
          case 'H':
            end.setUTCHours(end.getUTCHours() + 1);
            break;
          case 'm':
            end.setUTCMinutes(end.getUTCMinutes() + 1);
            break;
          case 's':
            end.setUTCSeconds(end.getUTCSeconds() + 1);
            break;
        }
        d.setTime(end.getTime() - 1);
      } else d.setTime(start.getTime());
    }
  }
  return d.getTime();
}

function ipToBig(s: string): bigint | null {
  const v = isIP(s);
  if (v === 4) {
    const p = s.split('.').map(Number);
    return 0xffff00000000n + BigInt(((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!);
  }
  if (v === 6) {
    let str = s.split('%')[0]!;
    let tail: number[] = [];
    const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(str);
    if (v4) {
      const p = v4[1]!.split('.').map(Number);
      tail = [(p[0]! << 8) + p[1]!, (p[2]! << 8) + p[3]!];
      str = str.slice(0, -v4[1]!.length) + '0:0';
    }
    const [head, rest] = str.includes('::') ? (str.split('::') as [string, string]) : [str, undefined];
    const h = head ? head.split(':') : [];
    const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
    const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill('0'), ...r];
    let n = 0n;
    groups.forEach((g, i) => {
      const val = tail.length && i >= 6 ? tail[i - 6]! : parseInt(g || '0', 16);
      n = (n << 16n) + BigInt(val);
    });
    return n;
  }
  return null;
}

function ipMatches(value: unknown, query: unknown): boolean {
  if (typeof value !== 'string' || typeof query !== 'string') return false;
  const v = ipToBig(value);
  if (v === null) return false;
  const slash = query.indexOf('/');
  if (slash < 0) return v === ipToBig(query);
  const base = ipToBig(query.slice(0, slash));
  if (base === null) return false;
  let bits = Number(query.slice(slash + 1));
  if (isIP(query.slice(0, slash)) === 4) bits += 96;
  const mask = bits === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - bits)) - 1n);
  return (v & mask) === (base & mask);
}

/** Approximation of the standard analyzer: lower-cased Unicode word tokens. */
function analyze(s: string): string[] {
  return s.toLowerCase().match(/[\p{L}\p{N}_]+(?:['.][\p{L}\p{N}_]+)*/gu) ?? [];
}

// ---------------------------------------------------------------------------------------------------
// Index state
// ---------------------------------------------------------------------------------------------------

class Doc {
  constructor(
    public src: string,
    public version: number,
    public seq: number,
  ) {}
}

interface IndexState {
  name: string;
  uuid: string;
  createdAt: number;
  settings: Record<string, string>;
  mappings: MNode;
  fieldCount: number;
  docs: Map<string, Doc>;
  /** Versions of deleted ids, so a re-create continues the version sequence. */
  tombstones: Map<string, number>;
  seq: number;
  refreshedSeq: number;
  /** [seq after a write, time of the write], for the scheduled-refresh emulation. */
  writes: [number, number][];
  lastSearchAt: number;
  bytes: number;
}

interface StoredTemplate {
  name: string;
  body: Obj;
}

function flattenSettings(o: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (!isObj(o)) return out;
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isObj(v)) flattenSettings(v, key, out);
    else out[key.startsWith('index.') ? key : `index.${key}`] = Array.isArray(v) ? v.map(String).join(',') : String(v);
  }
  return out;
}

function nestSettings(flat: Record<string, string>): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(flat)) {
    const segs = k.split('.');
    let o = out;
    for (let i = 0; i < segs.length - 1; i++) {
      const cur = o[segs[i]!];
      if (!isObj(cur)) o[segs[i]!] = {};
      o = o[segs[i]!] as Obj;
    }
    o[segs[segs.length - 1]!] = v;
  }
  return out;
}

function validateIndexName(name: string): string | null {
  if (name.length === 0) return 'must not be empty';
  if (name !== name.toLowerCase()) return 'must be lowercase';
  if (/[\\/*?"<>| ,#:]/.test(name)) return "must not contain the following characters ['\\\\', '/', '*', '?', '\"', '<', '>', '|', ' ', ',', '#', ':']";
  if (/^[_\-+]/.test(name)) return "must not start with '_', '-', or '+'";
  if (name === '.' || name === '..') return "must not be '.' or '..'";
  if (Buffer.byteLength(name) > 255) return 'index name is too long';
  return null;
}

// ---------------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------------

interface Principal {
  name: string;
  readOnly: boolean;
  createOnly?: boolean;
  kind: 'user' | 'api_key' | 'token';
  apiKeyId?: string;
}

interface ReqCtx {
  method: string;
  path: string;
  uri: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  principal: Principal | null;
  /** The compatible-with version the client asked for (response content type). */
  compat: number | null;
  req: http.IncomingMessage;
}

const DEFAULT_VERSIONS: Record<Flavor, string> = { elasticsearch: '8.15.0', opensearch: '2.17.0' };
const LUCENE: Record<string, string> = {
  'es8.0': '9.0.0',
  'es8.5': '9.4.1',
  'es8.10': '9.7.0',
  'es8.11': '9.8.0',
  'es8.12': '9.9.1',
  'es8.13': '9.10.0',
  'es8.14': '9.10.0',
  'es8.15': '9.11.1',
  'es8.16': '9.12.0',
  'es8.17': '9.12.0',
  'es8.18': '9.12.1',
  'es8.19': '9.12.2',
  'es9.0': '10.1.0',
  'es9.1': '10.2.2',
  'os2.11': '9.7.0',
  'os2.13': '9.10.0',
  'os2.15': '9.10.0',
  'os2.17': '9.11.1',
  'os2.18': '9.12.0',
  'os2.19': '9.12.1',
  'os3.0': '10.1.0',
  'os3.1': '10.2.1',
};

function freshFaults(): FaultState {
  return { bulk429: 0, bulk503: 0, item429Every: 0, resetNext: 0, resetAfterApply: false, delayMs: 0, maxConcurrentBulk: null };
}

function freshCounters() {
  return {
    bulkRequests: 0,
    inFlight: 0,
    maxInFlight: 0,
    items: 0,
    created: 0,
    updated: 0,
    deleted: 0,
    conflicts: 0,
    itemErrors: {} as Record<string, number>,
    rejected429: 0,
    rejected503: 0,
    items429: 0,
    resets: 0,
    concurrencyExceeded: 0,
    rejected413: 0,
    unauthorized401: 0,
    forbidden403: 0,
    requests: 0,
    rootInfo: 0,
    templatePuts: 0,
    mappingPuts: 0,
    privilegeChecks: 0,
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class EsEmulator {
  readonly flavor: Flavor;
  readonly version: string;
  readonly major: number;
  readonly es: boolean;
  readonly clusterName: string;
  readonly nodeName: string;
  readonly clusterUuid = randomId(22);
  readonly maxContentLength: number;
  readonly nrt: boolean;
  readonly destructiveRequiresName: boolean;
  readonly compression: boolean;
  readonly totalFieldsLimit: number;
  readonly maxResultWindow: number;
  readonly securityEnabled: boolean;
  indices = new Map<string, IndexState>();
  templates = new Map<string, StoredTemplate>();
  components = new Map<string, StoredTemplate>();
  faults: FaultState = freshFaults();
  counters = freshCounters();

  constructor(readonly options: EsServerOptions) {
    this.flavor = options.flavor ?? 'elasticsearch';
    this.es = this.flavor === 'elasticsearch';
    this.version = options.version ?? DEFAULT_VERSIONS[this.flavor];
    this.major = Number(this.version.split('.')[0]);
    this.clusterName = options.clusterName ?? (this.es ? 'docker-cluster' : 'opensearch-cluster');
    this.nodeName = options.nodeName ?? (this.es ? 'es-test-node' : 'opensearch-node1');
    this.maxContentLength = parseSize(options.maxContentLength, 100 * 1024 * 1024);
    this.nrt = (options.refresh ?? 'nrt') === 'nrt';
    this.destructiveRequiresName = options.destructiveRequiresName ?? this.es;
    this.compression = options.compression ?? true;
    this.totalFieldsLimit = options.totalFieldsLimit ?? 1000;
    this.maxResultWindow = options.maxResultWindow ?? 10000;
    const a = options.auth ?? {};
    this.securityEnabled = !!(a.users?.length || a.apiKeys?.length || a.bearerTokens?.length);
  }

  // ----- control ----------------------------------------------------------------------------------

  reset(): void {
    this.indices.clear();
    this.templates.clear();
    this.components.clear();
    this.faults = freshFaults();
    const inFlight = this.counters.inFlight;
    this.counters = freshCounters();
    this.counters.inFlight = inFlight;
  }

  setFaults(f: FaultSettings): FaultState {
    const allowed = new Set(Object.keys(freshFaults()));
    for (const [k, v] of Object.entries(f ?? {})) {
      if (!allowed.has(k)) throw new Error(`unknown fault [${k}]; known: ${[...allowed].join(', ')}`);
      if (k === 'resetAfterApply') this.faults.resetAfterApply = !!v;
      else if (k === 'maxConcurrentBulk') this.faults.maxConcurrentBulk = v === null ? null : Number(v);
      else (this.faults as unknown as Record<string, number>)[k] = Math.max(0, Number(v) || 0);
    }
    return { ...this.faults };
  }

  stats(): EsStats {
    const indices: Record<string, number> = {};
    let docs = 0;
    for (const idx of this.indices.values()) {
      indices[idx.name] = idx.docs.size;
      docs += idx.docs.size;
    }
    const mem = process.memoryUsage();
    return {
      flavor: this.flavor,
      version: this.version,
      ...this.counters,
      itemErrors: { ...this.counters.itemErrors },
      docs,
      maxConcurrentBulk: this.faults.maxConcurrentBulk,
      indices,
      faults: { ...this.faults },
      memory: { rssMB: Math.round(mem.rss / 1048576), heapUsedMB: Math.round(mem.heapUsed / 1048576) },
    };
  }

  control(cmd: ControlCommand): unknown {
    switch (cmd.op) {
      case 'faults':
        return this.setFaults(cmd.faults);
      case 'reset':
        this.reset();
        return { acknowledged: true };
      case 'stats':
        return this.stats();
      case 'refresh':
        for (const idx of this.indices.values()) this.refreshIndex(idx);
        return { acknowledged: true };
      default:
        throw new Error(`unknown control command ${js(cmd)}`);
    }
  }

  // ----- HTTP plumbing ----------------------------------------------------------------------------

  /** Content type of JSON answers. */
  private jsonType(compat: number | null): string {
    if (!this.es) return 'application/json; charset=UTF-8';
    return compat !== null ? `application/vnd.elasticsearch+json;compatible-with=${compat}` : 'application/json';
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    const isBulk = /^\/(?:[^/]+\/)?_bulk\/?$/.test(url.pathname) && (method === 'POST' || method === 'PUT');
    if (isBulk) {
      this.counters.inFlight++;
      if (this.faults.maxConcurrentBulk !== null && this.counters.inFlight > this.faults.maxConcurrentBulk) this.counters.concurrencyExceeded++;
      this.counters.maxInFlight = Math.max(this.counters.maxInFlight, this.counters.inFlight);
    }
    let compat: number | null = null;
    try {
      // Body, bounded by http.max_content_length.
      const declared = Number(req.headers['content-length'] ?? -1);
      if (declared > this.maxContentLength) {
        await this.drain(req);
        this.counters.rejected413++;
        this.send(req, res, { status: 413, body: '', contentType: 'text/plain' }, null, url);
        return;
      }
      let body = await this.readBody(req);
      if (body === null) {
        this.counters.rejected413++;
        this.send(req, res, { status: 413, body: '', contentType: 'text/plain' }, null, url);
        return;
      }
      const enc = String(req.headers['content-encoding'] ?? '').toLowerCase();
      if (body.length && (enc === 'gzip' || enc === 'deflate')) {
        try {
          body = enc === 'gzip' ? zlib.gunzipSync(body) : zlib.inflateSync(body);
        } catch {
          this.send(req, res, errorReply(400, errObj('illegal_argument_exception', `could not decode request body with content-encoding [${enc}]`)), null, url);
          return;
        }
        if (body.length > this.maxContentLength) {
          this.counters.rejected413++;
          this.send(req, res, { status: 413, body: '', contentType: 'text/plain' }, null, url);
          return;
        }
      }
      if (url.pathname === '/_test' || url.pathname.startsWith('/_test/')) {
        this.send(req, res, this.testApi(method, url, body), null, url);
        return;
      }
      this.countRequest(method, url.pathname);
      compat = this.negotiate(req.headers, body.length > 0);
      const ctx: ReqCtx = {
        method,
        path: url.pathname,
        uri: req.url ?? '/',
        query: url.searchParams,
        headers: req.headers,
        body,
        principal: null,
        compat,
        req,
      };
      ctx.principal = this.authenticate(ctx);
      const reply = await this.route(ctx);
      if (reply.reset) {
        this.counters.resets++;
        const sock = req.socket as Socket & { resetAndDestroy?: () => void };
        if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
        else sock.destroy();
        return;
      }
      this.send(req, res, reply, compat, url);
    } catch (err) {
      if (err instanceof HttpError) {
        this.send(req, res, err.reply, compat, url);
      } else {
        const e = err as Error;
        this.send(req, res, errorReply(500, errObj('exception', `test server failure: ${e.stack ?? e.message}`)), compat, url);
      }
    } finally {
      if (isBulk) this.counters.inFlight--;
    }
  }

  /** Counts a request by what it asks for (stats: requests, rootInfo, templatePuts, mappingPuts, privilegeChecks). */
  private countRequest(method: string, path: string): void {
    const segs = path.split('/').filter((x) => x.length > 0);
    const write = method === 'PUT' || method === 'POST';
    this.counters.requests++;
    if (segs.length === 0 && (method === 'GET' || method === 'HEAD')) this.counters.rootInfo++;
    if (segs.length === 2 && (segs[0] === '_index_template' || segs[0] === '_component_template') && write) this.counters.templatePuts++;
    if (segs.length === 2 && segs[1] === '_mapping' && write) this.counters.mappingPuts++;
    if (segs.join('/') === '_security/user/_has_privileges') this.counters.privilegeChecks++;
  }

  private drain(req: http.IncomingMessage): Promise<void> {
    return new Promise((resolve) => {
      req.on('data', () => {});
      req.on('end', resolve);
      req.on('error', () => resolve());
      req.on('close', resolve);
    });
  }

  /** The body, or null once it exceeds the limit (the rest is drained). */
  private readBody(req: http.IncomingMessage): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      req.on('data', (c: Buffer) => {
        if (over) return;
        size += c.length;
        if (size > this.maxContentLength) {
          over = true;
          chunks.length = 0;
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(over ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, reply: Reply, compat: number | null, url: URL): void {
    if (res.headersSent || res.destroyed) return;
    const headers: Record<string, string | string[] | number> = { ...reply.headers };
    if (this.es) headers['X-elastic-product'] = 'Elasticsearch';
    const opaque = req.headers['x-opaque-id'];
    if (typeof opaque === 'string') headers['X-Opaque-Id'] = opaque;
    let body: string | Buffer = reply.body ?? '';
    if (reply.body !== undefined && reply.contentType === undefined) {
      headers['content-type'] = this.jsonType(compat);
      if (url.searchParams.has('pretty') && url.searchParams.get('pretty') !== 'false' && body) {
        try {
          body = `${JSON.stringify(JSON.parse(body), null, 2).replace(/^(\s*"(?:[^"\\]|\\.)*"):/gm, '$1 :')}\n`;
        } catch {
          /* not JSON */
        }
      }
    } else if (reply.contentType) headers['content-type'] = reply.contentType;
    if (req.method === 'HEAD') {
      headers['content-length'] = Buffer.byteLength(body);
      res.writeHead(reply.status, headers);
      res.end();
      return;
    }
    let buf = typeof body === 'string' ? Buffer.from(body) : body;
    const ae = String(req.headers['accept-encoding'] ?? '');
    if (this.compression && buf.length > 0 && /\bgzip\b/i.test(ae)) {
      buf = zlib.gzipSync(buf, { level: 1 });
      headers['content-encoding'] = 'gzip';
    }
    headers['content-length'] = buf.length;
    if (reply.status === 413) headers['connection'] = 'close';
    res.writeHead(reply.status, headers);
    res.end(buf);
  }

  /** Accept / Content-Type validation (REST API compatibility). Returns the compatible-with version. */
  private negotiate(headers: http.IncomingHttpHeaders, hasContent: boolean): number | null {
    const accept = typeof headers['accept'] === 'string' ? headers['accept'] : undefined;
    const ctype = typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined;
    const parse = (h: string | undefined): { vendor: string | null; sub: string; version: number | null; raw: string } | null => {
      if (!h) return null;
      const m = /^\s*(?:application|text)\/(?:vnd\.(elasticsearch|opensearch)\+)?([^;\s,]+)(.*)$/i.exec(h);
      if (!m) return { vendor: null, sub: '', version: null, raw: h };
      const v = /compatible-with\s*=\s*(\d+)/i.exec(m[3] ?? '');
      return { vendor: m[1]?.toLowerCase() ?? null, sub: m[2]!.toLowerCase(), version: v ? Number(v[1]) : null, raw: h };
    };
    const a = parse(accept);
    const c = parse(ctype);
    if (hasContent) {
      if (!ctype) throw new HttpError(jsonReply(406, { error: 'Content-Type header is missing', status: 406 }));
      const okSub = c && ['json', 'x-ndjson', 'smile', 'cbor', 'yaml'].includes(c.sub);
      const okVendor = c && (c.vendor === null || (this.es ? c.vendor === 'elasticsearch' : c.vendor === 'opensearch'));
      if (!okSub || !okVendor) throw new HttpError(jsonReply(406, { error: `Content-Type header [${ctype}] is not supported`, status: 406 }));
      if (c && c.sub !== 'json' && c.sub !== 'x-ndjson')
        throw new HttpError(jsonReply(406, { error: `Content-Type header [${ctype}] is not supported by the test server (JSON only)`, status: 406 }));
    }
    if (!this.es) return null;
    const aVersion = a?.vendor === 'elasticsearch' ? a.version : null;
    const cVersion = hasContent && c?.vendor === 'elasticsearch' ? c.version : null;
    const cur = this.major;
    const min = cur - 1;
    const acceptVersion = aVersion ?? cur;
    const contentVersion = cVersion ?? cur;
    const bad = (reason: string): never => {
      throw new HttpError(
        errorReply(
          400,
          errObj('media_type_header_exception', 'Invalid media-type value on headers [Accept, Content-Type]', undefined, errObj('status_exception', reason)),
          [errObj('media_type_header_exception', 'Invalid media-type value on headers [Accept, Content-Type]')],
        ),
      );
    };
    if (acceptVersion > cur || acceptVersion < min) bad(`Accept version must be either version ${cur} or ${min}, but found ${acceptVersion}. Accept=${accept}`);
    if (hasContent) {
      if (contentVersion > cur || contentVersion < min)
        bad(`Content-Type version must be either version ${cur} or ${min}, but found ${contentVersion}. Content-Type=${ctype}`);
      if (contentVersion !== acceptVersion)
        bad(
          `A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version and the compatible versions must match. Accept=${accept}, Content-Type=${ctype}`,
        );
      if ((cVersion === null && aVersion !== null) || (aVersion === null && cVersion !== null))
        bad(
          `A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version. Accept=${accept}, Content-Type=${ctype}`,
        );
    }
    return aVersion;
  }

  // ----- security ---------------------------------------------------------------------------------

  private authenticate(ctx: ReqCtx): Principal | null {
    if (!this.securityEnabled) return null;
    const a = this.options.auth ?? {};
    const h = ctx.headers['authorization'];
    const header = typeof h === 'string' ? h.trim() : '';
    const sp = header.indexOf(' ');
    const scheme = sp > 0 ? header.slice(0, sp).toLowerCase() : '';
    const cred = sp > 0 ? header.slice(sp + 1).trim() : '';
    if (scheme === 'basic') {
      const dec = Buffer.from(cred, 'base64').toString('utf8');
      const colon = dec.indexOf(':');
      const user = colon < 0 ? dec : dec.slice(0, colon);
      const pass = colon < 0 ? '' : dec.slice(colon + 1);
      const u = a.users?.find((x) => x.username === user);
      if (u && u.password === pass) return { name: u.username, readOnly: !!u.readOnly, ...(u.createOnly ? { createOnly: true } : {}), kind: 'user' };
      this.unauthorized(this.es ? `unable to authenticate user [${user}] for REST request [${ctx.uri}]` : null);
    }
    if (scheme === 'apikey') {
      const dec = Buffer.from(cred, 'base64').toString('utf8');
      const colon = dec.indexOf(':');
      const id = colon < 0 ? dec : dec.slice(0, colon);
      const key = colon < 0 ? '' : dec.slice(colon + 1);
      const k = a.apiKeys?.find((x) => x.id === id);
      if (k && k.key === key) return { name: k.owner ?? k.name ?? k.id, readOnly: !!k.readOnly, kind: 'api_key', apiKeyId: k.id };
      this.unauthorized(
        this.es ? 'unable to authenticate with provided credentials and anonymous access is not allowed for this request' : null,
        this.es
          ? { additional_unsuccessful_credentials: k ? `API key: invalid credentials for API key [${id}]` : `API key: unable to find apikey with id ${id}` }
          : undefined,
      );
    }
    if (scheme === 'bearer') {
      const t = a.bearerTokens?.find((x) => x.token === cred);
      if (t) return { name: t.principal ?? 'token-user', readOnly: !!t.readOnly, kind: 'token' };
      this.unauthorized(
        this.es ? 'unable to authenticate with provided credentials and anonymous access is not allowed for this request' : null,
        this.es ? { additional_unsuccessful_credentials: 'oauth2 token: token malformed' } : undefined,
      );
    }
    this.unauthorized(this.es ? `missing authentication credentials for REST request [${ctx.uri}]` : null);
    return null;
  }

  private unauthorized(esReason: string | null, extra?: Obj): never {
    this.counters.unauthorized401++;
    if (!this.es) {
      // The OpenSearch security plugin answers a bare challenge.
      throw new HttpError({
        status: 401,
        body: 'Unauthorized',
        contentType: 'text/plain; charset=UTF-8',
        headers: { 'WWW-Authenticate': 'Basic realm="OpenSearch Security"' },
      });
    }
    const challenges = ['Basic realm="security" charset="UTF-8"', 'Bearer realm="security"', 'ApiKey'];
    const e = errObj('security_exception', esReason!, { ...extra, header: { 'WWW-Authenticate': challenges } });
    const r = errorReply(401, e);
    r.headers = { 'WWW-Authenticate': challenges };
    throw new HttpError(r);
  }

  /** 403 for a read-only principal on a write action. */
  private requireWrite(ctx: ReqCtx, action: string, privileges: { index?: string; cluster?: string }): void {
    const p = ctx.principal;
    if (!p || !p.readOnly) return;
    this.counters.forbidden403++;
    if (!this.es) fail(403, 'security_exception', `no permissions for [${action}] and User [name=${p.name}, backend_roles=[], requestedTenant=null]`);
    const who = p.kind === 'api_key' ? `API key id [${p.apiKeyId}] of user [${p.name}]` : `user [${p.name}]`;
    const granted = privileges.index ? `index privileges [${privileges.index}]` : `cluster privileges [${privileges.cluster}]`;
    fail(403, 'security_exception', `action [${action}] is unauthorized for ${who} with effective roles [viewer], this action is granted by the ${granted}`);
  }

  // ----- routing ----------------------------------------------------------------------------------

  private async route(ctx: ReqCtx): Promise<Reply> {
    const segs = ctx.path
      .split('/')
      .filter((s) => s.length > 0)
      .map((s) => decodeURIComponent(s));
    const m = ctx.method;
    const s0 = segs[0];
    const s1 = segs[1];
    const n = segs.length;
    const allow = (methods: string[]): void => {
      if (!methods.includes(m) && !(m === 'HEAD' && methods.includes('GET'))) {
        throw new HttpError(
          jsonReply(405, { error: `Incorrect HTTP method for uri [${ctx.uri}] and method [${m}], allowed: [${methods.join(', ')}]`, status: 405 }),
        );
      }
    };
    if (n === 0) {
      allow(['GET', 'HEAD']);
      return this.root();
    }
    if (s0 === '_bulk' && n === 1) {
      allow(['POST', 'PUT']);
      return this.bulk(ctx, undefined);
    }
    if (s1 === '_bulk' && n === 2 && !s0!.startsWith('_')) {
      allow(['POST', 'PUT']);
      return this.bulk(ctx, s0);
    }
    if (s0 === '_index_template' || s0 === '_component_template') {
      const comp = s0 === '_component_template';
      if (n === 1) {
        allow(['GET']);
        return this.getTemplates(comp, '*', false);
      }
      if (n === 2) {
        allow(['GET', 'PUT', 'POST', 'DELETE']);
        if (m === 'GET' || m === 'HEAD') return this.getTemplates(comp, s1!, true);
        if (m === 'DELETE') {
          this.requireWrite(ctx, comp ? 'cluster:admin/component_template/delete' : 'indices:admin/index_template/delete', {
            cluster: 'manage_index_templates,manage,all',
          });
          return this.deleteTemplate(comp, s1!);
        }
        this.requireWrite(ctx, comp ? 'cluster:admin/component_template/put' : 'indices:admin/index_template/put', {
          cluster: 'manage_index_templates,manage,all',
        });
        return this.putTemplate(ctx, comp, s1!);
      }
    }
    if (s0 === '_search' && n === 1) {
      allow(['GET', 'POST']);
      return this.search(ctx, undefined);
    }
    if (s1 === '_search' && n === 2) {
      allow(['GET', 'POST']);
      return this.search(ctx, s0);
    }
    if (s0 === '_count' && n === 1) {
      allow(['GET', 'POST']);
      return this.count(ctx, undefined);
    }
    if (s1 === '_count' && n === 2) {
      allow(['GET', 'POST']);
      return this.count(ctx, s0);
    }
    if (s0 === '_refresh' && n === 1) {
      allow(['GET', 'POST']);
      return this.refresh(undefined);
    }
    if (s1 === '_refresh' && n === 2) {
      allow(['GET', 'POST']);
      return this.refresh(s0);
    }
    if (s0 === '_mapping' && n === 1) {
      allow(['GET']);
      return this.getMapping(undefined);
    }
    if (s1 === '_mapping' && n === 2) {
      allow(['GET', 'PUT', 'POST']);
      if (m === 'PUT' || m === 'POST') {
        this.requireWrite(ctx, 'indices:admin/mapping/put', { index: 'manage,all' });
        return this.putMapping(ctx, s0!);
      }
      return this.getMapping(s0);
    }
    if (s0 === '_cat' && s1 === 'indices' && n <= 3) {
      allow(['GET']);
      return this.catIndices(ctx, segs[2]);
    }
    if (s0 === '_cluster' && s1 === 'health' && n <= 3) {
      allow(['GET']);
      return this.clusterHealth(ctx, segs[2]);
    }
    if (this.es && s0 === '_security') {
      if (s1 === 'user' && segs[2] === '_has_privileges' && n === 3) {
        allow(['GET', 'POST']);
        return this.hasPrivileges(ctx);
      }
      if (s1 === '_authenticate' && n === 2) {
        allow(['GET']);
        return this.authenticateInfo(ctx);
      }
    }
    if (n === 3 && (s1 === '_doc' || s1 === '_create') && !s0!.startsWith('_')) {
      if (s1 === '_create') allow(['PUT', 'POST']);
      else allow(['GET', 'PUT', 'POST', 'DELETE']);
      if (m === 'GET' || m === 'HEAD') return this.getDoc(s0!, segs[2]!);
      return this.singleDoc(
        ctx,
        s0!,
        segs[2],
        m === 'DELETE' ? 'delete' : s1 === '_create' ? 'create' : ctx.query.get('op_type') === 'create' ? 'create' : 'index',
      );
    }
    if (n === 2 && s1 === '_doc' && !s0!.startsWith('_')) {
      allow(['POST']);
      return this.singleDoc(ctx, s0!, undefined, 'index');
    }
    if (n === 1 && !s0!.startsWith('_')) {
      allow(['GET', 'PUT', 'DELETE']);
      if (m === 'GET' || m === 'HEAD') return this.getIndex(s0!);
      if (m === 'PUT') {
        this.requireWrite(ctx, 'indices:admin/create', { index: 'create_index,manage,all' });
        return this.createIndexApi(ctx, s0!);
      }
      this.requireWrite(ctx, 'indices:admin/delete', { index: 'delete_index,manage,all' });
      return this.deleteIndex(s0!);
    }
    const reason = `no handler found for uri [${ctx.uri}] and method [${m}]`;
    return jsonReply(400, { error: reason });
  }

  // ----- root -------------------------------------------------------------------------------------

  private root(): Reply {
    const [maj, min] = this.version.split('.');
    const lucene =
      LUCENE[`${this.es ? 'es' : 'os'}${maj}.${min}`] ?? (this.es ? (this.major >= 9 ? '10.2.2' : '9.11.1') : this.major >= 3 ? '10.2.1' : '9.11.1');
    const hash = '1a77947f34deddb41af25e6f0ddb8e830159c179';
    const version = this.es
      ? {
          number: this.version,
          build_flavor: 'default',
          build_type: 'docker',
          build_hash: hash,
          build_date: '2024-08-05T10:05:34.233336849Z',
          build_snapshot: false,
          lucene_version: lucene,
          minimum_wire_compatibility_version: this.major >= 9 ? '8.18.0' : '7.17.0',
          minimum_index_compatibility_version: this.major >= 9 ? '8.0.0' : '7.0.0',
        }
      : {
          distribution: 'opensearch',
          number: this.version,
          build_type: 'tar',
          build_hash: '8586481dc99b1740ca3c7c966aee15ad0fc7b412',
          build_date: '2024-09-13T00:00:31.624353917Z',
          build_snapshot: false,
          lucene_version: lucene,
          minimum_wire_compatibility_version: this.major >= 3 ? '2.19.0' : '7.10.0',
          minimum_index_compatibility_version: this.major >= 3 ? '2.0.0' : '7.0.0',
        };
    const info = {
      name: this.nodeName,
      cluster_name: this.clusterName,
      cluster_uuid: this.clusterUuid,
      version,
      tagline: this.es ? 'You Know, for Search' : 'The OpenSearch Project: https://opensearch.org/',
    };
    // The root endpoint prints itself pretty, as the real ones do.
    return { status: 200, body: `${JSON.stringify(info, null, 2).replace(/^(\s*"(?:[^"\\]|\\.)*"):/gm, '$1 :')}\n` };
  }

  // ----- templates and index creation -------------------------------------------------------------

  private parseJsonBody(ctx: ReqCtx, required: boolean): Obj | undefined {
    if (ctx.body.length === 0) {
      if (required) fail(400, 'parse_exception', 'request body is required');
      return undefined;
    }
    let v: unknown;
    try {
      v = JSON.parse(ctx.body.toString('utf8'));
    } catch (e) {
      fail(400, this.es ? 'x_content_parse_exception' : 'json_parse_exception', `[1:1] ${(e as Error).message}`);
    }
    if (!isObj(v)) fail(400, 'parse_exception', 'request body must be a JSON object');
    return v;
  }

  private putTemplate(ctx: ReqCtx, component: boolean, name: string): Reply {
    const body = this.parseJsonBody(ctx, true)!;
    const allowed = component
      ? ['template', 'version', '_meta', 'deprecated']
      : [
          'index_patterns',
          'template',
          'composed_of',
          'priority',
          'version',
          '_meta',
          'data_stream',
          'allow_auto_create',
          'ignore_missing_component_templates',
          'deprecated',
        ];
    for (const k of Object.keys(body)) {
      if (!allowed.includes(k)) fail(400, 'x_content_parse_exception', `[1:2] [${component ? 'component_template' : 'index_template'}] unknown field [${k}]`);
    }
    const tmpl = body.template;
    if (tmpl !== undefined) {
      if (!isObj(tmpl)) fail(400, 'x_content_parse_exception', "[1:2] [template] template doesn't support values of type: VALUE_STRING");
      for (const k of Object.keys(tmpl)) {
        if (!['settings', 'mappings', 'aliases', 'lifecycle', 'data_stream_options'].includes(k))
          fail(400, 'x_content_parse_exception', `[1:2] [template] unknown field [${k}]`);
      }
      validateMappings(tmpl.mappings);
    }
    if (component) {
      if (tmpl === undefined) fail(400, 'action_request_validation_exception', 'Validation Failed: 1: a component template is required;');
      this.components.set(name, { name, body: deepClone(body) });
      return jsonReply(200, { acknowledged: true });
    }
    const patterns = typeof body.index_patterns === 'string' ? [body.index_patterns] : body.index_patterns;
    if (!Array.isArray(patterns) || patterns.length === 0 || !patterns.every((p) => typeof p === 'string')) {
      fail(400, 'action_request_validation_exception', 'Validation Failed: 1: index patterns are missing;');
    }
    const pats = patterns;
    for (const p of pats) {
      if (p.includes(' ') || p.includes(',') || p.includes('#') || p.startsWith('_')) {
        fail(
          400,
          'invalid_index_template_exception',
          `index_template [${name}] invalid, cause [Validation Failed: 1: index_pattern [${p}] must not contain a space, comma, '#' or start with '_';]`,
          { name },
        );
      }
    }
    const priority = body.priority === undefined ? 0 : Number(body.priority);
    if (!Number.isInteger(priority) || priority < 0) fail(400, 'x_content_parse_exception', '[1:2] [index_template] failed to parse field [priority]');
    const composed = Array.isArray(body.composed_of) ? (body.composed_of as string[]) : [];
    const ignoreMissing = Array.isArray(body.ignore_missing_component_templates) ? (body.ignore_missing_component_templates as string[]) : [];
    const missing = composed.filter((c) => !this.components.has(c) && !ignoreMissing.includes(c));
    if (missing.length)
      fail(
        400,
        'invalid_index_template_exception',
        `index_template [${name}] invalid, cause [index template [${name}] specifies component templates [${missing.join(', ')}] that do not exist]`,
        { name },
      );
    // Same priority and overlapping patterns: refused, as Elasticsearch and OpenSearch do.
    const clashes: string[] = [];
    for (const t of this.templates.values()) {
      if (t.name === name) continue;
      const tp = (typeof t.body.index_patterns === 'string' ? [t.body.index_patterns] : t.body.index_patterns) as string[];
      const tprio = t.body.priority === undefined ? 0 : Number(t.body.priority);
      if (tprio === priority && pats.some((p) => tp.some((q) => globsOverlap(p, q)))) clashes.push(`${t.name} => [${tp.join(', ')}]`);
    }
    if (clashes.length) {
      const names = clashes.map((c) => c.split(' => ')[0]).join(', ');
      fail(
        400,
        'illegal_argument_exception',
        `index template [${name}] has index patterns [${pats.join(', ')}] matching patterns from existing templates [${names}] with patterns (${clashes.join(',')}) that have the same priority [${priority}], multiple index templates may not match during index creation, please use a different priority`,
      );
    }
    if (ctx.query.get('create') === 'true' && this.templates.has(name)) fail(400, 'illegal_argument_exception', `index template [${name}] already exists`);
    this.templates.set(name, { name, body: deepClone(body) });
    return jsonReply(200, { acknowledged: true });
  }

  private getTemplates(component: boolean, pattern: string, named: boolean): Reply {
    const store = component ? this.components : this.templates;
    const pats = pattern.split(',');
    const list = [...store.values()].filter((t) => pats.some((p) => globMatch(p, t.name))).sort((a, b) => a.name.localeCompare(b.name));
    if (named && list.length === 0 && !pattern.includes('*')) {
      return errorReply(
        404,
        errObj(
          'resource_not_found_exception',
          component ? `component template matching [${pattern}] not found` : `index template matching [${pattern}] not found`,
        ),
      );
    }
    if (component) return jsonReply(200, { component_templates: list.map((t) => ({ name: t.name, component_template: t.body })) });
    return jsonReply(200, { index_templates: list.map((t) => ({ name: t.name, index_template: { composed_of: [], ...t.body } })) });
  }

  private deleteTemplate(component: boolean, name: string): Reply {
    const store = component ? this.components : this.templates;
    const names = [...store.keys()].filter((k) => name.split(',').some((p) => globMatch(p, k)));
    if (names.length === 0)
      return errorReply(404, errObj('resource_not_found_exception', component ? `component_template [${name}] missing` : `index_template [${name}] missing`));
    if (component) {
      for (const n of names) {
        const users = [...this.templates.values()].filter((t) => Array.isArray(t.body.composed_of) && (t.body.composed_of as string[]).includes(n));
        if (users.length)
          fail(
            400,
            'illegal_argument_exception',
            `component templates [${n}] cannot be removed as they are still in use by index templates [${users.map((u) => u.name).join(', ')}]`,
          );
      }
    }
    for (const n of names) store.delete(n);
    return jsonReply(200, { acknowledged: true });
  }

  /** The matching composable template with the highest priority. */
  private findTemplate(index: string): StoredTemplate | undefined {
    let best: StoredTemplate | undefined;
    let bestPrio = -1;
    for (const t of this.templates.values()) {
      const pats = (typeof t.body.index_patterns === 'string' ? [t.body.index_patterns] : t.body.index_patterns) as string[];
      if (!pats.some((p) => globMatch(p, index))) continue;
      if (index.startsWith('.') && pats.every((p) => p === '*')) continue; // hidden indices skip global templates
      const prio = t.body.priority === undefined ? 0 : Number(t.body.priority);
      if (prio > bestPrio) {
        best = t;
        bestPrio = prio;
      }
    }
    return best;
  }

  private createIndex(name: string, request?: { settings?: unknown; mappings?: unknown }): IndexState {
    const t = this.findTemplate(name);
    let mappings: Obj = {};
    let settings: Record<string, string> = {};
    if (t) {
      for (const c of Array.isArray(t.body.composed_of) ? (t.body.composed_of as string[]) : []) {
        const comp = this.components.get(c);
        const ct = comp ? getOwn(comp.body, 'template') : undefined;
        if (isObj(ct)) {
          mergeMappings(mappings, ct.mappings as Obj | undefined);
          settings = { ...settings, ...flattenSettings(ct.settings) };
        }
      }
      const tt = getOwn(t.body, 'template');
      if (isObj(tt)) {
        mergeMappings(mappings, tt.mappings as Obj | undefined);
        settings = { ...settings, ...flattenSettings(tt.settings) };
      }
    }
    if (request) {
      mappings = mergeMappings(mappings, request.mappings as Obj | undefined);
      settings = { ...settings, ...flattenSettings(request.settings) };
    }
    settings['index.number_of_shards'] ??= '1';
    settings['index.number_of_replicas'] ??= '1';
    const now = Date.now();
    const idx: IndexState = {
      name,
      uuid: randomId(22),
      createdAt: now,
      settings,
      mappings,
      fieldCount: countFields(mappings.properties),
      docs: new Map(),
      tombstones: new Map(),
      seq: 0,
      refreshedSeq: 0,
      writes: [],
      lastSearchAt: now,
      bytes: 0,
    };
    this.indices.set(name, idx);
    return idx;
  }

  private createIndexApi(ctx: ReqCtx, name: string): Reply {
    const bad = validateIndexName(name);
    if (bad) fail(400, 'invalid_index_name_exception', `Invalid index name [${name}], ${bad}`, { index_uuid: '_na_', index: name });
    const existing = this.indices.get(name);
    if (existing) fail(400, 'resource_already_exists_exception', `index [${name}/${existing.uuid}] already exists`, { index_uuid: existing.uuid, index: name });
    const body = this.parseJsonBody(ctx, false) ?? {};
    for (const k of Object.keys(body)) {
      if (!['settings', 'mappings', 'aliases'].includes(k)) fail(400, 'illegal_argument_exception', `unknown key [${k}] for create index`);
    }
    validateMappings(body.mappings);
    this.createIndex(name, { settings: body.settings, mappings: body.mappings });
    return jsonReply(200, { acknowledged: true, shards_acknowledged: true, index: name });
  }

  // ----- index resolution -------------------------------------------------------------------------

  /** Index expression → existing names (wildcards, comma lists, _all, exclusions). */
  private resolve(expr: string | undefined, opts: { ignoreUnavailable?: boolean; allowNoIndices?: boolean } = {}): IndexState[] {
    const all = [...this.indices.values()];
    if (expr === undefined || expr === '' || expr === '_all' || expr === '*') return all.filter((i) => !i.name.startsWith('.'));
    const out = new Map<string, IndexState>();
    const parts = expr.split(',');
    parts.forEach((raw, i) => {
      const p = raw.trim();
      if (p.startsWith('-') && i > 0) {
        for (const n of [...out.keys()]) if (globMatch(p.slice(1), n)) out.delete(n);
        return;
      }
      if (p.includes('*')) {
        for (const idx of all) if (globMatch(p, idx.name) && (!idx.name.startsWith('.') || p.startsWith('.'))) out.set(idx.name, idx);
        return;
      }
      const idx = this.indices.get(p);
      if (idx) out.set(p, idx);
      else if (!opts.ignoreUnavailable) throw new HttpError(errorReply(404, indexNotFound(p)));
    });
    if (out.size === 0 && opts.allowNoIndices === false) throw new HttpError(errorReply(404, indexNotFound(expr)));
    return [...out.values()];
  }

  // ----- visibility (near real time) ---------------------------------------------------------------

  private refreshInterval(idx: IndexState): { ms: number; explicit: boolean } {
    const v = idx.settings['index.refresh_interval'];
    return v === undefined ? { ms: 1000, explicit: false } : { ms: parseTime(v), explicit: true };
  }

  refreshIndex(idx: IndexState): void {
    idx.refreshedSeq = idx.seq;
    idx.writes.length = 0;
  }

  /**
   * Emulates scheduled refreshes: every refresh_interval from index creation; with no explicit interval
   * a shard that saw no search for 30s is search-idle and a search refreshes it first (and waits).
   */
  private catchUpRefresh(idx: IndexState, search: boolean): void {
    if (!this.nrt) {
      idx.refreshedSeq = idx.seq;
      return;
    }
    const now = Date.now();
    const { ms, explicit } = this.refreshInterval(idx);
    if (!explicit && search && now - idx.lastSearchAt >= 30000) {
      this.refreshIndex(idx);
    } else if (ms > 0 && idx.writes.length) {
      const lastTick = idx.createdAt + Math.floor((now - idx.createdAt) / ms) * ms;
      const idleFrom = explicit ? Infinity : idx.lastSearchAt + 30000;
      const tick = Math.min(lastTick, idleFrom);
      let k = 0;
      while (k < idx.writes.length && idx.writes[k]![1] < tick) {
        idx.refreshedSeq = idx.writes[k]![0];
        k++;
      }
      if (k) idx.writes.splice(0, k);
    }
    if (search) idx.lastSearchAt = now;
  }

  private visibleCount(idx: IndexState): number {
    if (idx.refreshedSeq >= idx.seq) return idx.docs.size;
    let n = 0;
    for (const d of idx.docs.values()) if (d.seq < idx.refreshedSeq) n++;
    return n;
  }

  private refresh(expr: string | undefined): Reply {
    const list = this.resolve(expr);
    let shards = 0;
    for (const idx of list) {
      this.refreshIndex(idx);
      shards += Number(idx.settings['index.number_of_shards'] ?? 1);
    }
    const total = list.reduce((a, i) => a + Number(i.settings['index.number_of_shards'] ?? 1) * (1 + Number(i.settings['index.number_of_replicas'] ?? 1)), 0);
    return jsonReply(200, { _shards: { total, successful: shards, failed: 0 } });
  }

  // ----- documents: mapping checks ----------------------------------------------------------------

  /**
   * Checks a parsed document against the index mapping, adding dynamic mappings; null when accepted,
   * else the item error. Dynamic additions are applied only when the whole document is accepted.
   */
  private checkDocument(idx: IndexState, id: string, raw: string, doc: Obj): ErrObj | null {
    const root = idx.mappings;
    const rootDyn = dynOf(root.dynamic, 'true');
    const ctx: DocCtx = { emu: this, idx, id, raw, rawPath: [], deferred: null, fresh: null, added: 0 };
    try {
      for (const key in doc) {
        if (METADATA_FIELDS.has(key)) {
          ctx.rawPath.push(key);
          throw new DocFailure(
            this.docParseError(ctx, `Field [${key}] is a metadata field and cannot be added inside a document. Use the index API request parameters.`),
          );
        }
      }
      walkObject(ctx, doc, root, '', rootDyn);
    } catch (e) {
      if (e instanceof DocFailure) return e.error;
      throw e;
    }
    if (ctx.deferred) {
      for (const d of ctx.deferred) {
        d.parent.properties ??= Object.create(null) as Record<string, MNode>;
        setOwn(d.parent.properties, d.name, d.node);
      }
      idx.fieldCount += ctx.added;
    }
    return null;
  }

  /** `[1:col] message` for Elasticsearch; OpenSearch omits the location. */
  docParseError(ctx: DocCtx, message: string, causedBy?: ErrObj, type?: string): ErrObj {
    const col = locateColumn(ctx.raw, ctx.rawPath);
    return errObj(
      type ?? (this.es ? 'document_parsing_exception' : 'mapper_parsing_exception'),
      this.es ? `[1:${col}] ${message}` : message,
      undefined,
      causedBy,
    );
  }

  fieldError(ctx: DocCtx, full: string, type: string, value: unknown, causedBy: ErrObj): DocFailure {
    const preview = javaString(value);
    return new DocFailure(
      this.docParseError(
        ctx,
        `failed to parse field [${full}] of type [${type}] in document with id '${ctx.id}'. Preview of field's value: '${preview}'`,
        causedBy,
      ),
    );
  }

  // ----- bulk -------------------------------------------------------------------------------------

  private async bulk(ctx: ReqCtx, defaultIndex: string | undefined): Promise<Reply> {
    this.counters.bulkRequests++;
    this.requireWrite(ctx, 'indices:data/write/bulk', { index: 'create_doc,create,delete,index,write,all' });
    const started = Date.now();
    const f = this.faults;
    if (f.bulk503 > 0) {
      f.bulk503--;
      this.counters.rejected503++;
      return errorReply(503, errObj('cluster_block_exception', 'blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];'));
    }
    if (f.bulk429 > 0) {
      f.bulk429--;
      this.counters.rejected429++;
      const bytes = ctx.body.length;
      const reason = this.es
        ? `rejected execution of coordinating operation [coordinating_and_primary_bytes=${bytes * 90}, replica_bytes=0, all_bytes=${bytes * 90}, coordinating_operation_bytes=${bytes}, max_coordinating_and_primary_bytes=107374182]`
        : `rejected execution of coordinating operation [shard_detail=[${defaultIndex ?? 'index'}][0][C], shard_coordinating_and_primary_bytes=${bytes * 90}, shard_operation_bytes=${bytes}, shard_max_coordinating_and_primary_bytes=107374182] OR [node_coordinating_and_primary_bytes=${bytes * 90}, node_replica_bytes=0, node_all_bytes=${bytes * 90}, node_operation_bytes=${bytes}, node_max_coordinating_and_primary_bytes=107374182]`;
      return errorReply(429, errObj(this.es ? 'es_rejected_execution_exception' : 'rejected_execution_exception', reason));
    }
    let reset = false;
    let resetAfter = false;
    if (f.resetNext > 0) {
      f.resetNext--;
      reset = true;
      resetAfter = f.resetAfterApply;
      if (!resetAfter) return { status: 0, reset: true };
    }
    if (f.delayMs > 0) await sleep(f.delayMs);
    const refresh = ctx.query.get('refresh');
    const result = this.processBulk(
      ctx.body,
      defaultIndex,
      refresh === '' || refresh === 'true' ? 'true' : refresh === 'wait_for' ? 'wait_for' : 'false',
      started,
      ctx.principal ?? undefined,
    );
    if (reset && resetAfter) return { status: 0, reset: true };
    return result;
  }

  /** Parses and applies an NDJSON bulk body. */
  processBulk(bodyBuf: Buffer, defaultIndex: string | undefined, refresh: 'true' | 'false' | 'wait_for', started: number, principal?: Principal): Reply {
    if (bodyBuf.length === 0) fail(400, 'parse_exception', 'request body is required');
    if (bodyBuf[bodyBuf.length - 1] !== 0x0a) fail(400, 'illegal_argument_exception', 'The bulk request must be terminated by a newline [\\n]');
    const text = bodyBuf.toString('utf8');
    const lines = text.split('\n');
    lines.pop(); // after the final newline
    interface Op {
      action: 'create' | 'index' | 'delete' | 'update';
      meta: Obj;
      source: string | undefined;
      line: number;
    }
    const ops: Op[] = [];
    const validation: string[] = [];
    let i = 0;
    while (i < lines.length) {
      const lineNo = i + 1;
      const line = lines[i]!;
      i++;
      if (line.trim() === '') continue; // empty action lines are skipped
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (e) {
        fail(400, this.es ? 'x_content_parse_exception' : 'json_parse_exception', `[${lineNo}:1] ${(e as Error).message}`);
      }
      if (!isObj(parsed))
        fail(
          400,
          'illegal_argument_exception',
          `Malformed action/metadata line [${lineNo}], expected START_OBJECT but found [${Array.isArray(parsed) ? 'START_ARRAY' : typeof parsed === 'string' ? 'VALUE_STRING' : 'VALUE_NUMBER'}]`,
        );
      const keys = Object.keys(parsed);
      if (keys.length !== 1)
        fail(
          400,
          'illegal_argument_exception',
          `Malformed action/metadata line [${lineNo}], expected ${keys.length === 0 ? 'FIELD_NAME but found [END_OBJECT]' : 'END_OBJECT but found [FIELD_NAME]'}`,
        );
      const action = keys[0]!;
      if (!['create', 'index', 'delete', 'update'].includes(action)) {
        fail(
          400,
          'illegal_argument_exception',
          `Malformed action/metadata line [${lineNo}], expected field [create], [delete], [index] or [update] but found [${action}]`,
        );
      }
      const meta = parsed[action];
      if (!isObj(meta))
        fail(
          400,
          'illegal_argument_exception',
          `Malformed action/metadata line [${lineNo}], expected START_OBJECT but found [${meta === null ? 'VALUE_NULL' : 'VALUE_STRING'}]`,
        );
      const allowedMeta = [
        '_index',
        '_id',
        'routing',
        'if_seq_no',
        'if_primary_term',
        'version',
        'version_type',
        'pipeline',
        'require_alias',
        'require_data_stream',
        'dynamic_templates',
        'list_executed_pipelines',
        'retry_on_conflict',
        '_source',
      ];
      for (const k of Object.keys(meta)) {
        if (!allowedMeta.includes(k)) fail(400, 'illegal_argument_exception', `Action/metadata line [${lineNo}] contains an unknown parameter [${k}]`);
      }
      const m = meta;
      if (m._index === undefined && defaultIndex === undefined) validation.push('index is missing');
      if (typeof m._id === 'number') m._id = String(m._id);
      if (m._id !== undefined && typeof m._id !== 'string')
        fail(
          400,
          'illegal_argument_exception',
          `Malformed action/metadata line [${lineNo}], expected a simple value for field [_id] but found [${Array.isArray(m._id) ? 'START_ARRAY' : 'START_OBJECT'}]`,
        );
      if (typeof m._id === 'string') {
        const len = Buffer.byteLength(m._id);
        if (len > 512) validation.push(`id [${m._id}] is too long, must be no longer than 512 bytes but was: ${len}`);
        if (m._id.length === 0) validation.push('if _id is specified it must not be empty');
      }
      if ((action === 'delete' || action === 'update') && m._id === undefined) validation.push('id is missing');
      let source: string | undefined;
      if (action !== 'delete') {
        if (i >= lines.length) break; // no source line: ignored, as the real parser does
        source = lines[i]!;
        i++;
        if (source.trim() === '') validation.push('source is missing');
      }
      ops.push({ action: action as Op['action'], meta: m, source, line: lineNo });
    }
    if (ops.length === 0) validation.push('no requests added');
    if (validation.length) fail(400, 'action_request_validation_exception', `Validation Failed: ${validation.map((v, k) => `${k + 1}: ${v};`).join('')}`);

    const forced = refresh === 'true';
    const touched = new Set<IndexState>();
    let errors = false;
    const items: string[] = new Array(ops.length);
    const every = this.faults.item429Every;
    for (let k = 0; k < ops.length; k++) {
      const op = ops[k]!;
      this.counters.items++;
      const index = (op.meta._index as string | undefined) ?? defaultIndex!;
      const r = this.applyOp(op.action, index, op.meta, op.source, every > 0 && (k + 1) % every === 0, forced, touched, principal);
      if (r.error) {
        errors = true;
        this.counters.itemErrors[String(r.status)] = (this.counters.itemErrors[String(r.status)] ?? 0) + 1;
      }
      items[k] = r.json;
    }
    const now = Date.now();
    for (const idx of touched) {
      if (refresh !== 'false') this.refreshIndex(idx);
      else idx.writes.push([idx.seq, now]);
    }
    const took = Date.now() - started;
    const head = this.es ? `{"errors":${errors},"took":${took}` : `{"took":${took},"errors":${errors}`;
    return { status: 200, body: `${head},"items":[${items.join(',')}]}` };
  }

  private shardsJson(idx: IndexState): string {
    const replicas = Number(idx.settings['index.number_of_replicas'] ?? 1);
    return `{"total":${1 + replicas},"successful":1,"failed":0}`;
  }

  /** One bulk item: returns its JSON and whether it failed. */
  applyOp(
    action: 'create' | 'index' | 'delete' | 'update',
    index: string,
    meta: Obj,
    source: string | undefined,
    inject429: boolean,
    forced: boolean,
    touched: Set<IndexState>,
    principal?: Principal,
  ): { json: string; status: number; error: boolean } {
    const idField = typeof meta._id === 'string' ? meta._id : undefined;
    const itemFail = (status: number, id: string | undefined, e: ErrObj) => ({
      json: `{"${action}":{"_index":${js(index)},"_id":${id === undefined ? 'null' : js(id)},"status":${status},"error":${js(e)}}}`,
      status,
      error: true,
    });
    // A create-only role: index, update and delete are refused item by item, as Elasticsearch does in a bulk.
    if (principal?.createOnly && action !== 'create') {
      this.counters.forbidden403++;
      const privileges = action === 'delete' ? 'delete,write,all' : 'index,write,all';
      return itemFail(
        403,
        idField,
        errObj(
          'security_exception',
          `action [indices:data/write/${action === 'index' ? 'index' : action}] is unauthorized for user [${principal.name}] with effective roles [ingest_create_only] on indices [${index}], this action is granted by the index privileges [${privileges}]`,
        ),
      );
    }
    const bad = validateIndexName(index);
    if (bad) return itemFail(400, idField, errObj('invalid_index_name_exception', `Invalid index name [${index}], ${bad}`, { index_uuid: '_na_', index }));
    if (inject429) {
      this.counters.items429++;
      const reason = this.es
        ? `rejected execution of primary operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, primary_operation_bytes=${source?.length ?? 0}, max_coordinating_and_primary_bytes=107374182]`
        : `rejected execution of primary operation [shard_detail=[${index}][0][P], shard_coordinating_and_primary_bytes=0, shard_operation_bytes=${source?.length ?? 0}, shard_max_coordinating_and_primary_bytes=107374182] OR [node_coordinating_and_primary_bytes=0, node_replica_bytes=0, node_all_bytes=0, node_operation_bytes=${source?.length ?? 0}, node_max_coordinating_and_primary_bytes=107374182]`;
      return itemFail(429, idField, errObj(this.es ? 'es_rejected_execution_exception' : 'rejected_execution_exception', reason));
    }
    if (typeof meta.pipeline === 'string' && meta.pipeline !== '_none') {
      return itemFail(400, idField, errObj('illegal_argument_exception', `pipeline with id [${meta.pipeline}] does not exist`));
    }
    if (meta.version !== undefined || meta.version_type !== undefined) {
      return itemFail(400, idField, errObj('illegal_argument_exception', '[version] / [version_type] are not supported by the auditship test server'));
    }
    let idx = this.indices.get(index);
    if (!idx) {
      const autoCreate =
        action === 'create' || action === 'index' || (action === 'update' && source !== undefined && /"(?:doc_as_upsert"\s*:\s*true|upsert")/.test(source));
      if (!autoCreate) return itemFail(404, idField, indexNotFound(index));
      if (meta.require_alias === true)
        return itemFail(
          404,
          idField,
          errObj('index_not_found_exception', `no such index [${index}] and [require_alias] request flag is [true] and [${index}] is not an alias`, {
            'resource.type': 'index_expression',
            'resource.id': index,
            index_uuid: '_na_',
            index,
          }),
        );
      idx = this.createIndex(index);
    }
    const id = idField ?? autoId();
    const existing = idx.docs.get(id);
    const conflict = (reason: string) => {
      this.counters.conflicts++;
      return itemFail(409, id, errObj('version_conflict_engine_exception', reason, { index_uuid: idx.uuid, shard: '0', index }));
    };
    if (meta.if_seq_no !== undefined || meta.if_primary_term !== undefined) {
      const sq = Number(meta.if_seq_no);
      const pt = Number(meta.if_primary_term);
      if (!existing) return conflict(`[${id}]: version conflict, required seqNo [${sq}], primary term [${pt}]. but no document was found`);
      if (existing.seq !== sq || pt !== 1)
        return conflict(
          `[${id}]: version conflict, required seqNo [${sq}], primary term [${pt}]. current document has seqNo [${existing.seq}] and primary term [1]`,
        );
    }
    const forcedJson = forced ? '"forced_refresh":true,' : '';
    if (action === 'delete') {
      const version = (existing?.version ?? idx.tombstones.get(id) ?? 0) + 1;
      const seq = idx.seq++;
      touched.add(idx);
      if (existing) {
        idx.docs.delete(id);
        idx.bytes -= existing.src.length;
        idx.tombstones.set(id, version);
        this.counters.deleted++;
      }
      const status = existing ? 200 : 404;
      return {
        json: `{"delete":{"_index":${js(index)},"_id":${js(id)},"_version":${version},"result":"${existing ? 'deleted' : 'not_found'}",${forcedJson}"_shards":${this.shardsJson(idx)},"_seq_no":${seq},"_primary_term":1,"status":${status}}}`,
        status,
        error: false,
      };
    }
    if (action === 'create' && existing) return conflict(`[${id}]: version conflict, document already exists (current version [${existing.version}])`);

    // Parse the source once; mapping checks use the parsed value.
    let src = source!;
    let parsed: unknown;
    try {
      parsed = JSON.parse(src);
    } catch (e) {
      const msg = (e as Error).message;
      const err = this.es
        ? errObj('document_parsing_exception', `[1:1] failed to parse: ${msg}`, undefined, errObj('json_parse_exception', msg))
        : errObj('mapper_parsing_exception', 'failed to parse', undefined, errObj('json_parse_exception', msg));
      return itemFail(400, id, err);
    }
    if (!isObj(parsed)) {
      const err = this.es
        ? errObj(
            'document_parsing_exception',
            '[1:1] failed to parse: Malformed content, must start with an object',
            undefined,
            errObj('illegal_argument_exception', 'Malformed content, must start with an object'),
          )
        : errObj('mapper_parsing_exception', 'failed to parse, document is empty');
      return itemFail(400, id, err);
    }
    let result = existing ? 'updated' : 'created';
    if (action === 'update') {
      const body = parsed;
      if (body.script !== undefined)
        return itemFail(400, id, errObj('illegal_argument_exception', 'scripted updates are not supported by the auditship test server'));
      const doc = body.doc;
      const upsert = body.upsert;
      if (!existing) {
        if (body.doc_as_upsert === true && isObj(doc)) src = js(doc);
        else if (isObj(upsert)) src = js(upsert);
        else return itemFail(404, id, errObj('document_missing_exception', `[${id}]: document missing`, { index_uuid: idx.uuid, shard: '0', index }));
        result = 'created';
      } else {
        if (!isObj(doc)) return itemFail(400, id, errObj('action_request_validation_exception', 'Validation Failed: 1: script or doc is missing;'));
        const current = JSON.parse(existing.src) as Obj;
        const merged = deepMerge(current, doc);
        const next = js(merged);
        if (body.detect_noop !== false && next === js(JSON.parse(existing.src))) {
          return {
            json: `{"update":{"_index":${js(index)},"_id":${js(id)},"_version":${existing.version},"result":"noop","_shards":{"total":0,"successful":0,"failed":0},"_seq_no":${existing.seq},"_primary_term":1,"status":200}}`,
            status: 200,
            error: false,
          };
        }
        src = next;
        result = 'updated';
      }
      parsed = JSON.parse(src);
    }
    const mappingError = this.checkDocument(idx, id, src, parsed as Obj);
    if (mappingError) return itemFail(400, id, mappingError);
    const version = (existing?.version ?? idx.tombstones.get(id) ?? 0) + 1;
    if (!existing) idx.tombstones.delete(id);
    const seq = idx.seq++;
    if (existing) {
      idx.bytes += src.length - existing.src.length;
      existing.src = src;
      existing.version = version;
      existing.seq = seq;
    } else {
      idx.docs.set(id, new Doc(src, version, seq));
      idx.bytes += src.length;
    }
    touched.add(idx);
    const status = existing ? 200 : 201;
    if (existing) this.counters.updated++;
    else this.counters.created++;
    return {
      json: `{"${action}":{"_index":${js(index)},"_id":${js(id)},"_version":${version},"result":"${result}",${forcedJson}"_shards":${this.shardsJson(idx)},"_seq_no":${seq},"_primary_term":1,"status":${status}}}`,
      status,
      error: false,
    };
  }

  /** PUT/POST /<index>/_doc/<id>, /_create/<id>, DELETE /<index>/_doc/<id>: one-item bulk semantics. */
  private singleDoc(ctx: ReqCtx, index: string, id: string | undefined, action: 'create' | 'index' | 'delete'): Reply {
    this.requireWrite(ctx, action === 'delete' ? 'indices:data/write/delete' : 'indices:data/write/index', {
      index: action === 'delete' ? 'delete,write,all' : 'create_doc,create,index,write,all',
    });
    let source: string | undefined;
    if (action !== 'delete') {
      if (ctx.body.length === 0) fail(400, 'action_request_validation_exception', 'Validation Failed: 1: source is missing;');
      source = ctx.body.toString('utf8');
    }
    const touched = new Set<IndexState>();
    const refresh = ctx.query.get('refresh');
    const meta: Obj = {};
    if (id !== undefined) meta._id = id;
    const r = this.applyOp(action, index, meta, source, false, refresh === '' || refresh === 'true', touched, ctx.principal ?? undefined);
    const now = Date.now();
    for (const idx of touched) {
      if (refresh === '' || refresh === 'true' || refresh === 'wait_for') this.refreshIndex(idx);
      else idx.writes.push([idx.seq, now]);
    }
    const item = JSON.parse(r.json) as Record<string, Obj>;
    const inner = Object.values(item)[0]!;
    if (r.error) return errorReply(r.status, inner.error as ErrObj);
    const { status: _s, ...rest } = inner;
    return jsonReply(r.status, rest);
  }

  private getDoc(index: string, id: string): Reply {
    const idx = this.indices.get(index);
    if (!idx) return errorReply(404, indexNotFound(index));
    const d = idx.docs.get(id);
    if (!d) return jsonReply(404, `{"_index":${js(index)},"_id":${js(id)},"found":false}`);
    return jsonReply(
      200,
      `{"_index":${js(index)},"_id":${js(id)},"_version":${d.version},"_seq_no":${d.seq},"_primary_term":1,"found":true,"_source":${d.src}}`,
    );
  }

  // ----- index APIs -------------------------------------------------------------------------------

  private getIndex(expr: string): Reply {
    const list = this.resolve(expr);
    const out: Obj = {};
    for (const idx of list) {
      out[idx.name] = {
        aliases: {},
        mappings: idx.mappings,
        settings: {
          index: {
            ...(nestSettings(idx.settings).index as Obj),
            uuid: idx.uuid,
            creation_date: String(idx.createdAt),
            provided_name: idx.name,
            version: { created: this.es ? '8512000' : '136377827' },
          },
        },
      };
    }
    return jsonReply(200, out);
  }

  private getMapping(expr: string | undefined): Reply {
    const list = this.resolve(expr);
    const out: Obj = {};
    for (const idx of list) out[idx.name] = { mappings: idx.mappings };
    return jsonReply(200, out);
  }

  /**
   * PUT /<target>/_mapping: adds fields to the mappings of every index the target names (a wildcard that
   * names none is no error: allow_no_indices). A field that exists keeps its type: another type is refused
   * (`mapper [f] cannot be changed from type [a] to [b]`), and nothing is applied.
   */
  private putMapping(ctx: ReqCtx, expr: string): Reply {
    const body = this.parseJsonBody(ctx, true)!;
    validateMappings(body);
    const list = this.resolve(expr);
    const conflicts = (cur: Obj | undefined, add: Obj | undefined, prefix: string): void => {
      if (!cur || !add) return;
      for (const [f, def] of Object.entries(add)) {
        const have = getOwn(cur, f);
        if (!isObj(have) || !isObj(def)) continue;
        const path = prefix ? `${prefix}.${f}` : f;
        const a = String(have.type ?? 'object'),
          b = String(def.type ?? 'object');
        if (a !== b) fail(400, 'illegal_argument_exception', `mapper [${path}] cannot be changed from type [${a}] to [${b}]`);
        conflicts(have.properties as Obj | undefined, def.properties as Obj | undefined, path);
      }
    };
    for (const idx of list) conflicts((idx.mappings as Obj).properties as Obj | undefined, body.properties as Obj | undefined, '');
    for (const idx of list) {
      mergeMappings(idx.mappings, body);
      idx.fieldCount = countFields((idx.mappings as Obj).properties);
    }
    return jsonReply(200, { acknowledged: true });
  }

  private deleteIndex(expr: string): Reply {
    if (this.destructiveRequiresName && (expr.includes('*') || expr === '_all')) {
      fail(400, 'illegal_argument_exception', 'Wildcard expressions or all indices are not allowed');
    }
    const list = this.resolve(expr);
    for (const idx of list) this.indices.delete(idx.name);
    return jsonReply(200, { acknowledged: true });
  }

  private catIndices(ctx: ReqCtx, expr: string | undefined): Reply {
    const list = this.resolve(expr ?? ctx.query.get('index') ?? undefined).sort((a, b) => a.name.localeCompare(b.name));
    const rows = list.map((idx) => {
      this.catchUpRefresh(idx, false);
      const replicas = Number(idx.settings['index.number_of_replicas'] ?? 1);
      const size = formatBytes(idx.bytes * 1.2);
      const row: Record<string, string> = {
        health: replicas > 0 ? 'yellow' : 'green',
        status: 'open',
        index: idx.name,
        uuid: idx.uuid,
        pri: idx.settings['index.number_of_shards'] ?? '1',
        rep: String(replicas),
        'docs.count': String(this.visibleCount(idx)),
        'docs.deleted': '0',
        'store.size': size,
        'pri.store.size': size,
      };
      if (this.es) row['dataset.size'] = size;
      return row;
    });
    const h = ctx.query.get('h');
    const cols = h
      ? h.split(',').map((c) => c.trim())
      : rows[0]
        ? Object.keys(rows[0])
        : ['health', 'status', 'index', 'uuid', 'pri', 'rep', 'docs.count', 'docs.deleted', 'store.size', 'pri.store.size'];
    const s = ctx.query.get('s');
    if (s) {
      const [col, dir] = s.split(':') as [string, string | undefined];
      rows.sort((a, b) => {
        const x = a[col] ?? '';
        const y = b[col] ?? '';
        const nx = Number(x);
        const ny = Number(y);
        const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x.localeCompare(y);
        return dir === 'desc' ? -c : c;
      });
    }
    const projected = rows.map((r) => Object.fromEntries(cols.map((c) => [c, r[c] ?? null])));
    const format = ctx.query.get('format') ?? (String(ctx.headers['accept'] ?? '').includes('json') ? 'json' : 'txt');
    if (format === 'json') return jsonReply(200, projected);
    const header = ctx.query.has('v') && ctx.query.get('v') !== 'false';
    const table = [...(header ? [cols] : []), ...projected.map((r) => cols.map((c) => String(r[c] ?? '')))];
    const widths = cols.map((_, k) => Math.max(...table.map((r) => r[k]!.length), 0));
    const text = table
      .map((r) =>
        r
          .map((v, k) => v.padEnd(widths[k]!))
          .join(' ')
          .trimEnd(),
      )
      .join('\n');
    return { status: 200, body: text ? `${text}\n` : '', contentType: 'text/plain; charset=UTF-8' };
  }

  private clusterHealth(ctx: ReqCtx, expr: string | undefined): Reply {
    const list = expr ? this.resolve(expr) : [...this.indices.values()];
    let primaries = 0,
      unassigned = 0;
    for (const idx of list) {
      const p = Number(idx.settings['index.number_of_shards'] ?? 1);
      primaries += p;
      unassigned += p * Number(idx.settings['index.number_of_replicas'] ?? 1);
    }
    const status = unassigned > 0 ? 'yellow' : 'green';
    const want = ctx.query.get('wait_for_status');
    const rank = { green: 0, yellow: 1, red: 2 } as Record<string, number>;
    const timedOut = want !== null && rank[status]! > (rank[want] ?? 2);
    const total = primaries + unassigned;
    return jsonReply(timedOut ? 408 : 200, {
      cluster_name: this.clusterName,
      status,
      timed_out: timedOut,
      number_of_nodes: 1,
      number_of_data_nodes: 1,
      active_primary_shards: primaries,
      active_shards: primaries,
      relocating_shards: 0,
      initializing_shards: 0,
      unassigned_shards: unassigned,
      ...(this.es ? { unassigned_primary_shards: 0 } : {}),
      delayed_unassigned_shards: 0,
      number_of_pending_tasks: 0,
      number_of_in_flight_fetch: 0,
      task_max_waiting_in_queue_millis: 0,
      active_shards_percent_as_number: total === 0 ? 100.0 : (primaries / total) * 100,
    });
  }

  // ----- security APIs ----------------------------------------------------------------------------

  private securityDisabled(): Reply {
    return errorReply(
      500,
      errObj(
        'exception',
        'Security must be explicitly enabled when using a [basic] license. Enable security by setting [xpack.security.enabled] to [true] in the elasticsearch.yml file and restart the node.',
      ),
    );
  }

  private hasPrivileges(ctx: ReqCtx): Reply {
    if (!this.securityEnabled) return this.securityDisabled();
    const body = this.parseJsonBody(ctx, true)!;
    const p = ctx.principal!;
    const readPrivs = new Set(['read', 'view_index_metadata', 'monitor', 'read_cross_cluster', 'monitor_ml', 'monitor_watcher', 'monitor_transform']);
    const createPrivs = new Set([...readPrivs, 'create_doc', 'create', 'create_index', 'auto_configure']);
    const granted = (priv: string) => (p.createOnly ? createPrivs.has(priv) : !p.readOnly || readPrivs.has(priv));
    let all = true;
    const cluster: Record<string, boolean> = {};
    for (const c of (Array.isArray(body.cluster) ? body.cluster : []) as string[]) {
      cluster[c] = granted(c);
      all &&= cluster[c];
    }
    const index: Record<string, Record<string, boolean>> = {};
    for (const entry of (Array.isArray(body.index) ? body.index : []) as Obj[]) {
      const names = (Array.isArray(entry.names) ? entry.names : [entry.names]) as string[];
      for (const n of names) {
        const privs: Record<string, boolean> = index[n] ?? {};
        index[n] = privs;
        for (const priv of (entry.privileges ?? []) as string[]) {
          privs[priv] = granted(priv);
          all &&= privs[priv];
        }
      }
    }
    return jsonReply(200, { username: p.name, has_all_requested: all, cluster, index, application: {} });
  }

  private authenticateInfo(ctx: ReqCtx): Reply {
    if (!this.securityEnabled) return this.securityDisabled();
    const p = ctx.principal!;
    return jsonReply(200, {
      username: p.name,
      roles: [p.readOnly ? 'viewer' : 'superuser'],
      full_name: null,
      email: null,
      metadata: {},
      enabled: true,
      authentication_realm: {
        name: p.kind === 'api_key' ? '_es_api_key' : p.kind === 'token' ? '_service_account' : 'default_native',
        type: p.kind === 'api_key' ? '_es_api_key' : p.kind === 'token' ? '_service_account' : 'native',
      },
      lookup_realm: { name: 'default_native', type: 'native' },
      authentication_type: p.kind === 'api_key' ? 'api_key' : p.kind === 'token' ? 'token' : 'realm',
      ...(p.kind === 'api_key' ? { api_key: { id: p.apiKeyId, name: p.name } } : {}),
    });
  }

  // ----- search and count -------------------------------------------------------------------------

  private searchBody(ctx: ReqCtx): Obj {
    return this.parseJsonBody(ctx, false) ?? {};
  }

  private count(ctx: ReqCtx, expr: string | undefined): Reply {
    const body = this.searchBody(ctx);
    for (const k of Object.keys(body)) if (k !== 'query') fail(400, 'parsing_exception', `request does not support [${k}]`, { line: 1, col: 2 });
    const q = ctx.query.get('q');
    if (q !== null) fail(400, 'illegal_argument_exception', 'the q= query string parameter is not supported by the auditship test server');
    const list = this.resolve(expr, { ignoreUnavailable: ctx.query.get('ignore_unavailable') === 'true' });
    let count = 0;
    for (const idx of list) {
      this.catchUpRefresh(idx, true);
      const pred = compileQuery(body.query ?? { match_all: {} }, idx.mappings);
      if (pred.matchAll) {
        count += this.visibleCount(idx);
        continue;
      }
      for (const [id, d] of idx.docs) {
        if (d.seq >= idx.refreshedSeq) continue;
        if (pred.test(id, d)) count++;
      }
    }
    const shards = list.reduce((a, i) => a + Number(i.settings['index.number_of_shards'] ?? 1), 0);
    return jsonReply(200, { count, _shards: { total: shards, successful: shards, skipped: 0, failed: 0 } });
  }

  private search(ctx: ReqCtx, expr: string | undefined): Reply {
    const started = Date.now();
    const body = this.searchBody(ctx);
    const known = ['query', 'size', 'from', 'sort', '_source', 'track_total_hits', 'timeout', 'version', 'seq_no_primary_term', 'track_scores'];
    for (const k of Object.keys(body)) {
      if (k === 'aggs' || k === 'aggregations') fail(400, 'illegal_argument_exception', 'aggregations are not supported by the auditship test server');
      if (!known.includes(k))
        fail(
          400,
          'parsing_exception',
          `Unknown key for a ${isObj(body[k]) ? 'START_OBJECT' : Array.isArray(body[k]) ? 'START_ARRAY' : 'VALUE_STRING'} in [${k}].`,
          { line: 1, col: 2 },
        );
    }
    if (ctx.query.get('q') !== null) fail(400, 'illegal_argument_exception', 'the q= query string parameter is not supported by the auditship test server');
    const size = Number(ctx.query.get('size') ?? body.size ?? 10);
    const from = Number(ctx.query.get('from') ?? body.from ?? 0);
    const list = this.resolve(expr, { ignoreUnavailable: ctx.query.get('ignore_unavailable') === 'true' });
    const window = from + size;
    if (window > this.maxResultWindow) {
      const cause = errObj(
        'illegal_argument_exception',
        `Result window is too large, from + size must be less than or equal to: [${this.maxResultWindow}] but was [${window}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.`,
      );
      throw new HttpError(
        errorReply(400, errObj('search_phase_execution_exception', 'all shards failed', { phase: 'query', grouped: true, failed_shards: [] }, cause), [cause]),
      );
    }
    let sortSpec = normalizeSort(
      body.sort ??
        (ctx.query.get('sort')
          ? ctx.query
              .get('sort')!
              .split(',')
              .map((s) => {
                const [f, o] = s.split(':');
                return { [f!]: { order: o ?? 'asc' } };
              })
          : undefined),
    );
    const ttRaw = ctx.query.get('track_total_hits') ?? body.track_total_hits;
    const trackTotal =
      ttRaw === undefined || ttRaw === null ? 10000 : ttRaw === true || ttRaw === 'true' ? Infinity : ttRaw === false || ttRaw === 'false' ? -1 : Number(ttRaw);
    interface Hit {
      idx: IndexState;
      id: string;
      doc: Doc;
      keys: unknown[];
    }
    const hits: Hit[] = [];
    for (const s of sortSpec) {
      if (s.field === '_doc' || s.field === '_score') continue;
      let anyMapped = false;
      for (const idx of list) {
        const f = resolveField(idx.mappings, s.field);
        if (!f) continue;
        anyMapped = true;
        const t = f.node.type ?? 'object';
        if (t === 'text' || t === 'match_only_text') {
          const cause = errObj(
            'illegal_argument_exception',
            `Fielddata is disabled on [${s.field}] in [${idx.name}]. Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [${s.field}] in order to load field data by uninverting the inverted index. Note that this can use significant memory.`,
          );
          throw new HttpError(
            errorReply(400, errObj('search_phase_execution_exception', 'all shards failed', { phase: 'query', grouped: true, failed_shards: [] }, cause), [
              cause,
            ]),
          );
        }
      }
      if (!anyMapped && list.length > 0 && !s.unmappedType) {
        const cause = errObj('query_shard_exception', `No mapping found for [${s.field}] in order to sort on`, {
          index_uuid: list[0]!.uuid,
          index: list[0]!.name,
        });
        throw new HttpError(
          errorReply(400, errObj('search_phase_execution_exception', 'all shards failed', { phase: 'query', grouped: true, failed_shards: [] }, cause), [
            cause,
          ]),
        );
      }
    }
    sortSpec = sortSpec.filter((s) => s.field !== '_score');
    let total = 0;
    for (const idx of list) {
      this.catchUpRefresh(idx, true);
      const pred = compileQuery(body.query ?? { match_all: {} }, idx.mappings);
      const infos = sortSpec.map((s) => {
        const f = s.field === '_doc' ? undefined : resolveField(idx.mappings, s.field);
        if (f) return { type: f.node.type ?? 'object', path: f.sourcePath, format: typeof f.node.format === 'string' ? f.node.format : undefined };
        return s.unmappedType ? { type: s.unmappedType, path: s.field, format: undefined } : null;
      });
      for (const [id, d] of idx.docs) {
        if (d.seq >= idx.refreshedSeq) continue;
        if (!pred.matchAll && !pred.test(id, d)) continue;
        total++;
        if (sortSpec.length === 0 && hits.length >= window) continue;
        let parsed: unknown;
        const keys = sortSpec.map((s, k) => {
          if (s.field === '_doc') return d.seq;
          const info = infos[k];
          if (!info) return null;
          parsed ??= JSON.parse(d.src);
          return sortKey(parsed, s.order, info.type, info.path, info.format);
        });
        hits.push({ idx, id, doc: d, keys });
      }
    }
    if (sortSpec.length) {
      hits.sort((a, b) => {
        for (let k = 0; k < sortSpec.length; k++) {
          const s = sortSpec[k]!;
          const x = a.keys[k];
          const y = b.keys[k];
          if (x === y) continue;
          if (x === null || x === undefined) return s.missingFirst ? -1 : 1;
          if (y === null || y === undefined) return s.missingFirst ? 1 : -1;
          const c = (x as number | string) < (y as number | string) ? -1 : 1;
          return s.order === 'desc' ? -c : c;
        }
        return 0;
      });
    }
    const page = hits.slice(from, from + size);
    const srcFilter = body._source;
    const parts = page.map((h) => {
      let source = h.doc.src;
      if (srcFilter === false) source = '';
      else if (Array.isArray(srcFilter) || typeof srcFilter === 'string')
        source = js(filterSource(JSON.parse(source), Array.isArray(srcFilter) ? (srcFilter as string[]) : [srcFilter]));
      const sortJson = sortSpec.length ? `,"sort":${js(h.keys.map((k) => (k === undefined ? null : k)))}` : '';
      const ver = body.version === true ? `,"_version":${h.doc.version}` : '';
      const seq = body.seq_no_primary_term === true ? `,"_seq_no":${h.doc.seq},"_primary_term":1` : '';
      return `{"_index":${js(h.idx.name)},"_id":${js(h.id)}${ver}${seq},"_score":${sortSpec.length ? 'null' : '1.0'}${source ? `,"_source":${source}` : ''}${sortJson}}`;
    });
    const shards = list.reduce((a, i) => a + Number(i.settings['index.number_of_shards'] ?? 1), 0);
    let totalJson = '';
    if (trackTotal >= 0) {
      const capped = total > trackTotal;
      totalJson =
        ctx.query.get('rest_total_hits_as_int') === 'true'
          ? `"total":${total},`
          : `"total":{"value":${capped ? trackTotal : total},"relation":"${capped ? 'gte' : 'eq'}"},`;
    }
    const maxScore = sortSpec.length || total === 0 ? 'null' : '1.0';
    return {
      status: 200,
      body: `{"took":${Date.now() - started},"timed_out":false,"_shards":{"total":${shards},"successful":${shards},"skipped":0,"failed":0},"hits":{${totalJson}"max_score":${maxScore},"hits":[${parts.join(',')}]}}`,
    };
  }

  // ----- /_test -----------------------------------------------------------------------------------

  private testApi(method: string, url: URL, body: Buffer): Reply {
    const p = url.pathname.replace(/\/+$/, '');
    const parse = (): Obj => {
      if (body.length === 0) return {};
      const v = JSON.parse(body.toString('utf8')) as unknown;
      if (!isObj(v)) throw new Error('body must be a JSON object');
      return v;
    };
    try {
      if (p === '/_test/faults' && method === 'POST') return jsonReply(200, this.setFaults(parse()));
      if (p === '/_test/faults' && method === 'GET') return jsonReply(200, this.faults);
      if (p === '/_test/stats' && method === 'GET') return jsonReply(200, this.stats());
      if (p === '/_test/reset' && method === 'POST') {
        this.reset();
        return jsonReply(200, { acknowledged: true });
      }
      if (p === '/_test/refresh' && method === 'POST') {
        for (const idx of this.indices.values()) this.refreshIndex(idx);
        return jsonReply(200, { acknowledged: true });
      }
      const dm = /^\/_test\/docs\/([^/]+)$/.exec(p);
      if (dm && method === 'GET') {
        const idx = this.indices.get(decodeURIComponent(dm[1]!));
        if (!idx) return jsonReply(404, { error: `no index ${dm[1]}` });
        const lines: string[] = [];
        for (const [id, d] of idx.docs) lines.push(`{"_id":${js(id)},"_version":${d.version},"_source":${d.src}}`);
        return { status: 200, body: lines.length ? `${lines.join('\n')}\n` : '', contentType: 'application/x-ndjson' };
      }
    } catch (e) {
      return jsonReply(400, { error: (e as Error).message });
    }
    return jsonReply(404, { error: `unknown test endpoint ${method} ${p}; see test/es-server/README.md` });
  }
}

// ---------------------------------------------------------------------------------------------------
// Document walking (hot path)
// ---------------------------------------------------------------------------------------------------

class DocFailure {
  constructor(readonly error: ErrObj) {}
}

interface DocCtx {
  emu: EsEmulator;
  idx: IndexState;
  id: string;
  raw: string;
  rawPath: (string | number)[];
  /** Dynamic fields to attach to already-live object mappers once the document is accepted. */
  deferred: { parent: MNode; name: string; node: MNode }[] | null;
  /** Object nodes created for this document: their children attach directly. */
  fresh: Set<MNode> | null;
  added: number;
}

function lookupChild(ctx: DocCtx, parent: MNode, name: string): MNode | undefined {
  const props = parent.properties;
  if (props !== undefined && hasOwn(props, name)) return props[name];
  if (ctx.deferred !== null) {
    for (const d of ctx.deferred) if (d.parent === parent && d.name === name) return d.node;
  }
  return undefined;
}

function walkObject(ctx: DocCtx, obj: Obj, node: MNode, path: string, dyn: Dyn): void {
  for (const key in obj) {
    ctx.rawPath.push(key);
    const value = obj[key];
    if (key.length === 0 || key.trim().length === 0) {
      throw new DocFailure(
        ctx.emu.docParseError(ctx, key.length === 0 ? 'field name cannot be an empty string' : 'field name cannot contain only whitespace: [' + key + ']'),
      );
    }
    if (key.indexOf('.') >= 0) walkDotted(ctx, key, value, node, path, dyn);
    else walkField(ctx, key, value, node, path, dyn);
    ctx.rawPath.pop();
  }
}

function walkDotted(ctx: DocCtx, key: string, value: unknown, node: MNode, path: string, dyn: Dyn): void {
  const segs = key.split('.');
  if (segs.some((s) => s.length === 0)) throw new DocFailure(ctx.emu.docParseError(ctx, `field name cannot contain only dots: [${key}]`));
  let cur = node;
  let curPath = path;
  let curDyn = dyn;
  for (let i = 0; i < segs.length - 1; i++) {
    const seg = segs[i]!;
    const full = curPath ? `${curPath}.${seg}` : seg;
    let child = lookupChild(ctx, cur, seg);
    if (child === undefined) {
      if (value === null) return;
      if (curDyn === 'strict') throw strictError(ctx, seg, curPath);
      if (curDyn !== 'true') return;
      child = addDynamic(ctx, cur, seg, full, {}, curDyn);
    } else if (!isObjectNode(child)) {
      throw new DocFailure(
        ctx.emu.docParseError(
          ctx,
          `Could not dynamically add mapping for field [${full}.${segs.slice(i + 1).join('.')}]. Existing mapping for [${full}] must be of type object but found [${child.type}].`,
        ),
      );
    }
    if (child.enabled === false) return;
    cur = child;
    curPath = full;
    curDyn = dynOf(child.dynamic, curDyn);
  }
  walkField(ctx, segs[segs.length - 1]!, value, cur, curPath, curDyn);
}

function strictError(ctx: DocCtx, name: string, parentPath: string): DocFailure {
  const e = ctx.emu;
  return new DocFailure(
    e.docParseError(
      ctx,
      `mapping set to strict, dynamic introduction of [${name}] within [${parentPath || '_doc'}] is not allowed`,
      undefined,
      'strict_dynamic_mapping_exception',
    ),
  );
}

function walkField(ctx: DocCtx, name: string, value: unknown, parent: MNode, parentPath: string, dyn: Dyn): void {
  if (value === null) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      ctx.rawPath.push(i);
      walkField(ctx, name, value[i], parent, parentPath, dyn);
      ctx.rawPath.pop();
    }
    return;
  }
  let child = lookupChild(ctx, parent, name);
  const full = parentPath ? `${parentPath}.${name}` : name;
  if (child === undefined) {
    if (dyn === 'strict') throw strictError(ctx, name, parentPath);
    if (dyn !== 'true') return;
    child = addDynamic(ctx, parent, name, full, value, dyn);
  }
  const t = child.type;
  if (t === undefined || t === 'object' || t === 'nested') {
    if (child.enabled === false) return;
    if (isObj(value)) {
      walkObject(ctx, value, child, full, dynOf(child.dynamic, dyn));
      return;
    }
    throw new DocFailure(ctx.emu.docParseError(ctx, `object mapping for [${full}] tried to parse field [${name}] as object, but found a concrete value`));
  }
  checkLeaf(ctx, child, t, value, full);
}

function startObjectCause(ctx: DocCtx): ErrObj {
  return errObj('illegal_state_exception', `Can't get text on a START_OBJECT at 1:${locateColumn(ctx.raw, ctx.rawPath)}`);
}

function checkLeaf(ctx: DocCtx, node: MNode, t: string, value: unknown, full: string): void {
  const e = ctx.emu;
  if (STRING_TYPES.has(t)) {
    if (typeof value === 'object') throw e.fieldError(ctx, full, t, value, startObjectCause(ctx));
    if (t === 'constant_keyword' && node.value !== undefined && String(value) !== String(node.value)) {
      throw e.fieldError(
        ctx,
        full,
        t,
        value,
        errObj(
          'illegal_argument_exception',
          `[constant_keyword] field [${full}] only accepts values that are equal to the value defined in the mappings [${String(node.value)}], but got [${String(value)}]`,
        ),
      );
    }
    return;
  }
  const range = INT_RANGES[t];
  if (range !== undefined || FLOAT_TYPES.has(t)) {
    if (typeof value === 'number') {
      if (range && (value < range[0] || value > range[1])) {
        if (node.ignore_malformed === true) return;
        throw e.fieldError(ctx, full, t, value, errObj('illegal_argument_exception', `Value [${value}] is out of range for ${range[2]}`));
      }
      return;
    }
    if (typeof value === 'string') {
      if (value.length === 0) return; // an empty string is a null value for numbers
      if (/^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/.test(value)) {
        if (node.coerce === false) {
          if (node.ignore_malformed === true) return;
          throw e.fieldError(ctx, full, t, value, errObj('illegal_argument_exception', 'Cannot parse a string value when [coerce] is false'));
        }
        const n = Number(value);
        if (range && (n < range[0] || n > range[1])) {
          if (node.ignore_malformed === true) return;
          throw e.fieldError(ctx, full, t, value, errObj('illegal_argument_exception', `Value [${value}] is out of range for ${range[2]}`));
        }
        return;
      }
      if (node.ignore_malformed === true) return;
      throw e.fieldError(ctx, full, t, value, errObj(e.es ? 'illegal_argument_exception' : 'number_format_exception', `For input string: "${value}"`));
    }
    if (typeof value === 'boolean') {
      if (node.ignore_malformed === true) return;
      throw e.fieldError(
        ctx,
        full,
        t,
        value,
        errObj('illegal_argument_exception', `Current token (VALUE_${value ? 'TRUE' : 'FALSE'}) not numeric, can not use numeric value accessors`),
      );
    }
    throw e.fieldError(ctx, full, t, value, startObjectCause(ctx));
  }
  switch (t) {
    case 'date':
    case 'date_nanos': {
      if (typeof value === 'object') throw e.fieldError(ctx, full, t, value, startObjectCause(ctx));
      const format = typeof node.format === 'string' ? node.format : t === 'date' ? DEFAULT_DATE_FORMAT : DEFAULT_DATE_NANOS_FORMAT;
      if (parseDate(value, format) === null) {
        if (node.ignore_malformed === true) return;
        throw e.fieldError(
          ctx,
          full,
          t,
          value,
          errObj(
            'illegal_argument_exception',
            `failed to parse date field [${String(value)}] with format [${format}]`,
            undefined,
            errObj('date_time_parse_exception', 'Failed to parse with all enclosed parsers'),
          ),
        );
      }
      return;
    }
    case 'boolean': {
      if (value === true || value === false || value === 'true' || value === 'false' || value === '') return;
      if (typeof value === 'object') throw e.fieldError(ctx, full, t, value, startObjectCause(ctx));
      if (node.ignore_malformed === true) return;
      throw e.fieldError(
        ctx,
        full,
        t,
        value,
        errObj('illegal_argument_exception', `Failed to parse value [${String(value)}] as only [true] or [false] are allowed.`),
      );
    }
    case 'ip': {
      if (typeof value === 'object') throw e.fieldError(ctx, full, t, value, startObjectCause(ctx));
      if (typeof value === 'string' && isIP(value.split('%')[0]!) !== 0) return;
      if (node.ignore_malformed === true) return;
      throw e.fieldError(ctx, full, t, value, errObj('illegal_argument_exception', `'${String(value)}' is not an IP string literal.`));
    }
    default:
      return; // geo, vectors, ranges, flattened…: accepted as is
  }
}

/** Infers and registers a dynamic mapping for a new field. */
function addDynamic(ctx: DocCtx, parent: MNode, name: string, full: string, value: unknown, dyn: Dyn): MNode {
  const root = ctx.idx.mappings;
  let mtype: string;
  let node: MNode;
  if (isObj(value)) {
    mtype = 'object';
    node = { properties: Object.create(null) as Record<string, MNode> };
  } else if (typeof value === 'string') {
    if (root.date_detection !== false && looksLikeDate(value, root.dynamic_date_formats)) {
      mtype = 'date';
      node = { type: 'date' };
    } else if (root.numeric_detection === true && /^[+-]?\d+$/.test(value)) {
      mtype = 'long';
      node = { type: 'long' };
    } else if (root.numeric_detection === true && /^[+-]?\d*\.\d+(?:[eE][+-]?\d+)?$/.test(value)) {
      mtype = 'double';
      node = { type: 'float' };
    } else {
      mtype = 'string';
      node = { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 256 } } };
    }
  } else if (typeof value === 'number') {
    if (Number.isInteger(value)) {
      mtype = 'long';
      node = { type: 'long' };
    } else {
      mtype = 'double';
      node = { type: 'float' };
    }
  } else if (typeof value === 'boolean') {
    mtype = 'boolean';
    node = { type: 'boolean' };
  } else {
    mtype = 'string';
    node = { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 256 } } };
  }

  const templates = root.dynamic_templates;
  if (Array.isArray(templates)) {
    for (const entry of templates) {
      if (!isObj(entry)) continue;
      const tdef = Object.values(entry)[0];
      if (!isObj(tdef)) continue;
      const list = (v: unknown): string[] | null => (v === undefined ? null : Array.isArray(v) ? v.map(String) : [String(v)]);
      const mmt = list(tdef.match_mapping_type);
      const unmt = list(tdef.unmatch_mapping_type);
      const match = list(tdef.match);
      const unmatch = list(tdef.unmatch);
      const pmatch = list(tdef.path_match);
      const punmatch = list(tdef.path_unmatch);
      const typeName = mtype === 'date' ? 'date' : mtype;
      const mmtOk = (types: string[]) => types.some((x) => x === '*' || x === typeName || (x === 'string' && mtype === 'date' && false));
      if (mmt && !mmtOk(mmt)) continue;
      if (unmt && mmtOk(unmt)) continue;
      const rx = tdef.match_pattern === 'regex';
      const m1 = (pats: string[], s: string) => pats.some((p) => (rx ? new RegExp(p).test(s) : globMatch(p, s)));
      if (match && !m1(match, name)) continue;
      if (unmatch && m1(unmatch, name)) continue;
      if (pmatch && !m1(pmatch, full)) continue;
      if (punmatch && m1(punmatch, full)) continue;
      if (!isObj(tdef.mapping)) continue;
      const dynType = mtype === 'string' ? 'text' : mtype === 'double' ? 'float' : mtype;
      const sub = JSON.parse(
        js(tdef.mapping)
          .replace(/\{name\}/g, name)
          .replace(/\{dynamic_type\}/g, dynType),
      ) as MNode;
      if (sub.type === undefined && mtype !== 'object') sub.type = node.type;
      if (mtype === 'object' && sub.type === undefined) sub.properties = Object.create(null) as Record<string, MNode>;
      node = sub;
      break;
    }
  }
  void dyn;
  const newFields = 1 + countFields(node.fields);
  const limit = Number(ctx.idx.settings['index.mapping.total_fields.limit'] ?? ctx.emu.totalFieldsLimit);
  if (ctx.idx.fieldCount + ctx.added + newFields > limit) {
    const msg = ctx.emu.es
      ? `Limit of total fields [${limit}] has been exceeded while adding new fields [${newFields}]`
      : `Limit of total fields [${limit}] in index [${ctx.idx.name}] has been exceeded`;
    throw new DocFailure(
      ctx.emu.es ? ctx.emu.docParseError(ctx, `failed to parse: ${msg}`, errObj('illegal_argument_exception', msg)) : errObj('illegal_argument_exception', msg),
    );
  }
  ctx.added += newFields;
  if (isObjectNode(node)) (ctx.fresh ??= new Set()).add(node);
  if (ctx.fresh !== null && ctx.fresh.has(parent)) {
    parent.properties ??= Object.create(null) as Record<string, MNode>;
    setOwn(parent.properties, name, node);
  } else {
    (ctx.deferred ??= []).push({ parent, name, node });
  }
  return node;
}

function deepMerge(a: Obj, b: Obj): Obj {
  for (const [k, v] of Object.entries(b)) {
    const cur = getOwn(a, k);
    if (isObj(cur) && isObj(v)) deepMerge(cur, v);
    else setOwn(a, k, v);
  }
  return a;
}

function filterSource(src: unknown, includes: string[]): Obj {
  const out: Obj = {};
  if (!isObj(src)) return out;
  const walk = (o: Obj, prefix: string, target: Obj) => {
    for (const [k, v] of Object.entries(o)) {
      const full = prefix ? `${prefix}.${k}` : k;
      if (includes.some((p) => globMatch(p, full))) setOwn(target, k, v);
      else if (isObj(v) && includes.some((p) => p.startsWith(`${full}.`) || globMatch(p.split('.').slice(0, full.split('.').length).join('.'), full))) {
        const sub: Obj = {};
        walk(v, full, sub);
        if (Object.keys(sub).length) setOwn(target, k, sub);
      }
    }
  };
  walk(src, '', out);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Error locations: the byte column of a value in the raw source line
// ---------------------------------------------------------------------------------------------------

function skipWs(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) break;
    i++;
  }
  return i;
}

function skipString(s: string, i: number): number {
  i++; // opening quote
  while (i < s.length) {
    const c = s[i];
    if (c === '\\') i += 2;
    else if (c === '"') return i + 1;
    else i++;
  }
  return i;
}

function skipValue(s: string, i: number): number {
  const c = s[i];
  if (c === '"') return skipString(s, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    while (i < s.length) {
      const d = s[i];
      if (d === '"') {
        i = skipString(s, i);
        continue;
      }
      if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return i;
  }
  while (i < s.length && !',}] \t\r\n'.includes(s[i]!)) i++;
  return i;
}

/** 1-based byte column of the value at rawPath (keys as written; numbers are array positions). */
function locateColumn(raw: string, path: (string | number)[]): number {
  let i = skipWs(raw, 0);
  for (const seg of path) {
    if (typeof seg === 'number') {
      if (raw[i] !== '[') break;
      i = skipWs(raw, i + 1);
      for (let k = 0; k < seg; k++) {
        i = skipWs(raw, skipValue(raw, i));
        if (raw[i] === ',') i = skipWs(raw, i + 1);
      }
    } else {
      if (raw[i] !== '{') break;
      i = skipWs(raw, i + 1);
      let found = -1;
      while (i < raw.length && raw[i] !== '}') {
        const end = skipString(raw, i);
        let key: string;
        try {
          key = JSON.parse(raw.slice(i, end)) as string;
        } catch {
          key = '';
        }
        i = skipWs(raw, end);
        if (raw[i] === ':') i = skipWs(raw, i + 1);
        if (key === seg) found = i;
        i = skipWs(raw, skipValue(raw, i));
        if (raw[i] === ',') i = skipWs(raw, i + 1);
      }
      if (found < 0) break;
      i = found;
    }
  }
  return Buffer.byteLength(raw.slice(0, i)) + 1;
}

// ---------------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------------

interface Compiled {
  matchAll: boolean;
  test: (id: string, doc: Doc) => boolean;
}
type SrcPred = (id: string, src: () => unknown) => boolean;

interface SortSpec {
  field: string;
  order: 'asc' | 'desc';
  missingFirst: boolean;
  unmappedType?: string;
}

function normalizeSort(sort: unknown): SortSpec[] {
  if (sort === undefined || sort === null) return [];
  const list = Array.isArray(sort) ? sort : [sort];
  const out: SortSpec[] = [];
  for (const s of list) {
    if (typeof s === 'string') {
      out.push({ field: s, order: s === '_score' ? 'desc' : 'asc', missingFirst: false });
      continue;
    }
    if (!isObj(s)) continue;
    for (const [field, spec] of Object.entries(s)) {
      if (typeof spec === 'string') {
        out.push({ field, order: spec === 'desc' ? 'desc' : 'asc', missingFirst: false });
        continue;
      }
      const o = isObj(spec) ? spec : {};
      const order = o.order === 'desc' ? 'desc' : field === '_score' && o.order === undefined ? 'desc' : 'asc';
      out.push({ field, order, missingFirst: o.missing === '_first', ...(typeof o.unmapped_type === 'string' ? { unmappedType: o.unmapped_type } : {}) });
    }
  }
  return out;
}

/** Sort value of a document: min (asc) or max (desc) of the field's values; dates as epoch millis. */
function sortKey(src: unknown, order: 'asc' | 'desc', type: string, path: string, format: string | undefined): number | string | null {
  const conv = valuesAt(src, path)
    .map((v) => toComparable(v, type, format))
    .filter((v) => v !== null);
  if (conv.length === 0) return null;
  return conv.reduce((a, b) => (order === 'desc' ? (b > a ? b : a) : b < a ? b : a));
}

function toComparable(v: unknown, type: string, format?: string): number | string | null {
  if (v === null || v === undefined) return null;
  if (INT_RANGES[type] || FLOAT_TYPES.has(type)) {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(n)) return null;
    return INT_RANGES[type] ? Math.trunc(n) : n;
  }
  if (type === 'date' || type === 'date_nanos') return parseDate(v, format ?? (type === 'date' ? DEFAULT_DATE_FORMAT : DEFAULT_DATE_NANOS_FORMAT));
  if (type === 'boolean') return v === true || v === 'true' ? 1 : 0;
  if (typeof v === 'object') return null;
  return String(v);
}

function asList(v: unknown): unknown[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function badQuery(reason: string): never {
  throw new HttpError(errorReply(400, errObj('parsing_exception', reason, { line: 1, col: 1 })));
}

/** Compiles a query for one index (its mapping decides how values compare). */
function compileQuery(q: unknown, mappings: MNode): Compiled {
  if (!isObj(q)) badQuery('query malformed, must start with start_object');
  const keys = Object.keys(q);
  if (keys.length === 1 && keys[0] === 'match_all') return { matchAll: true, test: () => true };
  const pred = compileNode(q, mappings);
  return {
    matchAll: false,
    test: (id, doc) => {
      let parsed: unknown;
      let done = false;
      return pred(id, () => {
        if (!done) {
          parsed = JSON.parse(doc.src);
          done = true;
        }
        return parsed;
      });
    },
  };
}

function fieldAndValue(body: unknown, kind: string): [string, Obj] {
  if (!isObj(body)) badQuery(`[${kind}] query malformed, no start_object after query name`);
  const entries = Object.entries(body).filter(([k]) => k !== 'boost' && k !== '_name');
  if (entries.length !== 1) badQuery(`[${kind}] query doesn't support multiple fields, found [${entries.map(([k]) => k).join('] and [')}]`);
  const [field, spec] = entries[0]!;
  return [field, isObj(spec) ? spec : { value: spec, query: spec }];
}

function compileNode(q: Obj, mappings: MNode): SrcPred {
  const keys = Object.keys(q);
  if (keys.length !== 1) badQuery(`[${keys.join(',')}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]`);
  const kind = keys[0]!;
  const body = q[kind];
  const fieldInfo = (field: string) => {
    const f = resolveField(mappings, field);
    if (!f) return null;
    return { type: f.node.type ?? 'object', path: f.sourcePath, format: typeof f.node.format === 'string' ? f.node.format : undefined };
  };
  switch (kind) {
    case 'match_all':
      return () => true;
    case 'match_none':
      return () => false;
    case 'ids': {
      const values = new Set(asList(getOwn(body, 'values')).map(String));
      return (id) => values.has(id);
    }
    case 'term':
    case 'terms': {
      let field: string;
      let wanted: unknown[];
      if (kind === 'term') {
        const [f, spec] = fieldAndValue(body, kind);
        field = f;
        wanted = [spec.value];
      } else {
        if (!isObj(body)) badQuery('[terms] query malformed');
        const entries = Object.entries(body).filter(([k]) => k !== 'boost' && k !== '_name');
        if (entries.length !== 1 || !Array.isArray(entries[0]![1])) badQuery('[terms] query does not support [' + (entries[0]?.[0] ?? '') + ']');
        field = entries[0]![0];
        wanted = entries[0]![1] as unknown[];
      }
      if (field === '_id') {
        const s = new Set(wanted.map(String));
        return (id) => s.has(id);
      }
      if (field === '_index') return () => true;
      const info = fieldInfo(field);
      if (!info) return () => false;
      return (_id, src) => valuesAt(src(), info.path).some((v) => wanted.some((w) => valueEquals(v, w, info.type, info.format)));
    }
    case 'match':
    case 'match_phrase': {
      const [field, spec] = fieldAndValue(body, kind);
      const info = fieldInfo(field);
      if (!info) return () => false;
      const query = spec.query;
      if (info.type === 'text' || info.type === 'match_only_text') {
        const qt = analyze(String(query));
        const and = spec.operator === 'and' || spec.operator === 'AND' || kind === 'match_phrase';
        return (_id, src) =>
          valuesAt(src(), info.path).some((v) => {
            if (typeof v !== 'string') return false;
            const toks = analyze(v);
            if (kind === 'match_phrase') return toks.join(' ').includes(qt.join(' ')) && qt.length > 0;
            return and ? qt.every((t) => toks.includes(t)) : qt.some((t) => toks.includes(t));
          });
      }
      return (_id, src) => valuesAt(src(), info.path).some((v) => valueEquals(v, query, info.type, info.format));
    }
    case 'prefix': {
      const [field, spec] = fieldAndValue(body, kind);
      const info = fieldInfo(field);
      if (!info) return () => false;
      const p = String(spec.value);
      if (info.type === 'text') return (_id, src) => valuesAt(src(), info.path).some((v) => typeof v === 'string' && analyze(v).some((t) => t.startsWith(p)));
      return (_id, src) => valuesAt(src(), info.path).some((v) => typeof v !== 'object' && String(v).startsWith(p));
    }
    case 'exists': {
      const field = getOwn(body, 'field');
      if (typeof field !== 'string') badQuery('[exists] must be provided with a [field]');
      const info = fieldInfo(field);
      if (!info) return () => false;
      return (_id, src) => valuesAt(src(), info.path).some((v) => v !== null);
    }
    case 'range': {
      const [field, spec] = fieldAndValue(body, kind);
      const info = fieldInfo(field);
      if (!info) return () => false;
      const isDate = info.type === 'date' || info.type === 'date_nanos';
      const fmt = typeof spec.format === 'string' ? spec.format : (info.format ?? DEFAULT_DATE_FORMAT);
      const bound = (v: unknown, roundUp: boolean): number | string | null => {
        if (v === undefined || v === null) return null;
        if (isDate) {
          const t = dateMath(v, fmt, roundUp);
          if (t === null) throw new HttpError(errorReply(400, errObj('parse_exception', `failed to parse date field [${String(v)}] with format [${fmt}]`)));
          return t;
        }
        return toComparable(v, info.type);
      };
      const gte = bound(spec.gte ?? (spec.include_lower !== false ? spec.from : undefined), false);
      const gt = bound(spec.gt ?? (spec.include_lower === false ? spec.from : undefined), true);
      const lte = bound(spec.lte ?? (spec.include_upper !== false ? spec.to : undefined), true);
      const lt = bound(spec.lt ?? (spec.include_upper === false ? spec.to : undefined), false);
      const textual = info.type === 'text';
      return (_id, src) =>
        valuesAt(src(), info.path).some((raw) => {
          const cands = textual && typeof raw === 'string' ? analyze(raw) : [toComparable(raw, info.type, info.format)];
          return cands.some((v) => {
            if (v === null) return false;
            if (gte !== null && !(v >= gte)) return false;
            if (gt !== null && !(v > gt)) return false;
            if (lte !== null && !(v <= lte)) return false;
            if (lt !== null && !(v < lt)) return false;
            return true;
          });
        });
    }
    case 'bool': {
      if (!isObj(body)) badQuery('[bool] malformed query');
      const b = body;
      for (const k of Object.keys(b)) {
        if (!['must', 'filter', 'should', 'must_not', 'minimum_should_match', 'boost', '_name'].includes(k)) badQuery(`[bool] query does not support [${k}]`);
      }
      const comp = (v: unknown) =>
        asList(v).map((x) => {
          if (!isObj(x)) badQuery('[bool] clause must be an object');
          return compileNode(x, mappings);
        });
      const must = [...comp(b.must), ...comp(b.filter)];
      const should = comp(b.should);
      const mustNot = comp(b.must_not);
      const msmRaw = b.minimum_should_match;
      const msm =
        msmRaw !== undefined
          ? Number(String(msmRaw).replace('%', '')) * (String(msmRaw).endsWith('%') ? should.length / 100 : 1)
          : must.length > 0
            ? 0
            : should.length > 0
              ? 1
              : 0;
      return (id, src) => {
        for (const p of must) if (!p(id, src)) return false;
        for (const p of mustNot) if (p(id, src)) return false;
        if (msm > 0) {
          let n = 0;
          for (const p of should) if (p(id, src) && ++n >= msm) return true;
          return false;
        }
        return true;
      };
    }
    case 'constant_score': {
      const filter = getOwn(body, 'filter');
      if (!isObj(filter)) badQuery("[constant_score] requires a 'filter' element");
      return compileNode(filter, mappings);
    }
    default:
      throw new HttpError(
        errorReply(
          400,
          errObj(
            'parsing_exception',
            `unknown query [${kind}]`,
            { line: 1, col: 1 },
            errObj('named_object_not_found_exception', `[1:1] unknown field [${kind}]`),
          ),
        ),
      );
  }
}

function valueEquals(docValue: unknown, q: unknown, type: string, format?: string): boolean {
  if (docValue === null || docValue === undefined || typeof docValue === 'object') return false;
  switch (type) {
    case 'text':
    case 'match_only_text':
      return typeof docValue === 'string' && analyze(docValue).includes(String(q));
    case 'ip':
      return ipMatches(docValue, q);
    case 'date':
    case 'date_nanos': {
      const a = parseDate(docValue, format ?? DEFAULT_DATE_FORMAT);
      const b = typeof q === 'string' || typeof q === 'number' ? dateMath(q, format ?? DEFAULT_DATE_FORMAT, false) : null;
      return a !== null && a === b;
    }
    case 'boolean':
      return (docValue === true || docValue === 'true') === (q === true || q === 'true');
    default: {
      if (INT_RANGES[type] || FLOAT_TYPES.has(type)) {
        const a = toComparable(docValue, type);
        const b = toComparable(q, type);
        return a !== null && a === b;
      }
      return String(docValue) === String(q);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------------

export async function startEsServer(options: EsServerOptions = {}): Promise<EsServerHandle> {
  const emu = new EsEmulator(options);
  const server = http.createServer({ keepAliveTimeout: 0, requestTimeout: 0, headersTimeout: 60_000 } as http.ServerOptions);
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.on('request', (req, res) => {
    emu.handle(req, res).catch(() => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      }
    });
  });
  server.on('checkContinue', (req, res) => {
    const declared = Number(req.headers['content-length'] ?? -1);
    if (declared > emu.maxContentLength) {
      emu.counters.rejected413++;
      res.writeHead(417, { 'content-length': 0, ...(emu.es ? { 'X-elastic-product': 'Elasticsearch' } : {}) });
      res.end();
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
  server.on('clientError', (_err, socket) => {
    socket.destroy();
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  return {
    url,
    port: addr.port,
    flavor: emu.flavor,
    version: emu.version,
    stats: () => emu.stats(),
    setFaults: (f) => emu.setFaults(f),
    reset: () => emu.reset(),
    control: async (cmd) => emu.control(cmd),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------------

function parseArgs(argv: string[]): EsServerOptions {
  const o: EsServerOptions = {};
  const auth: Required<EsAuthOptions> = { users: [], apiKeys: [], bearerTokens: [] };
  const split = (v: string): [string, string] => {
    const k = v.indexOf(':');
    if (k < 0) throw new Error(`expected a:b, got ${v}`);
    return [v.slice(0, k), v.slice(k + 1)];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--port':
        o.port = Number(next());
        break;
      case '--host':
        o.host = next();
        break;
      case '--flavor': {
        const f = next();
        if (f !== 'elasticsearch' && f !== 'opensearch') throw new Error(`--flavor elasticsearch|opensearch, got ${f}`);
        o.flavor = f;
        break;
      }
      case '--version':
        o.version = next();
        break;
      case '--user': {
        const [u, p] = split(next());
        auth.users.push({ username: u, password: p });
        break;
      }
      case '--read-only-user': {
        const [u, p] = split(next());
        auth.users.push({ username: u, password: p, readOnly: true });
        break;
      }
      case '--create-only-user': {
        const [u, p] = split(next());
        auth.users.push({ username: u, password: p, createOnly: true });
        break;
      }
      case '--api-key': {
        const [id, key] = split(next());
        auth.apiKeys.push({ id, key });
        break;
      }
      case '--read-only-api-key': {
        const [id, key] = split(next());
        auth.apiKeys.push({ id, key, readOnly: true });
        break;
      }
      case '--bearer':
        auth.bearerTokens.push({ token: next() });
        break;
      case '--max-content-length':
        o.maxContentLength = next();
        break;
      case '--refresh': {
        const r = next();
        if (r !== 'nrt' && r !== 'immediate') throw new Error('--refresh nrt|immediate');
        o.refresh = r;
        break;
      }
      case '--destructive-requires-name':
        o.destructiveRequiresName = next() === 'true';
        break;
      case '--options':
        Object.assign(o, JSON.parse(next()) as EsServerOptions);
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  if (auth.users.length || auth.apiKeys.length || auth.bearerTokens.length) {
    o.auth = {
      users: [...(o.auth?.users ?? []), ...auth.users],
      apiKeys: [...(o.auth?.apiKeys ?? []), ...auth.apiKeys],
      bearerTokens: [...(o.auth?.bearerTokens ?? []), ...auth.bearerTokens],
    };
  }
  return o;
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  let opts: EsServerOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`es-server: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const handle = await startEsServer(opts);
  process.stdout.write(`${js({ url: handle.url, flavor: handle.flavor, version: handle.version, pid: process.pid })}\n`);
  const stop = () => {
    void handle.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
