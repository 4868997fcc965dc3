#!/usr/bin/env node
// The test command (`npm test`, and CI through .ci/run): installs what the tests need on this machine kind
// (Debian's postgresql-15-pgaudit, and chromium for the UI tests, when missing; we run as root), starts PostgreSQL and MariaDB when stopped, builds, then runs every test/**/*.test.ts
// with node's test runner. Extra arguments are passed to the runner (e.g. a test file to run alone).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function pgLibDir() {
  try {
    return execFileSync('pg_config', ['--pkglibdir'], { encoding: 'utf8' }).trim();
  } catch {
    return '/usr/lib/postgresql/15/lib';
  }
}

function ensureDebianPackages() {
  const missing = [];
  if (!existsSync(join(pgLibDir(), 'pgaudit.so')) && !existsSync('/usr/lib/postgresql/15/lib/pgaudit.so')) missing.push('postgresql-15-pgaudit');
  if (!existsSync('/usr/lib/postgresql/15/bin/initdb')) missing.push('postgresql-15');
  // The UI's browser tests drive Debian's Chromium (playwright-core never downloads a browser).
  const browser = existsSync('/usr/bin/chromium') ? [] : ['chromium', 'chromium-driver'];
  if (missing.length === 0 && browser.length === 0) return;
  const all = [...missing, ...browser];
  console.log(`test setup: installing Debian packages ${all.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const sudo = process.getuid && process.getuid() !== 0 ? ['sudo'] : [];
  const steps = [['apt-get', 'update', '-qq']];
  if (missing.length) steps.push(['apt-get', 'install', '-y', '-qq', ...missing]);
  if (browser.length) steps.push(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...browser]);
  for (const args of steps) {
    const cmd = [...sudo, ...args];
    const r = spawnSync(cmd[0], cmd.slice(1), { stdio: 'inherit', env });
    if (r.status !== 0) {
      console.error(`test setup: \`${cmd.join(' ')}\` failed; install ${all.join(' ')} by hand`);
      process.exit(1);
    }
  }
}

/** True when something accepts TCP connections on 127.0.0.1:port (within a second). */
function listening(port) {
  const r = spawnSync(process.execPath, [
    '-e',
    `const s=require('net').connect(${port},'127.0.0.1');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),1000)`,
  ]);
  return r.status === 0;
}

/** Starts PostgreSQL or MariaDB when stopped, with the machine's own commands, and waits for it. */
function ensureServices() {
  const services = [
    { name: 'PostgreSQL', port: 5432, start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main start' },
    { name: 'MariaDB', port: 3306, start: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd' },
  ];
  for (const s of services) {
    if (listening(s.port)) continue;
    console.log(`test setup: ${s.name} is not listening on 127.0.0.1:${s.port}; starting it`);
    spawnSync('sh', ['-c', s.start], { stdio: 'inherit' });
    const until = Date.now() + 30_000;
    while (Date.now() < until && !listening(s.port)) spawnSync('sleep', ['0.5']);
    if (!listening(s.port)) {
      console.error(`test setup: ${s.name} did not start (\`${s.start}\`)`);
      process.exit(1);
    }
  }
}

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

ensureDebianPackages();
ensureServices();
if (!existsSync(join(root, 'node_modules', '@duckdb', 'node-api'))) {
  console.log('test setup: npm install');
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.error('test setup: the TypeScript build failed');
  process.exit(1);
}

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith('-'));
const flags = args.filter((a) => a.startsWith('-'));
const tests = files.length ? files : findTests(join(root, 'test'));
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...flags, ...tests], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
