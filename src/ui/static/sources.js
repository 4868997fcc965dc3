// The views of the other sources: row changes (trigger audit tables) at #view=changes and application events
// (outbox, django-auditlog) at #view=app-events. Each has the event list's parts — a time range, filters that live
// in the URL hash, charts, a keyset-paginated table sortable by column, export, a detail panel (for a row
// change, the diff of its fields). Everything the server sends is rendered as text.
import { classColor, drawTimeSeries, drawTopBars, legend } from './charts.js';
import { fmtInt, fmtTime, h, highlighted, parseTime } from './dom.js';
import { exportHref, sortedParams } from './event-tools.js';

const PAGE_SIZE = 50;
const RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3, all: null };
const ACTION_COLORS = { INSERT: '#16a34a', UPDATE: '#f59e0b', DELETE: '#dc2626', TRUNCATE: '#7c3aed' };

const text = (v) => (v === null || v === undefined ? '' : String(v));
const json = (v) => (v === undefined ? '' : typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v));

const VIEWS = {
  changes: {
    title: 'Row changes',
    noun: 'row changes',
    summary: 'row_changes',
    api: '/api/changes',
    one: '/api/change',
    timeline: '/api/changes/charts/timeline',
    top: '/api/changes/charts/top',
    exportPath: '/api/changes/export',
    empty: 'No row changes stored: ship a trigger audit table (source type pg_audit_table) into this store.',
    selects: [
      ['server', 'servers', 'Server'],
      ['schema', 'schemas', 'Schema'],
      ['table', 'tables', 'Table'],
      ['action', 'actions', 'Action'],
      ['user', 'users', 'User'],
    ],
    textLabel: 'Text in the row data',
    color: (k) => ACTION_COLORS[k] ?? classColor(k),
    legendKey: 'action',
    tops: [
      ['user', 'Top users', '#6366f1', 'user'],
      ['qualified_table', 'Top tables', '#0ea5e9', 'table'],
    ],
    columns: [
      { key: 'time', label: 'Time (UTC)', sort: 'time', cls: 'c-time', cell: (r) => fmtTime(r.time) },
      { key: 'server', label: 'Server', sort: 'server', cls: 'c-server', cell: (r) => text(r.server) },
      { key: 'table', label: 'Table', sort: 'table', cls: 'c-object', cell: (r) => [r.schema_name, r.table_name].filter(Boolean).join('.') },
      { key: 'action', label: 'Action', sort: 'action', cls: 'c-action', cell: (r) => actionChip(r.action) },
      { key: 'user', label: 'User', sort: 'user', cls: 'c-user', cell: (r) => text(r.user_name) },
      { key: 'application', label: 'Application', sort: 'application', cls: 'c-application', cell: (r) => text(r.application_name) },
      { key: 'changed', label: 'Changed fields', sort: null, cls: 'c-changed', cell: (r) => (r.changed ? r.changed.join(', ') : '') },
      { key: 'preview', label: 'Data', sort: null, cls: 'c-statement', cell: (r, q) => highlighted(text(r.preview), q) },
    ],
  },
  'app-events': {
    title: 'Application events',
    noun: 'application events',
    summary: 'app_events',
    api: '/api/app-events',
    one: '/api/app-event',
    timeline: '/api/app-events/charts/timeline',
    top: '/api/app-events/charts/top',
    exportPath: '/api/app-events/export',
    empty: 'No application events stored: ship an outbox or django-auditlog table (source types sql_outbox, django_auditlog) into this store.',
    selects: [
      ['source', 'sources', 'Source'],
      ['table', 'tables', 'Table'],
      ['actor', 'actors', 'Actor'],
      ['operation', 'operations', 'Operation'],
    ],
    textLabel: 'Text in the message',
    color: classColor,
    legendKey: 'operation',
    tops: [
      ['actor', 'Top actors', '#6366f1', 'actor'],
      ['source', 'Top sources', '#0ea5e9', 'source'],
    ],
    columns: [
      { key: 'time', label: 'Time (UTC)', sort: 'time', cls: 'c-time', cell: (r) => fmtTime(r.time) },
      { key: 'source', label: 'Source', sort: 'source', cls: 'c-server', cell: (r) => text(r.source_name) },
      { key: 'actor', label: 'Actor', sort: 'actor', cls: 'c-user', cell: (r) => text(r.actor) },
      { key: 'operation', label: 'Operation', sort: 'operation', cls: 'c-command', cell: (r) => text(r.operation) },
      { key: 'target', label: 'Target', sort: 'target', cls: 'c-object', cell: (r) => text(r.target) },
      { key: 'preview', label: 'Message', sort: null, cls: 'c-statement', cell: (r, q) => highlighted(text(r.preview).replace(/\s+/g, ' '), q) },
    ],
  },
};

const root = document.getElementById('sources');
const state = { summary: null, view: null, key: null, cursors: [null], next: null, rows: [], seq: 0, openId: null, aborts: {} };

function actionChip(action) {
  if (!action) return '';
  const chip = h('span', { class: 'chip' }, action);
  chip.style.setProperty('--chip', ACTION_COLORS[action] ?? classColor(action));
  return chip;
}

async function api(path, params, key) {
  state.aborts[key]?.abort();
  const ctrl = new AbortController();
  state.aborts[key] = ctrl;
  const qs = params ? params.toString() : '';
  const res = await fetch(qs ? `${path}?${qs}` : path, { signal: ctrl.signal, headers: { Accept: 'application/json' } });
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const err = new Error(body && typeof body.error === 'string' ? body.error : `the server answered HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return body;
}
const isAbort = (err) => err && err.name === 'AbortError';

const readHash = () => new URLSearchParams(location.hash.replace(/^#/, ''));

function navigate(p) {
  const next = p.toString();
  if (next === location.hash.replace(/^#/, '')) route(true);
  else location.hash = next;
}

/** The view's summary (null: its table is absent). */
function summaryOf(view) {
  return state.summary ? state.summary[VIEWS[view].summary] : null;
}

function timeBounds(hash, summary) {
  const range = hash.get('range') ?? (hash.has('from') || hash.has('to') ? 'custom' : 'all');
  if (range === 'custom') {
    const from = parseTime(hash.get('from'));
    const to = parseTime(hash.get('to'));
    return { range, from: Number.isFinite(from) ? from : undefined, to: Number.isFinite(to) ? to : undefined };
  }
  const newest = parseTime(summary?.max_time);
  const to = Number.isFinite(newest) ? newest + 1 : undefined;
  const span = RANGES[range] ?? null;
  return { range: range in RANGES ? range : 'all', from: span !== null && to !== undefined ? to - span : undefined, to };
}

/** The API's filter for the hash: time bounds, the view's list keys, q. */
function apiFilter(view, hash) {
  const cfg = VIEWS[view];
  const p = new URLSearchParams();
  const { from, to } = timeBounds(hash, summaryOf(view));
  if (from !== undefined) p.set('from', String(Math.floor(from)));
  if (to !== undefined) p.set('to', String(Math.ceil(to)));
  for (const [key] of cfg.selects) for (const v of hash.getAll(key)) if (v) p.append(key, v);
  const q = hash.get('q');
  if (q) p.set('q', q);
  return p;
}

const sortOf = (hash) => ({ by: hash.get('sort') || 'time', dir: hash.get('dir') === 'asc' ? 'asc' : 'desc' });

function listParams(view, hash) {
  const p = apiFilter(view, hash);
  const sort = sortOf(hash);
  if (sort.by !== 'time' || sort.dir !== 'desc') {
    p.set('sort', sort.by);
    p.set('dir', sort.dir);
  }
  return p;
}

function pick(key, value) {
  const p = readHash();
  p.delete('open');
  if (value === null || value === undefined || value === '') p.delete(key);
  else p.set(key, value);
  navigate(p);
}

// ---- the page of a view ----

function build(view) {
  const cfg = VIEWS[view];
  const summary = summaryOf(view);
  root.dataset.view = view;
  if (!summary || summary.rows === 0) {
    root.replaceChildren(h('p', { class: 'empty card', 'data-testid': 'sources-empty' }, cfg.empty));
    root.dataset.state = 'empty';
    return false;
  }
  const form = h('form', { class: 'filters', 'data-testid': 'source-filters', autocomplete: 'off' });
  const quick = h(
    'div',
    { class: 'quick', role: 'group', 'aria-label': 'Quick ranges, up to the newest row' },
    Object.keys(RANGES).map((r) => h('button', { type: 'button', 'data-range': r, 'data-testid': `source-range-${r}` }, r)),
  );
  const row = h('div', { class: 'filter-row' }, h('div', { class: 'range-group' }, h('span', { class: 'label' }, 'Time (UTC)'), quick));
  for (const [key, facet, label] of cfg.selects) {
    const select = h(
      'select',
      { name: key, 'data-testid': `source-filter-${key}` },
      h('option', { value: '' }, 'any'),
      (summary[facet] ?? []).map((v) => h('option', { value: v }, v)),
    );
    row.append(h('label', null, label, select));
  }
  row.append(
    h(
      'label',
      { class: 'grow' },
      cfg.textLabel,
      h('input', { type: 'search', name: 'q', placeholder: 'any text, any case', 'data-testid': 'source-filter-q' }),
    ),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'source-apply' }, 'Apply'),
      h('button', { type: 'button', class: 'ghost', 'data-testid': 'source-reset', 'data-reset': '1' }, 'Reset'),
    ),
  );
  form.append(row);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams({ view });
    const hash = readHash();
    for (const k of ['range', 'from', 'to', 'sort', 'dir']) if (hash.has(k)) p.set(k, hash.get(k));
    for (const [key] of cfg.selects) if (form.elements[key].value) p.set(key, form.elements[key].value);
    if (form.elements.q.value.trim()) p.set('q', form.elements.q.value.trim());
    navigate(p);
  });
  form.querySelector('[data-reset]').addEventListener('click', () => navigate(new URLSearchParams({ view })));
  for (const b of quick.querySelectorAll('[data-range]')) {
    b.addEventListener('click', () => {
      const p = readHash();
      p.delete('from');
      p.delete('to');
      p.delete('open');
      if (b.dataset.range === 'all') p.delete('range');
      else p.set('range', b.dataset.range);
      navigate(p);
    });
  }

  const charts = h(
    'section',
    { class: 'charts', 'data-testid': 'source-charts' },
    h(
      'figure',
      { class: 'card wide' },
      h('figcaption', null, cfg.title, ' over time'),
      h('div', { class: 'chart', id: 'src-chart-timeline' }),
      h('div', { class: 'legend', id: 'src-legend' }),
    ),
    cfg.tops.map(([by, title]) => h('figure', { class: 'card' }, h('figcaption', null, title), h('div', { class: 'chart', id: `src-chart-${by}` }))),
  );
  const results = h(
    'section',
    { class: 'results', id: 'src-results', 'data-testid': 'source-results', 'data-state': 'loading' },
    h(
      'div',
      { class: 'results-head' },
      h('h2', null, cfg.title),
      h('span', { class: 'muted', id: 'src-info', 'data-testid': 'source-info' }),
      h(
        'div',
        { class: 'list-tools' },
        h(
          'span',
          { class: 'export' },
          'Export ',
          h('button', { type: 'button', class: 'small link', id: 'src-export-csv', 'data-testid': 'source-export-csv' }, 'CSV'),
          ' ',
          h('button', { type: 'button', class: 'small link', id: 'src-export-ndjson', 'data-testid': 'source-export-ndjson' }, 'NDJSON'),
        ),
      ),
      h(
        'nav',
        { class: 'pager', 'aria-label': 'Pages' },
        h('button', { type: 'button', id: 'src-prev', 'data-testid': 'source-prev', disabled: true }, '← Newer'),
        h('span', { id: 'src-page', 'data-testid': 'source-page' }, 'Page 1'),
        h('button', { type: 'button', id: 'src-next', 'data-testid': 'source-next', disabled: true }, 'Older →'),
      ),
    ),
    h(
      'div',
      { class: 'table-wrap' },
      h('table', { class: 'events' }, h('thead', null, h('tr', { id: 'src-head' })), h('tbody', { id: 'src-rows', 'data-testid': 'source-rows' })),
    ),
    h('p', { class: 'empty', id: 'src-empty', hidden: true }, `No ${cfg.noun} in this range.`),
  );
  root.replaceChildren(form, charts, results);
  for (const b of root.querySelectorAll('.export button')) b.addEventListener('click', () => location.assign(b.dataset.href));
  root.querySelector('#src-next').addEventListener('click', () => {
    if (!state.next) return;
    state.cursors.push(state.next);
    void loadRows();
  });
  root.querySelector('#src-prev').addEventListener('click', () => {
    if (state.cursors.length <= 1) return;
    state.cursors.pop();
    void loadRows();
  });
  const rows = root.querySelector('#src-rows');
  rows.addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-id]');
    if (!tr) return;
    const p = readHash();
    p.set('open', tr.dataset.id);
    location.hash = p.toString();
  });
  root.dataset.state = 'ready';
  return true;
}

function syncForm(view, hash) {
  const form = root.querySelector('form');
  if (!form) return;
  const { range } = timeBounds(hash, summaryOf(view));
  for (const b of form.querySelectorAll('[data-range]')) b.classList.toggle('active', b.dataset.range === range);
  for (const [key] of VIEWS[view].selects) {
    const select = form.elements[key];
    const v = hash.get(key) ?? '';
    if (v && ![...select.options].some((o) => o.value === v)) select.append(h('option', { value: v }, v));
    select.value = v;
  }
  form.elements.q.value = hash.get('q') ?? '';
}

function renderHead(view, hash) {
  const sort = sortOf(hash);
  const tr = root.querySelector('#src-head');
  tr.replaceChildren(
    ...VIEWS[view].columns.map((c) => {
      if (!c.sort) return h('th', { class: c.cls }, c.label);
      const active = sort.by === c.sort;
      const b = h(
        'button',
        { type: 'button', class: 'sort', 'data-testid': `source-sort-${c.key}` },
        c.label,
        active ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : '',
      );
      b.addEventListener('click', () => {
        navigate(sortedParams(readHash(), sort, c.sort));
      });
      return h('th', { class: c.cls, 'aria-sort': active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : undefined }, b);
    }),
  );
}

async function loadRows() {
  const view = state.view;
  const cfg = VIEWS[view];
  const hash = readHash();
  const results = root.querySelector('#src-results');
  const page = state.cursors.length;
  const p = listParams(view, hash);
  p.set('limit', String(PAGE_SIZE));
  if (state.cursors[page - 1]) p.set('after', state.cursors[page - 1]);
  results.dataset.state = 'loading';
  try {
    const res = await api(cfg.api, p, 'rows');
    state.next = res.next;
    state.rows = res.rows;
    const q = hash.get('q') ?? '';
    root.querySelector('#src-rows').replaceChildren(
      ...res.rows.map((r) =>
        h(
          'tr',
          { class: 'row', tabindex: 0, 'data-testid': 'source-row', 'data-id': r.id, 'aria-selected': r.id === state.openId ? 'true' : 'false' },
          cfg.columns.map((c) => h('td', { class: c.cls }, c.cell(r, q))),
        ),
      ),
    );
    root.querySelector('#src-empty').hidden = res.rows.length > 0;
    root.querySelector('#src-page').textContent = `Page ${page}`;
    root.querySelector('#src-prev').disabled = page <= 1;
    root.querySelector('#src-next').disabled = !res.next;
    root.querySelector('#src-info').textContent = res.rows.length
      ? `${fmtInt((page - 1) * PAGE_SIZE + 1)}–${fmtInt((page - 1) * PAGE_SIZE + res.rows.length)}`
      : '';
    results.dataset.state = res.rows.length ? 'ready' : 'empty';
  } catch (err) {
    if (isAbort(err)) return;
    root.querySelector('#src-rows').replaceChildren();
    root.querySelector('#src-info').textContent = err.message;
    results.dataset.state = 'error';
  }
  results.dataset.loadSeq = String(++state.seq);
}

async function loadCharts(view, hash) {
  const cfg = VIEWS[view];
  const filter = apiFilter(view, hash);
  const { from, to } = timeBounds(hash, summaryOf(view));
  const charts = root.querySelector('[data-testid=source-charts]');
  charts.dataset.state = 'loading';
  const zoom = (t, bucket) => {
    const p = readHash();
    p.delete('range');
    p.delete('open');
    p.set('from', new Date(t).toISOString());
    p.set('to', new Date(t + bucket).toISOString());
    navigate(p);
  };
  const jobs = [
    api(cfg.timeline, filter, 'timeline').then(
      (series) => {
        const items = drawTimeSeries(root.querySelector('#src-chart-timeline'), series, {
          testid: 'source-chart-timeline',
          range: { from, to },
          color: cfg.color,
          label: cfg.noun,
          onPick: zoom,
        });
        legend(root.querySelector('#src-legend'), items, (k) => pick(cfg.legendKey, k));
      },
      () => {},
    ),
    ...cfg.tops.map(([by, , color, key]) => {
      const p = new URLSearchParams(filter);
      p.set('by', by);
      p.set('n', '10');
      return api(cfg.top, p, `top-${by}`).then(
        (list) => drawTopBars(root.querySelector(`#src-chart-${by}`), list, { testid: `source-chart-${by}`, color, onPick: (v) => pick(key, v) }),
        () => {},
      );
    }),
  ];
  await Promise.all(jobs);
  charts.dataset.state = 'ready';
}

// ---- the detail panel ----

function detailPanel() {
  let aside = document.getElementById('src-detail');
  if (aside) return aside;
  aside = h(
    'aside',
    { id: 'src-detail', class: 'detail', 'data-testid': 'source-detail', hidden: true, 'aria-label': 'Detail' },
    h(
      'div',
      { class: 'detail-head' },
      h('h2', { id: 'src-detail-title' }, ''),
      h('button', { type: 'button', class: 'small ghost', 'data-testid': 'source-detail-close' }, 'Close ✕'),
    ),
    h('div', { class: 'detail-body', id: 'src-detail-body' }),
  );
  aside.querySelector('button').addEventListener('click', closeDetail);
  document.body.append(aside);
  return aside;
}

function closeDetail() {
  const p = readHash();
  p.delete('open');
  location.hash = p.toString();
}

function fields(list) {
  const dl = h('dl', { class: 'fields' });
  for (const [label, value, cls] of list) {
    if (value === null || value === undefined || value === '') continue;
    dl.append(h('dt', null, label), h('dd', { class: cls }, String(value)));
  }
  return dl;
}

/** The diff of a row change: one line per field, its kind marked (added, removed, changed, unchanged). */
function diffTable(diff) {
  if (!diff.length) return h('p', { class: 'muted' }, 'No field data (a statement-level change such as TRUNCATE).');
  const sign = { added: '+', removed: '−', changed: '~', unchanged: '' };
  return h(
    'table',
    { class: 'diff', 'data-testid': 'diff' },
    h('thead', null, h('tr', null, h('th', null, ''), h('th', null, 'Field'), h('th', null, 'Before'), h('th', null, 'After'))),
    h(
      'tbody',
      null,
      diff.map((d) =>
        h(
          'tr',
          { class: `diff-${d.kind}`, 'data-kind': d.kind, 'data-field': d.field, 'data-testid': 'diff-row' },
          h('td', { class: 'diff-sign', title: d.kind }, sign[d.kind]),
          h('td', { class: 'mono' }, d.field),
          h('td', { class: 'mono diff-before' }, 'before' in d ? json(d.before) : ''),
          h('td', { class: 'mono diff-after' }, 'after' in d ? json(d.after) : ''),
        ),
      ),
    ),
  );
}

async function showDetail(view, id) {
  const aside = detailPanel();
  state.openId = id;
  aside.hidden = false;
  aside.dataset.state = 'loading';
  aside.dataset.id = id;
  document.body.classList.add('with-detail');
  const body = root.ownerDocument.getElementById('src-detail-body');
  const title = root.ownerDocument.getElementById('src-detail-title');
  try {
    const d = await api(VIEWS[view].one, new URLSearchParams({ id }), 'detail');
    if (view === 'changes') {
      title.textContent = `${d.action ?? ''} ${[d.schema_name, d.table_name].filter(Boolean).join('.')}`;
      const counts = { added: 0, removed: 0, changed: 0 };
      for (const f of d.diff) if (f.kind in counts) counts[f.kind]++;
      body.replaceChildren(
        h('div', { class: 'detail-meta' }, fmtTime(d.time), ' UTC ', actionChip(d.action)),
        h(
          'h3',
          null,
          'Fields ',
          h('span', { class: 'muted', 'data-testid': 'diff-summary' }, `${counts.changed} changed, ${counts.added} added, ${counts.removed} removed`),
        ),
        diffTable(d.diff),
        d.client_query ? h('h3', null, 'Statement') : '',
        d.client_query ? h('pre', { class: 'statement' }, d.client_query) : '',
        h('h3', null, 'All fields'),
        fields([
          ['Time', `${fmtTime(d.time)} UTC`],
          ['Server', d.server],
          ['Audit table', d.source_table, 'mono'],
          ['Event ID', d.event_id],
          ['Transaction', d.txid],
          ['User', d.user_name],
          ['Application', d.application_name],
          ['Client', d.client_addr ? `${d.client_addr}${d.client_port ? `:${d.client_port}` : ''}` : null],
          ['Transaction start', d.tstamp_tx ? `${fmtTime(d.tstamp_tx)} UTC` : null],
          ['Statement start', d.tstamp_stm ? `${fmtTime(d.tstamp_stm)} UTC` : null],
          ['Shipped', d.shipped_at ? `${fmtTime(d.shipped_at)} UTC` : null],
        ]),
      );
    } else {
      title.textContent = [d.operation, d.target].filter(Boolean).join(' ') || 'Application event';
      body.replaceChildren(
        h('div', { class: 'detail-meta' }, fmtTime(d.time), ' UTC'),
        fields([
          ['Actor', d.actor],
          ['Operation', d.operation],
          ['Target', d.target],
          ['Source', d.source_name],
          ['Table', d.source_table, 'mono'],
          ['Row ID', d.row_id, 'mono'],
          ['Created', d.created_at ? `${fmtTime(d.created_at)} UTC` : null],
          ['Shipped', d.shipped_at ? `${fmtTime(d.shipped_at)} UTC` : null],
        ]),
        h('h3', null, 'Message'),
        h('pre', { class: 'statement', 'data-testid': 'source-message' }, typeof d.message === 'string' ? d.message : JSON.stringify(d.message, null, 2)),
      );
    }
    aside.dataset.state = 'ready';
  } catch (err) {
    if (isAbort(err)) return;
    title.textContent = 'Not found';
    body.replaceChildren(h('p', { class: 'chart-error' }, err.status === 404 ? 'Not in the database (any more).' : err.message));
    aside.dataset.state = 'error';
  }
}

function hideDetail() {
  const aside = document.getElementById('src-detail');
  state.openId = null;
  if (aside && !aside.hidden) {
    aside.hidden = true;
    document.body.classList.remove('with-detail');
  }
}

// ---- routing ----

function setTabs(view) {
  for (const a of document.querySelectorAll('#tabs [data-view]')) a.classList.toggle('active', a.dataset.view === (view ?? 'events'));
  document.body.dataset.view = view ?? 'events';
}

function route(force = false) {
  const hash = readHash();
  const view = hash.get('view');
  if (!view || !VIEWS[view]) {
    setTabs(null);
    root.hidden = true;
    state.view = null;
    state.key = null;
    hideDetail();
    return;
  }
  setTabs(view);
  root.hidden = false;
  const key = (() => {
    const p = new URLSearchParams(hash);
    p.delete('open');
    p.sort();
    return p.toString();
  })();
  if (force || view !== state.view || key !== state.key) {
    const rebuild = view !== state.view || !root.querySelector('form');
    state.view = view;
    state.key = key;
    state.cursors = [null];
    state.next = null;
    if (rebuild && !build(view)) {
      hideDetail();
      return;
    }
    syncForm(view, hash);
    renderHead(view, hash);
    const params = listParams(view, hash);
    root.querySelector('#src-export-csv').dataset.href = exportHref(VIEWS[view].exportPath, params, 'csv');
    root.querySelector('#src-export-ndjson').dataset.href = exportHref(VIEWS[view].exportPath, params, 'ndjson');
    void loadRows();
    void loadCharts(view, hash);
  }
  const open = hash.get('open');
  if (open && open !== state.openId) void showDetail(view, open);
  else if (!open) hideDetail();
}

document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && state.openId) closeDetail();
});
window.addEventListener('hashchange', () => route());

async function start() {
  try {
    state.summary = await api('/api/sources', null, 'sources');
  } catch {
    // A server without these queries (404): the tabs say nothing, the views say there is nothing.
    state.summary = { row_changes: null, app_events: null };
  }
  for (const [view, cfg] of Object.entries(VIEWS)) {
    const s = state.summary[cfg.summary];
    const n = document.getElementById(`tab-${view}-n`);
    if (n) n.textContent = s && s.rows ? fmtInt(s.rows) : '';
    document.querySelector(`#tabs [data-view="${view}"]`)?.classList.toggle('none', !s || !s.rows);
  }
  document.getElementById('tabs').dataset.state = 'ready';
  route(true);
}

void start();
