"use strict";
// The tablet's service worker: keeps the app shell (the page, its scripts, styles and icons) so the
// tablet opens with the edge unreachable and says it is offline. API data, alerts (live over the
// WebSocket), evidence pictures and sign-in are never cached: they always go to the network.
// The tablet's scripts are ES modules: one missing offline stops every module that imports it (directly
// or not), so SHELL lists them all (tests/test_static_modules.py checks it against the imports).
const CACHE = "cordon-tablet-shell-v5";
const SHELL = ["/static/tablet.css", "/static/tablet.js", "/static/tablet-evidence.js", "/static/tablet-routing.js",
  "/static/tablet-alarm.js", "/static/tablet-duty.js", "/static/tablet-trouble.js",
  "/static/tablet-kits.js", "/static/tablet-offline.js", "/common/common.css", "/common/i18n.js", "/common/live.js",
  "/common/drugs.js", "/common/hits.js",
  "/static/manifest.webmanifest", "/static/icons/icon-192.png", "/static/icons/icon-512.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function isShell(url) {
  return url.origin === self.location.origin &&
    (url.pathname === "/" || url.pathname.startsWith("/static/") || url.pathname.startsWith("/common/"));
}

// Network first (a fresh page and code whenever the edge answers), the cached shell when it does not.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || !isShell(url)) return;  // API, WebSocket, login: straight to the network
  event.respondWith(fetch(request).then((response) => {
    // only a signed-in page itself (not a redirect to sign-in, not an error) becomes the cached shell
    if (response.ok && !response.redirected && response.type === "basic") {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(url.pathname, copy));
    }
    return response;
  }).catch(() => caches.match(url.pathname).then((hit) => hit || Response.error())));
});
