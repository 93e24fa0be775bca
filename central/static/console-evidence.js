// Evidence beside an alert: the small picture the edge sent with its hit (alert.thumbnail, base64 JPEG),
// then, in the detail panel, the full scene and plate crop the hub fetches from the checkpoint over MQTT
// (GET /api/v1/evidence/{checkpoint}/{epoch}/{seq}/{kind}). A clone alert names its other read in
// hit.entry_id ("rule:clone:CP/epoch/seq"): its pictures are shown too. Nothing from the network becomes
// HTML: pictures are only ever <img> elements (data: URL checked to be base64, or a blob: URL), reasons
// are textContent.
import { CORDON_I18N, el, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "evidence": "现场图片", "evidence.none": "该预警无现场图片", "evidence.scene": "现场全景",
  "evidence.plate": "车牌特写", "evidence.loading": "正在从检查站获取原图…", "evidence.other": "另一次识别",
  "evidence.failed": "原图暂不可用",
});
Object.assign(CORDON_I18N.en, {
  "evidence": "Evidence picture", "evidence.none": "No picture with this alert", "evidence.scene": "Scene",
  "evidence.plate": "Plate close-up", "evidence.loading": "Fetching the full picture from the checkpoint…",
  "evidence.other": "The other read", "evidence.failed": "Full picture not available yet",
});
const EVIDENCE_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const EVIDENCE_CLONE = /^rule:clone:([A-Za-z0-9][A-Za-z0-9_-]{0,63})\/(\d{1,20})\/(\d{1,20})$/;

function evidenceImg(alert, className) {
  if (typeof alert.thumbnail !== "string" || !EVIDENCE_BASE64.test(alert.thumbnail)) return null;
  const img = document.createElement("img");
  img.className = className;
  img.alt = t("evidence") + " · " + alert.plate_read;
  img.dataset.role = "evidence";
  img.src = "data:image/jpeg;base64," + alert.thumbnail;
  return img;
}
// Hook for the alert queue: the row's picture, or nothing.
export function evidenceThumb(alert) { return evidenceImg(alert, "evidence-thumb"); }

// One full picture of one read: a placeholder now, the picture (or the reason) when the hub answers.
function evidenceFull(read, kind, plate) {
  const fig = el("figure", "evidence-full " + kind);
  const note = el("p", "muted evidence-status", t("evidence.loading"));
  fig.append(note, el("figcaption", "muted", t("evidence." + kind)));
  const url = "/api/v1/evidence/" + [read.checkpoint, read.epoch, read.seq, kind].map(encodeURIComponent).join("/");
  fetch(url, { credentials: "same-origin" }).then(async (resp) => {
    const type = resp.headers.get("Content-Type") || "";
    if (resp.ok && type.startsWith("image/jpeg")) {
      const img = document.createElement("img");
      img.className = "evidence-full-picture";
      img.dataset.kind = kind;
      img.alt = t("evidence." + kind) + " · " + plate;
      img.src = URL.createObjectURL(await resp.blob());
      note.replaceWith(img);
      return;
    }
    let reason = "HTTP " + resp.status;
    try { const body = await resp.json(); if (typeof body.error === "string") reason = body.error; } catch { /* keep */ }
    note.textContent = t("evidence.failed") + ": " + reason;
  }).catch((err) => { note.textContent = t("evidence.failed") + ": " + err; });
  return fig;
}

// Hook for the detail panel: the thumbnail with its caption (or a line saying there is none), then the
// full scene and plate crop of the read, and of the other read of a clone alert.
export function evidenceFigure(alert) {
  const box = el("div", "evidence-box");
  const fig = el("figure", "evidence");
  fig.append(evidenceImg(alert, "evidence-picture") || el("p", "muted evidence-none", t("evidence.none")),
    el("figcaption", "muted", t("evidence")));
  box.append(fig);
  const reads = [{ checkpoint: alert.checkpoint, epoch: alert.epoch, seq: alert.seq }];
  const other = EVIDENCE_CLONE.exec((alert.hit && alert.hit.entry_id) || "");
  if (other) reads.push({ checkpoint: other[1], epoch: other[2], seq: other[3], other: true });
  for (const read of reads) {
    const row = el("div", "evidence-row");
    if (read.other) row.append(el("p", "muted", t("evidence.other") + " · " + read.checkpoint));
    row.append(evidenceFull(read, "scene", alert.plate_read), evidenceFull(read, "plate", alert.plate_read));
    box.append(row);
  }
  return box;
}
