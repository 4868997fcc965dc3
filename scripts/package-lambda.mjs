#!/usr/bin/env node
// `npm run package:lambda`: builds the AWS Lambda deployment zips, one per architecture, for the nodejs20.x
// and nodejs22.x runtimes (handler setting `index.handler`).
//
//   node scripts/package-lambda.mjs [--arch x86_64|arm64] [--config FILE] [--out DIR] [--cache DIR] [--entry FILE]
//
// --arch builds one zip (default: both); --out is where the zips go (default build/lambda); --cache holds the
// binding packages of the other architecture, fetched with `npm pack` (default build/cache); --entry bundles
// another handler module (default src/lambda/index.ts; the tests bundle a fixture); --config puts a config file
// in the zip as auditship.yaml, which the handler reads when no AUDITSHIP_CONFIG* variable names another.
//
// A zip holds:
//   index.mjs          the handler and everything it imports, bundled by esbuild: ESM, platform node, target
//                      node20, not minified (see BUNDLE below), no source map. The AWS SDK v3 is in it: the
//                      runtime's own SDK is another version.
//   parse-worker.js    the pg_logs parser thread, bundled alone, when the handler uses it (src/sources/pg-logs/
//   package.json       parse-thread.ts starts new URL('./parse-worker.js', import.meta.url)); package.json
//                      ({"type":"module"}) makes that .js an ES module.
//   node_modules/      the packages the bundle leaves out (RUNTIME_PACKAGES) and their dependencies, copied
//                      as installed: DuckDB's native binding for the zip's architecture, and the packages src/
//                      loads with createRequire(import.meta.url)(...), which esbuild cannot follow.
//
// Checks that fail the build: a native file of the wrong architecture, or one that needs a GLIBC newer than
// Amazon Linux 2023's 2.34 (or a libstdc++ newer than its GCC 11 one); more than 250 MB unzipped (Lambda's
// hard limit). Over 50 MB zipped (the limit of a direct upload; through S3 it is fine) is a warning.
//
// The zip is written here (no `zip` command): entries in sorted order, 0644 files and 0755 directories, one
// fixed timestamp and no extra fields, so the same inputs give the same bytes.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');

/** Lambda's architecture names → Node's process.arch and the ELF e_machine of its native code. */
const ARCHES = {
  x86_64: { node: 'x64', elfMachine: 62, elfName: 'x86-64' },
  arm64: { node: 'arm64', elfMachine: 183, elfName: 'AArch64' },
};

/**
 * Left out of the bundle and copied into node_modules/ with their dependencies. The DuckDB packages load a
 * native binding (a .node file and libduckdb.so next to it); @bokuweb/zstd-wasm reads zstd.wasm from its own
 * directory (readFile(resolve(__dirname, './zstd.wasm'))) and yaml: src loads both with
 * createRequire(import.meta.url), which esbuild does not follow; the require resolves from index.mjs, i.e. in
 * the zip's node_modules/.
 */
const RUNTIME_PACKAGES = ['@duckdb/node-api', '@duckdb/node-bindings', '@bokuweb/zstd-wasm', 'yaml'];
const BINDINGS = '@duckdb/node-bindings';
/** Never installed: pg loads it lazily, in a try/catch, only for `pg.native`. */
const IGNORED = ['pg-native'];
/** Files of the copied packages nothing loads at run time. */
const PRUNE = /(\.d\.[cm]?ts|\.map|\.md)$/i;

/**
 * Amazon Linux 2023 (the nodejs20.x and nodejs22.x runtimes): glibc 2.34; libstdc++ of GCC 11
 * (GLIBCXX_3.4.29, CXXABI_1.3.13).
 */
const RUNTIME_LIMITS = { GLIBC: [2, 34], GLIBCXX: [3, 4, 29], CXXABI: [1, 3, 13] };

const MB = 1024 * 1024;
const ZIPPED_LIMIT = 50 * MB;
const UNZIPPED_LIMIT = 250 * MB;

const BUNDLE = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Not minified. Measured on a bundle of the whole CLI (the AWS SDK, pg, mysql2, all of src): 4.6 MB, 1.0 MB
  // zipped; minified 2.5 MB, 0.8 MB zipped — 0.2 MB off a zip of ~24 MB (the DuckDB library). Unminified, a
  // stack trace in CloudWatch has the real names and a line one can read in index.mjs (esbuild heads each
  // module with a `// path` comment) without a source map, which would be larger than the bundle (7.3 MB,
  // 1.6 MB zipped). Names also stay what code and errors print (constructor names, err.name).
  minify: false,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  // esbuild's ESM output has no require, __filename or __dirname; bundled CommonJS (the AWS SDK, pg, mysql2)
  // uses them, and require() of Node's built-ins or of an external goes through this require.
  banner: {
    js: [
      "import { createRequire as __auditshipCreateRequire } from 'node:module';",
      "import { fileURLToPath as __auditshipFileURLToPath } from 'node:url';",
      "import { dirname as __auditshipDirname } from 'node:path';",
      'const require = __auditshipCreateRequire(import.meta.url);',
      'const __filename = __auditshipFileURLToPath(import.meta.url);',
      'const __dirname = __auditshipDirname(__filename);',
    ].join('\n'),
  },
};

function fail(message) {
  console.error(`package-lambda: ${message}`);
  process.exit(1);
}

function warn(message) {
  console.error(`package-lambda: warning: ${message}`);
}

function parseOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        arch: { type: 'string', multiple: true },
        out: { type: 'string' },
        cache: { type: 'string' },
        entry: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    fail(`${err.message}\nusage: node scripts/package-lambda.mjs [--arch x86_64|arm64] [--config FILE] [--out DIR] [--cache DIR] [--entry FILE]`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log('usage: node scripts/package-lambda.mjs [--arch x86_64|arm64] [--config FILE] [--out DIR] [--cache DIR] [--entry FILE]');
    process.exit(0);
  }
  const arches = v.arch ?? Object.keys(ARCHES);
  for (const a of arches) if (!(a in ARCHES)) fail(`unknown --arch ${a} (x86_64 or arm64)`);
  return {
    arches: [...new Set(arches)],
    out: resolve(v.out ?? join(root, 'build', 'lambda')),
    cache: resolve(v.cache ?? join(root, 'build', 'cache')),
    entry: resolve(v.entry ?? join(root, 'src', 'lambda', 'index.ts')),
    config: v.config === undefined ? undefined : resolve(v.config),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The bundle

/** Packages src/ loads with createRequire(import.meta.url)('name'): esbuild leaves those calls as they are. */
const CREATE_REQUIRE = /createRequire\(\s*import\.meta\.url\s*\)\(\s*['"]([^'"]+)['"]/g;
/** Files found next to the module at run time: only parse-worker.js exists in the zip. */
const FILE_URL = /new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g;

function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

async function bundle(entry) {
  if (!existsSync(entry)) fail(`${relative(root, entry)} does not exist`);
  const esbuild = await import('esbuild');
  const external = [...RUNTIME_PACKAGES.flatMap((p) => [p, `${p}/*`]), ...IGNORED];
  const build = async (entryPoint) => {
    const r = await esbuild.build({ ...BUNDLE, entryPoints: [entryPoint], external, write: false, metafile: true, outfile: join(root, 'out.mjs') });
    return { code: r.outputFiles[0].contents, inputs: Object.keys(r.metafile.inputs) };
  };
  const main = await build(entry);
  const files = [{ path: 'index.mjs', data: Buffer.from(main.code) }];
  const inputs = new Set(main.inputs);
  const worker = 'src/sources/pg-logs/parse-worker.ts';
  if (main.inputs.includes('src/sources/pg-logs/parse-thread.ts')) {
    const w = await build(join(root, worker));
    for (const i of w.inputs) inputs.add(i);
    files.push({ path: 'parse-worker.js', data: Buffer.from(w.code) }, { path: 'package.json', data: Buffer.from('{ "type": "module" }\n') });
  }
  // What esbuild cannot see: a createRequire of a package not copied, a file read next to a module.
  for (const input of [...inputs].sort()) {
    if (input.startsWith('node_modules/') || !/\.[cm]?[jt]s$/.test(input)) continue;
    const text = readFileSync(join(root, input), 'utf8');
    for (const m of text.matchAll(CREATE_REQUIRE)) {
      const name = packageName(m[1]);
      if (!m[1].startsWith('.') && !m[1].startsWith('node:') && !RUNTIME_PACKAGES.includes(name)) {
        fail(`${input} loads ${m[1]} with createRequire, which esbuild does not bundle: add ${name} to RUNTIME_PACKAGES in scripts/package-lambda.mjs`);
      }
    }
    for (const m of text.matchAll(FILE_URL)) {
      if (input === 'src/sources/pg-logs/parse-thread.ts' && m[1].startsWith('./parse-worker.')) continue;
      warn(`${input} refers to ${m[1]} next to itself (new URL(..., import.meta.url)): the zip has no such file, so that code path fails in Lambda`);
    }
  }
  return files;
}

// ---------------------------------------------------------------------------------------------------------
// node_modules

function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** Node's lookup: `name` as seen from the package in `fromDir` (its own node_modules, then its parents'). */
function findInstalled(name, fromDir) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === dirname(dir)) return null;
  }
}

/** Every file under `dir`, as [path relative to dir, absolute path]. */
function walk(dir, base = dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name === 'node_modules') continue; // nested dependencies are copied as dependencies
      out.push(...walk(p, base));
    } else if (entry.isFile()) out.push([relative(base, p).split(sep).join('/'), p]);
    else if (entry.isSymbolicLink()) fail(`${p} is a symbolic link: the zip holds regular files only`);
  }
  return out;
}

/**
 * The installed packages RUNTIME_PACKAGES need, dependencies included (not optional ones: the binding is
 * chosen per architecture), as { name, dir, zipDir } with zipDir its place in the zip (as installed here).
 */
function runtimePackages() {
  const found = new Map();
  const visit = (name, fromDir, requiredBy) => {
    const dir = findInstalled(name, fromDir);
    if (!dir) fail(`${name} (needed by ${requiredBy}) is not installed: run npm install`);
    if (found.has(dir)) return;
    const pkg = readJson(join(dir, 'package.json'));
    found.set(dir, { name, dir, zipDir: relative(root, dir).split(sep).join('/'), pkg });
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, name);
  };
  for (const name of RUNTIME_PACKAGES) visit(name, root, 'the bundle');
  return [...found.values()];
}

/** The binding package for `arch` at the exact version @duckdb/node-bindings pins. */
function bindingSpec(packages, arch) {
  const bindings = packages.find((p) => p.name === BINDINGS);
  const name = `@duckdb/node-bindings-linux-${ARCHES[arch].node}`;
  const version = bindings.pkg.optionalDependencies?.[name];
  if (!version) fail(`${BINDINGS} ${bindings.pkg.version} has no optional dependency ${name}`);
  return { name, version, zipDir: `${bindings.zipDir.slice(0, -BINDINGS.length)}${name}`, bindingsDir: bindings.dir };
}

/** The lock file's integrity for `name@version`, if it lists that package. */
function lockedIntegrity(name, version) {
  const lockPath = join(root, 'package-lock.json');
  if (!existsSync(lockPath)) return null;
  const entry = readJson(lockPath).packages?.[`node_modules/${name}`];
  return entry && entry.version === version ? entry.integrity : null;
}

function sha512Integrity(data) {
  return `sha512-${createHash('sha512').update(data).digest('base64')}`;
}

/**
 * The binding's directory: the installed one when it is that version, else the npm registry's tarball
 * (`npm pack`, which checks the registry's integrity; checked again here against package-lock.json),
 * unpacked under the cache directory. --prefer-offline: a version pinned by its hash may come from npm's own
 * cache, so a machine that fetched it once builds offline.
 */
function bindingDir(spec, cacheDir) {
  const installed = findInstalled(spec.name, spec.bindingsDir);
  if (installed && readJson(join(installed, 'package.json')).version === spec.version) return installed;

  const flat = `${spec.name.replace(/^@/, '').replace('/', '-')}-${spec.version}`;
  const tgz = join(cacheDir, `${flat}.tgz`);
  const unpacked = join(cacheDir, flat);
  const locked = lockedIntegrity(spec.name, spec.version);
  if (!existsSync(tgz)) {
    mkdirSync(cacheDir, { recursive: true });
    console.log(`package-lambda: fetching ${spec.name}@${spec.version} from the npm registry (npm pack)`);
    let packed;
    try {
      const json = execFileSync(
        'npm',
        ['pack', `${spec.name}@${spec.version}`, '--json', '--ignore-scripts', '--prefer-offline', '--pack-destination', cacheDir],
        {
          cwd: cacheDir,
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      packed = JSON.parse(json)[0];
    } catch (err) {
      fail(`npm pack ${spec.name}@${spec.version} failed (${err.message.split('\n')[0]}); is the npm registry reachable?`);
    }
    const got = join(cacheDir, packed.filename);
    if (got !== tgz) renameSync(got, tgz);
  }
  const data = readFileSync(tgz);
  if (locked && sha512Integrity(data) !== locked) {
    rmSync(tgz, { force: true });
    rmSync(unpacked, { recursive: true, force: true });
    fail(`${tgz} does not match the integrity package-lock.json records for ${spec.name}@${spec.version}; removed it, run again`);
  }
  if (!locked) warn(`package-lock.json does not list ${spec.name}@${spec.version}: relying on npm pack's integrity check alone`);
  if (!existsSync(join(unpacked, 'package.json'))) {
    const tmp = `${unpacked}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    for (const f of untar(zlib.gunzipSync(data))) {
      mkdirSync(dirname(join(tmp, f.path)), { recursive: true });
      writeFileSync(join(tmp, f.path), f.data);
    }
    rmSync(unpacked, { recursive: true, force: true });
    renameSync(tmp, unpacked);
  }
  const version = readJson(join(unpacked, 'package.json')).version;
  if (version !== spec.version) fail(`${unpacked} holds ${spec.name} ${version}, not ${spec.version}`);
  return unpacked;
}

/** The regular files of a tar archive (ustar, pax and GNU long names), the first path component removed. */
function untar(buf) {
  const files = [];
  let longName = null;
  for (let at = 0; at + 512 <= buf.length;) {
    const header = buf.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const text = (start, len) => header.toString('utf8', start, start + len).replace(/\0.*$/s, '');
    const size = parseInt(text(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    const data = buf.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    const prefix = header.toString('latin1', 257, 262) === 'ustar' ? text(345, 155) : '';
    let name = longName ?? (prefix ? `${prefix}/${text(0, 100)}` : text(0, 100));
    longName = null;
    if (type === 'x') {
      const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'));
      if (m) longName = m[1];
      continue;
    }
    if (type === 'L') {
      longName = data.toString('utf8').replace(/\0.*$/s, '');
      continue;
    }
    if (type !== '0' && type !== '7') continue; // directories are implied; npm tarballs hold nothing else
    const path = name.split('/').slice(1).join('/');
    if (!path || path.split('/').some((p) => p === '..' || p === '') || name.startsWith('/')) fail(`unsafe path in a tarball: ${name}`);
    files.push({ path, data: Buffer.from(data) });
  }
  return files;
}

// ---------------------------------------------------------------------------------------------------------
// Native code: architecture and symbol versions (the ELF .gnu.version_r section, as `readelf -V` shows it)

/** The e_machine and the versions a little-endian ELF64 file needs, e.g. ['GLIBC_2.17', 'GLIBCXX_3.4.20']. */
function elfNeeds(buf, name) {
  if (buf.readUInt32BE(0) !== 0x7f454c46) return null;
  if (buf[4] !== 2 || buf[5] !== 1) fail(`${name}: not a little-endian 64-bit ELF file`);
  const machine = buf.readUInt16LE(18);
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const section = (i) => {
    const o = shoff + i * shentsize;
    return { type: buf.readUInt32LE(o + 4), offset: Number(buf.readBigUInt64LE(o + 24)), link: buf.readUInt32LE(o + 40), info: buf.readUInt32LE(o + 44) };
  };
  const cstr = (o) => buf.toString('latin1', o, buf.indexOf(0, o));
  const needs = [];
  let verneed = false;
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== 0x6ffffffe) continue; // SHT_GNU_verneed
    verneed = true;
    const strtab = section(s.link).offset;
    let vn = s.offset;
    for (let n = 0; n < s.info; n++) {
      let aux = vn + buf.readUInt32LE(vn + 8);
      for (let k = 0; k < buf.readUInt16LE(vn + 2); k++) {
        needs.push(cstr(strtab + buf.readUInt32LE(aux + 8)));
        aux += buf.readUInt32LE(aux + 12);
      }
      vn += buf.readUInt32LE(vn + 12);
    }
  }
  if (!verneed && shnum === 0) fail(`${name}: no section headers, cannot read the versions it needs`);
  return { machine, needs };
}

function compareVersions(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  return 0;
}

/** Fails when a native (ELF) file is for another architecture or needs more than Amazon Linux 2023 has. */
function checkNative(files, arch) {
  const max = {};
  let natives = 0;
  for (const f of files) {
    const elf = elfNeeds(f.data, f.path);
    if (!elf) continue;
    natives++;
    if (elf.machine !== ARCHES[arch].elfMachine) fail(`${f.path} is not ${ARCHES[arch].elfName} code (ELF machine ${elf.machine}): wrong binding for ${arch}`);
    for (const need of elf.needs) {
      const m = /^(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)*)$/.exec(need);
      if (!m) continue;
      const version = m[2].split('.').map(Number);
      if (!max[m[1]] || compareVersions(version, max[m[1]].version) > 0) max[m[1]] = { version, file: f.path };
    }
  }
  if (natives === 0) fail(`no native code in the ${arch} zip: the DuckDB binding is missing`);
  const glibc = max.GLIBC ? `GLIBC_${max.GLIBC.version.join('.')} (${max.GLIBC.file.split('/').pop()})` : 'no versioned glibc symbol';
  const problems = [];
  for (const [lib, limit] of Object.entries(RUNTIME_LIMITS)) {
    if (max[lib] && compareVersions(max[lib].version, limit) > 0) {
      problems.push(`${max[lib].file} needs ${lib}_${max[lib].version.join('.')}, newer than Amazon Linux 2023's ${lib}_${limit.join('.')}`);
    }
  }
  if (problems.length) fail(`${arch}: the native binding will not load in Lambda:\n  ${problems.join('\n  ')}`);
  return `${arch}: native code needs at most ${glibc}; Amazon Linux 2023 has GLIBC_${RUNTIME_LIMITS.GLIBC.join('.')}: ok`;
}

// ---------------------------------------------------------------------------------------------------------
// The zip

let crcTable = null;
/** CRC-32 (IEEE) by table: Node 20 before 20.15 has no zlib.crc32 (the tests compare the two). */
export function tableCrc32(data) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
const crc32 = typeof zlib.crc32 === 'function' ? (data) => zlib.crc32(data) >>> 0 : tableCrc32;

// 1980-01-01 00:00:00 in MS-DOS format, the earliest a zip can say: the same for every build.
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/**
 * A zip of `files` ({ path, data }): directory entries made up from the paths, everything in byte order of
 * the path, deflated (level 6: level 9 takes 2.5 times as long for 0.4% less) or stored when that is smaller.
 * No zip64: Lambda's limits keep every size far below 4 GB.
 */
async function writeZip(files) {
  const entries = new Map();
  for (const f of files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) entries.set(`${parts.slice(0, i).join('/')}/`, null);
    if (entries.has(f.path)) fail(`two files at ${f.path}`);
    entries.set(f.path, f.data);
  }
  const names = [...entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const deflated = await Promise.all(
    names.map((n) => {
      const data = entries.get(n);
      if (!data || data.length === 0) return null;
      return new Promise((res, rej) => zlib.deflateRaw(data, { level: 6 }, (err, out) => (err ? rej(err) : res(out))));
    }),
  );
  const chunks = [];
  const central = [];
  let offset = 0;
  let unzipped = 0;
  names.forEach((name, i) => {
    const data = entries.get(name) ?? Buffer.alloc(0);
    const dir = name.endsWith('/');
    const useDeflate = deflated[i] !== null && deflated[i].length < data.length;
    const body = useDeflate ? deflated[i] : data;
    const crc = data.length ? crc32(data) : 0;
    const nameBuf = Buffer.from(name, 'utf8');
    const flags = /[^\x20-\x7e]/.test(name) ? 0x0800 : 0; // UTF-8 names
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate, directories)
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(useDeflate ? 8 : 0, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(0, 28);
    const cen = Buffer.alloc(46);
    cen.writeUInt32LE(0x02014b50, 0);
    cen.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix (so the external attributes are a mode), 2.0
    cen.writeUInt16LE(20, 6);
    cen.writeUInt16LE(flags, 8);
    cen.writeUInt16LE(useDeflate ? 8 : 0, 10);
    cen.writeUInt16LE(DOS_TIME, 12);
    cen.writeUInt16LE(DOS_DATE, 14);
    cen.writeUInt32LE(crc, 16);
    cen.writeUInt32LE(body.length, 20);
    cen.writeUInt32LE(data.length, 24);
    cen.writeUInt16LE(nameBuf.length, 28);
    // extra, comment, disk number, internal attributes: 0
    const mode = dir ? 0o040755 : 0o100644;
    cen.writeUInt32LE(((mode << 16) | (dir ? 0x10 : 0)) >>> 0, 38);
    cen.writeUInt32LE(offset, 42);
    chunks.push(local, nameBuf, body);
    central.push(cen, nameBuf);
    offset += local.length + nameBuf.length + body.length;
    unzipped += data.length;
  });
  const centralSize = central.reduce((n, b) => n + b.length, 0);
  if (offset + centralSize > 0xffffffff || names.length > 0xffff) fail('the zip would need zip64; it is far over Lambda limits anyway');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(names.length, 8);
  end.writeUInt16LE(names.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return { zip: Buffer.concat([...chunks, ...central, end]), unzipped, count: names.filter((n) => !n.endsWith('/')).length };
}

// ---------------------------------------------------------------------------------------------------------

function packageFiles(dir, zipDir) {
  return walk(dir)
    .filter(([rel]) => !PRUNE.test(rel) || /^license/i.test(rel.split('/').pop()))
    .map(([rel, abs]) => ({ path: `${zipDir}/${rel}`, data: readFileSync(abs) }));
}

/** The config to bundle, checked to be YAML (the handler validates it against the schema when it runs). */
async function configFile(path) {
  if (!existsSync(path)) fail(`--config ${path} does not exist`);
  const text = readFileSync(path);
  const { parseDocument } = await import('yaml');
  const doc = parseDocument(text.toString('utf8'));
  if (doc.errors.length)
    fail(`--config ${path}: YAML syntax error at line ${doc.errors[0].linePos?.[0]?.line ?? '?'}: ${doc.errors[0].message.split('\n')[0]}`);
  if (!doc.toJS()?.pipelines) fail(`--config ${path}: no pipelines`);
  return text;
}

function size(bytes) {
  return `${(bytes / MB).toFixed(1)} MiB (${bytes} bytes)`;
}

async function main() {
  const options = parseOptions();
  const bundled = await bundle(options.entry);
  const packages = runtimePackages();
  const common = [...bundled];
  if (options.config) common.push({ path: 'auditship.yaml', data: await configFile(options.config) });
  for (const p of packages) common.push(...packageFiles(p.dir, p.zipDir));
  mkdirSync(options.out, { recursive: true });
  let failed = false;
  for (const arch of options.arches) {
    const spec = bindingSpec(packages, arch);
    const binding = packageFiles(bindingDir(spec, options.cache), spec.zipDir);
    console.log(`package-lambda: ${checkNative([...common, ...binding], arch)}`);
    const { zip, unzipped, count } = await writeZip([...common, ...binding]);
    const file = join(options.out, `auditship-lambda-${arch}.zip`);
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, zip);
    renameSync(tmp, file);
    const shown = relative(process.cwd(), file).startsWith('..') ? file : relative(process.cwd(), file);
    console.log(`${shown}: ${size(zip.length)} zipped, ${size(unzipped)} unzipped, ${count} files, ${spec.name}@${spec.version}`);
    if (unzipped > UNZIPPED_LIMIT) {
      console.error(`package-lambda: ${shown} is over Lambda's 250 MB unzipped limit (${size(unzipped)})`);
      rmSync(file, { force: true });
      failed = true;
    } else if (zip.length > ZIPPED_LIMIT) {
      warn(`${shown} is over 50 MB zipped: too big for a direct upload; deploy it through S3`);
    }
  }
  if (failed) process.exit(1);
}

// Run, unless imported (the tests import tableCrc32).
if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) await main();
