// Alert routing and folding on the console: who an alert went to, repeated hits folded into it, and the
// shift commander's notice of an escalation.
import { CORDON_I18N, el, fmtTime, t, tf } from "/common/i18n.js";
import { checkpointName, listName } from "./console-names.js";

Object.assign(CORDON_I18N.zh, {
  "route.read": "本查缉点", "route.approach": "前置预警", "route.downstream": "下游查缉点（车辆正驶来）",
  "routed": "推送至", "routed.none": "仅指挥中心（不推送查缉点）", "folded": "重复比中", "folded.times": "{n} 次",
  "last.seen": "最近出现",
  "commander.notice": "值班长升级提醒：拦截预警超时未处置", "commander.dismiss": "知道了", "commander.view": "查看",
  "commander.since": "{time} 报警，{duration}无人处置", "routed.item": "{place}（{why}）",
  "dur.s": "{n} 秒", "dur.min": "{n} 分钟",
});
Object.assign(CORDON_I18N.en, {
  "route.read": "reading checkpoint", "route.approach": "early warning", "route.downstream": "downstream (heading there)",
  "routed": "Sent to", "routed.none": "Command centre only (no checkpoint)", "folded": "Repeated hits", "folded.times": "{n} times",
  "last.seen": "Last seen",
  "commander.notice": "Shift commander: an intercept alert has no outcome", "commander.dismiss": "Dismiss",
  "commander.view": "Open", "commander.since": "raised {time}, no outcome for {duration}",
  "routed.item": "{place} ({why})", "dur.s": "{n} s", "dur.min": "{n} min",
});

// Rows for the detail's fact list: where it was routed and, if folded, how often and when and where last seen.
export function routingFacts(a) {
  const routes = a.routed_to || [];
  const rows = [[t("routed"), routes.length
    ? routes.map((r) => tf("routed.item", { place: checkpointName(r.checkpoint), why: t("route." + r.why) })).join(" · ") : t("routed.none")]];
  if (a.folded) {
    rows.push([t("folded"), tf("folded.times", { n: a.folded + 1 })]);
    if (a.last_seen_at) rows.push([t("last.seen"), fmtTime(a.last_seen_at) + " · " + checkpointName(a.last_seen_checkpoint || a.checkpoint)]);
  }
  return rows;
}

// The shift commander's notice: on a commander's console an escalation (an intercept alert nobody answered)
// also raises a notice of its own, in a strip above the panels (it never covers the detail), naming the
// alert's plate, list and checkpoint; "open" selects the alert; it goes when dismissed or when the outcome
// comes. Once per alert, also across reconnects.
const noticed = new Set();
const notices = new Map();  // alert_id -> { escalation, alert (when known) }
export function commanderNotice(e, answered, alert, open) {
  if (!e.commander_notice || answered || noticed.has(e.alert_id)) return;
  noticed.add(e.alert_id);
  notices.set(e.alert_id, { e, alert, open });
  drawNotices();
}
// The alert got an outcome (or its row arrived): the notice goes, or learns the alert's facts.
export function noticeAnswered(alertId) { if (notices.delete(alertId)) drawNotices(); }
export function noticeAlert(alert) {
  const n = notices.get(alert.alert_id);
  if (n && !n.alert) { n.alert = alert; drawNotices(); }
}
function duration(seconds) {
  return seconds < 120 ? tf("dur.s", { n: Math.round(seconds) }) : tf("dur.min", { n: Math.round(seconds / 60) });
}
export function drawNotices() {
  const box = document.getElementById("commander-notices");
  box.replaceChildren(...[...notices.values()].map(({ e, alert, open }) => {
    const row = el("div", "commander-notice");
    row.dataset.alertId = e.alert_id;
    const plate = (alert && alert.plate_read) || e.plate_read || "";
    const list = alert ? listName(alert.hit) : e.list_name || "";
    const raised = (alert && alert.raised_at) || e.raised_at;
    const text = el("div", "notice-text");
    text.append(el("strong", null, t("commander.notice")), el("span", "plate " + ((alert && alert.colour) || ""), plate));
    const what = el("span", "notice-list", list);
    what.dataset.name = "list";
    const where = el("span", "notice-place", checkpointName((alert && alert.checkpoint) || e.checkpoint || ""));
    where.dataset.name = "checkpoint";
    text.append(what, where);
    if (raised) text.append(el("span", "muted", tf("commander.since", { time: fmtTime(raised), duration: duration(e.after_s || 0) })));
    const view = el("button", "notice-view", t("commander.view"));
    view.type = "button";
    view.addEventListener("click", () => open(e.alert_id));
    const dismiss = el("button", "notice-dismiss", t("commander.dismiss"));
    dismiss.type = "button";
    dismiss.addEventListener("click", () => { notices.delete(e.alert_id); drawNotices(); });
    row.append(text, view, dismiss);
    return row;
  }));
  box.hidden = notices.size === 0;
}
