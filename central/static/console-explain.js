// Why an alert matched, in the page's language. The hub and the edges write a hit's explanation in one
// fixed English form per rule (protocols/matching.py, permits.py, alerting.py; fixed per matcher_version),
// for machines and webhooks; the console reads that form and says it in words from the dictionary, so no
// raw English reaches the Chinese page. A clone's explanation comes in both languages ("中文 / English"):
// the page shows its own half, and the clone's reason (two read identities) becomes the two checkpoints'
// names. A form this module does not know is shown as it came (the browser checks would then report it).
import { cloneReason } from "/common/hits.js";
import { CORDON_I18N, cordonLang, t, tf } from "/common/i18n.js";
import { checkpointName, drugName } from "./console-names.js";

Object.assign(CORDON_I18N.zh, {
  // (the five match kinds' words are in i18n.js, shared with the tablet)
  "kind.clone": "套牌研判", "kind.rule": "规则报警", "kind.kit": "毒品快检",
  "kind.person": "人员布控比中", "kind.permit": "无运输许可",
  "why.exact": "识别号牌 {read} 与布控号牌 {entry} 完全一致",
  "why.equivalent": "识别号牌 {read} 与布控号牌 {entry} 仅形近字不同：{swaps}",
  "why.province": "识别号牌 {read} 与布控号牌 {entry} 省份字不同：布控「{entry_p}」识别为「{read_p}」",
  "why.province.missing": "识别号牌 {read} 缺少布控号牌 {entry} 的省份字「{entry_p}」",
  "why.swaps": "，另有形近字 {swaps}",
  "why.edit.for": "识别号牌 {read} 与布控号牌 {entry} 差一字：第 {at} 位「{entry_c}」识别为「{read_c}」",
  "why.edit.missing": "识别号牌 {read} 与布控号牌 {entry} 差一字：第 {at} 位漏识「{c}」",
  "why.edit.extra": "识别号牌 {read} 与布控号牌 {entry} 差一字：第 {at} 位多识「{c}」",
  "why.wildcard": "识别号牌 {read} 符合布控号牌模式 {pattern}（* 为任意多位，? 为一位）",
  "why.at_edge": "（查缉点本地比中，布控库 v{version}）",
  "why.permit": "号牌 {plate}（{what}）不在许可名单「{permit}」中",
  "why.no_plate": "车辆无可识别号牌（相机上报：{raw}）", "why.no_plate.empty": "车辆无可识别号牌",
  "why.kit": "快检{call}：{drugs}（试剂 {kit}，结果编号 {id}）", "why.kit.positive": "阳性", "why.kit.invalid": "无效",
  "why.person": "快检 {id}：受检人身份证号摘要在人员布控名单上",
  "why.score": "匹配度 {score}%",
  "colour.blue": "蓝牌", "colour.yellow": "黄牌", "colour.green": "绿牌", "colour.yellow_green": "黄绿牌",
  "colour.white": "白牌", "colour.black": "黑牌",
  "vtype.car": "小型车", "vtype.suv": "越野车", "vtype.van": "面包车", "vtype.bus": "客车", "vtype.truck": "货车",
  "vtype.hazmat": "危化品运输车", "vtype.trailer": "挂车", "vtype.motorcycle": "摩托车",
});
Object.assign(CORDON_I18N.en, {
  "kind.clone": "cloned plate", "kind.rule": "rule", "kind.kit": "drug quick test",
  "kind.person": "person watchlist", "kind.permit": "no permit",
  "why.exact": "read {read} is exactly the listed {entry}",
  "why.equivalent": "read {read} differs from the listed {entry} only by look-alike characters: {swaps}",
  "why.province": "read {read} differs from the listed {entry} in the province: {entry_p} read as {read_p}",
  "why.province.missing": "read {read} lacks the province {entry_p} of the listed {entry}",
  "why.swaps": ", and look-alikes {swaps}",
  "why.edit.for": "read {read} differs from the listed {entry} by one character: {entry_c} read as {read_c} at position {at}",
  "why.edit.missing": "read {read} differs from the listed {entry} by one character: {c} missing at position {at}",
  "why.edit.extra": "read {read} differs from the listed {entry} by one character: an extra {c} at position {at}",
  "why.wildcard": "read {read} fits the listed pattern {pattern} (* any run, ? one character)",
  "why.at_edge": " (matched at the checkpoint, watchlists v{version})",
  "why.permit": "plate {plate} ({what}) is not on the permit list \u201c{permit}\u201d",
  "why.no_plate": "vehicle without a readable plate (the camera sent {raw})", "why.no_plate.empty": "vehicle without a readable plate",
  "why.kit": "quick test {call}: {drugs} (kit {kit}, result {id})", "why.kit.positive": "positive", "why.kit.invalid": "invalid",
  "why.person": "quick test {id}: the subject's ID digest is on a person watchlist",
  "why.score": "score {score}%",
  "colour.blue": "blue plate", "colour.yellow": "yellow plate", "colour.green": "green plate",
  "colour.yellow_green": "yellow-green plate", "colour.white": "white plate", "colour.black": "black plate",
  "vtype.car": "car", "vtype.suv": "SUV", "vtype.van": "van", "vtype.bus": "bus", "vtype.truck": "truck",
  "vtype.hazmat": "hazmat vehicle", "vtype.trailer": "trailer", "vtype.motorcycle": "motorcycle",
});

const AT_EDGE = / \(matched at the checkpoint, feed version (\d+)\)$/;
const FORMS = [
  [/^read (\S+) = entry (\S+)$/, (m) => tf("why.exact", { read: m[1], entry: m[2] })],
  [/^read (\S+) ≈ entry (\S+): province (\S)↔(\S)(?:, (.+))?$/,
    (m) => tf("why.province", { read: m[1], entry: m[2], read_p: m[3], entry_p: m[4] }) + swapsAfter(m[5])],
  [/^read (\S+) ≈ entry (\S+): province (\S) missing(?:, (.+))?$/,
    (m) => tf("why.province.missing", { read: m[1], entry: m[2], entry_p: m[3] }) + swapsAfter(m[4])],
  [/^read (\S+) ≈ entry (\S+): (\S) for (\S) at (\d+)$/,
    (m) => tf("why.edit.for", { read: m[1], entry: m[2], read_c: m[3], entry_c: m[4], at: m[5] })],
  [/^read (\S+) ≈ entry (\S+): missing (\S) at (\d+)$/,
    (m) => tf("why.edit.missing", { read: m[1], entry: m[2], c: m[3], at: m[4] })],
  [/^read (\S+) ≈ entry (\S+): extra (\S) at (\d+)$/,
    (m) => tf("why.edit.extra", { read: m[1], entry: m[2], c: m[3], at: m[4] })],
  [/^read (\S+) ≈ entry (\S+): (\S↔\S(?:, \S↔\S)*)$/,
    (m) => tf("why.equivalent", { read: m[1], entry: m[2], swaps: swaps(m[3]) })],
  [/^read (\S+) matches pattern (\S+)(?:: (.+))?$/,
    (m) => tf("why.wildcard", { read: m[1], pattern: m[2] }) + swapsAfter(m[3])],
  [/^vehicle without a readable plate \(camera sent '(.*)'\)$/,
    (m) => (m[1] ? tf("why.no_plate", { raw: m[1] }) : t("why.no_plate.empty"))],
  [/^vehicle without a readable plate \(camera sent "(.*)"\)$/,
    (m) => (m[1] ? tf("why.no_plate", { raw: m[1] }) : t("why.no_plate.empty"))],
  [/^(\S+) (positive|invalid): (.*) \((\S+)\)$/,
    (m) => tf("why.kit", { kit: m[1], call: t("why.kit." + m[2]), id: m[4],
      drugs: m[3].split(", ").filter(Boolean).map(drugName).join(listSep()) })],
  [/^quick test (\S+): the subject's keyed ID hash is on this person list$/, (m) => tf("why.person", { id: m[1] })],
  [/^(.*?) ?plate (\S+) has no (.+)$/,
    (m) => tf("why.permit", { plate: m[2], permit: m[3], what: m[1].split(" ").filter(Boolean).map(colourWord).join(" ") })],
];

function listSep() { return cordonLang() === "zh" ? "、" : ", "; }
function swaps(text) { return text.split(", ").join(listSep()); }
function swapsAfter(text) { return text ? tf("why.swaps", { swaps: swaps(text) }) : ""; }
function known(key) { return Object.prototype.hasOwnProperty.call(CORDON_I18N[cordonLang()], key); }
// A plate colour or vehicle type the camera named, in words when it is one of the usual ones.
function colourWord(word) { return known("colour." + word) ? t("colour." + word) : vehicleWord(word); }
export function vehicleWord(word) { return known("vtype." + String(word).toLowerCase()) ? t("vtype." + String(word).toLowerCase()) : word; }

// A clone's explanation is "中文 / English" and the checkpoint names appear as often in either half, so
// the halves are found by counting separators even when a name holds one.
function cloneHalf(text) {
  const parts = text.split(" / ");
  if (parts.length < 2 || parts.length % 2) return text;
  const half = parts.length / 2;
  return (cordonLang() === "en" ? parts.slice(half) : parts.slice(0, half)).join(" / ");
}

// The match kind in words: exact, look-alike ... and the rules' own kinds.
export function kindWords(hit) {
  if (hit.kind === "exact" && !hit.entry_plate && / has no /.test(hit.explanation || "")) return t("kind.permit");
  const key = "kind." + hit.kind;
  return Object.prototype.hasOwnProperty.call(CORDON_I18N[cordonLang()], key) ? t(key) : hit.kind;
}

// The sentence that says why: the matcher's form in words, plus where it was matched.
export function explain(hit) {
  let text = hit.explanation || "";
  if (hit.kind === "clone") return cloneHalf(text);
  let suffix = "";
  const edge = AT_EDGE.exec(text);
  if (edge) { text = text.slice(0, edge.index); suffix = tf("why.at_edge", { version: edge[1] }); }
  for (const [form, say] of FORMS) {
    const m = form.exec(text);
    if (m) return say(m) + suffix;
  }
  return text + suffix;
}

// The reason to show as the list's 布控事由: the entry's own, or for a clone the two reads by place.
export function reasonText(hit) {
  return hit.kind === "clone" ? cloneReason(hit.reason, checkpointName) : hit.reason || "";
}

// The match score as people read it ("匹配度 95%"); rules and tests have none worth showing.
export function scoreText(hit) {
  return ["exact", "equivalent", "edit", "province", "wildcard"].includes(hit.kind) && hit.entry_plate
    ? tf("why.score", { score: Math.round(hit.score * 100) }) : "";
}
