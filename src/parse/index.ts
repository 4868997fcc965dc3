/**
 * Pure parsing of PostgreSQL logs: the CSV layer, csvlog record scanning, jsonlog lines, pgaudit messages
 * and log timestamps. No I/O here; sources feed text in and get records out.
 */
export * from './csv.js';
export * from './record-scanner.js';
export * from './pgaudit.js';
export * from './timestamp.js';
export * from './log-record.js';
export * from './session-log.js';
export * from './packed.js';
export * from './csvlog-pack.js';
export * from './session-tracker.js';
