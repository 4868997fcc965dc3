// auditship ui: filters in the URL hash, a keyset-paginated event table, an event/session detail panel,
// and SVG charts that follow the filters. Everything the server sends is rendered as text.
import { classColor, drawTimeSeries, drawTopBars, legend } from './charts.js';
import { clear, fmtDuration, fmtInt, fmtTime, fromInputValue, h, highlighted, parseTime, toInputValue } from './dom.js';
import { cell, createTail, exportHref, renderColumnChooser, renderHead, renderTopValues, shownColumns, sortedParams } from './event-tools.js';

const PAGE_SIZE = 50;
const RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3, all: null };
const SELECTS = [
  ['server', 'servers'],
  ['user', 'users'],
  ['database', 'databases'],
  ['class', 'classes'],
  ['command', 'commands'],
];
const TEXT_KEYS = ['object', 'application', 'client', 'outcome', 'q'];

const $ = (id) => document.getElementById(id);
const form = $('filters');
const results = $('results');
const rowsEl = $('rows');
const detail = $('detail');

const state = {
  /** The config's saved searches (/api/saved-searches). */
  saved: [],
  facets: null,
  /** The filter part of the hash (everything but `ev`), to tell a filter change from opening an event. */
  filterKey: null,
  hash: new URLSearchParams(),
  /** cursors[i] is the `after` of page i + 1 (null for the first page). */
  cursors: [null],
  next: null,
  loadSeq: 0,
  chartGen: 0,
  openId: null,
  aborts: {},
};

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, params, key) {
  state.aborts[key]?.abort();
  const ctrl = new AbortController();
  state.aborts[key] = ctrl;
  const qs = params ? params.toString() : '';
  let res;
  try {
    res = await fetch(qs ? `${path}?${qs}` : path, { signal: ctrl.signal, headers: { Accept: 'application/json' } });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError('cannot reach the auditship ui server (stopped?)', 0);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    if (res.status === 401) throw new ApiError('not signed in: open this page with ?token=… (the token auditship ui was started with)', 401);
    throw new ApiError(body && typeof body.error === 'string' ? body.error : `the server answered HTTP ${res.status}`, res.status);
  }
  return body;
}

const isAbort = (err) => err && err.name === 'AbortError';

// ---- errors ----

function showError(message) {
  $('error-text').textContent = message;
  $('error-bar').hidden = false;
}
function hideError() {
  $('error-bar').hidden = true;
}
$('error-close').addEventListener('click', hideError);

// ---- the hash: filter state ----

function readHash() {
  return new URLSearchParams(location.hash.replace(/^#/, ''));
}

function filterKeyOf(params) {
  const p = new URLSearchParams(params);
  p.delete('ev');
  p.sort();
  return p.toString();
}

/** The time bounds (ms) the hash means, anchored at the newest stored event for quick ranges. */
function timeBounds(hash) {
  const range = hash.get('range') ?? (hash.has('from') || hash.has('to') ? 'custom' : 'all');
  const newest = parseTime(state.facets?.max_time);
  if (range === 'custom') {
    const from = parseTime(hash.get('from'));
    const to = parseTime(hash.get('to'));
    return { range, from: Number.isFinite(from) ? from : undefined, to: Number.isFinite(to) ? to : undefined };
  }
  const span = RANGES[range] ?? null;
  // `to` is exclusive: one millisecond past the newest event keeps it in.
  const to = Number.isFinite(newest) ? newest + 1 : undefined;
  const from = span !== null && to !== undefined ? to - span : undefined;
  return { range: range in RANGES ? range : 'all', from, to };
}

/** The API's filter parameters for the current hash. */
function apiFilter(hash = state.hash) {
  const p = new URLSearchParams();
  const { from, to } = timeBounds(hash);
  if (from !== undefined) p.set('from', String(Math.floor(from)));
  if (to !== undefined) p.set('to', String(Math.ceil(to)));
  for (const [key] of SELECTS) for (const v of hash.getAll(key)) if (v) p.append(key, v);
  for (const key of TEXT_KEYS) {
    const v = hash.get(key);
    if (v) p.set(key, v);
  }
  return p;
}

/** The hash for the form's values (quick range, or the from/to inputs when edited). */
function hashFromForm(range) {
  const p = new URLSearchParams();
  const r = range ?? form.dataset.range ?? 'all';
  if (r === 'custom') {
    const from = fromInputValue(form.elements.from.value);
    const to = fromInputValue(form.elements.to.value);
    if (Number.isFinite(from)) p.set('from', new Date(from).toISOString());
    if (Number.isFinite(to)) p.set('to', new Date(to).toISOString());
    if (!p.has('from') && !p.has('to')) p.set('range', 'all');
  } else if (r !== 'all') {
    p.set('range', r);
  }
  for (const [key] of SELECTS) {
    const v = form.elements[key].value;
    if (v) p.set(key, v);
  }
  for (const key of TEXT_KEYS) {
    const v = form.elements[key].value.trim();
    if (v) p.set(key, v);
  }
  return p;
}

function navigate(params) {
  const next = params.toString();
  if (next === location.hash.replace(/^#/, '')) route(true);
  else location.hash = next;
}

/** Shows the hash's values in the form. */
function syncForm(hash) {
  const { range, from, to } = timeBounds(hash);
  form.dataset.range = range;
  for (const b of form.querySelectorAll('[data-range]')) b.classList.toggle('active', b.dataset.range === range);
  form.elements.from.value = from !== undefined ? toInputValue(from) : toInputValue(parseTime(state.facets?.min_time));
  form.elements.to.value = to !== undefined ? toInputValue(to) : '';
  for (const [key] of SELECTS) {
    const select = form.elements[key];
    const v = hash.get(key) ?? '';
    // A value from a link that the facets do not list still shows (and filters).
    if (v && ![...select.options].some((o) => o.value === v)) select.append(h('option', { value: v }, v));
    select.value = v;
  }
  for (const key of TEXT_KEYS) form.elements[key].value = hash.get(key) ?? '';
}

// ---- facets, header ----

function fillFacets(f) {
  for (const [key, facet] of SELECTS) {
    const select = form.elements[key];
    clear(select).append(h('option', { value: '' }, 'any'), ...(f[facet] ?? []).map((v) => h('option', { value: v }, v)));
  }
  const stats = $('stats');
  clear(stats);
  if (f.events === 0 || !f.max_time) {
    stats.append('no events stored yet');
  } else {
    stats.append(
      h('strong', null, fmtInt(f.events)),
      ' events · ',
      fmtTime(f.min_time, { millis: false }),
      ' → ',
      fmtTime(f.max_time, { millis: false }),
      ' UTC',
    );
  }
}

async function loadFacets() {
  const f = await api('/api/facets', null, 'facets');
  state.facets = f;
  fillFacets(f);
}

// ---- the event table ----

function outcomeBadge(outcome, sqlstate) {
  return outcome === 'error'
    ? h('span', { class: 'badge err', title: sqlstate ? `SQLSTATE ${sqlstate}` : 'error' }, 'error', sqlstate ? ` ${sqlstate}` : '')
    : h('span', { class: 'badge ok' }, 'ok');
}

function classChip(name) {
  if (!name) return '';
  const chip = h('span', { class: 'chip' }, name);
  chip.style.setProperty('--chip', classColor(name));
  return chip;
}

function renderRows(rows) {
  const q = state.hash.get('q') ?? '';
  clear(rowsEl);
  rowsEl.append(...rows.map((r) => rowOf(r, q)));
}

/** The sort the hash asks for (time, newest first, by default). */
function sortOf(hash = state.hash) {
  return { by: hash.get('sort') || 'time', dir: hash.get('dir') === 'asc' ? 'asc' : 'desc' };
}

/** The list's parameters: the filter, and the sort unless it is the default. */
function listParams() {
  const params = apiFilter();
  const sort = sortOf();
  if (sort.by !== 'time' || sort.dir !== 'desc') {
    params.set('sort', sort.by);
    params.set('dir', sort.dir);
  }
  return params;
}

function rowOf(r, q) {
  return h(
    'tr',
    {
      tabindex: 0,
      class: 'row',
      'data-testid': 'event-row',
      'data-id': r.id,
      'data-log-time': r.log_time,
      'aria-selected': r.id === state.openId ? 'true' : 'false',
    },
    shownColumns().map((c) => cell(c, r, { q, classChip, outcomeBadge })),
  );
}

rowsEl.addEventListener('click', (e) => {
  const tr = e.target.closest('tr[data-id]');
  if (tr) openEvent(tr.dataset.id);
});
rowsEl.addEventListener('keydown', (e) => {
  const tr = e.target.closest('tr[data-id]');
  if (!tr) return;
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    openEvent(tr.dataset.id);
  } else if (e.key === 'ArrowDown') {
    e.preventDefault();
    tr.nextElementSibling?.focus();
  } else if (e.key === 'ArrowUp') {
    e.preventDefault();
    tr.previousElementSibling?.focus();
  }
});

function setResultsState(s) {
  results.dataset.state = s;
}

async function loadEvents() {
  const page = state.cursors.length;
  const after = state.cursors[page - 1];
  const params = listParams();
  params.set('limit', String(PAGE_SIZE));
  if (after) params.set('after', after);
  setResultsState('loading');
  $('prev-page').disabled = true;
  $('next-page').disabled = true;
  try {
    const res = await api('/api/events', params, 'events');
    state.next = res.next;
    state.rows = res.rows;
    renderRows(res.rows);
    $('empty').hidden = res.rows.length > 0;
    $('empty').textContent = page > 1 ? 'No older events.' : 'No events in this range.';
    $('page-number').textContent = `Page ${page}`;
    const sort = sortOf();
    $('results-info').textContent = res.rows.length
      ? `${fmtInt((page - 1) * PAGE_SIZE + 1)}–${fmtInt((page - 1) * PAGE_SIZE + res.rows.length)}, ${sort.by === 'time' ? (sort.dir === 'desc' ? 'newest first' : 'oldest first') : `by ${sort.by}`}`
      : '';
    $('live-tail').disabled = page > 1 || sort.by !== 'time' || sort.dir !== 'desc';
    $('prev-page').disabled = page <= 1;
    $('next-page').disabled = !res.next;
    results.dataset.page = String(page);
    setResultsState(res.rows.length ? 'ready' : 'empty');
  } catch (err) {
    if (isAbort(err)) return; // a newer load replaced this one
    clear(rowsEl);
    $('empty').hidden = true;
    $('results-info').textContent = '';
    $('prev-page').disabled = page <= 1;
    setResultsState('error');
    showError(err.message);
  }
  // Counts finished loads (tests wait for it to move).
  results.dataset.loadSeq = String(++state.loadSeq);
}

$('next-page').addEventListener('click', () => {
  if (!state.next) return;
  tail.stop();
  state.cursors.push(state.next);
  loadEvents().then(() => results.scrollIntoView({ block: 'start' }));
});
$('prev-page').addEventListener('click', () => {
  if (state.cursors.length <= 1) return;
  tail.stop();
  state.cursors.pop();
  loadEvents();
});

// ---- charts ----

function pickFilter(key, value) {
  const p = new URLSearchParams(state.hash);
  p.delete('ev');
  if (value === null || value === undefined || value === '') p.delete(key);
  else p.set(key, value);
  navigate(p);
}

function zoomTo(t, bucketMs) {
  const p = new URLSearchParams(state.hash);
  p.delete('ev');
  p.delete('range');
  p.set('from', new Date(t).toISOString());
  p.set('to', new Date(t + bucketMs).toISOString());
  navigate(p);
}

function chartError(container, testid, err) {
  if (isAbort(err)) return;
  clear(container).append(h('p', { class: 'chart-error', 'data-testid': `${testid}-error` }, err.message));
}

async function loadCharts() {
  const filter = apiFilter();
  const { from, to } = timeBounds(state.hash);
  const range = { from, to };
  const top = (n) => {
    const p = new URLSearchParams(filter);
    p.set('n', String(n));
    return p;
  };
  const charts = $('charts');
  const gen = ++state.chartGen;
  charts.dataset.state = 'loading';
  const jobs = [
    api('/api/charts/timeline', filter, 'timeline').then(
      (series) => {
        const items = drawTimeSeries($('chart-timeline'), series, { testid: 'chart-timeline', range, onPick: zoomTo });
        legend($('legend-timeline'), items, (cls) => pickFilter('class', cls));
      },
      (err) => {
        chartError($('chart-timeline'), 'chart-timeline', err);
        clear($('legend-timeline'));
      },
    ),
    api('/api/charts/top-users', top(10), 'top-users').then(
      (list) => {
        drawTopBars($('chart-top-users'), list, { testid: 'chart-top-users', color: '#6366f1', onPick: (u) => pickFilter('user', u) });
      },
      (err) => chartError($('chart-top-users'), 'chart-top-users', err),
    ),
    api('/api/charts/top-objects', top(10), 'top-objects').then(
      (list) => {
        drawTopBars($('chart-top-objects'), list, { testid: 'chart-top-objects', color: '#0ea5e9', onPick: (o) => pickFilter('object', o) });
      },
      (err) => chartError($('chart-top-objects'), 'chart-top-objects', err),
    ),
    api('/api/charts/logon-failures', filter, 'logon-failures').then(
      (sum) => {
        $('logon-total').textContent = sum.total ? fmtInt(sum.total) : '';
        drawTimeSeries(
          $('chart-logon-failures'),
          { bucket_ms: sum.bucket_ms, points: sum.points },
          {
            testid: 'chart-logon-failures',
            range,
            color: () => '#dc2626',
            label: 'failed logins',
            emptyText: 'No failed logins in this range.',
            onPick: zoomTo,
          },
        );
        renderLogonTop(sum.top ?? []);
      },
      (err) => {
        chartError($('chart-logon-failures'), 'chart-logon-failures', err);
        clear($('logon-top'));
      },
    ),
  ];
  await Promise.all(jobs);
  if (gen !== state.chartGen) return; // a newer load replaced this one
  charts.dataset.state = 'ready';
  charts.dataset.loadSeq = String(gen);
}

function renderLogonTop(top) {
  const table = clear($('logon-top'));
  if (!top.length) return;
  table.append(
    h('thead', null, h('tr', null, h('th', null, 'User'), h('th', null, 'Client'), h('th', null, 'Reason'), h('th', { class: 'num' }, 'Failures'))),
    h(
      'tbody',
      null,
      top.map((t) =>
        h(
          'tr',
          null,
          h('td', null, t.user_name ?? '(none)'),
          h('td', null, t.client_addr ?? ''),
          h('td', { class: 'reason', title: t.reason ?? '' }, t.reason ?? ''),
          h('td', { class: 'num' }, fmtInt(t.n)),
        ),
      ),
    ),
  );
}

// ---- the detail panel ----

function openEvent(id) {
  const p = new URLSearchParams(state.hash);
  p.set('ev', id);
  location.hash = p.toString();
}

function closeEvent() {
  const p = new URLSearchParams(state.hash);
  p.delete('ev');
  location.hash = p.toString();
}

$('detail-close').addEventListener('click', closeEvent);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !detail.hidden) closeEvent();
});

function field(dl, label, value, cls) {
  if (value === null || value === undefined || value === '') return;
  dl.append(h('dt', null, label), h('dd', { class: cls }, String(value)));
}

function clientOf(addr, port) {
  if (!addr) return '';
  return port ? `${addr}:${port}` : addr;
}

function renderDetail(data) {
  const body = clear($('detail-body'));
  const e = data.event;
  const q = state.hash.get('q') ?? '';
  $('detail-title').textContent = [e.command, e.object_name].filter(Boolean).join(' ') || 'Event';
  body.append(h('div', { class: 'detail-meta' }, fmtTime(e.log_time), ' UTC ', outcomeBadge(e.outcome, e.sqlstate), ' ', classChip(e.class)));
  if (e.outcome === 'error') {
    body.append(
      h(
        'div',
        { class: 'error-box', 'data-testid': 'detail-error' },
        h('strong', null, e.sqlstate ? `ERROR ${e.sqlstate}` : 'ERROR'),
        e.error_message ? ': ' : '',
        e.error_message ?? '',
      ),
    );
  }
  const copy = h('button', { type: 'button', class: 'small', title: 'Copy the statement' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(e.statement ?? '');
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Copy failed';
    }
    setTimeout(() => {
      copy.textContent = 'Copy';
    }, 1500);
  });
  body.append(
    h('div', { class: 'section-head' }, h('h3', null, 'Statement'), copy),
    h(
      'pre',
      { class: 'statement', 'data-testid': 'detail-statement' },
      e.statement === null ? h('span', { class: 'muted' }, '(none)') : highlighted(e.statement, q),
    ),
  );
  if (e.parameter !== null && e.parameter !== undefined) {
    body.append(h('h3', null, 'Parameters'), h('pre', { class: 'parameter', 'data-testid': 'detail-parameter' }, e.parameter));
  }
  const fields = h('dl', { class: 'fields', 'data-testid': 'detail-fields' });
  field(fields, 'Time', `${fmtTime(e.log_time)} UTC`);
  field(fields, 'Server', e.server);
  field(fields, 'User', e.user_name);
  field(fields, 'Database', e.database_name);
  field(fields, 'Client', clientOf(e.client_addr, e.client_port));
  field(fields, 'Application', e.application_name);
  field(fields, 'Backend', e.backend_type);
  field(fields, 'Process ID', e.process_id);
  field(fields, 'Session', e.session_id, 'mono');
  field(fields, 'Session line', e.session_line_num);
  field(fields, 'Virtual xid', e.virtual_transaction_id, 'mono');
  field(fields, 'Transaction ID', e.transaction_id);
  field(fields, 'Audit type', e.audit_type);
  field(
    fields,
    'Statement ID',
    e.statement_id === null || e.statement_id === undefined
      ? null
      : `${e.statement_id}${e.substatement_id !== null && e.substatement_id !== undefined ? ` / sub ${e.substatement_id}` : ''}`,
  );
  field(fields, 'Class', e.class);
  field(fields, 'Command', e.command);
  field(fields, 'Object type', e.object_type);
  field(fields, 'Object', e.object_name, 'mono');
  field(fields, 'Rows', e.rows);
  field(fields, 'Outcome', e.outcome);
  field(fields, 'SQLSTATE', e.sqlstate, 'mono');
  field(fields, 'Error', e.error_message);
  field(fields, 'Log file', e.file_name, 'mono');
  field(fields, 'Event ID', e.id, 'mono');

  const sessionEl = h('section', { class: 'session', 'data-testid': 'detail-session' }, h('h3', null, 'Session'));
  const s = data.session;
  if (s) {
    const dl = h('dl', { class: 'fields' });
    field(dl, 'User', s.user_name);
    field(dl, 'Database', s.database_name);
    field(dl, 'Client', clientOf(s.client_addr, s.client_port));
    field(dl, 'Application', s.application_name);
    field(dl, 'Process ID', s.process_id);
    field(dl, 'Started', s.session_start ? `${fmtTime(s.session_start)} UTC` : null);
    field(dl, 'Connected', s.connected_at ? `${fmtTime(s.connected_at)} UTC` : null);
    field(dl, 'Disconnected', s.disconnected_at ? `${fmtTime(s.disconnected_at)} UTC` : 'not seen (still open, or not logged)');
    field(dl, 'Duration', s.duration_ms !== null && s.duration_ms !== undefined ? fmtDuration(s.duration_ms) : null);
    sessionEl.append(dl);
  } else {
    sessionEl.append(
      h('p', { class: 'muted' }, 'No connection record for this session (log_connections off, or the session began before the first log file).'),
    );
  }
  const timeline = h('ol', { class: 'timeline', 'data-testid': 'timeline' });
  for (const item of data.timeline ?? []) {
    const current = item.id !== undefined && item.id === e.id;
    let tag;
    let text = item.label ?? item.kind;
    if (item.kind === 'audit') {
      tag = item.class ? classChip(item.class) : h('span', { class: 'tl-kind' }, 'audit');
    } else if (item.kind === 'error') {
      // "ERROR 22012": the severity as the tag, the SQLSTATE as the text.
      const [word, ...rest] = String(text).split(' ');
      tag = h('span', { class: 'tl-kind' }, word || 'error');
      text = rest.join(' ');
    } else {
      tag = h('span', { class: 'tl-kind' }, 'session');
    }
    const label = h('span', { class: 'tl-label' }, text);
    const content =
      item.kind === 'audit' && item.id && !current
        ? h('button', { type: 'button', class: 'tl-link', 'data-id': item.id, title: 'Open this event' }, label)
        : label;
    const li = h(
      'li',
      {
        class: `tl tl-${item.kind}${current ? ' current' : ''}${item.outcome === 'error' ? ' tl-failed' : ''}`,
        'data-testid': 'timeline-item',
        'data-kind': item.kind,
        'data-current': current ? 'true' : undefined,
        'aria-current': current ? 'true' : undefined,
      },
      h('span', { class: 'tl-dot' }),
      h('span', { class: 'tl-time', title: item.log_time }, fmtTime(item.log_time).slice(11)),
      tag,
      content,
      item.outcome === 'error' ? h('span', { class: 'badge err' }, item.sqlstate ? `error ${item.sqlstate}` : 'error') : '',
    );
    timeline.append(li);
  }
  if (!(data.timeline ?? []).length) timeline.append(h('li', { class: 'muted' }, 'No other records of this session.'));
  sessionEl.append(h('h3', null, 'Timeline'), timeline);
  if (data.truncated) sessionEl.append(h('p', { class: 'muted' }, 'The session has more records than shown: this is the part around the event.'));
  body.append(sessionEl, h('h3', null, 'All fields'), fields);
  body.scrollTop = 0;
  // The timeline scrolls on its own: bring the event into its view without moving the panel.
  const cur = timeline.querySelector('.current');
  if (cur) timeline.scrollTop = Math.max(0, cur.offsetTop - timeline.clientHeight / 2);
}

$('detail-body').addEventListener('click', (e) => {
  const b = e.target.closest('button.tl-link[data-id]');
  if (b) openEvent(b.dataset.id);
});

async function showDetail(id) {
  state.openId = id;
  detail.hidden = false;
  document.body.classList.add('with-detail');
  detail.dataset.state = 'loading';
  detail.dataset.eventId = id;
  for (const tr of rowsEl.querySelectorAll('tr[data-id]')) tr.setAttribute('aria-selected', tr.dataset.id === id ? 'true' : 'false');
  try {
    const data = await api('/api/event', new URLSearchParams({ id }), 'event');
    renderDetail(data);
    detail.dataset.state = 'ready';
  } catch (err) {
    if (isAbort(err)) return;
    $('detail-title').textContent = 'Event';
    clear($('detail-body')).append(h('p', { class: 'chart-error' }, err.status === 404 ? 'This event is not in the database (any more).' : err.message));
    detail.dataset.state = 'error';
  }
}

function hideDetail() {
  state.openId = null;
  state.aborts.event?.abort();
  detail.hidden = true;
  document.body.classList.remove('with-detail');
  for (const tr of rowsEl.querySelectorAll('tr[aria-selected="true"]')) tr.setAttribute('aria-selected', 'false');
}

// ---- saved searches: the config's (/api/saved-searches) and this browser's; #search=NAME opens one ----

const LOCAL_SEARCHES = 'auditship.savedSearches';

function localSearches() {
  try {
    const v = JSON.parse(localStorage.getItem(LOCAL_SEARCHES) ?? '[]');
    return Array.isArray(v) ? v.filter((s) => s && typeof s.name === 'string' && typeof s.filter === 'string') : [];
  } catch {
    return [];
  }
}

function renderSaved() {
  const sel = $('saved');
  sel.replaceChildren(h('option', { value: '' }, '—'));
  for (const [label, list] of [
    ['From the config', state.saved],
    ['Saved in this browser', localSearches()],
  ]) {
    if (!list.length) continue;
    sel.append(h('optgroup', { label }, ...list.map((s) => h('option', { value: s.filter }, s.name))));
  }
  // The current filter, if it is a saved one, shows selected.
  const current = filterKeyOf(state.hash);
  sel.value = [...sel.querySelectorAll('option')].find((o) => o.value && filterKeyOf(new URLSearchParams(o.value)) === current)?.value ?? '';
}

$('saved').addEventListener('change', (e) => {
  if (e.target.value) navigate(new URLSearchParams(e.target.value));
});
$('save-search').addEventListener('click', () => {
  const name = (window.prompt('Name this search (kept in this browser)') ?? '').trim().slice(0, 80);
  if (!name) return;
  const p = new URLSearchParams(state.hash);
  p.delete('ev');
  const list = localSearches().filter((s) => s.name !== name);
  list.push({ name, filter: p.toString() });
  localStorage.setItem(LOCAL_SEARCHES, JSON.stringify(list));
  renderSaved();
});

/**
 * `#search=NAME`: the saved search of that name, in place of the hash (the link stays in the history). Returns
 * true when it navigated, else the problem (or null without `search`).
 */
function openSavedByName(hash) {
  const name = hash.get('search');
  if (name === null) return null;
  const found = [...state.saved, ...localSearches()].find((s) => s.name === name);
  if (!found) return `no saved search named "${name.slice(0, 80)}"`;
  location.replace(`#${found.filter}`);
  return true;
}

// ---- the list's tools: columns, sorting, export, top values, live tail (event-tools.js) ----

function renderEventTools() {
  renderHead($('head-row'), shownColumns(), sortOf(), (by) => {
    const p = new URLSearchParams(state.hash);
    p.delete('ev');
    navigate(sortedParams(p, sortOf(), by));
  });
  const params = listParams();
  $('export-csv').dataset.href = exportHref('/api/export', params, 'csv');
  $('export-ndjson').dataset.href = exportHref('/api/export', params, 'ndjson');
}

// The server answers an export as an attachment: the browser downloads it and the page stays.
for (const id of ['export-csv', 'export-ndjson']) $(id).addEventListener('click', (e) => location.assign(e.currentTarget.dataset.href));

renderColumnChooser($('columns'), () => {
  renderEventTools();
  renderRows(state.rows ?? []);
});

async function loadTopValues() {
  const el = $('top-values');
  const p = apiFilter();
  p.set('n', '5');
  el.dataset.state = 'loading';
  try {
    renderTopValues(el, await api('/api/top-values', p, 'top-values'), (field, value) => pickFilter(field, value));
    el.dataset.state = 'ready';
  } catch (err) {
    if (isAbort(err)) return;
    // A server without the sidebar's query (404) shows none.
    el.replaceChildren();
    el.dataset.state = err.status === 404 ? 'none' : 'error';
  }
}

/** Events newer than the newest shown (its millisecond included; rows shown already are dropped by id). */
async function pollNewer() {
  const newest = rowsEl.querySelector('tr[data-log-time]')?.dataset.logTime;
  const p = apiFilter();
  p.delete('to');
  const newestMs = parseTime(newest);
  if (Number.isFinite(newestMs)) p.set('from', String(Math.max(Number(p.get('from') ?? -Infinity), Math.floor(newestMs))));
  p.set('limit', '200');
  const res = await api('/api/events', p, 'tail');
  const shown = new Set([...rowsEl.querySelectorAll('tr[data-id]')].map((tr) => tr.dataset.id));
  return res.rows.filter((r) => !shown.has(r.id));
}

const tail = createTail({
  poll: pollNewer,
  prepend: (rows) => {
    const q = state.hash.get('q') ?? '';
    const trs = rows.map((r) => rowOf(r, q));
    for (const tr of trs) tr.classList.add('fresh');
    rowsEl.prepend(...trs);
    state.rows = [...rows, ...(state.rows ?? [])];
    $('empty').hidden = true;
    results.dataset.tailed = String(Number(results.dataset.tailed ?? 0) + rows.length);
  },
  onState: (on) => {
    $('live-tail').setAttribute('aria-pressed', on ? 'true' : 'false');
    $('live-tail').textContent = on ? 'Live ●' : 'Live';
    results.dataset.tail = on ? 'on' : 'off';
  },
});
$('live-tail').addEventListener('click', () => (tail.on ? tail.stop() : tail.start()));
// Scrolling away from the newest events ends the tail (it would move the rows being read).
for (const ev of ['wheel', 'touchmove']) window.addEventListener(ev, () => tail.stop(), { passive: true });

// ---- wiring ----

/** Applies the hash: reloads table and charts when the filter changed (or `force`), opens or closes the detail. */
function route(force = false) {
  const hash = readHash();
  const saved = openSavedByName(hash);
  if (saved === true) return;
  hash.delete('search');
  // Row changes and application events are sources.js's views (#view=…); back here, everything reloads.
  if (hash.has('view')) {
    state.filterKey = null;
    tail.stop();
    if (state.openId) hideDetail();
    return;
  }
  state.hash = hash;
  const key = filterKeyOf(hash);
  if (force || key !== state.filterKey) {
    state.filterKey = key;
    state.cursors = [null];
    state.next = null;
    tail.stop();
    hideError();
    syncForm(hash);
    renderSaved();
    renderEventTools();
    loadEvents();
    loadCharts();
    loadTopValues();
  }
  if (saved) showError(saved);
  const ev = hash.get('ev');
  if (ev && ev !== state.openId) showDetail(ev);
  else if (!ev && state.openId) hideDetail();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  navigate(hashFromForm());
});
for (const b of form.querySelectorAll('[data-range]')) {
  b.addEventListener('click', () => navigate(hashFromForm(b.dataset.range)));
}
for (const name of ['from', 'to']) {
  form.elements[name].addEventListener('input', () => {
    form.dataset.range = 'custom';
    for (const b of form.querySelectorAll('[data-range]')) b.classList.remove('active');
  });
}
$('reset').addEventListener('click', () => navigate(new URLSearchParams()));
$('refresh').addEventListener('click', async () => {
  try {
    await loadFacets();
  } catch (err) {
    showError(err.message);
    return;
  }
  syncForm(state.hash);
  route(true);
});
window.addEventListener('hashchange', () => route());

async function start() {
  try {
    state.saved = await api('/api/saved-searches', null, 'saved');
  } catch (err) {
    state.saved = [];
    if (!isAbort(err) && err.status !== 404) showError(err.message);
  }
  try {
    await loadFacets();
  } catch (err) {
    setResultsState('error');
    results.dataset.loadSeq = String(++state.loadSeq);
    showError(err.message);
    return;
  }
  route(true);
}

start();
