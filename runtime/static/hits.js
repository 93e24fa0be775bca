// How a rule's hit reads for people, on the console and the tablet alike: a rule's "list" by its name in the
// dictionary (the hub names them in English: "suspected cloned plate"), and a clone's two reads in words,
// not the hub's internal string of ids ("impossible_trip; earlier read SD-LC-003/1796.../451 camera ...").
import { CORDON_I18N, t, tf } from "./i18n.js";

Object.assign(CORDON_I18N.zh, {
  "rule.clone": "疑似套牌车", "rule.no-plate": "无牌车",
  "clone.same_time": "同一时间出现在两地", "clone.impossible_trip": "两地间行程时间不可能",
  "clone.attribute_conflict": "车辆特征不一致",
  "clone.reads": "{kind}：先经 {first}（相机 {first_cam}），后经 {second}（相机 {second_cam}）",
});
Object.assign(CORDON_I18N.en, {
  "rule.clone": "Suspected clone", "rule.no-plate": "No readable plate",
  "clone.same_time": "at two places at the same time", "clone.impossible_trip": "a trip too fast to be possible",
  "clone.attribute_conflict": "the vehicles differ",
  "clone.reads": "{kind}: first at {first} (camera {first_cam}), then at {second} (camera {second_cam})",
});

// A rule's name for its "list" (the clone and no-plate rules), or null for a watchlist (its own name).
export function ruleListName(hit) {
  if (hit.list_id === "rule:clone") return t("rule.clone");
  if (hit.list_id === "rule:no-plate") return t("rule.no-plate");
  return null;
}

const CLONE_REASON = /^(same_time|impossible_trip|attribute_conflict); earlier read ([^/\s]+)\/\d+\/\d+ camera (.*); later read ([^/\s]+)\/\d+\/\d+ camera (.*)$/;

// A clone hit's reason in words, each checkpoint as `placeName` says it; the reason as it came when it is
// not a clone's.
export function cloneReason(reason, placeName) {
  const m = CLONE_REASON.exec(reason || "");
  if (!m) return reason || "";
  return tf("clone.reads", { kind: t("clone." + m[1]), first: placeName(m[2]), first_cam: m[3],
    second: placeName(m[4]), second_cam: m[5] });
}
