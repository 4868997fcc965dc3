/**
 * The garbage-input checks of csv.property.test.ts (run inside csv-garbage.worker.ts, under a watchdog).
 *
 * For any text: scanCsvRecord, splitCsv and findNextRecordStart never throw; scanCsvRecord returns null,
 * an error record, or a record that ends at a newline, and never a record the strict reference reader
 * disagrees with; a prefix of the text never yields a record different from the full text's; and
 * findNextRecordStart returns the next line that starts with a csvlog timestamp.
 */
import assert from 'node:assert/strict';
import { splitCsv } from '../../src/parse/csv.js';
import { findNextRecordStart, scanCsvRecord, type ScannedRecord } from '../../src/parse/record-scanner.js';
import { refNextRecordStart, refScanRecord, refSplit } from '../helpers/csv-reference.js';

export const GARBAGE_PROPERTY = { name: 'garbage and mutated csvlog text', seed: 0x5eed_c5a1, runs: 4000 } as const;

function checkScanned(text: string, pos: number, rec: ScannedRecord | null): void {
  const ref = refScanRecord(text, pos);
  if (ref.kind === 'record') {
    assert.ok(rec, `a complete valid record at ${pos} (reference: ${JSON.stringify(ref)}) was not returned`);
    assert.deepEqual(rec, { fields: ref.fields, start: pos, next: ref.next, error: null }, `record at ${pos}`);
  } else if (ref.kind === 'incomplete') {
    assert.equal(rec, null, `the record at ${pos} is incomplete (valid so far) but the scanner returned one`);
  } else if (rec) {
    assert.notEqual(rec.error, null, `invalid CSV at ${pos} was returned as a valid record ${JSON.stringify(rec)}`);
    assert.equal(rec.start, pos);
    assert.ok(rec.next > pos && rec.next <= text.length, `record end ${rec.next} out of range`);
    assert.equal(text[rec.next - 1], '\n', `a broken record must end at a newline (next=${rec.next})`);
  }
}

export function checkGarbage(text: string): void {
  // Scan the whole text the way the reader does: record after record, resynchronising when stuck.
  let pos = 0;
  while (pos < text.length) {
    const rec = scanCsvRecord(text, pos);
    checkScanned(text, pos, rec);
    // Prefix consistency: a shorter text never yields a different record from the same position.
    for (const cut of [pos, pos + 1, Math.floor((pos + text.length) / 2), text.length - 1]) {
      if (cut < pos || cut > text.length) continue;
      const partial = scanCsvRecord(text.slice(0, cut), pos);
      if (partial !== null) assert.deepEqual(partial, rec, `prefix of length ${cut} gave another record at ${pos}`);
    }
    if (rec === null || rec.error !== null) {
      const from = pos + 1;
      const resync = findNextRecordStart(text, from);
      assert.equal(resync, refNextRecordStart(text, from), `findNextRecordStart(text, ${from})`);
      if (rec === null) {
        if (resync < 0) break;
        assert.ok(resync > pos);
        pos = resync;
        continue;
      }
    }
    assert.ok(rec.next > pos, 'the scanner must make progress');
    pos = rec.next;
  }

  // The whole text as one CSV record: same verdict and fields as the reference splitter.
  const split = splitCsv(text);
  const ref = refSplit(text);
  assert.equal(split.error, ref.error, 'splitCsv error');
  if (ref.error === null) assert.deepEqual(split.fields, ref.fields, 'splitCsv fields');

  // Resynchronisation from arbitrary positions.
  for (const p of [0, 1, text.length >> 2, text.length >> 1, text.length - 1, text.length]) {
    if (p < 0) continue;
    assert.equal(findNextRecordStart(text, p), refNextRecordStart(text, p), `findNextRecordStart(text, ${p})`);
  }
}
