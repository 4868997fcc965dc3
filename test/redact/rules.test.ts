import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyPatterns, compilePatterns, maskJson, parseColumnRule, parseJsonPath, parsePattern, type JsonPathRule } from '../../src/redact/index.js';

test('patterns: NAME=REGEX, every match masked with the name; bad specs say why', () => {
  const rules = compilePatterns(['ssn=\\b\\d{3}-\\d{2}-\\d{4}\\b', 'tok=tok_[A-Za-z0-9]{8}']);
  assert.equal(
    applyPatterns(`UPDATE p SET ssn = '123-45-6789', alt = '987-65-4321' WHERE t = 'tok_abcdEFGH'`, rules),
    `UPDATE p SET ssn = '<redacted:ssn>', alt = '<redacted:ssn>' WHERE t = '<redacted:tok>'`,
  );
  assert.equal(applyPatterns('SELECT 1', rules), 'SELECT 1');
  // The same rules twice in a row: no state is left in the global expressions.
  assert.equal(applyPatterns('123-45-6789', rules), '<redacted:ssn>');
  assert.equal(applyPatterns('123-45-6789', rules), '<redacted:ssn>');
  assert.match(String(parsePattern('SSN=\\d')), /NAME=REGEX, NAME in lower case/);
  assert.match(String(parsePattern('x=(')), /Invalid regular expression|Unterminated group/);
  assert.match(String(parsePattern('x=a*')), /matches the empty string/);
  assert.match(String(parsePattern('noequals')), /NAME=REGEX/);
});

test('columns: SCHEMA.TABLE.COLUMN, masked or :drop', () => {
  assert.deepEqual(parseColumnRule('public.users.password_hash'), { schema: 'public', table: 'users', column: 'password_hash', action: 'mask' });
  assert.deepEqual(parseColumnRule('app.users.ssn:drop'), { schema: 'app', table: 'users', column: 'ssn', action: 'drop' });
  assert.match(String(parseColumnRule('users.password')), /SCHEMA.TABLE.COLUMN/);
  assert.match(String(parseColumnRule('a.b.c:hide')), /give :drop, :mask or nothing/);
});

test('json paths: masked, dropped, * for any key or element; other messages unchanged byte for byte', () => {
  const rules = ['changes.password', 'actor.email:drop', 'items.*.card'].map((s) => parseJsonPath(s) as JsonPathRule);
  const text = '{"actor":{"id":7,"email":"a@b.c"},"changes":{"password":["x","y"],"name":"n"},"items":[{"card":"4111"},{"card":"5500","q":2}]}';
  assert.deepEqual(JSON.parse(maskJson(text, rules)), {
    actor: { id: 7 },
    changes: { password: '<redacted:json_path>', name: 'n' },
    items: [{ card: '<redacted:json_path>' }, { card: '<redacted:json_path>', q: 2 }],
  });
  const untouched = '{ "actor" : {"id": 7},   "op": "login" }';
  assert.equal(maskJson(untouched, rules), untouched, 'nothing to mask: the text as it was');
  assert.equal(maskJson('not json', rules), 'not json');
  assert.match(String(parseJsonPath('a..b')), /dotted path/);
});
