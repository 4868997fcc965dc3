import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { planInit, renderInitConfig } from '../../src/setup/init.js';
import { field } from '../helpers/config.js';
import {
  accessFix,
  correctedPgauditLog,
  failed,
  formatCheck,
  listItems,
  parsePgauditLog,
  preloadStatement,
  serverChecks,
  serverPgauditLog,
  splitGucList,
  type CheckResult,
  type LogAccess,
  type ServerFacts,
  type SettingFact,
} from '../../src/setup/server-checks.js';

describe('pgaudit.log parser', () => {
  test('splits like PostgreSQL: commas, whitespace around items, quotes; an empty item or a missing comma is a syntax error', () => {
    assert.deepEqual(splitGucList('read, WRITE ,-ddl'), ['read', 'write', '-ddl']);
    assert.deepEqual(splitGucList(''), []);
    assert.deepEqual(splitGucList('   '), []);
    assert.deepEqual(splitGucList('"Read",role'), ['Read', 'role']);
    assert.equal(splitGucList('read write'), null, 'PostgreSQL: List syntax is invalid');
    assert.equal(splitGucList('read,,write'), null);
    assert.deepEqual(splitGucList('read;write'), ['read;write'], 'one item, which is not a class');
    assert.equal(splitGucList('read,'), null);
    assert.equal(splitGucList('"read'), null);
  });

  test('classes are case-insensitive, -class subtracts in order, none adds nothing', () => {
    assert.deepEqual(parsePgauditLog('all, -misc, -misc_set').audited, ['READ', 'WRITE', 'FUNCTION', 'ROLE', 'DDL']);
    assert.deepEqual(parsePgauditLog('READ, Write').audited, ['READ', 'WRITE']);
    assert.deepEqual(parsePgauditLog('-read, all').audited.length, 7);
    assert.deepEqual(parsePgauditLog('none, ddl').audited, ['DDL']);
    for (const nothing of ['none', '', '-all', 'all, -all', 'read, -read']) {
      const p = parsePgauditLog(nothing);
      assert.equal(p.valid, true, nothing);
      assert.deepEqual(p.audited, [], nothing);
    }
  });

  test('privilege is not a class; the valid classes are kept in the corrected value', () => {
    const p = parsePgauditLog('read, privilege, -WRITE');
    assert.equal(p.valid, false);
    assert.deepEqual(p.invalid, ['privilege']);
    assert.equal(correctedPgauditLog('read, privilege, -WRITE'), 'read, -write');
    assert.equal(correctedPgauditLog('DDL, Privilege'), 'ddl');
    assert.equal(correctedPgauditLog('misc_set,bogus,function'), 'misc_set, function');
  });

  test('when nothing valid (or nothing audited) is left, the fix is read, write, ddl, role — per role it is RESET (null)', () => {
    assert.equal(correctedPgauditLog('privilege'), 'read, write, ddl, role');
    assert.equal(correctedPgauditLog('-read, privilege'), 'read, write, ddl, role');
    assert.equal(correctedPgauditLog('none'), 'read, write, ddl, role');
    assert.equal(correctedPgauditLog('privilege', true), null);
    assert.equal(correctedPgauditLog('none, privilege', true), 'none', "a role's none (the shipper's own) is kept");
  });

  test('a list PostgreSQL cannot split is read leniently for the fix', () => {
    const p = parsePgauditLog('read write');
    assert.equal(p.syntaxOk, false);
    assert.equal(p.valid, false);
    assert.equal(correctedPgauditLog('read write'), 'read, write');
    assert.equal(correctedPgauditLog('read;ddl'), 'read, ddl');
  });
});

describe('shared_preload_libraries fix', () => {
  test('each library is its own literal (one literal with a comma names one library, and the server does not start)', () => {
    assert.equal(preloadStatement(''), "ALTER SYSTEM SET shared_preload_libraries = 'pgaudit';");
    assert.equal(
      preloadStatement('pg_stat_statements, auto_explain'),
      "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'auto_explain', 'pgaudit';",
    );
    assert.deepEqual(listItems('"odd lib", timescaledb'), ['odd lib', 'timescaledb']);
    assert.equal(preloadStatement('"it\'s"'), "ALTER SYSTEM SET shared_preload_libraries = 'it''s', 'pgaudit';");
  });
});

/* ---- serverChecks on made-up facts ---- */

const user = { name: 'auditship', uid: 1001, gids: [1001] };

function facts(over: Partial<ServerFacts> & { set?: Record<string, string | Partial<SettingFact>> } = {}): ServerFacts {
  const settings = new Map<string, SettingFact>();
  const base: Record<string, string> = {
    shared_preload_libraries: 'pgaudit',
    logging_collector: 'on',
    log_destination: 'csvlog',
    log_connections: 'on',
    log_disconnections: 'on',
    data_directory: '/var/lib/postgresql/15/main',
    log_directory: 'log',
    log_file_mode: '0640',
    cluster_name: '15/main',
    port: '5432',
    log_timezone: 'Europe/Berlin',
    'pgaudit.log': 'all',
    'pgaudit.log_level': 'log',
  };
  for (const [k, v] of Object.entries({ ...base, ...over.set })) {
    if (v === undefined) continue;
    const s = typeof v === 'string' ? { value: v } : v;
    settings.set(k, { value: '', source: 'configuration file', sourcefile: '/etc/postgresql/15/main/postgresql.conf', pendingRestart: false, ...s });
  }
  const logAccess: LogAccess = {
    kind: 'local',
    dir: '/var/lib/postgresql/15/main/log',
    user,
    blocked: null,
    missing: false,
    files: 2,
    newest: {
      info: { path: '/var/lib/postgresql/15/main/log/postgresql-Mon.csv', mode: 0o100640, uid: 110, gid: 118, owner: 'postgres', group: 'postgres' },
      readable: true,
    },
  };
  const { set: _set, ...rest } = over;
  return {
    where: 'postgresql://postgres@/postgres?host=/var/run/postgresql&port=5432',
    role: 'postgres',
    database: 'postgres',
    superuser: true,
    readAllSettings: true,
    version: '15.20 (Debian 15.20-0+deb12u1)',
    versionNum: 150020,
    settings,
    pgauditPlaceholder: null,
    extension: '1.7',
    fileSettings: [],
    roleSettings: [],
    logAccess,
    ...rest,
  };
}

const byId = (rs: CheckResult[], id: string) => rs.filter((r) => r.id === id);
const one = (rs: CheckResult[], id: string) => {
  const m = byId(rs, id);
  assert.equal(m.length, 1, `${id}: ${JSON.stringify(rs)}`);
  return m[0]!;
};

describe('server checks (pure)', () => {
  test('a ready server: every check passes', () => {
    const rs = serverChecks(facts());
    assert.deepEqual(rs.filter(failed), []);
    assert.equal(formatCheck(one(rs, 'pgaudit_log')), "✔ pgaudit.log = 'all' audits READ, WRITE, FUNCTION, ROLE, DDL, MISC, MISC_SET");
    assert.match(formatCheck(one(rs, 'log_directory')), /^✔ the log directory \/var\/lib\/postgresql\/15\/main\/log is readable by auditship/);
  });

  test('pgaudit not preloaded: the real list plus pgaudit, and the restart command of a Debian cluster', () => {
    const f = facts({ set: { shared_preload_libraries: 'pg_stat_statements' } });
    for (const k of [...f.settings.keys()]) if (k.startsWith('pgaudit.')) f.settings.delete(k);
    const r = one(serverChecks({ ...f, extension: null }), 'preload');
    assert.equal(
      formatCheck(r),
      "✘ pgaudit is not in shared_preload_libraries (now 'pg_stat_statements') — fix: ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'pgaudit'; then restart PostgreSQL (systemctl restart postgresql@15-main)",
    );
    assert.match(
      formatCheck(one(serverChecks({ ...f, extension: null }), 'extension')),
      /CREATE EXTENSION pgaudit; \(in database postgres, once pgaudit is loaded\)$/,
    );
  });

  test('pgaudit set but the server not restarted since: the fix is the restart alone', () => {
    const f = facts({
      set: { shared_preload_libraries: { value: '', pendingRestart: true }, cluster_name: '' },
      fileSettings: [
        {
          file: '/d/postgresql.auto.conf',
          line: 3,
          seqno: 30,
          name: 'shared_preload_libraries',
          value: 'pgaudit',
          applied: false,
          error: 'setting could not be applied',
        },
      ],
    });
    for (const k of [...f.settings.keys()]) if (k.startsWith('pgaudit.')) f.settings.delete(k);
    const r = one(serverChecks(f), 'preload');
    assert.equal(r.ok, false);
    assert.match(r.what, /not loaded: PostgreSQL has not been restarted since/);
    assert.equal(r.fix, 'restart PostgreSQL (pg_ctl restart -D /var/lib/postgresql/15/main)');
  });

  test('privilege in postgresql.conf: refused, the server audits nothing; the fix keeps the valid classes', () => {
    const f = facts({
      set: { 'pgaudit.log': { value: 'none', source: 'default', sourcefile: null } },
      fileSettings: [
        {
          file: '/etc/postgresql/15/main/postgresql.conf',
          line: 812,
          seqno: 20,
          name: 'pgaudit.log',
          value: 'write, ddl, privilege',
          applied: false,
          error: 'setting could not be applied',
        },
      ],
    });
    const r = one(serverChecks(f), 'pgaudit_log');
    assert.equal(r.ok, false);
    assert.match(
      r.what,
      /^pgaudit\.log = 'write, ddl, privilege' in \/etc\/postgresql\/15\/main\/postgresql\.conf line 812 names 'privilege', which is not a pgaudit class \(GRANT and REVOKE are logged by class ROLE\); PostgreSQL refused it and runs with the default 'none': nothing is audited$/,
    );
    assert.deepEqual(r.sql, ["ALTER SYSTEM SET pgaudit.log = 'write, ddl';", 'SELECT pg_reload_conf();']);
    assert.match(r.fix!, /\(and correct line 812 of \/etc\/postgresql\/15\/main\/postgresql\.conf, which this overrides\)$/);
  });

  test('refused at a reload: the server still runs the old value until the next restart', () => {
    const f = facts({
      set: { 'pgaudit.log': { value: 'all', source: 'configuration file' } },
      fileSettings: [
        { file: '/d/postgresql.auto.conf', line: 3, seqno: 30, name: 'pgaudit.log', value: 'privilege', applied: false, error: 'setting could not be applied' },
      ],
    });
    const r = one(serverChecks(f), 'pgaudit_log');
    assert.match(r.what, /still runs with 'all', but falls back to 'none' \(nothing audited\) at the next restart/);
    assert.deepEqual(r.sql, ["ALTER SYSTEM SET pgaudit.log = 'read, write, ddl, role';", 'SELECT pg_reload_conf();']);
  });

  test("pgaudit.log after check turned it off for its own session: the value the session started with, and whether it is the server's", () => {
    const own: SettingFact = { value: 'none', source: 'session', sourcefile: null, pendingRestart: false };
    const session = { role: 'postgres', database: 'postgres', roleSettings: [], fileSettings: [] };
    const file = { file: '/d/postgresql.conf', line: 9, seqno: 9, name: 'pgaudit.log', value: 'all', applied: true, error: null };
    assert.deepEqual(serverPgauditLog('none', 'none', own, session), { ...own, value: 'none', source: 'default' });
    assert.deepEqual(serverPgauditLog('all', 'none', own, { ...session, fileSettings: [file] }), { ...own, value: 'all', source: 'configuration file' });
    assert.deepEqual(serverPgauditLog('all', 'none', own, session), { ...own, value: 'all', source: 'command line' });
    // A per-role value for this role (or all roles, this database) is not the server's; an invalid one is ignored by PostgreSQL.
    for (const r of [
      { role: 'postgres', database: null },
      { role: null, database: 'postgres' },
    ]) {
      assert.equal(serverPgauditLog('write', 'none', own, { ...session, roleSettings: [{ ...r, value: 'write' }] }).source, 'user');
    }
    assert.equal(
      serverPgauditLog('all', 'none', own, { ...session, roleSettings: [{ role: 'app', database: null, value: 'write' }] }).source,
      'command line',
      "another role's value",
    );
    assert.equal(
      serverPgauditLog('all', 'none', own, { ...session, roleSettings: [{ role: 'postgres', database: null, value: 'privilege' }] }).source,
      'command line',
      'invalid: ignored',
    );
    // What the check makes of them: a server value audits; a per-role one is not taken for the server's.
    const check = (fact: SettingFact) => formatCheck(one(serverChecks(facts({ set: { 'pgaudit.log': fact } })), 'pgaudit_log'));
    assert.equal(check(serverPgauditLog('all', 'none', own, session)), "✔ pgaudit.log = 'all' audits READ, WRITE, FUNCTION, ROLE, DDL, MISC, MISC_SET");
    assert.match(
      check(serverPgauditLog('write', 'none', own, { ...session, roleSettings: [{ role: 'postgres', database: null, value: 'write' }] })),
      /^✘ pgaudit\.log = 'none' \(the default\): pgaudit audits nothing/,
    );
  });

  test('pgaudit not loaded yet: an invalid value in the configuration is caught before it is refused', () => {
    const f = facts({ pgauditPlaceholder: 'read write', fileSettings: null });
    for (const k of [...f.settings.keys()]) if (k.startsWith('pgaudit.')) f.settings.delete(k);
    const r = one(serverChecks(f), 'pgaudit_log');
    assert.match(r.what, /is not a comma-separated list; PostgreSQL will refuse it when pgaudit is loaded/);
    assert.deepEqual(r.sql?.[0], "ALTER SYSTEM SET pgaudit.log = 'read, write';");
  });

  test('a value that audits nothing', () => {
    const r = one(serverChecks(facts({ set: { 'pgaudit.log': { value: 'none', source: 'default' } } })), 'pgaudit_log');
    assert.equal(
      formatCheck(r),
      "✘ pgaudit.log = 'none' (the default): pgaudit audits nothing — fix: ALTER SYSTEM SET pgaudit.log = 'read, write, ddl, role'; SELECT pg_reload_conf();",
    );
  });

  test('invalid per-role and per-database values (stored while pgaudit was not loaded): SET to the valid classes, or RESET', () => {
    const rs = serverChecks(
      facts({
        roleSettings: [
          { role: null, database: null, value: 'privilege' },
          { role: null, database: 'app', value: 'write, privilege' },
          { role: '"Alice"', database: 'app', value: 'bogus' },
          { role: 'auditship', database: null, value: 'none' },
        ],
      }),
    );
    assert.deepEqual(
      byId(rs, 'pgaudit_log_role').map((r) => r.fix),
      ['ALTER ROLE ALL RESET pgaudit.log;', "ALTER DATABASE app SET pgaudit.log = 'write';", 'ALTER ROLE "Alice" IN DATABASE app RESET pgaudit.log;'],
    );
    assert.match(
      byId(rs, 'pgaudit_log_role')[2]!.what,
      /set for role "Alice" in database app names 'bogus', which is not a pgaudit class; PostgreSQL ignores it with a WARNING at each login/,
    );
  });

  test('logging_collector, log_destination, log_connections: the exact statements, with reload or restart', () => {
    const rs = serverChecks(facts({ set: { logging_collector: 'off', log_destination: 'stderr,syslog', log_disconnections: 'off', cluster_name: '' } }));
    assert.equal(one(rs, 'collector').fix, 'ALTER SYSTEM SET logging_collector = on; then restart PostgreSQL (pg_ctl restart -D /var/lib/postgresql/15/main)');
    assert.equal(one(rs, 'destination').fix, "ALTER SYSTEM SET log_destination = 'stderr,syslog,csvlog'; SELECT pg_reload_conf();");
    assert.equal(one(rs, 'connections').fix, 'ALTER SYSTEM SET log_disconnections = on; SELECT pg_reload_conf();');
    assert.equal(one(serverChecks(facts({ set: { log_destination: 'jsonlog' } })), 'destination').ok, true);
    assert.equal(one(serverChecks(facts({ set: { log_destination: 'jsonlog' }, versionNum: 140010 })), 'destination').ok, false, 'no jsonlog before 15');
  });

  test('a role without pg_read_all_settings: the lines say so and give the GRANT', () => {
    const f = facts({ superuser: false, readAllSettings: false, role: 'monitor', fileSettings: null, logAccess: { kind: 'hidden' } });
    for (const k of ['shared_preload_libraries', 'data_directory', 'log_directory']) f.settings.delete(k);
    const rs = serverChecks(f);
    assert.equal(one(rs, 'preload').ok, true, 'pgaudit being loaded shows without the privilege');
    assert.equal(
      formatCheck(one(rs, 'log_directory')),
      '✘ the log directory cannot be checked: role monitor is neither superuser nor a member of pg_read_all_settings, so data_directory and log_directory cannot be read — fix: GRANT pg_read_all_settings TO monitor;',
    );
    assert.match(
      one(rs, 'pgaudit_log').what,
      /not compared with the configuration files, which role monitor may not read \(GRANT SELECT ON pg_file_settings TO monitor;/,
    );
    for (const k of [...f.settings.keys()]) if (k.startsWith('pgaudit.')) f.settings.delete(k);
    const hidden = one(serverChecks(f), 'preload');
    assert.equal(hidden.ok, false);
    assert.match(formatCheck(hidden), /cannot be read for the exact fix — fix: GRANT pg_read_all_settings TO monitor; then run auditship check again/);
  });

  test('a server on another host: the log directory is skipped (not a failure), with how to check it', () => {
    const r = one(serverChecks(facts({ logAccess: { kind: 'remote', host: 'db.example.com' } })), 'log_directory');
    assert.equal(failed(r), false);
    assert.equal(
      formatCheck(r),
      '– the log directory is not checked: the server (db.example.com) is not on this machine — to check it: run auditship check on the database host',
    );
  });

  test('the log directory: the first closed path and the commands that open it', () => {
    const closed: LogAccess = {
      kind: 'local',
      dir: '/var/lib/postgresql/15/main/log',
      user,
      missing: false,
      files: 0,
      newest: null,
      blocked: {
        path: '/var/lib/postgresql/15/main',
        need: 'x',
        info: { path: '/var/lib/postgresql/15/main', mode: 0o40700, uid: 110, gid: 118, owner: 'postgres', group: 'postgres' },
      },
    };
    const r = one(serverChecks(facts({ logAccess: closed })), 'log_directory');
    assert.equal(
      formatCheck(r),
      '✘ the log directory /var/lib/postgresql/15/main/log (below /var/lib/postgresql/15/main) is not readable by auditship: /var/lib/postgresql/15/main (postgres:postgres 0700) is closed to auditship, who is not in group postgres — fix: chmod g+rx /var/lib/postgresql/15/main; usermod -aG postgres auditship (then log in again)',
    );
    const unreadable: LogAccess = {
      ...closed,
      blocked: null,
      files: 3,
      newest: { info: { path: '/var/log/pg/postgresql-Mon.csv', mode: 0o100600, uid: 110, gid: 118, owner: 'postgres', group: 'postgres' }, readable: false },
      dir: '/var/log/pg',
    };
    const r2 = one(serverChecks(facts({ logAccess: unreadable, set: { log_file_mode: '0600' } })), 'log_directory');
    assert.match(r2.what, /postgres:postgres 0600\) is not readable by auditship: log_file_mode = 0600 makes log files readable by their owner only$/);
    assert.equal(
      r2.fix,
      "ALTER SYSTEM SET log_file_mode = '0640'; SELECT pg_reload_conf(); (for new files); chmod g+r /var/log/pg/*; usermod -aG postgres auditship (then log in again)",
    );
    const member = { ...user, gids: [1001, 118] };
    assert.deepEqual(
      accessFix({ path: '/x', mode: 0o40750, uid: 110, gid: 118, owner: 'postgres', group: 'postgres' }, '/x', 'rx', member).fix,
      'chmod g+rx /x',
      'in the group already: only the mode',
    );
    assert.match(
      accessFix({ path: '/x/f', mode: 0o100640, uid: 110, gid: 118, owner: 'postgres', group: 'postgres' }, '/x/f', 'r', user).fix,
      /^usermod -aG postgres auditship/,
    );
  });
});

describe('init config (pure)', () => {
  test('csvlog preferred when both are written; the file validates; problems head it', () => {
    const f = facts({ set: { log_destination: 'csvlog,jsonlog' } });
    const plan = planInit(f, 'audit.duckdb', [
      { id: 'x', ok: false, what: 'log_connections is off', fix: 'ALTER SYSTEM SET log_connections = on; SELECT pg_reload_conf();' },
    ])!;
    assert.equal(plan.fileGlob, '*.csv');
    assert.equal(plan.logDir, '/var/lib/postgresql/15/main/log');
    const text = renderInitConfig(plan, 'auditship.yaml', new Date('2026-01-02T00:00:00Z'));
    const config = validateConfig(parse(text), {});
    const p = config.pipelines[0]!;
    assert.deepEqual(field(p.source, 'path'), ['/var/lib/postgresql/15/main/log']);
    assert.equal(field(p.source, 'file_glob'), '*.csv');
    assert.equal(field(p.source, 'server'), '15/main');
    assert.equal(field(p.source, 'log_timezone'), 'Europe/Berlin');
    assert.equal(field(p.sinks[0]!, 'path'), 'audit.duckdb');
    assert.match(text, /^# THIS SERVER IS NOT READY YET: auditship check found 1 problem\./m);
    assert.match(text, /^#       fix: ALTER SYSTEM SET log_connections = on; SELECT pg_reload_conf\(\);$/m);
    assert.match(text, /^      # The server's log_directory \(or a log file\); a list reads several\. Not recursive\.$/m, 'descriptions from the schema');
    assert.match(text, /^      # prefer_format: jsonlog$/m, 'keys init does not set are shown with their default');
    assert.equal(planInit(facts({ set: { log_destination: 'jsonlog' } }), 'a.duckdb', [])!.fileGlob, '*.json');
    assert.equal(planInit(facts({ set: { log_destination: 'stderr' } }), 'a.duckdb', [])!.fileGlob, '*.csv', 'what the fix makes it write');
  });
});
