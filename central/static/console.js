// The command console's live view: the alert queue and the selected alert's detail beside it, the ring map
// and the checkpoints (status, software and feed version), the shift commander's notices; live over one
// WebSocket. It asks once who is signed in (console-me.js) and shows only what the role may do.
import { CORDON_I18N, el, fmtDateTime, fmtTime, t, tf, toggleLang, toggleTheme } from "/common/i18n.js";
import { connectLive } from "/common/live.js";
import { evidenceFigure } from "./console-evidence.js";
import { explain, kindWords, reasonText, scoreText } from "./console-explain.js";
import { drawMap } from "./console-map.js";
import { applyCapabilities, can, drawMeFailure, drawWho, ready } from "./console-me.js";
import { checkpointName, listName, ringLoaded } from "./console-names.js";
import { actionBadge, drawQueueState, keyboardQueue, queueRow, refreshAges, stateBadge, timeAgo } from "./console-queue.js";
import { receiptBadge, receiptFacts, receiveReceipt } from "./console-receipts.js";
import { commanderNotice, drawNotices, noticeAlert, noticeAnswered, routingFacts } from "./console-routing.js";

Object.assign(CORDON_I18N.zh, {
  "fact.read": "识别号牌", "fact.listed": "布控号牌", "fact.list": "布控名单", "fact.kind": "比中方式",
  "fact.why": "比中说明", "fact.reason": "布控事由", "fact.place": "查缉点", "fact.time": "识别时间",
  "fact.priority": "优先级", "fact.escalated": "升级提醒", "fact.escalated.answered": "{time}（已处置）",
  "cp.software": "软件 {v}", "cp.software.none": "软件版本未上报", "cp.feed": "布控库 v{v}", "cp.feed.none": "布控库版本未上报",
  "cp.feed.lag": "落后于中心 v{hub}", "cp.stale": "相机失联：{cameras}", "cp.none": "尚无查缉点上报状态",
  "outcome.line": "{outcome} · {officer} · {time}",
});
Object.assign(CORDON_I18N.en, {
  "fact.read": "Read", "fact.listed": "Listed plate", "fact.list": "Watchlist", "fact.kind": "Match",
  "fact.why": "Why it matched", "fact.reason": "Reason", "fact.place": "Checkpoint", "fact.time": "Read at",
  "fact.priority": "Priority", "fact.escalated": "Escalated", "fact.escalated.answered": "{time} (answered since)",
  "cp.software": "software {v}", "cp.software.none": "software not reported", "cp.feed": "watchlists v{v}",
  "cp.feed.none": "watchlists version not reported", "cp.feed.lag": "behind the hub's v{hub}",
  "cp.stale": "camera silent: {cameras}", "cp.none": "No checkpoint has reported yet",
  "outcome.line": "{outcome} · {officer} · {time}",
});

document.getElementById("lang").addEventListener("click", toggleLang);
document.addEventListener("cordon-lang", () => redraw());
document.getElementById("theme").addEventListener("click", toggleTheme);

const alerts = new Map();       // alert_id -> alert (deduped: a reconnect replays the recent ones)
const outcomes = new Map();     // alert_id -> outcome history, oldest first
const escalations = new Map();  // alert_id -> escalation
const checkpoints = new Map();  // checkpoint -> last status entry
let ring = [];
let selected = null;
let hellos = 0;
// The newest alert position this console has had: every hub on the store shares the positions, so after a
// reconnect (to this hub or another behind the front door) it asks for the alerts after it.
let position = null;
let live = "loading";           // loading | ready | offline | error
let hubFeed = null;             // the hub's feed version, to show which edge lags

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
  return tf("outcome.line", { outcome: t("outcome." + o.outcome), officer: o.officer, time: fmtTime(o.acknowledged_at) }) +
    (o.note ? " · " + o.note : "");
}

// The queue: highest priority first, then newest.
function drawAlerts() {
  const list = document.getElementById("alerts");
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.alertId : null;
  const sorted = [...alerts.values()].sort((a, b) => (b.hit.priority - a.hit.priority) || (b.raised_at - a.raised_at));
  list.replaceChildren(...sorted.map((a) => {
    // the checkpoint's tablet showed the alarm (and when it was acknowledged): a mark in the row's state
    const li = queueRow(a, outcomes.get(a.alert_id), escalations.has(a.alert_id), a.alert_id === selected, [receiptBadge(a)]);
    li.addEventListener("click", () => select(a.alert_id));
    return li;
  }));
  const rows = list.querySelectorAll("li.alert");
  if (rows.length && !list.querySelector("li[tabindex='0']")) rows[0].tabIndex = 0;
  if (focused) {
    const again = list.querySelector(`li[data-alert-id="${CSS.escape(focused)}"]`);
    if (again) { rows.forEach((r) => { r.tabIndex = r === again ? 0 : -1; }); again.focus(); }
  }
  drawQueueState(live, sorted.length);
}

async function loadHubFeed() {
  if (!can("feed")) return;
  try {
    const resp = await fetch("/api/v1/feed", { credentials: "same-origin" });
    if (resp.ok) { hubFeed = (await resp.json()).version; drawCheckpoints(); }
  } catch { /* the list says what each edge reports; the lag mark waits for the next try */ }
}

function drawCheckpoints() {
  drawMap(document.getElementById("map"), ring, (id) => checkpoints.get(id));
  const onMap = new Set(ring.map((c) => c.checkpoint));
  const list = document.getElementById("checkpoints");
  const known = [...checkpoints.values()].sort((a, b) => a.checkpoint.localeCompare(b.checkpoint));
  list.replaceChildren(...known.map((c) => {
    const li = el("li", "cp-row");
    li.dataset.checkpoint = c.checkpoint;
    const name = el("span", "cp-name", checkpointName(c.checkpoint));
    name.dataset.name = "checkpoint";
    const head = el("div", "cp-head");
    const id = el("span", "muted cp-id", c.checkpoint);
    id.dataset.id = "";
    head.append(el("span", "badge " + (c.online ? "ok" : "bad"), t(c.online ? "online" : "offline")), name, id,
      ...(onMap.has(c.checkpoint) ? [] : [el("span", "muted", t("map.absent"))]));
    const facts = el("div", "cp-facts");
    facts.append(el("span", "cp-software", c.software ? tf("cp.software", { v: c.software }) : t("cp.software.none")));
    const hasFeed = c.feed_version !== undefined && c.feed_version !== null;
    const lag = hasFeed && hubFeed !== null && c.feed_version < hubFeed;
    const feed = el("span", "cp-feed" + (lag ? " lagging" : ""), hasFeed ? tf("cp.feed", { v: c.feed_version }) : t("cp.feed.none"));
    facts.append(feed);
    if (lag) facts.append(el("span", "badge warn", tf("cp.feed.lag", { hub: hubFeed })));
    if (c.outbox_depth) facts.append(el("span", "badge", t("outbox") + " " + c.outbox_depth));
    if (c.clock_suspect) facts.append(el("span", "badge warn clock", t("clock") + " " + Math.round(c.clock_offset_s) + " s"));
    if (c.dropped_reads) facts.append(el("span", "badge warn dropped", t("dropped") + " " + c.dropped_reads));
    if ((c.stale_cameras || []).length) facts.append(el("span", "badge warn", tf("cp.stale", { cameras: c.stale_cameras.join(", ") })));
    li.append(head, facts);
    return li;
  }));
  document.getElementById("checkpoints-none").hidden = known.length > 0;
}

function select(alertId) {
  selected = alertId;
  drawAlerts();
  drawDetail(true);
}

// The detail panel: what matched and why first, then the pictures, what came of it, and where the vehicle
// passed (an audited search, for the roles that may search the record).
// `text` with each of `words` (plates, ids) in a span of its own that never wraps: a line may break between
// 皖 and L2G506 or after SD-DZ-, and a plate split over two lines reads as two things.
function keepWhole(text, words) {
  const out = document.createDocumentFragment();
  const wanted = [...new Set(words.filter(Boolean))].sort((x, y) => y.length - x.length);
  let rest = text;
  while (rest) {
    let at = -1, word = "";
    for (const w of wanted) {
      const i = rest.indexOf(w);
      if (i >= 0 && (at < 0 || i < at)) { at = i; word = w; }
    }
    if (at < 0) { out.append(rest); break; }
    if (at > 0) out.append(rest.slice(0, at));
    const span = el("span", null, word);
    span.dataset.whole = "";
    out.append(span);
    rest = rest.slice(at + word.length);
  }
  return out;
}
function drawDetail(searchPassages) {
  const a = alerts.get(selected);
  const body = document.getElementById("detail-body");
  document.getElementById("detail-none").hidden = !!a;
  body.hidden = !a;
  if (!a) return;
  const hit = a.hit;
  const history = outcomes.get(a.alert_id) || [];
  const esc = escalations.get(a.alert_id);
  const head = el("div", "detail-head");
  const plate = el("span", "plate " + (a.colour || ""), a.plate_read);
  plate.dataset.role = "plate-read";
  const list = el("strong", "list-name", listName(hit));
  list.dataset.name = "list";
  head.append(plate, actionBadge(hit.action), list, stateBadge(history.length ? history : null, !!esc));
  const place = el("span", null, checkpointName(a.checkpoint));
  place.dataset.name = "checkpoint";
  const where = el("span");
  const whole = [a.plate_read, hit.entry_plate, a.checkpoint, a.camera_id];
  const ids = el("span", "muted");
  ids.append(keepWhole(" · " + a.checkpoint + " · " + t("camera") + " " + a.camera_id +
    (a.lane ? " · " + t("lane") + " " + a.lane : ""), whole));
  where.append(place, ids);
  const rows = [
    [t("fact.read"), a.plate_read],
    ...(hit.entry_plate && hit.entry_plate !== a.plate_read ? [[t("fact.listed"), hit.entry_plate]] : []),
    [t("fact.kind"), [kindWords(hit), scoreText(hit)].filter(Boolean).join(" · ")],
    [t("fact.why"), explain(hit)],
    [t("fact.reason"), reasonText(hit) || "—"],
    [t("fact.place"), where],
    [t("fact.time"), fmtDateTime(a.captured_at) + " · " + timeAgo(a.captured_at)],
    [t("fact.priority"), String(hit.priority)],
    ...routingFacts(a),
    ...receiptFacts(a),
  ];
  if (esc) rows.push([t("fact.escalated"), history.length ? tf("fact.escalated.answered", { time: fmtTime(esc.escalated_at) }) : fmtTime(esc.escalated_at)]);
  const dl = el("dl", "facts");
  for (const [k, v] of rows) {
    const dd = el("dd");
    dd.append(v instanceof Node ? v : keepWhole(v, whole));
    dl.append(el("dt", null, k), dd);
  }
  if (esc && !history.length) dl.lastChild.classList.add("escalation");
  const past = el("ul", "history");
  past.replaceChildren(...(history.length ? history.map((o) => el("li", null, outcomeText(o))) : [el("li", "muted", t("outcomes.none"))]));
  const parts = [head, dl, evidenceFigure(a), el("h3", null, t("outcomes")), past];
  if (can("record.search")) {
    const passages = searchPassages ? el("ul", "passages") : body.querySelector(".passages") || el("ul", "passages");
    parts.push(el("h3", null, t("passages")), passages);
    if (searchPassages) loadPassages(a, passages);
  }
  body.replaceChildren(...parts);
}
async function loadPassages(a, list) {
  list.replaceChildren(el("li", "muted", "…"));
  const q = "plate=" + encodeURIComponent(a.plate_read) + "&reason=" + encodeURIComponent("alert " + a.alert_id) + "&limit=20";
  try {
    const resp = await fetch("/api/v1/reads?" + q, { credentials: "same-origin" });
    if (!resp.ok) throw new Error(String(resp.status));
    const found = (await resp.json()).reads || [];
    list.replaceChildren(...(found.length ? found.map((r) => el("li", null, fmtDateTime(r.captured_at) + " · " +
      checkpointName(r.checkpoint) + " · " + r.checkpoint + " · " + t("camera") + " " + r.camera_id)) : [el("li", "muted", t("passages.none"))]));
  } catch (e) {
    list.replaceChildren(el("li", "error", t("passages.failed")));
  }
}

function redraw() { drawCheckpoints(); drawAlerts(); drawDetail(false); drawNotices(); drawWho(); }

function openAlert(alertId) {
  if (!alerts.has(alertId)) return;
  select(alertId);
  const row = document.querySelector(`#alerts li[data-alert-id="${CSS.escape(alertId)}"]`);
  if (row) { row.focus(); row.scrollIntoView({ block: "nearest" }); }
}

keyboardQueue(document.getElementById("alerts"), openAlert);
setInterval(() => refreshAges(document.getElementById("alerts")), 30000);
drawQueueState(live, 0);

function onFrame(frame) {
  if (typeof frame.position === "number") {
    position = frame.type === "hello" ? frame.position : Math.max(position ?? 0, frame.position);
  }
  if (frame.type === "hello") {
    hellos += 1;
    live = "ready";
    if (hellos > 1) {  // caught up after a reconnect: the replayed alerts merge by alert_id
      const note = document.getElementById("reconnected");
      note.textContent = t("reconnected") + " " + fmtTime(Date.now() / 1000);
      note.hidden = false;
    }
    (frame.checkpoints || []).forEach((c) => checkpoints.set(c.checkpoint, c));
    drawCheckpoints();
    drawAlerts();
    loadHubFeed();
  } else if (frame.type === "checkpoint") {
    const c = frame.checkpoint;
    const before = checkpoints.get(c.checkpoint);
    checkpoints.set(c.checkpoint, c);
    if (before && before.feed_version !== c.feed_version) loadHubFeed();
    drawCheckpoints();
  } else if (frame.type === "alert" || frame.type === "alert_folded") {
    alerts.set(frame.alert.alert_id, frame.alert);
    noticeAlert(frame.alert);
    drawAlerts();
    if (frame.alert.alert_id === selected) drawDetail(false);
  } else if (frame.type === "outcome") {
    addOutcome(frame.outcome);
    noticeAnswered(frame.outcome.alert_id);
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
    commanderNotice(e, outcomes.has(e.alert_id), alerts.get(e.alert_id), openAlert);
    drawAlerts();
    if (e.alert_id === selected) drawDetail(false);
  }
}

function onState(up) {
  const badge = document.getElementById("live");
  badge.className = "badge " + (up ? "ok" : "bad");
  badge.dataset.i18n = up ? "live.connected" : "live.lost";
  badge.textContent = t(badge.dataset.i18n);
  if (!up && live !== "error") { live = "offline"; drawQueueState(live, alerts.size); }
}

// Who is signed in first (the zone of every time, what to show), then the ring's names, then live.
ready.then(async () => {
  // console-intel.js adds its tab without a capability of its own: the record's searches decide it.
  const intel = document.getElementById("tab-intel");
  if (intel && !intel.dataset.capability) intel.dataset.capability = "intel";
  applyCapabilities();
  drawWho();
  ring = await ringLoaded;
  drawCheckpoints();
  connectLive(onFrame, onState, () => (position === null ? "" : "?after=" + position));
}).catch((error) => {
  live = "error";
  drawQueueState(live, 0);
  drawMeFailure(error);
});
