/**
 * Audit reports (`auditship report`): a time range of the DuckDB store summarised for people — events by
 * class and command, every DDL and role/privilege change in full, tables read and written per user, failed
 * logins, failed statements. buildReport gathers the data (the JSON form); render.ts writes Markdown and a
 * self-contained HTML page with SVG charts.
 */
export { buildReport, ROW_LIMIT, type ReportData, type ReportEvent, type ReportOptions } from './build.js';
export { renderHtml, renderMarkdown } from './render.js';
