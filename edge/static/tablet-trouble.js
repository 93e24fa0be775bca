// What is wrong at this checkpoint, said plainly at the top of the tablet: a camera that stopped reading (its
// lane is unwatched), the uplink to the command centre down (alerts still come from the local watchlist
// copy, records wait to be sent), the page's live connection to this checkpoint's server lost.
import { CORDON_I18N, el, fmtTime, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "trouble.camera": "相机 {id} 已 {min} 分钟无识别（最后 {at}），该车道的车辆未被识别",
  "trouble.camera.never": "相机 {id} 自启动以来无识别，该车道的车辆未被识别",
  "trouble.uplink": "与指挥中心的上行链路中断：预警仍按本地布控库（v{v}）比对，{n} 条记录待上传",
  "trouble.uplink.since": "（最早 {min} 分钟前）",
  "trouble.hub": "指挥中心离线：预警仍按本地布控库（v{v}）比对，{n} 条记录待上传",
  "trouble.live": "本页与查缉点服务器的实时连接中断，正在重连：新预警暂不显示",
});
Object.assign(CORDON_I18N.en, {
  "trouble.camera": "Camera {id} has read nothing for {min} min (last at {at}): its lane is not being read",
  "trouble.camera.never": "Camera {id} has read nothing since the start: its lane is not being read",
  "trouble.uplink": "Uplink to the command centre down: alerts still come from the local watchlists (v{v}); {n} records waiting to be sent",
  "trouble.uplink.since": " (oldest {min} min ago)",
  "trouble.hub": "Command centre offline: alerts still come from the local watchlists (v{v}); {n} records waiting to be sent",
  "trouble.live": "This page lost its live connection to the checkpoint's server, reconnecting: new alerts do not show meanwhile",
});
function fill(key, values) {
  return Object.entries(values).reduce((text, [k, v]) => text.split("{" + k + "}").join(String(v)), t(key));
}

let lastStatus = null;
let liveUp = true;
// The problems in a status (GET /api/v1/status), as sentences in the page's language.
export function troubles(s, live) {
  const out = [];
  if (!live) out.push(["live", t("trouble.live")]);
  if (s) {
    const now = Date.now() / 1000;
    Object.entries(s.cameras || {}).sort().forEach(([id, c]) => {
      if (!c.stale) return;
      const seen = c.last_seen_at || c.last_read_at;
      out.push(["camera", seen ? fill("trouble.camera", { id, min: Math.max(1, Math.round((now - seen) / 60)), at: fmtTime(seen) })
        : fill("trouble.camera.never", { id })]);
    });
    const up = s.uplink.state === "connected";
    if (!up || s.uplink.hub_online === false) {
      const values = { v: s.feed.version, n: s.outbox.depth };
      let text = fill(up ? "trouble.hub" : "trouble.uplink", values);
      if (s.outbox.oldest_unacked_s) text += fill("trouble.uplink.since", { min: Math.max(1, Math.round(s.outbox.oldest_unacked_s / 60)) });
      out.push(["uplink", text]);
    }
  }
  return out;
}
export function drawTrouble(status, live) {
  if (status !== undefined) lastStatus = status;
  if (live !== undefined) liveUp = live;
  const box = document.getElementById("trouble");
  const found = troubles(lastStatus, liveUp);
  box.hidden = !found.length;
  box.replaceChildren(...found.map(([kind, text]) => {
    const p = el("p", "trouble-" + kind, text);
    p.dataset.kind = kind;
    return p;
  }));
}
