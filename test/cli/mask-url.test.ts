import assert from 'node:assert/strict';
import { test } from 'node:test';
import { maskUrl } from '../../src/core/postgres.js';

/** Connection strings in messages and logs never carry a password, whatever form the user wrote them in. */
test('maskUrl hides the password of URLs, scheme-less user:password@host and key=value strings', () => {
  const cases: [string, string][] = [
    ['postgres://u:secret@h:5432/db', 'postgres://u:****@h:5432/db'],
    ['mysql://root:pw@127.0.0.1:3306/test', 'mysql://root:****@127.0.0.1:3306/test'],
    ['user:pw@host', 'user:****@host'],
    ['user:pw@host:5432/db', 'user:****@host:5432/db'],
    ['host=x password=secret user=y', 'host=x password=**** user=y'],
    ["host=x password='a b' user=y", 'host=x password=**** user=y'],
    ['postgres://h/db?password=zz&sslmode=require', 'postgres://h/db?password=****&sslmode=require'],
    ['postgres://u@h/db', 'postgres://u@h/db'],
    ['h:5432/db', 'h:5432/db'],
  ];
  for (const [url, masked] of cases) {
    assert.equal(maskUrl(url), masked, url);
    assert.ok(!/secret|pw@|zz|'a b'/.test(maskUrl(url)), `no password left in ${maskUrl(url)}`);
  }
});
