/**
 * scripts/package-lambda.mjs (`npm run package:lambda`): the zips it writes are what Lambda runs. Built into a
 * temporary directory (--out, --cache: the tests never touch build/), extracted with Info-ZIP's unzip (an
 * independent reader, installed from Debian when missing), and loaded by a plain `node` in the extracted
 * directory, which is outside the repository: nothing resolves from the repository's node_modules.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT } from '../helpers/ingest-cli.js';

const SCRIPT = join(ROOT, 'scripts', 'package-lambda.mjs');
const UNZIP = '/usr/bin/unzip';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like scripts/test.mjs does for its packages: Debian's unzip, installed when missing (we run as root). */
function ensureUnzip(): void {
  if (existsSync(UNZIP)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const sudo = process.getuid && process.getuid() !== 0 ? ['sudo'] : [];
  for (const args of [
    ['apt-get', 'update', '-qq'],
    ['apt-get', 'install', '-y', '-qq', 'unzip'],
  ]) {
    const cmd = [...sudo, ...args];
    const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'inherit', env });
    if (r.status !== 0) throw new Error(`\`${cmd.join(' ')}\` failed; install unzip by hand`);
  }
}

/** A node with nothing of the test's environment that changes module resolution. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_PATH;
  delete env.NODE_OPTIONS;
  return env;
}

/** Runs an ES module snippet in a child node in `cwd`; its last stdout line is JSON. */
function nodeIn(cwd: string, code: string): unknown {
  const r = run(process.execPath, ['--no-warnings', '--input-type=module', '-e', code], { cwd, env: cleanEnv() });
  assert.equal(r.code, 0, `node in ${cwd} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function extract(zip: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const r = run(UNZIP, ['-q', zip, '-d', dir]);
  assert.equal(r.code, 0, r.stderr);
}

/** unzip -Z (zipinfo) lines: permissions, version, system, ..., name. */
function zipinfo(zip: string): string[] {
  const r = run(UNZIP, ['-Z', zip]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => /^[-d]/.test(l));
}

function names(zip: string): string[] {
  const r = run(UNZIP, ['-Z1', zip]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

const SIZE_LINE = (arch: string) =>
  new RegExp(
    `auditship-lambda-${arch}\\.zip: [\\d.]+ MiB \\((\\d+) bytes\\) zipped, [\\d.]+ MiB \\((\\d+) bytes\\) unzipped, \\d+ files, @duckdb/node-bindings-linux-`,
  );

describe('npm run package:lambda', () => {
  const base = mkdtempSync(join(tmpdir(), 'auditship-lambda-'));
  const cache = join(base, 'cache');
  const firstOut = join(base, 'first');
  const x64Zip = join(firstOut, 'auditship-lambda-x86_64.zip');
  const armZip = join(firstOut, 'auditship-lambda-arm64.zip');
  let x64Build: Run;
  /** Why the arm64 zip could not be built (the npm registry out of reach), or null. */
  let armUnavailable: string | null = null;

  // npm pack without its retries (a minute and more when the registry is out of reach): the arm64 test skips.
  const npmEnv = { ...process.env, npm_config_fetch_retries: '0', npm_config_fetch_timeout: '30000' };
  const packageLambda = (...args: string[]) => run(process.execPath, [SCRIPT, '--cache', cache, ...args], { cwd: ROOT, env: npmEnv });

  before(() => {
    ensureUnzip();
    x64Build = packageLambda('--arch', 'x86_64', '--out', firstOut);
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  test("x86_64: one line with the sizes; the glibc the binding needs is at most Amazon Linux 2023's", () => {
    assert.equal(x64Build.code, 0, x64Build.stderr);
    const m = SIZE_LINE('x86_64').exec(x64Build.stdout);
    assert.ok(m, x64Build.stdout);
    assert.equal(Number(m[1]), readFileSync(x64Zip).length);
    assert.ok(Number(m[2]) > Number(m[1]) && Number(m[2]) < 250 * 1024 * 1024);
    assert.match(x64Build.stdout, /x86_64: native code needs at most GLIBC_2\.\d+ \(.*\); Amazon Linux 2023 has GLIBC_2\.34: ok/);
  });

  test('x86_64: index.mjs at the root exports handler; @duckdb/node-api from the zip runs SELECT 42', () => {
    const dir = join(base, 'x86_64');
    extract(x64Zip, dir);
    const out = nodeIn(
      dir,
      `
      import { createRequire } from 'node:module';
      import { resolve } from 'node:path';
      const mod = await import('./index.mjs');
      const require = createRequire(resolve('index.mjs'));
      const api = require('@duckdb/node-api');
      const instance = await api.DuckDBInstance.create(':memory:');
      const connection = await instance.connect();
      const rows = (await connection.runAndReadAll('SELECT 42 AS answer')).getRowObjectsJson();
      connection.closeSync();
      instance.closeSync();
      console.log(JSON.stringify({ handler: typeof mod.handler, rows, from: require.resolve('@duckdb/node-api'), wasm: require.resolve('@bokuweb/zstd-wasm') }));
      `,
    ) as { handler: string; rows: unknown; from: string; wasm: string };
    assert.equal(out.handler, 'function');
    assert.deepEqual(out.rows, [{ answer: 42 }]);
    assert.ok(out.from.startsWith(`${dir}/node_modules/@duckdb/node-api/`), out.from);
    assert.ok(existsSync(join(dir, 'node_modules/@bokuweb/zstd-wasm/dist/common/zstd.wasm')), 'zstd.wasm next to the module that reads it');
  });

  test('x86_64: Unix modes 0644 and 0755, one timestamp, the x64 binding only', () => {
    const lines = zipinfo(x64Zip);
    assert.ok(lines.length > 10);
    for (const l of lines) {
      assert.match(l, /^(-rw-r--r--|drwxr-xr-x) +2\.0 unx /, l);
      assert.match(l, / 80-Jan-01 00:00 /, l);
    }
    const all = names(x64Zip);
    assert.ok(all.includes('index.mjs'));
    assert.ok(all.includes('node_modules/@duckdb/node-bindings-linux-x64/duckdb.node'));
    assert.ok(all.includes('node_modules/@duckdb/node-bindings-linux-x64/libduckdb.so'));
    assert.ok(!all.some((n) => n.includes('node-bindings-linux-arm64')));
  });

  test('arm64: the arm64 binding (from the npm registry), not the x64 one', (t) => {
    const r = packageLambda('--arch', 'arm64', '--out', firstOut);
    if (r.code !== 0 && /npm pack .* failed/.test(r.stderr)) {
      armUnavailable = r.stderr.trim().split('\n').pop()!;
      t.skip(`the npm registry is out of reach, no arm64 binding: ${armUnavailable}`);
      return;
    }
    assert.equal(r.code, 0, r.stderr);
    assert.ok(SIZE_LINE('arm64').exec(r.stdout), r.stdout);
    assert.match(r.stdout, /arm64: native code needs at most GLIBC_2\.\d+ .*: ok/);
    const all = names(armZip);
    assert.ok(all.includes('node_modules/@duckdb/node-bindings-linux-arm64/duckdb.node'));
    assert.ok(all.includes('node_modules/@duckdb/node-bindings-linux-arm64/libduckdb.so'));
    assert.ok(!all.some((n) => n.includes('node-bindings-linux-x64')));
    // The same files in both, but for the binding's directory name.
    const normal = (zip: string) => names(zip).map((n) => n.replace(/node-bindings-linux-(x64|arm64)/, 'node-bindings-linux-ARCH'));
    assert.deepEqual(normal(armZip), normal(x64Zip));
  });

  test('reproducible: built again, both zips are the same bytes', (t) => {
    const again = join(base, 'again');
    const arches = armUnavailable ? ['x86_64'] : ['x86_64', 'arm64'];
    const r = packageLambda(...arches.flatMap((a) => ['--arch', a]), '--out', again);
    assert.equal(r.code, 0, r.stderr);
    for (const arch of arches) {
      const name = `auditship-lambda-${arch}.zip`;
      assert.ok(readFileSync(join(firstOut, name)).equals(readFileSync(join(again, name))), `${name} differs between two builds`);
    }
    if (armUnavailable) t.diagnostic(`arm64 not compared: ${armUnavailable}`);
  });

  test('a handler bundled with the AWS SDK, pg, zstd, yaml, DuckDB and the parser thread works from the zip', () => {
    const out = join(base, 'fixture');
    const r = packageLambda('--arch', 'x86_64', '--out', out, '--entry', join(ROOT, 'test', 'lambda', 'fixture-handler.ts'));
    assert.equal(r.code, 0, r.stderr);
    const dir = join(base, 'fixture-x86_64');
    extract(join(out, 'auditship-lambda-x86_64.zip'), dir);
    assert.ok(existsSync(join(dir, 'parse-worker.js')), 'the parser thread is bundled next to index.mjs');
    const logFile = join(ROOT, 'examples', 'pgaudit-logs', 'postgresql-2026-11-22_031157.csv');
    const result = nodeIn(
      dir,
      `
      const { handler } = await import('./index.mjs');
      console.log(JSON.stringify(await handler({ logFile: ${JSON.stringify(logFile)} }, {})));
      `,
    ) as Record<string, unknown>;
    assert.deepEqual(result, {
      s3: 'ECONNREFUSED',
      rds: 'ECONNREFUSED',
      pgNative: null,
      pgClient: 'function',
      zstd: { input: 10000, output: (result.zstd as { output: number }).output, magic: '28b52ffd' },
      yaml: 42,
      duckdb: { answer: 42 },
      parser: { events: (result.parser as { events: number }).events, errors: 0 },
    });
    assert.ok((result.parser as { events: number }).events > 0, 'the parser thread read events');
  });

  test('the table CRC-32 (Node before 20.15) agrees with zlib.crc32', () => {
    const out = nodeIn(
      ROOT,
      `
      import zlib from 'node:zlib';
      import { randomBytes } from 'node:crypto';
      const { tableCrc32 } = await import(${JSON.stringify(SCRIPT)});
      const bufs = [Buffer.alloc(0), Buffer.from('123456789'), randomBytes(100000)];
      console.log(JSON.stringify({ check: tableCrc32(bufs[1]).toString(16), same: bufs.every((b) => tableCrc32(b) === zlib.crc32(b) >>> 0) || typeof zlib.crc32 !== 'function' }));
      `,
    );
    assert.deepEqual(out, { check: 'cbf43926', same: true });
  });

  test('an unknown --arch is refused', () => {
    const r = packageLambda('--arch', 'ppc64', '--out', join(base, 'never'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown --arch ppc64/);
    assert.ok(!existsSync(join(base, 'never')));
  });
});
