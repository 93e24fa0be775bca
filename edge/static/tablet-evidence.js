// The picture in the full-screen alarm: the scene and the plate close-up from this edge's own evidence
// store (an officer-only route, works with the uplink down); the thumbnail that came with the alert stands
// in when the store has no scene. Only <img> elements with URLs built from numbers or checked base64.
import { CORDON_I18N, el, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, { "evidence": "现场图片", "evidence.none": "无现场图片" });
Object.assign(CORDON_I18N.en, { "evidence": "Evidence picture", "evidence.none": "No picture" });
const EVIDENCE_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const evidenceKept = new Set();  // "epoch/seq" of reads whose pictures the edge has said are on disk

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
  scene.addEventListener("error", () => {
    // The alarm can open before the camera's pictures are on disk: the evidence frame for this read
    // (readEvidence below) asks again, so a miss here is not final.
    if (scene.dataset.fallback) return;  // the thumbnail failed too
    if (!scene.dataset.retried) {
      scene.dataset.missing = "1";
      if (evidenceKept.has(Number(alert.epoch) + "/" + Number(alert.seq))) { retryAlarmEvidence(alert); return; }
    }
    if (typeof alert.thumbnail === "string" && EVIDENCE_BASE64.test(alert.thumbnail)) {
      scene.dataset.fallback = "thumbnail";
      scene.src = "data:image/jpeg;base64," + alert.thumbnail;
    } else {
      scene.hidden = true;
    }
  });
  scene.src = evidenceUrl(alert, "snapshot");
  const plate = document.createElement("img");
  plate.className = "evidence-plate";
  plate.dataset.role = "evidence-plate";
  plate.alt = alert.plate_read;
  plate.addEventListener("error", () => {
    plate.hidden = true;
    if (plate.dataset.retried) return;
    plate.dataset.missing = "1";
    if (evidenceKept.has(Number(alert.epoch) + "/" + Number(alert.seq))) retryAlarmEvidence(alert);
  });
  plate.src = evidenceUrl(alert, "plate");
  fig.append(scene, plate);
  return fig;
}
// A read's pictures are kept: its row in the live passages gets the thumbnail.
export function readEvidence(frame) {
  evidenceKept.add(Number(frame.epoch) + "/" + Number(frame.seq));
  retryAlarmEvidence(frame);
  if (!Array.isArray(frame.kinds) || !frame.kinds.includes("thumb")) return;
  const li = document.querySelector('#reads li[data-seq="' + Number(frame.seq) + '"]');
  if (!li || li.querySelector("img.read-thumb")) return;
  const img = document.createElement("img");
  img.className = "read-thumb";
  img.alt = "";
  img.addEventListener("error", () => img.remove(), { once: true });
  img.src = evidenceUrl({ seq: frame.seq, epoch: frame.epoch }, "thumb");
  li.prepend(img);
}
// The pictures of a read arrived after its alarm opened: load the ones the alarm could not show yet.
function retryAlarmEvidence(frame) {
  const fig = document.querySelector('#overlay figure.evidence[data-seq="' + Number(frame.seq) + '"]');
  if (!fig || fig.dataset.epoch !== String(Number(frame.epoch))) return;
  const alert = { seq: frame.seq, epoch: frame.epoch };
  for (const [selector, kind] of [["img.evidence-scene", "snapshot"], ["img.evidence-plate", "plate"]]) {
    const img = fig.querySelector(selector);
    if (!img || !img.dataset.missing) continue;
    delete img.dataset.missing;
    img.dataset.retried = "1";
    img.addEventListener("load", () => { img.hidden = false; delete img.dataset.fallback; }, { once: true });
    img.src = evidenceUrl(alert, kind) + "&retry=" + Date.now();
  }
}
