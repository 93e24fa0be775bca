// The officer's tablet: live passages, full-screen alarm for intercept hits (sound + vibration),
// acknowledgement with the outcome, manual plate check, checkpoint status. Text only, never HTML.
import { applyI18n, applyTheme, el, fmtTime, t, toggleLang, toggleTheme } from "/common/i18n.js";
import { connectLive, renderAlert } from "/common/live.js";
import { readEvidence, tabletEvidence } from "./tablet-evidence.js";
import { routeNote, setTabletCheckpoint } from "./tablet-routing.js";

applyI18n();
document.getElementById("lang").addEventListener("click", () => { toggleLang(); redrawAll(); });
document.getElementById("theme").addEventListener("click", toggleTheme);
applyTheme();

const alerts = new Map();      // alert_id -> alert
const outcomes = new Map();    // alert_id -> latest outcome
const alertsList = document.getElementById("alerts");
const readsList = document.getElementById("reads");
const overlay = document.getElementById("overlay");
const queue = [];              // intercept alerts waiting for the officer, oldest first
let current = null;            // the alert on screen

// Sound: browsers allow it only after a user gesture, so the officer's first tap unlocks it.
let audio = null;
function unlockAudio() {
  if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
  if (audio.state !== "running") audio.resume();
  document.getElementById("sound-hint").hidden = true;
  window.cordonAudioState = () => audio.state;
}
document.addEventListener("pointerdown", unlockAudio, { capture: true });
document.addEventListener("keydown", unlockAudio, { capture: true });
let sirenTimer = null;
function sirenOnce() {
  if (!audio || audio.state !== "running") return;
  const osc = audio.createOscillator(); const gain = audio.createGain();
  osc.type = "square"; osc.frequency.setValueAtTime(950, audio.currentTime);
  osc.frequency.linearRampToValueAtTime(520, audio.currentTime + 0.5);
  gain.gain.value = 0.25; osc.connect(gain).connect(audio.destination); osc.start(); osc.stop(audio.currentTime + 0.9);
  window.cordonSirenCount = (window.cordonSirenCount || 0) + 1;
}
function startSiren() {
  stopSiren(); sirenOnce(); sirenTimer = setInterval(sirenOnce, 1500);
  if (navigator.vibrate) navigator.vibrate([500, 250, 500, 250, 500]);
}
function stopSiren() { if (sirenTimer) clearInterval(sirenTimer); sirenTimer = null; }

function outcomeText(o) {
  return t("outcome." + o.outcome) + (o.note ? " · " + o.note : "") + " · " + o.officer + " · " +
    fmtTime(o.acknowledged_at);
}
function alertItem(alert) {
  const li = renderAlert(alert);
  const hit = alert.hit;
  const routed = routeNote(alert);
  if (routed) li.append(routed);
  if (hit.entry_plate && hit.entry_plate !== alert.plate_read) {
    li.append(el("div", "listed", t("listed") + " " + hit.entry_plate));
  }
  const acts = el("div", "acts");
  const done = outcomes.get(alert.alert_id);
  if (done) acts.append(el("span", "done", outcomeText(done)));
  const ack = el("button", done ? "" : "primary", t(done ? "ack.change" : "ack"));
  ack.addEventListener("click", () => openAlert(alert, false));
  acts.append(ack);
  li.append(acts);
  return li;
}
function drawAlerts() {
  const sorted = [...alerts.values()].sort((a, b) => b.raised_at - a.raised_at);
  alertsList.replaceChildren(...sorted.slice(0, 100).map(alertItem));
  document.getElementById("no-alerts").hidden = alerts.size > 0;
}
function openAlert(alert, alarm) {
  current = alert;
  const body = document.getElementById("overlay-body");
  const card = renderAlert(alert);
  card.append(el("div", "listed", t("listed") + " " + (alert.hit.entry_plate || "—") + " · " + t("list") + " " +
    alert.hit.list_name));
  const routed = routeNote(alert);
  if (routed) card.append(routed);
  body.replaceChildren(card, tabletEvidence(alert));
  document.getElementById("overlay-note").value = "";
  overlay.hidden = false;
  if (alarm) startSiren();
}
function closeAlert() {
  overlay.hidden = true; current = null; stopSiren();
  const next = queue.shift();
  if (next) openAlert(next, true);
}
function receiveAlert(alert, fresh) {
  if (alerts.has(alert.alert_id)) return;   // the same alert id is shown once, whoever sent it
  alerts.set(alert.alert_id, alert);
  drawAlerts();
  if (fresh && alert.hit.action === "intercept" && !outcomes.has(alert.alert_id)) {
    if (current) queue.push(alert); else openAlert(alert, true);
  }
}
document.getElementById("overlay-later").addEventListener("click", closeAlert);
document.querySelectorAll(".outcome").forEach((button) => button.addEventListener("click", async () => {
  if (!current) return;
  const id = current.alert_id;
  const note = document.getElementById("overlay-note").value;
  button.disabled = true;
  try {
    const resp = await fetch("/api/v1/alerts/" + encodeURIComponent(id) + "/outcome", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ outcome: button.dataset.outcome, note }) });
    if (resp.ok) { outcomes.set(id, (await resp.json()).outcome); drawAlerts(); closeAlert(); }
    else alert(t("ack.failed") + " (" + resp.status + ")");
  } finally { button.disabled = false; }
}));

function receiveRead(read) {
  const li = el("li");
  li.dataset.seq = read.seq;
  li.append(el("span", "plate " + (read.colour || ""), read.no_plate ? t("noplate") : read.plate));
  li.append(el("span", "muted", (read.lane !== null && read.lane !== undefined ? t("lane") + " " + read.lane + " · " : "") +
    read.camera_id + " · " + fmtTime(read.captured_at)));
  if (!read.plate_valid && !read.no_plate) li.append(el("span", "badge warn", t("plate.suspect")));
  readsList.prepend(li);
  while (readsList.children.length > 40) readsList.lastChild.remove();
}

document.getElementById("check-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const plate = document.getElementById("check-plate").value.trim();
  const out = document.getElementById("check-result");
  if (!plate) return;
  const resp = await fetch("/api/v1/check?plate=" + encodeURIComponent(plate));
  if (!resp.ok) { out.replaceChildren(el("span", "error", t("check.failed"))); return; }
  const r = await resp.json();
  const parts = [el("div", null, r.plate + (r.plate_valid ? "" : " · " + t("plate.suspect")))];
  if (!r.hits.length) parts.push(el("div", "nohit", t("check.none") + " (v" + r.feed_version + ")"));
  r.hits.forEach((h) => parts.push(el("div", "hit", t("action." + h.action) + " · " + h.list_name + " · " +
    h.entry_plate + " · " + t("kind." + h.kind) + " — " + h.explanation)));
  out.replaceChildren(...parts);
});

async function refreshStatus() {
  try {
    const resp = await fetch("/api/v1/status");
    if (!resp.ok) return;
    const s = await resp.json();
    setTabletCheckpoint(s.checkpoint);
    document.getElementById("checkpoint").textContent = s.name ? s.name + " (" + s.checkpoint + ")" : s.checkpoint;
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
      c.reads_per_minute + " /min" + (c.errors ? " · " + c.errors + " " + t("errors") : "")]));
    document.getElementById("status").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, v)]));
  } catch (e) { /* the next poll tries again */ }
}
setInterval(refreshStatus, 5000);
refreshStatus();

function redrawAll() { drawAlerts(); refreshStatus(); }

let greeted = false;
connectLive((frame) => {
  if (frame.type === "hello") { greeted = true; }
  else if (frame.type === "alert") receiveAlert(frame.alert, greeted && Date.now() / 1000 - frame.alert.raised_at < 300);
  else if (frame.type === "outcome") { outcomes.set(frame.outcome.alert_id, frame.outcome); drawAlerts(); }
  else if (frame.type === "read") receiveRead(frame.read);
  else if (frame.type === "evidence") readEvidence(frame);
}, (up) => {
  const badge = document.getElementById("live");
  badge.className = "badge " + (up ? "ok" : "bad");
  badge.dataset.i18n = up ? "live.connected" : "live.lost";
  badge.textContent = t(badge.dataset.i18n);
});
