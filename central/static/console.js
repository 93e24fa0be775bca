"use strict";
applyI18n();
document.getElementById("lang").addEventListener("click", toggleLang);
document.getElementById("theme").addEventListener("click", toggleTheme);
const seen = new Set();
const outcomes = new Map();
function showOutcome(o) {
  outcomes.set(o.alert_id, o);
  const li = document.querySelector('#alerts li[data-alert-id="' + CSS.escape(o.alert_id) + '"]');
  if (!li) return;
  let line = li.querySelector(".outcome-line");
  if (!line) { line = el("div", "outcome-line"); li.append(line); }
  line.textContent = t("outcomes") + ": " + t("outcome." + o.outcome) + (o.note ? " · " + o.note : "") + " · " +
    o.officer + " · " + fmtTime(o.acknowledged_at);
}
const checkpoints = new Map();
function drawCheckpoints() {
  const list = document.getElementById("checkpoints");
  list.replaceChildren(...[...checkpoints.values()].sort((a, b) => a.checkpoint.localeCompare(b.checkpoint)).map((c) => {
    const li = el("li");
    li.dataset.checkpoint = c.checkpoint;
    li.append(el("span", null, c.checkpoint));
    const extra = (c.outbox_depth ? " · " + t("outbox") + " " + c.outbox_depth : "") +
      (c.feed_version !== undefined && c.feed_version !== null ? " · " + t("feed") + " v" + c.feed_version : "");
    li.append(el("span", "badge " + (c.online ? "ok" : "bad"), t(c.online ? "online" : "offline") + extra));
    if (c.clock_suspect) {
      li.append(el("span", "badge warn clock", t("clock") + " " + Math.round(c.clock_offset_s) + " s"));
    }
    if (c.dropped_reads) li.append(el("span", "badge warn dropped", t("dropped") + " " + c.dropped_reads));
    return li;
  }));
}
connectLive((frame) => {
  if (frame.type === "hello") { (frame.checkpoints || []).forEach((c) => checkpoints.set(c.checkpoint, c)); drawCheckpoints(); }
  else if (frame.type === "checkpoint") { checkpoints.set(frame.checkpoint.checkpoint, frame.checkpoint); drawCheckpoints(); }
  else if (frame.type === "alert" && !seen.has(frame.alert.alert_id)) {
    seen.add(frame.alert.alert_id);
    document.getElementById("no-alerts").hidden = true;
    document.getElementById("alerts").prepend(renderAlert(frame.alert));
    if (outcomes.has(frame.alert.alert_id)) showOutcome(outcomes.get(frame.alert.alert_id));
  }
  else if (frame.type === "outcome") showOutcome(frame.outcome);
}, (up) => {
  const badge = document.getElementById("live");
  badge.className = "badge " + (up ? "ok" : "bad");
  badge.dataset.i18n = up ? "live.connected" : "live.lost";
  badge.textContent = t(badge.dataset.i18n);
});
