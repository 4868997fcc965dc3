/**
 * The web UI of `auditship ui`: a read-only HTTP server (Node's http module, GET and HEAD only) that serves
 * a static single-page app (static/: index.html, app.js, charts.js, style.css — plain JS modules, no build
 * step) and its JSON API over the audit queries of src/query. The API takes filter parameters, never SQL;
 * the page renders audit data with textContent only and draws its charts as SVG.
 *
 * Access: loopback by default, where the Host header must be a loopback name (a DNS-rebinding guard); any
 * other address needs a token (Bearer header, or `?token=` once, traded for an HttpOnly cookie) or Basic
 * auth. A unix socket (mode 0600) serves the same app for the `run --follow` daemon.
 */
export { startUiServer, UiServerError, type UiAuth, type UiQueries, type UiServer, type UiServerOptions } from './server.js';
