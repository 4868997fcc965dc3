import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pgauditDocument, pgauditDocumentFromValues } from '../../src/sinks/elasticsearch/documents.js';
import { PACKED_COLUMNS } from '../../src/parse/packed.js';
import { spawnEsServer, requestJson, type SpawnedEsServer } from '../es-server/client.js';
import { csvOf, CsvlogGenerator } from '../helpers/csvlog-gen.js';
import { ROOT, queryDb, runCli, scratchDir, spawnCli } from '../helpers/ingest-cli.js';
import { createTestDatabase } from '../helpers/pg-db.js';
import { installAudit } from '../../src/sources/pg-audit-table/install.js';

/**
 * The elasticsearch sink against the test server (test/es-server, its own process — no real cluster runs
 * here), and against real clusters when AUDITSHIP_TEST_ES_URL / AUDITSHIP_TEST_OPENSEARCH_URL are set:
 * real pgaudit logs delivered exactly once through injected 429s, 503s and connection resets; SIGKILL and
 * a rerun; mapping conflicts dead-lettered without blocking; auth; flavor detection.
 */

const { dir, cleanup } = scratchDir('elasticsearch');
after(cleanup);
const REAL_LOGS = join(ROOT, 'examples', 'pgaudit-logs');
let seq = 0;

interface Setup {
  config: string;
  db: string;
}

function config(url: string, es: Record<string, unknown> = {}, opts: { logs?: string; storeEvents?: boolean; server?: string } = {}): Setup {
  const n = seq++;
  const db = join(dir, `es-${n}.duckdb`);
  const lines = [
    'pipelines:',
    '  logs:',
    '    source:',
    '      type: pg_logs',
    `      path: ${JSON.stringify(opts.logs ?? REAL_LOGS)}`,
    `      server: ${opts.server ?? 'db1'}`,
    '    sinks:',
    '      - type: elasticsearch',
    `        url: ${JSON.stringify(url)}`,
  ];
  for (const [k, v] of Object.entries(es)) lines.push(`        ${k}: ${JSON.stringify(v)}`);
  lines.push('      - type: duckdb', `        path: ${db}`);
  if (opts.storeEvents === false) lines.push('        store_events: false');
  const file = join(dir, `es-${n}.yaml`);
  writeFileSync(file, lines.join('\n') + '\n');
  return { config: file, db };
}

interface Summary {
  stored: number;
  ok: boolean;
  search?: { created: number; duplicates: number; deadLettered: number; retried: number }[];
}

async function run(s: Setup): Promise<Summary> {
  const r = await runCli(['run', '--config', s.config, '--json']);
  assert.equal(r.code, 0, `run failed: ${r.stderr.slice(-3000)}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Summary[] }).pipelines[0]!;
}

async function docCount(url: string, pattern = 'auditship-pgaudit-*'): Promise<number> {
  await requestJson(url, 'POST', `/${pattern}/_refresh`);
  const r = await requestJson(url, 'GET', `/${pattern}/_count`);
  return (r.body as { count: number }).count;
}

const REAL_EVENTS = 121; // examples/pgaudit-logs: one server's csvlog and its jsonlog twin (read once)

describe('elasticsearch sink (test server)', () => {
  let es: SpawnedEsServer;
  before(async () => {
    es = await spawnEsServer({ flavor: 'elasticsearch' });
  });
  after(async () => {
    await es?.stop();
  });

  test('documents: the fast JSON writer gives exactly the reference document', () => {
    const values = PACKED_COLUMNS.map(
      (c) =>
        (
          ({
            log_time_ms: 1714564800123,
            user_name: 'alice "a"',
            database_name: 'app',
            client_addr: '10.0.0.7',
            client_port: 5432,
            message: null,
            application_name: 'psql\tx',
            session_id: '6632b2c0.1a2b',
            session_line_num: 7,
            process_id: 4242,
            virtual_transaction_id: '3/17',
            transaction_id: 0,
            command_tag: 'SELECT',
            session_start_ms: 1714564700000,
            error_severity: 'LOG',
            backend_type: 'client backend',
            leader_pid: null,
            query_id: '-42',
            audit_type: 'SESSION',
            statement_id: 3,
            substatement_id: 1,
            class: 'READ',
            command: 'SELECT',
            object_type: null,
            object_name: null,
            statement: 'select \'é\' as "x"\n  from t',
            parameter: '<none>',
            rows: 1,
          }) as Record<string, string | number | null>
        )[c] ?? null,
    );
    const names = { prefix: 'auditship-pgaudit', period: 'daily' as const };
    const fast = pgauditDocumentFromValues('"db1"', 'db1', values, names);
    const ref = pgauditDocument('db1', Object.fromEntries(PACKED_COLUMNS.map((c, i) => [c, values[i]])) as never, names);
    assert.deepEqual(JSON.parse(fast.source), JSON.parse(ref.source));
    assert.equal(fast.id, ref.id);
    assert.equal(fast.index, 'auditship-pgaudit-2024.05.01');
  });

  test('real pgaudit logs through 429s, 503s, item-level 429s and a connection reset after the server applied the batch: every event exactly once', async () => {
    await es.reset();
    await es.faults({ bulk429: 2, bulk503: 1, item429Every: 7, resetNext: 1, resetAfterApply: true });
    const s = config(es.url, { flush_docs: 20, max_retries: 10 });
    const first = await run(s);
    assert.equal(first.stored, REAL_EVENTS);
    assert.equal(await docCount(es.url), REAL_EVENTS);
    const delivered = first.search![0]!;
    assert.equal(delivered.created + delivered.duplicates, REAL_EVENTS, 'every document acknowledged once: created, or found there after the reset');
    assert.ok(delivered.duplicates > 0, 'the reset batch was applied before the socket broke: its re-send meets 409');
    assert.ok(delivered.retried > 0);
    // The template's mapping is in force: strict, ECS names.
    const hit = (await requestJson(es.url, 'POST', '/auditship-pgaudit-*/_search', { size: 1, query: { term: { 'event.action': 'select' } } })).body as {
      hits: { hits: { _source: Record<string, unknown> }[] };
    };
    const doc = hit.hits.hits[0]!._source as { user: { name: string }; service: { name: string }; postgresql: { audit: { statement: string } } };
    assert.equal(doc.service.name, 'db1');
    assert.ok(doc.user.name && doc.postgresql.audit.statement);
    // A fresh DuckDB (a new machine, a lost state file): everything is sent again, and nothing is duplicated.
    await es.faults({ bulk429: 0, bulk503: 0, item429Every: 0, resetNext: 0 });
    const again = await run(config(es.url, { flush_docs: 50 }));
    assert.deepEqual([again.search![0]!.created, again.search![0]!.duplicates], [0, REAL_EVENTS]);
    assert.equal(await docCount(es.url), REAL_EVENTS);
  });

  test('index names come from the event time, so a re-send lands in the same index across day boundaries', async () => {
    await es.reset();
    const logs = join(dir, 'midnight');
    mkdirSync(logs, { recursive: true });
    const gen = new CsvlogGenerator({ seed: 5, startMs: Date.UTC(2024, 4, 1, 23, 59, 59, 700), otherShare: 0 }); // ~1.5 ms apart: midnight falls inside
    writeFileSync(join(logs, 'postgresql-2024-05-01_235959.csv'), csvOf(gen.records(400)));
    const s = config(es.url, {}, { logs, storeEvents: false });
    assert.equal((await run(s)).search![0]!.created, 400);
    const indices = (await requestJson(es.url, 'GET', '/_cat/indices?format=json')).body as { index: string }[];
    assert.deepEqual(indices.map((i) => i.index).sort(), ['auditship-pgaudit-2024.05.01', 'auditship-pgaudit-2024.05.02']);
    const r = await run(config(es.url, {}, { logs, storeEvents: false }));
    assert.deepEqual([r.search![0]!.created, r.search![0]!.duplicates], [0, 400]);
  });

  test('SIGKILL while delivering, then a rerun: every event exactly once, nothing checkpointed past an unacknowledged document', async () => {
    await es.reset();
    const logs = join(dir, 'kill');
    mkdirSync(logs, { recursive: true });
    const gen = new CsvlogGenerator({ seed: 9, otherShare: 0.02 });
    const records = gen.records(30_000);
    writeFileSync(join(logs, 'postgresql-2024-05-01_120000.csv'), csvOf(records.slice(0, 15_000)));
    writeFileSync(join(logs, 'postgresql-2024-05-01_130000.csv'), csvOf(records.slice(15_000)));
    await es.faults({ delayMs: 150 });
    const s = config(es.url, { flush_docs: 1000, concurrency: 2 }, { logs });
    for (let i = 0; i < 3; i++) {
      const child = spawnCli(['run', '--config', s.config, '--quiet']);
      await sleep(900 + i * 400);
      child.kill('SIGKILL');
      await child.result;
    }
    await es.faults({ delayMs: 0 });
    const last = await run(s);
    assert.ok(last.ok);
    const [stored] = await queryDb(s.db, 'SELECT count(*)::INTEGER AS n, count(DISTINCT (session_id, session_line_num))::INTEGER AS d FROM audit_events');
    assert.equal(stored!['n'], stored!['d']);
    const events = Number(stored!['n']);
    assert.ok(events > 29_000, `most records are audit events (${events})`);
    assert.equal(await docCount(es.url), events, 'the cluster holds each event once');
  });

  test('a mapping conflict: those documents go to es_dead_letters with the reason, the others are delivered', async () => {
    await es.reset();
    // Someone's higher-priority template maps object_name as a number: documents naming an object are refused.
    const tpl = await requestJson(es.url, 'PUT', '/_index_template/conflict', {
      index_patterns: ['auditship-pgaudit-*'],
      priority: 500,
      template: { mappings: { properties: { postgresql: { properties: { audit: { properties: { object_name: { type: 'long' } } } } } } } },
    });
    assert.equal(tpl.status, 200);
    const s = config(es.url);
    const r = await run(s);
    const dead = await queryDb(s.db, 'SELECT doc_id, status, reason, document FROM es_dead_letters');
    assert.ok(dead.length > 0 && dead.length < REAL_EVENTS, `some documents refused (${dead.length})`);
    assert.equal(r.search![0]!.deadLettered, dead.length);
    assert.equal(r.search![0]!.created, REAL_EVENTS - dead.length);
    for (const d of dead) {
      assert.equal(d['status'], 400);
      assert.match(String(d['reason']), /parsing_exception/);
      assert.ok(JSON.parse(String(d['document'])).postgresql.audit.object_name);
    }
    assert.equal(r.stored, REAL_EVENTS, 'the run went on and checkpointed everything');
    await requestJson(es.url, 'DELETE', '/_index_template/conflict');
  });
});

describe('elasticsearch sink: auth, flavors, clear failures', () => {
  test('basic, API key and bearer auth; a wrong password is one line, never echoed; a read-only user is refused', async () => {
    const es = await spawnEsServer({
      flavor: 'elasticsearch',
      auth: {
        users: [
          { username: 'ship', password: 's3cret' },
          { username: 'reader', password: 'r', readOnly: true },
        ],
        apiKeys: [{ id: 'k1', key: 'kkk' }],
        bearerTokens: [{ token: 'tok' }],
      },
    });
    try {
      assert.equal((await run(config(es.url, { username: 'ship', password: 's3cret' }, { storeEvents: false }))).search![0]!.created, REAL_EVENTS);
      await es.reset();
      assert.equal((await run(config(es.url, { api_key: Buffer.from('k1:kkk').toString('base64') }, { storeEvents: false }))).search![0]!.created, REAL_EVENTS);
      await es.reset();
      assert.equal((await run(config(es.url, { bearer_token: 'tok' }, { storeEvents: false }))).search![0]!.created, REAL_EVENTS);
      const bad = await runCli(['run', '--config', config(es.url, { username: 'ship', password: 'wrong-pw-123' }).config]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /refused the credentials \(401\)/);
      assert.doesNotMatch(bad.stderr, /wrong-pw-123/);
      const ro = await runCli(['run', '--config', config(es.url, { username: 'reader', password: 'r' }).config]);
      assert.equal(ro.code, 1);
      assert.match(ro.stderr, /403/);
      // Without the template step, the privilege check at start says what is missing (before any bulk).
      const ro2 = await runCli(['run', '--config', config(es.url, { username: 'reader', password: 'r', manage_template: false }).config]);
      assert.equal(ro2.code, 1);
      assert.match(ro2.stderr, /the user may not write auditship-pgaudit-\* .*missing: create_doc/);
    } finally {
      await es.stop();
    }
  });

  test('a role made for events only (create_doc, create_index): events are shipped, correlation is not, and a warning names what to grant', async () => {
    const es = await spawnEsServer({ flavor: 'elasticsearch', auth: { users: [{ username: 'ingest', password: 'i', createOnly: true }] } });
    try {
      const s = config(es.url, { username: 'ingest', password: 'i' }, { storeEvents: false });
      const r = await runCli(['run', '--config', s.config, '--json']);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      const summary = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pipelines: Summary[] }).pipelines[0]!;
      assert.equal(summary.search![0]!.created, REAL_EVENTS);
      assert.equal(summary.search![0]!.deadLettered, 0, 'nothing sent that the role may not write');
      assert.match(r.stderr, /Sessions, failed logins and statement outcomes are not sent/);
      assert.match(r.stderr, /index on auditship-pgaudit-\*/);
      // Counted through the test API (the user of this test may not read): events only, no other index.
      const stats = (await requestJson(es.url, 'GET', '/_test/stats')).body as { indices: Record<string, number> };
      const byPrefix = (p: string) =>
        Object.entries(stats.indices)
          .filter(([name]) => name.startsWith(p))
          .reduce((n, [, c]) => n + c, 0);
      assert.equal(byPrefix('auditship-pgaudit-'), REAL_EVENTS);
      assert.deepEqual(
        Object.keys(stats.indices).filter((name) => !name.startsWith('auditship-pgaudit-')),
        [],
        'no sessions, failed logins or outcomes indices',
      );
    } finally {
      await es.stop();
    }
  });

  test('TLS: a self-signed cluster certificate is refused with one line naming ca_file; ca_file and insecure each make it work', async () => {
    const es = await spawnEsServer({ flavor: 'elasticsearch' });
    const tls = join(dir, 'tls');
    mkdirSync(tls, { recursive: true });
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(tls, 'key.pem'),
        '-out',
        join(tls, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(made.status, 0, made.stderr);
    // An HTTPS front for the test server (a TLS-terminating proxy, as in front of many clusters).
    const target = new URL(es.url);
    const front = https.createServer({ key: readFileSync(join(tls, 'key.pem')), cert: readFileSync(join(tls, 'cert.pem')) }, (req, res) => {
      const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(front.address() as { port: number }).port}`;
    try {
      const refused = await runCli(['run', '--config', config(url).config]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /TLS to https:\/\/127\.0\.0\.1:\d+ failed: .*set ca_file/);
      assert.equal((await run(config(url, { ca_file: join(tls, 'cert.pem') }, { storeEvents: false }))).search![0]!.created, REAL_EVENTS);
      await es.reset();
      assert.equal((await run(config(url, { insecure: true }, { storeEvents: false }))).search![0]!.created, REAL_EVENTS);
    } finally {
      front.close();
      await es.stop();
    }
  });

  test('OpenSearch is detected; a flavor that does not match is one clear line; nothing listening is one clear line', async () => {
    const os = await spawnEsServer({ flavor: 'opensearch' });
    try {
      assert.equal((await run(config(os.url, {}, { storeEvents: false }))).search![0]!.created, REAL_EVENTS);
      const wrong = await runCli(['run', '--config', config(os.url, { flavor: 'elasticsearch' }).config]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /is opensearch 2\.\d+\.\d+, but flavor is set to elasticsearch/);
    } finally {
      await os.stop();
    }
    const down = await runCli(['run', '--config', config('http://127.0.0.1:9').config]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot connect to http:\/\/127\.0\.0\.1:9: connection refused/);
    assert.doesNotMatch(down.stderr, /\n\s+at /);
  });
});

describe('elasticsearch sink: application events (sql_outbox on PostgreSQL)', () => {
  test('outbox rows reach the cluster once, before they are marked sent; a re-sent row is a 409; a mapping conflict is dead-lettered and the row still marked', async () => {
    const es = await spawnEsServer({ flavor: 'opensearch' });
    const pg = await createTestDatabase('es_outbox');
    try {
      await pg.client.query(`CREATE TABLE audit_logs (id bigint PRIMARY KEY, is_sent boolean DEFAULT false, message jsonb, created_at timestamptz)`);
      await pg.client.query(
        `INSERT INTO audit_logs SELECT g, false, jsonb_build_object('audit_event', jsonb_build_object('date_time', '2024-05-01T12:00:00Z', 'operation', 'READ', 'target', jsonb_build_object('id', g::text))), now() FROM generate_series(1, 300) g`,
      );
      // Row 301's target is text where the others' is an object: the cluster refuses it for good.
      await pg.client.query(
        `INSERT INTO audit_logs VALUES (301, false, '{"audit_event": {"date_time": "2024-05-01T12:00:01Z", "target": "just text"}}', now())`,
      );
      const db = join(dir, `outbox-es-${seq++}.duckdb`);
      const file = join(dir, `outbox-es-${seq++}.yaml`);
      writeFileSync(
        file,
        [
          'pipelines:',
          '  billing:',
          '    source:',
          '      type: sql_outbox',
          `      url: ${JSON.stringify(pg.url)}`,
          '      chunk_size: 50',
          '      batch_size: 0',
          '    sinks:',
          '      - type: elasticsearch',
          `        url: ${JSON.stringify(es.url)}`,
          '      - type: duckdb',
          `        path: ${db}`,
          '',
        ].join('\n'),
      );
      const r = await runCli(['run', '--config', file, '--json']);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      const s = (
        JSON.parse(r.stdout.trim().split('\n').pop()!) as {
          pipelines: { stored: number; marked: number; search: { created: number; deadLettered: number }[] }[];
        }
      ).pipelines[0]!;
      assert.deepEqual([s.stored, s.marked, s.search[0]!.created, s.search[0]!.deadLettered], [301, 301, 300, 1]);
      assert.equal(await docCount(es.url, 'auditship-app-billing-*'), 300);
      const dead = await queryDb(db, 'SELECT doc_id, status, reason FROM es_dead_letters');
      assert.equal(dead.length, 1);
      assert.match(String(dead[0]!['reason']), /mapper_parsing_exception/);
      const hit = (await requestJson(es.url, 'POST', '/auditship-app-billing-*/_search', { size: 1, query: { term: { 'auditship.row_id': '7' } } })).body as {
        hits: { hits: { _index: string; _source: { '@timestamp': string; audit_event: { operation: string } } }[] };
      };
      assert.equal(hit.hits.hits[0]!._index, 'auditship-app-billing-2024.05.01');
      assert.equal(hit.hits.hits[0]!._source['@timestamp'], '2024-05-01T12:00:00.000Z');
      assert.equal(hit.hits.hits[0]!._source.audit_event.operation, 'READ');
      // A crash after delivery and before "mark sent" leaves rows unsent: sent again, 409, stored once.
      await pg.client.query('UPDATE audit_logs SET is_sent = false WHERE id <= 20');
      const again = await runCli(['run', '--config', file, '--json']);
      assert.equal(again.code, 0, again.stderr.slice(-2000));
      assert.match(again.stdout, /"duplicates":20/);
      assert.equal(await docCount(es.url, 'auditship-app-billing-*'), 300);
    } finally {
      await es.stop();
      await pg.drop();
    }
  });
});

describe('elasticsearch sink: row changes (pg_audit_table on PostgreSQL)', () => {
  test('row changes reach the cluster once with the row as an object; a rerun from a fresh state file adds nothing', async () => {
    const es = await spawnEsServer({ flavor: 'elasticsearch' });
    const pg = await createTestDatabase('es_rows');
    try {
      await pg.client.query(`CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)`);
      await installAudit(pg.client, { schema: 'auditship', tables: ['items'] });
      await pg.client.query(`INSERT INTO items SELECT g, 'n' || g, g FROM generate_series(1, 200) g`);
      await pg.client.query(`UPDATE items SET qty = qty + 1 WHERE id <= 50`);
      await pg.client.query(`DELETE FROM items WHERE id > 190`);
      const file = (n: number) => {
        const f = join(dir, `rows-es-${seq++}.yaml`);
        writeFileSync(
          f,
          [
            'pipelines:',
            '  rows:',
            '    source:',
            '      type: pg_audit_table',
            `      url: ${JSON.stringify(pg.url)}`,
            '      batch_rows: 40',
            '    sinks:',
            '      - type: elasticsearch',
            `        url: ${JSON.stringify(es.url)}`,
            '      - type: duckdb',
            `        path: ${join(dir, `rows-es-${n}.duckdb`)}`,
            '',
          ].join('\n'),
        );
        return f;
      };
      const r = await runCli(['run', '--config', file(1), '--json']);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      assert.match(r.stdout, /"created":260/);
      assert.equal(await docCount(es.url, 'auditship-rows-*'), 260);
      const hit = (await requestJson(es.url, 'POST', '/auditship-rows-*/_search', { size: 1, query: { term: { 'postgresql.row_change.action': 'UPDATE' } } }))
        .body as {
        hits: {
          hits: {
            _source: { event: { action: string }; postgresql: { row_change: { row_data: { id: number }; changed_fields: { qty: number }; table: string } } };
          }[];
        };
      };
      const rc = hit.hits.hits[0]!._source.postgresql.row_change;
      assert.equal(rc.table, 'items');
      assert.equal(typeof rc.row_data, 'object');
      assert.ok(rc.changed_fields.qty > 1);
      const again = await runCli(['run', '--config', file(2), '--json']);
      assert.equal(again.code, 0, again.stderr.slice(-2000));
      assert.match(again.stdout, /"created":0,"duplicates":260/);
      assert.equal(await docCount(es.url, 'auditship-rows-*'), 260);
    } finally {
      await es.stop();
      await pg.drop();
    }
  });
});

for (const [name, env] of [
  ['Elasticsearch', 'AUDITSHIP_TEST_ES_URL'],
  ['OpenSearch', 'AUDITSHIP_TEST_OPENSEARCH_URL'],
] as const) {
  const url = process.env[env];
  describe(`elasticsearch sink against a live ${name} cluster`, () => {
    test(
      `real pgaudit logs exactly once, twice sent (${env})`,
      { skip: url ? false : `skipped: set ${env} (e.g. http://user:password@host:9200) to run it against a real cluster` },
      async () => {
        const prefix = `auditship-test-${Date.now()}`;
        const s = config(url!, { index_prefix: prefix }, { storeEvents: false });
        const first = await run(s);
        const again = await run(config(url!, { index_prefix: prefix }, { storeEvents: false }));
        assert.equal(first.search![0]!.created + first.search![0]!.duplicates, REAL_EVENTS);
        assert.deepEqual([again.search![0]!.created, again.search![0]!.duplicates], [0, REAL_EVENTS]);
        assert.equal(await docCount(url!, `${prefix}-pgaudit-*`), REAL_EVENTS);
        await requestJson(url!, 'DELETE', `/${prefix}-pgaudit-*`).catch(() => {});
        await requestJson(url!, 'DELETE', `/_index_template/${prefix}-pgaudit`).catch(() => {});
      },
    );
  });
}
