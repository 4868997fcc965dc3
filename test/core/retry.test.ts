import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Backoff, sleep } from '../../src/core/retry.js';
import { followPasses } from '../../src/jobs/runner.js';
import { ConnectorError } from '../../src/core/errors.js';
import { quietLogger } from '../../src/core/log.js';

describe('retry: backoff and sleep', () => {
  test('doubles from initialMs to maxMs, and starts again after reset', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, jitter: false });
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
    assert.equal(b.attempts, 6);
    b.reset();
    assert.equal(b.next(), 100);
  });

  test('jitter takes at most half of each delay off', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 1000 });
    for (let i = 0; i < 200; i++) {
      const d = b.next();
      assert.ok(d >= 500 && d <= 1000, String(d));
    }
  });

  test('sleep ends as soon as the signal aborts, and at once when it already has', async () => {
    const c = new AbortController();
    const t0 = Date.now();
    setTimeout(() => c.abort(), 30);
    await sleep(60_000, c.signal);
    assert.ok(Date.now() - t0 < 5000);
    const t1 = Date.now();
    await sleep(60_000, c.signal);
    assert.ok(Date.now() - t1 < 100);
  });
});

describe('runner: the follow loop of a pipeline that runs in passes', () => {
  /** A pipeline whose passes fail as scripted; it records what the loop did with it. */
  function scripted(failures: (Error | null)[]) {
    const calls: string[] = [];
    let pass = 0;
    return {
      calls,
      pipeline: {
        open: async () => {
          calls.push('open');
        },
        runOnce: async () => {
          const f = failures[pass++] ?? null;
          calls.push(f ? 'fail' : 'pass');
          if (f) throw f;
          return pass;
        },
        close: async () => {
          calls.push('close');
        },
      },
    };
  }

  test('a failed pass is retried after the backoff, the pipeline closed and opened again first; the signal ends the loop and closes it', async () => {
    const retryable = new ConnectorError('test', 'down', 'the server went away', true);
    const { calls, pipeline } = scripted([null, retryable, retryable, null]);
    const c = new AbortController();
    const passed: number[] = [];
    const retries: number[] = [];
    await followPasses(pipeline, {
      pipeline: 't',
      log: quietLogger(),
      signal: c.signal,
      backoff: new Backoff({ initialMs: 5, maxMs: 20, jitter: false }),
      passed: (n) => {
        passed.push(n);
        if (n === 4) c.abort();
      },
      retrying: (_e, ms) => retries.push(ms),
      wait: (s) => sleep(1, s),
    });
    assert.deepEqual(calls, ['open', 'pass', 'fail', 'close', 'open', 'fail', 'close', 'open', 'pass', 'close']);
    assert.deepEqual(passed, [1, 4]);
    assert.deepEqual(retries, [5, 10]);
  });

  test('a failure that is not retryable ends the loop with that error, and the pipeline is closed', async () => {
    const fatal = new ConnectorError('test', 'bad', 'wrong password', false);
    const { calls, pipeline } = scripted([fatal]);
    await assert.rejects(
      followPasses(pipeline, {
        pipeline: 't',
        log: quietLogger(),
        signal: new AbortController().signal,
        backoff: new Backoff({ initialMs: 5, maxMs: 20 }),
        passed: () => {},
        retryable: (e) => e instanceof ConnectorError && e.retryable,
        retrying: () => assert.fail('not retried'),
        wait: (s) => sleep(1, s),
      }),
      (e) => e === fatal,
    );
    assert.deepEqual(calls, ['open', 'fail', 'close']);
  });
});
