// Alerts read at another checkpoint and routed here by the hub: an early warning from an approach camera,
// or a vehicle heading this way from a checkpoint upstream. Marked so the officer knows it is not here yet.
import { CORDON_I18N, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, { "route.approach": "前置预警 · 车辆即将到达", "route.downstream": "车辆正驶向本查缉点", "route.from": "识别于" });
Object.assign(CORDON_I18N.en, { "route.approach": "Early warning · vehicle approaching", "route.downstream": "Vehicle heading your way", "route.from": "read at" });
let tabletCheckpoint = null;  // set from the status (tablet.js) once known
export function setTabletCheckpoint(cp) { tabletCheckpoint = cp; }
// This tablet's checkpoint id (null until the first status).
export function tabletCheckpointId() { return tabletCheckpoint; }
// The banner for an alert routed here from elsewhere, or null for one read here.
export function routeNote(alert) {
  if (tabletCheckpoint && alert.checkpoint === tabletCheckpoint) return null;
  const routes = (alert.routed_to || []).filter((r) => r.why !== "read");
  const mine = routes.find((r) => r.checkpoint === tabletCheckpoint) || (tabletCheckpoint ? null : routes[0]);
  if (!mine) return null;
  const note = document.createElement("div");
  note.className = "route-note " + mine.why;
  note.dataset.why = mine.why;
  note.textContent = t("route." + mine.why) + " · " + t("route.from") + " " + alert.checkpoint;
  return note;
}
