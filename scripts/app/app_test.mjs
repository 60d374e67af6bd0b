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
    '--disable-component-update', '--disable-sync'],
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
page.on('console', (m) => { if (m.type() === 'error' && !expected.test(m.text())) errors.push(m.text()); });
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

// 6. Requestor side: post, answer a question live, cancel.
await step('requestor', async () => {
  await page.goto(`${BASE}/#new`);
  await page.waitForSelector('#n-intent');
  await page.fill('#n-intent', 'Bring the mail in');
  await page.selectOption('#n-priority', 'elevated');
  await page.click('form button[type=submit]');
  await page.waitForFunction(() => location.hash.startsWith('#r/'));
  const ref = decodeURIComponent((await page.evaluate(() => location.hash)).slice(3));
  await page.waitForSelector('#act-cancel');
  let t = await statusOf(ref);
  check('a request posted from the app', t.requestor_id === ME && t.priority === 'elevated');
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
  check('the estimate shows in the thread', (await page.textContent('.thread')).includes('about 45 min'));
});

// 9. The profile: save and read back, channels whose secrets are never re-sent, a test
// notification to a real local listener, a new key, leaving.
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
  await shot('profile');
  await axe('profile');
  await page.click('#p-save');
  await page.waitForSelector('#toast >> text=Profile saved');
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
  await page.click('#p-save');
  await page.waitForSelector('#toast >> text=Profile saved');
  await page.click('#p-channels li[data-kind=slack] button');
  await page.click('#p-save');
  await page.waitForSelector('#toast >> text=Profile saved');
  p = (await rest('GET', `${P}/executors/${ME}`, key)).json.executor;
  check('removing a channel keeps the others', p.display_name === 'Ada Lovelace' && p.notifications.map((c) => c.type).join() === 'ntfy,webhook', JSON.stringify(p.notifications));
  heard.length = 0;
  const res = await rest('POST', `${P}/executors/${ME}/test-notification`, key, {});
  const again = tests().find((r) => r.path === '/hook');
  check('a channel secret is not overwritten by "set": the webhook is still signed with it', res.status === 200 && again && signedWith(again, 'hush') && !again.body.includes('"set"'), JSON.stringify(res.json));
  const other = await rest('POST', `${P}/executors/bob/test-notification`, key, {});
  check('a test for someone else\'s channels is 403', other.status === 403, String(other.status));
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

// 10. What went over the wire, and what the console said.
const changes = sent.filter((r) => r.method === 'PATCH' || (r.method === 'POST' && r.url.endsWith('/requests')));
check('every PATCH and POST carried an Idempotency-Key', changes.length > 0 && changes.every((r) => r.headers['idempotency-key']), `${changes.length} changes`);
check('the key never travels in a URL', key && sent.every((r) => !r.url.includes(key)));
const cookies = await context.cookies();
check('no cookies', cookies.length === 0, JSON.stringify(cookies));
check('no console errors or CSP violations', errors.length === 0, errors.slice(0, 5).join(' | '));

await browser.close();
console.log(`app: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
