/**
 * Audit reports (`auditship report`): a time range of the DuckDB store summarised for people — events by
 * class and command, every DDL and role/privilege change in full, tables read and written per user, failed
 * logins, failed statements; row changes and application events when the store holds them. buildReport
 * gathers the data (the JSON form; sources.ts the sections of the other sources); render.ts writes Markdown and
 * a self-contained HTML page with SVG charts, render-sources.ts their sections, both from the pieces in parts.ts.
 */
export { buildReport, ROW_LIMIT, type ReportData, type ReportEvent, type ReportOptions } from './build.js';
export { renderHtml, renderMarkdown } from './render.js';
