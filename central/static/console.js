import { applyI18n, el, fmtTime, t, toggleLang, toggleTheme } from "/common/i18n.js";
import { connectLive, renderAlert } from "/common/live.js";
import { evidenceFigure, evidenceThumb } from "./console-evidence.js";
import { drawMap } from "./console-map.js";
import { receiptBadge, receiptFacts, receiveReceipt } from "./console-receipts.js";
import { commanderNotice, foldBadge, routingFacts } from "./console-routing.js";

applyI18n();
document.getElementById("lang").addEventListener("click", () => { toggleLang(); redraw(); });
document.getElementById("theme").addEventListener("click", toggleTheme);

const alerts = new Map();       // alert_id -> alert (deduped: a reconnect replays the recent ones)
const outcomes = new Map();     // alert_id -> outcome history, oldest first
const escalations = new Map();  // alert_id -> escalation
const checkpoints = new Map();  // checkpoint -> last status entry
let ring = [];
let selected = null;
let hellos = 0;

// Sound: browsers allow it only after a user gesture, so the first tap on the console unlocks it.
let audio = null;
function unlockAudio() {
  if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
  if (audio.state !== "running") audio.resume();
  document.getElementById("sound-hint").hidden = true;
  window.cordonAudioState = () => audio.state;
}
document.addEventListener("pointerdown", unlockAudio, { capture: true });
document.addEventListener("keydown", unlockAudio, { capture: true });
const sounded = new Set();
function escalationSound(alertId) {
  if (sounded.has(alertId)) return;  // once per alert, also when a reconnect replays the escalation
  sounded.add(alertId);
  if (!audio || audio.state !== "running") return;
  for (let i = 0; i < 3; i++) {
    const osc = audio.createOscillator(); const gain = audio.createGain();
    const at = audio.currentTime + i * 0.4;
    osc.type = "square"; osc.frequency.setValueAtTime(880, at); gain.gain.value = 0.2;
    osc.connect(gain).connect(audio.destination); osc.start(at); osc.stop(at + 0.25);
  }
  window.cordonEscalationSounds = (window.cordonEscalationSounds || 0) + 1;
}

function addOutcome(o) {
  const history = outcomes.get(o.alert_id) || [];
  const key = (x) => x.acknowledged_at + "|" + x.officer + "|" + x.outcome;
  if (!history.some((h) => key(h) === key(o))) history.push(o);
  history.sort((a, b) => a.acknowledged_at - b.acknowledged_at);
  outcomes.set(o.alert_id, history);
}
function outcomeText(o) {
  return t("outcome." + o.outcome) + (o.note ? " · " + o.note : "") + " · " + o.officer + " · " + fmtTime(o.acknowledged_at);
}

// The queue: highest priority first, then newest.
function drawAlerts() {
  const sorted = [...alerts.values()].sort((a, b) => (b.hit.priority - a.hit.priority) || (b.raised_at - a.raised_at));
  document.getElementById("no-alerts").hidden = sorted.length > 0;
  document.getElementById("alerts").replaceChildren(...sorted.map((a) => {
    const li = renderAlert(a);
    const thumb = evidenceThumb(a);
    if (thumb) li.prepend(thumb);
    const fold = foldBadge(a);
    if (fold) li.append(fold);
    const receipt = receiptBadge(a);
    if (receipt) li.append(receipt);
    const history = outcomes.get(a.alert_id);
    if (history) li.append(el("div", "outcome-line", t("outcomes") + ": " + outcomeText(history[history.length - 1])));
    if (escalations.has(a.alert_id)) {
      li.classList.add(history ? "was-escalated" : "escalated");
      li.append(el("span", "badge bad escalation", t("escalated")));
    }
    if (a.alert_id === selected) li.classList.add("selected");
    li.tabIndex = 0;
    li.addEventListener("click", () => select(a.alert_id));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") select(a.alert_id); });
    return li;
  }));
}

function drawCheckpoints() {
  drawMap(document.getElementById("map"), ring, (id) => checkpoints.get(id));
  const onMap = new Set(ring.map((c) => c.checkpoint));
  const list = document.getElementById("checkpoints");
  list.replaceChildren(...[...checkpoints.values()].sort((a, b) => a.checkpoint.localeCompare(b.checkpoint)).map((c) => {
    const li = el("li");
    li.dataset.checkpoint = c.checkpoint;
    li.append(el("span", null, c.checkpoint + (onMap.has(c.checkpoint) ? "" : " · " + t("map.absent"))));
    const extra = (c.outbox_depth ? " · " + t("outbox") + " " + c.outbox_depth : "") +
      (c.feed_version !== undefined && c.feed_version !== null ? " · " + t("feed") + " v" + c.feed_version : "");
    li.append(el("span", "badge " + (c.online ? "ok" : "bad"), t(c.online ? "online" : "offline") + extra));
    if (c.clock_suspect) li.append(el("span", "badge warn clock", t("clock") + " " + Math.round(c.clock_offset_s) + " s"));
    if (c.dropped_reads) li.append(el("span", "badge warn dropped", t("dropped") + " " + c.dropped_reads));
    return li;
  }));
}

function select(alertId) {
  selected = alertId;
  drawAlerts();
  drawDetail(true);
}
// The detail panel: why it matched, what came of it, and where the vehicle passed (an audited search).
function drawDetail(searchPassages) {
  const a = alerts.get(selected);
  const body = document.getElementById("detail-body");
  document.getElementById("detail-none").hidden = !!a;
  body.hidden = !a;
  if (!a) return;
  const passages = searchPassages ? el("ul", "passages") : body.querySelector(".passages") || el("ul", "passages");
  const rows = [
    [t("read"), a.plate_read], [t("listed"), a.hit.entry_plate],
    [t("list"), t("action." + a.hit.action) + " · " + a.hit.list_name + " · " + t("priority") + " " + a.hit.priority],
    [t("explanation"), t("kind." + a.hit.kind) + " " + Math.round(a.hit.score * 100) + "% · " + a.hit.explanation],
    [t("reason"), a.hit.reason || "—"],
    [t("checkpoint"), a.checkpoint + " · " + t("camera") + " " + a.camera_id + (a.lane ? " · " + t("lane") + " " + a.lane : "")],
    [t("time"), fmtTime(a.captured_at)],
    ...routingFacts(a),
    ...receiptFacts(a),
  ];
  const dl = el("dl", "facts");
  for (const [k, v] of rows) { dl.append(el("dt", null, k), el("dd", null, v)); }
  const esc = escalations.get(a.alert_id);
  if (esc) dl.append(el("dt", null, t("escalated")), el("dd", "escalation", fmtTime(esc.escalated_at)));
  const history = el("ul", "history");
  const past = outcomes.get(a.alert_id) || [];
  history.replaceChildren(...(past.length ? past.map((o) => el("li", null, outcomeText(o))) : [el("li", "muted", t("outcomes.none"))]));
  body.replaceChildren(el("span", "plate " + (a.colour || ""), a.plate_read), evidenceFigure(a), dl,
    el("h3", null, t("outcomes")), history, el("h3", null, t("passages")), passages);
  if (searchPassages) loadPassages(a, passages);
}
async function loadPassages(a, list) {
  list.replaceChildren(el("li", "muted", "…"));
  const q = "plate=" + encodeURIComponent(a.plate_read) + "&reason=" + encodeURIComponent("alert " + a.alert_id) + "&limit=20";
  try {
    const resp = await fetch("/api/v1/reads?" + q, { credentials: "same-origin" });
    if (resp.status === 403) { list.replaceChildren(el("li", "muted", t("passages.denied"))); return; }
    if (!resp.ok) throw new Error(String(resp.status));
    const found = (await resp.json()).reads || [];
    list.replaceChildren(...(found.length ? found.map((r) => el("li", null, fmtTime(r.captured_at) + " · " + r.checkpoint +
      " · " + t("camera") + " " + r.camera_id)) : [el("li", "muted", t("passages.none"))]));
  } catch (e) {
    list.replaceChildren(el("li", "error", t("passages.failed")));
  }
}

function redraw() { drawCheckpoints(); drawAlerts(); drawDetail(false); }

fetch("/api/v1/ring", { credentials: "same-origin" }).then((r) => r.ok ? r.json() : { checkpoints: [] })
  .then((body) => { ring = body.checkpoints || []; drawCheckpoints(); })
  .catch(() => { ring = []; });

connectLive((frame) => {
  if (frame.type === "hello") {
    hellos += 1;
    if (hellos > 1) {  // caught up after a reconnect: the replayed alerts merge by alert_id
      const note = document.getElementById("reconnected");
      note.textContent = t("reconnected") + " " + fmtTime(Date.now() / 1000);
      note.hidden = false;
    }
    (frame.checkpoints || []).forEach((c) => checkpoints.set(c.checkpoint, c));
    drawCheckpoints();
  } else if (frame.type === "checkpoint") {
    checkpoints.set(frame.checkpoint.checkpoint, frame.checkpoint);
    drawCheckpoints();
  } else if (frame.type === "alert" || frame.type === "alert_folded") {
    alerts.set(frame.alert.alert_id, frame.alert);
    drawAlerts();
  } else if (frame.type === "outcome") {
    addOutcome(frame.outcome);
    drawAlerts();
    if (frame.outcome.alert_id === selected) drawDetail(false);
  } else if (frame.type === "receipt") {
    receiveReceipt(frame.receipt);
    drawAlerts();
    if (frame.receipt.alert_id === selected) drawDetail(false);
  } else if (frame.type === "escalation") {
    const e = frame.escalation;
    escalations.set(e.alert_id, { ...(escalations.get(e.alert_id) || {}), ...e });
    if (!outcomes.has(e.alert_id)) escalationSound(e.alert_id);
    commanderNotice(e, outcomes.has(e.alert_id));
    drawAlerts();
    if (e.alert_id === selected) drawDetail(false);
  }
}, (up) => {
  const badge = document.getElementById("live");
  badge.className = "badge " + (up ? "ok" : "bad");
  badge.dataset.i18n = up ? "live.connected" : "live.lost";
  badge.textContent = t(badge.dataset.i18n);
});
