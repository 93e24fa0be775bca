// The alarm: an intercept alert takes the full screen with sound and vibration until the officer records
// what came of it. A repeat of the same vehicle on the same list is folded by the edge into the open alarm
// (protocols/folding.py, as the console folds it) and only grows its count here; an intercept of another
// vehicle takes the screen, and the ones waiting form a queue beside it that the officer works through
// (稍后处理 puts them all aside at once; the 待处置 button brings them back). When an alarm is on screen the
// edge is told, and it sends the console a receipt (and another when the outcome is recorded).
// Text only, never HTML: every string from the network goes through el() / textContent.
import { cloneReason, ruleListName } from "/common/hits.js";
import { CORDON_I18N, el, fmtTime, t } from "/common/i18n.js";
import { audioContext, tone } from "./tablet-duty.js";
import { tabletEvidence } from "./tablet-evidence.js";
import { routeNote, tabletCheckpointId } from "./tablet-routing.js";

Object.assign(CORDON_I18N.zh, {
  "alarm.title": "拦截预警", "alarm.waiting": "待处置", "alarm.more": "另有 {n} 条待处置",
  "alarm.pending": "{n} 条拦截预警待处置 · 点击处置", "alarm.folded": "重复比中 ×{n}",
  "alarm.last": "最近", "alarm.arrived": "车辆已到本查缉点", "priority": "优先级", "reason": "布控事由",
  "kind.kit": "毒品快检", "kind.person": "人员布控比中", "kind.rule": "规则预警", "kind.clone": "套牌嫌疑",
  "kits.alert": "快检阳性/无效", "kits.positive": "阳性", "kits.invalid": "无效",
  "kits.subject": "身份证尾号", "score": "相似度",
});
Object.assign(CORDON_I18N.en, {
  "alarm.title": "Intercept alert", "alarm.waiting": "Waiting", "alarm.more": "{n} more waiting",
  "alarm.pending": "{n} intercept alerts waiting · tap to respond", "alarm.folded": "Repeated ×{n}",
  "alarm.last": "last", "alarm.arrived": "The vehicle is at this checkpoint now", "priority": "priority", "reason": "Reason",
  "kind.kit": "drug quick test", "kind.person": "person watchlist", "kind.rule": "rule", "kind.clone": "cloned plate",
  "kits.alert": "Quick test positive/invalid", "kits.positive": "positive", "kits.invalid": "invalid",
  "kits.subject": "ID ending", "score": "similarity",
});
function fill(key, n) { return t(key).replace("{n}", String(n)); }

const alerts = new Map();    // alert_id -> alert (as last updated: folds grow it)
const outcomes = new Map();  // alert_id -> latest outcome
const pending = [];          // intercept alerts waiting for the officer (ids)
const notes = new Map();     // alert_id -> note typed but not yet saved
const receipted = new Set(); // alerts this page has told the edge it showed
let current = null;          // the alert on screen, or null
const overlay = document.getElementById("overlay");
const noteInput = document.getElementById("overlay-note");

// -- how an alert reads -----------------------------------------------------------------------------
function isKit(a) { return a.hit.kind === "kit" || a.hit.kind === "person"; }
export function listName(a) {
  if (a.hit.list_id === "rule:kit") return t("kits.alert");
  return ruleListName(a.hit) || a.hit.list_name;
}
function plateText(a) {
  if (isKit(a)) return t("kits.subject") + " …" + String(a.plate_read).slice(-4);
  return a.plate_read || t("noplate");
}
function matchText(a) {
  const h = a.hit;
  if (h.list_id === "rule:kit") {
    const call = /invalid$/.test(h.list_name) ? "invalid" : "positive";
    return t("kind.kit") + " · " + t("kits." + call);
  }
  // a score means something for a plate read against a listed plate; not for a rule (a clone's is always 1)
  const scored = !["exact", "rule", "clone"].includes(h.kind) && !isKit(a);
  return t("kind." + h.kind) + (scored ? " · " + t("score") + " " + Math.round(h.score * 100) + "%" : "");
}
function when(a) {
  const parts = [];
  if (a.lane !== null && a.lane !== undefined) parts.push(t("lane") + " " + a.lane);
  if (a.camera_id && a.camera_id !== "kit") parts.push(t("camera") + " " + a.camera_id);
  parts.push(fmtTime(a.captured_at));
  return parts.join(" · ");
}
function foldBadge(a) {
  if (!a.folded) return null;
  const badge = el("span", "badge warn fold-count", fill("alarm.folded", a.folded + 1));
  badge.dataset.folded = String(a.folded + 1);
  return badge;
}
function outcomeText(o) {
  return t("outcome." + o.outcome) + (o.note ? " · " + o.note : "") + " · " + o.officer + " · " + fmtTime(o.acknowledged_at);
}
// One alert as a card: plate, how it matched, the list and why, where and when, repeats.
function card(a, big) {
  const li = el(big ? "div" : "li", "alert tablet-alert " + a.hit.action);
  li.dataset.alertId = a.alert_id;
  const top = el("div", "alert-top");
  const plate = el("span", "plate " + (a.colour || ""), plateText(a));
  plate.dataset.role = "plate-read";
  top.append(plate, el("span", "badge kind", matchText(a)));
  const fold = foldBadge(a);
  if (fold) top.append(fold);
  li.append(top);
  li.append(el("div", "alert-list", t("action." + a.hit.action) + " · " + listName(a) + " · " + t("priority") + " " + a.hit.priority));
  if (a.hit.entry_plate && a.hit.entry_plate !== a.plate_read && !isKit(a)) {
    li.append(el("div", "listed", t("listed") + " " + a.hit.entry_plate));
  }
  if (a.hit.reason) {
    const reason = a.hit.kind === "clone" ? cloneReason(a.hit.reason, (id) => id) : a.hit.reason;  // ids: no ring here
    li.append(el("div", "why", t("reason") + "：" + reason));
  }
  li.append(el("div", "muted when", when(a)));
  if (a.folded && a.last_seen_at) {
    const where = a.last_seen_checkpoint && a.last_seen_checkpoint !== tabletCheckpointId() ? " · " + a.last_seen_checkpoint : "";
    li.append(el("div", "muted last-seen", t("alarm.last") + " " + fmtTime(a.last_seen_at) + where));
  }
  const routed = routeNote(a);
  if (routed) li.append(routed);
  return li;
}

// -- the list of recent alerts ------------------------------------------------------------------------
export function drawAlerts() {
  const list = document.getElementById("alerts");
  const waiting = new Set(pending);
  const sorted = [...alerts.values()].sort((a, b) =>
    (waiting.has(b.alert_id) - waiting.has(a.alert_id)) || (b.raised_at - a.raised_at));
  list.replaceChildren(...sorted.slice(0, 100).map((a) => {
    const li = card(a, false);
    if (waiting.has(a.alert_id)) li.classList.add("waiting");
    const acts = el("div", "acts");
    const done = outcomes.get(a.alert_id);
    if (done) acts.append(el("span", "done", outcomeText(done)));
    const ack = el("button", done ? "" : "primary", t(done ? "ack.change" : "ack"));
    ack.addEventListener("click", () => show(a.alert_id, false));
    acts.append(ack);
    li.append(acts);
    return li;
  }));
  document.getElementById("no-alerts").hidden = alerts.size > 0;
  const button = document.getElementById("pending");
  button.hidden = !pending.length || current !== null;
  button.textContent = fill("alarm.pending", pending.length);
}

// -- the full-screen alarm and its queue ----------------------------------------------------------------
function order() {
  pending.sort((x, y) => {
    const a = alerts.get(x), b = alerts.get(y);
    return (b.hit.priority - a.hit.priority) || (a.raised_at - b.raised_at);
  });
}
function show(alertId, alarm) {
  if (current && current !== alertId) notes.set(current, noteInput.value);
  const a = alerts.get(alertId);
  if (!a) return;
  const same = current === alertId;
  current = alertId;
  const body = document.getElementById("overlay-body");
  if (same && body.firstChild) body.firstChild.replaceWith(card(a, true));
  else body.replaceChildren(card(a, true), tabletEvidence(a));
  if (!same) noteInput.value = notes.get(alertId) || "";
  overlay.hidden = false;
  overlay.dataset.alertId = alertId;
  drawQueue();
  drawAlerts();
  if (alarm) startSiren();
  shown(alertId);
}
function drawQueue() {
  const others = pending.filter((id) => id !== current);
  const title = document.getElementById("overlay-title");
  const a = alerts.get(current);
  title.textContent = (a && a.hit.action !== "intercept" ? t("action." + a.hit.action) : t("alarm.title")) +
    (others.length ? " · " + fill("alarm.more", others.length) : "");
  const box = document.getElementById("overlay-queue");
  box.hidden = !others.length;
  document.getElementById("overlay-queue-title").textContent = t("alarm.waiting") + " (" + others.length + ")";
  document.getElementById("overlay-queue-list").replaceChildren(...others.map((id) => {
    const q = alerts.get(id);
    const li = el("li");
    const b = el("button", "queued");
    b.dataset.alertId = id;
    b.append(el("span", "plate " + (q.colour || ""), plateText(q)),
      el("span", "queued-list", listName(q)), el("span", "muted", fmtTime(q.captured_at)));
    const fold = foldBadge(q);
    if (fold) b.append(fold);
    b.addEventListener("click", () => show(id, false));
    li.append(b);
    return li;
  }));
}
function close() {
  if (current) notes.set(current, noteInput.value);
  overlay.hidden = true; current = null; delete overlay.dataset.alertId;
  stopSiren();
  drawAlerts();
}
// The officer dealt with the alarm on screen (or another tablet did): the next one waiting, or back.
function done(alertId) {
  const i = pending.indexOf(alertId);
  if (i >= 0) pending.splice(i, 1);
  notes.delete(alertId);
  if (current === alertId) {
    order();
    if (pending.length) show(pending[0], true); else close();
  } else if (current) {
    drawQueue();
  }
}
function needsAction(a) { return a.hit.action === "intercept" && !outcomes.has(a.alert_id); }
function enqueue(alertId) {
  if (!pending.includes(alertId)) pending.push(alertId);
  order();
  show(alertId, true);  // another vehicle takes the screen; the one it replaces waits in the queue
}

// Tell the edge the alarm is on screen (once per page and alert): the console's receipt. A beacon, so it
// still goes when the page is reloaded or left right after the alarm showed (the edge keeps the first).
function shown(alertId) {
  if (receipted.has(alertId)) return;
  const url = "/api/v1/alerts/" + encodeURIComponent(alertId) + "/shown";
  if (navigator.sendBeacon && navigator.sendBeacon(url)) { receipted.add(alertId); return; }
  receipted.add(alertId);
  fetch(url, { method: "POST", keepalive: true })
    .then((resp) => { if (!resp.ok) receipted.delete(alertId); })
    .catch(() => receipted.delete(alertId));
}

// -- sound and vibration --------------------------------------------------------------------------------
let sirenTimer = null;
function sirenOnce() {
  const ctx = audioContext();
  if (!ctx) return;
  tone(ctx, ctx.currentTime, 950, 520, 0.9, 0.25);
  window.cordonSirenCount = (window.cordonSirenCount || 0) + 1;
}
function startSiren() {
  stopSiren(); sirenOnce(); sirenTimer = setInterval(sirenOnce, 1500);
  // Like sound, vibration is allowed only after the officer touched the page (else the browser logs an error).
  const touched = !navigator.userActivation || navigator.userActivation.hasBeenActive;
  if (navigator.vibrate && touched) navigator.vibrate([500, 250, 500, 250, 500]);
}
function stopSiren() { if (sirenTimer) clearInterval(sirenTimer); sirenTimer = null; }

// -- what the live feed brings --------------------------------------------------------------------------
export function receiveAlert(a, fresh) {
  if (alerts.has(a.alert_id)) return;  // the same alert id is shown once, whoever sent it
  alerts.set(a.alert_id, a);
  if (fresh && needsAction(a)) enqueue(a.alert_id); else drawAlerts();
}
// A repeat of a vehicle whose alarm is open: the same alarm, its count and last sighting grown. It takes
// the screen again only when it brings the vehicle to this checkpoint (it had been read elsewhere).
export function receiveFolded(a) {
  const before = alerts.get(a.alert_id);
  alerts.set(a.alert_id, a);
  const here = tabletCheckpointId();
  const arrived = before && here && a.last_seen_checkpoint === here &&
    (before.last_seen_checkpoint || before.checkpoint) !== here;
  if (arrived && needsAction(a)) { enqueue(a.alert_id); return; }
  if (current === a.alert_id) show(a.alert_id, false);
  else if (current) drawQueue();
  drawAlerts();
}
export function receiveOutcome(o) {
  outcomes.set(o.alert_id, o);
  done(o.alert_id);
  drawAlerts();
}
export function redrawAlarm() {
  drawAlerts();
  if (current) show(current, false);
}

document.getElementById("overlay-later").addEventListener("click", close);
document.getElementById("pending").addEventListener("click", () => { order(); if (pending.length) show(pending[0], false); });
document.querySelectorAll(".outcome").forEach((button) => button.addEventListener("click", async () => {
  if (!current) return;
  const id = current;
  button.disabled = true;
  try {
    const resp = await fetch("/api/v1/alerts/" + encodeURIComponent(id) + "/outcome", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ outcome: button.dataset.outcome, note: noteInput.value }) });
    if (resp.ok) receiveOutcome((await resp.json()).outcome);
    else window.alert(t("ack.failed") + " (" + resp.status + ")");
  } catch (e) {
    window.alert(t("ack.failed"));
  } finally { button.disabled = false; }
}));
