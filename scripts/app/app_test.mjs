// The executor's app, tested as a person uses it: Debian's Chromium (playwright-core) at a
// phone viewport against a running mess-exchange, with an agent on plain REST beside it.
//
//   node app_test.mjs BASE [REGISTRATION_TOKEN] [SCREENSHOT_DIR]
//
// Starts nothing itself (scripts/test-app.sh starts the binary). Prints one line per check
// and a last line `app: N passed, M failed`; exits 1 on any failure.

import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { deflateSync } from 'node:zlib';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';

const [BASE, TOKEN = '', SHOTS = ''] = process.argv.slice(2);
if (!BASE) {
  console.error('usage: node app_test.mjs BASE [REGISTRATION_TOKEN] [SCREENSHOT_DIR]');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const jsQRModule = require('jsqr');
const jsQR = jsQRModule.default || jsQRModule;
const { PNG } = require('pngjs');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) { passed += 1; console.log(`ok   ${name}`); } else { failed += 1; console.log(`FAIL ${name}${detail ? `: ${detail}` : ''}`); }
  return ok;
}
async function step(name, fn) {
  try { await fn(); } catch (err) { check(name, false, String(err && err.message || err).split('\n')[0]); }
}

// ---- REST, as an agent ------------------------------------------------------------------
async function rest(method, path, key, body, headers = {}) {
  const h = { ...headers };
  if (key) h.Authorization = `Bearer ${key}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json };
}

// ---- A test photo: a PNG larger than 1600 px, which the app must shrink ---------------
function crc32(buf) {
  let c;
  let crc = 0xffffffff;
  for (const b of buf) {
    c = (crc ^ b) & 0xff;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
function png(width, height) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const row = y * (width * 3 + 1);
    raw[row] = 0;
    for (let x = 0; x < width; x += 1) {
      const i = row + 1 + x * 3;
      raw[i] = (x * 255) / width; raw[i + 1] = (y * 255) / height; raw[i + 2] = ((x >> 6) + (y >> 6)) % 2 ? 200 : 60;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
/** [width, height] of a JPEG, from its SOF marker. */
function jpegSize(buf) {
  let i = 2;
  while (i < buf.length) {
    if (buf[i] !== 0xff) return null;
    const marker = buf[i + 1];
    const len = buf.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xc3) return [buf.readUInt16BE(i + 7), buf.readUInt16BE(i + 5)];
    i += 2 + len;
  }
  return null;
}

// ---- The run --------------------------------------------------------------------------
const health = (await rest('GET', '/health')).json;
const X = health.exchange_id;
const P = `/api/v1/exchanges/${X}`;
const reg = TOKEN ? { 'X-Registration-Token': TOKEN } : {};

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
    // A camera for "Scan a QR code": Chromium's own test pattern, allowed without a prompt.
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
});
const context = await browser.newContext({
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 1,
  isMobile: true,
  hasTouch: true,
  geolocation: { latitude: 52.52001, longitude: 13.40495, accuracy: 12 },
  permissions: ['geolocation'],
});
const page = await context.newPage();
const errors = [];
// Expected noise: the answers this test provokes on purpose, and requests cut by going offline.
const expected = /status of (401|409)|ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|ERR_NETWORK_IO_SUSPENDED/;
page.on('console', (m) => { if (m.type() === 'error' && !expected.test(m.text())) errors.push(`${m.text()} (${m.location().url})`); });
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
const sent = [];
page.on('request', (r) => {
  if (r.url().includes('/api/')) sent.push({ method: r.method(), url: r.url(), headers: r.headers() });
});

async function axe(name, pg = page) {
  await step(`axe ${name}`, async () => {
    await pg.evaluate(AXE);
    const res = await pg.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
    const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    check(`axe: no serious or critical violation on ${name}`, bad.length === 0,
      bad.map((v) => `${v.id} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')})`).join(', '));
  });
}
async function shot(name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}/${name}.png` });
}
/** Nothing wider than the phone (mobile Chromium widens innerWidth to the content, so the
 *  viewport's own 390 px is the measure). */
const fitsPhone = async (pg = page) => (await pg.evaluate(() => document.documentElement.scrollWidth)) <= 390;
const statusOf = async (ref) => (await rest('GET', `${P}/requests/${ref}`, agentKey)).json.thread;

let agentKey = null;
let key = null;
const ME = 'ada-lovelace';

// 0. Served securely: phones allow the camera, location and service workers only in a
// secure context (https, or localhost). http://127.0.0.1 is one, so no warning there; a page
// the browser does not count as secure (plain http off localhost: here isSecureContext is
// made false before any script runs, as the server only listens on 127.0.0.1) shows a
// banner saying so, which can be dismissed.
await step('secure context', async () => {
  await page.goto(`${BASE}/#join`);
  await page.waitForSelector('#j-name');
  check('http://127.0.0.1 is a secure context, with no https warning',
    await page.evaluate(() => window.isSecureContext === true) && !(await page.isVisible('#insecure')));
  const plain = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await plain.addInitScript(() => Object.defineProperty(window, 'isSecureContext', { get: () => false }));
  const p = await plain.newPage();
  p.on('console', (m) => { if (m.type() === 'error' && !expected.test(m.text())) errors.push(`plain: ${m.text()}`); });
  p.on('pageerror', (e) => errors.push(`plain pageerror: ${e.message}`));
  const dialogs = [];
  p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await p.goto(`${BASE}/#join`);
  await p.waitForSelector('#j-name');
  check('the page sees a non-secure context', await p.evaluate(() => window.isSecureContext === false));
  const shown = await p.waitForSelector('#insecure', { state: 'visible', timeout: 5000 }).then(() => true, () => false);
  const text = shown ? (await p.textContent('#insecure')).replace(/\s+/g, ' ') : '';
  check('over plain http off localhost a banner says camera, location and offline need https, and what to do',
    shown && /camera/.test(text) && /location/.test(text) && /offline/.test(text) && /https:\/\//.test(text)
      && /admin/.test(text), text || 'no visible #insecure banner');
  check('it is a banner in the page, not an alert()', dialogs.length === 0, dialogs.join(' | '));
  await axe('the https warning', p);
  await p.click('#insecure-dismiss');
  check('the banner can be dismissed', !(await p.isVisible('#insecure')));
  await p.reload();
  await p.waitForSelector('#j-name');
  check('dismissed, it stays away for the session', !(await p.isVisible('#insecure')));
  await plain.close();
});

// 1. Joining: the invite link pre-fills the token; without it, a 401 shows the field.
await step('join', async () => {
  await page.goto(`${BASE}/#join?exchange=${X}&token=${encodeURIComponent(TOKEN)}`);
  await page.waitForSelector('#j-name');
  if (TOKEN) {
    check('invite link pre-fills the registration token', (await page.inputValue('#j-token')) === TOKEN
      && await page.isVisible('#j-token'));
  }
  await page.goto(`${BASE}/#join`);
  await page.waitForSelector('#j-name');
  await page.fill('#j-name', 'Ada Lovelace');
  check('member id follows the name', (await page.inputValue('#j-id')) === ME);
  await shot('join');
  await axe('join');
  if (TOKEN) {
    await page.click('button[type=submit]');
    await page.waitForSelector('#j-token', { state: 'visible' });
    check('a 401 from /register asks for the registration token', await page.isVisible('#j-token'));
    await page.fill('#j-token', TOKEN);
  }
  await page.click('button[type=submit]');
  await page.waitForSelector('#api-key');
  key = (await page.textContent('#api-key')).trim();
  check('the key is shown once, to be saved', key.startsWith(`mess_${X}_`));
  check('continue waits for "I have saved my key"', await page.isDisabled('text=Continue'));
  await axe('key');
  await page.check('#saved');
  await page.click('text=Continue');
  await page.waitForSelector('#inbox');
  const stored = await page.evaluate(() => localStorage.getItem('mess.session'));
  check('the key is kept in localStorage', stored && stored.includes(key));
  await page.waitForSelector('#conn[data-state=live]', { timeout: 10000 });
  check('the feed is live', true);
});

// 2. An agent posts; the request appears without a reload.
const ag = await rest('POST', `${P}/register`, null, { executor_id: 'agent', display_name: 'Agent' }, reg);
agentKey = ag.json && ag.json.api_key;
const bob = await rest('POST', `${P}/register`, null, { executor_id: 'bob', display_name: 'Bob', capabilities: ['photo:capture'] }, reg);
const bobKey = bob.json && bob.json.api_key;
check('agent and a second member register over REST', Boolean(agentKey && bobKey), JSON.stringify(ag.json));
const post = async (body) => (await rest('POST', `${P}/requests`, agentKey, body, { 'Idempotency-Key': crypto.randomUUID() })).json.ref;
let r1;
let r3;
await step('inbox live', async () => {
  await page.evaluate(() => { window.notReloaded = true; });
  r1 = await post({
    intent: 'Is the garage door closed?', context: ['Take a photo from the driveway'], priority: 'urgent',
    needed_by: new Date(Date.now() + 2 * 3600e3).toISOString(), requires: ['photo:capture'],
  });
  const r2 = await post({ intent: 'Drive to the shop', requires: ['car:drive'] });
  r3 = await post({ intent: 'Water the ferns', priority: 'elevated' });
  await page.waitForSelector(`#s-take + ul a[data-ref="${r1}"]`, { timeout: 10000 });
  await page.waitForSelector(`a[data-ref="${r3}"]`, { timeout: 10000 });
  check('a posted request appears in "You can take" live, without a reload', await page.evaluate(() => window.notReloaded === true));
  check('a request needing a capability I lack is not offered', (await page.$(`a[data-ref="${r2}"]`)) === null);
  const text = await page.textContent(`a[data-ref="${r1}"]`);
  check('the item shows priority and the needed_by countdown', /urgent/.test(text) && /due in 1 h 5\d min|due in 2 h 0 min/.test(text), text);
  await shot('inbox');
  await axe('inbox');
  // Someone else claims r3: it leaves "You can take" at once.
  const claim = await rest('PATCH', `${P}/requests/${r3}`, bobKey, { status: 'claimed' });
  check('bob claims r3 over REST', claim.status === 200, JSON.stringify(claim.json));
  await page.waitForSelector(`a[data-ref="${r3}"]`, { state: 'detached', timeout: 3000 });
  check('a request someone else claimed disappears from the inbox at once', true);
});

// 3. The request: claim, start, ask, see the answer live, complete with a photo and a location.
await step('request', async () => {
  await page.click(`a[data-ref="${r1}"]`);
  await page.waitForSelector('#act-claim');
  check('the request shows its intent and context', (await page.textContent('main')).includes('Take a photo from the driveway'));
  await axe('request');
  await page.click('#act-claim');
  await page.waitForSelector('#status[data-status=claimed]');
  let t = await statusOf(r1);
  check('claim: the agent sees it claimed by the member', t.status === 'claimed' && t.executor_id === ME, `${t.status} ${t.executor_id}`);
  await page.click('#act-start');
  await page.waitForSelector('#status[data-status=in_progress]');
  await page.click('#act-ask');
  await page.fill('#f-question', 'The front door or the side door?');
  await page.click('form button[type=submit]');
  await page.waitForSelector('#status[data-status=needs_input]');
  t = await statusOf(r1);
  check('ask: the agent sees the question', t.status === 'needs_input' && JSON.stringify(t.messages).includes('side door'));
  await rest('PATCH', `${P}/requests/${r1}`, agentKey, { mess: [{ reply: { content: ['The side door, please.'] } }] });
  await page.waitForSelector('.thread >> text=The side door, please.', { timeout: 5000 });
  check("the agent's reply arrives live in the thread", true);
  await page.click('#act-complete');
  await page.fill('#f-answer', 'Closed and locked.');
  await page.setInputFiles('#f-photos', { name: 'door.png', mimeType: 'image/png', buffer: png(2400, 1200) });
  await page.waitForSelector('.thumbs img');
  await page.click('#f-locate');
  await page.waitForSelector('#f-where >> text=Location: 52.52');
  await page.click('#f-send');
  await page.waitForSelector('#status[data-status=completed]');
  await page.waitForSelector('.thread img');
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await page.waitForFunction(() => [...document.querySelectorAll('.thread img')].every((i) => i.complete && i.naturalWidth > 0));
  await page.evaluate(() => {
    document.querySelector('#toast').hidden = true;
    document.querySelector('.thread img').scrollIntoView({ block: 'center' });
  });
  await shot('request');
  t = await statusOf(r1);
  const last = t.messages[t.messages.length - 1];
  const content = (last.mess.find((b) => b.response) || {}).response?.content || [];
  const image = content.find((c) => c && typeof c === 'object' && c.image);
  const loc = content.find((c) => c && c.type === 'location');
  check('complete: the agent sees status completed with the text', t.status === 'completed' && content.includes('Closed and locked.'), JSON.stringify(content).slice(0, 200));
  const m = image && /^data:image\/jpeg;base64,(.+)$/.exec(image.image);
  const size = m && jpegSize(Buffer.from(m[1], 'base64'));
  check('the photo arrives as a JPEG data: URI, downscaled to 1600 px', size && size[0] === 1600 && size[1] === 800, String(size));
  check('the location arrives as a v1.1 location item', loc && Math.abs(loc.lat - 52.52001) < 1e-4 && Math.abs(loc.lng - 13.40495) < 1e-4 && loc.accuracy > 0, JSON.stringify(loc));
  const att = await fetch(`${BASE}${P}/requests/${r1}/attachments/1`, { headers: { Authorization: `Bearer ${agentKey}` } });
  check('the agent fetches the photo as an attachment', att.status === 200 && (att.headers.get('content-type') || '').startsWith('image/jpeg'));
});

// 4. Offline: an action waits in a visible queue and goes out on reconnect.
await step('offline queue', async () => {
  const r4 = await post({ intent: 'Is the porch light on?' });
  await page.goto(`${BASE}/#inbox`);
  await page.waitForSelector(`a[data-ref="${r4}"]`, { timeout: 10000 });
  await page.click(`a[data-ref="${r4}"]`);
  await page.waitForSelector('#act-claim');
  await context.setOffline(true);
  await page.waitForSelector('#conn[data-state=offline]', { timeout: 5000 });
  check('the indicator says offline', true);
  await page.click('#act-claim');
  await page.waitForSelector('#queue:not([hidden])');
  check('the offline claim is shown in the queue', (await page.textContent('#queue')).includes('1 action'));
  check('nothing reached the exchange while offline', (await statusOf(r4)).status === 'pending');
  await context.setOffline(false);
  await page.waitForSelector('#queue', { state: 'hidden', timeout: 10000 });
  const t = await statusOf(r4);
  check('back online, the queued claim is sent once', t.status === 'claimed' && t.executor_id === ME, t.status);
  await page.waitForSelector('#conn[data-state=live]', { timeout: 15000 });
  check('the feed reconnects', true);
});

// 5. The service worker starts the app offline.
await step('offline start', async () => {
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.reload();
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 5000 });
  await context.setOffline(true);
  await page.reload();
  await page.waitForSelector('#tabs:not([hidden])', { timeout: 5000 });
  check('the service worker serves the app offline', (await page.textContent('h2')).length > 0);
  await context.setOffline(false);
  await page.waitForSelector('#conn[data-state=live]', { timeout: 15000 });
});

// 6. Requestor side: post with a photo, answer a question live, cancel.
await step('requestor', async () => {
  await page.goto(`${BASE}/#new`);
  await page.waitForSelector('#n-intent');
  await page.fill('#n-intent', 'Bring the mail in');
  await page.fill('#n-context', 'The green box by the gate');
  await page.selectOption('#n-priority', 'elevated');
  const picker = await page.$('#n-photos');
  check('the new request has a photo picker that opens the camera on phones',
    picker && (await picker.getAttribute('accept')) === 'image/*' && (await picker.getAttribute('capture')) === 'environment'
    && (await picker.getAttribute('multiple')) !== null);
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#n-photos')]);
  check('the file chooser takes several photos', chooser.isMultiple());
  await chooser.setFiles({ name: 'mailbox.png', mimeType: 'image/png', buffer: png(1200, 2000) });
  await page.waitForSelector('#n-photos-thumbs img');
  await page.waitForFunction(() => [...document.querySelectorAll('#n-photos-thumbs img')].every((i) => i.complete && i.naturalWidth > 0));
  await shot('new-request');
  await axe('new request with a photo');
  await page.click('form button[type=submit]');
  await page.waitForFunction(() => location.hash.startsWith('#r/'));
  const ref = decodeURIComponent((await page.evaluate(() => location.hash)).slice(3));
  await page.waitForSelector('#act-cancel');
  let t = await statusOf(ref);
  check('a request posted from the app', t.requestor_id === ME && t.priority === 'elevated');
  const asked = (t.messages[0].mess.find((b) => b.request) || {}).request || {};
  const ctx = asked.context || [];
  const photo = ctx.find((c) => c && typeof c === 'object' && c.image);
  const pm = photo && /^data:image\/jpeg;base64,(.+)$/.exec(photo.image);
  const psize = pm && jpegSize(Buffer.from(pm[1], 'base64'));
  check('the agent sees the text and the photo in the request block\'s context, a JPEG data: URI at most 1600 px',
    ctx[0] === 'The green box by the gate' && psize && psize[0] === 960 && psize[1] === 1600, `${JSON.stringify(ctx).slice(0, 120)} ${psize}`);
  await page.waitForSelector('ul.context img');
  await page.waitForFunction(() => [...document.querySelectorAll('ul.context img')].every((i) => i.complete && i.naturalWidth > 0));
  const shown = await page.$eval('ul.context img', (i) => [i.src.slice(0, 23), i.naturalWidth, i.naturalHeight, i.alt]);
  // The app reads threads with ?attachments=links and fetches each photo with the key.
  check('the photo renders in the request view (fetched through its attachment link)', shown[0].startsWith('blob:') && shown[1] === 960 && shown[2] === 1600 && shown[3], JSON.stringify(shown));
  await rest('PATCH', `${P}/requests/${ref}`, bobKey, { status: 'claimed' });
  await rest('PATCH', `${P}/requests/${ref}`, bobKey, { status: 'needs_input', message: 'The box by the gate?' });
  await page.waitForSelector('#act-reply', { timeout: 5000 });
  await page.waitForSelector('.thread >> text=The box by the gate?', { timeout: 5000 });
  check('the question arrives live', true);
  await page.click('#act-reply');
  await page.fill('#f-reply', 'Yes, that one.');
  await page.click('form button[type=submit]');
  await page.waitForSelector('.thread >> text=Yes, that one.');
  t = await statusOf(ref);
  const reply = t.messages.flatMap((m) => m.mess).find((b) => b.reply);
  check('the answer reaches the assignee as a reply block', reply && reply.reply.content[0] === 'Yes, that one.', JSON.stringify(reply));
  await page.click('#act-cancel');
  await page.click('form button[type=submit]');
  await page.waitForSelector('#status[data-status=cancelled]');
  check('the requestor cancels', (await statusOf(ref)).status === 'cancelled');
});

// 7. A second device signs in with a pasted key; two browsers race for one request.
await step('race', async () => {
  const context2 = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page2 = await context2.newPage();
  page2.on('console', (m) => { if (m.type() === 'error' && !expected.test(m.text())) errors.push(`page2: ${m.text()}`); });
  page2.on('pageerror', (e) => errors.push(`page2 pageerror: ${e.message}`));
  await page2.goto(`${BASE}/#join`);
  await page2.click('text=I have a key');
  await page2.fill('#k-id', 'bob');
  await page2.fill('#k-key', bobKey);
  await page2.click('form button[type=submit]');
  await page2.waitForSelector('#inbox');
  await page2.waitForSelector('#conn[data-state=live]', { timeout: 10000 });
  check('a second device signs in with a pasted key', true);
  await page.goto(`${BASE}/#inbox`);
  await page.waitForSelector('#inbox');
  const r5 = await post({ intent: 'Check the back gate', priority: 'urgent' });
  for (const p of [page, page2]) {
    await p.waitForSelector(`a[data-ref="${r5}"]`, { timeout: 10000 });
    await p.click(`a[data-ref="${r5}"]`);
    await p.waitForSelector('#act-claim');
  }
  // Both taps at once (a Playwright click waits for the other page's update to settle).
  const tap = () => document.querySelector('#act-claim').click();
  await Promise.all([page.evaluate(tap), page2.evaluate(tap)]);
  await Promise.all([page, page2].map((p) => p.waitForSelector('#status[data-status=claimed]', { timeout: 5000 })));
  const t = await statusOf(r5);
  check('two browsers race: exactly one wins', t.status === 'claimed' && (t.executor_id === ME || t.executor_id === 'bob'), `${t.status} ${t.executor_id}`);
  const [winner, loser] = t.executor_id === ME ? [page, page2] : [page2, page];
  await loser.waitForSelector('#status[data-status=claimed]', { timeout: 5000 });
  check('the other sees it taken, without reloading', (await loser.$('#act-claim')) === null
    && (await loser.textContent('.facts')).includes(t.executor_id));
  await winner.click('#act-fail');
  await winner.fill('#f-reason', 'The gate is padlocked.');
  await winner.click('form button[type=submit]');
  await winner.waitForSelector('#status[data-status=failed]');
  const f = await statusOf(r5);
  check('fail with a reason reaches the agent', f.status === 'failed' && JSON.stringify(f.messages).includes('The gate is padlocked.'));
  await context2.close();
});

// 8. Requestor asks for a revision; a claim with a time estimate.
await step('revision and estimate', async () => {
  const mine = (await rest('POST', `${P}/requests`, key, { intent: 'Photograph the meter' }, { 'Idempotency-Key': crypto.randomUUID() })).json.ref;
  await rest('PATCH', `${P}/requests/${mine}`, bobKey, { status: 'claimed' });
  const done = await rest('PATCH', `${P}/requests/${mine}`, bobKey, { status: 'completed', mess: [{ response: { content: ['Blurry photo'] } }] });
  check('bob completes the request ada posted', done.status === 200, JSON.stringify(done.json));
  await page.goto(`${BASE}/#r/${mine}`);
  await page.waitForSelector('#act-revise');
  await page.click('#act-revise');
  await page.fill('#f-revise', 'Sharper, please: I cannot read the digits.');
  await page.click('form button[type=submit]');
  await page.waitForSelector('#status[data-status=in_progress]');
  let t = await statusOf(mine);
  const last = t.messages[t.messages.length - 1].mess[0].status || {};
  check('revision: the thread is back in progress with the same assignee', t.status === 'in_progress' && t.executor_id === 'bob', `${t.status} ${t.executor_id}`);
  check('revision: the status block says revision_requested with the reason', last.code === 'revision_requested' && /digits/.test(last.reason), JSON.stringify(last));
  const r6 = await post({ intent: 'Read the gas meter' });
  await page.goto(`${BASE}/#r/${r6}`);
  await page.waitForSelector('#act-estimate');
  await page.click('#act-estimate');
  await page.fill('#f-estimate', '45');
  await page.click('#f-claim');
  await page.waitForSelector('#status[data-status=claimed]');
  t = await statusOf(r6);
  const claim = t.messages[t.messages.length - 1].mess[0].status || {};
  check('claim with an estimate: the status block carries estimate PT45M', t.executor_id === ME && claim.estimate === 'PT45M', JSON.stringify(claim));
  // The status chip can change from the feed before the PATCH answer fills the thread.
  const shown = await page.waitForSelector('.thread >> text=about 45 min', { timeout: 5000 }).then(() => true, () => false);
  check('the estimate shows in the thread', shown, await page.textContent('.thread'));
});

// A local listener in the role of ntfy and of webhooks: what the exchange sends is kept.
const heard = [];
const listener = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    heard.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
    res.writeHead(req.url === '/broken' ? 500 : 200).end();
  });
});
await new Promise((ok) => listener.listen(0, '127.0.0.1', ok));
const HOOK = `http://127.0.0.1:${listener.address().port}`;
const tests = () => heard.filter((r) => r.headers.title === 'Test notification from MESS' || r.body.includes('test_notification'));
const signedWith = (r, secret) => r.headers['x-mess-signature'] === `sha256=${createHmac('sha256', secret).update(r.body).digest('hex')}`;
// 9. The claim button of a notification: an offer to a member with an ntfy channel carries
// a signed link (`/a/{token}`, PUBLIC_URL is the test's exchange); the phone opens it: a
// confirm page that changes nothing, a button that claims, then "already used".
await step('claim link', async () => {
  const cara = await rest('POST', `${P}/register`, null, {
    executor_id: 'cara', display_name: 'Cara',
    notifications: [{ type: 'ntfy', server: HOOK, topic: 'cara-phone' }],
  }, reg);
  check('a member with an ntfy channel registers', cara.status === 201 || cara.status === 200, JSON.stringify(cara.json));
  const ref = await post({ intent: 'Feed the cat at noon', context: ['The food is under the sink'] });
  let actions = null;
  for (let i = 0; i < 100 && !actions; i += 1) {
    const offer = heard.find((r) => r.path === '/cara-phone' && (r.headers.actions || '').includes(`#r/${ref},`));
    actions = offer ? offer.headers.actions : null;
    if (!actions) await new Promise((ok) => setTimeout(ok, 100));
  }
  const m = actions && /http, Claim, (\S+?), method=POST/.exec(actions);
  check('the offer reaches ntfy with a Claim action', Boolean(m), actions || 'no offer heard');
  const url = m[1];
  check('the claim link is /a/{token} on this exchange', url.startsWith(`${BASE}/a/`), url);
  const res = await page.goto(url);
  await page.waitForSelector('main.link-page h1');
  check('opening it shows a confirm page', res.status() === 200
    && (await page.textContent('h1')) === 'Claim this request?'
    && (await page.textContent('main')).includes('Feed the cat at noon'), await page.textContent('main'));
  check('the confirm page changed nothing', (await statusOf(ref)).status === 'pending');
  check('the page is styled (the app\'s stylesheet loads under its policy)',
    await page.evaluate(() => getComputedStyle(document.querySelector('button.primary')).borderRadius !== '0px'));
  await shot('claim-link');
  await axe('the claim link page');
  const [claimed] = await Promise.all([page.waitForNavigation(), page.click('text=Claim it')]);
  check('pressing the button claims: "it is yours"', claimed.status() === 200
    && (await page.textContent('h1')) === 'Claimed: it is yours', await page.textContent('main'));
  const t = await statusOf(ref);
  check('the agent sees it claimed by the member the link was sent to', t.status === 'claimed' && t.executor_id === 'cara', `${t.status} ${t.executor_id}`);
  check('the page links into the app at the request', await page.getAttribute('main a', 'href') === `/#r/${ref}`);
  const again = await page.goto(url);
  const detail = await page.textContent('main p');
  check('a second visit shows the link was used, as a sentence', again.status() === 409
    && (await page.textContent('h1')) === 'Not open any more'
    && detail === 'You have already claimed this request: this link was used'
    && (await page.$('form')) === null, `${again.status()} ${detail}`);
  await axe('the used claim link page');
  const post2 = await page.request.post(url, { headers: { Accept: 'text/html' } });
  const html = await post2.text();
  check('a second POST claims nothing and answers 409 with the "already used" page', post2.status() === 409
    && html.includes('<p>You have already claimed this request: this link was used</p>')
    && (await statusOf(ref)).executor_id === 'cara', `${post2.status()}`);
  const json = await page.request.post(url);
  check('for a program the error stays the JSON text', json.status() === 409
    && (await json.json()).error === 'you have already claimed this request: this link was used');
});

// 10. The profile: save and read back, channels whose secrets are never re-sent, a test
// notification to a real local listener, a new key, leaving.
/** Saves the profile and waits for this save's own toast (an earlier one may still show). */
async function saveProfile() {
  await page.evaluate(() => { document.querySelector('#toast').hidden = true; });
  await page.click('#p-save');
  await page.waitForSelector('#toast >> text=Profile saved');
}
await step('profile', async () => {
  await page.goto(`${BASE}/#me`);
  await page.waitForSelector('#p-form');
  await page.fill('#p-name', 'Ada King');
  await page.click('#p-form details summary');
  await page.selectOption('#p-chan-type', 'ntfy');
  await page.fill('#p-chan-topic', 'ada-phone');
  await page.fill('#p-chan-server', HOOK);
  await page.click('#p-chan-add');
  await page.selectOption('#p-chan-type', 'webhook');
  await page.fill('#p-chan-url', `${HOOK}/hook`);
  await page.fill('#p-chan-secret', 'hush');
  await page.click('#p-chan-add');
  await page.selectOption('#p-chan-type', 'slack');
  await page.fill('#p-chan-url', `${HOOK}/broken`);
  await page.click('#p-chan-add');
  await page.selectOption('#p-minprio', 'elevated');
  await page.check('#p-quiet');
  await page.fill('#p-quiet-start', '23:00');
  await page.fill('#p-quiet-end', '06:30');
  check('the filled-in profile fits the phone\'s width', await fitsPhone(), `${await page.evaluate(() => document.documentElement.scrollWidth)} px`);
  await axe('profile');
  await saveProfile();
  await page.evaluate(() => { document.querySelector('#toast').hidden = true; window.scrollTo(0, 0); });
  await shot('profile');
  const tz = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  let p = (await rest('GET', `${P}/executors/${ME}`, key)).json.executor;
  const prefs = p.preferences || {};
  check('profile save round-trips: name, channels, priority, quiet hours in the browser time zone',
    p.display_name === 'Ada King' && p.notifications.map((c) => c.type).join() === 'ntfy,webhook,slack'
    && prefs.min_priority === 'elevated' && prefs.timezone === tz && prefs.quiet_hours
    && prefs.quiet_hours.start === '23:00' && prefs.quiet_hours.end === '06:30' && prefs.quiet_hours.enabled === true,
    JSON.stringify(p));
  check('the saved channels show their secrets only as "set"', p.notifications[1].secret === 'set' && p.notifications[1].url === 'set');
  await page.click('#p-test');
  await page.waitForSelector('#p-test-results li[data-channel]');
  const shown = await page.$$eval('#p-test-results li[data-channel]', (els) => els.map((e) => [e.dataset.channel, e.dataset.ok, e.textContent]));
  check('send me a test: each channel\'s result is shown', shown.length === 3 && shown[0][1] === 'true' && shown[1][1] === 'true'
    && shown[2][0] === 'slack' && shown[2][1] === 'false' && /HTTP 500/.test(shown[2][2]), JSON.stringify(shown));
  const first = tests();
  check('the test notifications reach the local listener (ntfy topic, signed webhook)',
    first.some((r) => r.path === '/ada-phone') && first.some((r) => r.path === '/hook' && signedWith(r, 'hush')), first.map((r) => r.path).join());
  // Only the name changes, then one channel goes: the others keep their stored secrets.
  await page.fill('#p-name', 'Ada Lovelace');
  await saveProfile();
  await page.click('#p-channels li[data-kind=slack] button');
  await saveProfile();
  p = (await rest('GET', `${P}/executors/${ME}`, key)).json.executor;
  check('removing a channel keeps the others', p.display_name === 'Ada Lovelace' && p.notifications.map((c) => c.type).join() === 'ntfy,webhook', JSON.stringify(p.notifications));
  heard.length = 0;
  const res = await rest('POST', `${P}/executors/${ME}/test-notification`, key, {});
  const again = tests().find((r) => r.path === '/hook');
  check('a channel secret is not overwritten by "set": the webhook is still signed with it', res.status === 200 && again && signedWith(again, 'hush') && !again.body.includes('"set"'), JSON.stringify(res.json));
  const other = await rest('POST', `${P}/executors/bob/test-notification`, key, {});
  check('a test for someone else\'s channels is 403', other.status === 403, String(other.status));
});

// 11. Add another device by QR code: the profile shows a code that is not a URL (the
// encoder loads only then); a second browser, whose camera is Chromium's fake device,
// scans it and is signed in as the same member. Chromium on Linux has no BarcodeDetector,
// so that one class is supplied: it is handed the live camera video and answers what a
// decoder would read (the code's text was read from the screen with jsQR just before).
await step('add a device by QR code', async () => {
  await page.goto(`${BASE}/#me`);
  await page.reload();
  await page.waitForSelector('#p-add-device');
  const loaded = (name) => page.evaluate((n) => performance.getEntriesByType('resource').some((e) => e.name.endsWith(`/app/${n}`)), name);
  check('the QR code\'s modules are not part of the first load', !(await loaded('qrcode.mjs')) && !(await loaded('device.js')));
  await page.click('#p-add-device');
  await page.waitForSelector('#p-qr canvas.qr');
  check('they are loaded when "Add another device" is pressed', await loaded('qrcode.mjs') && await loaded('device.js'));
  check('the code comes with a warning that anyone who sees it can act as you',
    /Anyone who sees this code can act as you/.test(await page.textContent('#p-qr')));
  await axe('the add-device QR code');
  check('the profile screen with its code fits the phone\'s width', await fitsPhone());
  // The screen as a person sees it (the visual viewport), cut to the code's box.
  const box = await page.$eval('#p-qr canvas.qr', (el) => {
    el.scrollIntoView({ block: 'center' });
    const r = el.getBoundingClientRect();
    const vv = window.visualViewport || { offsetLeft: 0, offsetTop: 0 };
    return { x: Math.floor(r.x - vv.offsetLeft), y: Math.floor(r.y - vv.offsetTop), w: Math.ceil(r.width), h: Math.ceil(r.height) };
  });
  const screen = PNG.sync.read(await page.screenshot());
  const png = new PNG({ width: box.w, height: box.h });
  PNG.bitblt(screen, png, box.x, box.y, box.w, box.h, 0, 0);
  const read = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height);
  const code = `MESS-DEVICE/1 ${BASE} ${X} ${ME} ${key}`;
  check('the QR code on the screen reads MESS-DEVICE/1, the base URL, exchange, member id and key (no URL)',
    read && read.data === code, read ? read.data.replace(key, '<key>') : 'no QR code found in the screenshot');
  await page.click('#p-qr-hide');
  check('"Hide" takes the code off the screen', (await page.$('#p-qr canvas')) === null && await page.isVisible('#p-add-device'));

  // Without a QR decoder in the browser there is no scan button; pasting stays.
  const bare = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const pb = await bare.newPage();
  await pb.goto(`${BASE}/#join?key=1`);
  await pb.waitForSelector('#k-key');
  await pb.waitForTimeout(300);
  const native = await pb.evaluate(() => 'BarcodeDetector' in window);
  check('without BarcodeDetector the scan button is hidden and the key can still be pasted',
    (await pb.isVisible('#k-scan')) === native && await pb.isVisible('#k-key'));
  await bare.close();

  const other = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, permissions: ['camera'] });
  await other.addInitScript(() => {
    window.qrText = '';
    window.framesSeen = [];
    window.BarcodeDetector = class {
      static async getSupportedFormats() { return ['qr_code']; }
      constructor(options) { window.qrFormats = options && options.formats; }
      async detect(video) {
        const stream = video && video.srcObject;
        window.lastStream = stream;
        window.framesSeen.push(Boolean(video instanceof HTMLVideoElement && stream && stream.active
          && stream.getVideoTracks().length > 0 && video.videoWidth > 0));
        return window.qrText ? [{ rawValue: window.qrText, format: 'qr_code', boundingBox: new DOMRect(), cornerPoints: [] }] : [];
      }
    };
  });
  const p3 = await other.newPage();
  p3.on('console', (m) => { if (m.type() === 'error' && !expected.test(m.text())) errors.push(`device: ${m.text()}`); });
  p3.on('pageerror', (e) => errors.push(`device pageerror: ${e.message}`));
  await p3.goto(`${BASE}/#join`);
  await p3.click('text=I have a key');
  await p3.waitForSelector('#k-scan', { state: 'visible' });
  const cameraStopped = () => p3.evaluate(() => Boolean(window.lastStream) && window.lastStream.getTracks().every((t) => t.readyState === 'ended'));
  const err = 'form p.bad[role=alert]';
  await p3.evaluate(() => { window.qrText = 'https://example.com/some-other-code'; });
  await p3.click('#k-scan');
  await p3.waitForSelector(`${err} >> text=not a MESS device code`, { timeout: 10000 });
  check('a QR code that is not a device code is refused with a clear message',
    (await p3.evaluate(() => localStorage.getItem('mess.session'))) === null, await p3.textContent(err));
  check('the camera was really used (live video frames) and is stopped after the scan',
    await p3.evaluate(() => window.framesSeen.some(Boolean) && window.qrFormats.includes('qr_code')) && await cameraStopped());
  await p3.evaluate((c) => { window.qrText = c; }, code.replace(BASE, 'https://elsewhere.example'));
  await p3.click('#k-scan');
  await p3.waitForSelector(`${err} >> text=https://elsewhere.example`, { timeout: 10000 });
  check('a device code for another exchange address says to open that address', true);
  await p3.evaluate((c) => { window.qrText = c; window.framesSeen = []; }, code);
  await p3.click('#k-scan');
  await p3.waitForSelector('#inbox', { timeout: 10000 });
  await p3.waitForSelector('#conn[data-state=live]', { timeout: 10000 });
  const s3 = JSON.parse(await p3.evaluate(() => localStorage.getItem('mess.session')) || '{}');
  check('scanning the code signs the second device in as the same member, and its inbox loads',
    s3.executor_id === ME && s3.api_key === key && s3.exchange === X, JSON.stringify({ ...s3, api_key: s3.api_key === key }));
  check('the camera is stopped once the code is read', await cameraStopped());
  await other.close();
});

await step('rotate key', async () => {
  await page.goto(`${BASE}/#me`);
  await page.waitForSelector('#p-rotate');
  await page.click('#p-rotate');
  check('rotating asks first', (await page.textContent('#p-rotate')).includes('Sure?'));
  await page.click('#p-rotate');
  await page.waitForSelector('#api-key');
  const fresh = (await page.textContent('#api-key')).trim();
  check('the new key is shown once, to be saved', fresh.startsWith(`mess_${X}_`) && fresh !== key);
  check('continue waits for "I have saved my key" again', await page.isDisabled('text=Continue'));
  await page.check('#saved');
  await page.click('text=Continue');
  await page.waitForSelector('#p-form');
  check('the old key is refused', (await rest('GET', `${P}/executors`, key)).status === 401);
  check('the new key works and the app keeps it', (await rest('GET', `${P}/executors`, fresh)).status === 200
    && (await page.evaluate(() => localStorage.getItem('mess.session'))).includes(fresh));
  key = fresh;
  await page.waitForSelector('#conn[data-state=live]', { timeout: 10000 });
});

await step('leave', async () => {
  await page.click('#p-leave');
  check('leaving asks first', (await page.textContent('#p-leave')).includes('Sure?'));
  await page.click('#p-leave');
  await page.waitForSelector('#j-name');
  check('after leaving, the member is gone', (await rest('GET', `${P}/executors/${ME}`, bobKey)).status === 404
    && (await page.evaluate(() => localStorage.getItem('mess.session'))) === null);
});
listener.close();

// 11. What went over the wire, and what the console said.
const changes = sent.filter((r) => r.method === 'PATCH' || (r.method === 'POST' && r.url.endsWith('/requests')));
check('every PATCH and POST carried an Idempotency-Key', changes.length > 0 && changes.every((r) => r.headers['idempotency-key']), `${changes.length} changes`);
check('the key never travels in a URL', key && sent.every((r) => !r.url.includes(key)));
const cookies = await context.cookies();
check('no cookies', cookies.length === 0, JSON.stringify(cookies));
check('no console errors or CSP violations', errors.length === 0, errors.slice(0, 5).join(' | '));

await browser.close();
console.log(`app: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
