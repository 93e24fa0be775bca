// The ring as a schematic map: checkpoints placed from their coordinates (no map tiles, works offline).
import { CORDON_I18N, cordonLang, t } from "/common/i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const MAP_W = 600, MAP_H = 440, PAD_X = 120, PAD_Y = 30;  // room for the labels either side
export function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
// Equirectangular with the longitude squeezed by cos(mean latitude): true enough for one province.
export function projector(points) {
  const lats = points.map((p) => p.lat), lons = points.map((p) => p.lon);
  const k = Math.cos((Math.min(...lats) + Math.max(...lats)) / 2 * Math.PI / 180);
  const x0 = Math.min(...lons) * k, x1 = Math.max(...lons) * k, y0 = Math.min(...lats), y1 = Math.max(...lats);
  const scale = Math.min((MAP_W - 2 * PAD_X) / Math.max(x1 - x0, 1e-6), (MAP_H - 2 * PAD_Y) / Math.max(y1 - y0, 1e-6));
  const ox = (MAP_W - (x1 - x0) * scale) / 2, oy = (MAP_H - (y1 - y0) * scale) / 2;
  return (p) => [ox + (p.lon * k - x0) * scale, MAP_H - (oy + (p.lat - y0) * scale)];
}
// online green; offline red; a stale camera purple; clock suspect, dropped reads or a backed-up outbox
// amber; never heard grey.
function checkpointStatus(c) {
  if (!c) return "unknown";
  if (!c.online) return "offline";
  if ((c.stale_cameras || []).length) return "stale";
  if (c.clock_suspect || c.dropped_reads || (c.oldest_unacked_s || 0) > 60) return "degraded";
  return "online";
}
export function drawMap(svg, ring, statusOf) {
  const title = svg.querySelector("title");
  svg.replaceChildren(title);
  if (!ring.length) return;
  const project = projector(ring);
  const centre = ring.map(project).reduce((a, p) => [a[0] + p[0] / ring.length, a[1] + p[1] / ring.length], [0, 0]);
  // The ring line joins the checkpoints in the order they go round the centre.
  const around = ring.map((c) => ({ c, xy: project(c) }))
    .sort((a, b) => Math.atan2(a.xy[1] - centre[1], a.xy[0] - centre[0]) - Math.atan2(b.xy[1] - centre[1], b.xy[0] - centre[0]));
  svg.append(svgEl("polygon", { class: "ring-line", points: around.map((a) => a.xy.map((v) => v.toFixed(1)).join(",")).join(" ") }));
  const placed = [];
  for (const { c, xy } of around) {
    const status = checkpointStatus(statusOf(c.checkpoint));
    const g = svgEl("g", { class: "cp " + status, transform: "translate(" + xy[0].toFixed(1) + "," + xy[1].toFixed(1) + ")" });
    g.dataset.checkpoint = c.checkpoint;
    g.dataset.status = status;
    const st = statusOf(c.checkpoint);
    const staleNote = status === "stale" ? " · " + t("camera") + " " + st.stale_cameras.join(", ") : "";
    g.append(svgEl("title", {}, c.checkpoint + " · " + t("status." + status) + staleNote));
    g.append(svgEl("circle", { r: 9 }));
    const right = xy[0] >= centre[0];
    const label = cordonLang() === "en" ? (c.name_en || c.checkpoint) : (c.name || c.checkpoint);
    const anchor = { "text-anchor": right ? "start" : "end", x: right ? 16 : -16 };
    g.append(svgEl("text", { ...anchor, y: -1, class: "cp-name" }, label));
    g.append(svgEl("text", { ...anchor, y: 10, class: "cp-id" }, c.checkpoint));
    if (st && st.online && typeof st.reads_per_minute === "number") {
      g.append(svgEl("text", { ...anchor, y: 21, class: "cp-rate" }, st.reads_per_minute + " " + t("rpm.unit")));
    }
    svg.append(g);
    placed.push({ g, xy, right });
  }
  spreadLabels(placed);
}
// Read rates and stale cameras: reads per minute as the hub's ingest counted them (refreshed with each
// checkpoint status, every mqtt.status_interval_s of the edge), and the cameras the edge reports silent.
Object.assign(CORDON_I18N.zh, { "status.stale": "相机失联", "rpm.unit": "辆/分", "rpm.legend": "数字：每分钟过车（中心入库）" });
Object.assign(CORDON_I18N.en, { "status.stale": "stale camera", "rpm.unit": "/min", "rpm.legend": "Numbers: reads per minute (as stored by the hub)" });
// Labels of close checkpoints must not overlap: on each side, a label block (name, id, rate) moves down until
// it clears the one above it, then the column moves up where it ran past the map's bottom (a leader line joins
// a moved label to its dot).
const LABEL_H = 38, LABEL_H_COMPACT = 26, LABEL_TOP = 13, LABEL_BOTTOM = MAP_H - 25;
function spreadLabels(placed) {
  for (const side of [true, false]) {
    const column = placed.filter((p) => p.right === side).sort((a, b) => a.xy[1] - b.xy[1]);
    let h = LABEL_H;
    if (column.length * LABEL_H > LABEL_BOTTOM - LABEL_TOP + LABEL_H) {
      // Too many on this side for three lines each: the id goes to the tooltip, the rate moves up.
      h = LABEL_H_COMPACT;
      for (const p of column) {
        p.g.querySelector(".cp-id")?.remove();
        p.g.querySelector(".cp-rate")?.setAttribute("y", "10");
      }
    }
    const at = column.map((p) => Math.max(p.xy[1], LABEL_TOP));
    for (let i = 1; i < at.length; i++) at[i] = Math.max(at[i], at[i - 1] + h);
    for (let i = at.length - 1; i >= 0; i--) {
      at[i] = Math.max(LABEL_TOP, Math.min(at[i], i === at.length - 1 ? LABEL_BOTTOM : at[i + 1] - h));
    }
    column.forEach((p, i) => {
      const dy = at[i] - p.xy[1];
      if (Math.abs(dy) < 0.5) return;
      for (const text of p.g.querySelectorAll("text")) text.setAttribute("y", String(Number(text.getAttribute("y")) + dy));
      p.g.prepend(svgEl("line", { class: "leader", x1: 0, y1: 0, x2: p.right ? 14 : -14, y2: dy }));
      p.g.dataset.labelShift = String(Math.round(dy));
    });
  }
}
