// The REST API as the app uses it: the member's session (kept in localStorage, sent only as
// the Bearer header, never in a URL), JSON requests with an Idempotency-Key on every
// change, and the queue of actions taken offline.

const SESSION = 'mess.session';
const QUEUE = 'mess.queue';

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function session() {
  try { return JSON.parse(localStorage.getItem(SESSION)); } catch { return null; }
}

export function saveSession(s) { localStorage.setItem(SESSION, JSON.stringify(s)); }

export function clearSession() {
  localStorage.removeItem(SESSION);
  localStorage.removeItem(QUEUE);
}

/** A random UUID; `crypto.randomUUID` exists only on secure origins. */
export function uuid() {
  if (globalThis.crypto && crypto.randomUUID && globalThis.isSecureContext) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((n) => n.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export const enc = encodeURIComponent;

/** The exchange's API prefix for `exchange` (default: the session's). */
export function prefix(exchange) {
  const x = exchange || (session() || {}).exchange;
  return `/api/v1/exchanges/${enc(x)}`;
}

/**
 * A JSON request under the exchange's prefix (or an absolute path starting with `/`
 * and `abs: true`). Throws `HttpError` for an error answer and `TypeError` when the network
 * is down.
 */
export async function api(path, { method = 'GET', body, headers = {}, idem, abs = false, exchange, auth = true } = {}) {
  const s = session();
  const h = { Accept: 'application/json', ...headers };
  if (auth && s && s.api_key) h.Authorization = `Bearer ${s.api_key}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (idem) h['Idempotency-Key'] = idem;
  const res = await fetch(abs ? path : prefix(exchange) + path, {
    method, headers: h, cache: 'no-store', credentials: 'omit',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if ((res.headers.get('content-type') || '').includes('json')) data = await res.json().catch(() => null);
  if (!res.ok) throw new HttpError(res.status, data);
  return data;
}

// ---- The offline queue ----------------------------------------------------------------
// An action is {id, method, path, body, label}: `id` is its Idempotency-Key, so sending it
// again after a lost answer never does it twice.

const listeners = new Set();
export function onQueue(fn) { listeners.add(fn); }
function changed() { for (const fn of listeners) fn(queued()); }

export function queued() {
  try { return JSON.parse(localStorage.getItem(QUEUE)) || []; } catch { return []; }
}

function store(items) {
  localStorage.setItem(QUEUE, JSON.stringify(items));
  changed();
}

function send(item) {
  return api(item.path, { method: item.method, body: item.body, idem: item.id });
}

const offline = (err) => err instanceof TypeError || (err instanceof HttpError && (err.status === 502 || err.status === 503 || err.status === 504));

/**
 * Sends a change now, or queues it when the network is down (or earlier actions still
 * wait: order is kept). Answers `{sent: true, data}` or `{sent: false}`; throws `HttpError`
 * when the exchange refuses it.
 */
export async function act(method, path, body, label) {
  const item = { id: uuid(), method, path, body, label, at: new Date().toISOString() };
  if (queued().length > 0 || navigator.onLine === false) {
    store([...queued(), item]);
    flush();
    return { sent: false };
  }
  try {
    return { sent: true, data: await send(item) };
  } catch (err) {
    if (!offline(err)) throw err;
    store([...queued(), item]);
    return { sent: false };
  }
}

let flushing = null;
/** Sends the queued actions in order; stops at the first network failure. */
export function flush() {
  // `.finally` runs after the assignment, even when the queue is empty.
  if (!flushing) flushing = drain().finally(() => { flushing = null; });
  return flushing;
}

async function drain() {
  for (;;) {
    const [item] = queued();
    if (!item) return;
    try {
      const data = await send(item);
      store(queued().filter((q) => q.id !== item.id));
      for (const fn of sentListeners) fn(item, data);
    } catch (err) {
      if (offline(err)) return;
      store(queued().filter((q) => q.id !== item.id));
      for (const fn of refusedListeners) fn(item, err);
    }
  }
}

const sentListeners = new Set();
const refusedListeners = new Set();
export function onSent(fn) { sentListeners.add(fn); }
export function onRefused(fn) { refusedListeners.add(fn); }

/** An attachment link (`/api/v1/...`), fetched with the Bearer header, as an object URL. */
const blobs = new Map();
export async function objectUrl(path) {
  if (blobs.has(path)) return blobs.get(path);
  const s = session();
  const res = await fetch(path, { headers: { Authorization: `Bearer ${s.api_key}` }, credentials: 'omit' });
  if (!res.ok) throw new HttpError(res.status, null);
  const url = URL.createObjectURL(await res.blob());
  blobs.set(path, url);
  return url;
}
