// Evidence beside an alert: the small picture the edge sent with its hit (alert.thumbnail, base64 JPEG).
// The queue row shows it small; the detail panel shows it large. Nothing from the network becomes HTML:
// the picture is only ever an <img> whose data: URL is checked to be base64 first.
"use strict";
Object.assign(CORDON_I18N.zh, { "evidence": "现场图片", "evidence.none": "该预警无现场图片" });
Object.assign(CORDON_I18N.en, { "evidence": "Evidence picture", "evidence.none": "No picture with this alert" });
const EVIDENCE_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

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
function evidenceThumb(alert) { return evidenceImg(alert, "evidence-thumb"); }
// Hook for the detail panel: the picture with its caption, or a line saying there is none.
function evidenceFigure(alert) {
  const fig = el("figure", "evidence");
  fig.append(evidenceImg(alert, "evidence-picture") || el("p", "muted evidence-none", t("evidence.none")),
    el("figcaption", "muted", t("evidence")));
  return fig;
}
