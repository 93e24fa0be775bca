// The ring map: Shandong's outline, cities and (zoomed in) counties drawn offline from the vendored
// geography (vendor/shandong/, CGCS2000 = WGS-84 at map scale, the datum of console.checkpoints_csv), the
// checkpoints at their coordinates, and beside each its label: name and read rate (or its state). Labels
// never overlap one another, a dot, a leader line or the map's edge, and each label is nearer its own dot
// than any other dot; where a label cannot be placed so, the checkpoint joins its nearest neighbour in a
// cluster badge that counts its members (zoom in to split it). Pan by dragging, zoom with the wheel or the
// buttons. Everything is drawn in screen pixels (the viewBox is the element's size), so text is never scaled.
import { CORDON_I18N, cordonLang, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "status.stale": "相机失联", "rpm.format": "{n} 辆/分", "rpm.legend": "标注：查缉点名称与每分钟过车（中心入库）",
  "map.zoomIn": "放大", "map.zoomOut": "缩小", "map.reset": "复位", "map.cluster": "数字圆圈：多个查缉点，放大可分开",
  "map.cluster.title": "个查缉点（放大查看）", "map.stops": "经停", "map.hint": "拖动平移，滚轮缩放",
});
Object.assign(CORDON_I18N.en, {
  "status.stale": "stale camera", "rpm.format": "{n}/min", "rpm.legend": "Labels: checkpoint name and reads per minute (as stored by the hub)",
  "map.zoomIn": "Zoom in", "map.zoomOut": "Zoom out", "map.reset": "Reset", "map.cluster": "Numbered circle: several checkpoints, zoom in to split",
  "map.cluster.title": "checkpoints (zoom in)", "map.stops": "stops", "map.hint": "Drag to pan, wheel to zoom",
});

const SVG_NS = "http://www.w3.org/2000/svg";
export const GEO_URL = "/static/vendor/shandong/shandong.geojson";
// Shandong's extent (from the vendored outline), so the layout does not wait for the geography to load.
const SHANDONG = { west: 114.8, south: 34.37, east: 122.72, north: 38.4 };
const LAT0 = 36.5, KX = Math.cos(LAT0 * Math.PI / 180);  // one flat projection for one province
const DOT_R = 7, BADGE_R = 13, GAP = 3, EDGE = 4, MAX_ZOOM = 6;
const COUNTIES_AT = 2, COUNTY_NAMES_AT = 3, ZOOM_STEP = 1.6, ZOOM_BACK = 0.625;  // (a step out undoes a step in)
const SEVERITY = ["offline", "stale", "degraded", "unknown", "online", "stop"];

export function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
// online green; offline red; a stale camera purple; clock suspect, dropped reads or a backed-up outbox
// amber; never heard grey.
export function checkpointStatus(c) {
  if (!c) return "unknown";
  if (!c.online) return "offline";
  if ((c.stale_cameras || []).length) return "stale";
  if (c.clock_suspect || c.dropped_reads || (c.oldest_unacked_s || 0) > 60) return "degraded";
  return "online";
}
export function checkpointName(c) {
  return cordonLang() === "en" ? (c.name_en || c.name || c.checkpoint) : (c.name || c.checkpoint);
}
// On the map every label is a checkpoint's (the legend says so): "德州京沪高速检查站" is labelled "德州京沪高速",
// its full name in the dot's tooltip; a name that is only the suffix keeps it.
export function shortName(c) {
  const name = checkpointName(c);
  return cordonLang() === "zh" && name.length > 3 && name.endsWith("检查站") ? name.slice(0, -3) : name;
}

let geography = null;  // the parsed file, shared by every map on the page
let loading = null;
function loadGeography() {
  if (!loading) {
    loading = fetch(GEO_URL, { credentials: "same-origin" }).then((r) => r.ok ? r.json() : null)
      .then((g) => { geography = g; return g; }).catch(() => null);
  }
  return loading;
}
const project = (lon, lat) => [lon * KX, -lat];
function ringPath(rings) {
  return rings.map((ring) => "M" + ring.map(([lon, lat]) => (lon * KX).toFixed(4) + " " + (-lat).toFixed(4)).join("L") + "Z").join("");
}

// Rectangles and distances in screen pixels.
const overlaps = (a, b, gap) => a.x < b.x + b.w + gap && b.x < a.x + a.w + gap && a.y < b.y + b.h + gap && b.y < a.y + a.h + gap;
function rectDistance(r, x, y) {
  const dx = Math.max(r.x - x, 0, x - (r.x + r.w)), dy = Math.max(r.y - y, 0, y - (r.y + r.h));
  return Math.hypot(dx, dy);
}
function segmentHitsRect(x0, y0, x1, y1, r) {
  // Liang-Barsky clipping: does the segment pass through the rectangle?
  let t0 = 0, t1 = 1;
  const dx = x1 - x0, dy = y1 - y0;
  for (const [p, q] of [[-dx, x0 - r.x], [dx, r.x + r.w - x0], [-dy, y0 - r.y], [dy, r.y + r.h - y0]]) {
    if (p === 0) { if (q < 0) return false; continue; }
    const u = q / p;
    if (p < 0) { if (u > t1) return false; if (u > t0) t0 = u; } else { if (u < t0) return false; if (u < t1) t1 = u; }
  }
  return t0 <= t1;
}
function segmentNearPoint(x0, y0, x1, y1, px, py) {
  const dx = x1 - x0, dy = y1 - y0;
  const u = Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy || 1)));
  return Math.hypot(x0 + u * dx - px, y0 + u * dy - py);
}
// Candidate places for a label of w×h beside a dot at (x, y): touching it in eight directions first, then
// further out along sixteen directions with a leader line.
const DIRECTIONS = [0, 180, -30, 30, 150, -150, -90, 90, -60, 60, -120, 120];
function candidates(x, y, w, h) {
  const out = [];
  const near = DOT_R + 3;
  out.push({ x: x + near, y: y - h / 2, cost: 0 }, { x: x - near - w, y: y - h / 2, cost: 1 });
  out.push({ x: x + near - 2, y: y - h - 2, cost: 2 }, { x: x + near - 2, y: y + 2, cost: 2 });
  out.push({ x: x - near - w + 2, y: y - h - 2, cost: 3 }, { x: x - near - w + 2, y: y + 2, cost: 3 });
  out.push({ x: x - w / 2, y: y - near - h, cost: 4 }, { x: x - w / 2, y: y + near, cost: 4 });
  for (const d of [18, 32, 50, 72, 100, 135]) {
    for (let a = 0; a < 360; a += 15) {
      const rad = a * Math.PI / 180, cx = x + Math.cos(rad) * (d + w / 2), cy = y + Math.sin(rad) * (d + h / 2);
      out.push({ x: cx - w / 2, y: cy - h / 2, cost: 10 + d + (Math.abs(Math.sin(rad)) * 4), lead: true });
    }
  }
  return out.sort((a, b) => a.cost - b.cost);
}
// The point of the rectangle nearest (x, y): where a leader line ends.
const nearestOn = (r, x, y) => [Math.max(r.x, Math.min(x, r.x + r.w)), Math.max(r.y, Math.min(y, r.y + r.h))];

export class RingMap {
  /** svg: the <svg> element to draw in; opts.route: draw only the checkpoints a route visits with labels. */
  constructor(svg, opts) {
    this.svg = svg;
    this.opts = opts || {};
    this.ring = [];
    this.statusOf = () => null;
    this.stops = null;           // checkpoint -> [stop numbers], for a route
    this.zoom = { k: 1, cx: null, cy: null };
    this.size = [0, 0];
    this.measured = new Map();
    this.geoBuilt = null;
    this.wrap();
    loadGeography().then(() => this.draw());
    new ResizeObserver(() => this.draw()).observe(svg);
    this.listen();
  }
  wrap() {
    const svg = this.svg;
    svg.classList.add("ring-map");
    svg.removeAttribute("viewBox");
    svg.setAttribute("tabindex", "0");
    const box = document.createElement("div");
    box.className = "map-wrap";
    svg.replaceWith(box);
    box.append(svg);
    const controls = document.createElement("div");
    controls.className = "map-zoom";
    for (const [key, sign, text] of [["map.zoomIn", 1, "+"], ["map.zoomOut", -1, "−"], ["map.reset", 0, "⟲"]]) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = text; b.dataset.zoom = String(sign);
      b.dataset.i18nTitle = key;
      b.addEventListener("click", () => sign === 0 ? this.reset() : this.zoomBy(sign > 0 ? ZOOM_STEP : ZOOM_BACK));
      controls.append(b);
    }
    box.append(controls);
    this.controls = controls;
  }
  listen() {
    const svg = this.svg;
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      this.zoomBy(ev.deltaY < 0 ? 1.25 : 0.8, ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    let drag = null;
    svg.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || ev.target.closest(".cp-cluster")) return;
      drag = { x: ev.clientX, y: ev.clientY, cx: this.zoom.cx, cy: this.zoom.cy, moved: false };
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return;
      if (!drag.moved) { drag.moved = true; svg.setPointerCapture(ev.pointerId); svg.classList.add("dragging"); }
      const s = this.scale();
      this.zoom.cx = drag.cx - dx / s; this.zoom.cy = drag.cy - dy / s;
      this.clamp(); this.draw();
    });
    const end = () => { drag = null; svg.classList.remove("dragging"); };
    svg.addEventListener("pointerup", end); svg.addEventListener("pointercancel", end);
    svg.addEventListener("keydown", (ev) => {
      if (ev.key === "+" || ev.key === "=") this.zoomBy(ZOOM_STEP);
      else if (ev.key === "-") this.zoomBy(ZOOM_BACK);
      else if (ev.key === "0") this.reset();
    });
  }
  update(ring, statusOf, stops) {
    this.ring = ring || [];
    if (statusOf) this.statusOf = statusOf;
    const fresh = stops && stops !== this.stops;
    this.stops = stops || null;
    if (fresh && stops.size) {
      // A route's map opens on the route: its stops fill the view (room left for their labels).
      this.zoom = { k: 1, cx: null, cy: null, route: this.ring.filter((c) => stops.has(c.checkpoint)) };
    }
    this.draw();
  }
  fitRoute() {
    const members = this.zoom.route;
    delete this.zoom.route;
    const pts = members.map((c) => project(c.lon, c.lat));
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const [w, h] = this.size, s0 = this.baseScale();
    const spanX = Math.max(Math.max(...xs) - Math.min(...xs), 0.3) * s0, spanY = Math.max(Math.max(...ys) - Math.min(...ys), 0.3) * s0;
    this.zoom.k = Math.max(1, Math.min(MAX_ZOOM, (w - 320) / spanX, (h - 160) / spanY));
    this.zoom.cx = (Math.max(...xs) + Math.min(...xs)) / 2; this.zoom.cy = (Math.max(...ys) + Math.min(...ys)) / 2;
    this.clamp();
  }
  // The base view fits Shandong and every checkpoint, with room either side for labels.
  bounds() {
    let west = SHANDONG.west, east = SHANDONG.east, south = SHANDONG.south, north = SHANDONG.north;
    for (const c of this.ring) {
      west = Math.min(west, c.lon); east = Math.max(east, c.lon); south = Math.min(south, c.lat); north = Math.max(north, c.lat);
    }
    const [x0, y0] = project(west, north), [x1, y1] = project(east, south);
    const padX = (x1 - x0) * 0.16, padY = (y1 - y0) * 0.1;
    return { x0: x0 - padX, y0: y0 - padY, x1: x1 + padX, y1: y1 + padY };
  }
  baseScale() {
    const b = this.bounds(), [w, h] = this.size;
    return Math.min(w / (b.x1 - b.x0), h / (b.y1 - b.y0));
  }
  scale() { return this.baseScale() * this.zoom.k; }
  clamp() {
    const b = this.bounds();
    if (this.zoom.cx === null) { this.zoom.cx = (b.x0 + b.x1) / 2; this.zoom.cy = (b.y0 + b.y1) / 2; }
    this.zoom.k = Math.max(1, Math.min(MAX_ZOOM, this.zoom.k));
    this.zoom.cx = Math.max(b.x0, Math.min(b.x1, this.zoom.cx));
    this.zoom.cy = Math.max(b.y0, Math.min(b.y1, this.zoom.cy));
    if (this.zoom.k === 1) { this.zoom.cx = (b.x0 + b.x1) / 2; this.zoom.cy = (b.y0 + b.y1) / 2; }
  }
  zoomBy(f, px, py) {
    const [w, h] = this.size;
    if (!w) return;
    px = px === undefined ? w / 2 : px; py = py === undefined ? h / 2 : py;
    const s = this.scale();
    const gx = this.zoom.cx + (px - w / 2) / s, gy = this.zoom.cy + (py - h / 2) / s;  // the point under the cursor
    this.zoom.k = Math.max(1, Math.min(MAX_ZOOM, this.zoom.k * f));
    const s2 = this.scale();
    this.zoom.cx = gx - (px - w / 2) / s2; this.zoom.cy = gy - (py - h / 2) / s2;
    this.clamp(); this.draw();
  }
  reset() { this.zoom = { k: 1, cx: null, cy: null }; this.draw(); }
  fit(members) {
    const pts = members.map((c) => project(c.lon, c.lat));
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const span = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys), 0.05);
    const [w, h] = this.size;
    this.zoom.k = Math.min(MAX_ZOOM, Math.max(1, (Math.min(w, h) / 3.2) / (span * this.baseScale())));
    this.zoom.cx = (Math.max(...xs) + Math.min(...xs)) / 2; this.zoom.cy = (Math.max(...ys) + Math.min(...ys)) / 2;
    this.clamp(); this.draw();
  }
  toScreen(lon, lat) {
    const [x, y] = project(lon, lat), s = this.scale(), [w, h] = this.size;
    return [w / 2 + (x - this.zoom.cx) * s, h / 2 + (y - this.zoom.cy) * s];
  }
  measure(cls, text) {
    const key = cls + "\u0000" + text;
    if (!this.measured.has(key)) {
      const probe = svgEl("text", { class: cls, x: -1000, y: -1000 }, text);
      this.svg.append(probe);
      this.measured.set(key, probe.getComputedTextLength());
      probe.remove();
    }
    return this.measured.get(key);
  }
  // The geography, built once per page in projected units and moved with one transform.
  buildGeography() {
    const g = svgEl("g", { class: "geo" });
    if (!geography) return g;
    const byLevel = (level) => geography.features.filter((f) => f.properties.level === level);
    const polys = (f) => f.geometry.coordinates.flat();
    for (const f of byLevel("province")) g.append(svgEl("path", { class: "geo-land", d: ringPath(polys(f)) }));
    const counties = svgEl("g", { class: "geo-counties" });
    for (const f of byLevel("county")) counties.append(svgEl("path", { class: "geo-county", d: ringPath(polys(f)) }));
    g.append(counties);
    for (const f of byLevel("city")) g.append(svgEl("path", { class: "geo-city", d: ringPath(polys(f)) }));
    for (const f of byLevel("province")) g.append(svgEl("path", { class: "geo-outline", d: ringPath(polys(f)) }));
    return g;
  }
  labelText(c) {
    const st = this.statusOf(c.checkpoint), status = checkpointStatus(st);
    if (this.stops) return t("map.stops") + " " + (this.stops.get(c.checkpoint) || []).join(" · ");
    const parts = [];
    if (st && st.online && typeof st.reads_per_minute === "number") parts.push(t("rpm.format").replace("{n}", String(st.reads_per_minute)));
    if (status !== "online" || !parts.length) parts.push(t("status." + status));
    return parts.join(" · ");
  }
  draw() {
    const svg = this.svg;
    const w = svg.clientWidth, h = svg.clientHeight;
    if (!w || !h) return;  // hidden: drawn when it shows (the ResizeObserver calls again)
    if (w !== this.size[0] || h !== this.size[1]) { this.size = [w, h]; }
    this.clamp();
    if (this.zoom.route) this.fitRoute();
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    for (const b of this.controls.querySelectorAll("button")) b.title = t(b.dataset.i18nTitle);
    this.controls.querySelector('[data-zoom="-1"]').disabled = this.zoom.k <= 1;
    this.controls.querySelector('[data-zoom="1"]').disabled = this.zoom.k >= MAX_ZOOM;
    svg.dataset.zoom = this.zoom.k.toFixed(2);
    const title = svg.querySelector("title");
    if (!this.geoBuilt || (geography && !this.geoBuilt.childElementCount)) this.geoBuilt = this.buildGeography();
    const s = this.scale();
    this.geoBuilt.setAttribute("transform", "translate(" + (w / 2 - this.zoom.cx * s).toFixed(2) + "," + (h / 2 - this.zoom.cy * s).toFixed(2) + ") scale(" + s.toFixed(4) + ")");
    this.geoBuilt.classList.toggle("show-counties", this.zoom.k >= COUNTIES_AT);
    svg.replaceChildren(...(title ? [title] : []), this.geoBuilt);
    if (!this.ring.length) return;

    const shown = this.stops ? this.ring.filter((c) => this.stops.has(c.checkpoint)) : this.ring;
    const quiet = this.stops ? this.ring.filter((c) => !this.stops.has(c.checkpoint)) : [];
    const items = shown.map((c) => {
      const [x, y] = this.toScreen(c.lon, c.lat);
      const name = shortName(c), rate = this.labelText(c);
      const lw = Math.ceil(Math.max(this.measure("cp-name", name), this.measure("cp-rate", rate))) + 12;
      return { c, x, y, name, rate, w: lw, h: 31, status: this.stops ? "stop" : checkpointStatus(this.statusOf(c.checkpoint)) };
    });
    const quietDots = quiet.map((c) => { const [x, y] = this.toScreen(c.lon, c.lat); return { c, x, y }; });
    const layout = this.placeAll(items, quietDots);

    // Route overlay (the intel view): the path between consecutive stops, under the dots.
    if (this.opts.routePath && this.opts.routePath.length > 1) {
      const where = new Map(items.map((i) => [i.c.checkpoint, i]));
      const path = this.opts.routePath.map((id) => where.get(id)).filter(Boolean);
      const g = svgEl("g", { class: "route" });
      for (let i = 1; i < path.length; i++) {
        const a = path[i - 1], b = path[i];
        if (a === b) continue;
        const len = Math.hypot(b.x - a.x, b.y - a.y) || 1, ux = (b.x - a.x) / len, uy = (b.y - a.y) / len;
        g.append(svgEl("line", { class: "route-leg", x1: a.x + ux * DOT_R, y1: a.y + uy * DOT_R, x2: b.x - ux * (DOT_R + 2), y2: b.y - uy * (DOT_R + 2), "marker-end": "url(#route-arrow)" }));
      }
      const defs = svgEl("defs");
      const marker = svgEl("marker", { id: "route-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
      marker.append(svgEl("path", { d: "M0,0L10,5L0,10z", class: "route-arrowhead" }));
      defs.append(marker);
      svg.append(defs, g);
    }
    // City (and, zoomed in, county) names where they fit: under the checkpoints' labels in importance.
    const taken = [...layout.boxes];
    const geoLabels = svgEl("g", { class: "geo-labels" });
    if (geography) {
      const levels = this.zoom.k >= COUNTY_NAMES_AT ? ["city", "county"] : ["city"];
      for (const level of levels) {
        for (const f of geography.features.filter((x) => x.properties.level === level)) {
          const text = cordonLang() === "en" ? f.properties.name_en : f.properties.name;
          const [x, y] = this.toScreen(f.properties.label[0], f.properties.label[1]);
          const cls = "geo-name " + level;
          const tw = this.measure(cls, text), box = { x: x - tw / 2 - 2, y: y - 8, w: tw + 4, h: 14 };
          if (box.x < EDGE || box.y < EDGE || box.x + box.w > w - EDGE || box.y + box.h > h - EDGE) continue;
          if (taken.some((r) => overlaps(r, box, 2)) || overlaps(this.blocked(), box, 2) || layout.points.some((p) => rectDistance(box, p.x, p.y) < p.r + 2)) continue;
          if (layout.leaders.some((l) => segmentHitsRect(l[0], l[1], l[2], l[3], box))) continue;
          taken.push(box);
          geoLabels.append(svgEl("text", { class: cls, x: x.toFixed(1), y: (y + 4).toFixed(1), "text-anchor": "middle" }, text));
        }
      }
    }
    svg.append(geoLabels);

    const dots = svgEl("g", { class: "cps" });
    for (const q of quietDots) {
      const g = svgEl("g", { class: "cp quiet" });
      g.dataset.checkpoint = q.c.checkpoint;
      g.append(svgEl("title", {}, checkpointName(q.c)), svgEl("circle", { cx: q.x.toFixed(1), cy: q.y.toFixed(1), r: 4 }));
      dots.append(g);
    }
    for (const it of items) {
      // Each checkpoint's group holds its dot and its label (a clustered one: its dot, hidden, for its state).
      const g = svgEl("g", { class: "cp " + it.status + (it.cluster ? " clustered" : "") });
      g.dataset.checkpoint = it.c.checkpoint;
      g.dataset.status = it.status;
      const st = this.statusOf(it.c.checkpoint);
      const staleNote = it.status === "stale" ? " · " + t("camera") + " " + st.stale_cameras.join(", ") : "";
      g.append(svgEl("title", {}, checkpointName(it.c) + " · " + it.c.checkpoint + " · " + (this.stops ? it.rate : t("status." + it.status)) + staleNote));
      g.append(svgEl("circle", { class: "cp-dot", cx: it.x.toFixed(1), cy: it.y.toFixed(1), r: DOT_R }));
      if (!it.cluster && it.box) {
        const lab = svgEl("g", { class: "cp-label" });
        if (it.leader) lab.append(svgEl("line", { class: "leader", x1: it.leader[0].toFixed(1), y1: it.leader[1].toFixed(1), x2: it.leader[2].toFixed(1), y2: it.leader[3].toFixed(1) }));
        const b = it.box;
        lab.append(svgEl("rect", { class: "label-box", x: b.x.toFixed(1), y: b.y.toFixed(1), width: b.w, height: b.h, rx: 4 }));
        lab.append(svgEl("rect", { class: "label-mark", x: b.x.toFixed(1), y: b.y.toFixed(1), width: 3, height: b.h, rx: 1.5 }));
        lab.append(svgEl("text", { class: "cp-name", x: (b.x + 7).toFixed(1), y: (b.y + 13).toFixed(1) }, it.name));
        lab.append(svgEl("text", { class: "cp-rate", x: (b.x + 7).toFixed(1), y: (b.y + 26).toFixed(1) }, it.rate));
        g.append(lab);
      }
      dots.append(g);
    }
    svg.append(dots);
    for (const cl of layout.clusters) {
      const worst = SEVERITY.find((s) => cl.members.some((m) => m.status === s)) || "unknown";
      const g = svgEl("g", { class: "cp-cluster " + worst, tabindex: 0, role: "button" });
      g.dataset.members = cl.members.map((m) => m.c.checkpoint).join(" ");
      g.dataset.count = String(cl.members.length);
      g.append(svgEl("title", {}, cl.members.length + " " + t("map.cluster.title") + ": " +
        cl.members.map((m) => m.name + " (" + t("status." + m.status) + ")").join(", ")));
      g.append(svgEl("circle", { cx: cl.x.toFixed(1), cy: cl.y.toFixed(1), r: BADGE_R }));
      g.append(svgEl("text", { class: "cluster-count", x: cl.x.toFixed(1), y: (cl.y + 4.5).toFixed(1), "text-anchor": "middle" }, cl.members.length));
      const open = () => this.fit(cl.members.map((m) => m.c));
      g.addEventListener("click", open);
      g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
      svg.append(g);
    }
  }
  blocked() {
    const c = this.controls.getBoundingClientRect(), s = this.svg.getBoundingClientRect();
    return { x: c.left - s.left, y: c.top - s.top, w: c.width, h: c.height };
  }
  // Greedy placement, the most crowded checkpoints first; a checkpoint whose label finds no place joins its
  // nearest neighbour in a cluster, and the placement starts again.
  placeAll(items, quietDots) {
    const [w, h] = this.size;
    let groups = items.map((it) => ({ members: [it], x: it.x, y: it.y }));
    // Dots that would overlap start out together.
    for (let merged = true; merged;) {
      merged = false;
      outer: for (let i = 0; i < groups.length; i++) {
        for (let j = i + 1; j < groups.length; j++) {
          const r = (groups[i].members.length > 1 || groups[j].members.length > 1) ? BADGE_R * 2 : DOT_R * 2 + 2;
          if (Math.hypot(groups[i].x - groups[j].x, groups[i].y - groups[j].y) < r) { groups = merge(groups, i, j); merged = true; break outer; }
        }
      }
    }
    const first = new Set();  // checkpoints that failed once go first in the next round
    let retries = 0;
    for (let round = 0; round < 3 * items.length + 1; round++) {
      const points = [...groups.map((g) => ({ x: g.x, y: g.y, r: g.members.length > 1 ? BADGE_R : DOT_R, g })),
        ...quietDots.map((q) => ({ x: q.x, y: q.y, r: 4 }))];
      const boxes = [], leaders = [];
      const blocked = this.blocked();  // the zoom buttons over the map
      const singles = groups.filter((g) => g.members.length === 1)
        .map((g) => ({ g, crowd: points.filter((p) => p.g !== g && Math.hypot(p.x - g.x, p.y - g.y) < 120).length }))
        .sort((a, b) => first.has(b.g.members[0]) - first.has(a.g.members[0]) || b.crowd - a.crowd || a.g.x - b.g.x);
      let failed = null;
      for (const it of items) { it.box = null; it.leader = null; }
      for (const { g } of singles) {
        const it = g.members[0];
        const spot = candidates(it.x, it.y, it.w, it.h).find((c) => {
          const box = { x: c.x, y: c.y, w: it.w, h: it.h };
          if (box.x < EDGE || box.y < EDGE || box.x + box.w > w - EDGE || box.y + box.h > h - EDGE) return false;
          if (boxes.some((b) => overlaps(b, box, GAP)) || overlaps(blocked, box, GAP)) return false;
          const own = rectDistance(box, it.x, it.y);
          for (const p of points) {
            const d = rectDistance(box, p.x, p.y);
            if (d < p.r + 2) return false;                      // covers a dot (its own too)
            if (p.g !== g && d <= own + 1) return false;        // nearer another dot than its own
          }
          if (leaders.some((l) => segmentHitsRect(l[0], l[1], l[2], l[3], { x: box.x - 1, y: box.y - 1, w: box.w + 2, h: box.h + 2 }))) return false;
          if (c.lead) {
            const [ex, ey] = nearestOn(box, it.x, it.y);
            if (boxes.some((b) => segmentHitsRect(it.x, it.y, ex, ey, { x: b.x - 1, y: b.y - 1, w: b.w + 2, h: b.h + 2 }))) return false;
            if (points.some((p) => p.g !== g && segmentNearPoint(it.x, it.y, ex, ey, p.x, p.y) < p.r + 2)) return false;
          }
          return true;
        });
        if (!spot) { failed = g; break; }
        const box = { x: spot.x, y: spot.y, w: it.w, h: it.h };
        boxes.push(box);
        it.box = box;
        it.leader = null;
        if (spot.lead) {
          const [ex, ey] = nearestOn(box, it.x, it.y);
          const len = Math.hypot(ex - it.x, ey - it.y) || 1;
          it.leader = [it.x + (ex - it.x) / len * DOT_R, it.y + (ey - it.y) / len * DOT_R, ex, ey];
          leaders.push(it.leader);
        }
      }
      if (!failed) {
        const clusters = groups.filter((g) => g.members.length > 1);
        for (const g of groups) for (const m of g.members) m.cluster = g.members.length > 1 ? g : null;
        return { boxes, leaders, points, clusters };
      }
      // Try once more with the failed checkpoint placed first; then join it to its nearest neighbour.
      if (!first.has(failed.members[0]) && retries < items.length) { first.add(failed.members[0]); retries++; continue; }
      const i = groups.indexOf(failed);
      let j = -1, best = Infinity;
      groups.forEach((g, k) => { if (k !== i) { const d = Math.hypot(g.x - failed.x, g.y - failed.y); if (d < best) { best = d; j = k; } } });
      if (j < 0) break;
      groups = merge(groups, i, j);
    }
    for (const it of items) it.cluster = { members: items };
    return { boxes: [], leaders: [], points: [], clusters: [{ members: items, x: w / 2, y: h / 2 }] };
  }
}
function merge(groups, i, j) {
  const members = [...groups[i].members, ...groups[j].members];
  const x = members.reduce((a, m) => a + m.x, 0) / members.length, y = members.reduce((a, m) => a + m.y, 0) / members.length;
  return [...groups.filter((_, k) => k !== i && k !== j), { members, x, y }];
}

// The console's ring map (console.js): one RingMap per <svg>, redrawn with the latest statuses.
const maps = new WeakMap();
export function drawMap(svg, ring, statusOf) {
  let map = maps.get(svg);
  if (!map) { map = new RingMap(svg); maps.set(svg, map); }
  map.update(ring, statusOf);
  return map;
}
