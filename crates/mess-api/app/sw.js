// The app's service worker: keeps the shell (the page and its assets) so the app starts
// offline. Network first, so a new binary's app is seen at once; the cache answers only
// when the network does not. The API is never cached: it passes straight through.
const CACHE = 'mess-shell-v1';
const SHELL = [
  '/',
  '/app/app.js', '/app/api.js', '/app/feed.js', '/app/dom.js', '/app/photos.js',
  '/app/device.js', '/app/qrcode.mjs',
  '/app/style.css', '/app/manifest.webmanifest', '/app/icon.svg', '/app/icon-192.png',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  // Only the app's own page and assets: /docs, /health and the API pass straight through.
  if (!(url.pathname === '/' || url.pathname.startsWith('/app/'))) return;
  const shell = url.pathname;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const res = await fetch(req);
      if (res.ok) await cache.put(shell, res.clone());
      return res;
    } catch (err) {
      const hit = await cache.match(shell);
      if (hit) return hit;
      throw err;
    }
  })());
});
