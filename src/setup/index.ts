/**
 * Setting up: `auditship check` (is PostgreSQL ready for pgaudit and auditship, and can each pipeline of a
 * config reach its source and sinks — every failure with its exact fix) and `auditship init` (a commented
 * config for the local server, headed by the fixes it still needs).
 *
 *  - server-checks.ts: the PostgreSQL checks — facts read once (settings, pg_file_settings, per-role
 *    settings, the log directory as this OS user sees it), pure functions from facts to CheckResults, and
 *    the pgaudit.log class parser with its corrected value.
 *  - pipeline-checks.ts: read-only checks of a config's sources and sinks through their own connect steps.
 *  - init.ts: the config init writes, rendered from the config schema's descriptions.
 */
export {
  DEFAULT_TARGET,
  connectServer,
  connectionCheck,
  connectionProblem,
  correctedPgauditLog,
  failed,
  formatCheck,
  parsePgauditLog,
  readServerFacts,
  resolveTarget,
  serverChecks,
  splitGucList,
  targetHint,
  type CheckResult,
  type ServerFacts,
  type ServerTarget,
} from './server-checks.js';
export { configServerUrl, pipelineChecks } from './pipeline-checks.js';
export { planInit, renderInitConfig, type InitPlan } from './init.js';
