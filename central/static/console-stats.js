// The console's statistics tab: reads and hits per checkpoint (or county, city), a daily chart of reads, hits,
// interceptions and positives, the outcome breakdown and the misread rate per match kind, each chart with the
// same figures in a table under it. Charts by Apache ECharts (vendored: vendor/echarts/, Apache-2.0, loaded
// when the tab first opens): series that count the same thing share one axis, reads (hundreds to thousands a
// day) get their own panel on the same time axis rather than a second scale drawn over the others; tooltips
// are built element by element (every received value set as text).
import { applyI18n, CORDON_I18N, el, t } from "/common/i18n.js";
import { checkpointName, drugName, ringLoaded } from "./console-names.js";

Object.assign(CORDON_I18N.zh, {
  "tab.stats": "统计", "st.title": "统计分析", "st.group": "分组", "st.group.checkpoint": "按查缉点",
  "st.group.county": "按区县", "st.group.city": "按地市", "st.from": "起", "st.to": "止", "st.show": "查询",
  "st.reads": "过车", "st.hits": "比中预警", "st.intercepted": "拦截", "st.positives": "快检阳性",
  "st.by_group": "过车与比中", "st.daily": "每日趋势", "st.outcomes": "处置结果", "st.misreads": "误识别率（按比对方式）",
  "st.kind": "比对方式", "st.n": "处置数", "st.misread_n": "误识别", "st.rate": "误识别率", "st.few": "样本少",
  "st.none": "所选时段无数据", "st.failed": "统计无法读取", "st.reason": "导出事由（必填）", "st.export": "导出 CSV",
  "st.table": "明细", "st.key": "分组", "st.passages": "车次", "st.no_plate": "无牌车",
  "st.alerts": "预警", "st.ack": "签收用时（中位）", "st.tests": "快检", "st.uptime": "相机在线率",
  "st.stale": "离线相机", "st.camera": "相机", "st.samples": "采样", "st.day": "日期", "st.count": "次数",
  "st.chartFailed": "图表库无法加载，数字见下表",
});
Object.assign(CORDON_I18N.en, {
  "tab.stats": "Statistics", "st.title": "Statistics", "st.group": "Group", "st.group.checkpoint": "By checkpoint",
  "st.group.county": "By county", "st.group.city": "By city", "st.from": "From", "st.to": "To", "st.show": "Show",
  "st.reads": "Reads", "st.hits": "Hits", "st.intercepted": "Intercepted", "st.positives": "Positive tests",
  "st.by_group": "Reads and hits", "st.daily": "Day by day", "st.outcomes": "Outcomes", "st.misreads": "Misread rate per match kind",
  "st.kind": "Match kind", "st.n": "Outcomes", "st.misread_n": "Misreads", "st.rate": "Rate", "st.few": "few",
  "st.none": "No data in this period", "st.failed": "Statistics not available", "st.reason": "Export reason (required)",
  "st.export": "Export CSV", "st.table": "Details", "st.key": "Group", "st.passages": "Passages",
  "st.no_plate": "No plate", "st.alerts": "Alerts", "st.ack": "Time to acknowledge (median)", "st.tests": "Quick tests",
  "st.uptime": "Camera uptime", "st.stale": "Cameras that went stale", "st.camera": "Camera", "st.samples": "Samples",
  "st.day": "Day", "st.count": "Count", "st.chartFailed": "The chart library did not load; the figures are in the table",
});

const ST = { data: null, daily: null, misreads: null };
const CHARTS = new Map();  // element id -> ECharts instance
let echarts = null;

function stLabel(tag, key, cls) { const n = el(tag, cls || null, t(key)); n.dataset.i18n = key; return n; }

function buildStatsView() {
  const view = el("main", "stats-view"); view.id = "stats-view"; view.hidden = true;
  const bar = el("div", "st-controls");
  const group = el("select", "cordon-select"); group.id = "st-group";
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
      stGet("/api/v1/stats?" + q("day")), stGet("/api/v1/stats/misreads?" + q("day")), ringLoaded]);
    Object.assign(ST, { data, daily, misreads: mis });
    from.value = data.from; to.value = data.to;
    msg.hidden = true;
  } catch (e) {
    msg.textContent = t("st.failed"); msg.hidden = false; return;
  }
  stDraw();
}

function stEmpty(box) { box.append(stLabel("p", "st.none", "st-none")); }

// ECharts, once, when the tab first shows (1 MB the live view never needs).
async function stEcharts() {
  if (!echarts) echarts = await import("./vendor/echarts/echarts.esm.min.js");
  return echarts;
}
function stColours() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { text: v("--text"), muted: v("--muted"), line: v("--line"), panel: v("--panel"), bg: v("--bg"),
    series: ["#4a90d9", "#e0533d", "#3fb56b", "#d9a400"] };
}
// A tooltip as elements: the axis value, then one line per series with its colour and value.
function stTooltip(params) {
  const list = Array.isArray(params) ? params : [params];
  const box = el("div", "st-tip");
  box.append(el("div", "st-tip-head", list[0].axisValueLabel ?? list[0].name));
  for (const p of list) {
    const row = el("div", "st-tip-row");
    const mark = el("span", "st-tip-mark"); mark.style.backgroundColor = p.color;
    row.append(mark, el("span", null, p.seriesName), el("b", null, p.value));
    box.append(row);
  }
  return box;
}
function stChart(box, option) {
  // A fresh chart on each draw (the box was emptied): the last one is disposed with its element.
  const holder = el("div", "st-echart"); holder.id = box.id + "-chart"; box.prepend(holder);
  const old = CHARTS.get(holder.id);
  if (old) { old.dispose(); old.observer.disconnect(); }
  const chart = echarts.init(holder, null, { renderer: "svg" });
  chart.observer = new ResizeObserver(() => chart.resize());
  chart.observer.observe(holder);
  CHARTS.set(holder.id, chart);
  const c = stColours();
  chart.setOption({
    animation: false, color: c.series, textStyle: { color: c.text, fontFamily: getComputedStyle(document.body).fontFamily },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, formatter: stTooltip, backgroundColor: c.bg,
      borderColor: c.line, textStyle: { color: c.text }, className: "st-tooltip" },
    legend: { top: 0, textStyle: { color: c.text } },
    ...option,
  }, true);
  return chart;
}
const stAxis = (c, extra) => ({ axisLabel: { color: c.muted }, axisLine: { lineStyle: { color: c.line } },
  splitLine: { lineStyle: { color: c.line } }, ...extra });
function stTableOf(id, heads, rows) {
  const table = el("table", "st-table st-rows"); table.id = id;
  const head = el("tr");
  heads.forEach((k) => head.append(stLabel("th", k)));
  table.append(head);
  rows.forEach((cells) => { const tr = el("tr"); tr.dataset.key = cells[0]; cells.forEach((v) => tr.append(el("td", null, v))); table.append(tr); });
  return table;
}

// Reads and hits per group: reads on the left, alerts, interceptions and positives on one shared axis on the
// right, both panels on the same list of groups; the table under it has the same four figures.
function stBars(rows, group) {
  const box = document.getElementById("st-bars"); box.replaceChildren();
  if (!rows.length) { stEmpty(box); return; }
  const c = stColours(), keys = rows.map((r) => stGroupName(group, r.key));
  const hits = [["alerts", "st.hits"], ["intercepted", "st.intercepted"], ["positives", "st.positives"]];
  stChart(box, {
    axisPointer: { link: [{ yAxisIndex: "all" }] },
    grid: [{ left: 8, width: "38%", top: 34, bottom: 8, containLabel: true }, { left: "56%", right: 48, top: 34, bottom: 8, containLabel: true }],
    xAxis: [stAxis(c, { type: "value", gridIndex: 0, minInterval: 1, name: t("st.reads"), nameTextStyle: { color: c.muted } }),
            stAxis(c, { type: "value", gridIndex: 1, minInterval: 1, name: t("st.count"), nameTextStyle: { color: c.muted } })],
    yAxis: [stAxis(c, { type: "category", gridIndex: 0, data: keys, inverse: true }),
            stAxis(c, { type: "category", gridIndex: 1, data: keys, inverse: true, axisLabel: { show: false } })],
    series: [
      { id: "reads", name: t("st.reads"), type: "bar", xAxisIndex: 0, yAxisIndex: 0, data: rows.map((r) => r.reads),
        label: { show: true, position: "right", color: c.text } },
      ...hits.map(([k, label]) => ({ id: k, name: t(label), type: "bar", xAxisIndex: 1, yAxisIndex: 1,
        data: rows.map((r) => stValue(r, k)), label: { show: true, position: "right", color: c.text } })),
    ],
  });
  box.querySelector(".st-echart").style.height = Math.max(220, 60 + rows.length * 64) + "px";
  CHARTS.get("st-bars-chart").resize();
}

// A group as people read it: a checkpoint by its name on the ring (the table shows its id beside it);
// counties and cities are names already.
function stGroupName(group, key) { return group === "checkpoint" ? checkpointName(key) : key; }

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

// Day by day: reads in the upper panel, hits, interceptions and positives in the lower one on one shared
// axis, both panels on the same days (one tooltip for both); the table under it has every figure.
const DAILY = [["reads", "st.reads"], ["alerts", "st.hits"], ["intercepted", "st.intercepted"], ["positives", "st.positives"]];
function stDaily(found) {
  const box = document.getElementById("st-daily"); box.replaceChildren();
  if (!found.rows.length) { stEmpty(box); return; }
  const rows = stEveryDay(found), c = stColours(), days = rows.map((r) => r.key.slice(5));
  stChart(box, {
    axisPointer: { link: [{ xAxisIndex: "all" }] },
    grid: [{ left: 8, right: 16, top: 34, height: "30%", containLabel: true }, { left: 8, right: 16, top: "56%", bottom: 8, containLabel: true }],
    xAxis: [stAxis(c, { type: "category", gridIndex: 0, data: days, axisLabel: { show: false } }),
            stAxis(c, { type: "category", gridIndex: 1, data: days })],
    yAxis: [stAxis(c, { type: "value", gridIndex: 0, minInterval: 1, name: t("st.reads"), nameTextStyle: { color: c.muted } }),
            stAxis(c, { type: "value", gridIndex: 1, minInterval: 1, name: t("st.count"), nameTextStyle: { color: c.muted } })],
    series: DAILY.map(([k, label], n) => ({ id: k, name: t(label), type: rows.length > 1 ? "line" : "bar",
      xAxisIndex: n ? 1 : 0, yAxisIndex: n ? 1 : 0, symbolSize: 6, data: rows.map((r) => stValue(r, k)) })),
  });
  box.append(stTableOf("st-daily-table", ["st.day", ...DAILY.map(([, label]) => label)],
    rows.map((r) => [r.key, ...DAILY.map(([k]) => stValue(r, k))])));
}

const OUTCOMES = ["intercepted", "not_found", "misread", "released"];
function stOutcomes(rows) {
  const box = document.getElementById("st-outcomes"); box.replaceChildren();
  const totals = Object.fromEntries(OUTCOMES.map((k) => [k, 0]));
  rows.forEach((r) => OUTCOMES.forEach((k) => { totals[k] += r.outcomes[k] || 0; }));
  if (!Object.values(totals).some(Boolean)) { stEmpty(box); return; }
  const c = stColours(), colours = { intercepted: "#3fb56b", not_found: "#8a8f98", misread: "#e0533d", released: "#d9a400" };
  stChart(box, {
    legend: { show: false },
    grid: { left: 8, right: 40, top: 8, bottom: 8, containLabel: true },
    xAxis: stAxis(c, { type: "value", minInterval: 1 }),
    yAxis: stAxis(c, { type: "category", data: OUTCOMES.map((k) => t("outcome." + k)), inverse: true }),
    series: [{ id: "outcomes", name: t("st.outcomes"), type: "bar", label: { show: true, position: "right", color: c.text },
      data: OUTCOMES.map((k) => ({ value: totals[k], itemStyle: { color: colours[k] } })) }],
  });
  box.querySelector(".st-echart").style.height = "190px";
  CHARTS.get("st-outcomes-chart").resize();
  box.append(stTableOf("st-outcomes-table", ["st.outcomes", "st.count"], OUTCOMES.map((k) => [t("outcome." + k), totals[k]])));
  box.querySelectorAll("#st-outcomes-table tr[data-key]").forEach((tr, i) => { tr.dataset.outcome = OUTCOMES[i]; });
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
    const drugs = Object.entries(r.positives_by_drug || {}).map(([d, n]) => `${drugName(d)} ${n}`).join(", ");
    const uptime = el("td", "st-uptime", stPercent(r.camera_uptime));
    uptime.dataset.uptime = r.camera_uptime === null ? "" : String(r.camera_uptime);
    if (r.camera_uptime !== null && r.camera_uptime < 0.95) uptime.classList.add("st-low");
    const key = el("td", "st-key", stGroupName(found.group, r.key));
    if (found.group === "checkpoint") {
      const id = el("span", "muted", " " + r.key);
      id.dataset.id = "";
      key.append(id);
    }
    tr.append(key, el("td", null, r.reads), el("td", null, r.passages), el("td", null, r.no_plate),
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
      tr.append(el("td", null, checkpointName(c.checkpoint)), el("td", null, c.camera), el("td", null, c.samples),
                el("td", "st-low", stPercent(c.uptime)));
      stale.append(tr);
    });
    box.append(stale);
  }
}

async function stDraw() {
  if (!ST.data) return;
  try {
    await stEcharts();
  } catch (e) {
    const msg = document.getElementById("st-msg");
    msg.textContent = t("st.chartFailed"); msg.hidden = false;
    stMisreads(ST.misreads); stTable(ST.data);
    return;
  }
  stBars(ST.data.rows, ST.data.group); stDaily(ST.daily); stOutcomes(ST.data.rows); stMisreads(ST.misreads); stTable(ST.data);
  document.getElementById("stats-view").dataset.drawn = String(Date.now());
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
  document.getElementById("theme").addEventListener("click", () => { if (!view.hidden) stDraw(); });
  applyI18n(view); applyI18n(document.querySelector("nav.tabs"));
})();
