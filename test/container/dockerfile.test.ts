/**
 * The container image recipe (Dockerfile, .dockerignore at the repository root).
 *
 *  1. Lint, always: checks of our own (no hadolint here), each one a function that returns its problems, run on
 *     the real Dockerfile (no problem expected) and on a deliberately bad one (every check must object, so a
 *     check that can never fail is caught).
 *  2. The runtime layout without a container: the final stage's COPYs replayed into a temporary directory —
 *     context files from the repository, the npm-ci-only stage (production node_modules) replayed with its own
 *     `npm ci` command, the build stage stood in for by the repository itself (scripts/test.mjs installed and
 *     built it) — owned as the COPYs' --chown says by a stand-in for the image's user (`nobody`), and auditship
 *     run from there as that user: --help, run --help, and a real `run` configured by $AUDITSHIP_CONFIG whose
 *     DuckDB file lands in the working directory (/data in the image).
 *  3. The image itself, where a container engine works (`podman info` or `docker info` succeeds, the base image
 *     is there or can be pulled, and a container starts): built, then `run --help` and `id -u` in it.
 *     Otherwise skipped, with the reason. When the Dockerfile's default base (node:22-bookworm-slim) is missing
 *     and cannot be pulled, a local node:N-bookworm-slim whose N satisfies package.json's engines is used with
 *     --build-arg NODE_VERSION=N.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT } from '../helpers/ingest-cli.js';

// ---------------------------------------------------------------------------------------------------------
// A Dockerfile, parsed: enough of the syntax for these checks (line continuations, comments, exec form).

interface Instruction {
  /** Upper case: FROM, RUN, COPY, ... */
  cmd: string;
  /** Everything after the keyword, continuation lines joined with a space. */
  args: string;
  /** 1-based line of the keyword. */
  line: number;
}

interface Stage {
  /** The image as written (after ${ARG} substitution with the global ARG defaults). */
  image: string;
  name: string | null;
  index: number;
  instructions: Instruction[];
}

interface Dockerfile {
  text: string;
  /** ARGs before the first FROM, with their defaults. */
  globalArgs: Map<string, string>;
  /** Every instruction, in order (ARGs before the first FROM included). */
  all: Instruction[];
  stages: Stage[];
}

function parseDockerfile(text: string): Dockerfile {
  const all: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!.trim();
    if (first === '' || first.startsWith('#')) continue;
    const start = i + 1;
    let joined = first;
    while (joined.endsWith('\\') && i + 1 < lines.length) {
      joined = joined.slice(0, -1).trimEnd();
      i++;
      const next = lines[i]!.trim();
      if (next.startsWith('#')) continue; // a comment inside a continued instruction is dropped, as Docker does
      joined += ' ' + next;
    }
    const m = /^(\S+)\s*(.*)$/.exec(joined)!;
    all.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of all) {
    if (ins.cmd === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const image = substitute(words[0] ?? '', globalArgs);
      const name = words.length >= 3 && words[1]!.toUpperCase() === 'AS' ? words[2]! : null;
      stages.push({ image, name, index: stages.length, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.cmd === 'ARG') {
        const [k, v] = splitAssignment(ins.args);
        globalArgs.set(k, v ?? '');
      }
    } else stages.at(-1)!.instructions.push(ins);
  }
  return { text, globalArgs, all, stages };
}

function substitute(s: string, vars: Map<string, string>): string {
  return s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => vars.get((a ?? b)!) ?? '');
}

function splitAssignment(s: string): [string, string | undefined] {
  const eq = s.indexOf('=');
  return eq < 0 ? [s.trim(), undefined] : [s.slice(0, eq).trim(), unquote(s.slice(eq + 1).trim())];
}

function unquote(s: string): string {
  return /^(["']).*\1$/.test(s) ? s.slice(1, -1) : s;
}

/** ENV's pairs: `ENV A=1 B="2 3"` or the legacy `ENV A 1 2`. */
function envPairs(args: string): [string, string][] {
  if (!/^[\w.-]+=/.test(args)) {
    const m = /^(\S+)\s+(.*)$/.exec(args);
    return m ? [[m[1]!, m[2]!]] : [[args, '']];
  }
  const out: [string, string][] = [];
  for (const m of args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) out.push([m[1]!, unquote(m[2]!)]);
  return out;
}

interface Copy {
  from: string | null;
  chown: string | null;
  sources: string[];
  dest: string;
  line: number;
}

function parseCopy(ins: Instruction): Copy {
  const flags = new Map<string, string>();
  let rest = ins.args;
  for (let m = /^--([\w-]+)(?:=(\S*))?\s+/.exec(rest); m; m = /^--([\w-]+)(?:=(\S*))?\s+/.exec(rest)) {
    flags.set(m[1]!, m[2] ?? '');
    rest = rest.slice(m[0].length);
  }
  const words = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  return { from: flags.get('from') ?? null, chown: flags.get('chown') ?? null, sources: words.slice(0, -1), dest: words.at(-1)!, line: ins.line };
}

/** The exec form's array, or null for the shell form (or anything that is not an array of strings). */
function execForm(args: string): string[] | null {
  try {
    const v = JSON.parse(args) as unknown;
    return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? v : null;
  } catch {
    return null;
  }
}

const finalStage = (df: Dockerfile): Stage => df.stages.at(-1)!;

/**
 * Where a COPY source lands: a directory's contents go into the destination itself; a file goes into it when the
 * destination ends with / (or there are several sources), else it is the destination. `isDir` tells which.
 */
function copyTarget(c: Copy, destDir: string, source: string, isDir: boolean): string {
  return !isDir && (c.dest.endsWith('/') || c.sources.length > 1) ? posix.join(destDir, posix.basename(source)) : destDir;
}
const stageByName = (df: Dockerfile, name: string): Stage | undefined => df.stages.find((s) => s.name === name || String(s.index) === name);

/** The stage's WORKDIR in effect before instruction `upTo` (absolute; `/` when none). */
function workdirAt(stage: Stage, upTo: Instruction | null): string {
  let wd = '/';
  for (const ins of stage.instructions) {
    if (ins === upTo) break;
    if (ins.cmd === 'WORKDIR') wd = posix.resolve(wd, ins.args);
  }
  return wd;
}

function lastOf(stage: Stage, cmd: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.cmd === cmd).at(-1);
}

/** The final stage's environment (ENV only; the base image's own variables are not known here). */
function finalEnv(df: Dockerfile): Map<string, string> {
  const env = new Map<string, string>();
  for (const ins of finalStage(df).instructions) if (ins.cmd === 'ENV') for (const [k, v] of envPairs(ins.args)) env.set(k, v);
  return env;
}

// ---------------------------------------------------------------------------------------------------------
// .dockerignore, evaluated as Docker (moby/patternmatcher) and podman (buildah) do: the last matching pattern
// wins, `!` lets a path back in, a pattern matching a parent directory matches what is below it, `*` and `?`
// stay within one path component, `**` spans any number of them.

interface IgnoreRule {
  negate: boolean;
  re: RegExp;
}

function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split('\n')) {
    let p = raw.trim();
    if (p === '' || p.startsWith('#')) continue;
    const negate = p.startsWith('!');
    if (negate) p = p.slice(1).trim();
    p = posix.normalize(p).replace(/^\/+/, '').replace(/\/+$/, '');
    let re = '';
    for (let i = 0; i < p.length; i++) {
      const c = p[i]!;
      if (c === '*' && p[i + 1] === '*') {
        i++;
        if (p[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    rules.push({ negate, re: new RegExp(`^${re}$`) });
  }
  return rules;
}

/** True when the context path (relative, `/`-separated) is left out of the build context. */
function ignored(rules: IgnoreRule[], path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let out = false;
  for (const r of rules) if (candidates.some((c) => r.re.test(c))) out = !r.negate;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The checks. Each returns its problems, one line each, with the Dockerfile's line number where there is one.

interface Context {
  df: Dockerfile;
  dockerignore: string | null;
  /** package.json and package-lock.json of the repository. */
  pkg: { engines?: { node?: string }; files?: string[] };
  lock: { packages: Record<string, { dev?: boolean; optional?: boolean; hasInstallScript?: boolean; os?: string[]; cpu?: string[]; libc?: string[] }> };
}

const BASE_RE = /^node:(\d+)-(?:bookworm-)?slim(?:@sha256:[0-9a-f]{64})?$/;
/** What the image must hold under /app, and why. */
const RUNTIME_PATHS: Record<string, string> = {
  'bin/auditship.js': 'the entry point',
  'dist/cli/main.js': 'the compiled CLI (built in the image)',
  'package.json': 'the CLI reads its version from it',
  'src/ui/static': "the web UI's page and scripts (dist/ui/http.js serves ../../src/ui/static)",
  node_modules: 'production dependencies, with the DuckDB binding of the platform',
};
/** package.json "files" entries the image does not need to run. */
const NOT_NEEDED_AT_RUN_TIME = new Set(['auditship.example.yaml']);
/** Dev dependencies with an install script that `npm run build` (tsc) does not use: esbuild bundles the Lambda zip. */
const DEV_INSTALL_SCRIPTS_NOT_NEEDED = new Set(['esbuild']);
const SECRET_NAME = /(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)/i;

/** The Node major a base image tag names, or null when it does not name one. */
function baseMajor(image: string): number | null {
  const m = BASE_RE.exec(image);
  return m ? Number(m[1]) : null;
}

function copiesOf(stage: Stage): Copy[] {
  return stage.instructions.filter((i) => i.cmd === 'COPY' || i.cmd === 'ADD').map(parseCopy);
}

const CHECKS: { name: string; run: (c: Context) => string[] }[] = [
  {
    name: 'every FROM is a node:<major>-slim or node:<major>-bookworm-slim tag, maybe with a digest (a pinned major, never latest)',
    run: ({ df }) => {
      const problems: string[] = [];
      if (df.stages.length === 0) problems.push('no FROM at all');
      for (const s of df.stages) {
        if (df.stages.some((o) => o.index < s.index && o.name === s.image)) continue; // FROM an earlier stage
        if (baseMajor(s.image) === null) problems.push(`stage ${s.name ?? s.index}: FROM ${s.image || '(empty)'} — want node:<major>-bookworm-slim`);
      }
      return problems;
    },
  },
  {
    name: 'every stage has the same base image (node_modules installed in one stage run in another)',
    run: ({ df }) => {
      const bases = new Set(df.stages.filter((s) => !df.stages.some((o) => o.name === s.image)).map((s) => s.image));
      return bases.size > 1 ? [`several base images: ${[...bases].join(', ')}`] : [];
    },
  },
  {
    name: "the base image's Node major satisfies package.json engines.node",
    run: ({ df, pkg }) => {
      const range = pkg.engines?.node ?? '';
      const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.\d+)?$/.exec(range.trim());
      if (!m) return [`package.json engines.node is ${JSON.stringify(range)}: this check understands ">=MAJOR.MINOR" only`];
      const needMajor = Number(m[1]);
      const problems: string[] = [];
      for (const s of df.stages) {
        const major = baseMajor(s.image);
        // A node:<major>-* tag follows that major's newest release, so the minor version is met when the major is.
        if (major !== null && major < needMajor) problems.push(`stage ${s.name ?? s.index}: ${s.image} is Node ${major}, engines wants ${range}`);
      }
      return problems;
    },
  },
  {
    name: 'the final stage runs as a non-root USER',
    run: ({ df }) => {
      const user = lastOf(finalStage(df), 'USER');
      if (!user) return ['the final stage has no USER: the container would run as root'];
      const name = user.args.split(':')[0]!.trim();
      return name === 'root' || name === '0' ? [`line ${user.line}: USER ${user.args} is root`] : [];
    },
  },
  {
    name: 'no ADD of a URL or a git repository (unverified downloads)',
    run: ({ df }) =>
      df.all
        .filter((i) => i.cmd === 'ADD')
        .flatMap((i) =>
          parseCopy(i)
            .sources.filter((s) => /^(?:https?|ftp|git|ssh):\/\/|^git@/i.test(s))
            .map((s) => `line ${i.line}: ADD ${s}`),
        ),
  },
  {
    name: 'no download piped into a shell (curl | sh)',
    run: ({ df }) =>
      df.all
        .filter((i) => i.cmd === 'RUN' && (/\b(?:curl|wget)\b[^;&]*\|\s*(?:sudo\s+)?(?:ba|da|z|k)?sh\b/.test(i.args) || /<\(\s*(?:curl|wget)\b/.test(i.args)))
        .map((i) => `line ${i.line}: RUN ${i.args}`),
  },
  {
    name: 'dependencies come from the lock file: npm ci, never npm install',
    run: ({ df }) => {
      const runs = df.all.filter((i) => i.cmd === 'RUN');
      const problems = runs
        .filter(
          (i) => /\bnpm\s+(?:install|i|add|isntall|in|ins|inst|insta|instal|update|up)\b/.test(i.args) || /\b(?:yarn|pnpm)\s+(?:install|add)\b/.test(i.args),
        )
        .map((i) => `line ${i.line}: ${i.args}`);
      if (!runs.some((i) => /\bnpm\s+ci\b/.test(i.args))) problems.push('no RUN npm ci');
      return problems;
    },
  },
  {
    name: 'npm ci --ignore-scripts skips no install script that is needed',
    run: ({ df, lock }) => {
      const problems: string[] = [];
      const withScripts = Object.entries(lock.packages).filter(([k, v]) => k !== '' && v.hasInstallScript);
      for (const i of df.all.filter((x) => x.cmd === 'RUN' && /\bnpm\s+ci\b/.test(x.args) && /--ignore-scripts\b/.test(x.args))) {
        const prodOnly = /--omit=dev\b|--only=prod|--production\b/.test(i.args);
        for (const [key, v] of withScripts) {
          const name = key.replace(/^.*node_modules\//, '');
          if (!v.dev) problems.push(`line ${i.line}: ${name} is a production dependency with an install script`);
          else if (!prodOnly && !DEV_INSTALL_SCRIPTS_NOT_NEEDED.has(name))
            problems.push(
              `line ${i.line}: dev dependency ${name} has an install script the build may need (known not needed: ${[...DEV_INSTALL_SCRIPTS_NOT_NEEDED].join(', ')})`,
            );
        }
      }
      // The native binding is a prebuilt optional package per platform: a glibc Linux image needs both arches' there.
      for (const arch of ['x64', 'arm64']) {
        const p = lock.packages[`node_modules/@duckdb/node-bindings-linux-${arch}`];
        if (!p || !p.libc?.includes('glibc'))
          problems.push(`package-lock.json has no glibc @duckdb/node-bindings-linux-${arch}: a bookworm image on ${arch} gets no DuckDB`);
      }
      return problems;
    },
  },
  {
    name: 'ENTRYPOINT and CMD are in exec (JSON array) form',
    run: ({ df }) => {
      const problems: string[] = [];
      const ep = lastOf(finalStage(df), 'ENTRYPOINT');
      if (!ep) problems.push('the final stage has no ENTRYPOINT');
      for (const i of [ep, lastOf(finalStage(df), 'CMD')])
        if (i && !execForm(i.args)) problems.push(`line ${i.line}: ${i.cmd} ${i.args} is the shell form (signals would go to /bin/sh, not node)`);
      return problems;
    },
  },
  {
    name: 'the runtime stage copies no sources but src/ui/static, no tests, no .git, nothing wholesale',
    run: ({ df }) => {
      const problems: string[] = [];
      for (const c of copiesOf(finalStage(df))) {
        const stage = c.from === null ? null : stageByName(df, c.from);
        // Paths inside a build stage are taken relative to its WORKDIR, so /app/src reads as src.
        const base = stage ? workdirAt(stage, null) : '/';
        for (const s of c.sources) {
          const rel = posix.relative(base, posix.resolve(base, s)) || '.';
          const where = c.from === null ? 'the build context' : `stage ${c.from}`;
          if (rel === '.' || rel.startsWith('..') || /[*?[]/.test(rel)) problems.push(`line ${c.line}: COPY ${s} from ${where} copies everything`);
          else if ((rel === 'src' || rel.startsWith('src/')) && rel !== 'src/ui/static' && !rel.startsWith('src/ui/static/'))
            problems.push(`line ${c.line}: COPY ${s} from ${where}: the runtime needs no sources but src/ui/static`);
          else if (/^(?:test|bench|\.git|examples|scripts)(?:\/|$)/.test(rel)) problems.push(`line ${c.line}: COPY ${s} from ${where}: not needed at run time`);
          else if (c.from === null && /^(?:node_modules|dist)(?:\/|$)/.test(rel))
            problems.push(`line ${c.line}: COPY ${s} from the build context: ${rel.split('/')[0]} must be built in the image, not taken from the host`);
        }
      }
      return problems;
    },
  },
  {
    name: 'the runtime stage holds what auditship needs at run time, copied from files that exist',
    run: ({ df, pkg }) => {
      const problems: string[] = [];
      const stage = finalStage(df);
      const provided: { dest: string; copy: Copy; source: string }[] = [];
      for (const ins of stage.instructions.filter((i) => i.cmd === 'COPY')) {
        const c = parseCopy(ins);
        const wd = workdirAt(stage, ins);
        const destDir = posix.resolve(wd, c.dest);
        for (const s of c.sources) {
          // Whether a source is a directory: the repository tells, for the build stage's files too (it stands in for it).
          const here = join(ROOT, c.from === null ? s : posix.relative(workdirAt(stageByName(df, c.from) ?? stage, null), s));
          const isDir = existsSync(here) ? statSync(here).isDirectory() : !c.dest.endsWith('/');
          provided.push({ dest: copyTarget(c, destDir, s, isDir), copy: c, source: s });
          if (c.from === null && !existsSync(join(ROOT, s))) problems.push(`line ${c.line}: COPY ${s}: no such file in the repository`);
          if (c.from !== null && !stageByName(df, c.from)) problems.push(`line ${c.line}: COPY --from=${c.from}: no such stage`);
        }
      }
      const app = posix.dirname(posix.dirname(execForm(lastOf(stage, 'ENTRYPOINT')?.args ?? '')?.[1] ?? '/app/bin/x'));
      const has = (p: string) => provided.some((x) => posix.join(app, p) === x.dest || posix.join(app, p).startsWith(x.dest + '/'));
      for (const [p, why] of Object.entries(RUNTIME_PATHS)) if (!has(p)) problems.push(`${app}/${p} is not copied into the image (${why})`);
      for (const f of pkg.files ?? []) if (!NOT_NEEDED_AT_RUN_TIME.has(f) && !has(f)) problems.push(`package.json "files" lists ${f}, which the image lacks`);
      for (const p of ['bin/auditship.js', 'package.json', 'src/ui/static/index.html'])
        if (!existsSync(join(ROOT, p))) problems.push(`${p} is missing from the repository`);
      return problems;
    },
  },
  {
    name: 'no secret in ENV, ARG or RUN (AWS_SECRET_ACCESS_KEY=…, PASSWORD=…, TOKEN=… with a value)',
    run: ({ df }) => {
      const problems: string[] = [];
      for (const i of df.all) {
        const pairs = i.cmd === 'ENV' ? envPairs(i.args) : i.cmd === 'ARG' ? [splitAssignment(i.args)] : [];
        for (const [k, v] of pairs) if (SECRET_NAME.test(k) && v) problems.push(`line ${i.line}: ${i.cmd} ${k} has a value`);
        if (i.cmd === 'RUN')
          for (const m of i.args.matchAll(/\b([A-Za-z_]\w*)=(\S+)/g))
            if (SECRET_NAME.test(m[1]!) && !/^\$/.test(m[2]!)) problems.push(`line ${i.line}: RUN sets ${m[1]}`);
        if ((i.cmd === 'COPY' || i.cmd === 'ADD') && /(?:^|[\s/])(?:\.npmrc|\.env|auditship\.yaml|\.aws)(?:\s|$)/.test(i.args))
          problems.push(`line ${i.line}: ${i.cmd} of a credentials file`);
      }
      return problems;
    },
  },
  {
    name: '.dockerignore keeps node_modules, .git, dist, bench and test data, local configs and DuckDB files out of the context',
    run: ({ dockerignore }) => {
      if (dockerignore === null) return ['no .dockerignore'];
      const rules = parseDockerignore(dockerignore);
      const mustSkip = [
        'node_modules/yaml/package.json',
        'src/node_modules/x',
        '.git/HEAD',
        'dist/cli/main.js',
        '.bench-data/1000000/x.log',
        '.test-tmp/x',
        'test/fixtures/store-v2/x',
        'test/x.test.ts',
        'build/lambda/x.zip',
        'auditship.yaml',
        'auditship.duckdb',
        'src/x.duckdb',
        'auditship.duckdb.wal',
        '.env',
        '.npmrc',
      ];
      return mustSkip.filter((p) => !ignored(rules, p)).map((p) => `${p} would be sent to the build`);
    },
  },
  {
    name: '.dockerignore lets in every file the Dockerfile copies from the context',
    run: ({ df, dockerignore }) => {
      const rules = parseDockerignore(dockerignore ?? '');
      const problems: string[] = [];
      for (const s of df.stages)
        for (const c of copiesOf(s).filter((x) => x.from === null))
          for (const src of c.sources) {
            if (src === '.' || /[*?[]|:\/\//.test(src)) continue; // everything, globs, URLs: other checks object to those
            const files = existsSync(join(ROOT, src)) ? walk(join(ROOT, src)).map((f) => relative(ROOT, f).split('\\').join('/')) : [src];
            const left = files.filter((f) => ignored(rules, f));
            if (left.length)
              problems.push(`line ${c.line}: COPY ${src}: .dockerignore leaves out ${left.slice(0, 3).join(', ')}${left.length > 3 ? ', …' : ''}`);
          }
      return problems;
    },
  },
  {
    name: 'the runtime image is set up for one-shot runs: NODE_ENV, $AUDITSHIP_CONFIG, WORKDIR /data owned by the user, ENTRYPOINT, CMD',
    run: ({ df }) => {
      const problems: string[] = [];
      const stage = finalStage(df);
      const env = finalEnv(df);
      if (env.get('NODE_ENV') !== 'production') problems.push(`NODE_ENV is ${env.get('NODE_ENV') ?? 'unset'}, want production`);
      if (env.get('AUDITSHIP_CONFIG') !== '/config/auditship.yaml')
        problems.push(`AUDITSHIP_CONFIG is ${env.get('AUDITSHIP_CONFIG') ?? 'unset'}, want /config/auditship.yaml`);
      // That variable only helps if the CLI reads it.
      const runTs = readFileSync(join(ROOT, 'src', 'cli', 'commands', 'run.ts'), 'utf8');
      if (!runTs.includes("process.env['AUDITSHIP_CONFIG']")) problems.push('src/cli/commands/run.ts no longer reads $AUDITSHIP_CONFIG');
      const wd = workdirAt(stage, null);
      if (wd !== '/data') problems.push(`the final WORKDIR is ${wd}, want /data`);
      const user = lastOf(stage, 'USER')?.args.split(':')[0] ?? '';
      const owns = stage.instructions.some(
        (i) => i.cmd === 'RUN' && /\/data\b/.test(i.args) && new RegExp(`(?:-o\\s+|chown\\s+(?:-R\\s+)?)${user}\\b`).test(i.args),
      );
      if (!owns) problems.push(`no RUN gives /data to the USER (${user || 'none'})`);
      const ep = execForm(lastOf(stage, 'ENTRYPOINT')?.args ?? '');
      if (JSON.stringify(ep) !== JSON.stringify(['node', '/app/bin/auditship.js']))
        problems.push(`ENTRYPOINT is ${JSON.stringify(ep)}, want ["node", "/app/bin/auditship.js"]`);
      const cmd = execForm(lastOf(stage, 'CMD')?.args ?? '');
      if (JSON.stringify(cmd) !== JSON.stringify(['run'])) problems.push(`CMD is ${JSON.stringify(cmd)}, want ["run"]`);
      return problems;
    },
  },
];

function walk(p: string): string[] {
  if (!statSync(p).isDirectory()) return [p];
  return readdirSync(p).flatMap((n) => walk(join(p, n)));
}

function repoContext(dockerfileText: string, dockerignore: string | null): Context {
  return {
    df: parseDockerfile(dockerfileText),
    dockerignore,
    pkg: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Context['pkg'],
    lock: JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as Context['lock'],
  };
}

const DOCKERFILE = join(ROOT, 'Dockerfile');
const DOCKERIGNORE = join(ROOT, '.dockerignore');

describe('Dockerfile lint', () => {
  const ctx = repoContext(readFileSync(DOCKERFILE, 'utf8'), existsSync(DOCKERIGNORE) ? readFileSync(DOCKERIGNORE, 'utf8') : null);

  for (const check of CHECKS)
    test(check.name, () => {
      const problems = check.run(ctx);
      assert.deepEqual(problems, [], `Dockerfile check failed: ${check.name}\n  ${problems.join('\n  ')}`);
    });

  test('every check objects to a bad Dockerfile', () => {
    const bad = [
      'ARG NPM_TOKEN=npm_abcdef',
      'FROM node:latest AS build',
      'ENV AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI PASSWORD=hunter2',
      'ADD https://example.com/setup.sh /tmp/',
      'RUN curl -fsSL https://example.com/install | bash',
      'RUN npm install',
      'RUN npm ci --omit=dev --ignore-scripts',
      'FROM node:18-bookworm-slim',
      'COPY . /app',
      'COPY src /app/src',
      'COPY dist /app/dist',
      'COPY bin /app/bin',
      'COPY --from=build /app/test /app/test',
      'COPY .npmrc /root/.npmrc',
      'COPY no-such-file /app/',
      'USER root',
      'ENTRYPOINT node /app/bin/auditship.js',
      'CMD run',
    ].join('\n');
    const ctxBad = repoContext(bad, '# node_modules, .git, dist let in; bin left out\nbin\n*.duckdb\n');
    // An install script in a production dependency, and no arm64 binding: the --ignore-scripts check.
    ctxBad.lock = { packages: { ...ctxBad.lock.packages, 'node_modules/fancy-native': { hasInstallScript: true } } };
    delete ctxBad.lock.packages['node_modules/@duckdb/node-bindings-linux-arm64'];
    const silent = CHECKS.filter((c) => c.run(ctxBad).length === 0).map((c) => c.name);
    assert.deepEqual(silent, [], 'these checks did not object to a Dockerfile that breaks them');
  });

  test('the .dockerignore evaluator follows Docker semantics', () => {
    const rules = parseDockerignore('*\n!src/\n**/*.duckdb\n!keep/**/x.duckdb\nsrc/ui/static/*.css\n');
    assert.equal(ignored(rules, 'README.md'), true);
    assert.equal(ignored(rules, 'src/cli/main.ts'), false, '!src/ lets the directory and what is below it back in');
    assert.equal(ignored(rules, 'src/a/b.duckdb'), true, '**/ matches any depth');
    assert.equal(ignored(rules, 'keep/a/b/x.duckdb'), false, 'a later ! wins');
    assert.equal(ignored(rules, 'src/ui/static/style.css'), true);
    assert.equal(ignored(rules, 'src/ui/static/app.js'), false, '* stays within one path component');
  });
});

// ---------------------------------------------------------------------------------------------------------
// The runtime stage, replayed outside a container.

function run(cmd: string, args: string[], options: SpawnSyncOptions = {}): { code: number | null; stdout: string; stderr: string; error?: Error } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  return { code: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), ...(r.error ? { error: r.error } : {}) };
}

/** The unprivileged user standing in for the image's `node` (uid 1000 is nobody in particular here). */
function standInUser(): { uid: number; gid: number; name: string } | null {
  if (process.getuid?.() !== 0) return null; // not root: the tests already run unprivileged
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('nobody:'));
  assert.ok(line, 'no user nobody in /etc/passwd');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid), name: 'nobody' };
}

function chownTree(p: string, uid: number, gid: number): void {
  lchownSync(p, uid, gid);
  if (lstatSync(p).isDirectory()) for (const n of readdirSync(p)) chownTree(join(p, n), uid, gid);
}

/** The environment of the container: the image's ENV (paths mapped here) and little else — nothing of the test runner's. */
function imageEnv(env: Map<string, string>, mapped: (p: string) => string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent', LANG: 'C.UTF-8' };
  for (const [k, v] of env) out[k] = v.startsWith('/') ? mapped(v) : v;
  return out;
}

describe('the runtime stage, replayed in a directory (no container)', { timeout: 180_000 }, () => {
  const df = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
  const stage = finalStage(df);
  const user = standInUser();
  let root = '';
  /** Container path → directory here. */
  const mapped = (p: string) => join(root, p);
  const env = finalEnv(df);
  let envHere: NodeJS.ProcessEnv = {};
  const asUser = (args: string[], extra: SpawnSyncOptions = {}) =>
    run(process.execPath, args, {
      cwd: mapped(workdirAt(stage, null)),
      env: envHere,
      timeout: 60_000,
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
      ...extra,
    });

  before(() => {
    assert.ok(existsSync(join(ROOT, 'dist', 'cli', 'main.js')), 'dist/ is not built: run the tests through scripts/test.mjs (it builds first)');
    root = mkdtempSync(join(tmpdir(), 'auditship-image-'));
    chmodSync(root, 0o755);
    /** Stages replayed here: those whose RUNs are all `npm ci` (production dependencies). */
    const replayed = new Map<string, string>();
    const stageDir = (name: string): string => {
      const s = stageByName(df, name);
      assert.ok(s, `COPY --from=${name}: no such stage`);
      const runs = s.instructions.filter((i) => i.cmd === 'RUN');
      // The build stage (npm ci, tsc) is what the repository is after scripts/test.mjs: stand it in.
      if (!runs.every((i) => /^npm ci\b/.test(i.args))) return ROOT;
      const known = replayed.get(name);
      if (known) return known;
      const dir = join(root, `.stage-${name}`);
      mkdirSync(dir);
      for (const c of copiesOf(s)) for (const src of c.sources) cpSync(join(ROOT, src), join(dir, posix.basename(src)), { recursive: true });
      for (const i of runs) {
        // --prefer-offline: the packages are in npm's cache already (the repository was installed from the same lock).
        const r = run('sh', ['-c', `${i.args} --prefer-offline`], { cwd: dir, env: { ...process.env, npm_config_update_notifier: 'false' }, timeout: 120_000 });
        assert.equal(r.code, 0, `replaying stage ${name}, line ${i.line} (${i.args}) failed:\n${r.stderr}`);
      }
      replayed.set(name, dir);
      return dir;
    };
    for (const ins of stage.instructions) {
      if (ins.cmd === 'WORKDIR') mkdirSync(mapped(workdirAt(stage, ins)), { recursive: true });
      if (ins.cmd !== 'COPY') continue;
      const c = parseCopy(ins);
      const destDir = posix.resolve(workdirAt(stage, ins), c.dest);
      for (const s of c.sources) {
        const from = c.from === null ? join(ROOT, s) : join(stageDir(c.from), posix.relative(workdirAt(stageByName(df, c.from)!, null), s));
        const to = mapped(copyTarget(c, destDir, s, statSync(from).isDirectory()));
        mkdirSync(dirname(to), { recursive: true });
        cpSync(from, to, { recursive: true, verbatimSymlinks: true });
        if (c.chown && user) chownTree(to, user.uid, user.gid); // --chown=node:node: the stand-in user owns it
      }
    }
    envHere = imageEnv(env, mapped);
    // RUN install -d -o node /data, mkdir /config: the working directory belongs to the user.
    mkdirSync(mapped('/data'), { recursive: true });
    mkdirSync(mapped('/config'), { recursive: true });
    if (user) chownTree(mapped('/data'), user.uid, user.gid);
    for (const d of readdirSync(root).filter((n) => n.startsWith('.stage-'))) rmSync(join(root, d), { recursive: true, force: true });
  });

  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('every file of /app is readable by the unprivileged user', () => {
    const script = `const fs=require('fs'),p=require('path');const bad=[];(function w(d){for(const e of fs.readdirSync(d,{withFileTypes:true})){const f=p.join(d,e.name);if(e.isDirectory())w(f);else if(e.isFile()){try{fs.closeSync(fs.openSync(f,'r'))}catch(x){bad.push(f+': '+x.code)}}}})(process.argv[1]);console.log(JSON.stringify(bad.slice(0,10)))`;
    const r = asUser(['-e', script, mapped('/app')]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout) as string[], [], `files of /app that ${user?.name ?? 'this user'} cannot read`);
    assert.ok(existsSync(mapped('/app/node_modules/@duckdb/node-api')), 'the production node_modules lack @duckdb/node-api');
    assert.ok(!existsSync(mapped('/app/node_modules/typescript')), 'dev dependencies (typescript) reached the runtime node_modules');
    assert.ok(
      existsSync(join(mapped('/app/dist/ui'), '../../src/ui/static/index.html')),
      "the UI's static files are not where dist/ui/http.js looks (../../src/ui/static)",
    );
  });

  test('auditship --help and run --help work as a non-root user', () => {
    if (user) assert.notEqual(user.uid, 0);
    const bin = mapped('/app/bin/auditship.js');
    const help = asUser([bin, '--help']);
    assert.equal(help.code, 0, `auditship --help exited ${help.code}:\n${help.stderr}`);
    assert.match(help.stdout, /\brun\b/, 'auditship --help does not list the run command');
    const runHelp = asUser([bin, 'run', '--help']);
    assert.equal(runHelp.code, 0, `auditship run --help exited ${runHelp.code}:\n${runHelp.stderr}`);
    assert.match(runHelp.stdout, /usage: auditship run/);
  });

  test('auditship run reads $AUDITSHIP_CONFIG and writes its DuckDB file in the working directory', () => {
    // The config as it would be mounted on /config/auditship.yaml, reading logs mounted on /logs.
    const logs = mapped('/logs');
    mkdirSync(logs);
    for (const f of readdirSync(join(ROOT, 'examples', 'pgaudit-logs')).filter((n) => n.endsWith('.json')))
      cpSync(join(ROOT, 'examples', 'pgaudit-logs', f), join(logs, f));
    chmodSync(logs, 0o755);
    const configPath = String(envHere['AUDITSHIP_CONFIG']);
    assert.ok(configPath.startsWith(root), `AUDITSHIP_CONFIG (${configPath}) is not a path the image sets`);
    writeFileSync(
      configPath,
      `pipelines:\n  main:\n    source: { type: pg_logs, path: ${logs}, server: db1 }\n    sinks:\n      - { type: duckdb, path: ./auditship.duckdb }\n`,
    );
    const r = asUser([mapped('/app/bin/auditship.js'), 'run']);
    assert.equal(r.code, 0, `auditship run exited ${r.code}:\n${r.stderr}`);
    assert.match(r.stdout + r.stderr, /new audit events/);
    assert.ok(existsSync(mapped('/data/auditship.duckdb')), 'the DuckDB file is not in the working directory (/data)');
    if (user) assert.equal(statSync(mapped('/data/auditship.duckdb')).uid, user.uid);
  });
});

// ---------------------------------------------------------------------------------------------------------
// The image, built and run by a container engine when one works here.

interface Engine {
  cmd: string;
  /** --build-arg NODE_VERSION=N when the default base is not available but another local one is. */
  buildArgs: string[];
  base: string;
  note: string;
}

function lastLine(s: string): string {
  return (
    s
      .trim()
      .split('\n')
      .filter((l) => l.trim())
      .at(-1) ?? ''
  );
}

/** The engine to build with, or why there is none. */
function findEngine(df: Dockerfile, needMajor: number): Engine | { skip: string } {
  const reasons: string[] = [];
  const base = finalStage(df).image;
  for (const cmd of ['podman', 'docker']) {
    const info = run(cmd, ['info'], { timeout: 30_000 });
    if (info.error) {
      reasons.push(`${cmd}: ${(info.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed' : info.error.message}`);
      continue;
    }
    if (info.code !== 0) {
      reasons.push(`\`${cmd} info\` exited ${info.code}: ${lastLine(info.stderr)}`);
      continue;
    }
    const exists = (ref: string) => run(cmd, cmd === 'podman' ? ['image', 'exists', ref] : ['image', 'inspect', ref], { timeout: 30_000 }).code === 0;
    let use = { ref: base, buildArgs: [] as string[], note: `base ${base}` };
    if (!exists(base)) {
      const pull = run(cmd, ['pull', base], { timeout: 180_000 });
      if (pull.code !== 0) {
        // Another local node:N-bookworm-slim (podman also resolves a short name to localhost/…/node:N-…).
        const images = run(cmd, ['images', '--format', '{{.Repository}}:{{.Tag}}'], { timeout: 30_000 }).stdout.split('\n');
        const re = cmd === 'podman' ? /(?:^|\/)node:(\d+)-bookworm-slim$/ : /^(?:docker\.io\/library\/)?node:(\d+)-bookworm-slim$/;
        const local = images.map((l) => [l, re.exec(l.trim())?.[1]] as const).find(([, m]) => m !== undefined && Number(m) >= needMajor);
        if (!local) {
          reasons.push(
            `${cmd}: ${base} is not here and \`${cmd} pull\` failed (${lastLine(pull.stderr)}); no other local node:N-bookworm-slim with N >= ${needMajor}`,
          );
          continue;
        }
        use = {
          ref: local[0].trim(),
          buildArgs: ['--build-arg', `NODE_VERSION=${local[1]}`],
          note: `${base} cannot be pulled (${lastLine(pull.stderr)}); built on the local ${local[0].trim()} with --build-arg NODE_VERSION=${local[1]}`,
        };
      }
    }
    const probe = run(cmd, ['run', '--rm', use.ref, 'node', '-e', 'process.exit(0)'], { timeout: 120_000 });
    if (probe.code !== 0) {
      reasons.push(`${cmd} cannot start a container of ${use.ref}: ${lastLine(probe.stderr)}`);
      continue;
    }
    return { cmd, buildArgs: use.buildArgs, base: use.ref, note: use.note };
  }
  return { skip: `no container engine can build here — ${reasons.join('; ')}` };
}

describe('the image, built and run by a container engine', { timeout: 1_200_000 }, () => {
  const df = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Context['pkg'];
  const needMajor = Number(/\d+/.exec(pkg.engines?.node ?? '20')![0]);
  const tag = `localhost/auditship-test:${process.pid}`;
  let engine: Engine | null = null;
  let skip = '';

  before(() => {
    // A build takes one to two minutes of both cores and slows every test beside it: asked for, not by default.
    if (process.env['AUDITSHIP_CONTAINER_BUILD'] !== '1') {
      skip = 'set AUDITSHIP_CONTAINER_BUILD=1 to build and run the image with podman or docker (a build takes 1–2 minutes)';
      return;
    }
    const found = findEngine(df, needMajor);
    if ('skip' in found) {
      skip = found.skip;
      return;
    }
    console.log(`# ${found.cmd}: ${found.note}`);
    const r = run(found.cmd, ['build', '-f', DOCKERFILE, '-t', tag, ...found.buildArgs, ROOT], { timeout: 1_100_000 });
    assert.equal(r.code, 0, `\`${found.cmd} build\` failed:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
    engine = found;
  });

  after(() => {
    if (engine) run(engine.cmd, ['rmi', '-f', tag], { timeout: 60_000 });
  });

  test('the image runs `auditship run --help` (exit 0)', (t) => {
    if (!engine) return t.skip(skip);
    const r = run(engine.cmd, ['run', '--rm', tag, 'run', '--help'], { timeout: 120_000 });
    assert.equal(r.code, 0, `run --help in the image exited ${r.code}:\n${r.stderr}`);
    assert.match(r.stdout, /usage: auditship run/);
  });

  test('the image runs as a non-root user, in /data, with the runtime files only', (t) => {
    if (!engine) return t.skip(skip);
    const id = run(engine.cmd, ['run', '--rm', '--entrypoint', 'id', tag, '-u'], { timeout: 120_000 });
    assert.equal(id.code, 0, id.stderr);
    assert.notEqual(id.stdout.trim(), '0', 'the container runs as root');
    const script =
      "const fs=require('fs');console.log(JSON.stringify({cwd:process.cwd(),app:fs.readdirSync('/app').sort(),src:fs.readdirSync('/app/src'),env:process.env.NODE_ENV,config:process.env.AUDITSHIP_CONFIG,write:(()=>{try{fs.writeFileSync('x','');return true}catch{return false}})()}))";
    const r = run(engine.cmd, ['run', '--rm', '--entrypoint', 'node', tag, '-e', script], { timeout: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(lastLine(r.stdout)) as { cwd: string; app: string[]; src: string[]; env: string; config: string; write: boolean };
    assert.deepEqual(got, {
      cwd: '/data',
      app: ['bin', 'dist', 'node_modules', 'package.json', 'src'],
      src: ['ui'],
      env: 'production',
      config: '/config/auditship.yaml',
      write: true,
    });
  });

  test('a disk-less run as the README shows it: read-only root, tmpfs /data, config mounted on /config', (t) => {
    if (!engine) return t.skip(skip);
    const dir = mkdtempSync(join(tmpdir(), 'auditship-image-run-'));
    try {
      mkdirSync(join(dir, 'logs'));
      for (const f of readdirSync(join(ROOT, 'examples', 'pgaudit-logs')).filter((n) => n.endsWith('.json')))
        cpSync(join(ROOT, 'examples', 'pgaudit-logs', f), join(dir, 'logs', f));
      writeFileSync(
        join(dir, 'auditship.yaml'),
        'pipelines:\n  main:\n    source: { type: pg_logs, path: /logs, server: db1 }\n    sinks:\n      - { type: duckdb, path: ./auditship.duckdb }\n',
      );
      for (const p of [dir, join(dir, 'logs'), ...readdirSync(join(dir, 'logs')).map((f) => join(dir, 'logs', f)), join(dir, 'auditship.yaml')])
        chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644);
      // A tmpfs is root's: podman hands it to the container's user with U, docker with uid= and gid=.
      const data = engine.cmd === 'podman' ? '/data:U' : '/data:uid=1000,gid=1000';
      const r = run(
        engine.cmd,
        [
          'run',
          '--rm',
          '--read-only',
          '--tmpfs',
          '/tmp',
          '--tmpfs',
          data,
          '-v',
          `${dir}/auditship.yaml:/config/auditship.yaml:ro`,
          '-v',
          `${dir}/logs:/logs:ro`,
          tag,
        ],
        { timeout: 120_000 },
      );
      assert.equal(r.code, 0, `auditship run in the image exited ${r.code}:\n${r.stderr}`);
      assert.match(r.stdout + r.stderr, /new audit events .*→ \/data\/auditship\.duckdb/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
