import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { transactionRowsVisible } from '../../src/alerts/store.js';

/** The alerts section as the loader checks it: every problem named with its path, all at once. */

const pipelines = {
  logs: { source: { type: 'pg_logs', path: '/var/log/pg', server: 'db1' }, sinks: [{ type: 'duckdb', path: '/tmp/a.duckdb' }] },
  shipped: {
    source: { type: 'pg_logs', path: '/var/log/pg2', server: 'db2' },
    sinks: [
      { type: 'elasticsearch', url: 'http://127.0.0.1:9200' },
      { type: 'duckdb', path: '/tmp/b.duckdb', store_events: false },
    ],
  },
};
const destinations = { hook: { type: 'webhook', url: 'https://hooks.example.com/x', headers: 'Authorization: Bearer abc' } };

function problems(alerts: unknown): string[] {
  try {
    validateConfig({ pipelines, alerts });
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
}

test('a valid section decodes: rules per pipeline, durations, destinations with headers', () => {
  const config = validateConfig({
    pipelines,
    alerts: {
      destinations,
      rules: [
        { name: 'ddl', source: 'pgaudit', filter: 'class=DDL&object=salary', to: 'hook', pipelines: 'logs' },
        { name: 'logins', source: 'logon_failures', count: 5, window: '5m', by: 'client_addr', cooldown: '1h', to: ['hook'] },
      ],
    },
  });
  const logs = config.pipelines.find((p) => p.name === 'logs')!.alerts!;
  assert.deepEqual(
    logs.rules.map((r) => r.name),
    ['ddl', 'logins'],
  );
  assert.deepEqual(
    config.pipelines.find((p) => p.name === 'shipped')!.alerts!.rules.map((r) => r.name),
    ['logins'],
  );
  const logins = logs.rules[1]!;
  assert.equal(logins.windowMs, 300_000);
  assert.equal(logins.cooldownMs, 3_600_000);
  assert.deepEqual(logins.by, ['client']);
  assert.deepEqual(logs.rules[0]!.filter.pgaudit, { class: ['DDL'], object: 'salary' });
  const hook = config.alerts!.destinations.get('hook')!;
  assert.equal(hook.type === 'webhook' && hook.headers['Authorization'], 'Bearer abc');
  assert.equal(config.alerts!.delivery.max_attempts, 10);
});

test('every wrong rule is named with its path and the fix', () => {
  const p = problems({
    destinations,
    rules: [
      { name: 'a', source: 'pgaudit', filter: 'table=x', to: 'hook', pipelines: 'logs' },
      { name: 'b', source: 'logon_failures', count: 5, to: 'nowhere' },
      { name: 'c', source: 'row_changes', window: '5 minutes', count: 2, by: 'class', to: 'hook' },
      { name: 'd', source: 'pgaudit', filter: 'class=DDL', to: 'hook' },
      { name: 'e', source: 'app_events', filter: 'actor=x', by: 'actor', to: 'hook' },
      { name: 'f', source: 'app_events', to: 'hook' },
      { name: 'f', source: 'app_events', filter: 'operation=DELETE', to: 'hook' },
    ],
  });
  const has = (re: RegExp) =>
    assert.ok(
      p.some((x) => re.test(x)),
      `${String(re)} in\n${p.join('\n')}`,
    );
  has(/^alerts\.rules\[0\]\.filter: unknown key "table" for pgaudit events; allowed: server, user/);
  has(/^alerts\.rules\[1\]: count needs a window/);
  has(/^alerts\.rules\[1\]\.to: no destination named nowhere/);
  has(/^alerts\.rules\[2\]\.window: "5 minutes" is not a duration/);
  has(/^alerts\.rules\[2\]\.by: "class" is not a key of row_changes events/);
  has(/^alerts\.rules\[3\]: pipeline shipped keeps its pgaudit events out of DuckDB \(store_events: false\)/);
  has(/^alerts\.rules\[4\]\.by: keys group a threshold/);
  has(/^alerts\.rules\[6\]\.name: f names two rules/);
});

test('DuckDB numbers the rows of an open transaction as evaluation expects (TX_LOCAL_ROWID)', async () => {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    assert.equal(await transactionRowsVisible(instance), true);
  } finally {
    instance.closeSync();
  }
});
