import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  csvlogRecord,
  dimensionsOf,
  GS,
  packCsvlog,
  PackWriter,
  scanCsvRecord,
  SessionTracker,
  TimestampResolver,
  unpackRows,
  type CsvlogPackState,
  type Dimensions,
  type PgAuditRecord,
} from '../../src/parse/index.js';
import { CsvlogGenerator, csvOf, type GenRecord } from '../helpers/csvlog-gen.js';

/**
 * The fast csvlog packer (bytes → packed rows) must produce exactly what the string path produces
 * (scanCsvRecord + csvlogRecord + PackWriter.record), which the other parse tests check field by field.
 */
function generated(seed: number, n: number): { text: string; records: GenRecord[] } {
  const records = new CsvlogGenerator({ seed, multilineShare: 0.3 }).records(n).filter((r) => !r.csv.includes(String.fromCharCode(GS))); // the fast path declines chunks holding GS
  return { text: csvOf(records), records };
}

function fastPack(text: string, storeMessage: boolean): { bytes: Buffer; count: number; bad: string[]; consumed: number; total: number } {
  const buf = Buffer.from(text, 'utf8');
  const out = new PackWriter();
  const bad: string[] = [];
  const tracker = new SessionTracker();
  tracker.beginFile('', '', out);
  const st: CsvlogPackState = {
    columns: 0,
    times: new TimestampResolver(),
    storeMessage,
    out,
    tracker,
    onBad: (s, e, reason) => bad.push(`${s}-${e}: ${reason}`),
    onLarge: () => bad.push('large'),
    onMarker: () => {},
    events: 0,
    minTimeMs: 0,
    maxTimeMs: 0,
  };
  const consumed = packCsvlog(buf, 0, buf.length, st);
  const { bytes, count } = out.take();
  return { bytes: Buffer.from(bytes), count, bad, consumed, total: buf.length };
}

function referencePack(text: string, storeMessage: boolean): { bytes: Buffer; records: PgAuditRecord[]; dims: Dimensions } {
  const out = new PackWriter();
  const tracker = new SessionTracker();
  tracker.beginFile('', '', out);
  const times = new TimestampResolver();
  const records: PgAuditRecord[] = [];
  let pos = 0;
  for (;;) {
    const rec = scanCsvRecord(text, pos);
    if (!rec) break;
    const outcome = csvlogRecord(rec.fields, rec.error, 26, times);
    assert.notEqual(outcome.kind, 'bad', `generated record at ${pos} is valid`);
    if (outcome.kind === 'audit') {
      const r = storeMessage ? outcome.record : { ...outcome.record, message: '' };
      records.push(outcome.record);
      tracker.auditRecord(r);
      out.record(r, tracker.contextId, tracker.kindId);
    }
    pos = rec.next;
  }
  assert.equal(pos, text.length);
  const { contexts, kinds } = tracker.takeBatch();
  return { bytes: Buffer.from(out.take().bytes), records, dims: dimensionsOf(contexts, kinds) };
}

describe('packed rows', () => {
  for (const storeMessage of [true, false]) {
    test(`the fast csvlog packer equals the string path byte for byte (message ${storeMessage ? 'kept' : 'dropped'})`, () => {
      for (const seed of [1, 2, 3]) {
        const { text } = generated(seed, 3000);
        const fast = fastPack(text, storeMessage);
        const ref = referencePack(text, storeMessage);
        assert.deepEqual(fast.bad, []);
        assert.equal(fast.consumed, fast.total, 'every complete record consumed');
        assert.equal(fast.count, ref.records.length);
        assert.ok(fast.bytes.equals(ref.bytes), `seed ${seed}: packed bytes differ`);
      }
    });
  }

  test('unpackRows gives back every field', () => {
    const { text } = generated(4, 500);
    const ref = referencePack(text, true);
    const rows = unpackRows(ref.bytes, ref.dims);
    assert.equal(rows.length, ref.records.length);
    rows.forEach((row, i) => {
      const r = ref.records[i]!;
      assert.deepEqual(
        row,
        {
          log_time_ms: r.log_time_ms,
          user_name: r.user_name,
          database_name: r.database_name,
          client_addr: r.client_addr,
          client_port: r.client_port,
          message: r.message,
          application_name: r.application_name,
          session_id: r.session_id,
          session_line_num: r.session_line_num,
          process_id: r.process_id,
          virtual_transaction_id: r.virtual_transaction_id,
          transaction_id: r.transaction_id,
          command_tag: r.command_tag,
          session_start_ms: r.session_start_ms,
          error_severity: r.error_severity,
          backend_type: r.backend_type,
          leader_pid: r.leader_pid,
          query_id: r.query_id,
          audit_type: r.audit_type,
          statement_id: r.statement_id,
          substatement_id: r.substatement_id,
          class: r.class,
          command: r.command,
          object_type: r.object_type,
          object_name: r.object_name,
          statement: r.statement,
          parameter: r.parameter,
          rows: r.rows,
        },
        `row ${i}`,
      );
    });
  });

  test('a record cut in the middle is left for later, whole', () => {
    const { text } = generated(5, 200);
    const full = Buffer.from(text, 'utf8');
    for (const cut of [1, 17, Math.floor(full.length / 2), full.length - 2]) {
      const part = full.subarray(0, cut);
      const lastNl = part.lastIndexOf(10);
      if (lastNl < 0) continue;
      const fast = fastPack(part.subarray(0, lastNl + 1).toString('utf8'), true);
      // What was consumed is exactly the complete records before the cut, packed as the string path does.
      const boundary = full.subarray(0, fast.consumed).toString('utf8');
      assert.ok(text.startsWith(boundary));
      assert.ok(fast.bytes.equals(referencePack(boundary, true).bytes), `cut at ${cut}`);
      assert.ok(full.length - fast.consumed > 0 && text.slice(Buffer.byteLength(boundary)).length > 0);
    }
  });
});

describe('session records (correlation)', () => {
  test('the fast path builds the connection, disconnection, failed-login and error records the string path builds', async () => {
    const { mkdtempSync, readdirSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { generateCsvlog } = await import('../../bench/generate.js');
    const dir = mkdtempSync(join(tmpdir(), 'auditship-sessions-'));
    try {
      await generateCsvlog(dir, { events: 20_000, seed: 11, fileBytes: 64 << 20 });
      const text = readdirSync(dir)
        .sort()
        .map((f) => readFileSync(join(dir, f), 'utf8'))
        .join('');
      const fast: unknown[] = [];
      const buf = Buffer.from(text, 'utf8');
      const tracker = new SessionTracker();
      const out = new PackWriter();
      tracker.beginFile('', '', out);
      const st: CsvlogPackState = {
        columns: 0,
        times: new TimestampResolver(),
        storeMessage: false,
        out,
        tracker,
        onBad: (s, e, reason) => assert.fail(`${s}-${e}: ${reason}`),
        onLarge: () => assert.fail('large'),
        onMarker: () => {},
        onSessionRecord: (r) => fast.push(r),
        events: 0,
        minTimeMs: 0,
        maxTimeMs: 0,
      };
      assert.equal(packCsvlog(buf, 0, buf.length, st), buf.length);
      const slow: unknown[] = [];
      const times = new TimestampResolver();
      for (let pos = 0; ;) {
        const rec = scanCsvRecord(text, pos);
        if (!rec) break;
        const o = csvlogRecord(rec.fields, rec.error, 26, times);
        if (o.kind === 'session') slow.push(o.record);
        pos = rec.next;
      }
      const kinds = new Set(slow.map((r) => (r as { kind: string }).kind));
      assert.deepEqual([...kinds].sort(), ['connect', 'disconnect', 'error', 'logon_failure'], 'the data has every kind');
      assert.deepEqual(fast, slow);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
