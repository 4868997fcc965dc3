import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStoreReader, type StoreReader } from '../../src/sinks/duckdb/reader.js';
import { auditOnly, CsvlogGenerator, csvOf } from '../helpers/csvlog-gen.js';
import { runCli } from '../helpers/ingest-cli.js';
import { uiSuite } from './ui-suite.js';

/**
 * Reading and writing side by side: the whole UI suite clicks through `auditship ui` while, on the same DuckDB
 * file, a cron-style `auditship ingest` of a new log file runs every second and `query`, `status` and `report`
 * run in a loop. No command is refused or fails, and no answer is wrong: the UI suite's own checks hold (its
 * pages filter to its servers; the cron events are older and of another server), every count seen of the cron
 * server's events is a whole number of files (a commit is seen entirely or not at all) and never goes back,
 * and at the end the store holds exactly what the ingests reported.
 */
const PER_FILE = 200;
const WORKLOAD_SERVERS = "server IN ('pg-main', 'pg-replica')";

let reader: StoreReader | null = null;
const via = { file: 0, writer: 0 };
let cron = { runs: 0, stored: 0 };

uiSuite({
  name: 'the UI while cron ingests write the store and query, status and report run in a loop',
  hash: 'server=pg-main,pg-replica',
  query: async (db, sql) => {
    reader ??= openStoreReader(db);
    return reader.all(sql);
  },
  // The stats line counts every stored event: the workload's and whole cron files.
  checkTotal: (shown, workload) => {
    assert.ok(
      shown >= workload && (shown - workload) % PER_FILE === 0 && shown - workload <= PER_FILE * (cron.runs + 1),
      `the page shows ${shown} events: the workload's ${workload} and whole cron files (${cron.runs} runs so far)`,
    );
  },
  background: (db) => {
    const logs = join(dirname(db), 'cron');
    mkdirSync(logs);
    const gen = new CsvlogGenerator({ seed: 77, sessionBase: 900_000, otherShare: 0 });
    const failures: string[] = [];
    let stopping = false;
    let commands = 0;
    let lastSeen = 0;
    let workloadTotal = -1;
    const ingestLoop = (async () => {
      for (let i = 0; !stopping; i++) {
        const started = Date.now();
        const records = gen.records(PER_FILE);
        assert.equal(auditOnly(records).length, PER_FILE);
        const file = join(logs, `postgresql-2024-05-01_${String(i).padStart(6, '0')}.csv`);
        writeFileSync(file, csvOf(records));
        const old = Date.now() / 1000 - 3600 + i;
        utimesSync(file, old, old);
        const r = await runCli(['ingest', '--db', db, '--server', 'pg-cron', '--json', logs]);
        if (r.code !== 0) failures.push(`ingest ${i} exited ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
        else cron.stored += (JSON.parse(r.stdout) as { stored: number }).stored;
        cron.runs++;
        await sleep(Math.max(0, 1000 - (Date.now() - started)));
      }
    })();
    const readLoop = (async () => {
      reader ??= openStoreReader(db);
      workloadTotal = Number((await reader.all(`SELECT count(*) AS n FROM audit_logs WHERE ${WORKLOAD_SERVERS}`))[0]!['n']);
      for (let i = 0; !stopping; i++) {
        const kind = ['query', 'status', 'report'][i % 3]!;
        const r =
          kind === 'query'
            ? await runCli([
                'query',
                '--db',
                db,
                '--format',
                'json',
                `SELECT count(*) FILTER (WHERE server = 'pg-cron') AS cron, count(*) FILTER (WHERE ${WORKLOAD_SERVERS}) AS workload FROM audit_logs`,
              ])
            : kind === 'status'
              ? await runCli(['status', '--db', db, '--json'])
              : await runCli(['report', '--db', db, '--since', '3650d', '--format', 'json', '--server', 'pg-cron']);
        commands++;
        if (r.code !== 0) {
          failures.push(`${kind} exited ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
          continue;
        }
        let seen: number;
        if (kind === 'query') {
          const [row] = JSON.parse(r.stdout) as { cron: number | string; workload: number | string }[];
          seen = Number(row!.cron);
          if (Number(row!.workload) !== workloadTotal) failures.push(`query read ${String(row!.workload)} workload events, not ${workloadTotal}`);
        } else if (kind === 'status') {
          seen = (JSON.parse(r.stdout) as { files: { server: string; events: number | string }[] }).files
            .filter((f) => f.server === 'pg-cron')
            .reduce((a, f) => a + Number(f.events), 0);
        } else {
          seen = (JSON.parse(r.stdout) as { totals: { events: number } }).totals.events;
        }
        if (seen % PER_FILE !== 0) failures.push(`${kind} saw ${seen} cron events: not a whole number of files`);
        if (seen < lastSeen) failures.push(`${kind} saw ${seen} cron events after ${lastSeen} had been seen`);
        lastSeen = Math.max(lastSeen, seen);
        // And one in this process, to see which way it went: on the file, or through the ingest writing it.
        reader ??= openStoreReader(db);
        const [mine] = await reader.all(`SELECT count(*) AS n FROM audit_logs WHERE ${WORKLOAD_SERVERS}`);
        via[reader.lastVia!]++;
        if (Number(mine!['n']) !== workloadTotal) failures.push(`the workload's count read ${String(mine!['n'])}`);
      }
    })();
    return {
      stop: async () => {
        stopping = true;
        await Promise.all([ingestLoop, readLoop]);
        assert.deepEqual(failures, [], 'no command refused or failed, no answer wrong');
        assert.ok(cron.runs >= 5, `cron ingests ran (${cron.runs})`);
        assert.ok(commands >= 6, `readers ran (${commands})`);
        assert.ok(via.file > 0 && via.writer > 0, `reads went both ways: ${JSON.stringify(via)}`);
        assert.equal(cron.stored, PER_FILE * cron.runs, 'each cron ingest stored its file');
        const [end] = await reader!.all(`SELECT count(*) FILTER (WHERE server = 'pg-cron') AS cron FROM audit_logs`);
        assert.equal(Number(end!['cron']), cron.stored, 'the store holds exactly what the ingests reported');
        await reader!.close();
      },
    };
  },
});
