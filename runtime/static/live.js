// One WebSocket to the server's live feed, reconnecting with backoff. Frames are JSON objects.
// ``query()``, when given, is asked at every (re)connect for the feed's query string (the console's
// "?after=POSITION": the alerts it missed while it was away, from whichever hub it reaches).
import { el, fmtTime, t } from "./i18n.js";

export function connectLive(onFrame, onState, query = () => "") {
  let delay = 500;
  function open() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/ws" + query());
    ws.onopen = () => { delay = 500; onState(true); };
    ws.onmessage = (ev) => { try { onFrame(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
    ws.onclose = () => { onState(false); setTimeout(open, delay); delay = Math.min(delay * 2, 10000); };
  }
  open();
}
export function renderAlert(alert, seen) {
  const hit = alert.hit;
  const li = el("li", "alert " + hit.action);
  li.dataset.alertId = alert.alert_id;
  const plate = el("span", "plate " + (alert.colour || ""), alert.plate_read);
  plate.dataset.role = "plate-read";
  li.append(plate);
  const mid = el("div");
  mid.append(el("strong", null, t("action." + hit.action) + " · " + hit.list_name));
  mid.append(el("div", "muted", alert.checkpoint + " · " + t("camera") + " " + alert.camera_id + " · " +
    fmtTime(alert.captured_at)));
  li.append(mid);
  li.append(el("span", "badge", t("kind." + hit.kind) + " " + Math.round(hit.score * 100) + "%"));
  li.append(el("div", "why", hit.explanation + (hit.reason ? " — " + t("reason") + ": " + hit.reason : "")));
  return li;
}
