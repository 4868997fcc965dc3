/**
 * An in-memory stand-in for AuditQueries (typed as the UI's UiQueries, no mocking library): fixture events
 * filtered, paged and counted the way the real queries answer, plus a record of the calls. For the server
 * tests and the front-end tests that need data the real store cannot hold (hostile markup in every field).
 */
import {
  QueryInputError,
  type EventDetail,
  type EventFilter,
  type EventRow,
  type EventWithSession,
  type Facets,
  type LogonFailureSummary,
  type SessionInfo,
  type TimeSeries,
  type TopEntry,
} from '../../src/query/index.js';
import type { UiQueries } from '../../src/ui/index.js';

export interface FakeQueries extends UiQueries {
  calls: { method: string; args: unknown[] }[];
  /** When set, every method throws it (a failing store). */
  failWith: Error | null;
}

export function fixtureEvent(i: number, over: Partial<EventDetail> = {}): EventDetail {
  const users = ['alice', 'bob', 'carol'];
  const classes = ['READ', 'WRITE', 'DDL'];
  const commands = { READ: 'SELECT', WRITE: 'INSERT', DDL: 'CREATE TABLE' } as Record<string, string>;
  const cls = classes[i % 3]!;
  const session = `s${Math.floor(i / 10)}`;
  return {
    id: `ev-${i}`,
    log_time: new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString(),
    server: 'pg-main',
    session_id: session,
    session_line_num: (i % 10) + 2,
    user_name: users[i % 3]!,
    database_name: 'appdb',
    client_addr: '10.0.0.5',
    application_name: 'psql',
    audit_type: 'SESSION',
    class: cls,
    command: commands[cls]!,
    object_type: 'TABLE',
    object_name: `public.t${i % 4}`,
    outcome: i % 7 === 0 ? 'error' : 'success',
    sqlstate: i % 7 === 0 ? '22012' : null,
    statement: `SELECT ${i} FROM public.t${i % 4}`,
    parameter: '<none>',
    rows: null,
    statement_id: i,
    substatement_id: 1,
    virtual_transaction_id: `3/${i}`,
    transaction_id: 0,
    process_id: 4242,
    client_port: 5555,
    backend_type: 'client backend',
    file_name: 'postgresql.csv',
    error_message: i % 7 === 0 ? 'division by zero' : null,
    ...over,
  };
}

const ms = (iso: string) => Date.parse(iso);

function matches(e: EventDetail, f: EventFilter): boolean {
  const t = ms(e.log_time);
  const inList = (v: string | null, list?: string[]) => !list || (v !== null && list.includes(v));
  return (
    (f.from === undefined || t >= f.from) &&
    (f.to === undefined || t < f.to) &&
    inList(e.server, f.server) &&
    inList(e.user_name, f.user) &&
    inList(e.database_name, f.database) &&
    inList(e.class, f.class) &&
    inList(e.command, f.command) &&
    (!f.object || (e.object_name ?? '').toLowerCase().includes(f.object.toLowerCase())) &&
    (!f.outcome || e.outcome === f.outcome) &&
    (!f.text || (e.statement ?? '').toLowerCase().includes(f.text.toLowerCase()))
  );
}

function rowOf(e: EventDetail): EventRow {
  const {
    statement,
    parameter,
    rows,
    statement_id,
    substatement_id,
    virtual_transaction_id,
    transaction_id,
    process_id,
    client_port,
    backend_type,
    file_name,
    error_message,
    ...row
  } = e;
  void parameter;
  void rows;
  void statement_id;
  void substatement_id;
  void virtual_transaction_id;
  void transaction_id;
  void process_id;
  void client_port;
  void backend_type;
  void file_name;
  void error_message;
  return { ...row, statement_preview: statement === null ? null : statement.slice(0, 240) };
}

/** A fake over `events` (any order; served newest first). */
export function fakeQueries(events: EventDetail[], logon: LogonFailureSummary = { total: 0, bucket_ms: 3600e3, points: [], top: [] }): FakeQueries {
  const sorted = [...events].sort((a, b) => ms(b.log_time) - ms(a.log_time) || (a.id < b.id ? 1 : -1));
  const fake: FakeQueries = {
    calls: [],
    failWith: null,
    async facets(): Promise<Facets> {
      record('facets', []);
      const distinct = (pick: (e: EventDetail) => string | null) => [...new Set(sorted.map(pick).filter((v): v is string => v !== null))].sort();
      return {
        servers: distinct((e) => e.server),
        users: distinct((e) => e.user_name),
        databases: distinct((e) => e.database_name),
        classes: distinct((e) => e.class),
        commands: distinct((e) => e.command),
        min_time: sorted.at(-1)?.log_time ?? null,
        max_time: sorted[0]?.log_time ?? null,
        events: sorted.length,
      };
    },
    async listEvents(filter, page = {}) {
      record('listEvents', [filter, page]);
      const all = sorted.filter((e) => matches(e, filter));
      let start = 0;
      if (page.after) {
        const at = all.findIndex((e) => e.id === page.after);
        if (at < 0) throw new QueryInputError('malformed event id or cursor');
        start = at + 1;
      }
      const limit = page.limit ?? 50;
      const rows = all.slice(start, start + limit).map(rowOf);
      return { rows, next: start + limit < all.length ? rows.at(-1)!.id : null };
    },
    async getEvent(id): Promise<EventWithSession | null> {
      record('getEvent', [id]);
      const e = sorted.find((x) => x.id === id);
      if (!e) return null;
      const same = sorted.filter((x) => x.server === e.server && x.session_id === e.session_id).reverse();
      const session: SessionInfo = {
        server: e.server,
        session_id: e.session_id,
        process_id: e.process_id,
        user_name: e.user_name,
        database_name: e.database_name,
        client_addr: e.client_addr,
        client_port: e.client_port,
        application_name: e.application_name,
        session_start: same[0]!.log_time,
        connected_at: same[0]!.log_time,
        disconnected_at: same.at(-1)!.log_time,
        duration_ms: ms(same.at(-1)!.log_time) - ms(same[0]!.log_time),
      };
      return {
        event: e,
        session,
        truncated: false,
        timeline: [
          { log_time: same[0]!.log_time, session_line_num: 1, kind: 'connect', label: `connected (${e.application_name ?? ''})` },
          ...same.map((x) => ({
            log_time: x.log_time,
            session_line_num: x.session_line_num,
            kind: 'audit' as const,
            id: x.id,
            class: x.class,
            command: x.command,
            object_name: x.object_name,
            outcome: x.outcome,
            sqlstate: x.sqlstate,
            label: [x.command, x.object_name].filter(Boolean).join(' '),
          })),
          { log_time: same.at(-1)!.log_time, session_line_num: 999, kind: 'disconnect', label: 'disconnected' },
        ],
      };
    },
    async eventsOverTime(filter): Promise<TimeSeries> {
      record('eventsOverTime', [filter]);
      const bucket = 3600e3;
      const counts = new Map<string, { t: number; class: string; n: number }>();
      for (const e of sorted.filter((x) => matches(x, filter))) {
        const t = Math.floor(ms(e.log_time) / bucket) * bucket;
        const key = `${t}|${e.class}`;
        const p = counts.get(key) ?? { t, class: e.class ?? '?', n: 0 };
        p.n++;
        counts.set(key, p);
      }
      return { bucket_ms: bucket, points: [...counts.values()].sort((a, b) => a.t - b.t || a.class.localeCompare(b.class)) };
    },
    async topUsers(filter, n = 10) {
      record('topUsers', [filter, n]);
      return top(
        sorted.filter((e) => matches(e, filter)).map((e) => e.user_name),
        n,
      );
    },
    async topObjects(filter, n = 10) {
      record('topObjects', [filter, n]);
      return top(
        sorted.filter((e) => matches(e, filter)).map((e) => e.object_name),
        n,
      );
    },
    async logonFailures(filter) {
      record('logonFailures', [filter]);
      return logon;
    },
  };
  function record(method: string, args: unknown[]): void {
    fake.calls.push({ method, args });
    if (fake.failWith) throw fake.failWith;
  }
  return fake;
}

function top(values: (string | null)[], n: number): TopEntry[] {
  const counts = new Map<string, number>();
  for (const v of values) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts]
    .map(([key, c]) => ({ key, n: c }))
    .sort((a, b) => b.n - a.n || a.key.localeCompare(b.key))
    .slice(0, n);
}
