import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Logger } from '../../src/core/log.js';
import { authOptions, parseListen } from '../../src/cli/commands/ui.js';
import { ExitError } from '../../src/core/errors.js';
import { startUiServer, UiServerError, type UiServer, type UiServerOptions } from '../../src/ui/index.js';
import { scratchDir } from '../helpers/ingest-cli.js';
import { fakeQueries, fixtureEvent, type FakeQueries } from './fake-queries.js';

/**
 * The UI's HTTP server over a fake query layer: read-only, authentication off loopback, the Host guard on
 * loopback, parameter errors, security headers, and an access log that never carries a query string.
 */

interface LogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

function memoryLog(): Logger & { lines: LogLine[]; text(): string } {
  const lines: LogLine[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push({ level, msg, ...(fields ? { fields } : {}) });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json(): any;
}

/** One HTTP request with full control of the headers (Host included), over TCP or a unix socket. */
function http(
  target: { url: string } | { socketPath: string },
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const base = 'url' in target ? new URL(target.url) : null;
    const req = request(
      {
        ...(base ? { host: base.hostname.replace(/^\[(.*)\]$/, '$1'), port: base.port } : { socketPath: (target as { socketPath: string }).socketPath }),
        path,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const events = Array.from({ length: 120 }, (_, i) => fixtureEvent(i));
const servers: UiServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(over: Partial<UiServerOptions> = {}): Promise<{ server: UiServer; log: ReturnType<typeof memoryLog>; queries: FakeQueries }> {
  const log = memoryLog();
  const queries = fakeQueries(events);
  const server = await startUiServer({ queries, log, port: 0, ...over });
  servers.push(server);
  return { server, log, queries };
}

describe('a loopback server without auth', async () => {
  const { server, log, queries } = await start({ title: 'audit <b>"db"</b>' });

  test('serves the page with the security headers, the title escaped', async () => {
    const r = await http(server, '/');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    assert.equal(r.headers['content-security-policy'], "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'");
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    assert.ok(r.body.includes('audit &#60;b&#62;&#34;db&#34;&#60;/b&#62;'), 'the title is HTML-escaped');
    assert.ok(!r.body.includes('<b>"db"</b>'));
    assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(r.body), 'no inline script');
    assert.ok(!/<style|\sstyle=/.test(r.body), 'no inline style');
    const js = await http(server, '/app.js');
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    assert.ok(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write/.test(js.body), 'the app never parses markup');
    assert.equal((await http(server, '/style.css')).status, 200);
  });

  test('only names in the static folder are served', async () => {
    for (const path of ['/../package.json', '/%2e%2e/package.json', '/server.ts', '/static/app.js', '/nope.js', '/..%2fserver.ts']) {
      assert.equal((await http(server, path)).status, 404, path);
    }
  });

  test('answers GET and HEAD only', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      for (const path of ['/', '/api/events']) {
        const r = await http(server, path, { method });
        assert.equal(r.status, 405, `${method} ${path}`);
        assert.equal(r.headers['allow'], 'GET, HEAD');
      }
    }
    const head = await http(server, '/api/facets', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('the API answers JSON, no-store, with the filter parsed', async () => {
    const r = await http(server, '/api/events?user=alice&class=READ&limit=5');
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.ok(r.headers['content-security-policy']);
    const page = r.json();
    assert.equal(page.rows.length, 5);
    assert.ok(page.rows.every((row: { user_name: string; class: string }) => row.user_name === 'alice' && row.class === 'READ'));
    const call = queries.calls.filter((c) => c.method === 'listEvents').at(-1)!;
    assert.deepEqual(call.args, [
      { user: ['alice'], class: ['READ'] },
      { limit: 5, after: null },
    ]);
    const second = (await http(server, `/api/events?user=alice&class=READ&limit=5&after=${page.next}`)).json();
    assert.ok(
      second.rows.every((row: { id: string }) => !page.rows.some((p: { id: string }) => p.id === row.id)),
      'the next page does not overlap',
    );
    for (const path of [
      '/api/facets',
      '/api/charts/timeline?from=2026-01-01T00:00:00Z',
      '/api/charts/top-users?n=3',
      '/api/charts/top-objects',
      '/api/charts/logon-failures',
      '/api/event?id=ev-3',
    ]) {
      assert.equal((await http(server, path)).status, 200, path);
    }
    assert.equal((await http(server, '/api/charts/top-users?n=3')).json().length, 3);
  });

  test('bad parameters are a 400 with one line; an unknown event a 404', async () => {
    for (const path of [
      '/api/events?from=yesterday',
      '/api/events?outcome=maybe',
      '/api/events?from=2026-02-01&to=2026-01-01',
      '/api/events?limit=0',
      '/api/events?limit=9999',
      '/api/events?sql=DROP%20TABLE%20x',
      '/api/events?after=bogus',
      '/api/event',
      '/api/charts/top-users?n=abc',
      '/api/facets?x=1',
    ]) {
      const r = await http(server, path);
      assert.equal(r.status, 400, path);
      const { error } = r.json();
      assert.equal(typeof error, 'string');
      assert.ok(error.length > 0 && !error.includes('\n'), `${path}: ${error}`);
    }
    const r = await http(server, '/api/event?id=ev-nope');
    assert.equal(r.status, 404);
    assert.equal(typeof r.json().error, 'string');
    assert.equal((await http(server, '/api/nothing')).status, 404);
  });

  test('a query failure is a 500 with a generic message; the log has the reason without literals', async () => {
    queries.failWith = new Error("Conversion Error: Could not convert string 'hunter2-secret' to INT64\nLINE 1: SELECT ...");
    try {
      const r = await http(server, '/api/events?q=needle');
      assert.equal(r.status, 500);
      assert.ok(!r.body.includes('hunter2'), 'the client does not get the database message');
      assert.ok(!r.body.includes('Conversion'));
    } finally {
      queries.failWith = null;
    }
    const failure = log.lines.find((l) => l.msg === 'UI query failed.');
    assert.ok(failure, 'the failure is logged');
    assert.match(String(failure.fields?.['error']), /Conversion Error/);
    assert.ok(!log.text().includes('hunter2'), 'no quoted value in the log');
  });

  test('the Host header must be a loopback name (DNS rebinding guard)', async () => {
    const port = new URL(server.url).port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `127.1.2.3:${port}`, 'localhost', `app.localhost:${port}`]) {
      assert.equal((await http(server, '/api/facets', { headers: { Host: host } })).status, 200, host);
    }
    for (const host of [`evil.example.com:${port}`, 'evil.example.com', `10.0.0.5:${port}`, `127.0.0.1.evil.example:${port}`, `localhost.evil.example`]) {
      const r = await http(server, '/api/facets', { headers: { Host: host } });
      assert.equal(r.status, 403, host);
      assert.equal((await http(server, '/', { headers: { Host: host } })).status, 403, host);
    }
  });

  test('the access log has method, path, status and time, never a query string', async () => {
    const secrets = ['needle-in-statement', 'carol-the-user', 'public.secret_table', 'cursor-xyz'];
    await http(server, `/api/events?q=${secrets[0]}&user=${secrets[1]}&object=${secrets[2]}`);
    await http(server, `/api/events?after=${secrets[3]}`);
    await http(server, `/?q=${secrets[0]}`);
    const lines = log.lines.filter((l) => l.msg === 'UI request.');
    assert.ok(lines.length >= 3);
    const last = lines.at(-3)!;
    assert.deepEqual(Object.keys(last.fields!).sort(), ['method', 'ms', 'path', 'status']);
    assert.equal(last.fields!['path'], '/api/events');
    assert.equal(last.fields!['method'], 'GET');
    assert.equal(last.fields!['status'], 200);
    assert.equal(typeof last.fields!['ms'], 'number');
    const text = log.text();
    for (const s of secrets) assert.ok(!text.includes(s), `the log does not hold ${s}`);
    assert.ok(!text.includes('?'), 'no query string at all');
  });
});

describe('off loopback', () => {
  test('is refused without auth', async () => {
    for (const host of ['0.0.0.0', '::']) {
      await assert.rejects(
        startUiServer({ queries: fakeQueries(events), log: memoryLog(), host, port: 0 }),
        (err: unknown) => err instanceof UiServerError && err.code === 'unsafe_listen' && /token/.test(err.message) && !err.message.includes('\n'),
      );
    }
    await assert.rejects(
      startUiServer({ queries: fakeQueries(events), log: memoryLog(), host: '0.0.0.0', port: 0, auth: { token: '' } }),
      (err: unknown) => err instanceof UiServerError && err.code === 'unsafe_listen',
      'an empty token is no auth',
    );
  });

  test('with a token: Bearer header, or ?token= on a page load traded for a cookie', async () => {
    const token = 'T0ken-for-the-ui-test-0123456789';
    const { server, log } = await start({ host: '0.0.0.0', auth: { token } });
    const url = server.url.replace('0.0.0.0', '127.0.0.1');
    const target = { url };
    const host = { Host: 'audit.example.com' };

    const anon = await http(target, '/api/facets', { headers: host });
    assert.equal(anon.status, 401);
    assert.match(String(anon.headers['www-authenticate']), /^Bearer realm="auditship"/);
    assert.equal(typeof anon.json().error, 'string');
    assert.equal((await http(target, '/', { headers: host })).status, 401);
    assert.equal((await http(target, '/app.js', { headers: host })).status, 401);
    assert.equal((await http(target, '/api/facets', { headers: { ...host, Authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await http(target, '/api/facets', { headers: { ...host, Authorization: `Bearer ${token}x` } })).status, 401);
    assert.equal((await http(target, '/api/facets', { headers: { ...host, Authorization: `Bearer ${token}` } })).status, 200);
    assert.equal((await http(target, '/api/facets', { headers: { ...host, Cookie: 'auditship_ui=forged' } })).status, 401);
    assert.equal((await http(target, `/api/facets?token=${token}`, { headers: host })).status, 401, 'the API does not take ?token=');

    assert.equal((await http(target, '/?token=wrong', { headers: host })).status, 401);
    const login = await http(target, `/?token=${encodeURIComponent(token)}&keep=1`, { headers: host });
    assert.equal(login.status, 303);
    assert.equal(login.headers['location'], '/?keep=1', 'the token leaves the address');
    const offsite = await http(target, `//evil.example.com/?token=${encodeURIComponent(token)}`, { headers: host });
    assert.equal(offsite.status, 303);
    assert.match(String(offsite.headers['location']), /^\/(?!\/)/, 'never a redirect to another host');
    const cookie = String((login.headers['set-cookie'] as string[])[0]);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.match(cookie, /Path=\//);
    assert.ok(!cookie.includes(token), 'the cookie does not hold the token itself');
    const pair = cookie.split(';')[0]!;
    assert.equal((await http(target, '/', { headers: { ...host, Cookie: pair } })).status, 200);
    assert.equal((await http(target, '/api/events?limit=1', { headers: { ...host, Cookie: `other=1; ${pair}` } })).status, 200);
    assert.ok(!log.text().includes(token), 'the token is never logged');
  });

  test('with basic auth: a 401 asks for it', async () => {
    const { server } = await start({ host: '0.0.0.0', auth: { basic: { user: 'dba', password: 'pa:ss wörd' } } });
    const target = { url: server.url.replace('0.0.0.0', '127.0.0.1') };
    const basic = (s: string) => ({ Authorization: `Basic ${Buffer.from(s).toString('base64')}` });
    const anon = await http(target, '/');
    assert.equal(anon.status, 401);
    assert.match(String(anon.headers['www-authenticate']), /^Basic realm="auditship"/);
    assert.equal((await http(target, '/', { headers: basic('dba:wrong') })).status, 401);
    assert.equal((await http(target, '/', { headers: basic('other:pa:ss wörd') })).status, 401);
    assert.equal((await http(target, '/', { headers: basic('dba') })).status, 401);
    assert.equal((await http(target, '/', { headers: basic('dba:pa:ss wörd') })).status, 200);
    assert.equal((await http(target, '/api/facets', { headers: basic('dba:pa:ss wörd') })).status, 200);
    assert.equal((await http(target, '/?token=anything')).status, 401, 'no token configured: ?token= is no way in');
  });
});

describe('/metrics (run --follow --ui)', () => {
  test("served when the daemon gives it, in the text format's content type, behind the same authentication", async () => {
    const token = 'T0ken-for-the-metrics-test-0123456';
    const { server } = await start({ host: '0.0.0.0', auth: { token }, metrics: () => '# TYPE x gauge\nx 1\n' });
    const target = { url: server.url.replace('0.0.0.0', '127.0.0.1') };
    assert.equal((await http(target, '/metrics')).status, 401);
    const r = await http(target, '/metrics', { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.body, '# TYPE x gauge\nx 1\n');
    const { server: plain } = await start();
    assert.equal((await http(plain, '/metrics')).status, 404, 'auditship ui serves no metrics');
  });
});

describe('on a unix socket', () => {
  const { dir, cleanup } = scratchDir('ui-socket');
  after(cleanup);

  test('serves with mode 0600, without auth or Host check, and removes the socket on close', async () => {
    const socketPath = join(dir, 'ui.sock');
    const log = memoryLog();
    const server = await startUiServer({ queries: fakeQueries(events), log, socketPath });
    try {
      assert.equal(server.url, `unix:${socketPath}`);
      assert.equal(statSync(socketPath).mode & 0o777, 0o600);
      const r = await http({ socketPath }, '/api/events?limit=2', { headers: { Host: 'proxied.example.com' } });
      assert.equal(r.status, 200);
      assert.equal(r.json().rows.length, 2);
      assert.equal((await http({ socketPath }, '/api/facets', { method: 'POST' })).status, 405);
      await assert.rejects(
        startUiServer({ queries: fakeQueries(events), log, socketPath }),
        (err: unknown) => err instanceof UiServerError && err.code === 'address_in_use',
      );
    } finally {
      await server.close();
    }
    assert.ok(!existsSync(socketPath));
  });

  test('a stale socket file of a killed server is replaced; with a token, auth applies there too', async () => {
    const socketPath = join(dir, 'stale.sock');
    // A process killed with SIGKILL leaves its socket file behind.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await once(child.stdout, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.ok(lstatSync(socketPath).isSocket(), 'the dead server left its socket');
    const server = await startUiServer({ queries: fakeQueries(events), log: memoryLog(), socketPath, auth: { token: 'sock-token-0123456789' } });
    try {
      assert.equal((await http({ socketPath }, '/api/facets')).status, 401);
      assert.equal((await http({ socketPath }, '/api/facets', { headers: { Authorization: 'Bearer sock-token-0123456789' } })).status, 200);
    } finally {
      await server.close();
    }
  });
});

describe('auditship ui arguments', () => {
  test('--listen HOST:PORT', () => {
    const ok: [string, { host: string; port: number }][] = [
      ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
      ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
      ['[::1]:9000', { host: '::1', port: 9000 }],
      ['localhost:80', { host: 'localhost', port: 80 }],
      ['8081', { host: '127.0.0.1', port: 8081 }],
      [':8082', { host: '127.0.0.1', port: 8082 }],
    ];
    for (const [arg, want] of ok) assert.deepEqual(parseListen(arg), want, arg);
    for (const arg of ['', 'host', 'host:', 'host:99999', '::1:80', 'a:b', '1.2.3.4:80:90']) {
      assert.throws(
        () => parseListen(arg),
        (err: unknown) => err instanceof ExitError && err.exitCode === 2,
        arg,
      );
    }
  });

  test('--token and --basic-auth, or their environment variables', () => {
    const token = 'a-token-of-sixteen+';
    assert.equal(authOptions(undefined, undefined, {}), undefined);
    assert.deepEqual(authOptions(token, undefined, {}), { token });
    assert.deepEqual(authOptions(undefined, undefined, { AUDITSHIP_UI_TOKEN: token }), { token });
    assert.deepEqual(authOptions('flag-wins-over-env-x', undefined, { AUDITSHIP_UI_TOKEN: token }), { token: 'flag-wins-over-env-x' });
    assert.deepEqual(authOptions(undefined, 'dba:se:cret', {}), { basic: { user: 'dba', password: 'se:cret' } });
    assert.deepEqual(authOptions(undefined, undefined, { AUDITSHIP_UI_BASIC_AUTH: 'dba:x' }), { basic: { user: 'dba', password: 'x' } });
    assert.equal(authOptions(undefined, undefined, { AUDITSHIP_UI_TOKEN: '', AUDITSHIP_UI_BASIC_AUTH: '' }), undefined, 'empty variables are unset');
    for (const [t, b] of [
      ['short', undefined],
      [undefined, 'nopassword'],
      [undefined, ':pw'],
      [undefined, 'user:'],
    ] as const) {
      assert.throws(
        () => authOptions(t, b, {}),
        (err: unknown) => err instanceof ExitError && err.exitCode === 2 && !err.message.includes('\n'),
        `${t} ${b}`,
      );
    }
  });
});
