import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectorError } from '../../src/core/errors.js';
import { DaemonMetrics, errorKind } from '../../src/jobs/daemon-metrics.js';
import { parsePrometheusText, sampleValue } from '../helpers/prom-text.js';

/**
 * The daemon's metrics, fed as the pipelines feed them (core/meter.ts) and as follow.ts passes status updates:
 * what each call counts, which labels it makes (bounded: an error's code, else other; a known sink kind, else
 * other), the status-file snapshot, and that a slip in a count never throws into a pipeline.
 */
test('meters count per pipeline; errors by code; states and backlog from status updates; the snapshot agrees', () => {
  const m = new DaemonMetrics([
    { name: 'logs', source: { type: 'pg_logs' } },
    { name: 'rows', source: { type: 'pg_audit_table' } },
  ]);
  const logs = m.meter('logs');
  logs.read(100, 4096);
  logs.read(50, 1024);
  logs.write('duckdb', 0.02);
  logs.write('elasticsearch', 0.3);
  logs.write('something-new', 1);
  logs.commitTime('duckdb', 0.004);
  const eventMs = Date.now() - 5000;
  logs.committed({ stored: 140, duplicates: 5, quarantined: 5, lastEventMs: eventMs });
  logs.committed({ stored: 0, duplicates: 0, quarantined: 0, lastEventMs: null });
  logs.deadLettered('elasticsearch', 2);
  logs.deadLettered('archive', 0);
  logs.failed(new ConnectorError('pg_logs', 'file_unreadable', 'permission denied on /var/log/secret.csv'));
  logs.failed(new ConnectorError('pg_logs', 'file_unreadable', 'again'));
  logs.failed(new Error('SELECT secret FROM t failed'));
  logs.failed(new ConnectorError('x', 'Not A Code: SELECT 1', 'odd'));
  logs.retrying();
  logs.committed({ stored: -3, duplicates: NaN, quarantined: 0, lastEventMs: null }); // a slip: counted as nothing, never thrown
  m.status({ pipeline: 'rows', kind: 'pg_audit_table', state: 'following', backlogRows: 42 });
  m.status({ pipeline: 'logs', kind: 'pg_logs', state: 'retrying' });
  m.status({ pipeline: 'nosuch', kind: 'pg_logs', state: 'following' });

  const text = m.render();
  const f = parsePrometheusText(text);
  const L = { pipeline: 'logs', source: 'pg_logs' };
  const v = (name: string, labels: Record<string, string> = L) => sampleValue(f, name, labels);
  assert.equal(v('auditship_events_read_total'), 150);
  assert.equal(v('auditship_read_bytes_total'), 5120);
  assert.equal(v('auditship_batches_total'), 2);
  assert.equal(v('auditship_commits_total'), 3);
  assert.equal(v('auditship_events_stored_total'), 140);
  assert.equal(v('auditship_events_duplicate_total'), 5);
  assert.equal(v('auditship_records_quarantined_total'), 5);
  assert.equal(v('auditship_dead_letters_total', { ...L, sink: 'elasticsearch' }), 2);
  assert.equal(v('auditship_dead_letters_total', { ...L, sink: 'archive' }), undefined, 'nothing dead-lettered, no series');
  assert.equal(v('auditship_errors_total', { ...L, kind: 'file_unreadable' }), 2);
  assert.equal(v('auditship_errors_total', { ...L, kind: 'other' }), 2, 'a plain Error and a code that is not a word');
  assert.equal(v('auditship_retries_total'), 1);
  assert.equal(v('auditship_sink_write_duration_seconds_count', { ...L, sink: 'other' }), 1, 'an unknown sink kind');
  assert.equal(v('auditship_sink_write_duration_seconds_bucket', { ...L, sink: 'duckdb', le: '0.025' }), 1);
  assert.equal(v('auditship_sink_write_duration_seconds_bucket', { ...L, sink: 'duckdb', le: '0.01' }), 0);
  assert.ok(Math.abs(v('auditship_lag_seconds')! - 5) < 2);
  assert.ok(v('auditship_checkpoint_age_seconds')! < 2);
  assert.equal(v('auditship_pipeline_state', { ...L, state: 'retrying' }), 1);
  assert.equal(v('auditship_pipeline_state', { ...L, state: 'following' }), 0);
  const R = { pipeline: 'rows', source: 'pg_audit_table' };
  assert.equal(v('auditship_backlog_records', R), 42);
  assert.equal(v('auditship_pipeline_state', { ...R, state: 'following' }), 1);
  assert.equal(v('auditship_lag_seconds', R), undefined, 'no commit yet: no lag');
  assert.equal(v('auditship_checkpoint_age_seconds', R), undefined);
  assert.equal(v('auditship_events_stored_total', R), 0, 'counters exist from the start');
  assert.ok(!/secret|SELECT|Not A Code/.test(text), 'no error message, path or statement in the metrics');

  const snap = m.snapshot(['logs']);
  assert.deepEqual(Object.keys(snap.pipelines), ['logs']);
  const s = snap.pipelines['logs']!;
  assert.equal(s.source, 'pg_logs');
  assert.deepEqual(
    [s.events_read, s.events_stored, s.events_duplicate, s.records_quarantined, s.commits, s.batches, s.retries, s.read_bytes],
    [150, 140, 5, 5, 3, 2, 1, 5120],
  );
  assert.deepEqual(s.errors, { file_unreadable: 2, other: 2 });
  assert.deepEqual(s.dead_letters, { elasticsearch: 2 });
  assert.deepEqual(s.sink_write_seconds['duckdb'], { count: 1, sum: 0.02 });
  assert.ok(s.lag_seconds! >= 4 && s.checkpoint_age_seconds! >= 0 && s.last_commit_at !== null);
  assert.ok(snap.process.resident_memory_bytes > 0);
  assert.equal(m.snapshot().pipelines['rows']!.lag_seconds, null);
  assert.throws(() => m.meter('nosuch'), /no metrics for pipeline nosuch/);
});

test('errorKind: a ConnectorError code that is a snake_case word, else other', () => {
  assert.equal(errorKind(new ConnectorError('pg_audit_table', 'unreachable', 'x')), 'unreachable');
  assert.equal(errorKind(new ConnectorError('c', 'http_503', 'x')), 'http_503');
  assert.equal(errorKind(new ConnectorError('c', 'x'.repeat(60), 'x')), 'other');
  assert.equal(errorKind(new ConnectorError('c', 'a"b', 'x')), 'other');
  assert.equal(errorKind(new TypeError('boom')), 'other');
  assert.equal(errorKind('a string'), 'other');
});
