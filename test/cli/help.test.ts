/**
 * Every command's --help describes every flag it accepts, with the default where there is one. The flags are
 * read from the same tables the commands parse with (each command module's spec), so a flag added there is
 * in this test; the CLI is asked to accept all of them at once, so the tables are what it parses.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { allFlags, flagSpelling, type CommandSpec } from '../../src/cli/args.js';
import { lines, ROOT, runCli } from '../helpers/ingest-cli.js';

const dir = `${ROOT}src/cli/commands`;
const modules = await Promise.all(
  readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map(async (f) => [f, (await import(`${dir}/${f}`)) as Record<string, unknown>] as const),
);
const isSpec = (v: unknown): v is CommandSpec => typeof v === 'object' && v !== null && 'flags' in v && 'name' in v && 'usage' in v;
const specs = modules.flatMap(([, m]) => Object.values(m).filter(isSpec));

/** The help entry of a flag: its line (spelling, description) and the continuation lines under it, as one text. */
function entry(help: string, spelling: string): string | undefined {
  const ls = help.split('\n');
  const i = ls.findIndex((l) => l.startsWith(`  ${spelling}`) && (l.length === spelling.length + 2 || l[spelling.length + 2] === ' '));
  if (i < 0) return undefined;
  const out = [ls[i]!.slice(spelling.length + 2)];
  for (let j = i + 1; j < ls.length && /^ {8,}\S/.test(ls[j]!); j++) out.push(ls[j]!);
  return out.join(' ').replace(/\s+/g, ' ').trim();
}

describe('--help', () => {
  test('every command module has a spec, and every command is in auditship --help', async () => {
    for (const [file, m] of modules) assert.ok(Object.values(m).some(isSpec), `${file} exports its command spec`);
    const overview = await runCli(['--help']);
    assert.equal(overview.code, 0);
    for (const s of specs) assert.match(overview.stdout, new RegExp(`^  ${s.name.split(' ')[0]} `, 'm'), s.name);
    const unknown = await runCli(['help', 'nosuch']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^auditship: unknown command "nosuch"/);
  });

  for (const spec of specs) {
    test(`auditship ${spec.name} --help: exit 0, every flag with a description and its default`, async () => {
      const words = spec.name.split(' ');
      const r = await runCli([...words, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.ok(r.stdout.includes(spec.usage), 'the usage line');
      for (const [name, f] of Object.entries(allFlags(spec))) {
        const text = entry(r.stdout, flagSpelling(name, f));
        assert.ok(text, `--${name} is listed:\n${r.stdout}`);
        assert.ok(f.description.length >= 10 && text.startsWith(f.description.replace(/\s+/g, ' ')), `--${name} is described: ${text}`);
        const dflt = f.default ?? f.defaultText;
        if (dflt !== undefined)
          assert.ok(text.endsWith(`(default: ${dflt === '' ? '""' : dflt})`.replace(/\s+/g, ' ')), `--${name} shows its default: ${text}`);
        else assert.ok(!/\(default: /.test(text), `--${name} has no default to show: ${text}`);
      }

      // The parser takes every flag listed (all at once), and nothing else.
      const every = Object.entries(spec.flags).flatMap(([name, f]) => (f.type === 'string' ? [`--${name}`, '1'] : [`--${name}`]));
      const all = await runCli([...words, ...every, '--help']);
      assert.equal(all.code, 0, all.stderr);
      assert.equal(all.stdout, r.stdout);
      const unknown = await runCli([...words, '--no-such-flag']);
      assert.equal(unknown.code, 2);
      assert.match(lines(unknown.stderr)[0]!, /Unknown option '--no-such-flag'/);

      const viaHelp = await runCli(['help', ...words]);
      assert.equal(viaHelp.code, 0);
      assert.equal(viaHelp.stdout, r.stdout, `auditship help ${spec.name} is ${spec.name} --help`);
    });
  }

  test('auditship pg --help lists the flags of install and uninstall', async () => {
    const r = await runCli(['pg', '--help']);
    assert.equal(r.code, 0);
    for (const spec of specs.filter((s) => s.name.startsWith('pg '))) {
      for (const [name, f] of Object.entries(allFlags(spec))) assert.ok(entry(r.stdout, flagSpelling(name, f)), `${spec.name} --${name}`);
    }
  });
});
