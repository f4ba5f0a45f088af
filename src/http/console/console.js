// The operators' console: one page, no third-party code. It reads and writes through
// /console/api/<path>, which the server answers as /v1/<path> with the Basic credentials this page
// was opened with, so every rule of the API (roles, validation, 403 for a viewer) holds here too.
'use strict';

const CANCELLABLE = new Set(['received', 'awaiting_stock', 'confirmed', 'partially_shipped', 'failed']);
const STATUSES = [
  'received',
  'confirmed',
  'awaiting_stock',
  'partially_shipped',
  'rejected',
  'failed',
  'cancelled',
  'completed',
];
const REFRESH_MS = 1500;

let session = { role: 'viewer', name: '' };
let timer;
/**
 * Bumped by every navigation. A view draws only while the route that asked for it is the current
 * one, so a late answer to an earlier route, or a refresh timer of an order left behind, can never
 * draw over the page the operator is looking at (and act on the wrong order).
 */
let generation = 0;
const isCurrent = (gen) => gen === generation;
/** Replaces the view, unless the route `gen` is no longer current; says whether it drew. */
function draw(gen, ...nodes) {
  if (!isCurrent(gen)) return false;
  const view = $('#view');
  // A redraw (the order's refresh) keeps the keyboard where it was: the element of the same id.
  const focused = view.contains(document.activeElement) && document.activeElement.id;
  view.replaceChildren(...nodes);
  if (focused) document.getElementById(focused)?.focus();
  return true;
}
const canWrite = () => session.role === 'operator';

/** An element: el('td', {class: 'num'}, 'text', childNode…). Text is always text, never HTML. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}
const $ = (sel) => document.querySelector(sel);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
const money = (cents) => (cents === null || cents === undefined ? '—' : (cents / 100).toFixed(2));
const badge = (s) => el('span', { class: `badge ${s}` }, s);
const orderLink = (o) => el('a', { href: `#/order/${o.id}`, class: 'order-link' }, `#${o.seq}`);

function say(text, isError) {
  const s = $('#status');
  s.textContent = text || '';
  s.classList.toggle('error', !!isError);
}

async function api(method, path, body) {
  const res = await fetch(`/console/api${path}`, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new Error(`${res.status}: ${(data && data.error && data.error.message) || res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

/**
 * Asks in the page's own dialog; resolves true on Confirm. With `reason` (its placeholder) the
 * dialog also takes a reason, read from #confirm-reason once it has closed.
 */
function confirmAction(title, text, danger, reason) {
  const d = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-yes').className = danger ? 'danger' : 'primary';
  $('#confirm-reason-label').hidden = reason === undefined;
  $('#confirm-reason').value = '';
  $('#confirm-reason').placeholder = reason || '';
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

/**
 * Runs a write after confirmation; reports its outcome in the status line. With `defaultReason`
 * the dialog asks for a reason, sent as the body's `reason` (left empty: the default).
 */
async function act(title, text, method, path, body, done, defaultReason) {
  const danger = method === 'POST' && /cancel/.test(path);
  if (!(await confirmAction(title, text, danger, defaultReason))) return;
  if (defaultReason !== undefined) body = { ...body, reason: $('#confirm-reason').value.trim() || defaultReason };
  try {
    const out = await api(method, path, body);
    say(`${title}: done`);
    if (done) await done(out);
  } catch (e) {
    say(`${title}: ${e.message}`, true);
    // A refusal (409: someone else moved the order first) shows the order as it really is now.
    await refresh().catch(() => undefined);
  }
}

function table(id, headers, rows, empty) {
  if (!rows.length) return el('p', { class: 'muted', id }, empty || 'none');
  return el(
    'table',
    { id },
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        headers.map((h) => el('th', {}, h)),
      ),
    ),
    el('tbody', {}, rows),
  );
}

// ---- orders: search -------------------------------------------------------------------------

/** The search form's fields, each a query parameter of GET /v1/orders (and of the #/orders hash). */
const SEARCH_KEYS = ['q', 'status', 'sku', 'external_ref', 'customer_id'];

function searchForm(params) {
  const input = (name, label, placeholder) =>
    el(
      'label',
      {},
      label,
      el('input', { name, id: `search-${name.replace('_', '-')}`, value: params.get(name) || '', placeholder }),
    );
  const status = el(
    'select',
    { name: 'status', id: 'search-status' },
    el('option', { value: '' }, 'any'),
    STATUSES.map((s) => el('option', { value: s, selected: params.get('status') === s }, s)),
  );
  return el(
    'form',
    {
      class: 'search',
      id: 'search',
      onsubmit: (ev) => {
        ev.preventDefault();
        const q = new URLSearchParams();
        for (const [k, v] of new FormData(ev.target)) if (String(v).trim()) q.set(k, String(v).trim());
        location.hash = `#/orders?${q}`;
      },
    },
    input('q', 'Search', 'id prefix, external ref, e-mail or SKU'),
    el('label', {}, 'Status', status),
    input('sku', 'SKU', 'MUG-1'),
    input('external_ref', 'External ref', 'ERP-88231'),
    input('customer_id', 'Customer id', 'the customer’s UUID'),
    el('button', { class: 'primary', id: 'search-go', type: 'submit' }, 'Search'),
  );
}

function orderRow(o) {
  return el(
    'tr',
    { 'data-order-id': o.id, 'data-status': o.status },
    // The id too (time-ordered: its first characters are shared by orders placed together, its end tells them apart).
    el('td', {}, orderLink(o), el('div', { class: 'mono muted order-id', title: o.id }, o.id)),
    el('td', { class: 'mono' }, o.external_ref || '—'),
    el('td', {}, badge(o.status)),
    el('td', {}, o.status_reason || ''),
    el('td', {}, o.lines.map((l) => `${l.quantity} × ${l.sku}`).join(', ')),
    el('td', { class: 'num' }, money(o.total_cents)),
    el('td', {}, when(o.created_at)),
  );
}

async function showOrders(params, gen) {
  const results = el('div', { id: 'results' }, el('p', { class: 'muted' }, 'searching…'));
  draw(gen, el('section', {}, el('h2', {}, 'Find orders'), searchForm(params)), el('section', {}, results));
  const query = new URLSearchParams();
  for (const k of SEARCH_KEYS) if (params.get(k)) query.set(k, params.get(k));
  query.set('limit', '50');
  const rows = [];
  const more = el('button', { id: 'search-more', type: 'button' }, 'More');
  const q = (params.get('q') || '').trim();
  // Whose orders these are, when the search is one customer's (a customer that cannot be read: none).
  const customer = params.get('customer_id')
    ? api('GET', `/customers/${encodeURIComponent(params.get('customer_id'))}`).catch(() => ({ missing: true }))
    : Promise.resolve(null);
  const load = async (cursor) => {
    if (cursor) query.set('cursor', cursor);
    const [page, c] = await Promise.all([api('GET', `/orders?${query}`), customer]);
    if (!isCurrent(gen)) return;
    rows.push(...page.data.map(orderRow));
    results.dataset.query = query.toString();
    results.replaceChildren(
      c && c.missing
        ? el('p', { class: 'hint', id: 'results-customer' }, 'No customer has this id.')
        : c
          ? el('p', { id: 'results-customer' }, `Orders of ${c.name} <${c.email}>`)
          : '',
      el('h3', {}, `${rows.length}${page.next_cursor ? '+' : ''} order${rows.length === 1 ? '' : 's'}`),
      // q finds an id only from 4 characters on; shorter, it matches only a whole external_ref, e-mail or SKU.
      rows.length === 0 && q && q.length < 4
        ? el(
            'p',
            { class: 'hint', id: 'search-hint' },
            `No order matches "${q}". An order id prefix needs at least 4 characters; `,
            'shorter, Search finds only an exact external ref, customer e-mail or SKU.',
          )
        : '',
      table('orders-table', ['Order', 'External ref', 'Status', 'Reason', 'Lines', 'Total', 'Created'], rows),
      page.next_cursor ? more : '',
    );
    more.onclick = () => load(page.next_cursor).catch((e) => say(e.message, true));
  };
  // A search the API refuses (a customer id that is no UUID, a bad status in the address): the
  // reason under the form, which keeps what was typed.
  await load().catch((e) => {
    if (!isCurrent(gen) || !e.status || e.status >= 500) throw e;
    results.replaceChildren(el('p', { class: 'err', id: 'search-error', role: 'alert' }, e.message));
  });
}

// ---- one order ------------------------------------------------------------------------------

function describe(e) {
  switch (e.kind) {
    case 'history':
      return [badge(e.status), e.detail ? ` ${e.detail}` : ''];
    case 'movement':
      return `${e.type} ${e.quantity > 0 ? '+' : ''}${e.quantity} × ${e.sku} at ${e.location}${e.reason ? ` (${e.reason})` : ''}`;
    case 'processing':
      return [
        `run ${e.attempt}: `,
        badge(e.outcome),
        ` in ${e.duration_ms} ms`,
        e.error ? el('div', { class: 'err' }, e.error) : '',
      ];
    case 'delivery':
      return [
        `${e.event_type} → ${e.channel}${e.target ? ` ${e.target}` : ''} (attempt ${e.attempt}): `,
        badge(e.outcome),
        e.status_code ? ` HTTP ${e.status_code}` : '',
        e.error ? el('div', { class: 'err' }, e.error) : '',
      ];
    case 'shipment':
      return `shipment ${e.shipment.shipment_id || e.shipment.id} from ${e.shipment.location}: ${e.shipment.lines.map((l) => `${l.quantity} × ${l.sku}`).join(', ')}`;
    case 'return':
      return `return ${e.return.return_id || e.return.id}: ${e.return.lines.map((l) => `${l.quantity} × ${l.sku}`).join(', ')}`;
    default:
      return '';
  }
}
const actorText = (a) => (a ? `${a.name}${a.name === a.role ? '' : ` (${a.role})`}` : '');

/** The order's customer: name and e-mail (when it could be read), a link to all their orders. */
function customerFact(o, customer) {
  return el(
    'span',
    { id: 'order-customer' },
    el(
      'a',
      { href: `#/orders?customer_id=${encodeURIComponent(o.customer_id)}`, id: 'order-customer-link' },
      customer ? customer.name : o.customer_id,
    ),
    customer ? [' ', el('span', { id: 'order-customer-email' }, `<${customer.email}>`)] : '',
    customer ? el('div', { class: 'mono muted' }, o.customer_id) : '',
  );
}

function orderView(o, timeline, notifications, customer) {
  const buttons = [];
  if (canWrite() && o.status === 'failed')
    buttons.push(
      el(
        'button',
        {
          class: 'primary',
          id: 'action-retry',
          onclick: () =>
            act(
              `Retry order #${o.seq}`,
              'It is processed again from the start.',
              'POST',
              `/orders/${o.id}/retry`,
              {},
              refresh,
            ),
        },
        'Retry',
      ),
    );
  if (canWrite() && CANCELLABLE.has(o.status))
    buttons.push(
      el(
        'button',
        {
          class: 'danger',
          id: 'action-cancel',
          onclick: () =>
            act(
              `Cancel order #${o.seq}`,
              'Its reserved stock is released; this cannot be undone.',
              'POST',
              `/orders/${o.id}/cancel`,
              {},
              refresh,
              'cancelled from the console',
            ),
        },
        'Cancel',
      ),
    );
  const lines = o.lines.map((l) =>
    el(
      'tr',
      { 'data-sku': l.sku },
      el('td', { class: 'mono' }, l.sku),
      el('td', { class: 'num' }, l.quantity),
      el('td', { class: 'num' }, l.reserved),
      el('td', { class: 'num' }, l.shipped),
      el('td', { class: 'num' }, l.returned),
      el(
        'td',
        {},
        l.allocations.map((a) => `${a.location}: ${a.reserved} reserved, ${a.shipped} shipped`).join('; ') || '—',
      ),
      el('td', { class: 'num queue-position' }, l.queue ? l.queue.position : '—'),
      el('td', { class: 'num' }, l.queue ? l.queue.units_ahead : '—'),
      el('td', {}, l.queue ? when(l.queue.eta) : '—'),
    ),
  );
  const ship = o.shipments.map((s) =>
    el(
      'tr',
      {},
      el('td', { class: 'mono' }, s.shipment_id || s.id),
      el('td', {}, s.location),
      el('td', {}, s.lines.map((l) => `${l.quantity} × ${l.sku}`).join(', ')),
      el('td', {}, [s.carrier, s.tracking].filter(Boolean).join(' ') || '—'),
      el('td', {}, when(s.created_at)),
    ),
  );
  const rets = o.returns.map((r) =>
    el(
      'tr',
      {},
      el('td', { class: 'mono' }, r.return_id || r.id),
      el(
        'td',
        {},
        r.lines.map((l) => `${l.quantity} × ${l.sku}${l.disposition ? ` (${l.disposition})` : ''}`).join(', '),
      ),
      el('td', {}, r.reason || ''),
      el('td', {}, when(r.created_at)),
    ),
  );
  const notes = notifications.map((n) =>
    el(
      'tr',
      { 'data-notification-status': n.status },
      el('td', {}, n.event_type),
      el('td', {}, `${n.channel} ${n.target}`),
      el('td', {}, badge(n.status)),
      el('td', { class: 'num' }, n.attempts),
      el('td', { class: 'err' }, n.last_error || ''),
      el(
        'td',
        {},
        canWrite() && n.status !== 'pending'
          ? el(
              'button',
              {
                class: 'resend',
                onclick: () =>
                  act(
                    `Resend ${n.event_type}`,
                    `Send it again to ${n.target}.`,
                    'POST',
                    `/notifications/${n.id}/resend`,
                    {},
                    refresh,
                  ),
              },
              'Resend',
            )
          : '',
      ),
    ),
  );
  const events = timeline.map((e) =>
    el(
      'tr',
      { 'data-kind': e.kind, class: e.error || e.outcome === 'failed' || e.outcome === 'error' ? 'error' : undefined },
      el('td', {}, when(e.at)),
      el('td', {}, e.kind),
      el('td', {}, describe(e)),
      el('td', {}, actorText(e.actor)),
    ),
  );
  const fact = (k, v) => el('div', {}, el('dt', {}, k), el('dd', {}, v));
  return [
    el(
      'section',
      { id: 'order', 'data-status': o.status, 'data-order-id': o.id },
      el('h2', {}, `Order #${o.seq}`, o.external_ref ? ` · ${o.external_ref}` : ''),
      el(
        'dl',
        { class: 'facts' },
        fact('Status', el('span', { id: 'order-status' }, badge(o.status))),
        fact('Reason', o.status_reason || '—'),
        fact('Total', money(o.total_cents)),
        fact('ETA', o.eta ? when(o.eta) : '—'),
        fact('Processing runs', String(o.attempts)),
        fact('Customer', customerFact(o, customer)),
        fact('Created', when(o.created_at)),
        fact('Updated', when(o.updated_at)),
        fact('Id', el('span', { class: 'mono' }, o.id)),
      ),
      buttons.length ? el('div', { class: 'actions' }, buttons) : '',
    ),
    el(
      'section',
      {},
      el('h3', {}, 'Lines'),
      table(
        'lines',
        ['SKU', 'Qty', 'Reserved', 'Shipped', 'Returned', 'Allocations', 'Queue', 'Units ahead', 'ETA'],
        lines,
      ),
    ),
    el(
      'section',
      {},
      el('h3', {}, 'Shipments'),
      table('shipments', ['Shipment', 'From', 'Lines', 'Carrier', 'At'], ship),
    ),
    el('section', {}, el('h3', {}, 'Returns'), table('returns', ['Return', 'Lines', 'Reason', 'At'], rets)),
    el(
      'section',
      {},
      el('h3', {}, 'Notifications'),
      table('notifications', ['Event', 'To', 'Status', 'Attempts', 'Last error', ''], notes),
    ),
    el('section', {}, el('h3', {}, 'Timeline'), table('timeline', ['At', 'Kind', 'What', 'Who'], events)),
  ];
}

let refresh = async () => undefined;

async function showOrder(id, gen) {
  let last = '';
  // Read once per visit: a customer's name and e-mail do not change while the order is watched.
  let customer;
  refresh = async () => {
    if (!isCurrent(gen)) return;
    const [o, t, n] = await Promise.all([
      api('GET', `/orders/${id}`),
      api('GET', `/orders/${id}/timeline`),
      api('GET', `/orders/${id}/notifications`),
    ]);
    if (customer?.id !== o.customer_id)
      customer = await api('GET', `/customers/${o.customer_id}`).catch(() => ({ id: o.customer_id, missing: true }));
    if (!isCurrent(gen)) return;
    const key = JSON.stringify([o, t, n]);
    if (key === last) return;
    // Never redraw under an open question; what changed meanwhile is drawn by the next refresh
    // once it is closed (so `last` is only moved on when drawn).
    if ($('#confirm').open) return;
    last = key;
    draw(gen, ...orderView(o, t.data, n.data, customer.missing ? undefined : customer));
  };
  await refresh();
  every(gen, REFRESH_MS, async () => {
    await refresh();
  });
}

// ---- bulk actions ---------------------------------------------------------------------------

const BULK_FIELDS = {
  retry_orders: ['reason', 'sku', 'customer_id', 'created_from', 'created_to'],
  cancel_orders: ['status', 'reason', 'sku', 'customer_id', 'created_from', 'created_to'],
  resend_deliveries: ['endpoint_id', 'type', 'since'],
};
const FIELD_LABELS = { reason: 'status reason contains', endpoint_id: 'endpoint id', type: 'event type' };
const TIME_FIELDS = new Set(['created_from', 'created_to', 'since']);
const NOUN = { retry_orders: 'orders', cancel_orders: 'orders', resend_deliveries: 'deliveries' };
const VERB = { retry_orders: 'Retry', cancel_orders: 'Cancel', resend_deliveries: 'Resend' };

/** A filter as `key: value · …` (a list of ids as its count); `{}` is everything the action qualifies. */
function filterText(filter) {
  const parts = Object.entries(filter || {}).map(([k, v]) => (Array.isArray(v) ? `${k}: ${v.length}` : `${k}: ${v}`));
  return parts.length ? parts.join(' · ') : 'none (every item the action qualifies)';
}

function progressView(b) {
  const processed = b.done + b.skipped + b.failed;
  return el(
    'section',
    { id: 'bulk-run', 'data-bulk-status': b.status, 'data-bulk-id': b.id },
    el('h3', {}, `${VERB[b.action]} ${b.matched} ${NOUN[b.action]} — ${b.status}`),
    el('progress', { id: 'bulk-progress', max: Math.max(b.matched, 1), value: b.matched ? processed : 1 }),
    el(
      'p',
      { class: 'progress-text', id: 'bulk-progress-text' },
      `${processed} of ${b.matched} · done ${b.done} · skipped ${b.skipped} · failed ${b.failed}`,
    ),
    el('p', { id: 'bulk-run-reason' }, 'Reason: ', b.reason || '—'),
    el('p', { id: 'bulk-run-filter' }, 'Filter: ', el('span', { class: 'mono' }, filterText(b.filter))),
    el(
      'p',
      { class: 'muted' },
      `started ${when(b.created_at)} by ${actorText(b.actor)}`,
      b.completed_at ? ` · finished ${when(b.completed_at)}` : '',
    ),
  );
}

/** The newest bulk actions, each a link to its progress (GET /v1/bulk-actions). */
async function showRecentBulk(into, gen) {
  const { data } = await api('GET', '/bulk-actions?limit=20');
  if (!isCurrent(gen)) return;
  const rows = data.map((b) =>
    el(
      'tr',
      { 'data-bulk-id': b.id, 'data-bulk-status': b.status },
      el('td', {}, el('a', { href: `#/bulk/${b.id}`, class: 'bulk-link' }, b.action)),
      el('td', {}, b.reason || '—'),
      el('td', { class: 'num' }, b.matched),
      el('td', { class: 'num' }, b.done),
      el('td', { class: 'num' }, b.skipped),
      el('td', { class: 'num' }, b.failed),
      el('td', {}, badge(b.status)),
      el('td', {}, actorText(b.actor)),
      el('td', {}, when(b.created_at)),
    ),
  );
  into.replaceChildren(
    el('h3', {}, 'Recent bulk actions'),
    table(
      'bulk-recent',
      ['Action', 'Reason', 'Matched', 'Done', 'Skipped', 'Failed', 'Status', 'By', 'Created'],
      rows,
      'none yet',
    ),
  );
}

async function followBulk(id, into, gen, recent) {
  let was;
  const show = async () => {
    const b = await api('GET', `/bulk-actions/${id}`);
    if (!isCurrent(gen)) return true;
    into.replaceChildren(progressView(b));
    // The list shows the run too: drawn again when it starts or finishes.
    if (recent && was !== b.status) await showRecentBulk(recent, gen);
    was = b.status;
    return b.status === 'completed';
  };
  if (await show()) return;
  every(gen, 400, show);
}

async function showBulk(runningId, gen) {
  const action = el(
    'select',
    { id: 'bulk-action', name: 'action' },
    Object.keys(BULK_FIELDS).map((a) => el('option', { value: a }, a)),
  );
  const fields = el('div', { class: 'bulk-fields', style: 'display:contents' });
  const outcome = el('div', { id: 'bulk-dry' });
  const running = el('div', { id: 'bulk-running' });
  const recent = el('section', { id: 'bulk-recent-section' }, el('p', { class: 'muted' }, 'loading…'));
  const drawFields = () => {
    fields.replaceChildren(
      ...BULK_FIELDS[action.value].map((f) =>
        f === 'status'
          ? el(
              'label',
              {},
              'status',
              el(
                'select',
                { id: 'bulk-status', name: f },
                el('option', { value: '' }, 'any not final'),
                [...CANCELLABLE].map((s) => el('option', { value: s }, s)),
              ),
            )
          : el(
              'label',
              {},
              FIELD_LABELS[f] || f.replace('_', ' '),
              el('input', {
                id: `bulk-${f.replace('_', '-')}`,
                name: f,
                type: TIME_FIELDS.has(f) ? 'datetime-local' : 'text',
              }),
            ),
      ),
    );
    outcome.replaceChildren();
  };
  action.addEventListener('change', drawFields);
  const request = (form) => {
    const filter = action.value === 'resend_deliveries' ? { status: 'failed' } : {};
    for (const f of BULK_FIELDS[action.value]) {
      const v = String(new FormData(form).get(f) || '').trim();
      if (v) filter[f] = TIME_FIELDS.has(f) ? new Date(v).toISOString() : v;
    }
    const reason = String(new FormData(form).get('note') || '').trim();
    return { action: action.value, filter, ...(reason ? { reason } : {}) };
  };
  const form = el(
    'form',
    {
      class: 'bulk',
      id: 'bulk-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const body = request(ev.target);
        try {
          const dry = await api('POST', '/bulk-actions', { ...body, dry_run: true });
          const noun = NOUN[body.action];
          const run = el(
            'button',
            {
              id: 'bulk-run-button',
              class: body.action === 'cancel_orders' ? 'danger' : 'primary',
              type: 'button',
              disabled: dry.matched === 0,
              onclick: async () => {
                if (
                  !(await confirmAction(
                    `${VERB[body.action]} ${dry.matched} ${noun}?`,
                    `${
                      Object.keys(body.filter).length === (body.action === 'resend_deliveries' ? 1 : 0)
                        ? `No filter: this is every ${body.action === 'resend_deliveries' ? 'failed delivery' : body.action === 'retry_orders' ? 'failed order' : 'order not final'}. `
                        : `Filter: ${filterText(body.filter)}. `
                    }It acts on the ${noun} that match when it starts, each once.`,
                    body.action === 'cancel_orders',
                  ))
                )
                  return;
                try {
                  const started = await api('POST', '/bulk-actions', body);
                  history.replaceState(null, '', `#/bulk/${started.id}`);
                  outcome.replaceChildren();
                  await followBulk(started.id, running, gen, recent);
                } catch (e) {
                  say(e.message, true);
                }
              },
            },
            `${VERB[body.action]} ${dry.matched} ${noun}`,
          );
          outcome.replaceChildren(
            el('p', { id: 'bulk-matched', 'data-matched': dry.matched }, `${dry.matched} ${noun} match.`),
            dry.sample.length ? el('p', { class: 'muted mono' }, `e.g. ${dry.sample.slice(0, 5).join(', ')}`) : '',
            run,
          );
        } catch (e) {
          // Beside the form, and no count left standing with a button to run an older filter.
          outcome.replaceChildren(el('p', { class: 'err', id: 'bulk-error', role: 'alert' }, e.message));
        }
      },
      // A count (and its run button) is for the filter it was taken with: any edit clears it.
      oninput: () => outcome.replaceChildren(),
      onchange: () => outcome.replaceChildren(),
    },
    el('label', {}, 'action', action),
    fields,
    el('label', {}, 'note (recorded)', el('input', { id: 'bulk-note', name: 'note', placeholder: 'after the outage' })),
    el('button', { id: 'bulk-dry-run', type: 'submit' }, 'Count matching (dry run)'),
  );
  drawFields();
  if (!canWrite())
    form.replaceChildren(
      el(
        'p',
        { class: 'muted', id: 'bulk-read-only' },
        'Bulk actions are run by operators; a viewer may follow one by its link.',
      ),
    );
  draw(
    gen,
    el(
      'section',
      {},
      el('h2', {}, 'Bulk actions'),
      el('p', { class: 'muted' }, 'Count first: the run acts on exactly the set matched when it starts.'),
      form,
      outcome,
    ),
    running,
    recent,
  );
  if (runningId) await followBulk(runningId, running, gen, recent);
  else await showRecentBulk(recent, gen);
}

// ---- webhook endpoints ----------------------------------------------------------------------

/** An endpoint's health as its newest delivery tells it: its outcome, attempts and last error. */
function lastDelivery(d) {
  if (!d) return el('span', { class: 'muted' }, 'none yet');
  return [
    badge(d.status),
    ` ${d.event_type}, ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`,
    d.last_error ? el('div', { class: 'err' }, d.last_error) : '',
  ];
}

async function showEndpoints(gen) {
  const { data } = await api('GET', '/webhook-endpoints');
  data.sort((a, b) => (a.status === 'disabled' ? 0 : 1) - (b.status === 'disabled' ? 0 : 1));
  // Each endpoint's newest delivery (one small read each: endpoints are few).
  const newest = await Promise.all(
    data.map((e) =>
      api('GET', `/webhook-endpoints/${e.id}/deliveries?limit=1`)
        .then((r) => r.data[0])
        .catch(() => undefined),
    ),
  );
  const rows = data.map((e, i) =>
    el(
      'tr',
      {
        'data-endpoint-id': e.id,
        'data-endpoint-status': e.status,
        class: e.status === 'disabled' ? 'error' : undefined,
      },
      el(
        'td',
        {},
        el('div', { class: 'mono' }, e.url),
        e.description ? el('div', { class: 'muted' }, e.description) : '',
      ),
      el('td', {}, e.types.join(', ')),
      el('td', {}, badge(e.status)),
      el('td', { class: 'last-delivery' }, lastDelivery(newest[i])),
      el('td', {}, e.disabled_at ? `${when(e.disabled_at)} (${e.disabled_reason})` : '—'),
      el(
        'td',
        {},
        canWrite() && e.status === 'disabled'
          ? el(
              'button',
              {
                class: 'primary recover',
                onclick: () =>
                  act(
                    'Recover endpoint',
                    `${e.url} is enabled again and gets every event since ${when(e.created_at)} it has not had, in order.`,
                    'POST',
                    `/webhook-endpoints/${e.id}/recover`,
                    { since: e.created_at },
                    () => showEndpoints(gen),
                  ),
              },
              'Recover',
            )
          : '',
      ),
    ),
  );
  draw(
    gen,
    el(
      'section',
      {},
      el('h2', {}, 'Webhook endpoints'),
      table('endpoints', ['URL', 'Topics', 'Status', 'Last delivery', 'Disabled', ''], rows, 'no endpoints'),
    ),
  );
}

async function checkAlerts() {
  try {
    const { data } = await api('GET', '/webhook-endpoints');
    const off = data.filter((e) => e.status === 'disabled' && e.disabled_reason === 'failing');
    $('#alerts').replaceChildren(
      ...(off.length
        ? [
            `${off.length} webhook endpoint${off.length === 1 ? ' is' : 's are'} disabled after failing: `,
            el('a', { href: '#/endpoints', id: 'alert-endpoints' }, 'see endpoints'),
          ]
        : []),
    );
  } catch {
    /* the alert is a courtesy; the endpoints page says the error */
  }
}

// ---- routing --------------------------------------------------------------------------------

/**
 * Runs `tick` every `ms` while route `gen` is current (the one timer of the page: a navigation
 * clears it); stops when `tick` says it is done, reports its errors in the status line.
 */
function every(gen, ms, tick) {
  if (!isCurrent(gen)) return;
  clearInterval(timer);
  const id = setInterval(async () => {
    if (!isCurrent(gen)) return clearInterval(id);
    try {
      if (await tick()) clearInterval(id);
    } catch (e) {
      if (isCurrent(gen)) say(e.message, true);
    }
  }, ms);
  timer = id;
}

/** What a route that failed leaves on screen: what went wrong and the way back, nothing to act on. */
function errorView(e) {
  return el(
    'section',
    { id: 'route-error', class: 'error-panel', role: 'alert', 'data-http-status': e.status },
    el('h2', {}, e.status === 404 ? 'Not found' : 'This page could not be loaded'),
    el('p', { id: 'route-error-message' }, e.message),
    el('p', {}, el('a', { href: '#/orders', id: 'route-error-back' }, 'Back to orders')),
  );
}

async function route() {
  const gen = ++generation;
  clearInterval(timer);
  refresh = async () => undefined;
  say('');
  // Nothing of the page left behind stays on screen (or in an open question) while this one loads.
  if ($('#confirm').open) $('#confirm').close('cancel');
  delete document.body.dataset.view;
  draw(gen, el('p', { class: 'muted', id: 'loading' }, 'loading…'));
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  const section = parts[0] || 'orders';
  for (const a of document.querySelectorAll('nav a[data-nav]'))
    a.classList.toggle('current', a.dataset.nav === (section === 'order' ? 'orders' : section));
  try {
    if (section === 'order' && parts[1]) await showOrder(parts[1], gen);
    else if (section === 'bulk') await showBulk(parts[1], gen);
    else if (section === 'endpoints') await showEndpoints(gen);
    else await showOrders(new URLSearchParams(query || ''), gen);
    if (isCurrent(gen)) document.body.dataset.view = section;
  } catch (e) {
    if (!isCurrent(gen)) return;
    clearInterval(timer);
    refresh = async () => undefined;
    draw(gen, errorView(e));
    document.body.dataset.view = 'error';
    say(e.message, true);
  }
  if (isCurrent(gen)) checkAlerts();
}

// Enter in the reason field confirms (a form's implicit submission would press its first button, Cancel).
function enterConfirms(ev) {
  if (ev.key !== 'Enter') return;
  ev.preventDefault();
  $('#confirm').close('ok');
}

async function start() {
  $('#confirm-reason').addEventListener('keydown', enterConfirms);
  const res = await fetch('/console/session', { credentials: 'same-origin' });
  session = await res.json();
  document.body.dataset.role = session.role;
  const who = session.name === session.role ? session.role : `${session.name} (${session.role})`;
  $('#who').textContent = `signed in as ${who}${canWrite() ? '' : ' · read-only'}`;
  window.addEventListener('hashchange', route);
  await route();
  document.body.dataset.loaded = 'true';
}

start().catch((e) => say(e.message, true));
