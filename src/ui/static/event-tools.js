// The event list's tools: which columns show (chosen in a menu, remembered in localStorage), sorting by a
// column header (kept in the URL hash as sort/dir, answered by the server), export links for the current filter,
// the sidebar of top values, and the live tail that polls for newer events while `run --follow` writes.
import { fmtInt, fmtTime, h, highlighted } from './dom.js';

const COLUMNS_KEY = 'auditship.columns';

/**
 * Every column the table can show: `key`, its header, its cell class, the API's sort name (null: not sortable)
 * and whether it shows by default. `cell(row, ctx)` gives the cell's content.
 */
export const COLUMNS = [
  { key: 'time', label: 'Time (UTC)', cls: 'c-time', sort: 'time', on: true, fixed: true },
  { key: 'server', label: 'Server', cls: 'c-server', sort: 'server', on: true },
  { key: 'user', label: 'User', cls: 'c-user', sort: 'user', on: true },
  { key: 'database', label: 'Database', cls: 'c-database', sort: 'database', on: true },
  { key: 'application', label: 'Application', cls: 'c-application', sort: 'application', on: false },
  { key: 'client', label: 'Client address', cls: 'c-client', sort: 'client', on: false },
  { key: 'session', label: 'Session', cls: 'c-session', sort: 'session', on: false },
  { key: 'audit_type', label: 'Audit type', cls: 'c-audit-type', sort: 'audit_type', on: false },
  { key: 'class', label: 'Class', cls: 'c-class', sort: 'class', on: true },
  { key: 'command', label: 'Command', cls: 'c-command', sort: 'command', on: true },
  { key: 'object_type', label: 'Object type', cls: 'c-object-type', sort: 'object_type', on: false },
  { key: 'object', label: 'Object', cls: 'c-object', sort: 'object', on: true },
  { key: 'outcome', label: 'Outcome', cls: 'c-outcome', sort: null, on: true },
  { key: 'sqlstate', label: 'SQLSTATE', cls: 'c-sqlstate', sort: 'sqlstate', on: false },
  { key: 'statement', label: 'Statement', cls: 'c-statement', sort: null, on: true },
];

/** The keys of the columns shown: the browser's choice, else the defaults. */
export function shownColumns() {
  let keys = null;
  try {
    const v = JSON.parse(localStorage.getItem(COLUMNS_KEY) ?? 'null');
    if (Array.isArray(v)) keys = v.filter((k) => COLUMNS.some((c) => c.key === k));
  } catch {
    /* the defaults */
  }
  const chosen = new Set(keys ?? COLUMNS.filter((c) => c.on).map((c) => c.key));
  return COLUMNS.filter((c) => c.fixed || chosen.has(c.key));
}

function saveColumns(keys) {
  localStorage.setItem(COLUMNS_KEY, JSON.stringify(keys));
}

/** The column menu: a checkbox per column; `onChange()` after each change (saved already). */
export function renderColumnChooser(container, onChange) {
  const shown = new Set(shownColumns().map((c) => c.key));
  const list = h('div', { class: 'menu-list' });
  for (const c of COLUMNS) {
    const box = h('input', { type: 'checkbox', 'data-testid': `column-toggle-${c.key}`, checked: shown.has(c.key), disabled: c.fixed });
    box.addEventListener('change', () => {
      if (box.checked) shown.add(c.key);
      else shown.delete(c.key);
      saveColumns(COLUMNS.filter((x) => shown.has(x.key)).map((x) => x.key));
      onChange();
    });
    list.append(h('label', { class: 'menu-item' }, box, ' ', c.label));
  }
  container.replaceChildren(h('summary', { class: 'small', 'data-testid': 'column-chooser' }, 'Columns'), list);
}

/** The header row: sortable columns are buttons; the sorted one says which way. */
export function renderHead(tr, columns, sort, onSort) {
  tr.replaceChildren(
    ...columns.map((c) => {
      const active = c.sort && c.sort === sort.by;
      const arrow = active ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : '';
      const content = c.sort
        ? h('button', { type: 'button', class: 'sort', 'data-sort': c.sort, 'data-testid': `sort-${c.key}`, title: `Sort by ${c.label}` }, c.label, arrow)
        : c.label;
      const th = h('th', { class: c.cls, 'aria-sort': active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : undefined }, content);
      if (c.sort) th.querySelector('button').addEventListener('click', () => onSort(c.sort));
      return th;
    }),
  );
}

/** The next sort after a click on `by`: the same column flips; another starts ascending (time: newest first). */
export function nextSort(current, by) {
  if (current.by === by) return { by, dir: current.dir === 'asc' ? 'desc' : 'asc' };
  return { by, dir: by === 'time' ? 'desc' : 'asc' };
}

/** The hash parameters after a click on the header of `by`: the next sort, left out when it is the default. */
export function sortedParams(params, current, by) {
  const next = nextSort(current, by);
  if (next.by === 'time' && next.dir === 'desc') {
    params.delete('sort');
    params.delete('dir');
  } else {
    params.set('sort', next.by);
    params.set('dir', next.dir);
  }
  return params;
}

/** The cell of a column for an event row. */
export function cell(c, r, { q, classChip, outcomeBadge }) {
  switch (c.key) {
    case 'time':
      return h('td', { class: c.cls, title: r.log_time }, fmtTime(r.log_time));
    case 'server':
      return h('td', { class: c.cls }, r.server ?? '');
    case 'user':
      return h('td', { class: c.cls }, r.user_name ?? '');
    case 'database':
      return h('td', { class: c.cls }, r.database_name ?? '');
    case 'application':
      return h('td', { class: c.cls, title: r.application_name ?? '' }, r.application_name ?? '');
    case 'client':
      return h('td', { class: c.cls }, r.client_addr ?? '');
    case 'session':
      return h('td', { class: c.cls, title: r.session_id }, r.session_id ?? '');
    case 'audit_type':
      return h('td', { class: c.cls }, r.audit_type ?? '');
    case 'class':
      return h('td', { class: c.cls }, classChip(r.class));
    case 'command':
      return h('td', { class: c.cls }, r.command ?? '');
    case 'object_type':
      return h('td', { class: c.cls }, r.object_type ?? '');
    case 'object':
      return h('td', { class: c.cls, title: r.object_name ?? '' }, r.object_name ?? '');
    case 'outcome':
      return h('td', { class: c.cls, 'data-outcome': r.outcome }, outcomeBadge(r.outcome, r.sqlstate));
    case 'sqlstate':
      return h('td', { class: c.cls }, r.sqlstate ?? '');
    case 'statement': {
      const preview = (r.statement_preview ?? '').replace(/\s+/g, ' ');
      return h('td', { class: c.cls, title: preview }, highlighted(preview, q));
    }
    default:
      return h('td', null, '');
  }
}

/** `/api/…/export?format=…` for the filter and sort in `params`. */
export function exportHref(path, params, format) {
  const p = new URLSearchParams(params);
  p.delete('limit');
  p.delete('after');
  p.set('format', format);
  return `${path}?${p.toString()}`;
}

const FIELD_LABELS = {
  user: 'User',
  database: 'Database',
  server: 'Server',
  application: 'Application',
  client: 'Client address',
  class: 'Class',
  command: 'Command',
  object: 'Object',
};

/** The sidebar: per field its top values with counts; a click on one calls `onPick(field, value)`. */
export function renderTopValues(container, top, onPick) {
  container.replaceChildren(h('h3', null, 'Top values'));
  for (const [field, label] of Object.entries(FIELD_LABELS)) {
    const entries = top?.[field] ?? [];
    if (!entries.length) continue;
    const list = h('ul', { class: 'tv-list', 'data-field': field });
    for (const e of entries) {
      const b = h(
        'button',
        {
          type: 'button',
          class: 'tv',
          'data-testid': 'top-value',
          'data-field': field,
          'data-value': e.key,
          title: `Filter by ${label.toLowerCase()} ${e.key}`,
        },
        h('span', { class: 'tv-key' }, e.key),
        h('span', { class: 'tv-n' }, fmtInt(e.n)),
      );
      b.addEventListener('click', () => onPick(field, e.key));
      list.append(h('li', null, b));
    }
    container.append(h('h4', null, label), list);
  }
}

/**
 * The live tail: every `intervalMs`, asks `poll()` for events newer than the newest shown and gives them to
 * `prepend(rows)`; `stop()` ends it (the user scrolled, paged, or switched it off).
 */
export function createTail({ poll, prepend, onState, intervalMs = 2000 }) {
  let timer = null;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const rows = await poll();
      if (timer !== null && rows.length) prepend(rows);
    } catch {
      /* the next tick tries again */
    } finally {
      busy = false;
    }
  };
  return {
    get on() {
      return timer !== null;
    },
    start() {
      if (timer !== null) return;
      timer = setInterval(tick, intervalMs);
      onState(true);
      void tick();
    },
    stop() {
      if (timer === null) return;
      clearInterval(timer);
      timer = null;
      onState(false);
    },
  };
}
