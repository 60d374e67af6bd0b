// Adding a device by QR code, loaded by app.js only when it is used (Me, "Add another
// device"; the join screen's "Scan a QR code"), so the first load does not carry it.
//
// The code is not a URL (a key never travels in one): `MESS-DEVICE/1 <base URL> <exchange>
// <member> <key>`, space separated. Anyone who sees it can act as the member.

import { h, fill } from './dom.js';

const PREFIX = 'MESS-DEVICE/1';

/** The device code of a session, for this page's exchange address. */
export function deviceCode(s) {
  return [PREFIX, location.origin, s.exchange, s.executor_id, s.api_key].join(' ');
}

/** `{base, exchange, member, apiKey}` of a device code, or null for anything else. */
export function parseDeviceCode(text) {
  const parts = String(text || '').trim().split(/\s+/);
  if (parts.length !== 5 || parts[0] !== PREFIX) return null;
  const [, url, exchange, member, apiKey] = parts;
  const base = url.replace(/\/+$/, '');
  if (!/^https?:\/\/[^/?#]+$/.test(base)) return null;
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(exchange) || !apiKey.startsWith(`mess_${exchange}_`) || !member) return null;
  return { base, exchange, member, apiKey };
}

/**
 * Opens the back camera in `box` until the browser's BarcodeDetector sees a QR code: its
 * text, or null when cancelled (the Cancel button, or the `stop` handed to `onStop`, which
 * the app calls when the screen changes). Throws when the camera cannot be opened. The
 * camera is stopped either way.
 */
export async function scanQr(box, onStop) {
  const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  const video = h('video', { id: 'k-video', playsinline: true, muted: true, 'aria-label': 'What the camera sees' });
  video.muted = true;
  video.srcObject = stream;
  return new Promise((resolve) => {
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      for (const track of stream.getTracks()) track.stop();
      video.srcObject = null;
      box.hidden = true;
      box.replaceChildren();
      onStop(null);
      resolve(value);
    };
    onStop(() => finish(null));
    fill(box, h('p', { role: 'status' }, 'Point the camera at the code.'), video,
      h('div', { class: 'row' }, h('button', { type: 'button', id: 'k-scan-cancel', onclick: () => finish(null) }, 'Cancel')));
    box.hidden = false;
    video.play().catch(() => {});
    const look = async () => {
      if (done) return;
      try {
        if (video.readyState >= 2) {
          const hit = (await detector.detect(video)).find((b) => b && b.rawValue);
          if (hit) { finish(hit.rawValue); return; }
        }
      } catch { /* try the next frame */ }
      setTimeout(look, 200);
    };
    look();
  });
}

/** `text` as a QR code on a canvas: whole pixels per module, dark on white, with a quiet
 *  zone of 4 modules. The encoder (qrcode.mjs, 50 KB) is loaded only now. */
export async function qrCanvas(text) {
  const { qrcode } = await import('./qrcode.mjs');
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const modules = qr.getModuleCount();
  const n = modules + 8;
  const cell = Math.max(3, Math.floor(272 / n));
  const dpr = Math.max(1, Math.round(window.devicePixelRatio || 1));
  const m = cell * dpr;
  const canvas = h('canvas', { class: 'qr', role: 'img', 'aria-label': 'QR code that signs another device in as you', width: n * m, height: n * m });
  canvas.style.width = `${n * cell}px`; // CSSOM, not a style attribute: the policy allows it
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#000';
  for (let r = 0; r < modules; r += 1) {
    for (let c = 0; c < modules; c += 1) {
      if (qr.isDark(r, c)) ctx.fillRect((c + 4) * m, (r + 4) * m, m, m);
    }
  }
  return canvas;
}
