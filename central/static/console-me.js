// Who is signed in and what the console may offer them: asked once (GET /api/v1/me), never guessed by
// probing routes for a refusal. Elements with data-capability="X" are shown only to roles that have X;
// the hub's time zone becomes the zone of every time on the page.
import { CORDON_I18N, el, setTimeZone, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "role.commander": "值班长", "role.analyst": "研判员", "role.watchlist_manager": "名单管理员", "role.admin": "管理员",
  "role.auditor": "审计员", "me.access_code": "访问码登录", "me.failed": "无法确认登录身份，请刷新页面或重新登录",
  "me.expired": "登录已失效，请重新登录", "me.login": "重新登录",
});
Object.assign(CORDON_I18N.en, {
  "role.commander": "Shift commander", "role.analyst": "Analyst", "role.watchlist_manager": "Watchlist manager",
  "role.admin": "Administrator", "role.auditor": "Auditor", "me.access_code": "Access code",
  "me.failed": "Could not tell who is signed in: reload the page or sign in again",
  "me.expired": "Your session has ended: sign in again", "me.login": "Sign in",
});

const ACCESS_CODE = "access code";  // the session the shared access code opens (not an account)
let known = null;

export const me = fetch("/api/v1/me", { credentials: "same-origin" }).then(async (resp) => {
  if (!resp.ok) throw new Error(resp.status === 401 ? "expired" : "failed");
  known = await resp.json();
  setTimeZone(known.time_zone);
  return known;
});

// Module scripts run one after another, but the answer may arrive between two of them: what is shown or
// hidden waits for both the answer and every script (DOMContentLoaded comes after all module scripts ran).
// (Module scripts run while the document is already "interactive", before DOMContentLoaded.)
export const parsed = new Promise((resolve) => {
  if (document.readyState === "complete") { resolve(); return; }
  document.addEventListener("DOMContentLoaded", resolve, { once: true });
  window.addEventListener("load", resolve, { once: true });
});
export const ready = Promise.all([me, parsed]).then(([found]) => found);

// Whether the signed-in role may do `capability` (false until the hub has said).
export function can(capability) { return !!known && known.capabilities.includes(capability); }

// Show what the role may do, hide the rest; called again after modules add elements of their own.
export function applyCapabilities(root) {
  (root || document).querySelectorAll("[data-capability]").forEach((node) => { node.hidden = !can(node.dataset.capability); });
}

// The header's "who": display name and role in words.
export function drawWho() {
  const who = document.getElementById("who");
  if (!who || !known) return;
  const name = known.user === ACCESS_CODE ? t("me.access_code") : known.display_name;
  who.replaceChildren(el("span", "who-name", name), el("span", "muted", t("role." + known.role)));
  who.hidden = false;
}

// The page cannot work without knowing who it serves: say so, with the way out.
export function drawMeFailure(error) {
  const box = document.getElementById("page-error");
  if (!box) return;
  const key = String(error && error.message) === "expired" ? "me.expired" : "me.failed";
  const link = el("a", "button", t("me.login"));
  link.href = "/login";
  box.replaceChildren(el("span", null, t(key)), link);
  box.hidden = false;
}
