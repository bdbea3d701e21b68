// The live page of `ftl-ipc run`: one snapshot per second over server-sent events, kept for five
// minutes per channel and service. Plain DOM, no build step, no dependencies.
const HISTORY = 300;
const SVG = 'http://www.w3.org/2000/svg';
const token = new URLSearchParams(location.search).get('token') ?? '';

/** Per `service/channel`: the last snapshot's stats and the time series. */
const channels = new Map();
/** Per service: its last status and whether it was running, per snapshot. */
const services = new Map();
const events = [];
let graph = { services: [], links: [] };
let selected;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node =
    tag === 'svg' || attrs.svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (k !== 'svg') node.setAttribute(k, String(v));
  node.append(...children);
  return node;
}

function spark(values, max) {
  const top = Math.max(max ?? 0, ...values, 1);
  const points = values.map((v, i) => `${(i / (HISTORY - 1)) * 120},${20 - (v / top) * 18 - 1}`);
  return el(
    'svg',
    { class: 'spark', viewBox: '0 0 120 20' },
    el('polyline', { svg: true, points: points.join(' ') }),
  );
}

function describe({ t, event }) {
  const at = new Date(t).toLocaleTimeString();
  switch (event.kind) {
    case 'start':
      return `${at} ${event.service} started (${event.id})`;
    case 'exit':
      return `${at} ${event.service} exited (${event.exit.signal ?? `code ${event.exit.code}`})`;
    case 'restart':
      return `${at} ${event.service} restarts in ${event.delayMs} ms (attempt ${event.attempt})`;
    case 'give-up':
      return `${at} ${event.service} failed after ${event.restarts} restart(s)`;
    default:
      return `${at} ${event.service}: ${event.kind}`;
  }
}

/** A byte rate in the unit that keeps it short. */
function bytes(n) {
  if (n < 1024) return `${n.toFixed(0)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function push(series, value) {
  series.push(value);
  if (series.length > HISTORY) series.shift();
}

function update(snapshot) {
  for (const e of snapshot.events) if (e.seq > (events.at(-1)?.seq ?? 0)) events.push(e);
  while (events.length > 200) events.shift();
  const seen = new Set();
  for (const s of snapshot.services) {
    const known = services.get(s.name) ?? { up: [] };
    push(known.up, s.state === 'running' ? 1 : 0);
    services.set(s.name, { ...known, status: s });
    for (const c of s.channels) {
      const key = `${s.name}/${c.name}`;
      seen.add(key);
      const old = channels.get(key);
      const dt = old === undefined ? 0 : (snapshot.t - old.t) / 1000;
      const rate = (now, before) => (dt > 0 && now >= before ? (now - before) / dt : 0);
      const row = old ?? { queue: [], service: s.name, name: c.name };
      row.out = old === undefined ? 0 : rate(c.stats.sent, old.stats.sent);
      row.in = old === undefined ? 0 : rate(c.stats.received, old.stats.received);
      row.bytesOut = old === undefined ? 0 : rate(c.stats.sentBytes, old.stats.sentBytes);
      row.bytesIn = old === undefined ? 0 : rate(c.stats.receivedBytes, old.stats.receivedBytes);
      row.pressing = old !== undefined && c.stats.backpressured > old.stats.backpressured;
      row.stats = c.stats;
      row.capacity = c.capacity;
      row.t = snapshot.t;
      push(row.queue, c.stats.queuedMessages);
      channels.set(key, row);
    }
  }
  // A restarted service reports fresh channels: the old rows would only mislead.
  for (const key of channels.keys()) if (!seen.has(key)) channels.delete(key);
  render();
}

function render() {
  const sbody = $('services').tBodies[0];
  sbody.replaceChildren(
    ...[...services.values()].map(({ status: s, up }) =>
      el(
        'tr',
        {
          'data-service': s.name,
          'data-state': s.state,
          'data-restarts': s.restarts,
          'data-exits': s.exits,
          class: s.state === 'running' ? '' : 'down',
        },
        el('td', {}, s.name),
        el('td', {}, graph.services.find((g) => g.name === s.name)?.isolation ?? ''),
        el('td', {}, s.state),
        el('td', {}, s.id ?? '-'),
        el('td', { class: 'n' }, String(s.restarts)),
        el('td', { class: 'n' }, String(s.exits)),
        el('td', {}, spark(up, 1)),
      ),
    ),
  );
  const cbody = $('channels').tBodies[0];
  cbody.replaceChildren(
    ...[...channels.entries()].map(([key, c]) => {
      const fill = c.capacity ? Math.min(1, c.stats.queuedMessages / c.capacity) : 0;
      const bar = el('span', { class: 'bar' }, el('span'));
      bar.firstChild.style.width = `${fill * 100}%`;
      const row = el(
        'tr',
        {
          'data-channel': key,
          'data-backpressured': c.stats.backpressured,
          'data-dropped': c.stats.dropped,
          'data-received-bytes': c.stats.receivedBytes,
          class: `${c.stats.backpressured > 0 ? 'backpressure' : ''} ${key === selected ? 'selected' : ''}`,
        },
        el('td', {}, c.service),
        el('td', {}, c.name),
        el('td', {}, bar, ` ${c.stats.queuedMessages} / ${c.capacity ?? '?'}`),
        el('td', { class: 'n' }, c.out.toFixed(0)),
        el('td', { class: 'n' }, c.in.toFixed(0)),
        el('td', { class: 'n' }, bytes(c.bytesOut)),
        el('td', { class: 'n' }, bytes(c.bytesIn)),
        el('td', { class: 'n' }, `${c.stats.backpressured}${c.pressing ? ' ▲' : ''}`),
        el('td', { class: 'n' }, String(c.stats.dropped)),
        el('td', {}, spark(c.queue, c.capacity)),
      );
      row.addEventListener('click', () => {
        selected = key;
        render();
      });
      return row;
    }),
  );
  $('events').replaceChildren(...events.map((e) => el('li', {}, describe(e))));
  renderGraph();
  renderDetail();
}

/** Clients on the left, their servers to the right: a service's column is its depth of dependencies. */
function renderGraph() {
  const column = new Map();
  const depth = (name, seen = new Set()) => {
    if (column.has(name)) return column.get(name);
    if (seen.has(name)) return 0;
    seen.add(name);
    const servers = graph.links.filter((l) => l.client === name && l.server !== '');
    const d = servers.length === 0 ? 0 : 1 + Math.max(...servers.map((l) => depth(l.server, seen)));
    column.set(name, d);
    return d;
  };
  for (const s of graph.services) depth(s.name);
  const deepest = Math.max(0, ...column.values());
  const rows = new Map();
  const at = new Map();
  for (const s of graph.services) {
    const col = deepest - column.get(s.name);
    const row = rows.get(col) ?? 0;
    rows.set(col, row + 1);
    at.set(s.name, { x: 20 + col * 380, y: 30 + row * 70 });
  }
  const svg = $('graph');
  const nodes = [];
  for (const l of graph.links) {
    const a = at.get(l.client);
    const b = at.get(l.server);
    if (a === undefined || b === undefined) continue;
    const c = channels.get(`${l.client}/dep:${l.name}`);
    const d = channels.get(`${l.server}/client:${l.client}`);
    const pressing = (c?.pressing ?? false) || (d?.pressing ?? false);
    const label = `${l.name} (${l.protocol}) → ${c?.stats.queuedMessages ?? 0} | ← ${d?.stats.queuedMessages ?? 0}`;
    nodes.push(
      el('line', {
        svg: true,
        class: `link${pressing ? ' backpressure' : ''}`,
        x1: a.x + 160,
        y1: a.y + 20,
        x2: b.x,
        y2: b.y + 20,
      }),
      el(
        'text',
        { svg: true, 'text-anchor': 'middle', x: (a.x + 160 + b.x) / 2, y: (a.y + b.y) / 2 + 14 },
        label,
      ),
    );
  }
  for (const s of graph.services) {
    const { x, y } = at.get(s.name);
    const status = services.get(s.name)?.status;
    const down = status !== undefined && status.state !== 'running';
    nodes.push(
      el(
        'g',
        { svg: true, class: `node ${s.isolation}${down ? ' down' : ''}` },
        el('rect', { svg: true, x, y, width: 160, height: 40, rx: 6 }),
        el('text', { svg: true, x: x + 8, y: y + 16 }, `${s.name} (${s.isolation})`),
        el(
          'text',
          { svg: true, x: x + 8, y: y + 32 },
          `${status?.state ?? '?'} · restarts ${status?.restarts ?? 0}`,
        ),
      ),
    );
  }
  svg.setAttribute('height', String(40 + Math.max(1, ...rows.values()) * 70));
  svg.replaceChildren(...nodes);
}

function renderDetail() {
  const c = selected === undefined ? undefined : channels.get(selected);
  $('detail').hidden = c === undefined;
  if (c === undefined) return;
  $('detail-title').textContent = `${c.service} · ${c.name}`;
  $('detail-counters').replaceChildren(
    ...Object.entries({ ...c.stats, capacity: c.capacity ?? '?' }).flatMap(([k, v]) => [
      el('dt', {}, k),
      el('dd', {}, String(v)),
    ]),
  );
  $('detail-events').replaceChildren(
    ...events.filter((e) => e.event.service === c.service).map((e) => el('li', {}, describe(e))),
  );
}

const source = new EventSource(`events?token=${encodeURIComponent(token)}`);
source.addEventListener('hello', (m) => {
  const hello = JSON.parse(m.data);
  graph = hello;
  $('system').textContent = hello.name;
  events.splice(0, events.length, ...hello.events);
});
source.addEventListener('message', (m) => update(JSON.parse(m.data)));
source.addEventListener('open', () => {
  $('connection').textContent = 'live';
  $('connection').className = 'open';
});
source.addEventListener('error', () => {
  $('connection').textContent =
    source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting…';
  $('connection').className = 'closed';
});
