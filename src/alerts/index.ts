/**
 * Alert rules: be told when it happens (README "Alerts").
 *
 *  - config.ts: the `alerts` section — destinations and rules (a filter in the UI's terms, or a threshold: N
 *    matching events per key in a window), checked against the source each rule reads (rules.ts).
 *  - rules.ts: a rule as SQL over the rows one commit stored, per source (pgaudit events, logon failures, row
 *    changes, application events).
 *  - evaluate.ts: the hook a DuckDB sink runs in each commit's transaction; what fires goes into `alerts` and
 *    `alert_outbox` (store.ts) with the events, under an id that is the same whenever the commit is evaluated.
 *  - delivery.ts: the worker that delivers the outbox (retries with backoff, dead letters), through the
 *    transports of deliver/ (webhook: JSON, Slack, Teams; SMTP), each message built by message.ts.
 *  - queries.ts: what `status` and the UI show of alerts and deliveries.
 * The jobs give the rules to their sinks and run the delivery (jobs/alerts.ts).
 */
export { decodeAlerts, type AlertsConfig, type PipelineAlerts } from './config.js';
export { AlertEvaluator, type CommitHook } from './evaluate.js';
export { AlertDelivery, type DeliveryCounts } from './delivery.js';
