// Evidence beside an alert: the small picture the edge sent with its hit (alert.thumbnail, base64 JPEG),
// then, in the detail panel, the full scene and plate crop the hub fetches from the checkpoint over MQTT
// (GET /api/v1/evidence/{checkpoint}/{epoch}/{seq}/{kind}). Only pictures the alert says exist are asked
// for: a hit the edge sent with a thumbnail had pictures; an alert without one says, in one line, that it
// has none, and asks for nothing (no request the hub would answer "not kept"). A clone alert names its other
// read in hit.entry_id ("rule:clone:CP/epoch/seq"); the hub makes it without pictures, so its two reads'
// pictures are fetched when someone asks (a button). What the hub answers is said in words by its status,
// never as the backend's English message. Nothing from the network becomes HTML: pictures are <img>
// elements (a data: URL checked to be base64, or a blob: URL), captions are text.
import { CORDON_I18N, el, t } from "/common/i18n.js";
import { checkpointName } from "./console-names.js";

Object.assign(CORDON_I18N.zh, {
  "evidence": "现场图片", "evidence.none": "该预警无现场图片", "evidence.scene": "现场全景",
  "evidence.plate": "车牌特写", "evidence.loading": "正在从查缉点获取原图…", "evidence.other": "另一次识别",
  "evidence.failed": "原图暂不可用", "evidence.notkept": "查缉点未保存该图片（未收到或已按配额清理）",
  "evidence.offline": "查缉点离线，上线后再取", "evidence.noreply": "查缉点未及时应答，请稍后再试",
  "evidence.fetch": "调取两次识别的原图", "evidence.reads": "两次识别的原图",
});
Object.assign(CORDON_I18N.en, {
  "evidence": "Evidence picture", "evidence.none": "No picture with this alert", "evidence.scene": "Scene",
  "evidence.plate": "Plate close-up", "evidence.loading": "Fetching the full picture from the checkpoint…",
  "evidence.other": "The other read", "evidence.failed": "Full picture not available",
  "evidence.notkept": "The checkpoint did not keep this picture (never received, or pruned for space)",
  "evidence.offline": "The checkpoint is offline: asked again when it is back",
  "evidence.noreply": "The checkpoint did not answer in time: try again later",
  "evidence.fetch": "Fetch both reads' full pictures", "evidence.reads": "Both reads' full pictures",
});
const EVIDENCE_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const EVIDENCE_CLONE = /^rule:clone:([A-Za-z0-9][A-Za-z0-9_-]{0,63})\/(\d{1,20})\/(\d{1,20})$/;
const FAILURE = { 404: "evidence.notkept", 409: "evidence.offline", 504: "evidence.noreply" };

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

// One full picture of one read: a placeholder now (the alert's thumbnail when it has one, `standIn`), the
// picture (or what became of it) when the hub answers. The thumbnail gives way to the full scene: the
// detail showed the same scene twice, small and large.
function evidenceFull(read, kind, plate, standIn) {
  const fig = el("figure", "evidence-full evidence-" + kind);
  const note = el("p", "muted evidence-status", t("evidence.loading"));
  if (standIn) fig.append(standIn);
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
      if (standIn) { standIn.replaceWith(img); note.remove(); } else note.replaceWith(img);
      return;
    }
    note.textContent = t(FAILURE[resp.status] || "evidence.failed");
    note.dataset.status = String(resp.status);
  }).catch(() => { note.textContent = t("evidence.failed"); });
  return fig;
}

function readRow(read, plate, standIn) {
  const row = el("div", "evidence-row");
  if (read.other) {
    const which = el("p", "muted", t("evidence.other") + " · " + checkpointName(read.checkpoint));
    row.append(which);
  }
  row.append(evidenceFull(read, "scene", plate, standIn), evidenceFull(read, "plate", plate));
  return row;
}

// Hook for the detail panel: the thumbnail and the full pictures of a read that has them; one line for an
// alert without; for a clone alert, a button that fetches both reads' pictures.
export function evidenceFigure(alert) {
  const box = el("div", "evidence-box");
  const thumb = evidenceImg(alert, "evidence-picture");
  const own = { checkpoint: alert.checkpoint, epoch: alert.epoch, seq: alert.seq };
  const other = EVIDENCE_CLONE.exec((alert.hit && alert.hit.entry_id) || "");
  if (thumb) {
    box.append(readRow(own, alert.plate_read, thumb));
  } else if (other) {
    const fetchBoth = el("button", "evidence-fetch", t("evidence.fetch"));
    fetchBoth.type = "button";
    fetchBoth.addEventListener("click", () => {
      fetchBoth.replaceWith(readRow(own, alert.plate_read),
        readRow({ checkpoint: other[1], epoch: other[2], seq: other[3], other: true }, alert.plate_read));
    });
    box.append(el("p", "muted evidence-none", t("evidence.none")), fetchBoth);
  } else {
    box.append(el("p", "muted evidence-none", t("evidence.none")));
  }
  return box;
}
