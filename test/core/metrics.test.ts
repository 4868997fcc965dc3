import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { escapeHelp, escapeLabelValue, formatValue, PROMETHEUS_CONTENT_TYPE, Registry } from '../../src/core/metrics.js';
import { parsePrometheusText, sampleValue } from '../helpers/prom-text.js';

/**
 * The registry renders the Prometheus text exposition format 0.0.4 as the format's description has it: HELP and
 * TYPE lines, escaped label values and help texts, cumulative histogram buckets ending with +Inf, _sum and
 * _count; the output is checked against exact text and read back by the strict reader of test/helpers.
 */
describe('metrics registry: text format 0.0.4', () => {
  test('label values escape backslash, double quote and newline, and nothing else', () => {
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
    assert.equal(escapeLabelValue("tab\there, it's é ☕ {x=1}"), "tab\there, it's é ☕ {x=1}");
    assert.equal(escapeHelp('C:\\dir "quoted"\nsecond line'), 'C:\\\\dir "quoted"\\nsecond line');
    assert.equal(PROMETHEUS_CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
  });

  test('values: integers, floats, exponents, infinities, NaN', () => {
    assert.deepEqual([0, 3, -2, 0.25, 1e21, 1.5e-7, Infinity, -Infinity, NaN].map(formatValue), [
      '0',
      '3',
      '-2',
      '0.25',
      '1e+21',
      '1.5e-7',
      '+Inf',
      '-Inf',
      'NaN',
    ]);
  });

  test('counters and gauges: HELP, TYPE, one line per label set, in the order made', () => {
    const r = new Registry();
    const c = r.counter({ name: 'x_events_total', help: 'Events, "all" of them\nper pipeline \\ kind.', labelNames: ['pipeline', 'source'] });
    c.labels({ pipeline: 'b', source: 'pg_logs' }).inc(5);
    c.labels({ source: 'pg_logs', pipeline: 'a"\\\n' }).inc();
    c.labels({ pipeline: 'b', source: 'pg_logs' }).inc(2);
    const g = r.gauge({ name: 'x_lag_seconds', help: 'Lag.' });
    g.labels().set(-1.5);
    r.gauge({ name: 'x_empty', help: 'Nothing yet.', labelNames: ['k'] });
    assert.equal(
      r.render(),
      [
        '# HELP x_events_total Events, "all" of them\\nper pipeline \\\\ kind.',
        '# TYPE x_events_total counter',
        'x_events_total{pipeline="b",source="pg_logs"} 7',
        'x_events_total{pipeline="a\\"\\\\\\n",source="pg_logs"} 1',
        '# HELP x_lag_seconds Lag.',
        '# TYPE x_lag_seconds gauge',
        'x_lag_seconds -1.5',
        '# HELP x_empty Nothing yet.',
        '# TYPE x_empty gauge',
        '',
      ].join('\n'),
    );
    const parsed = parsePrometheusText(r.render());
    assert.equal(parsed.get('x_events_total')!.help, 'Events, "all" of them\nper pipeline \\ kind.');
    assert.equal(sampleValue(parsed, 'x_events_total', { pipeline: 'a"\\\n' }), 1);
    assert.equal(sampleValue(parsed, 'x_events_total', { pipeline: 'b' }), 7);
    assert.equal(parsed.get('x_empty')!.samples.length, 0);
    assert.equal(new Registry().render(), '', 'an empty registry renders nothing');
  });

  test('histograms: cumulative buckets with le, +Inf equal to _count, _sum, _count', () => {
    const r = new Registry();
    const h = r.histogram({ name: 'x_write_seconds', help: 'Write time.', labelNames: ['sink'], buckets: [0.1, 0.5, 1] });
    const d = h.labels({ sink: 'duckdb' });
    for (const v of [0.05, 0.1, 0.3, 0.5, 0.7, 2, 30]) d.observe(v); // 0.1 and 0.5 fall in their own bucket (le is inclusive)
    h.labels({ sink: 'archive' });
    assert.equal(
      r.render(),
      [
        '# HELP x_write_seconds Write time.',
        '# TYPE x_write_seconds histogram',
        'x_write_seconds_bucket{sink="duckdb",le="0.1"} 2',
        'x_write_seconds_bucket{sink="duckdb",le="0.5"} 4',
        'x_write_seconds_bucket{sink="duckdb",le="1"} 5',
        'x_write_seconds_bucket{sink="duckdb",le="+Inf"} 7',
        'x_write_seconds_sum{sink="duckdb"} 33.65',
        'x_write_seconds_count{sink="duckdb"} 7',
        'x_write_seconds_bucket{sink="archive",le="0.1"} 0',
        'x_write_seconds_bucket{sink="archive",le="0.5"} 0',
        'x_write_seconds_bucket{sink="archive",le="1"} 0',
        'x_write_seconds_bucket{sink="archive",le="+Inf"} 0',
        'x_write_seconds_sum{sink="archive"} 0',
        'x_write_seconds_count{sink="archive"} 0',
        '',
      ].join('\n'),
    );
    const parsed = parsePrometheusText(r.render());
    assert.equal(sampleValue(parsed, 'x_write_seconds_bucket', { sink: 'duckdb', le: '+Inf' }), 7);
  });

  test('collectors run before each render', () => {
    const r = new Registry();
    const g = r.gauge({ name: 'x_age_seconds', help: 'Age.', labelNames: ['pipeline'] });
    let n = 0;
    r.onCollect(() => {
      g.clear();
      n++;
      if (n > 1) g.labels({ pipeline: 'p' }).set(n);
    });
    assert.ok(!r.render().includes('x_age_seconds{'));
    assert.match(r.render(), /^x_age_seconds\{pipeline="p"\} 2$/m);
  });

  test('what the format forbids is refused when registered or used', () => {
    const r = new Registry();
    assert.throws(() => r.counter({ name: 'x_events', help: 'h' }), /ends with _total/);
    assert.throws(() => r.gauge({ name: '0bad', help: 'h' }), /invalid metric name/);
    assert.throws(() => r.gauge({ name: 'x-y', help: 'h' }), /invalid metric name/);
    assert.throws(() => r.gauge({ name: 'x_a', help: 'h', labelNames: ['__name'] }), /invalid label name/);
    assert.throws(() => r.gauge({ name: 'x_b', help: 'h', labelNames: ['a-b'] }), /invalid label name/);
    assert.throws(() => r.gauge({ name: 'x_c', help: 'h', labelNames: ['a', 'a'] }), /twice/);
    assert.throws(() => r.histogram({ name: 'x_h', help: 'h', labelNames: ['le'], buckets: [1] }), /le is the bucket label/);
    assert.throws(() => r.histogram({ name: 'x_h2', help: 'h', buckets: [1, 1] }), /strictly increasing/);
    assert.throws(() => r.histogram({ name: 'x_h3', help: 'h', buckets: [1, Infinity] }), /finite/);
    assert.throws(() => r.histogram({ name: 'x_h4', help: 'h', buckets: [] }), /needs buckets/);
    r.histogram({ name: 'x_time', help: 'h', buckets: [1] });
    assert.throws(() => r.gauge({ name: 'x_time_count', help: 'h' }), /registered twice/);
    const c = r.counter({ name: 'x_n_total', help: 'h', labelNames: ['pipeline'] });
    assert.throws(() => r.counter({ name: 'x_n_total', help: 'h' }), /registered twice/);
    assert.throws(() => c.labels({}), /takes the labels pipeline/);
    assert.throws(() => c.labels({ pipeline: 'a', other: 'b' }), /takes the labels pipeline/);
    assert.throws(() => c.labels({ pipeline: 'a' }).inc(-1), /only goes up/);
    assert.throws(() => c.labels({ pipeline: 'a' }).inc(NaN), /only goes up/);
  });
});

describe('the strict reader of the tests refuses what the format does not allow', () => {
  const bad: [string, string, RegExp][] = [
    ['no final newline', '# TYPE a gauge\na 1', /newline/],
    ['an unescaped quote', '# TYPE a gauge\na{l="x"y"} 1\n', /expected , or \}/],
    ['a bad escape', '# TYPE a gauge\na{l="x\\ty"} 1\n', /bad escape/],
    ['a sample without TYPE', 'a 1\n', /no TYPE/],
    ['samples of a family apart', '# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x="1"} 2\n', /not together/],
    ['a series twice', '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', /twice/],
    ['a negative counter', '# TYPE a_total counter\na_total -1\n', /counter/],
    ['a bad value', '# TYPE a gauge\na one\n', /not a sample value/],
    ['buckets not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /cumulative/],
    ['no +Inf bucket', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /\+Inf/],
    ['+Inf not _count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', /is not _count/],
    ['TYPE after samples', '# TYPE a gauge\na 1\n# HELP a late\n', /after its samples/],
    ['an empty line', '# TYPE a gauge\n\na 1\n', /empty line/],
  ];
  for (const [what, text, error] of bad) test(what, () => assert.throws(() => parsePrometheusText(text), error));
});
