// Small DOM helpers: elements are built with text nodes, never from HTML strings, so
// nothing a member writes can become markup.

/** `h('button', {class: 'primary', onclick: fn}, 'Claim')`: an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'hidden') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

let toastTimer;
/** A short message at the bottom of the screen (announced to screen readers). */
export function toast(text, bad = false) {
  const el = $('#toast');
  el.textContent = text;
  el.className = bad ? 'toast bad' : 'toast';
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, bad ? 6000 : 3500);
}

/** "in 2 h 5 min", "3 min ago" for a time, relative to now. */
export function relative(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const diff = t - Date.now();
  const span = duration(Math.abs(diff));
  return diff >= 0 ? `in ${span}` : `${span} ago`;
}

export function duration(ms) {
  const min = Math.round(ms / 60000);
  if (min < 1) return 'under a minute';
  if (min < 60) return `${min} min`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours} h ${min % 60} min`;
  return `${Math.floor(hours / 24)} days`;
}

/** The `needed_by` countdown: an element that `tick()` keeps current. */
export function due(iso) {
  if (!iso) return null;
  const el = h('span', { class: 'due', dataset: { due: iso } });
  setDue(el);
  return el;
}

function setDue(el) {
  const t = Date.parse(el.dataset.due);
  if (Number.isNaN(t)) { el.textContent = `needed by ${el.dataset.due}`; return; }
  const diff = t - Date.now();
  el.textContent = diff >= 0 ? `due in ${duration(diff)}` : `overdue by ${duration(-diff)}`;
  el.classList.toggle('due-late', diff < 0);
  el.title = new Date(t).toLocaleString();
}

/** Refreshes every countdown on the screen. */
export function tick() {
  document.querySelectorAll('[data-due]').forEach(setDue);
}

export function when(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '' : new Date(t).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}
