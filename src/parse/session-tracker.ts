/**
 * What a pgaudit event shares with others, and what it ends: the session tracker of a log source.
 *
 * 1. **Dimensions.** Most columns of an event repeat: who, from where, in which session and file (its
 *    *context*: one per session, file and application_name) and what kind of entry it is (its *kind*:
 *    audit type, class, command, object type, command tag, severity — a few dozen in a whole store). The
 *    tracker gives each an id, a 52-bit hash of its values (the same in every run and process, so rows
 *    written by different runs agree without coordination), and lists per batch the contexts and kinds
 *    its events use. A packed event carries the two ids instead of fifteen text fields.
 * 2. **Correlation.** Per open session it keeps the last audited statement (id, virtual transaction, a
 *    hash of the text of its first entry, first time, last line) and ties each ERROR/FATAL of the session
 *    to it — the error ends the statement when it is logged in the same virtual transaction with the same
 *    text — so the store learns each statement's outcome from the batch alone, without reading stored
 *    rows. Connection, disconnection and failed-login records become session and failure rows. The state
 *    of open sessions is handed to the store with each batch (it commits with the checkpoint) and loaded
 *    at the next start, so a statement and its error may lie in different files and runs.
 *
 * Pure: no I/O. The csvlog fast path (csvlog-pack.ts) calls `auditFields` with byte positions; jsonlog and
 * the string path call `auditRecord` with decoded values.
 *
 * Kept as one file (about 790 lines): the tracker is one state machine (sessions, contexts, kinds, open
 * statements and their outcomes) that the packer calls for every record; split, its state would be shared
 * across files.
 */
import { redactSessionRecord, type PatternRule } from '../redact/index.js';
import { createHash } from 'node:crypto';
import type { EventContext, EventKind } from './dimensions.js';
import type { PgAuditRecord } from './log-record.js';
import type { PackWriter } from './packed.js';
import { PREVIOUSLY_LOGGED } from './pgaudit.js';
import type { SessionRecord } from './session-log.js';

export type { EventContext, EventKind } from './dimensions.js';

/** The last audited statement of an open session, as the store keeps it between runs. */
export interface StatementState {
  session_id: string;
  statement_id: number;
  /** Virtual transaction of the statement's first entry. */
  vxid: string | null;
  last_line: number;
  /** textHash() of the statement's first entry; 0 with `marker`. */
  statement_hash: number;
  /** The first entry said `<previously logged>`: its text matches any error text. */
  marker: boolean;
  first_time_ms: number;
  /** Line of the statement's first audited entry (logged at first_time_ms). */
  first_line: number;
  /** Time of the statement's last audited entry (line last_line). */
  last_time_ms: number;
}

/** A statement an error ended: its rows get the error's sqlstate and message. */
export interface StatementOutcome {
  session_id: string;
  statement_id: number;
  sqlstate: string | null;
  message: string;
  /** The statement's rows lie between its first entry and the error. */
  from_ms: number;
  to_ms: number;
  /** Line of the error (the first error of a statement wins). */
  line: number;
  /**
   * The statement's audited entries are lines first_line..last_line of the session (each line in between that
   * is an entry is one of them; others are not entries), the last one logged at last_ms. What a sink that
   * addresses events by line needs (a search sink's document ids).
   */
  first_line: number;
  last_line: number;
  last_ms: number;
}

/** The first error of each statement among these outcomes (the one every store keeps). */
export function firstOutcomes(outcomes: readonly StatementOutcome[]): StatementOutcome[] {
  const first = new Map<string, StatementOutcome>();
  for (const o of outcomes) {
    const key = `${o.session_id}\0${o.statement_id}`;
    const cur = first.get(key);
    if (!cur || o.line < cur.line) first.set(key, o);
  }
  return [...first.values()];
}

/** What one batch adds to correlation. */
export interface CorrelationBatch {
  /** Connection authorized and disconnection records (the store merges them into `sessions`). */
  sessions: SessionRecord[];
  logonFailures: SessionRecord[];
  /** Error records with the audited statement each one ended (null: none, e.g. a syntax error). */
  errors: { record: SessionRecord; statementId: number | null }[];
  outcomes: StatementOutcome[];
  /** Sessions whose last statement changed. */
  state: StatementState[];
  /** Sessions that ended (their state is dropped). */
  ended: string[];
}

/** A 52-bit id (a safe integer) of a tuple of values: the same in every process. */
export function tupleId(parts: readonly (string | number | null)[]): number {
  const h = createHash('sha256');
  for (const p of parts) h.update(p === null ? '\x01' : `\x02${String(p)}\x00`);
  const d = h.digest();
  return d.readUIntBE(0, 6) * 16 + (d[6]! >> 4);
}

/** FNV-1a over bytes [s, e); with `undouble`, the second quote of each "" pair is skipped. */
export function hashBytes(src: Uint8Array, s: number, e: number, undouble = false): number {
  let h = 0x811c9dc5;
  for (let i = s; i < e; i++) {
    const c = src[i]!;
    h = Math.imul(h ^ c, 0x01000193);
    if (undouble && c === 34) i++;
  }
  return h >>> 0;
}

/** The statement hash of a text (its UTF-8 bytes), as auditFields computes it from a log record. */
export function textHash(text: string): number {
  const b = Buffer.from(text, 'utf8');
  return hashBytes(b, 0, b.length);
}

const EMPTY = new Uint8Array(0);
const digitsOf = (n: number) => Buffer.from(String(n), 'latin1');

/** csvlog columns of an event's context, in the order they are compared. */
const CONTEXT_FIELDS = [1, 2, 3, 4, 5, 8, 22, 23, 24];

class SessionState {
  context: EventContext | null = null;
  /** The context id in ASCII digits (packed rows carry it). */
  contextDigits: Uint8Array = EMPTY;
  /** The raw csvlog bytes the context was made from (fast path), or its values as text (string path). */
  contextRaw: Uint8Array | null = null;
  contextKey: string | null = null;
  contextFile = -1;
  contextBatch = -1;
  statementId = -1;
  vxid: string | null = null;
  textHash = 0;
  marker = false;
  firstMs = 0;
  firstLine = -1;
  lastLine = -1;
  lastMs = 0;
  dirtyBatch = -1;
  /**
   * Where the last statement's first entry put its vxid and text in the packed rows being written ([start,
   * end) of each), until they are read (resolve): most statements are followed by another one of the same
   * session before anything needs them, so the text is hashed once per session and batch, not per statement.
   */
  pending = false;
  pendingVxid = -1;
  pendingVxidEnd = -1;
  pendingText = -1;
  pendingTextEnd = -1;
  constructor(
    readonly key: Uint8Array,
    readonly sessionId: string,
  ) {}

  /** Reads the vxid and hashes the text of the statement's first entry where the packer put them (-1: NULL). */
  resolve(out: PackWriter | null): void {
    if (!this.pending) return;
    this.pending = false;
    const b = out!.buf;
    this.vxid = this.pendingVxid >= 0 ? b.toString('utf8', this.pendingVxid, this.pendingVxidEnd) : null;
    this.textHash = this.marker || this.pendingText < 0 ? 0 : hashBytes(b, this.pendingText, this.pendingTextEnd);
  }
}

interface KindEntry {
  raw: Uint8Array | null;
  key: string | null;
  kind: EventKind;
  digits: Uint8Array;
  batch: number;
}

/** Sessions kept in memory at most (open ones; the oldest idle ones go first beyond this). */
const MAX_SESSIONS = 200_000;

export class SessionTracker {
  private readonly sessions = new Map<number, SessionState[]>();
  private sessionCount = 0;
  private readonly kinds = new Map<number, KindEntry[]>();
  private readonly kindsByKey = new Map<string, KindEntry>();
  private file = 0;
  private batch = 0;
  private server = '';
  private path = '';
  private usedContexts: EventContext[] = [];
  private usedKinds: EventKind[] = [];
  private dirty: SessionState[] = [];
  private corr: CorrelationBatch = SessionTracker.emptyBatch();
  /** Mask secrets in session records (an error's message, detail and failed query) as they arrive: src/redact. */
  redact = false;
  /** The user's patterns (redaction.patterns), applied to error texts after the built-in rules. */
  patterns: PatternRule[] = [];
  /** Set by the event methods: the ids of the event just seen, as numbers and in ASCII digits. */
  contextId = 0;
  kindId = 0;
  contextDigits: Uint8Array = EMPTY;
  kindDigits: Uint8Array = EMPTY;
  /** The session of the csvlog event being read (beginEvent). */
  private cur: SessionState | null = null;
  /** Where the fast path packs rows (statement texts are hashed from there, see SessionState.resolve). */
  private out: PackWriter | null = null;

  private static emptyBatch(): CorrelationBatch {
    return { sessions: [], logonFailures: [], errors: [], outcomes: [], state: [], ended: [] };
  }

  /** Events from here on come from this server and file, and are packed into `out`. */
  beginFile(server: string, path: string, out: PackWriter | null = null): void {
    this.server = server;
    this.path = path;
    this.out = out;
    this.file++;
  }

  /** Forgets every session and loads the stored state of open sessions (at start, and after a rollback). */
  load(states: readonly StatementState[]): void {
    this.sessions.clear();
    this.sessionCount = 0;
    for (const s of states) {
      const key = Buffer.from(s.session_id, 'utf8');
      const st = this.session(key, 0, key.length, s.session_id);
      st.statementId = s.statement_id;
      st.vxid = s.vxid;
      st.textHash = s.statement_hash;
      st.marker = s.marker;
      st.firstMs = s.first_time_ms;
      st.firstLine = s.first_line;
      st.lastLine = s.last_line;
      st.lastMs = s.last_time_ms;
    }
    this.dirty = [];
    this.corr = SessionTracker.emptyBatch();
    this.usedContexts = [];
    this.usedKinds = [];
    this.batch++;
  }

  /** The session of key bytes [s, e), created when new. */
  private session(key: Uint8Array, s: number, e: number, sessionId?: string): SessionState {
    const h = hashBytes(key, s, e);
    let bucket = this.sessions.get(h);
    if (bucket) {
      for (const st of bucket) if (equalBytes(st.key, key, s, e)) return st;
    } else {
      bucket = [];
      this.sessions.set(h, bucket);
    }
    if (this.sessionCount >= MAX_SESSIONS) this.evictIdle();
    // A copy: `key` is a view of a read buffer that is reused.
    const st = new SessionState(new Uint8Array(key.subarray(s, e)), sessionId ?? Buffer.from(key.buffer, key.byteOffset + s, e - s).toString('utf8'));
    bucket.push(st);
    this.sessionCount++;
    return st;
  }

  private drop(st: SessionState): void {
    const h = hashBytes(st.key, 0, st.key.length);
    const bucket = this.sessions.get(h);
    if (!bucket) return;
    const i = bucket.indexOf(st);
    if (i < 0) return;
    bucket.splice(i, 1);
    if (bucket.length === 0) this.sessions.delete(h);
    this.sessionCount--;
  }

  /** Drops the idler half of the sessions (a server that never logs disconnections). */
  private evictIdle(): void {
    const all: SessionState[] = [];
    for (const b of this.sessions.values()) all.push(...b);
    all.sort((a, b) => a.lastMs - b.lastMs);
    for (const st of all.slice(0, all.length >> 1)) this.drop(st);
  }

  /**
   * A csvlog pgaudit event, by byte positions: the record's fields in `buf` (starts, ends, quote flags: 0
   * plain, 1 quoted, 2 quoted with doubled quotes; `nf` of them). Finds its session; true when the event's
   * context is the session's current one (the same bytes in the same file). Otherwise the caller reads the
   * session start time and calls newContext. Then finishEvent.
   */
  beginEvent(buf: Buffer, fs: Int32Array, fe: Int32Array, fq: Uint8Array, nf: number): boolean {
    const st = this.session(buf, fs[5]!, fe[5]!);
    this.cur = st;
    return st.contextRaw !== null && st.contextFile === this.file && sameContextBytes(st.contextRaw, buf, fs, fe, fq, nf);
  }

  /** The event of beginEvent starts a new context of its session (`sessionStartMs` -1: none). */
  newContext(buf: Buffer, fs: Int32Array, fe: Int32Array, fq: Uint8Array, nf: number, sessionStartMs: number): void {
    const st = this.cur!;
    const ctx = this.makeContext(
      st.sessionId,
      text(buf, fs, fe, fq, nf, 1),
      text(buf, fs, fe, fq, nf, 2),
      intOf(buf, fs, fe, nf, 3),
      buf,
      fs[4]!,
      fe[4]!,
      fq[4]!,
      sessionStartMs < 0 ? null : sessionStartMs,
      nf > 22 && fe[22]! > fs[22]! ? text(buf, fs, fe, fq, nf, 22) : null,
      text(buf, fs, fe, fq, nf, 23),
      intOf(buf, fs, fe, nf, 24),
    );
    this.setContext(st, ctx);
    st.contextRaw = contextBytes(buf, fs, fe, fq, nf);
    st.contextKey = null;
  }

  /** The kind of the event of beginEvent (pgaudit fields in `src`). Sets contextId/kindId and their digits. */
  kindEvent(buf: Buffer, fs: Int32Array, fe: Int32Array, fq: Uint8Array, nf: number, src: Buffer, ps: Int32Array, pe: Int32Array, pq: Uint8Array): void {
    const st = this.cur!;
    if (st.contextBatch !== this.batch) {
      st.contextBatch = this.batch;
      this.usedContexts.push(st.context!);
    }
    this.contextId = st.context!.id;
    this.contextDigits = st.contextDigits;
    // Kind.
    const h = kindHash(buf, fs, fe, fq, nf, src, ps, pe, pq);
    let entry: KindEntry | undefined;
    const bucket = this.kinds.get(h);
    if (bucket) {
      for (let i = 0; i < bucket.length; i++) {
        const k = bucket[i]!;
        if (k.raw !== null && sameKindBytes(k.raw, buf, fs, fe, fq, nf, src, ps, pe, pq)) {
          entry = k;
          break;
        }
      }
    }
    if (!entry) {
      const kind = this.makeKind(
        text(src, ps, pe, pq, 10, 0),
        text(src, ps, pe, pq, 10, 3),
        text(src, ps, pe, pq, 10, 4),
        text(src, ps, pe, pq, 10, 5),
        text(buf, fs, fe, fq, nf, 7),
        text(buf, fs, fe, fq, nf, 11),
      );
      entry = { raw: kindBytes(buf, fs, fe, fq, nf, src, ps, pe, pq), key: null, kind, digits: digitsOf(kind.id), batch: -1 };
      if (bucket) bucket.push(entry);
      else this.kinds.set(h, [entry]);
    }
    if (entry.batch !== this.batch) {
      entry.batch = this.batch;
      this.usedKinds.push(entry.kind);
    }
    this.kindId = entry.kind.id;
    this.kindDigits = entry.digits;
  }

  /**
   * The event of beginEvent, packed: its session's last statement. `[vxidAt, vxidEnd)` and `[textAt, textEnd)`
   * are where the row's vxid and statement are in the packed rows (-1: NULL).
   */
  statementEvent(
    logTimeMs: number,
    line: number,
    statementId: number,
    marker: boolean,
    vxidAt: number,
    vxidEnd: number,
    textAt: number,
    textEnd: number,
  ): void {
    const st = this.cur!;
    if (statementId !== st.statementId || line <= st.lastLine) {
      st.statementId = statementId;
      st.marker = marker;
      st.pending = true;
      st.pendingVxid = vxidAt;
      st.pendingVxidEnd = vxidEnd;
      st.pendingText = textAt;
      st.pendingTextEnd = textEnd;
      st.firstMs = logTimeMs;
      st.firstLine = line;
    }
    st.lastLine = line;
    st.lastMs = logTimeMs;
    if (st.dirtyBatch !== this.batch) {
      st.dirtyBatch = this.batch;
      this.dirty.push(st);
    }
  }

  /** A pgaudit event as a record (jsonlog, and csvlog records the fast path declined). Sets contextId and kindId. */
  auditRecord(r: PgAuditRecord): void {
    const keyBytes = Buffer.from(r.session_id, 'utf8');
    const st = this.session(keyBytes, 0, keyBytes.length, r.session_id);
    const key = JSON.stringify([
      r.user_name,
      r.database_name,
      r.process_id,
      r.client_addr,
      r.client_port,
      r.session_start_ms,
      r.application_name,
      r.backend_type,
      r.leader_pid,
    ]);
    if (st.contextKey !== key || st.contextFile !== this.file) {
      this.setContext(st, this.contextOf(r));
      st.contextKey = key;
      st.contextRaw = null;
    }
    if (st.contextBatch !== this.batch) {
      st.contextBatch = this.batch;
      this.usedContexts.push(st.context!);
    }
    this.contextId = st.context!.id;
    this.contextDigits = st.contextDigits;
    const kindKey = JSON.stringify([r.audit_type, r.class, r.command, r.object_type, r.command_tag, r.error_severity]);
    let entry = this.kindsByKey.get(kindKey);
    if (!entry) {
      const kind = this.makeKind(r.audit_type, r.class, r.command, r.object_type, r.command_tag, r.error_severity);
      entry = { raw: null, key: kindKey, kind, digits: digitsOf(kind.id), batch: -1 };
      this.kindsByKey.set(kindKey, entry);
    }
    if (entry.batch !== this.batch) {
      entry.batch = this.batch;
      this.usedKinds.push(entry.kind);
    }
    this.kindId = entry.kind.id;
    this.kindDigits = entry.digits;
    if (r.statement_id !== st.statementId || r.session_line_num <= st.lastLine) {
      st.pending = false;
      st.statementId = r.statement_id;
      st.vxid = r.virtual_transaction_id;
      st.marker = r.statement === PREVIOUSLY_LOGGED;
      st.textHash = st.marker || r.statement === null ? 0 : textHash(r.statement);
      st.firstMs = r.log_time_ms;
      st.firstLine = r.session_line_num;
    }
    st.lastLine = r.session_line_num;
    st.lastMs = r.log_time_ms;
    if (st.dirtyBatch !== this.batch) {
      st.dirtyBatch = this.batch;
      this.dirty.push(st);
    }
  }

  /** A connection, disconnection, failed login or error record of a session. */
  sessionRecord(r: SessionRecord): void {
    // An error's texts, before anything keeps or hashes them: the failed query is hashed to find the audited
    // statement, whose text the packer redacted the same way. (Connection and logon records hold no statement.)
    if (this.redact && r.kind === 'error') redactSessionRecord(r, this.patterns);
    const c = this.corr;
    if (r.kind === 'connect') {
      c.sessions.push(r);
      return;
    }
    if (r.kind === 'logon_failure') {
      c.logonFailures.push(r);
      return;
    }
    const keyBytes = Buffer.from(r.session_id, 'utf8');
    if (r.kind === 'disconnect') {
      c.sessions.push(r);
      const st = this.findSession(keyBytes);
      if (st) this.drop(st);
      c.ended.push(r.session_id);
      return;
    }
    // An error: the session's last audited statement, if it ran in the error's virtual transaction and its
    // text is the text the server logged with the error.
    const st = this.findSession(keyBytes);
    st?.resolve(this.out);
    let statementId: number | null = null;
    if (
      st &&
      st.statementId >= 0 &&
      st.lastLine < r.session_line_num &&
      r.virtual_transaction_id !== null &&
      st.vxid === r.virtual_transaction_id &&
      (r.query === null || st.marker || textHash(r.query) === st.textHash)
    ) {
      statementId = st.statementId;
      c.outcomes.push({
        session_id: r.session_id,
        statement_id: st.statementId,
        sqlstate: r.sqlstate,
        message: r.message,
        from_ms: st.firstMs,
        to_ms: r.log_time_ms,
        line: r.session_line_num,
        first_line: st.firstLine,
        last_line: st.lastLine,
        last_ms: st.lastMs,
      });
    }
    c.errors.push({ record: r, statementId });
  }

  private findSession(key: Uint8Array): SessionState | undefined {
    const bucket = this.sessions.get(hashBytes(key, 0, key.length));
    return bucket?.find((st) => equalBytes(st.key, key, 0, key.length));
  }

  /** The contexts and kinds the events since the last call use, and what they add to correlation. */
  takeBatch(): { contexts: EventContext[]; kinds: EventKind[]; correlation: CorrelationBatch } {
    const corr = this.corr;
    for (const st of this.dirty) {
      st.resolve(this.out);
      // A session that ended in this batch is not kept.
      if (this.findSession(st.key) !== st) continue;
      corr.state.push({
        session_id: st.sessionId,
        statement_id: st.statementId,
        vxid: st.vxid,
        last_line: st.lastLine,
        statement_hash: st.textHash,
        marker: st.marker,
        first_time_ms: st.firstMs,
        first_line: st.firstLine,
        last_time_ms: st.lastMs,
      });
    }
    const out = { contexts: this.usedContexts, kinds: this.usedKinds, correlation: corr };
    this.usedContexts = [];
    this.usedKinds = [];
    this.dirty = [];
    this.corr = SessionTracker.emptyBatch();
    this.batch++;
    return out;
  }

  private setContext(st: SessionState, ctx: EventContext): void {
    st.context = ctx;
    st.contextDigits = digitsOf(ctx.id);
    st.contextFile = this.file;
    st.contextBatch = -1;
  }

  private contextOf(r: PgAuditRecord): EventContext {
    return this.finishContext({
      id: 0,
      session_id: r.session_id,
      user_name: r.user_name,
      database_name: r.database_name,
      client_addr: r.client_addr,
      client_port: r.client_port,
      application_name: r.application_name,
      backend_type: r.backend_type,
      session_start_ms: r.session_start_ms,
      process_id: r.process_id,
      leader_pid: r.leader_pid,
    });
  }

  private makeContext(
    sessionId: string,
    user: string | null,
    database: string | null,
    pid: number | null,
    buf: Buffer,
    fromS: number,
    fromE: number,
    fromQ: number,
    sessionStart: number | null,
    app: string | null,
    backendType: string | null,
    leaderPid: number | null,
  ): EventContext {
    // connection_from: host:port, [local], or ::1:5432 → address and port (as the packer always split it).
    let addr: string | null = null;
    let port: number | null = null;
    if (fromE > fromS) {
      let colon = -1;
      for (let i = fromE - 1; i > fromS; i--)
        if (buf[i] === 58) {
          colon = i;
          break;
        }
      if (colon > fromS && fromQ !== 2 && isDigits(buf, colon + 1, fromE)) {
        addr = buf.toString('utf8', fromS, colon);
        port = Number(buf.toString('latin1', colon + 1, fromE));
      } else {
        addr = fromQ === 2 ? buf.toString('utf8', fromS, fromE).replaceAll('""', '"') : buf.toString('utf8', fromS, fromE);
      }
    }
    return this.finishContext({
      id: 0,
      session_id: sessionId,
      user_name: user,
      database_name: database,
      client_addr: addr,
      client_port: port,
      application_name: app,
      backend_type: backendType,
      session_start_ms: sessionStart,
      process_id: pid,
      leader_pid: leaderPid,
    });
  }

  private finishContext(c: EventContext): EventContext {
    c.id = tupleId([
      this.server,
      this.path,
      c.session_id,
      c.user_name,
      c.database_name,
      c.client_addr,
      c.client_port,
      c.application_name,
      c.backend_type,
      c.session_start_ms,
      c.process_id,
      c.leader_pid,
    ]);
    return c;
  }

  private makeKind(
    auditType: string | null,
    klass: string | null,
    command: string | null,
    objectType: string | null,
    commandTag: string | null,
    severity: string | null,
  ): EventKind {
    const k: EventKind = { id: 0, audit_type: auditType, class: klass, command, object_type: objectType, command_tag: commandTag, error_severity: severity };
    k.id = tupleId([k.audit_type, k.class, k.command, k.object_type, k.command_tag, k.error_severity]);
    return k;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array, s: number, e: number): boolean {
  if (a.length !== e - s) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[s + i]) return false;
  return true;
}

function isDigits(buf: Uint8Array, s: number, e: number): boolean {
  if (s >= e) return false;
  for (let i = s; i < e; i++) {
    const c = buf[i]!;
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Field i as text: NULL when absent or empty and unquoted; doubled quotes undone. */
function text(buf: Buffer, s: Int32Array, e: Int32Array, q: Uint8Array, n: number, i: number): string | null {
  if (i >= n) return null;
  const a = s[i]!,
    b = e[i]!,
    quoted = q[i]!;
  if (quoted === 0 && a === b) return null;
  const v = buf.toString('utf8', a, b);
  return quoted === 2 ? v.replaceAll('""', '"') : v;
}

function intOf(buf: Buffer, s: Int32Array, e: Int32Array, n: number, i: number): number | null {
  if (i >= n || e[i]! === s[i]!) return null;
  return Number(buf.toString('latin1', s[i], e[i]));
}

/** The context fields' bytes, each as [length (2 bytes), quote flag, bytes]; absent fields have length 0xffff. */
function contextBytes(buf: Buffer, fs: Int32Array, fe: Int32Array, fq: Uint8Array, nf: number): Uint8Array {
  let size = 0;
  for (let f = 0; f < CONTEXT_FIELDS.length; f++) {
    const i = CONTEXT_FIELDS[f]!;
    size += 3 + (i < nf ? fe[i]! - fs[i]! : 0);
  }
  const out = new Uint8Array(size);
  let j = 0;
  for (let f = 0; f < CONTEXT_FIELDS.length; f++) {
    const i = CONTEXT_FIELDS[f]!;
    const len = i < nf ? fe[i]! - fs[i]! : 0xffff;
    out[j++] = len >> 8;
    out[j++] = len & 0xff;
    out[j++] = i < nf ? fq[i]! : 0;
    if (i < nf) for (let k = fs[i]!; k < fe[i]!; k++) out[j++] = buf[k]!;
  }
  return out;
}

function sameContextBytes(raw: Uint8Array, buf: Buffer, fs: Int32Array, fe: Int32Array, fq: Uint8Array, nf: number): boolean {
  let j = 0;
  for (let f = 0; f < CONTEXT_FIELDS.length; f++) {
    const i = CONTEXT_FIELDS[f]!;
    if (i >= nf) {
      if (raw[j] !== 0xff || raw[j + 1] !== 0xff) return false;
      j += 3;
      continue;
    }
    const s = fs[i]!,
      e = fe[i]!,
      len = e - s;
    if (raw[j] !== len >> 8 || raw[j + 1] !== (len & 0xff) || raw[j + 2] !== fq[i]) return false;
    j += 3;
    for (let k = s; k < e; k++) if (raw[j++] !== buf[k]) return false;
  }
  return j === raw.length;
}

/** Kind fields: pgaudit AUDIT_TYPE (0), CLASS (3), COMMAND (4), OBJECT_TYPE (5); csvlog command_tag (7), error_severity (11). */
const KIND_PGAUDIT = [0, 3, 4, 5];
const KIND_CSVLOG = [7, 11];

function kindHash(
  buf: Buffer,
  fs: Int32Array,
  fe: Int32Array,
  fq: Uint8Array,
  nf: number,
  src: Buffer,
  ps: Int32Array,
  pe: Int32Array,
  pq: Uint8Array,
): number {
  let h = 0x811c9dc5;
  for (let f = 0; f < 4; f++) {
    const i = KIND_PGAUDIT[f]!;
    for (let k = ps[i]!, e = pe[i]!; k < e; k++) h = Math.imul(h ^ src[k]!, 0x01000193);
    h = Math.imul(h ^ (pq[i]! + 1), 0x01000193);
  }
  for (let f = 0; f < 2; f++) {
    const i = KIND_CSVLOG[f]!;
    if (i < nf) for (let k = fs[i]!, e = fe[i]!; k < e; k++) h = Math.imul(h ^ buf[k]!, 0x01000193);
    h = Math.imul(h ^ (i < nf ? fq[i]! + 1 : 9), 0x01000193);
  }
  return h >>> 0;
}

/** The kind fields' bytes, each as [length (2 bytes), quote flag, bytes]; absent fields have length 0xffff. */
function kindBytes(
  buf: Buffer,
  fs: Int32Array,
  fe: Int32Array,
  fq: Uint8Array,
  nf: number,
  src: Buffer,
  ps: Int32Array,
  pe: Int32Array,
  pq: Uint8Array,
): Uint8Array {
  const parts: number[] = [];
  const field = (from: Uint8Array, s: number, e: number, q: number) => {
    const len = e - s;
    parts.push(len >> 8, len & 0xff, q);
    for (let k = s; k < e; k++) parts.push(from[k]!);
  };
  for (const i of KIND_PGAUDIT) field(src, ps[i]!, pe[i]!, pq[i]!);
  for (const i of KIND_CSVLOG) {
    if (i < nf) field(buf, fs[i]!, fe[i]!, fq[i]!);
    else parts.push(0xff, 0xff, 0);
  }
  return Uint8Array.from(parts);
}

function sameKindBytes(
  raw: Uint8Array,
  buf: Buffer,
  fs: Int32Array,
  fe: Int32Array,
  fq: Uint8Array,
  nf: number,
  src: Buffer,
  ps: Int32Array,
  pe: Int32Array,
  pq: Uint8Array,
): boolean {
  let j = 0;
  for (let f = 0; f < 4; f++) {
    const i = KIND_PGAUDIT[f]!;
    const s = ps[i]!,
      e = pe[i]!,
      len = e - s;
    if (raw[j] !== len >> 8 || raw[j + 1] !== (len & 0xff) || raw[j + 2] !== pq[i]) return false;
    j += 3;
    for (let k = s; k < e; k++) if (raw[j++] !== src[k]) return false;
  }
  for (let f = 0; f < 2; f++) {
    const i = KIND_CSVLOG[f]!;
    if (i >= nf) {
      if (raw[j] !== 0xff || raw[j + 1] !== 0xff) return false;
      j += 3;
      continue;
    }
    const s = fs[i]!,
      e = fe[i]!,
      len = e - s;
    if (raw[j] !== len >> 8 || raw[j + 1] !== (len & 0xff) || raw[j + 2] !== fq[i]) return false;
    j += 3;
    for (let k = s; k < e; k++) if (raw[j++] !== buf[k]) return false;
  }
  return j === raw.length;
}
