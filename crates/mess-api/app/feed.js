// The change feed (GET .../events) read with fetch streaming, since EventSource cannot send
// the Bearer header. SSE is parsed by hand; a dropped stream reconnects with Last-Event-ID
// (with backoff), a position the server no longer keeps (410) reloads the list first.

import { prefix, session } from './api.js';

const IDLE_MS = 45000; // the server sends a comment every 15 s

export class Feed {
  /**
   * `onEvent({id, type, data})` for each event; `onState('live' | 'reconnecting' |
   * 'offline' | 'unauthorized')`; `reset()` lists again and answers the new head position.
   */
  constructor({ onEvent, onState, reset }) {
    Object.assign(this, { onEvent, onState, reset });
    this.last = null;
    this.stopped = true;
    this.ctrl = null;
    this.wake = null;
    addEventListener('online', () => this.kick());
    addEventListener('offline', () => {
      this.onState('offline');
      if (this.ctrl) this.ctrl.abort();
    });
  }

  start(pos) {
    this.last = pos ?? null;
    if (!this.stopped) return;
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.ctrl) this.ctrl.abort();
    this.kick();
  }

  /** Reconnects now instead of waiting for the backoff. */
  kick() { if (this.wake) this.wake(); }

  async loop() {
    let delay = 1000;
    while (!this.stopped) {
      const ctrl = new AbortController();
      this.ctrl = ctrl;
      let idle;
      const watchdog = () => { clearTimeout(idle); idle = setTimeout(() => ctrl.abort(), IDLE_MS); };
      try {
        const s = session();
        if (!s) return;
        const headers = { Authorization: `Bearer ${s.api_key}`, Accept: 'text/event-stream' };
        if (this.last !== null) headers['Last-Event-ID'] = String(this.last);
        watchdog();
        const res = await fetch(`${prefix()}/events`, { headers, signal: ctrl.signal, cache: 'no-store', credentials: 'omit' });
        if (res.status === 410) {
          this.last = await this.reset();
          continue;
        }
        if (res.status === 401 || res.status === 403) {
          this.onState('unauthorized');
          this.stopped = true;
          return;
        }
        if (!res.ok || !res.body) throw new Error(`feed answered ${res.status}`);
        this.onState('live');
        delay = 1000;
        await this.read(res.body, watchdog);
      } catch {
        // a network error or the watchdog: reconnect below
      } finally {
        clearTimeout(idle);
      }
      if (this.stopped) return;
      this.onState(navigator.onLine === false ? 'offline' : 'reconnecting');
      await new Promise((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wake = () => { clearTimeout(t); resolve(); };
      });
      this.wake = null;
      delay = Math.min(delay * 2, 15000);
    }
  }

  async read(body, watchdog) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      watchdog();
      buf += value;
      buf = buf.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end + 2);
        this.frame(frame);
      }
    }
  }

  frame(text) {
    let id = null;
    let type = 'message';
    const data = [];
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    if (id !== null) this.last = id;
    if (data.length === 0) return;
    let parsed;
    try { parsed = JSON.parse(data.join('\n')); } catch { return; }
    this.onEvent({ id, type, data: parsed });
  }
}
