// The picture in the full-screen alarm: the scene and the plate close-up from this edge's own evidence
// store (an officer-only route, works with the uplink down). The page asks only for pictures the edge has
// said it keeps (its evidence frames, also replayed with the recent alerts when the page connects), so an
// alarm without pictures makes no failed request; the thumbnail that came with the alert stands in until
// the full pictures are on disk. Only <img> elements with URLs built from numbers or checked base64.
import { CORDON_I18N, el, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, { "evidence": "现场图片", "evidence.none": "无现场图片" });
Object.assign(CORDON_I18N.en, { "evidence": "Evidence picture", "evidence.none": "No picture" });
const EVIDENCE_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const kept = new Map();  // "epoch/seq" -> the kinds of picture the edge keeps for that read
const thumbs = new Map();  // seq -> epoch of reads in the live passages whose thumbnail is kept

function key(epoch, seq) { return Number(epoch) + "/" + Number(seq); }
function evidenceUrl(alert, kind) {
  return "/api/v1/evidence/" + Number(alert.seq) + "/" + kind + "?epoch=" + Number(alert.epoch);
}
export function tabletEvidence(alert) {
  const fig = el("figure", "evidence");
  fig.dataset.seq = String(Number(alert.seq));
  fig.dataset.epoch = String(Number(alert.epoch));
  const scene = document.createElement("img");
  scene.className = "evidence-scene";
  scene.dataset.role = "evidence";
  scene.alt = t("evidence") + " · " + alert.plate_read;
  const plate = document.createElement("img");
  plate.className = "evidence-plate";
  plate.dataset.role = "evidence-plate";
  plate.alt = alert.plate_read;
  const none = el("figcaption", "muted evidence-none", t("evidence.none"));
  none.dataset.i18n = "evidence.none";
  fig.append(scene, plate, none);
  show(fig, alert);
  return fig;
}
// Put the pictures the edge keeps (or the alert's thumbnail) into an alarm's figure.
function show(fig, alert) {
  const kinds = kept.get(key(alert.epoch, alert.seq)) || [];
  const scene = fig.querySelector("img.evidence-scene");
  const plate = fig.querySelector("img.evidence-plate");
  if (kinds.includes("snapshot")) {
    scene.src = evidenceUrl(alert, "snapshot");
    delete scene.dataset.fallback;
  } else if (typeof alert.thumbnail === "string" && EVIDENCE_BASE64.test(alert.thumbnail)) {
    scene.src = "data:image/jpeg;base64," + alert.thumbnail;
    scene.dataset.fallback = "thumbnail";
  }
  scene.hidden = !scene.getAttribute("src");
  if (kinds.includes("plate")) plate.src = evidenceUrl(alert, "plate");
  plate.hidden = !plate.getAttribute("src");
  fig.querySelector(".evidence-none").hidden = !scene.hidden || !plate.hidden;
}
function thumbImage(seq, epoch) {
  const img = document.createElement("img");
  img.className = "read-thumb";
  img.alt = "";
  img.addEventListener("error", () => img.remove(), { once: true });
  img.src = evidenceUrl({ seq, epoch }, "thumb");
  return img;
}
// The thumbnail of a passing vehicle's read, when the edge has said it keeps one (else null).
export function readThumb(seq) {
  const epoch = thumbs.get(Number(seq));
  return epoch === undefined ? null : thumbImage(Number(seq), epoch);
}
// The edge keeps a read's pictures: an alarm showing that read loads them, its row in the live passages
// gets the thumbnail.
export function readEvidence(frame) {
  if (!Array.isArray(frame.kinds)) return;
  kept.set(key(frame.epoch, frame.seq), frame.kinds);
  if (kept.size > 500) kept.delete(kept.keys().next().value);
  const fig = document.querySelector('#overlay figure.evidence[data-seq="' + Number(frame.seq) + '"]');
  if (fig && fig.dataset.epoch === String(Number(frame.epoch))) {
    show(fig, { seq: frame.seq, epoch: frame.epoch, thumbnail: null });
  }
  if (!frame.kinds.includes("thumb")) return;
  thumbs.set(Number(frame.seq), Number(frame.epoch));
  if (thumbs.size > 200) thumbs.delete(thumbs.keys().next().value);
  const li = document.querySelector('#reads li[data-seq="' + Number(frame.seq) + '"]');
  if (!li || li.querySelector("img.read-thumb")) return;
  li.prepend(thumbImage(Number(frame.seq), Number(frame.epoch)));
}
