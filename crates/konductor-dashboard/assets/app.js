// Konductor's dashboard page: draws the panels the dashboard sends over one
// server-sent-event feed (a snapshot, then batches of changes). Plain JavaScript, no
// framework: every element is made with `h()` and filled with textContent, so nothing
// from the cluster is ever parsed as HTML. Each kind draws at most SHOWN panels at a
// time (filter or "show more" for the rest), and each panel is bounded by the
// dashboard, so the page stays small whatever the cluster holds.
'use strict';

const KINDS = ['Barrier', 'Semaphore', 'Mutex', 'RWMutex', 'RateLimit', 'Once', 'WaitGroup', 'Gate'];
const SHOWN = 30;
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  panels: new Map(),
  events: [],
  visibility: {},
  shown: {},
  filter: '',
  dirty: new Set(),
  eventsDirty: false,
  scheduled: false,
  seq: 0,
};

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else el.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// --- time ---------------------------------------------------------------------------

function span(ms) {
  let secs = Math.max(0, Math.round(ms / 1000));
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (secs >= size) { parts.push(Math.floor(secs / size) + unit); secs %= size; }
  }
  if (parts.length < 2) parts.push(secs + 's');
  return parts.slice(0, 2).join(' ');
}

// An element whose text says how long ago `since` was (refreshed every second).
function ago(since, prefix) {
  return h('span', { class: 'ago', 'data-since': since, 'data-prefix': prefix || '' }, (prefix || '') + span(Date.now() - Date.parse(since)));
}

// An element whose text counts down to `until`.
function until(at, prefix) {
  return h('span', { class: 'until', 'data-until': at, 'data-prefix': prefix || '' }, countdown(at, prefix || ''));
}

function countdown(at, prefix) {
  const left = Date.parse(at) - Date.now();
  return left > 0 ? prefix + 'in ' + span(left) : prefix + 'passed';
}

function tick() {
  for (const el of document.querySelectorAll('[data-since]')) {
    el.textContent = el.dataset.prefix + span(Date.now() - Date.parse(el.dataset.since));
  }
  for (const el of document.querySelectorAll('[data-until]')) {
    el.textContent = countdown(el.dataset.until, el.dataset.prefix);
  }
}

// --- panels -------------------------------------------------------------------------

function bar(value, max, marker) {
  const fill = h('div', { class: 'fill' });
  fill.style.width = (max > 0 ? Math.min(100, (100 * value) / max) : 0) + '%';
  const el = h('div', { class: 'bar', role: 'progressbar', 'aria-valuenow': value, 'aria-valuemax': max }, fill);
  if (marker !== undefined && max > 0 && marker < max) {
    const mark = h('div', { class: 'marker', title: 'quorum ' + marker });
    mark.style.left = (100 * marker) / max + '%';
    el.append(mark);
  }
  return el;
}

function table(head, rows, cls) {
  return h('table', { class: cls || '' },
    h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows));
}

function barrierBody(p, v) {
  return [
    bar(v.arrived, v.expected, v.quorum),
    h('p', { class: 'counts' },
      h('span', { class: 'arrived' }, `${v.arrived} of ${v.expected} arrived`),
      v.quorum !== v.expected ? ` · quorum ${v.quorum}` : '',
      v.failed ? h('span', { class: 'bad' }, ` · ${v.failed} failed`) : '',
      v.deadline && p.active ? [' · times out ', until(v.deadline)] : '',
      v.openedAt ? [' · opened ', ago(v.openedAt, ''), ' ago'] : ''),
    h('ul', { class: 'chips' },
      v.arrivals.map((a) => h('li', { class: 'chip ok' }, '✓ ' + a)),
      v.failures.map((f) => h('li', { class: 'chip bad', title: f.message || '' }, '✗ ' + f.holder + (f.message ? ': ' + f.message : ''))),
      v.arrived > v.arrivals.length ? h('li', { class: 'chip muted' }, `+${v.arrived - v.arrivals.length} more`) : ''),
  ];
}

function slots(used, capacity) {
  if (capacity > 24) return bar(used, capacity);
  const boxes = [];
  for (let i = 0; i < capacity; i++) boxes.push(h('span', { class: i < used ? 'slot used' : 'slot' }));
  return h('div', { class: 'slots', title: `${used} of ${capacity} in use` }, boxes);
}

function claimsBody(c) {
  const holders = c.holders.length
    ? table(['Holder', 'Token', 'Mode', 'Held for', 'Expires'], c.holders.map((g) => h('tr', {},
      h('td', { class: 'holder' }, g.holder),
      h('td', { class: 'token' }, g.token),
      h('td', {}, g.mode),
      h('td', {}, ago(g.since)),
      h('td', {}, g.expiresAt ? until(g.expiresAt) : ''))), 'holders')
    : h('p', { class: 'muted holders-none' }, 'nobody holds it');
  const queue = c.queueLength
    ? h('ol', { class: 'queue' },
      c.queue.map((w) => h('li', {},
        h('span', { class: 'holder' }, w.holder),
        w.priority ? h('span', { class: 'tag' }, 'priority ' + w.priority) : '',
        w.mode ? h('span', { class: 'tag' }, w.mode) : '',
        h('span', { class: 'muted' }, ' waited ', ago(w.since)))),
      c.queueLength > c.queue.length ? h('li', { class: 'muted more' }, `… and ${c.queueLength - c.queue.length} more waiting`) : '')
    : h('p', { class: 'muted' }, 'nobody waits');
  return [holders, h('h4', {}, `Queue (${c.queueLength})`), queue];
}

function lockBody(p, v) {
  const c = v.claims;
  const tail = ` · ${c.queueLength} waiting · last token ${c.fencingToken}`;
  // A RateLimit's slots are its window's; a lock's, its permits.
  const head = v.rate
    ? [slots(v.rate.used, v.rate.limit),
      h('p', { class: 'counts' }, h('span', { class: 'rate' }, `${v.rate.used} of ${v.rate.limit} used in ${v.rate.window}`),
        v.rate.nextSlotAt ? [' · next slot ', until(v.rate.nextSlotAt)] : '',
        h('span', { class: 'in-use' }, ` · ${c.holders.length} holding (at most ${v.capacity})`), tail)]
    : [slots(c.holders.length, v.capacity),
      h('p', { class: 'counts' }, h('span', { class: 'in-use' }, `${c.holders.length} of ${v.capacity} in use`), tail)];
  return [head, claimsBody(c)];
}

function onceBody(p, v) {
  return [
    h('p', { class: 'counts' },
      v.key ? ['key ', h('code', { class: 'key' }, v.key)] : 'no key run yet',
      v.executor ? [' · executor ', h('span', { class: 'holder executor' }, v.executor)] : '',
      ` · attempt ${v.attempts}`,
      v.startedAt && p.phase === 'Running' ? [' · running for ', ago(v.startedAt)] : ''),
    v.history.length ? [h('h4', {}, 'Attempts'), table(['Key', 'Holder', 'Token', 'Outcome', 'Ended', 'Message'],
      v.history.map((a) => h('tr', { class: 'outcome-' + a.outcome },
        h('td', {}, a.key), h('td', {}, a.holder), h('td', {}, a.token), h('td', {}, a.outcome),
        h('td', {}, ago(a.finishedAt, ''), ' ago'), h('td', {}, a.message || ''))))] : '',
    v.completedKeys.length ? [h('h4', {}, 'Keys completed'), h('ul', { class: 'chips' },
      v.completedKeys.map((k) => h('li', { class: 'chip ' + (k.phase === 'Succeeded' ? 'ok' : 'bad') }, k.key + ' ' + k.phase)))] : '',
    claimsBody(v.claims),
  ];
}

function waitGroupBody(p, v) {
  const states = ['failed', 'running', 'pending', 'done'];
  const total = states.reduce((n, st) => n + (v.byState[st] || 0), 0);
  const failures = v.cells.filter((c) => c.state === 'failed' && c.message).slice(0, 20);
  return [
    bar(v.done, v.expected || v.added),
    h('p', { class: 'counts' }, states.map((st) => h('span', { class: 'count state-' + st }, `${v.byState[st] || 0} ${st} `)),
      v.sealed ? ' · sealed' : ' · open for members',
      v.deadline && p.active ? [' · times out ', until(v.deadline)] : ''),
    h('div', { class: 'grid' }, v.cells.map((c) => h('span', { class: 'cell state-' + c.state, title: c.name + ': ' + c.state + (c.message ? ' — ' + c.message : '') }))),
    total > v.cells.length ? h('p', { class: 'muted' }, `${v.cells.length} of ${total} drawn (failed, running and pending first)`) : '',
    failures.length ? h('ul', { class: 'failures' }, failures.map((c) => h('li', { class: 'bad' }, h('b', {}, c.name), ': ' + c.message))) : '',
  ];
}

function gateGraph(v) {
  const conditions = v.conditions.slice(0, 12);
  const resume = v.resume.slice(0, 12);
  const rows = Math.max(conditions.length, resume.length, 1);
  const height = rows * 30 + 10;
  const svg = s('svg', { class: 'graph', viewBox: `0 0 560 ${height}`, width: 560, height, role: 'img', 'aria-label': 'what the gate waits on and resumes' });
  const gateY = height / 2;
  const node = (x, y, w, text, cls) => {
    const g = s('g', { class: 'node ' + cls });
    g.append(s('rect', { x, y: y - 11, width: w, height: 22, rx: 4 }), s('text', { x: x + 6, y: y + 4 }, text.length > 24 ? text.slice(0, 23) + '…' : text));
    return g;
  };
  conditions.forEach((c, i) => {
    const y = 20 + i * 30 + (rows - conditions.length) * 15;
    const cls = c.met ? 'met' : c.failed ? 'failed' : 'unmet';
    svg.append(s('line', { x1: 180, y1: y, x2: 220, y2: gateY, class: 'edge ' + cls }), node(10, y, 170, c.target, cls));
  });
  svg.append(node(220, gateY, 120, 'gate: ' + v.met + '/' + v.required, 'gate'));
  resume.forEach((r, i) => {
    const y = 20 + i * 30 + (rows - resume.length) * 15;
    const cls = r.state === 'Resumed' ? 'met' : r.state === 'Waiting' ? 'unmet' : 'failed';
    svg.append(s('line', { x1: 340, y1: gateY, x2: 380, y2: y, class: 'edge ' + cls }), node(380, y, 170, r.target + ' ' + r.state, cls));
  });
  return svg;
}

function gateBody(p, v) {
  return [
    gateGraph(v),
    table(['Waits on', 'Test', 'Met', 'Since', 'Why'], v.conditions.map((c) => h('tr', { class: 'condition ' + (c.met ? 'met' : c.failed ? 'failed' : 'unmet') },
      h('td', {}, c.target), h('td', {}, c.test),
      h('td', { class: 'met-cell' }, c.met ? '✓ met' : c.failed ? '✗ failed' : '… not met'),
      h('td', {}, c.since ? ago(c.since, 'for ') : ''), h('td', {}, c.message))), 'conditions'),
    v.resume.length ? table(['Resumes', 'State', 'When', 'Why'], v.resume.map((r) => h('tr', { class: 'resume state-' + r.state },
      h('td', {}, r.target), h('td', {}, r.state), h('td', {}, r.resumedAt ? [ago(r.resumedAt, ''), ' ago'] : ''), h('td', {}, r.message || ''))), 'resumes') : '',
    h('p', { class: 'counts' }, `rule ${v.rule}`, v.deadline && p.active ? [' · times out ', until(v.deadline)] : ''),
  ];
}

const BODIES = { barrier: barrierBody, lock: lockBody, once: onceBody, waitGroup: waitGroupBody, gate: gateBody };

function panelElement(p) {
  const body = BODIES[p.view.type] ? BODIES[p.view.type](p, p.view) : [];
  const objectPath = '/object/' + [p.kind, p.namespace, p.name].map(encodeURIComponent).join('/');
  return h('article', { class: `panel phase-${p.phase}${p.active ? ' active' : ''}`, 'data-key': p.key, id: 'panel-' + p.key },
    h('header', {},
      h('span', { class: 'kind' }, p.kind),
      h('b', { class: 'name' }, state.scopeAll ? p.namespace + '/' + p.name : p.name),
      h('span', { class: 'phase' }, p.phase || 'Pending'),
      h('span', { class: 'summary' }, p.summary)),
    h('div', { class: 'body' }, body),
    h('footer', {},
      h('a', { href: objectPath, target: '_blank', rel: 'noopener' }, 'YAML'),
      h('code', { title: 'shows it' }, p.kubectl),
      h('code', { title: 'shows it' }, p.koncli)));
}

// --- sections -----------------------------------------------------------------------

function visibilityNote(kind) {
  const v = state.visibility[kind];
  if (!v || v.state === 'live') return null;
  if (v.state === 'loading') return h('p', { class: 'muted notice' }, 'loading…');
  if (v.state === 'forbidden') return h('p', { class: 'notice forbidden' }, 'not visible to you: your credentials may not list ' + kind + 's here (' + v.message + ')');
  if (v.state === 'notServed') return h('p', { class: 'notice' }, 'not served by this cluster (is Konductor installed?)');
  return h('p', { class: 'notice bad' }, 'cannot list: ' + v.message + ' (retrying)');
}

function byAttention(a, b) {
  if (a.active !== b.active) return a.active ? -1 : 1;
  const aw = a.waitingSince || '~';
  const bw = b.waitingSince || '~';
  if (aw !== bw) return aw < bw ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function panelsOf(kind) {
  const prefix = kind + '/';
  const out = [];
  for (const [key, p] of state.panels) if (key.startsWith(prefix)) out.push(p);
  return out;
}

function renderKind(kind) {
  let section = document.getElementById('kind-' + kind);
  if (!section) {
    section = h('section', { id: 'kind-' + kind, class: 'kind-section' });
    document.getElementById('kinds').append(section);
  }
  const all = panelsOf(kind);
  const filter = state.filter;
  const matching = filter ? all.filter((p) => (p.namespace + '/' + p.name).includes(filter)) : all;
  matching.sort(byAttention);
  const shown = state.shown[kind] || SHOWN;
  const note = visibilityNote(kind);
  const forbidden = state.visibility[kind] && state.visibility[kind].state === 'forbidden';
  const children = [h('h2', {}, `${kind} `, h('span', { class: 'muted count' }, forbidden ? '' : `(${all.length})`)), note];
  if (!forbidden) {
    children.push(h('div', { class: 'panels' }, matching.slice(0, shown).map(panelElement)));
    if (matching.length > shown) {
      const more = h('button', { type: 'button', class: 'more' }, `show ${Math.min(SHOWN, matching.length - shown)} more (${matching.length - shown} not drawn)`);
      more.addEventListener('click', () => { state.shown[kind] = shown + SHOWN; state.dirty.add(kind); schedule(); });
      children.push(more);
    }
  }
  section.hidden = !forbidden && all.length === 0 && (!note || state.visibility[kind].state === 'notServed');
  section.replaceChildren(...children.filter(Boolean));
}

function renderOverview() {
  const body = document.querySelector('#overview-table tbody');
  const rows = [];
  const waiting = [];
  for (const kind of KINDS) {
    const all = panelsOf(kind);
    const phases = {};
    let active = 0;
    for (const p of all) {
      phases[p.phase || 'Pending'] = (phases[p.phase || 'Pending'] || 0) + 1;
      if (p.active) active++;
      if (p.waitingSince) waiting.push(p);
    }
    const v = state.visibility[kind];
    const hidden = v && v.state === 'forbidden';
    rows.push(h('tr', { 'data-kind': kind },
      h('td', {}, h('a', { href: '#kind-' + kind }, kind)),
      h('td', {}, hidden ? 'not visible to you' : all.length),
      h('td', {}, hidden ? '' : Object.entries(phases).map(([phase, n]) => h('span', { class: 'chip phase-' + phase }, `${n} ${phase}`))),
      h('td', {}, hidden ? '' : active)));
  }
  body.replaceChildren(...rows);
  waiting.sort((a, b) => (a.waitingSince < b.waitingSince ? -1 : 1));
  const longest = document.getElementById('longest');
  longest.replaceChildren(...(waiting.length
    ? waiting.slice(0, 5).map((p) => h('li', {}, h('a', { href: '#panel-' + p.key }, `${p.kind} ${p.namespace}/${p.name}`), ' — ', p.summary, ' — waiting ', ago(p.waitingSince)))
    : [h('li', { class: 'muted' }, 'nothing waits')]));
}

function renderEvents() {
  const rows = state.events.slice().reverse().slice(0, 50).map((e) => h('tr', { class: e.type === 'Warning' ? 'bad' : '' },
    h('td', {}, e.time ? [ago(e.time, ''), ' ago'] : ''),
    h('td', {}, e.type),
    h('td', {}, `${e.kind} ${e.namespace}/${e.name}`),
    h('td', {}, e.reason),
    h('td', {}, e.message + (e.count > 1 ? ` (×${e.count})` : ''))));
  document.querySelector('#event-table tbody').replaceChildren(...rows);
}

function render() {
  state.scheduled = false;
  const kinds = [...state.dirty];
  state.dirty.clear();
  for (const kind of KINDS) if (kinds.includes(kind)) renderKind(kind);
  if (kinds.length) renderOverview();
  if (state.eventsDirty) { state.eventsDirty = false; renderEvents(); }
  document.body.dataset.seq = state.seq;
  const loading = KINDS.some((k) => !state.visibility[k] || state.visibility[k].state === 'loading');
  document.body.dataset.ready = loading ? 'false' : 'true';
}

function schedule() {
  if (state.scheduled) return;
  state.scheduled = true;
  // Animation frames pause in a hidden tab; a timer keeps its picture current.
  if (document.hidden) setTimeout(render, 100);
  else requestAnimationFrame(render);
}

function receive(message) {
  const m = JSON.parse(message);
  if (m.snapshot) {
    state.panels.clear();
    for (const kind of KINDS) state.dirty.add(kind);
  }
  for (const p of m.panels) { state.panels.set(p.key, p); state.dirty.add(p.kind); }
  for (const key of m.removed) { state.panels.delete(key); state.dirty.add(key.split('/')[0]); }
  if (m.events) { state.events = m.events; state.eventsDirty = true; }
  if (m.visibility) { state.visibility = m.visibility; for (const kind of KINDS) state.dirty.add(kind); }
  state.seq = m.seq;
  schedule();
}

function connect() {
  const status = document.getElementById('connection');
  const source = new EventSource('/events');
  source.onopen = () => { status.textContent = 'live'; status.className = 'connection live'; };
  source.onerror = () => { status.textContent = 'reconnecting…'; status.className = 'connection lost'; };
  source.onmessage = (e) => receive(e.data);
}

document.addEventListener('DOMContentLoaded', () => {
  const namespace = document.body.dataset.namespace;
  state.scopeAll = !namespace;
  document.getElementById('scope').textContent = namespace ? 'namespace ' + namespace : 'all namespaces';
  const filter = document.getElementById('filter');
  filter.addEventListener('input', () => { state.filter = filter.value.trim(); for (const k of KINDS) state.dirty.add(k); schedule(); });
  connect();
  setInterval(tick, 1000);
});
