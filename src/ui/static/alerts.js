// The Alerts view (#view=alerts): alerts fired by the config's rules, newest first, each with its deliveries — pending
// (attempts so far, the next try), delivered, or dead (a dead letter, with the last error) — from /api/alerts, a page
// at a time (keyset cursors). Everything the server sends is rendered as text.
import { fmtTime, h } from './dom.js';

const PAGE_SIZE = 50;
const root = document.getElementById('alerts');
const state = { cursors: [null], next: null, active: false };

const text = (v) => (v === null || v === undefined ? '' : String(v));

async function fetchPage(after) {
  const p = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) p.set('after', after);
  const res = await fetch(`/api/alerts?${p}`, { headers: { Accept: 'application/json' } });
  if (res.status === 404) return { alerts: [], next: null, unavailable: true };
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

function delivery(d) {
  const label =
    d.state === 'delivered'
      ? `delivered ${fmtTime(d.delivered_at)}`
      : d.state === 'dead'
        ? `dead letter after ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`
        : d.attempts
          ? `pending: ${d.attempts} failed, next ${fmtTime(d.next_attempt_at)}`
          : 'pending';
  return h(
    'li',
    { class: `delivery ${d.state}`, 'data-testid': 'alert-delivery', 'data-state': d.state },
    h('span', { class: 'dest' }, text(d.destination)),
    ' ',
    h('span', { class: 'state' }, label),
    d.last_error && d.state !== 'delivered' ? h('div', { class: 'error' }, text(d.last_error)) : null,
  );
}

function row(a) {
  return h(
    'article',
    { class: 'alert card', 'data-testid': 'alert-row', 'data-rule': a.rule },
    h(
      'header',
      null,
      h('span', { class: 'rule' }, text(a.rule)),
      h('span', { class: 'muted' }, ` ${text(a.source)} · ${text(a.pipeline)} · fired ${fmtTime(a.fired_at)}`),
    ),
    h('div', { class: 'title', 'data-testid': 'alert-title' }, text(a.title)),
    h('pre', { class: 'text' }, text(a.text)),
    h('ul', { class: 'deliveries' }, (a.deliveries ?? []).map(delivery)),
  );
}

async function load() {
  const at = state.cursors.length - 1;
  root.dataset.state = 'loading';
  let page;
  try {
    page = await fetchPage(state.cursors[at]);
  } catch (err) {
    root.replaceChildren(h('p', { class: 'error-bar', role: 'alert' }, `Alerts could not be loaded: ${err.message}`));
    root.dataset.state = 'error';
    return;
  }
  state.next = page.next;
  const pager = h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', 'data-testid': 'alerts-newer', disabled: at === 0, on: { click: () => (state.cursors.pop(), load()) } }, '← Newer'),
    h('span', null, `Page ${at + 1}`),
    h(
      'button',
      { type: 'button', 'data-testid': 'alerts-older', disabled: !page.next, on: { click: () => (state.cursors.push(state.next), load()) } },
      'Older →',
    ),
  );
  const empty = page.unavailable
    ? 'This server does not list alerts.'
    : 'No alert has fired: alert rules are set in the config (alerts:) and evaluated as events are stored.';
  root.replaceChildren(
    h('div', { class: 'results-head' }, h('h2', null, 'Alerts'), pager),
    page.alerts.length
      ? h('div', { class: 'alert-list', 'data-testid': 'alert-list' }, page.alerts.map(row))
      : h('p', { class: 'empty', 'data-testid': 'alerts-empty' }, empty),
  );
  root.dataset.state = 'ready';
}

// The other views know nothing of this one (to them #view=alerts is the events view): it is marked by attributes
// of its own — body[data-alerts] hides the rest (style.css), aria-current marks its tab — not by theirs.
function route() {
  const view = new URLSearchParams(location.hash.slice(1)).get('view');
  const on = view === 'alerts';
  root.hidden = !on;
  const tab = document.querySelector('#tabs [data-view="alerts"]');
  if (on) {
    document.body.dataset.alerts = 'on';
    tab?.setAttribute('aria-current', 'page');
  } else {
    delete document.body.dataset.alerts;
    tab?.removeAttribute('aria-current');
  }
  if (!on) {
    state.active = false;
    return;
  }
  if (!state.active) {
    state.active = true;
    state.cursors = [null];
    void load();
  }
}

// After app.js and sources.js (scripts run in order): they leave #view=alerts to this view.
window.addEventListener('hashchange', route);
route();
