// The executor's app: joining, the inbox (live through the change feed), a request with
// the actions this member may take, and posting requests. Plain ES modules, no framework.

import { h, fill, $, toast, due, tick, when, relative } from './dom.js';
import {
  api, act, flush, queued, onQueue, onSent, onRefused, session, saveSession, clearSession,
  HttpError, uuid, enc, objectUrl,
} from './api.js';
import { Feed } from './feed.js';
import { downscale, locate } from './photos.js';

const ACTIVE = ['claimed', 'in_progress', 'waiting', 'held', 'retrying', 'needs_input', 'needs_confirmation'];
const ASKING = ['needs_input', 'needs_confirmation'];
const TERMINAL = ['completed', 'partial', 'failed', 'declined', 'expired', 'cancelled', 'superseded', 'delegated'];
const PRIORITY = { background: 0, normal: 1, elevated: 2, urgent: 3 };
const STATUS_TEXT = {
  pending: 'Open', claimed: 'Claimed', in_progress: 'In progress', waiting: 'Waiting', held: 'Held',
  retrying: 'Retrying', needs_input: 'Question asked', needs_confirmation: 'Needs confirmation',
  completed: 'Done', partial: 'Partly done', failed: 'Failed', declined: 'Declined', expired: 'Expired',
  cancelled: 'Cancelled', superseded: 'Superseded', delegated: 'Delegated', revision_requested: 'Revision requested',
};
const PASSED = 'mess.passed';

/** Every thread we know: ref -> the list's summary, plus `request` once its detail is read. */
const threads = new Map();
/** Threads whose detail (the request block) has been read, at which version. */
const detailed = new Map();
let me = null; // {id, exchange, display_name, capabilities}
let feed = null;
let view = null; // the current screen: {name, ref?, update()}
let stopScan = null; // stops the camera of "Scan a QR code" while it is open

// ---- Boot --------------------------------------------------------------------------------

function boot() {
  warnInsecure();
  if ('serviceWorker' in navigator && window.isSecureContext) {
    navigator.serviceWorker.register('/app/sw.js', { scope: '/' }).catch(() => {});
  }
  onQueue(renderQueue);
  onSent((item, data) => {
    toast(`Sent: ${item.label}`);
    if (data && data.thread) remember(data.thread);
    refresh();
  });
  onRefused((item, err) => toast(`Not done: ${item.label}: ${err.message}`, true));
  addEventListener('online', () => flush());
  // A lost 'online' event must not strand the queue.
  setInterval(() => { if (queued().length && navigator.onLine !== false) flush(); }, 10000);
  addEventListener('hashchange', route);
  setInterval(tick, 30000);
  renderQueue(queued());
  const s = session();
  if (s) signedIn(s);
  route();
}

const INSECURE_DISMISSED = 'mess.insecure-dismissed';

/** Plain http off localhost: phones refuse the camera, location and the service worker,
 *  so say so (until dismissed, for this tab's session). localhost counts as secure. */
function warnInsecure() {
  if (window.isSecureContext !== false) return;
  const el = $('#insecure');
  try { if (sessionStorage.getItem(INSECURE_DISMISSED)) return; } catch { /* no storage: show it */ }
  el.hidden = false;
  $('#insecure-dismiss').addEventListener('click', () => {
    el.hidden = true;
    try { sessionStorage.setItem(INSECURE_DISMISSED, '1'); } catch { /* only for this page then */ }
    $('#main').focus();
  });
}

function signedIn(s) {
  me = { id: s.executor_id, exchange: s.exchange, display_name: s.display_name, capabilities: s.capabilities || [] };
  $('#tabs').hidden = false;
  $('#conn').hidden = false;
  $('#title').textContent = s.exchange;
  if (!feed) {
    feed = new Feed({ onEvent, onState: setConn, reset: loadList });
  }
  loadList().then((pos) => feed.start(pos)).catch(() => feed.start(null));
  flush();
}

function setConn(state) {
  const el = $('#conn');
  const text = { live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline', unauthorized: 'Signed out' }[state] || state;
  el.textContent = text;
  el.className = `conn ${state === 'live' ? 'conn-live' : state === 'reconnecting' ? 'conn-wait' : 'conn-off'}`;
  el.dataset.state = state;
  if (state === 'unauthorized') toast('This key is no longer valid: sign in again.', true);
  if (state === 'live') flush();
}

// ---- Data --------------------------------------------------------------------------------

/** Lists every thread (the answer's `pos` is the feed's head) and reads the details the inbox needs. */
async function loadList() {
  const [list, members] = await Promise.all([
    api('/requests?limit=500'),
    api('/executors').catch(() => null),
  ]);
  if (members) {
    const mine = (members.executors || []).find((m) => m.id === me.id);
    if (mine) {
      me.capabilities = mine.capabilities || [];
      me.display_name = mine.display_name;
    }
  }
  for (const t of list.threads || []) merge(t);
  await details([...threads.values()].filter((t) => t.status === 'pending' || t.executor_id === me.id));
  refresh();
  return list.pos ?? null;
}

function merge(summary) {
  const old = threads.get(summary.ref) || {};
  threads.set(summary.ref, { ...old, ...summary });
}

/** Keeps a whole thread (from GET or a PATCH answer). */
function remember(thread) {
  const first = (thread.messages || [])[0];
  const request = first && (first.mess || []).map((b) => b.request).find(Boolean);
  const { messages, ...summary } = thread;
  threads.set(thread.ref, { ...(threads.get(thread.ref) || {}), ...summary, request: request || {}, messages });
  detailed.set(thread.ref, thread.version);
}

async function details(list) {
  const todo = list.filter((t) => detailed.get(t.ref) !== t.version);
  const workers = Array.from({ length: 4 }, async () => {
    while (todo.length) {
      const t = todo.shift();
      try { remember((await api(`/requests/${enc(t.ref)}?attachments=links`)).thread); } catch { /* listed anyway */ }
    }
  });
  await Promise.all(workers);
}

const pending = new Map();
/** One change of the feed: the status moves at once, the detail follows. */
function onEvent({ data }) {
  if (!data || !data.ref) return;
  const t = threads.get(data.ref);
  if (t && data.status) {
    t.status = data.status;
    if (data.type === 'status_changed' && data.event && data.event.payload && 'executor_id' in data.event.payload) {
      t.executor_id = data.event.payload.executor_id;
    }
  }
  refresh();
  clearTimeout(pending.get(data.ref));
  pending.set(data.ref, setTimeout(async () => {
    pending.delete(data.ref);
    try {
      remember((await api(`/requests/${enc(data.ref)}?attachments=links`)).thread);
      refresh();
    } catch { /* the next event or reload catches up */ }
  }, 120));
}

function refresh() {
  if (view && view.update) view.update();
  const n = canTake().length;
  const inbox = document.querySelector('[data-tab=inbox]');
  fill(inbox, 'Inbox', n ? h('span', { class: 'badge', 'aria-label': `${n} to take` }, n) : null);
}

function passed() {
  try { return new Set(JSON.parse(localStorage.getItem(PASSED)) || []); } catch { return new Set(); }
}

function covers(t) {
  let req = t.request && t.request.requires;
  if (!req) return true;
  if (typeof req === 'string') req = [req];
  if (!Array.isArray(req)) return true;
  const caps = new Set(me.capabilities || []);
  return req.every((c) => caps.has(c));
}

function neededBy(t) {
  const r = t.request || {};
  return r.needed_by || (r.constraints && r.constraints.timing && r.constraints.timing.expires) || null;
}

function byUrgency(a, b) {
  const p = (PRIORITY[b.priority] ?? 1) - (PRIORITY[a.priority] ?? 1);
  if (p) return p;
  const da = Date.parse(neededBy(a) || '') || Infinity;
  const db = Date.parse(neededBy(b) || '') || Infinity;
  if (da !== db) return da - db;
  return String(a.created_at).localeCompare(String(b.created_at));
}

function canTake() {
  if (!me) return [];
  const skip = passed();
  return [...threads.values()]
    .filter((t) => t.status === 'pending' && t.requestor_id !== me.id && detailed.has(t.ref) && covers(t) && !skip.has(t.ref))
    .sort(byUrgency);
}

// ---- Routing -----------------------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const [path, query] = raw.split('?');
  return { path, params: new URLSearchParams(query || '') };
}

function route() {
  const { path, params } = parseHash();
  const s = session();
  let screen;
  if (path === 'join' || !s) screen = () => joinScreen(params);
  else if (path.startsWith('r/')) screen = () => threadScreen(decodeURIComponent(path.slice(2)));
  else if (path === 'mine') screen = mineScreen;
  else if (path === 'new') screen = newScreen;
  else if (path === 'me') screen = meScreen;
  else screen = inboxScreen;
  view = null;
  if (stopScan) stopScan();
  const main = $('#main');
  main.replaceChildren();
  document.querySelectorAll('#tabs a').forEach((a) => {
    if (path === a.dataset.tab || (!path && a.dataset.tab === 'inbox')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  screen();
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---- Joining -----------------------------------------------------------------------------

function joinScreen(params) {
  document.title = 'Join · MESS';
  const main = $('#main');
  const invitedToken = params.get('token') || '';
  const mode = { value: params.get('key') === '1' ? 'key' : 'new' };
  const body = h('div');
  const newBtn = h('button', { type: 'button', 'aria-pressed': 'true', onclick: () => { mode.value = 'new'; draw(); } }, 'New member');
  const keyBtn = h('button', { type: 'button', 'aria-pressed': 'false', onclick: () => { mode.value = 'key'; draw(); } }, 'I have a key');
  fill(main,
    h('h2', {}, 'Join the exchange'),
    h('p', { class: 'muted' }, 'Take requests from people and agents of this exchange, and answer with text, photos and your location.'),
    h('div', { class: 'seg', role: 'group', 'aria-label': 'How to join' }, newBtn, keyBtn),
    body);

  const exchangeInput = h('input', { type: 'text', id: 'j-exchange', name: 'exchange', autocapitalize: 'none', autocomplete: 'off', spellcheck: 'false', required: true, value: params.get('exchange') || '' });
  if (!exchangeInput.value) {
    api('/health', { abs: true, auth: false }).then((hl) => { if (!exchangeInput.value) exchangeInput.value = hl.exchange_id || 'home'; }).catch(() => { exchangeInput.value ||= 'home'; });
  }

  function draw() {
    newBtn.setAttribute('aria-pressed', String(mode.value === 'new'));
    keyBtn.setAttribute('aria-pressed', String(mode.value === 'key'));
    fill(body, mode.value === 'new' ? registerForm() : keyForm());
  }

  function registerForm() {
    const name = h('input', { type: 'text', id: 'j-name', name: 'display_name', autocomplete: 'name', required: true, maxlength: 256 });
    const id = h('input', { type: 'text', id: 'j-id', name: 'executor_id', autocapitalize: 'none', autocomplete: 'username', spellcheck: 'false', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}', maxlength: 64 });
    const caps = h('input', { type: 'text', id: 'j-caps', name: 'capabilities', autocapitalize: 'none', spellcheck: 'false', value: 'photo:capture, location' });
    const token = h('input', { type: 'password', id: 'j-token', name: 'registration_token', autocomplete: 'off', value: invitedToken });
    const tokenBox = h('div', { hidden: !invitedToken },
      h('label', { for: 'j-token' }, 'Registration token', h('span', { class: 'hint' }, 'This exchange asks for one: it is in your invite.')),
      token);
    let touched = false;
    id.addEventListener('input', () => { touched = true; });
    name.addEventListener('input', () => {
      if (!touched) id.value = name.value.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
    });
    const err = h('p', { class: 'bad', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'primary wide' }, 'Join');
    const form = h('form', { class: 'card', novalidate: false },
      h('label', { for: 'j-name' }, 'Your name'), name,
      h('label', { for: 'j-id' }, 'Member id', h('span', { class: 'hint' }, 'Letters, digits, . _ - (how others see you in threads)')), id,
      h('label', { for: 'j-caps' }, 'What you can do', h('span', { class: 'hint' }, 'Capabilities, separated by commas: you are offered requests that need them')), caps,
      tokenBox,
      h('details', {}, h('summary', {}, 'Exchange'),
        h('label', { for: 'j-exchange' }, 'Exchange id'), exchangeInput),
      err,
      h('div', { class: 'row' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      submit.disabled = true;
      const exchange = exchangeInput.value.trim();
      const body = {
        executor_id: id.value.trim(),
        display_name: name.value.trim(),
        capabilities: caps.value.split(',').map((c) => c.trim()).filter(Boolean),
      };
      const headers = token.value ? { 'X-Registration-Token': token.value.trim() } : {};
      try {
        const res = await api('/register', { method: 'POST', body, headers, exchange, auth: false });
        keyScreen({ exchange, executor_id: res.executor_id, api_key: res.api_key, display_name: body.display_name, capabilities: body.capabilities });
      } catch (ex) {
        if (ex instanceof HttpError && ex.status === 401) {
          tokenBox.hidden = false;
          err.textContent = token.value ? 'That registration token was not accepted.' : 'This exchange needs a registration token: enter the one from your invite.';
          token.focus();
        } else if (ex instanceof HttpError && ex.status === 409) {
          err.textContent = 'That member id is taken: choose another.';
          id.focus();
        } else {
          err.textContent = ex instanceof HttpError ? ex.message : 'No connection to the exchange.';
        }
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  function keyForm() {
    const key = h('input', { type: 'password', id: 'k-key', name: 'api_key', autocomplete: 'off', spellcheck: 'false', required: true });
    const id = h('input', { type: 'text', id: 'k-id', name: 'executor_id', autocapitalize: 'none', autocomplete: 'username', spellcheck: 'false', required: true });
    const err = h('p', { class: 'bad', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
    // Another device of this member shows a code (Me, "Add another device"): scanning it
    // fills this form. Only where the browser decodes QR codes itself; pasting stays.
    const scanner = h('div', { id: 'k-scanner', class: 'scanner', hidden: true });
    const scan = h('button', { type: 'button', id: 'k-scan', class: 'wide', hidden: true }, 'Scan a QR code');
    const scanBox = h('div', { id: 'k-scan-box', hidden: true },
      h('p', { class: 'muted' }, 'On a device where you are signed in, open Me, then "Add another device", and scan the code it shows.'),
      h('div', { class: 'row' }, scan), scanner);
    canScanQr().then((ok) => { scanBox.hidden = !ok; scan.hidden = !ok; });
    const form = h('form', { class: 'card' },
      scanBox,
      h('label', { for: 'k-id' }, 'Member id'), id,
      h('label', { for: 'k-key' }, 'Your key', h('span', { class: 'hint' }, 'Paste the key you saved when you joined (mess_…)')), key,
      err, h('div', { class: 'row' }, submit));
    scan.addEventListener('click', async () => {
      err.textContent = '';
      scan.disabled = true;
      let text;
      let device;
      try {
        device = await import('./device.js');
        text = await device.scanQr(scanner, (stop) => { stopScan = stop; });
      } catch (ex) {
        err.textContent = ex && ex.name === 'NotAllowedError'
          ? 'The camera was not allowed: paste your key instead.'
          : 'Could not open the camera: paste your key instead.';
        return;
      } finally {
        scan.disabled = false;
      }
      if (text === null) return; // cancelled
      const code = device.parseDeviceCode(text);
      if (!code) {
        err.textContent = 'That QR code is not a MESS device code. On your other device, open Me, then "Add another device".';
        return;
      }
      if (code.base !== location.origin) {
        err.textContent = `That code is for the exchange at ${code.base}: open that address on this device and scan it there.`;
        return;
      }
      id.value = code.member;
      key.value = code.apiKey;
      form.requestSubmit();
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const k = key.value.trim();
      const m = /^mess_([a-z0-9][a-z0-9-]{0,62})_\S+$/.exec(k);
      if (!m) { err.textContent = 'A key looks like mess_home_…'; return; }
      submit.disabled = true;
      try {
        const res = await fetch(`/api/v1/exchanges/${enc(m[1])}/executors`, { headers: { Authorization: `Bearer ${k}` }, credentials: 'omit', cache: 'no-store' });
        if (res.status === 401 || res.status === 403) throw new Error('This key is not valid.');
        if (!res.ok) throw new Error(`The exchange answered ${res.status}.`);
        const members = (await res.json()).executors || [];
        const mine = members.find((x) => x.id === id.value.trim());
        if (!mine) throw new Error('No member with that id in this exchange.');
        const s = { exchange: m[1], executor_id: mine.id, api_key: k, display_name: mine.display_name, capabilities: mine.capabilities || [] };
        saveSession(s);
        signedIn(s);
        go('#inbox');
      } catch (ex) {
        err.textContent = ex instanceof TypeError ? 'No connection to the exchange.' : ex.message;
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  draw();
}

// ---- Adding a device by QR code (device.js, loaded only when used) ---------------------

/** Whether this browser can scan: a camera and its own QR decoder (BarcodeDetector). */
async function canScanQr() {
  if (!('BarcodeDetector' in window) || !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) return false;
  try {
    return (await window.BarcodeDetector.getSupportedFormats()).includes('qr_code');
  } catch {
    return false;
  }
}

/** Me, "Add another device": the device code as a QR code (the encoder is loaded only now). */
function addDevice() {
  const box = h('div', { id: 'p-qr', hidden: true });
  const show = h('button', { type: 'button', id: 'p-add-device' }, 'Add another device');
  const hide = h('button', { type: 'button', id: 'p-qr-hide', class: 'primary' }, 'Hide');
  hide.addEventListener('click', () => {
    box.replaceChildren();
    box.hidden = true;
    show.hidden = false;
    show.focus();
  });
  show.addEventListener('click', async () => {
    show.disabled = true;
    try {
      const { deviceCode, qrCanvas } = await import('./device.js');
      const canvas = await qrCanvas(deviceCode(session()));
      fill(box,
        h('p', { class: 'warn' }, h('strong', {}, 'Anyone who sees this code can act as you.'),
          ' Show it only to your own device, and hide it when you are done.'),
        canvas,
        h('p', { class: 'muted' }, 'On the other device, open this exchange, choose "I have a key", then "Scan a QR code".'),
        h('div', { class: 'row' }, hide));
      box.hidden = false;
      show.hidden = true;
      hide.focus();
    } catch {
      toast('Could not make the code (offline?): use your saved key instead.', true);
    } finally {
      show.disabled = false;
    }
  });
  return h('div', { class: 'card' },
    h('p', { class: 'muted' }, 'Sign in on another phone or computer by scanning a code, without typing your key.'),
    h('div', { class: 'row' }, show), box);
}

/** The key, shown once, with a "save it" step before anything else. */
function keyScreen(s, { heading = `Welcome, ${s.display_name}`, next = '#inbox', stored = false } = {}) {
  document.title = 'Save your key · MESS';
  const main = $('#main');
  const saved = h('input', { type: 'checkbox', id: 'saved' });
  const cont = h('button', { type: 'button', class: 'primary', disabled: true }, 'Continue');
  const copy = h('button', { type: 'button' }, 'Copy key');
  saved.addEventListener('change', () => { cont.disabled = !saved.checked; });
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(s.api_key); toast('Key copied'); } catch { toast('Select the key and copy it by hand', true); }
  });
  cont.addEventListener('click', () => {
    if (!stored) {
      saveSession(s);
      signedIn(s);
    }
    go(next);
  });
  fill(main,
    h('h2', {}, heading),
    h('div', { class: 'card' },
      h('p', {}, h('strong', {}, 'Save your key now.'), ' It is shown only this once. This device keeps it, but you need it to sign in on another device or after clearing the browser.'),
      h('code', { class: 'key', id: 'api-key', 'aria-label': 'Your key' }, s.api_key),
      h('div', { class: 'row' }, copy),
      h('label', { class: 'check', for: 'saved' }, saved, 'I have saved my key somewhere safe'),
      h('div', { class: 'row' }, cont)));
}

// ---- Inbox -------------------------------------------------------------------------------

function item(t, extra) {
  const nb = neededBy(t);
  return h('li', { class: 'card' },
    h('a', { class: 'item', href: `#r/${enc(t.ref)}`, dataset: { ref: t.ref } },
      h('span', { class: 'intent' }, t.intent),
      h('span', { class: 'meta' },
        priorityChip(t.priority),
        h('span', { class: `chip st-${t.status}` }, STATUS_TEXT[t.status] || t.status),
        nb && !TERMINAL.includes(t.status) ? due(nb) : null,
        extra || h('span', {}, `from ${t.requestor_id}`))));
}

function priorityChip(p) {
  if (!p || p === 'normal') return null;
  return h('span', { class: `chip p-${p}` }, p);
}

function section(title, list, empty, id) {
  return h('section', { 'aria-labelledby': id },
    h('h3', { id }, title, list.length ? ` (${list.length})` : ''),
    list.length ? h('ul', { class: 'list' }, list) : h('p', { class: 'empty' }, empty));
}

function inboxScreen() {
  document.title = 'Inbox · MESS';
  const main = $('#main');
  const body = h('div', { id: 'inbox' });
  fill(main, h('h2', {}, 'Inbox'), body);
  view = {
    name: 'inbox',
    update() {
      const all = [...threads.values()];
      const mine = all.filter((t) => t.executor_id === me.id);
      const recent = (a, b) => String(b.updated_at).localeCompare(String(a.updated_at));
      fill(body,
        section('You can take', canTake().map((t) => item(t)), 'Nothing waiting for you right now.', 's-take'),
        section('In progress', mine.filter((t) => ACTIVE.includes(t.status) && !ASKING.includes(t.status)).sort(byUrgency).map((t) => item(t)), 'Nothing in progress.', 's-active'),
        section('Waiting on the requestor', mine.filter((t) => ASKING.includes(t.status)).sort(recent).map((t) => item(t)), 'No open questions.', 's-wait'),
        section('Done', mine.filter((t) => TERMINAL.includes(t.status)).sort(recent).slice(0, 10).map((t) => item(t, h('span', {}, relative(t.updated_at)))), 'Nothing finished yet.', 's-done'));
    },
  };
  view.update();
}

function mineScreen() {
  document.title = 'Posted · MESS';
  const main = $('#main');
  const body = h('div');
  fill(main, h('h2', {}, 'Requests you posted'),
    h('p', {}, h('a', { class: 'button primary', href: '#new' }, 'Ask for something')), body);
  view = {
    name: 'mine',
    update() {
      const mine = [...threads.values()].filter((t) => t.requestor_id === me.id)
        .sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
      const open = mine.filter((t) => !TERMINAL.includes(t.status));
      fill(body,
        section('Open', open.map((t) => item(t, ASKING.includes(t.status) ? h('strong', {}, 'A question for you') : h('span', {}, t.executor_id ? `with ${t.executor_id}` : 'not taken yet'))), 'No open requests.', 'm-open'),
        section('Finished', mine.filter((t) => TERMINAL.includes(t.status)).slice(0, 20).map((t) => item(t, h('span', {}, relative(t.updated_at)))), 'None yet.', 'm-done'));
    },
  };
  view.update();
}

// ---- A request ---------------------------------------------------------------------------

function threadScreen(ref) {
  document.title = 'Request · MESS';
  const main = $('#main');
  const head = h('div', { class: 'head' });
  const msgs = h('ol', { class: 'thread', 'aria-label': 'Messages' });
  const acts = h('div', { id: 'actions' });
  const form = h('div', { id: 'form' });
  const back = h('a', { href: '#inbox', id: 'back', class: 'muted' }, '‹ Back');
  back.addEventListener('click', (e) => { if (history.length > 1) { e.preventDefault(); history.back(); } });
  fill(main, h('p', {}, back), head, h('h3', {}, 'Messages'), msgs, acts, form);

  let shown = -1;
  let formFor = null;
  view = {
    name: 'thread',
    ref,
    update() {
      const t = threads.get(ref);
      if (!t || !t.messages) return;
      const r = t.request || {};
      const nb = neededBy(t);
      document.title = `${t.intent} · MESS`;
      fill(head,
        h('h2', {}, t.intent),
        h('div', { class: 'meta' },
          h('span', { class: `chip status st-${t.status}`, id: 'status', dataset: { status: t.status } }, STATUS_TEXT[t.status] || t.status),
          priorityChip(t.priority),
          nb && !TERMINAL.includes(t.status) ? due(nb) : null),
        h('dl', { class: 'facts' },
          h('dt', {}, 'From'), h('dd', {}, t.requestor_id === me.id ? 'you' : t.requestor_id),
          h('dt', {}, 'Taken by'), h('dd', {}, t.executor_id ? (t.executor_id === me.id ? 'you' : t.executor_id) : 'nobody yet'),
          nb ? [h('dt', {}, 'Needed by'), h('dd', {}, when(nb))] : null,
          r.requires ? [h('dt', {}, 'Needs'), h('dd', {}, [].concat(r.requires).join(', '))] : null,
          h('dt', {}, 'Posted'), h('dd', {}, when(t.created_at))),
        contextList(r.context));
      if (t.messages.length !== shown) {
        fill(msgs, t.messages.map((m) => message(t, m)));
        shown = t.messages.length;
      }
      fill(acts, actions(t, openForm));
      if (formFor && !allowed(t).includes(formFor)) closeForm();
    },
  };

  function openForm(kind) {
    formFor = kind;
    const t = threads.get(ref);
    fill(form, forms[kind](t, closeForm));
    const first = form.querySelector('textarea, input, button');
    if (first) first.focus();
    form.scrollIntoView({ block: 'start' });
  }
  function closeForm() { formFor = null; form.replaceChildren(); }

  api(`/requests/${enc(ref)}?attachments=links`).then((res) => {
    remember(res.thread);
    view && view.ref === ref && view.update();
  }).catch((err) => {
    if (threads.get(ref) && threads.get(ref).messages) { view.update(); return; }
    fill(head, h('h2', {}, 'Request'), h('p', { role: 'alert' }, err instanceof HttpError && err.status === 404 ? 'No such request.' : 'Could not load this request (offline?).'));
  });
}

function contextList(ctx) {
  if (!ctx) return null;
  const items = Array.isArray(ctx) ? ctx : [ctx];
  return h('ul', { class: 'context' }, items.map((c) => h('li', {}, contentItem(c, 'with the request'))));
}

function message(t, m) {
  const blocks = (m.mess || []).map((b) => block(t, m, b)).filter(Boolean);
  return h('li', { class: m.from === me.id ? 'msg me' : 'msg' },
    h('div', { class: 'who' }, h('strong', {}, m.from === me.id ? 'You' : m.from), h('time', { datetime: m.ts }, when(m.ts))),
    blocks);
}

function block(t, m, b) {
  const [kind] = Object.keys(b);
  const v = b[kind];
  switch (kind) {
    case 'request':
      return h('div', { class: 'block' }, 'Asked: ', v.intent || t.intent);
    case 'status': {
      const code = v.code || v.status;
      const words = code === 'declined' && t.status === 'pending' ? 'Passed on this request' : `Status: ${STATUS_TEXT[code] || code}`;
      const mins = /^PT(\d+)M$/.exec(v.estimate || '');
      const extra = v.message || v.reason || v.question || (mins ? `Estimate: about ${mins[1]} min` : v.estimate ? `Estimate: ${v.estimate}` : null);
      return h('div', { class: 'block' }, h('em', {}, words), extra ? h('div', {}, extra) : null,
        v.questions ? h('ul', {}, [].concat(v.questions).map((q) => h('li', {}, typeof q === 'string' ? q : (q.text || q.question || JSON.stringify(q))))) : null);
    }
    case 'response': case 'reply': case 'answer': case 'query': case 'followup': case 'suggestion': case 'cancel': case 'ack': {
      const label = { response: 'Answer', reply: 'Reply', answer: 'Answer', query: 'Question', followup: 'Follow-up', suggestion: 'Suggestion', cancel: 'Cancelled', ack: 'Seen' }[kind];
      const content = typeof v === 'string' ? [v] : v && (v.content ?? v.text ?? v.message ?? v.question ?? v.reason);
      return h('div', { class: 'block' }, h('strong', {}, `${label}: `),
        content === undefined || content === null ? null : [].concat(content).map((c) => contentItem(c, `${label} from ${m.from}`)));
    }
    default:
      return null;
  }
}

/** One content item: text, an image (a `data:` URI, or an attachment link fetched with the key), a location. */
const ATTACHMENT_LINK = /^\/api\/v1\/exchanges\/[^/]+\/requests\/[^/]+\/attachments\//;
function contentItem(c, alt) {
  // A bare photo (a data: URI, or the link the thread was read with) shows as one.
  if (typeof c === 'string') return /^data:image\//.test(c) || ATTACHMENT_LINK.test(c) ? contentItem({ image: c }, alt) : h('div', {}, c);
  if (!c || typeof c !== 'object') return h('div', {}, String(c));
  if (c.type === 'location' || ('lat' in c && 'lng' in c)) {
    const label = `${Number(c.lat).toFixed(5)}, ${Number(c.lng).toFixed(5)}${c.accuracy ? ` (±${Math.round(c.accuracy)} m)` : ''}`;
    return h('div', { class: 'loc' }, 'Location: ',
      h('a', { href: `https://www.openstreetmap.org/?mlat=${enc(c.lat)}&mlon=${enc(c.lng)}#map=17/${enc(c.lat)}/${enc(c.lng)}`, target: '_blank', rel: 'noopener noreferrer' }, c.name || label));
  }
  const parts = [];
  for (const [k, v] of Object.entries(c)) {
    if (typeof v !== 'string') continue;
    if (/^data:image\//.test(v)) parts.push(h('img', { src: v, alt: c.alt || c.caption || `Photo: ${alt}`, loading: 'lazy' }));
    else if (ATTACHMENT_LINK.test(v)) {
      const img = h('img', { alt: c.alt || c.caption || `Photo: ${alt}` });
      objectUrl(v).then((u) => { img.src = u; }).catch(() => img.replaceWith(h('span', {}, '(attachment could not be loaded)')));
      parts.push(img);
    } else if (k === 'text' || k === 'caption') parts.push(h('div', {}, v));
  }
  return parts.length ? h('div', {}, parts) : h('div', { class: 'muted' }, JSON.stringify(c));
}

/** The review window (protocol.md, "Revision"): 24 hours after the thread finished. */
const REVIEW_WINDOW_MS = 24 * 3600e3;
function withinReview(t) {
  const done = Date.parse(t.updated_at || '');
  return Number.isNaN(done) || Date.now() - done < REVIEW_WINDOW_MS;
}

/** The actions protocol.md allows this member on `t`. */
function allowed(t) {
  const mine = t.executor_id === me.id;
  const asker = t.requestor_id === me.id;
  const out = [];
  if (t.status === 'pending') {
    if (asker) out.push('cancel');
    else out.push('claim', 'pass');
  } else if (ACTIVE.includes(t.status)) {
    if (mine) {
      if (t.status === 'claimed') out.push('start');
      else if (t.status !== 'in_progress') out.push('resume');
      out.push('complete');
      if (t.status !== 'needs_input') out.push('ask');
      out.push('release', 'fail', 'decline');
    }
    if (asker) out.push('reply', 'cancel');
  } else if (t.status === 'partial' && mine) {
    out.push('complete');
  }
  if ((t.status === 'completed' || t.status === 'partial') && asker && withinReview(t)) out.push('revise');
  if (t.status === 'pending' && !asker) out.splice(1, 0, 'estimate');
  return out;
}

function actions(t, openForm) {
  const a = allowed(t);
  if (a.length === 0) return null;
  const ref = t.ref;
  const quick = (status, label, extra = {}) => async (e) => {
    e.currentTarget.disabled = true;
    await send(ref, { status, ...extra }, label);
  };
  const b = {
    claim: h('button', { type: 'button', class: 'primary wide', id: 'act-claim', onclick: quick('claimed', 'Claim') }, 'Claim it'),
    pass: h('button', { type: 'button', id: 'act-pass', onclick: async (e) => {
      e.currentTarget.disabled = true;
      const s = passed(); s.add(ref); localStorage.setItem(PASSED, JSON.stringify([...s]));
      await send(ref, { status: 'declined' }, 'Pass');
      go('#inbox');
    } }, 'Not for me'),
    start: h('button', { type: 'button', class: 'primary', id: 'act-start', onclick: quick('in_progress', 'Start') }, 'Start'),
    resume: h('button', { type: 'button', id: 'act-resume', onclick: quick('in_progress', 'Resume') }, 'Resume'),
    complete: h('button', { type: 'button', class: 'primary', id: 'act-complete', onclick: () => openForm('complete') }, 'Complete'),
    ask: h('button', { type: 'button', id: 'act-ask', onclick: () => openForm('ask') }, 'Ask a question'),
    release: h('button', { type: 'button', id: 'act-release', onclick: quick('pending', 'Release') }, 'Release'),
    fail: h('button', { type: 'button', class: 'danger', id: 'act-fail', onclick: () => openForm('fail') }, "Can't do it"),
    decline: h('button', { type: 'button', class: 'danger', id: 'act-decline', onclick: quick('declined', 'Decline') }, 'Decline'),
    reply: h('button', { type: 'button', class: 'primary', id: 'act-reply', onclick: () => openForm('reply') }, ASKING.includes(t.status) ? 'Answer the question' : 'Send a message'),
    cancel: h('button', { type: 'button', class: 'danger', id: 'act-cancel', onclick: () => openForm('cancel') }, 'Cancel request'),
    estimate: h('button', { type: 'button', id: 'act-estimate', onclick: () => openForm('estimate') }, 'Claim with a time estimate'),
    revise: h('button', { type: 'button', class: 'wide', id: 'act-revise', onclick: () => openForm('revise') }, 'Ask for a revision'),
  };
  return h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, a.map((k) => b[k]));
}

/** Sends a PATCH (or queues it offline) and shows the outcome. */
async function send(ref, body, label) {
  try {
    const res = await act('PATCH', `/requests/${enc(ref)}`, body, `${label} (${ref})`);
    if (res.sent) {
      if (res.data && res.data.thread) remember(res.data.thread);
      toast(`${label}: done`);
    } else {
      toast(`${label}: saved, will be sent when you are back online`);
    }
    refresh();
    return true;
  } catch (err) {
    const why = err instanceof HttpError && err.status === 409 && body.status === 'claimed' ? 'someone else took it' : err.message;
    toast(`${label}: ${why}`, true);
    try { remember((await api(`/requests/${enc(ref)}?attachments=links`)).thread); refresh(); } catch { /* offline */ }
    return false;
  }
}

function textForm({ title, id, label, hint, button, required = true, danger = false }, onSubmit, close) {
  const text = h('textarea', { id, name: id, required });
  const submit = h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, button);
  const form = h('form', { class: 'card' },
    h('fieldset', {}, h('legend', {}, title),
      h('label', { for: id }, label, hint ? h('span', { class: 'hint' }, hint) : null), text,
      h('div', { class: 'row' }, submit, h('button', { type: 'button', onclick: close }, 'Back'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    if (await onSubmit(text.value.trim())) close();
    submit.disabled = false;
  });
  return form;
}

/** Photos from the camera or the files: each is downscaled (photos.js) as it is chosen and
 *  shown as a thumbnail with a remove button; `photos` holds `{dataUrl, ...}` to send.
 *  `submit` waits while photos are being read; `err` tells of one that could not be. */
function photoPicker(id, submit, err) {
  const photos = [];
  const files = h('input', { type: 'file', id, name: 'photos', accept: 'image/*', capture: 'environment', multiple: true });
  const thumbs = h('div', { class: 'thumbs', id: `${id}-thumbs`, 'aria-live': 'polite' });
  const draw = () => fill(thumbs, photos.map((p, i) => h('figure', {},
    h('img', { src: p.dataUrl, alt: `Photo ${i + 1} to send` }),
    h('button', { type: 'button', 'aria-label': `Remove photo ${i + 1}`, onclick: () => { photos.splice(i, 1); draw(); } }, '✕'))));
  files.addEventListener('change', async () => {
    submit.disabled = true;
    err.textContent = '';
    for (const f of files.files) {
      try { photos.push(await downscale(f)); } catch { err.textContent = `Could not read ${f.name}.`; }
    }
    files.value = '';
    draw();
    submit.disabled = false;
  });
  return { photos, files, thumbs };
}

const forms = {
  revise(t, close) {
    return textForm({ title: 'Ask for a revision', id: 'f-revise', label: 'What should change?', hint: 'The same member works on it again.', button: 'Ask for a revision' },
      (reason) => send(t.ref, { status: 'revision_requested', reason }, 'Revision'), close);
  },
  estimate(t, close) {
    const minutes = h('input', { type: 'number', id: 'f-estimate', name: 'estimate', min: 1, max: 10080, step: 1, inputmode: 'numeric', required: true });
    const err = h('p', { role: 'alert', class: 'bad' });
    const submit = h('button', { type: 'submit', class: 'primary', id: 'f-claim' }, 'Claim it');
    const form = h('form', { class: 'card' },
      h('fieldset', {}, h('legend', {}, 'Claim with a time estimate'),
        h('label', { for: 'f-estimate' }, 'About how many minutes will it take?', h('span', { class: 'hint' }, 'The requestor sees it; a long estimate also keeps the claim from timing out.')), minutes,
        err, h('div', { class: 'row' }, submit, h('button', { type: 'button', onclick: close }, 'Back'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const n = Number.parseInt(minutes.value, 10);
      if (!(n >= 1 && n <= 10080)) { err.textContent = 'Between 1 minute and 7 days (10080 minutes).'; return; }
      submit.disabled = true;
      if (await send(t.ref, { status: 'claimed', estimate: `PT${n}M` }, 'Claim')) close();
      submit.disabled = false;
    });
    return form;
  },
  ask(t, close) {
    return textForm({ title: 'Ask the requestor', id: 'f-question', label: 'Your question', button: 'Send question' },
      (q) => send(t.ref, { status: 'needs_input', message: q }, 'Question'), close);
  },
  fail(t, close) {
    return textForm({ title: "Can't do it", id: 'f-reason', label: 'Why not?', hint: 'The requestor sees this.', button: 'Mark as failed', danger: true },
      (reason) => send(t.ref, { status: 'failed', message: reason, reason }, 'Fail'), close);
  },
  reply(t, close) {
    return textForm({ title: ASKING.includes(t.status) ? 'Answer the question' : 'Send a message', id: 'f-reply', label: 'Your answer', button: 'Send' },
      (text) => send(t.ref, { mess: [{ reply: { content: [text] } }] }, 'Reply'), close);
  },
  cancel(t, close) {
    return textForm({ title: 'Cancel this request', id: 'f-cancel', label: 'Reason (optional)', button: 'Yes, cancel it', required: false, danger: true },
      (reason) => send(t.ref, reason ? { status: 'cancelled', message: reason } : { status: 'cancelled' }, 'Cancel'), close);
  },
  complete(t, close) {
    let place = null;
    const text = h('textarea', { id: 'f-answer', name: 'answer' });
    const where = h('p', { id: 'f-where', class: 'muted', 'aria-live': 'polite' }, 'No location added.');
    const locBtn = h('button', { type: 'button', id: 'f-locate' }, 'Add my location');
    const err = h('p', { role: 'alert', class: 'bad' });
    const submit = h('button', { type: 'submit', class: 'primary', id: 'f-send' }, 'Send and complete');
    const { photos, files, thumbs } = photoPicker('f-photos', submit, err);
    locBtn.addEventListener('click', async () => {
      where.textContent = 'Finding your location…';
      try {
        place = await locate();
        where.textContent = `Location: ${place.lat.toFixed(5)}, ${place.lng.toFixed(5)} (±${place.accuracy} m)`;
      } catch (ex) { where.textContent = ex.message; }
    });
    const form = h('form', { class: 'card' },
      h('fieldset', {}, h('legend', {}, 'Complete'),
        h('label', { for: 'f-answer' }, 'Your answer'), text,
        h('label', { for: 'f-photos' }, 'Photos', h('span', { class: 'hint' }, 'Take a picture or choose some: they are made smaller before sending.')), files, thumbs,
        h('div', { class: 'row' }, locBtn), where, err,
        h('div', { class: 'row' }, submit, h('button', { type: 'button', onclick: close }, 'Back'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const content = [];
      if (text.value.trim()) content.push(text.value.trim());
      for (const p of photos) content.push({ image: p.dataUrl });
      if (place) content.push(place);
      if (content.length === 0) { err.textContent = 'Write an answer, add a photo or a location.'; return; }
      submit.disabled = true;
      if (await send(t.ref, { status: 'completed', mess: [{ response: { content } }] }, 'Complete')) close();
      submit.disabled = false;
    });
    return form;
  },
};

// ---- Requestor: a new request ----------------------------------------------------------

function newScreen() {
  document.title = 'Ask · MESS';
  const intent = h('textarea', { id: 'n-intent', name: 'intent', required: true, maxlength: 8192 });
  const context = h('textarea', { id: 'n-context', name: 'context' });
  const priority = h('select', { id: 'n-priority', name: 'priority' },
    ['normal', 'elevated', 'urgent', 'background'].map((p) => h('option', { value: p }, p)));
  const needed = h('input', { type: 'datetime-local', id: 'n-needed', name: 'needed_by' });
  const err = h('p', { role: 'alert', class: 'bad' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Post request');
  const { photos, files, thumbs } = photoPicker('n-photos', submit, err);
  const key = uuid(); // one key per form: a double tap or a retry posts once
  const form = h('form', { class: 'card' },
    h('label', { for: 'n-intent' }, 'What do you need?'), intent,
    h('label', { for: 'n-context' }, 'Details', h('span', { class: 'hint' }, 'One per line (optional)')), context,
    h('label', { for: 'n-photos' }, 'Photos (optional)', h('span', { class: 'hint' }, 'Show what you mean: they are made smaller before sending.')), files, thumbs,
    h('label', { for: 'n-priority' }, 'Priority'), priority,
    h('label', { for: 'n-needed' }, 'Needed by (optional)'), needed,
    err, h('div', { class: 'row' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!intent.value.trim()) { err.textContent = 'Say what you need.'; return; }
    const body = { intent: intent.value.trim(), priority: priority.value };
    // Photos travel as content items with a `data:` URI, as on completion.
    const ctx = context.value.split('\n').map((l) => l.trim()).filter(Boolean);
    for (const p of photos) ctx.push({ image: p.dataUrl });
    if (ctx.length) body.context = ctx;
    if (needed.value) body.needed_by = new Date(needed.value).toISOString();
    submit.disabled = true;
    try {
      const res = await api('/requests', { method: 'POST', body, idem: key });
      toast('Request posted');
      go(`#r/${enc(res.ref)}`);
    } catch (ex) {
      err.textContent = ex instanceof HttpError ? ex.message : 'No connection: try again when online (it will not be posted twice).';
    } finally {
      submit.disabled = false;
    }
  });
  fill($('#main'), h('h2', {}, 'Ask for something'), form);
}

// ---- Me ----------------------------------------------------------------------------------

const CHANNEL_TEXT = { ntfy: 'ntfy', webhook: 'Webhook', slack: 'Slack', google_chat: 'Google Chat' };

/** What this member's own GET shows of a channel (URLs, topics and secrets only as "set"). */
function channelLabel(c) {
  if (c.keep !== undefined) {
    const shown = c.shown || {};
    if (shown.type === 'ntfy') return `ntfy topic on ${shown.server || 'https://ntfy.sh'}`;
    return `${CHANNEL_TEXT[shown.type] || shown.type} URL${shown.secret ? ', signed with a secret' : ''}`;
  }
  if (c.type === 'ntfy') return `ntfy topic ${c.topic} on ${c.server || 'https://ntfy.sh'} (new)`;
  return `${CHANNEL_TEXT[c.type] || c.type} ${c.url || c.webhook_url}${c.secret ? ', signed' : ''} (new)`;
}

function signOut() {
  if (feed) feed.stop();
  feed = null;
  clearSession();
  threads.clear();
  detailed.clear();
  me = null;
  $('#tabs').hidden = true;
  $('#conn').hidden = true;
  go('#join');
}

/** A button that asks once more ("Sure? ...") before it does `fn`. */
function confirmButton(attrs, label, sure, fn) {
  const b = h('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', async () => {
    if (!b.dataset.sure) {
      b.dataset.sure = '1';
      b.textContent = sure;
      return;
    }
    b.disabled = true;
    try { await fn(); } finally { b.disabled = false; }
  });
  return b;
}

function meScreen() {
  document.title = 'Me · MESS';
  const main = $('#main');
  const body = h('div', { id: 'profile' }, h('p', { class: 'muted' }, 'Loading your profile…'));
  const out = confirmButton({ class: 'danger', id: 'signout' }, 'Sign out of this device',
    'Sure? Without your saved key you cannot come back', signOut);
  fill(main, h('h2', {}, me.display_name || me.id), body,
    h('h3', {}, 'Your other devices'),
    addDevice(),
    h('h3', {}, 'This device'),
    h('div', { class: 'row' }, out));
  const mePath = `/executors/${enc(me.id)}`;
  Promise.all([api(mePath), api('/capabilities').catch(() => ({ capabilities: [] }))])
    .then(([res, cat]) => { if (view && view.name === 'me') profileForm(body, res.executor, cat.capabilities || []); })
    .catch((err) => fill(body, h('p', { role: 'alert' }, err instanceof HttpError ? err.message : 'Could not load your profile (offline?).')));
  view = { name: 'me' };
}

function profileForm(root, profile, catalog) {
  const mePath = `/executors/${enc(me.id)}`;
  const prefs = profile.preferences || {};
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  // Stored channels are kept as {keep: N} (the server keeps them unchanged); new ones are sent whole.
  let channels = (profile.notifications || []).map((c, i) => ({ keep: i, shown: c }));
  let channelsEdited = false;

  const name = h('input', { type: 'text', id: 'p-name', name: 'display_name', autocomplete: 'name', maxlength: 256, required: true, value: profile.display_name || '' });
  const mine = profile.capabilities || [];
  let capsField;
  let readCaps;
  const ids = catalog.map((c) => c.id).filter((id) => typeof id === 'string');
  if (ids.length) {
    const extra = mine.filter((c) => !ids.includes(c));
    const boxes = [...ids, ...extra].map((id, i) => {
      const entry = catalog.find((c) => c.id === id) || {};
      const box = h('input', { type: 'checkbox', id: `p-cap-${i}`, name: 'capability', value: id, checked: mine.includes(id) });
      return h('label', { class: 'check', for: `p-cap-${i}` }, box, h('span', {}, id, entry.description ? h('span', { class: 'hint' }, entry.description) : null));
    });
    capsField = h('fieldset', { id: 'p-caps' }, h('legend', {}, 'What you can do'), boxes);
    readCaps = () => [...capsField.querySelectorAll('input[name=capability]:checked')].map((b) => b.value);
  } else {
    const input = h('input', { type: 'text', id: 'p-caps', name: 'capabilities', autocapitalize: 'none', spellcheck: 'false', value: mine.join(', ') });
    capsField = [h('label', { for: 'p-caps' }, 'What you can do', h('span', { class: 'hint' }, 'Capabilities, separated by commas')), input];
    readCaps = () => input.value.split(',').map((c) => c.trim()).filter(Boolean);
  }

  // Channels.
  const list = h('ul', { class: 'list', id: 'p-channels' });
  const drawChannels = () => fill(list, channels.length ? channels.map((c, i) => h('li', { class: 'card chan', dataset: { kind: c.keep !== undefined ? c.shown.type : c.type } },
    h('span', {}, channelLabel(c)),
    h('button', { type: 'button', class: 'danger', 'aria-label': `Remove ${channelLabel(c)}`, onclick: () => { channels.splice(i, 1); channelsEdited = true; drawChannels(); } }, 'Remove')))
    : h('li', { class: 'empty' }, 'No channels: you are not notified.'));
  drawChannels();
  const kind = h('select', { id: 'p-chan-type', name: 'channel_type' },
    h('option', { value: 'ntfy' }, 'ntfy (phone app)'), h('option', { value: 'webhook' }, 'Webhook'),
    h('option', { value: 'slack' }, 'Slack'), h('option', { value: 'google_chat' }, 'Google Chat'));
  const topic = h('input', { type: 'text', id: 'p-chan-topic', name: 'topic', autocapitalize: 'none', spellcheck: 'false' });
  const server = h('input', { type: 'text', id: 'p-chan-server', name: 'server', autocapitalize: 'none', spellcheck: 'false', placeholder: 'https://ntfy.sh' });
  const url = h('input', { type: 'text', id: 'p-chan-url', name: 'url', autocapitalize: 'none', spellcheck: 'false', inputmode: 'url' });
  const secret = h('input', { type: 'password', id: 'p-chan-secret', name: 'secret', autocomplete: 'off' });
  const ntfyBox = h('div', {}, h('label', { for: 'p-chan-topic' }, 'Topic'), topic,
    h('label', { for: 'p-chan-server' }, 'Server', h('span', { class: 'hint' }, 'Leave empty for ntfy.sh')), server);
  const secretBox = h('div', {}, h('label', { for: 'p-chan-secret' }, 'Secret (optional)', h('span', { class: 'hint' }, 'Signs each call (X-Mess-Signature)')), secret);
  const urlBox = h('div', { hidden: true }, h('label', { for: 'p-chan-url' }, 'URL'), url, secretBox);
  const showKind = () => {
    ntfyBox.hidden = kind.value !== 'ntfy';
    urlBox.hidden = kind.value === 'ntfy';
    secretBox.hidden = kind.value !== 'webhook';
  };
  kind.addEventListener('change', showKind);
  const chanErr = h('p', { class: 'bad', role: 'alert' });
  const add = h('button', { type: 'button', id: 'p-chan-add' }, 'Add channel');
  add.addEventListener('click', () => {
    chanErr.textContent = '';
    let c;
    if (kind.value === 'ntfy') {
      if (!topic.value.trim()) { chanErr.textContent = 'Name the ntfy topic.'; return; }
      c = { type: 'ntfy', topic: topic.value.trim() };
      if (server.value.trim()) c.server = server.value.trim();
    } else {
      if (!/^https?:\/\//.test(url.value.trim())) { chanErr.textContent = 'The URL starts with https:// (or http://).'; return; }
      c = kind.value === 'webhook' ? { type: 'webhook', url: url.value.trim() } : { type: kind.value, webhook_url: url.value.trim() };
      if (kind.value === 'webhook' && secret.value) c.secret = secret.value;
    }
    channels.push(c);
    channelsEdited = true;
    topic.value = ''; server.value = ''; url.value = ''; secret.value = '';
    drawChannels();
  });

  // Quiet hours and minimum priority.
  const q = prefs.quiet_hours || {};
  const quiet = h('input', { type: 'checkbox', id: 'p-quiet', name: 'quiet', checked: Boolean(prefs.quiet_hours && q.enabled !== false) });
  const qStart = h('input', { type: 'time', id: 'p-quiet-start', name: 'quiet_start', value: q.start || '22:00' });
  const qEnd = h('input', { type: 'time', id: 'p-quiet-end', name: 'quiet_end', value: q.end || '07:00' });
  const minPrio = h('select', { id: 'p-minprio', name: 'min_priority' },
    [['background', 'Everything'], ['normal', 'Normal and above'], ['elevated', 'Elevated and urgent'], ['urgent', 'Urgent only']]
      .map(([v, l]) => h('option', { value: v, selected: (prefs.min_priority || 'background') === v }, l)));

  const err = h('p', { class: 'bad', role: 'alert' });
  const save = h('button', { type: 'submit', class: 'primary', id: 'p-save' }, 'Save');
  const form = h('form', { class: 'card', id: 'p-form' },
    h('label', { for: 'p-name' }, 'Your name'), name,
    capsField,
    h('fieldset', {}, h('legend', {}, 'Notifications'),
      list,
      h('details', {}, h('summary', {}, 'Add a channel'),
        h('label', { for: 'p-chan-type' }, 'Kind'), kind, ntfyBox, urlBox, chanErr, h('div', { class: 'row' }, add)),
      h('label', { for: 'p-minprio' }, 'Notify me about'), minPrio,
      h('label', { class: 'check', for: 'p-quiet' }, quiet, 'Quiet hours (urgent requests still come)'),
      h('div', { class: 'times' },
        h('label', { for: 'p-quiet-start' }, 'From'), qStart,
        h('label', { for: 'p-quiet-end' }, 'To'), qEnd),
      h('p', { class: 'hint', id: 'p-tz' }, `In your time zone: ${tz}`)),
    err, h('div', { class: 'row' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const body = {
      display_name: name.value.trim(),
      capabilities: readCaps(),
      preferences: {
        ...prefs,
        min_priority: minPrio.value,
        timezone: tz,
        quiet_hours: { enabled: quiet.checked, start: qStart.value || '22:00', end: qEnd.value || '07:00' },
      },
    };
    // Untouched channels are not sent at all; an edited list keeps the others by position.
    if (channelsEdited) body.notifications = channels.map((c) => (c.keep !== undefined ? { keep: c.keep } : c));
    save.disabled = true;
    try {
      await api(mePath, { method: 'PATCH', body, idem: uuid() });
      const res = await api(mePath);
      me.display_name = res.executor.display_name;
      me.capabilities = res.executor.capabilities || [];
      const s = session();
      if (s) saveSession({ ...s, display_name: me.display_name, capabilities: me.capabilities });
      toast('Profile saved');
      $('#main h2').textContent = me.display_name || me.id;
      profileForm(root, res.executor, catalog);
      refresh();
    } catch (ex) {
      err.textContent = ex instanceof HttpError ? ex.message : 'No connection: try again when online.';
    } finally {
      save.disabled = false;
    }
  });

  // Send me a test.
  const results = h('ul', { class: 'list', id: 'p-test-results', 'aria-live': 'polite' });
  const test = h('button', { type: 'button', id: 'p-test' }, 'Send me a test');
  test.addEventListener('click', async () => {
    test.disabled = true;
    fill(results, h('li', { class: 'muted' }, 'Sending…'));
    try {
      const res = await api(`${mePath}/test-notification`, { method: 'POST', body: {}, idem: uuid() });
      const items = res.results || [];
      fill(results, items.length ? items.map((r, i) => h('li', { class: `result ${r.ok ? 'ok' : 'bad'}`, dataset: { channel: r.channel, ok: String(r.ok) } },
        `${i + 1}. ${CHANNEL_TEXT[r.channel] || r.channel}: `,
        r.ok ? `delivered${r.http_status ? ` (HTTP ${r.http_status})` : ''}` : `failed: ${r.error || `HTTP ${r.http_status}`}`))
        : h('li', { class: 'muted' }, 'You have no channels to test.'));
    } catch (ex) {
      fill(results, h('li', { class: 'bad' }, ex instanceof HttpError ? ex.message : 'No connection.'));
    } finally {
      test.disabled = false;
    }
  });

  // Rotate the key, leave.
  const rotate = confirmButton({ id: 'p-rotate' }, 'Get a new key', 'Sure? The old key stops working everywhere', async () => {
    try {
      const res = await api(`${mePath}/rotate-key`, { method: 'POST', body: {}, idem: uuid() });
      const s = { ...session(), api_key: res.api_key };
      saveSession(s);
      if (feed) feed.stop();
      feed = null;
      signedIn(s);
      keyScreen(s, { heading: 'Your new key', next: '#me', stored: true });
    } catch (ex) {
      toast(ex instanceof HttpError ? ex.message : 'No connection: the key was not changed.', true);
    }
  });
  const leave = confirmButton({ class: 'danger', id: 'p-leave' }, 'Leave the exchange',
    'Sure? Your membership and key are deleted', async () => {
      try {
        await api(mePath, { method: 'DELETE', idem: uuid() });
        toast('You left the exchange');
        signOut();
      } catch (ex) {
        toast(ex instanceof HttpError ? ex.message : 'No connection: you are still a member.', true);
      }
    });

  fill(root,
    h('div', { class: 'card' }, h('dl', { class: 'facts' },
      h('dt', {}, 'Member id'), h('dd', {}, me.id),
      h('dt', {}, 'Exchange'), h('dd', {}, me.exchange))),
    form,
    h('h3', {}, 'Test your notifications'),
    h('div', { class: 'card' },
      h('p', { class: 'muted' }, 'Sends one test to each saved channel and shows how each went.'),
      h('div', { class: 'row' }, test), results),
    h('h3', {}, 'Key and membership'),
    h('div', { class: 'row' }, rotate, leave));
  showKind();
}

// ---- The offline queue -----------------------------------------------------------------

function renderQueue(items) {
  const el = $('#queue');
  el.hidden = items.length === 0;
  if (!items.length) { el.replaceChildren(); return; }
  fill(el, h('strong', {}, `${items.length} action${items.length > 1 ? 's' : ''} waiting to be sent`),
    ' (they go out when the connection is back)',
    h('ul', {}, items.map((i) => h('li', {}, i.label))));
}

boot();
