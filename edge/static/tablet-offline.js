import { CORDON_I18N, el, t } from "/common/i18n.js";

// Installable offline app: registers the service worker (secure context only: the edge over HTTPS)
// and shows a clear "offline" banner when the edge cannot be reached.
Object.assign(CORDON_I18N.zh, { "offline": "离线：无法连接本查缉点服务器，显示的是缓存的界面" });
Object.assign(CORDON_I18N.en, { "offline": "Offline: this checkpoint's server cannot be reached; showing the cached app" });

const offlineBanner = el("p", "offline-banner", t("offline"));
offlineBanner.id = "offline";
offlineBanner.setAttribute("data-i18n", "offline");
offlineBanner.setAttribute("role", "status");
offlineBanner.hidden = true;
document.body.insertBefore(offlineBanner, document.body.firstChild);

function setOffline(offline) {
  offlineBanner.hidden = !offline;
  document.documentElement.classList.toggle("offline", offline);
}

async function probeEdge() {
  if (!navigator.onLine) { setOffline(true); return; }
  try {
    const resp = await fetch("/api/v1/health", { cache: "no-store" });
    setOffline(!resp.ok && resp.status !== 503);  // 503 is the edge answering "degraded"
  } catch (e) {
    setOffline(true);
  }
}

window.addEventListener("offline", () => setOffline(true));
window.addEventListener("online", probeEdge);
setInterval(probeEdge, 15000);
probeEdge();

// The first page load is not yet controlled; the worker claims it when it activates.
function waitForControl() {
  if (navigator.serviceWorker.controller) return Promise.resolve();
  return new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
}

window.cordonServiceWorker = "unsupported";
if ("serviceWorker" in navigator && window.isSecureContext) {
  window.cordonServiceWorker = "registering";
  navigator.serviceWorker.register("/sw.js", { scope: "/" })
    .then(() => navigator.serviceWorker.ready)
    .then(() => waitForControl())
    .then(() => fetch("/", { credentials: "same-origin" }))  // through the worker: the page itself is cached now
    .then(() => { window.cordonServiceWorker = "ready"; })
    .catch((e) => { window.cordonServiceWorker = "failed: " + e; });
}
