// The officer's tablet: live passages, the full-screen alarm for intercept hits (tablet-alarm.js), the duty
// bar that unlocks the alarm sound and keeps the screen awake (tablet-duty.js), what is wrong at the
// checkpoint (tablet-trouble.js), the manual plate check and the checkpoint's status. Everything on screen is
// drawn from data kept here, so a language switch redraws it all in the new language.
// Text only, never HTML.
import { ruleListName } from "/common/hits.js";
import { applyI18n, applyTheme, CORDON_I18N, el, fmtTime, setTimeZone, t, toggleLang, toggleTheme } from "/common/i18n.js";
import { connectLive } from "/common/live.js";
import { drawAlerts, receiveAlert, receiveFolded, receiveOutcome, redrawAlarm } from "./tablet-alarm.js";
import { drawDuty } from "./tablet-duty.js";
import { readEvidence, readThumb } from "./tablet-evidence.js";
import { setTabletCheckpoint } from "./tablet-routing.js";
import { drawTrouble } from "./tablet-trouble.js";

Object.assign(CORDON_I18N.zh, { "per.minute": "辆/分", "camera.stale": "无识别", "check.version": "布控库" });
Object.assign(CORDON_I18N.en, { "per.minute": "/min", "camera.stale": "silent", "check.version": "watchlists" });

applyI18n();
applyTheme();
document.getElementById("theme").addEventListener("click", toggleTheme);
document.getElementById("lang").addEventListener("click", () => { toggleLang(); redrawAll(); });

const reads = [];        // the latest passing vehicles, newest first
let checked = null;      // the last plate check's answer, or an error key
let status = null;       // the last GET /api/v1/status
let live = false;

// -- passing vehicles ----------------------------------------------------------------------------------
function readRow(read) {
  const li = el("li");
  li.dataset.seq = read.seq;
  const thumb = readThumb(read.seq);
  if (thumb) li.append(thumb);
  li.append(el("span", "plate " + (read.colour || ""), read.no_plate ? t("noplate") : read.plate));
  li.append(el("span", "muted", (read.lane !== null && read.lane !== undefined ? t("lane") + " " + read.lane + " · " : "") +
    read.camera_id + " · " + fmtTime(read.captured_at)));
  if (!read.plate_valid && !read.no_plate) li.append(el("span", "badge warn", t("plate.suspect")));
  return li;
}
function drawReads() { document.getElementById("reads").replaceChildren(...reads.map(readRow)); }
function receiveRead(read) {
  reads.unshift(read);
  if (reads.length > 40) reads.length = 40;
  const list = document.getElementById("reads");
  list.prepend(readRow(read));
  while (list.children.length > 40) list.lastChild.remove();
}

// -- the manual plate check ------------------------------------------------------------------------------
function drawCheck() {
  const out = document.getElementById("check-result");
  if (!checked) { out.replaceChildren(); return; }
  if (typeof checked === "string") { out.replaceChildren(el("span", "error", t(checked))); return; }
  const r = checked;
  const parts = [el("div", "checked-plate", r.plate + (r.plate_valid ? "" : " · " + t("plate.suspect")))];
  if (!r.hits.length) parts.push(el("div", "nohit", t("check.none") + " · " + t("check.version") + " v" + r.feed_version));
  r.hits.forEach((h) => parts.push(el("div", "hit", t("action." + h.action) + " · " + (ruleListName(h) || h.list_name) + " · " +
    t("listed") + " " + h.entry_plate + " · " + t("kind." + h.kind))));
  out.replaceChildren(...parts);
}
document.getElementById("check-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const plate = document.getElementById("check-plate").value.trim();
  if (!plate) return;
  try {
    const resp = await fetch("/api/v1/check?plate=" + encodeURIComponent(plate));
    checked = resp.ok ? await resp.json() : "check.failed";
  } catch (e) { checked = "check.failed"; }
  drawCheck();
});

// -- the checkpoint's status -----------------------------------------------------------------------------
function drawStatus() {
  drawTrouble(status, live);
  const s = status;
  if (!s) return;
  document.getElementById("checkpoint").textContent = s.name ? s.name + " " + s.checkpoint : s.checkpoint;
  const up = s.uplink.state === "connected" && s.uplink.hub_online !== false;
  const badge = document.getElementById("uplink");
  badge.className = "badge " + (up ? "ok" : "bad");
  badge.textContent = t("uplink") + " " + t(up ? "uplink.up" : "uplink.down");
  const rows = [
    [t("uplink"), t("uplink.state." + s.uplink.state) + (s.uplink.hub_online === false ? " · " + t("hub.offline") : "")],
    [t("feed"), "v" + s.feed.version + " · " + s.feed.entries + " " + t("entries")],
    [t("outbox"), s.outbox.depth + (s.outbox.oldest_unacked_s ? " · " + Math.round(s.outbox.oldest_unacked_s) + " s" : "")],
  ];
  if (s.outbox.dropped_reads) rows.push([t("dropped"), String(s.outbox.dropped_reads)]);
  Object.entries(s.cameras).forEach(([id, c]) => rows.push([t("camera") + " " + id,
    (c.stale ? t("camera.stale") + " · " : "") + c.reads_per_minute + " " + t("per.minute") +
    (c.errors ? " · " + c.errors + " " + t("errors") : "")]));
  document.getElementById("status").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, v)]));
}
async function refreshStatus() {
  try {
    const resp = await fetch("/api/v1/status");
    if (!resp.ok) return;
    const zoneBefore = status && status.time_zone;
    status = await resp.json();
    setTabletCheckpoint(status.checkpoint);
    if (status.time_zone !== zoneBefore) {  // every time in the edge's time_zone, not the tablet's own
      setTimeZone(status.time_zone);
      redrawAll();
    } else {
      drawStatus();
    }
  } catch (e) { /* the next poll tries again; tablet-offline.js says when the edge is unreachable */ }
}
setInterval(refreshStatus, 5000);
refreshStatus();

function drawLive() {
  const badge = document.getElementById("live");
  badge.className = "badge " + (live ? "ok" : "bad");
  badge.dataset.i18n = live ? "live.connected" : "live.lost";
  badge.textContent = t(badge.dataset.i18n);
  drawTrouble(undefined, live);
}
function redrawAll() { drawReads(); drawCheck(); drawStatus(); drawLive(); drawDuty(); redrawAlarm(); }

let greeted = false;
connectLive((frame) => {
  if (frame.type === "hello") { greeted = true; }
  else if (frame.type === "alert") receiveAlert(frame.alert, greeted && Date.now() / 1000 - frame.alert.raised_at < 300);
  else if (frame.type === "alert_folded") receiveFolded(frame.alert);
  else if (frame.type === "outcome") receiveOutcome(frame.outcome);
  else if (frame.type === "read") receiveRead(frame.read);
  else if (frame.type === "evidence") readEvidence(frame);
}, (up) => { live = up; drawLive(); });
drawAlerts();
