// The console's statistics tab: reads and hits per checkpoint (or county), a daily line of reads, hits,
// interceptions and positives, the outcome breakdown and the misread rate per match kind. Plain SVG
// built element by element; every received value is set as text or a number attribute.
import { applyI18n, CORDON_I18N, el, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "tab.stats": "统计", "st.title": "统计分析", "st.group": "分组", "st.group.checkpoint": "按查缉点",
  "st.group.county": "按区县", "st.group.city": "按地市", "st.from": "起", "st.to": "止", "st.show": "查询",
  "st.reads": "过车", "st.hits": "比中预警", "st.intercepted": "拦截", "st.positives": "快检阳性",
  "st.by_group": "过车与比中", "st.daily": "每日趋势", "st.outcomes": "处置结果", "st.misreads": "误识别率（按比对方式）",
  "st.kind": "比对方式", "st.n": "处置数", "st.misread_n": "误识别", "st.rate": "误识别率", "st.few": "样本少",
  "st.none": "所选时段无数据", "st.failed": "统计无法读取", "st.reason": "导出事由（必填）", "st.export": "导出 CSV",
  "st.max": "最大", "st.table": "明细", "st.key": "分组", "st.passages": "车次", "st.no_plate": "无牌车",
  "st.alerts": "预警", "st.ack": "签收用时（中位）", "st.tests": "快检", "st.uptime": "相机在线率",
  "st.stale": "离线相机", "st.camera": "相机", "st.samples": "采样",
});
Object.assign(CORDON_I18N.en, {
  "tab.stats": "Statistics", "st.title": "Statistics", "st.group": "Group", "st.group.checkpoint": "By checkpoint",
  "st.group.county": "By county", "st.group.city": "By city", "st.from": "From", "st.to": "To", "st.show": "Show",
  "st.reads": "Reads", "st.hits": "Hits", "st.intercepted": "Intercepted", "st.positives": "Positive tests",
  "st.by_group": "Reads and hits", "st.daily": "Day by day", "st.outcomes": "Outcomes", "st.misreads": "Misread rate per match kind",
  "st.kind": "Match kind", "st.n": "Outcomes", "st.misread_n": "Misreads", "st.rate": "Rate", "st.few": "few",
  "st.none": "No data in this period", "st.failed": "Statistics not available", "st.reason": "Export reason (required)",
  "st.export": "Export CSV", "st.max": "max", "st.table": "Details", "st.key": "Group", "st.passages": "Passages",
  "st.no_plate": "No plate", "st.alerts": "Alerts", "st.ack": "Time to acknowledge (median)", "st.tests": "Quick tests",
  "st.uptime": "Camera uptime", "st.stale": "Cameras that went stale", "st.camera": "Camera", "st.samples": "Samples",
});

const SVGNS = "http://www.w3.org/2000/svg";
const ST = { data: null, daily: null, misreads: null };
const SERIES = [["reads", "st.reads"], ["alerts", "st.hits"], ["intercepted", "st.intercepted"], ["positives", "st.positives"]];

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVGNS, tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, String(v)));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function stLabel(tag, key, cls) { const n = el(tag, cls || null, t(key)); n.dataset.i18n = key; return n; }

function buildStatsView() {
  const view = el("main", "stats-view"); view.id = "stats-view"; view.hidden = true;
  const bar = el("div", "st-controls");
  const group = el("select"); group.id = "st-group";
  ["checkpoint", "county", "city"].forEach((g) => { const o = stLabel("option", "st.group." + g); o.value = g; group.append(o); });
  const from = el("input"); from.type = "date"; from.id = "st-from";
  const to = el("input"); to.type = "date"; to.id = "st-to";
  // Empty at first: the hub picks the last 7 days in its own UTC offset and the answer fills these in.
  const show = stLabel("button", "st.show"); show.type = "button"; show.id = "st-show";
  const reason = el("input"); reason.id = "st-reason"; reason.maxLength = 200;
  reason.dataset.i18nPlaceholder = "st.reason"; reason.placeholder = t("st.reason");
  const exp = stLabel("button", "st.export"); exp.type = "button"; exp.id = "st-export";
  bar.append(stLabel("h2", "st.title"), group, stLabel("span", "st.from"), from, stLabel("span", "st.to"), to, show,
             reason, exp);
  const msg = el("p", "badge bad"); msg.id = "st-msg"; msg.hidden = true;
  const grid = el("div", "st-grid");
  [["st-bars", "st.by_group"], ["st-daily", "st.daily"], ["st-outcomes", "st.outcomes"], ["st-misreads", "st.misreads"]]
    .forEach(([id, key]) => { const box = el("section", "st-box"); const body = el("div"); body.id = id;
      box.append(stLabel("h3", key), body); grid.append(box); });
  const details = el("section", "st-box st-wide");
  const table = el("div"); table.id = "st-table";
  details.append(stLabel("h3", "st.table"), table);
  grid.append(details);
  view.append(bar, msg, grid);
  show.addEventListener("click", stLoad);
  exp.addEventListener("click", () => {
    if (!reason.value.trim()) { reason.focus(); return; }
    const q = new URLSearchParams({ group: group.value, reason: reason.value.trim() });
    if (from.value) q.set("from", from.value);
    if (to.value) q.set("to", to.value);
    window.location.assign("/api/v1/stats/export.csv?" + q.toString());
  });
  return view;
}

async function stGet(path) {
  const resp = await fetch(path);
  if (!resp.ok) throw new Error(String(resp.status));
  return resp.json();
}

async function stLoad() {
  const from = document.getElementById("st-from"), to = document.getElementById("st-to");
  const q = (group) => {
    const p = new URLSearchParams({ group });
    if (from.value) p.set("from", from.value);
    if (to.value) p.set("to", to.value);
    return p.toString();
  };
  const msg = document.getElementById("st-msg");
  try {
    const [data, daily, mis] = await Promise.all([stGet("/api/v1/stats?" + q(document.getElementById("st-group").value)),
      stGet("/api/v1/stats?" + q("day")), stGet("/api/v1/stats/misreads?" + q("day"))]);
    Object.assign(ST, { data, daily, misreads: mis });
    from.value = data.from; to.value = data.to;
    msg.hidden = true;
  } catch (e) {
    msg.textContent = t("st.failed"); msg.hidden = false; return;
  }
  stDraw();
}

function stEmpty(box) { box.append(stLabel("p", "st.none", "st-none")); }

function stBars(rows) {
  const box = document.getElementById("st-bars"); box.replaceChildren();
  if (!rows.length) { stEmpty(box); return; }
  const W = 560, rowH = 34, left = 130, width = W - left - 70;
  const maxReads = Math.max(1, ...rows.map((r) => r.reads)), maxHits = Math.max(1, ...rows.map((r) => r.alerts));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${rows.length * rowH + 24}`, class: "st-chart st-bars", role: "img" });
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    const g = svg("g", { class: "st-row", "data-key": r.key, "data-reads": r.reads, "data-hits": r.alerts });
    g.append(svg("text", { x: left - 6, y: y + 18, "text-anchor": "end", class: "st-axis" }, r.key));
    g.append(svg("rect", { x: left, y, width: Math.max(1, width * r.reads / maxReads), height: 13, class: "st-bar st-reads" }));
    g.append(svg("text", { x: left + width * r.reads / maxReads + 4, y: y + 11, class: "st-value" }, r.reads));
    g.append(svg("rect", { x: left, y: y + 15, width: Math.max(1, width * r.alerts / maxHits), height: 13, class: "st-bar st-hits" }));
    g.append(svg("text", { x: left + width * r.alerts / maxHits + 4, y: y + 26, class: "st-value" }, r.alerts));
    chart.append(g);
  });
  const legend = svg("g", { class: "st-legend" });
  legend.append(svg("rect", { x: left, y: rows.length * rowH + 10, width: 10, height: 10, class: "st-reads" }),
                svg("text", { x: left + 14, y: rows.length * rowH + 19 }, t("st.reads")),
                svg("rect", { x: left + 110, y: rows.length * rowH + 10, width: 10, height: 10, class: "st-hits" }),
                svg("text", { x: left + 124, y: rows.length * rowH + 19 }, t("st.hits")));
  chart.append(legend);
  box.append(chart);
}

function stValue(row, key) { return key === "intercepted" ? row.outcomes.intercepted : row[key]; }

function stEveryDay(found) {
  // Days without anything are zero, so the line shows them.
  const byDay = new Map(found.rows.map((r) => [r.key, r]));
  const days = [];
  for (let d = new Date(found.from + "T00:00:00Z"); d <= new Date(found.to + "T00:00:00Z") && days.length < 400;
       d = new Date(d.getTime() + 86400000)) {
    const key = d.toISOString().slice(0, 10);
    days.push(byDay.get(key) || { key, reads: 0, alerts: 0, positives: 0, outcomes: { intercepted: 0 } });
  }
  return days;
}

function stDaily(found) {
  const box = document.getElementById("st-daily"); box.replaceChildren();
  if (!found.rows.length) { stEmpty(box); return; }
  const rows = stEveryDay(found);
  const W = 560, H = 200, pad = 30, step = rows.length > 1 ? (W - 2 * pad) / (rows.length - 1) : 0;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H + 40}`, class: "st-chart st-daily", role: "img" });
  SERIES.forEach(([key, label], n) => {
    const max = Math.max(1, ...rows.map((r) => stValue(r, key)));
    const points = rows.map((r, i) => `${pad + i * step},${H - 10 - (H - 30) * stValue(r, key) / max}`).join(" ");
    chart.append(svg("polyline", { points, class: `st-line st-s${n}`, "data-series": key, fill: "none" }));
    points.split(" ").forEach((p) => { const [cx, cy] = p.split(",");
      chart.append(svg("circle", { cx, cy, r: 3, class: `st-s${n}-text` })); });
    chart.append(svg("text", { x: pad + n * 135, y: H + 30, class: `st-s${n}-text` }, `${t(label)} (${t("st.max")} ${max})`));
  });
  rows.forEach((r, i) => { if (rows.length <= 10 || i % Math.ceil(rows.length / 10) === 0) {
    chart.append(svg("text", { x: pad + i * step, y: H + 8, "text-anchor": "middle", class: "st-axis" }, r.key.slice(5)));
  } });
  box.append(chart);
}

function stOutcomes(rows) {
  const box = document.getElementById("st-outcomes"); box.replaceChildren();
  const totals = { intercepted: 0, not_found: 0, misread: 0, released: 0 };
  rows.forEach((r) => Object.keys(totals).forEach((k) => { totals[k] += r.outcomes[k] || 0; }));
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  if (!all) { stEmpty(box); return; }
  const W = 560, chart = svg("svg", { viewBox: `0 0 ${W} 70`, class: "st-chart st-outcomes", role: "img" });
  let x = 0;
  Object.entries(totals).forEach(([k, n], i) => {
    const w = (W - 2) * n / all;
    chart.append(svg("rect", { x, y: 4, width: w, height: 26, class: `st-out st-out-${k}`, "data-outcome": k, "data-count": n }));
    chart.append(svg("text", { x: 4 + i * 140, y: 52, class: `st-out-${k}-text` }, `${t("outcome." + k)} ${n}`));
    x += w;
  });
  box.append(chart);
}

function stMisreads(found) {
  const box = document.getElementById("st-misreads"); box.replaceChildren();
  if (!found.by_kind.length) { stEmpty(box); return; }
  const table = el("table", "st-table");
  const head = el("tr");
  ["st.kind", "st.n", "st.misread_n", "st.rate"].forEach((k) => head.append(stLabel("th", k)));
  table.append(head);
  found.by_kind.forEach((r) => {
    const tr = el("tr"); tr.dataset.kind = r.kind;
    const rate = el("td", null, `${(r.rate * 100).toFixed(1)}%`);
    if (r.few) rate.append(el("span", "st-few", ` (${t("st.few")})`));
    tr.append(el("td", null, t("kind." + r.kind)), el("td", null, r.outcomes), el("td", null, r.misreads), rate);
    table.append(tr);
  });
  box.append(table);
}

function stPercent(x) { return x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`; }
function stSeconds(s) { return s === null || s === undefined ? "–" : s < 120 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`; }

function stTable(found) {
  // Every figure the CSV export has, per group; camera uptime coloured when it falls below 95%.
  const box = document.getElementById("st-table"); box.replaceChildren();
  if (!found.rows.length) { stEmpty(box); return; }
  const table = el("table", "st-table st-rows");
  const head = el("tr");
  ["st.key", "st.reads", "st.passages", "st.no_plate", "st.alerts", "st.ack", "st.intercepted", "st.tests",
   "st.positives", "st.uptime"].forEach((k) => head.append(stLabel("th", k)));
  table.append(head);
  found.rows.forEach((r) => {
    const tr = el("tr"); tr.dataset.key = r.key;
    const drugs = Object.entries(r.positives_by_drug || {}).map(([d, n]) => `${d} ${n}`).join(", ");
    const uptime = el("td", "st-uptime", stPercent(r.camera_uptime));
    uptime.dataset.uptime = r.camera_uptime === null ? "" : String(r.camera_uptime);
    if (r.camera_uptime !== null && r.camera_uptime < 0.95) uptime.classList.add("st-low");
    tr.append(el("td", null, r.key), el("td", null, r.reads), el("td", null, r.passages), el("td", null, r.no_plate),
              el("td", null, r.alerts), el("td", null, stSeconds(r.ack_median_s)), el("td", null, r.outcomes.intercepted),
              el("td", null, r.tests), el("td", null, drugs ? `${r.positives} (${drugs})` : r.positives), uptime);
    table.append(tr);
  });
  box.append(table);
  if ((found.stale_cameras || []).length) {
    const stale = el("table", "st-table st-stale");
    const h = el("tr");
    ["st.stale", "st.camera", "st.samples", "st.uptime"].forEach((k) => h.append(stLabel("th", k)));
    stale.append(h);
    found.stale_cameras.forEach((c) => {
      const tr = el("tr"); tr.dataset.camera = `${c.checkpoint}/${c.camera}`;
      tr.append(el("td", null, c.checkpoint), el("td", null, c.camera), el("td", null, c.samples),
                el("td", "st-low", stPercent(c.uptime)));
      stale.append(tr);
    });
    box.append(stale);
  }
}

function stDraw() {
  if (!ST.data) return;
  stBars(ST.data.rows); stDaily(ST.daily); stOutcomes(ST.data.rows); stMisreads(ST.misreads); stTable(ST.data);
}

function stShow(on) {
  document.getElementById("stats-view").hidden = !on;
  document.getElementById("tab-stats").classList.toggle("selected", on);
  if (on) {
    document.querySelector("main.console").hidden = true;
    const lists = document.getElementById("lists-view"); if (lists) lists.hidden = true;
    ["tab-live", "tab-lists"].forEach((id) => { const b = document.getElementById(id); if (b) b.classList.remove("selected"); });
    stLoad();
  }
}

(function () {
  const view = buildStatsView();
  document.querySelector("main.console").after(view);
  document.getElementById("tab-stats").addEventListener("click", () => stShow(true));
  ["tab-live", "tab-lists"].forEach((id) => {
    const b = document.getElementById(id); if (b) b.addEventListener("click", () => stShow(false));
  });
  document.getElementById("lang").addEventListener("click", () => { applyI18n(view); stDraw(); });
  applyI18n(view); applyI18n(document.querySelector("nav.tabs"));
})();
