/**
 * Worker half of the "garbage never hangs" property in csv.property.test.ts. It runs the checks in a worker
 * thread so that the test can stop it if src/ ever loops forever on an input: the main thread watches a
 * shared progress counter and, on time-out, terminates the worker and regenerates the input it was on.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { checkGarbage, GARBAGE_PROPERTY } from './csv-garbage.js';
import { forAll } from '../helpers/prng.js';
import { garbageText } from '../helpers/csv-reference.js';

const { progress } = workerData as { progress: SharedArrayBuffer };
const counter = new Int32Array(progress);

try {
  const runs = forAll({ ...GARBAGE_PROPERTY }, garbageText, (text) => {
    Atomics.add(counter, 0, 1);
    checkGarbage(text);
  });
  parentPort!.postMessage({ ok: true, runs });
} catch (err) {
  parentPort!.postMessage({ ok: false, message: (err as Error).message });
}
