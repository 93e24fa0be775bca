// Alert routing and folding on the console: who an alert went to, and repeated hits folded into it.
import { CORDON_I18N, fmtTime, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "route.read": "本查缉点", "route.approach": "前置预警", "route.downstream": "下游查缉点（车辆正驶来）",
  "routed": "推送至", "routed.none": "仅指挥中心（不推送查缉点）", "folded": "重复比中", "folded.times": "次",
  "last.seen": "最近出现",
});
Object.assign(CORDON_I18N.en, {
  "route.read": "reading checkpoint", "route.approach": "early warning", "route.downstream": "downstream (heading there)",
  "routed": "Sent to", "routed.none": "Command centre only (no checkpoint)", "folded": "Repeated hits", "folded.times": "",
  "last.seen": "Last seen",
});
// A badge for the queue row: "repeated ×N" when later hits were folded into this alert.
export function foldBadge(a) {
  if (!a.folded) return null;
  const badge = document.createElement("span");
  badge.className = "badge warn folded";
  badge.dataset.folded = String(a.folded);
  badge.textContent = t("folded") + " ×" + (a.folded + 1) + (t("folded.times") ? " " + t("folded.times") : "");
  return badge;
}
// Rows for the detail's fact list: where it was routed and, if folded, when and where last seen.
export function routingFacts(a) {
  const routes = a.routed_to || [];
  const rows = [[t("routed"), routes.length ? routes.map((r) => r.checkpoint + " (" + t("route." + r.why) + ")").join(" · ")
    : t("routed.none")]];
  if (a.folded) {
    rows.push([t("folded"), String(a.folded + 1)]);
    if (a.last_seen_at) rows.push([t("last.seen"), fmtTime(a.last_seen_at) + " · " + (a.last_seen_checkpoint || a.checkpoint)]);
  }
  return rows;
}
// The shift commander's notice: on a commander's console an escalation (an intercept alert nobody answered)
// also raises a banner of its own until it is dismissed; once per alert, also across reconnects.
Object.assign(CORDON_I18N.zh, { "commander.notice": "值班长升级提醒：拦截预警超时未处置", "commander.dismiss": "知道了" });
Object.assign(CORDON_I18N.en, { "commander.notice": "Shift commander: an intercept alert has no outcome", "commander.dismiss": "Dismiss" });
const noticed = new Set();
export function commanderNotice(e, answered) {
  if (!e.commander_notice || answered || noticed.has(e.alert_id)) return;
  noticed.add(e.alert_id);
  let box = document.getElementById("commander-notices");
  if (!box) {
    box = document.createElement("div");
    box.id = "commander-notices";
    box.setAttribute("role", "alert");
    document.body.prepend(box);
  }
  const row = document.createElement("div");
  row.className = "commander-notice";
  row.dataset.alertId = e.alert_id;
  const text = document.createElement("span");
  text.textContent = t("commander.notice") + " · " + (e.plate_read || "") + " · " + (e.checkpoint || "") +
    (e.raised_at ? " · " + fmtTime(e.raised_at) : "");
  const dismiss = document.createElement("button");
  dismiss.textContent = t("commander.dismiss");
  dismiss.addEventListener("click", () => row.remove());
  row.append(text, dismiss);
  box.append(row);
}
