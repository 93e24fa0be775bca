// Alarm receipts on the console: that an alert's alarm was shown on a tablet at the checkpoint, and when it
// was acknowledged there (the "receipt" frames of the live feed, docs/protocol.md#alarm-receipts).
import { CORDON_I18N, el, fmtTime, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "receipt": "查缉点终端", "receipt.shown": "已在终端显示", "receipt.acked": "已签收", "receipt.unacked": "尚未签收",
  "receipt.none": "尚无终端回执", "receipt.badge": "终端已显示", "receipt.badge.acked": "终端已签收",
});
Object.assign(CORDON_I18N.en, {
  "receipt": "Checkpoint tablet", "receipt.shown": "shown on the tablet", "receipt.acked": "acknowledged", "receipt.unacked": "not acknowledged yet",
  "receipt.none": "No receipt from a tablet yet", "receipt.badge": "shown at checkpoint", "receipt.badge.acked": "acknowledged at checkpoint",
});

const receipts = new Map();  // alert_id -> Map(checkpoint -> receipt)

export function receiveReceipt(r) {
  const byCheckpoint = receipts.get(r.alert_id) || new Map();
  byCheckpoint.set(r.checkpoint, r);
  receipts.set(r.alert_id, byCheckpoint);
}
function line(r) {
  const parts = [r.checkpoint];
  if (r.shown_at) parts.push(t("receipt.shown") + " " + fmtTime(r.shown_at));
  if (r.acknowledged_at) parts.push(t("receipt.acked") + " " + fmtTime(r.acknowledged_at) + (r.outcome ? " (" + t("outcome." + r.outcome) + ")" : ""));
  else parts.push(t("receipt.unacked"));
  return parts.join(" · ");
}
// Rows for the detail's fact list: one per checkpoint whose tablet showed the alarm.
export function receiptFacts(a) {
  const byCheckpoint = receipts.get(a.alert_id);
  if (!byCheckpoint || !byCheckpoint.size) {
    return a.hit.action === "intercept" ? [[t("receipt"), t("receipt.none")]] : [];
  }
  return [...byCheckpoint.values()].map((r) => [t("receipt"), line(r)]);
}
// A badge for the queue row: the alarm reached a checkpoint's tablet (and was acknowledged there).
export function receiptBadge(a) {
  const byCheckpoint = receipts.get(a.alert_id);
  if (!byCheckpoint || !byCheckpoint.size) return null;
  const acked = [...byCheckpoint.values()].some((r) => r.acknowledged_at);
  const badge = el("span", "badge " + (acked ? "ok" : "warn") + " receipt", t(acked ? "receipt.badge.acked" : "receipt.badge"));
  badge.dataset.receipt = acked ? "acknowledged" : "shown";
  return badge;
}
