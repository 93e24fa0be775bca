// The alert queue, built for scanning: one dense row per alert (plate, action and list, checkpoint, how long
// ago, match kind in words, repeats, outcome state), keyboard navigation (up/down/home/end move, Enter or
// space opens the detail), and a designed state for loading, empty, offline and error.
import { CORDON_I18N, el, fmtDateTime, t, tf } from "/common/i18n.js";
import { evidenceThumb } from "./console-evidence.js";
import { kindWords } from "./console-explain.js";
import { checkpointName, listName } from "./console-names.js";

Object.assign(CORDON_I18N.zh, {
  "ago.now": "刚刚", "ago.min": "{n} 分钟前", "ago.h": "{n} 小时前",
  "state.pending": "待处置", "state.escalated": "超时未处置", "folded.title": "同一车辆重复比中 {n} 次",
  "queue.loading": "正在载入预警…", "queue.empty": "暂无预警", "queue.empty.hint": "比中布控名单的车辆将出现在这里，并伴随提示音",
  "queue.offline": "与中心的连接已中断，正在重连；重连后将补齐期间的预警", "queue.error": "无法载入预警",
  "queue.count": "{n} 条", "queue.count.one": "{n} 条", "queue.keys": "↑↓ 选择 · Enter 查看",
});
Object.assign(CORDON_I18N.en, {
  "ago.now": "just now", "ago.min": "{n} min ago", "ago.h": "{n} h ago",
  "state.pending": "No outcome", "state.escalated": "Overdue", "folded.title": "The same vehicle hit {n} times",
  "queue.loading": "Loading alerts…", "queue.empty": "No alerts yet",
  "queue.empty.hint": "Vehicles that hit a watchlist appear here, with a sound",
  "queue.offline": "Connection to the hub lost, reconnecting; alerts raised meanwhile follow on reconnect",
  "queue.error": "Alerts cannot be loaded", "queue.count": "{n} alerts", "queue.count.one": "{n} alert",
  "queue.keys": "↑↓ select · Enter open",
});

// How long ago, as people scan it; the exact time is the element's title.
export function timeAgo(unixSeconds, now) {
  const s = Math.max(0, (now || Date.now() / 1000) - unixSeconds);
  if (s < 60) return t("ago.now");
  if (s < 3600) return tf("ago.min", { n: Math.floor(s / 60) });
  if (s < 86400) return tf("ago.h", { n: Math.floor(s / 3600) });
  return fmtDateTime(unixSeconds).slice(5, 16);
}

export function actionBadge(action) { return el("span", "act act-" + action, t("action." + action)); }

// The outcome state of an alert: its last outcome, overdue (escalated, no outcome) or waiting for one.
export function stateBadge(history, escalated) {
  const last = history && history[history.length - 1];
  if (last) return el("span", "badge ok state", t("outcome." + last.outcome));
  if (escalated) return el("span", "badge bad state escalation", t("state.escalated"));
  return el("span", "badge warn state", t("state.pending"));
}

// One row of the queue.
export function queueRow(a, history, escalated, selected) {
  const hit = a.hit;
  const li = el("li", "alert " + hit.action + (selected ? " selected" : ""));
  li.dataset.alertId = a.alert_id;
  li.tabIndex = selected ? 0 : -1;
  li.setAttribute("role", "option");
  li.setAttribute("aria-selected", selected ? "true" : "false");
  if (escalated && !history) li.classList.add("escalated");
  const thumb = evidenceThumb(a);
  if (thumb) li.append(thumb);
  const plate = el("span", "plate " + (a.colour || ""), a.plate_read);
  plate.dataset.role = "plate-read";
  const list = el("div", "row-list");
  const name = el("span", "list-name", listName(hit));
  name.dataset.name = "list";
  list.append(actionBadge(hit.action), name);
  const place = el("div", "row-place muted", checkpointName(a.checkpoint));
  place.dataset.name = "checkpoint";
  const main = el("div", "row-main");
  main.append(list, place);
  const ago = el("time", "ago", timeAgo(a.raised_at));
  ago.dataset.at = String(a.raised_at);
  ago.title = fmtDateTime(a.raised_at);
  const meta = el("div", "row-meta");
  meta.append(ago, el("div", "row-kind muted", kindWords(hit)));
  const state = el("div", "row-state");
  const last = history && history[history.length - 1];
  if (last) {
    const line = el("div", "outcome-line");
    line.append(stateBadge(history, escalated));
    if (last.note) {
      const note = el("span", "outcome-note muted", last.note);
      note.title = last.note;
      note.dataset.mayClip = "note";  // a note may be cut in the row: the detail shows it whole
      line.append(note);
    }
    state.append(line);
  } else {
    state.append(stateBadge(history, escalated));
  }
  if (a.folded) {
    const fold = el("span", "badge warn folded", "×" + (a.folded + 1));
    fold.dataset.folded = String(a.folded);
    fold.title = tf("folded.title", { n: a.folded + 1 });
    state.append(fold);
  }
  li.append(plate, main, meta, state);
  return li;
}

// Keep the "time ago" of every row true without redrawing the queue.
export function refreshAges(root) {
  const now = Date.now() / 1000;
  root.querySelectorAll("time.ago[data-at]").forEach((node) => { node.textContent = timeAgo(Number(node.dataset.at), now); });
}

// Up/down/home/end move through the rows, Enter or space opens the focused one.
export function keyboardQueue(list, open) {
  list.addEventListener("keydown", (ev) => {
    const rows = [...list.querySelectorAll("li.alert")];
    if (!rows.length) return;
    const at = rows.indexOf(document.activeElement);
    let next = null;
    if (ev.key === "ArrowDown") next = rows[Math.min(rows.length - 1, at + 1)];
    else if (ev.key === "ArrowUp") next = rows[Math.max(0, at - 1)];
    else if (ev.key === "Home") next = rows[0];
    else if (ev.key === "End") next = rows[rows.length - 1];
    else if ((ev.key === "Enter" || ev.key === " ") && at >= 0) { ev.preventDefault(); open(rows[at].dataset.alertId); return; }
    if (!next) return;
    ev.preventDefault();
    rows.forEach((r) => { r.tabIndex = r === next ? 0 : -1; });
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  });
}

// The queue's state line: loading, empty (with what to expect), offline, error; nothing once it has rows.
export function drawQueueState(state, count) {
  const box = document.getElementById("queue-state");
  const key = { loading: "queue.loading", offline: "queue.offline", error: "queue.error" }[state];
  document.getElementById("queue-count").textContent = count ? tf("queue.count", { n: count }) : "";
  box.className = "queue-state " + state;
  if (key) {
    box.replaceChildren(el("p", null, t(key)));
    box.hidden = false;
  } else if (!count) {
    box.replaceChildren(el("p", "queue-empty-title", t("queue.empty")), el("p", "muted", t("queue.empty.hint")));
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  document.getElementById("alerts").classList.toggle("stale", state === "offline" || state === "error");
}
