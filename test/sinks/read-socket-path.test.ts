import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readSocketPath } from '../../src/sinks/duckdb/lock.js';

/**
 * The read service's unix socket: next to the database, else under the temp directory — and under /tmp when
 * $TMPDIR is long too (the kernel cuts a socket name at 108 bytes; the cut name could not be removed by the name
 * kept, and the next writer met EADDRINUSE: seen with the containers of bench:lambda).
 */
test('the read socket path always fits a unix socket name', () => {
  const before = process.env['TMPDIR'];
  try {
    assert.equal(readSocketPath('/srv/a.duckdb'), '/srv/a.duckdb.read.sock');
    const deep = `/${'d'.repeat(120)}/store.duckdb`;
    process.env['TMPDIR'] = '/tmp/short';
    assert.match(readSocketPath(deep), /^\/tmp\/short\/auditship-[0-9a-f]{16}\.read\.sock$/);
    process.env['TMPDIR'] = `/${'t'.repeat(90)}`;
    const p = readSocketPath(deep);
    assert.match(p, /^\/tmp\/auditship-[0-9a-f]{16}\.read\.sock$/);
    assert.ok(Buffer.byteLength(p) <= 100);
  } finally {
    if (before === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = before;
  }
});
