// Intelligence view of the console (its own tab, 研判): a plate's route across the ring (a table with
// headers and checkpoint names, and the ring map with each stop's checkpoint labelled and every stop number
// shown, two stops at one checkpoint included) and the vehicles that travel with it, with "add to list" in
// one step. Every query carries a reason (the hub audits it). Renders with textContent only.
import { applyI18n, CORDON_I18N, cordonLang, el, fmtTime, t } from "/common/i18n.js";
import { RingMap, svgEl } from "./console-map.js";

Object.assign(CORDON_I18N.zh, {
  "intel": "研判", "intel.title": "车辆研判：行车轨迹与同行车辆", "intel.plate": "车牌", "intel.reason": "查询事由（必填，留痕）",
  "intel.days": "天数", "intel.window": "前后间隔（秒）", "intel.minShared": "最少同行次数", "intel.route": "行车轨迹",
  "intel.companions": "同行车辆", "intel.none": "无结果", "intel.failed": "查询失败",
  "intel.denied": "无权查询", "intel.shared": "同行", "intel.times": "次", "intel.meanGap": "平均间隔",
  "intel.add": "加入名单", "intel.added": "已加入", "intel.addFailed": "加入失败", "intel.list": "名单",
  "intel.gap": "间隔", "intel.truncated": "结果过多，仅显示部分",
  "intel.search": "检索记录", "intel.place": "地点（全部）", "intel.plateHint": "车牌或部分车牌（* 任意，? 一位）",
  "intel.col.n": "序号", "intel.col.day": "日期", "intel.col.time": "时间", "intel.col.checkpoint": "查缉点",
  "intel.col.since": "距上一站", "intel.col.gap": "与目标车间隔", "intel.col.plate": "车牌", "intel.col.camera": "相机",
  "intel.col.confidence": "置信度", "intel.mapNone": "轨迹的经停查缉点显示在这里", "intel.stopsAt": "经停",
});
Object.assign(CORDON_I18N.en, {
  "intel": "Intel", "intel.title": "Vehicle intelligence: route and companions", "intel.plate": "Plate",
  "intel.reason": "Reason (required, audited)", "intel.days": "Days", "intel.window": "Within (s)",
  "intel.minShared": "At least shared", "intel.route": "Route", "intel.companions": "Companions",
  "intel.none": "Nothing found", "intel.failed": "Query failed", "intel.denied": "Your role may not query the record",
  "intel.shared": "shared", "intel.times": "times", "intel.meanGap": "mean gap", "intel.add": "Add to list",
  "intel.added": "Added", "intel.addFailed": "Could not add", "intel.list": "List", "intel.gap": "gap",
  "intel.truncated": "Too many results, showing some",
  "intel.search": "Search record", "intel.place": "Place (all)", "intel.plateHint": "Plate or partial plate (* any, ? one)",
  "intel.col.n": "#", "intel.col.day": "Date", "intel.col.time": "Time", "intel.col.checkpoint": "Checkpoint",
  "intel.col.since": "Since previous stop", "intel.col.gap": "Gap to the target", "intel.col.plate": "Plate",
  "intel.col.camera": "Camera", "intel.col.confidence": "Confidence", "intel.mapNone": "The route's stops appear here",
  "intel.stopsAt": "stops",
});

(function intel() {
  let ringCps = [];
  let lists = [];
  const names = () => new Map(ringCps.map((c) => [c.checkpoint, cordonLang() === "en" ? (c.name_en || c.checkpoint) : (c.name || c.checkpoint)]));

  function field(key, attrs) {
    const label = el("label", "intel-field");
    const span = el("span", "", t(key)); span.dataset.i18n = key;
    const input = document.createElement("input");
    for (const [k, v] of Object.entries(attrs)) input.setAttribute(k, v);
    label.append(span, input);
    return [label, input];
  }
  function button(key, id) {
    const b = el("button", "", t(key)); b.dataset.i18n = key; if (id) b.id = id; b.type = "button";
    return b;
  }

  // A tab of its own: it hides the other views while it shows, and hides itself when another tab is chosen.
  const open = button("intel", "tab-intel");
  document.querySelector("nav.tabs").append(open);
  const panel = el("main", "intel-view"); panel.id = "intel"; panel.hidden = true;
  const title = el("h2", "", t("intel.title")); title.dataset.i18n = "intel.title";
  const form = el("form", "intel-form");
  const [plateL, plate] = field("intel.plate", { id: "intel-plate", required: "", maxlength: "16", autocomplete: "off" });
  const [reasonL, reason] = field("intel.reason", { id: "intel-reason", required: "", maxlength: "200" });
  const [daysL, days] = field("intel.days", { id: "intel-days", type: "number", min: "1", max: "31", value: "7" });
  const [windowL, windowS] = field("intel.window", { id: "intel-window", type: "number", min: "1", max: "1800", value: "120" });
  const [minL, minShared] = field("intel.minShared", { id: "intel-min", type: "number", min: "1", max: "50", value: "3" });
  const routeBtn = button("intel.route", "intel-route"), compBtn = button("intel.companions", "intel-companions");
  plate.dataset.i18nPlaceholder = "intel.plateHint"; plate.placeholder = t("intel.plateHint");
  // The record search: a plate or a partial plate, over the days given, at one checkpoint or all.
  const place = document.createElement("select"); place.id = "intel-place"; place.className = "cordon-select";
  const searchBtn = button("intel.search", "intel-search");
  form.append(plateL, reasonL, daysL, place, windowL, minL, searchBtn, routeBtn, compBtn);
  const status = el("p", "muted"); status.id = "intel-status";
  const mapBox = el("section", "intel-map-box");
  const map = svgEl("svg", { id: "intel-map", class: "ring-map intel-map", role: "img" });
  mapBox.append(map);
  const results = el("div", "intel-results"); results.id = "intel-results";
  panel.append(title, form, status, mapBox, results);
  document.querySelector("main.console").after(panel);
  const ringMap = new RingMap(map);
  let route = { stops: new Map(), path: [] };

  const views = () => [document.querySelector("main.console"), document.getElementById("lists-view"),
    document.getElementById("stats-view"), document.getElementById("kits")].filter(Boolean);
  function show(on) {
    panel.hidden = !on;
    open.classList.toggle("selected", on);
    if (!on) return;
    for (const v of views()) v.hidden = true;
    for (const b of document.querySelectorAll("nav.tabs button")) if (b !== open) b.classList.remove("selected");
    plate.focus();
    drawRoute(null);
  }
  open.addEventListener("click", () => show(true));
  // (the quick-test button is added by a module that runs later: one listener for all of them)
  document.addEventListener("click", (ev) => {
    if (ev.target.closest && ev.target.closest("#tab-live, #tab-lists, #tab-stats, #kits-open")) show(false);
  });
  document.getElementById("lang").addEventListener("click", () => { applyI18n(panel); drawRoute(null); });

  function fillPlaces() {
    const any = el("option", "", t("intel.place")); any.value = ""; any.dataset.i18n = "intel.place";
    const chosen = place.value;
    place.replaceChildren(any);
    for (const [id, name] of names()) { const o = el("option", "", name); o.value = id; place.append(o); }
    place.value = chosen;
  }
  fetch("/api/v1/ring", { credentials: "same-origin" }).then((r) => r.ok ? r.json() : { checkpoints: [] })
    .then((b) => { ringCps = b.checkpoints || []; fillPlaces(); }).catch(() => { ringCps = []; });
  document.getElementById("lang").addEventListener("click", fillPlaces);

  function params() {
    const until = Date.now() / 1000;
    const span = Math.min(31, Math.max(1, Number(days.value) || 7)) * 86400;
    return new URLSearchParams({ plate: plate.value.trim(), reason: reason.value.trim(), from: String(until - span + 1),
      to: String(until), window_s: windowS.value || "120", min_shared: minShared.value || "3" });
  }
  async function query(path) {
    if (!form.reportValidity()) return null;
    status.textContent = "…";
    const resp = await fetch(path + "?" + params(), { credentials: "same-origin" });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      status.textContent = (resp.status === 403 ? t("intel.denied") : t("intel.failed")) + (body.error ? ": " + body.error : "");
      return null;
    }
    status.textContent = "";
    return body;
  }

  // The route on the ring map: each visited checkpoint labelled with its name and its stop numbers (so two
  // stops at one checkpoint both show), arrows from stop to stop; the other checkpoints small and grey.
  function drawRoute(passages) {
    if (passages) {
      const stops = new Map();
      passages.forEach((p, i) => { if (!stops.has(p.checkpoint)) stops.set(p.checkpoint, []); stops.get(p.checkpoint).push(i + 1); });
      route = { stops, path: passages.map((p) => p.checkpoint) };
    }
    ringMap.opts.routePath = route.path;
    ringMap.update(ringCps, () => null, route.stops);
  }
  function headed(keys) {
    const table = el("table", "intel-table");
    const head = el("thead"), row = el("tr");
    for (const key of keys) { const th = el("th", "", t(key)); th.dataset.i18n = key; th.scope = "col"; row.append(th); }
    head.append(row);
    table.append(head, el("tbody"));
    return table;
  }
  const day = (s) => new Date(s * 1000).toLocaleDateString(cordonLang() === "en" ? "en-GB" : "zh-CN", { month: "2-digit", day: "2-digit" });
  function duration(s) {
    s = Math.abs(s);
    return s < 120 ? Math.round(s) + " s" : s < 7200 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h";
  }
  function passageTable(passages, withGap) {
    const table = headed(["intel.col.n", "intel.col.day", "intel.col.time", "intel.col.checkpoint", withGap ? "intel.col.gap" : "intel.col.since"]);
    const n = names(), body = table.tBodies[0];
    passages.forEach((p, i) => {
      const tr = el("tr");
      tr.dataset.checkpoint = p.checkpoint;
      const where = el("td", "", n.get(p.checkpoint) || p.checkpoint);
      where.title = p.checkpoint;
      const last = withGap ? (p.gap_s > 0 ? "+" : p.gap_s < 0 ? "−" : "") + duration(p.gap_s)
        : i ? duration(p.first_seen - passages[i - 1].first_seen) : "–";
      tr.append(el("td", "num", String(i + 1)), el("td", "", day(p.first_seen)), el("td", "", fmtTime(p.first_seen)), where, el("td", "num", last));
      body.append(tr);
    });
    return table;
  }

  searchBtn.addEventListener("click", async () => {
    if (!form.reportValidity()) return;
    const until = Date.now() / 1000;
    const span = Math.min(31, Math.max(1, Number(days.value) || 7)) * 86400;
    const text = plate.value.trim();
    const q = new URLSearchParams({ reason: reason.value.trim(), since: String(until - span + 1), until: String(until) });
    q.set(/[*?]/.test(text) ? "pattern" : "plate", text);
    if (place.value) q.set("checkpoint", place.value);
    status.textContent = "…";
    const resp = await fetch("/api/v1/reads?" + q, { credentials: "same-origin" });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      status.textContent = (resp.status === 403 ? t("intel.denied") : t("intel.failed")) + (body.error ? ": " + body.error : "");
      return;
    }
    status.textContent = "";
    const n = names();
    const table = headed(["intel.col.day", "intel.col.time", "intel.col.plate", "intel.col.checkpoint", "intel.col.camera", "intel.col.confidence"]);
    table.id = "intel-reads";
    for (const r of body.reads) {
      const tr = el("tr");
      tr.append(el("td", "", day(r.captured_at)), el("td", "", fmtTime(r.captured_at)), el("td", "plate", r.plate || r.plate_raw),
        el("td", "", n.get(r.checkpoint) || r.checkpoint), el("td", "muted", r.camera_id),
        el("td", "muted", r.confidence == null ? "" : String(r.confidence)));
      table.tBodies[0].append(tr);
    }
    results.replaceChildren(body.reads.length ? table : el("p", "muted", t("intel.none")));
    if (body.truncated) results.prepend(el("p", "muted", t("intel.truncated")));
  });

  routeBtn.addEventListener("click", async () => {
    const body = await query("/api/v1/intel/route");
    if (!body) return;
    drawRoute(body.passages);
    results.replaceChildren(body.passages.length ? passageTable(body.passages, false) : el("p", "muted", t("intel.none")));
    if (body.truncated) results.prepend(el("p", "muted", t("intel.truncated")));
  });

  async function loadLists() {
    if (lists.length) return lists;
    const resp = await fetch("/api/v1/watchlists", { credentials: "same-origin" });
    lists = resp.ok ? ((await resp.json()).watchlists || []).map((w) => w.watchlist || w) : [];
    return lists;
  }
  function addToList(c, target) {
    const box = el("div", "intel-add");
    const select = document.createElement("select");
    select.className = "intel-list cordon-select";
    for (const w of lists) { const o = el("option", "", w.name || w.list_id); o.value = w.list_id; select.append(o); }
    const add = button("intel.add");
    const said = el("span", "muted");
    add.addEventListener("click", async () => {
      const resp = await fetch("/api/v1/watchlists/" + encodeURIComponent(select.value) + "/entries", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ plate: c.plate, reason: "同行车辆 companion of " + target + " (" + c.shared + "×): " + reason.value.trim() }),
      });
      said.textContent = resp.ok ? t("intel.added") : t("intel.addFailed") + " (" + resp.status + ")";
    });
    box.append(select, add, said);
    return box;
  }
  compBtn.addEventListener("click", async () => {
    const body = await query("/api/v1/intel/companions");
    if (!body) return;
    drawRoute(body.route);
    await loadLists().catch(() => []);
    if (!body.companions.length) { results.replaceChildren(el("p", "muted", t("intel.none"))); return; }
    results.replaceChildren(...body.companions.map((c) => {
      const item = el("div", "intel-companion");
      item.dataset.plate = c.plate;
      item.append(el("span", "plate", c.plate),
        el("span", "", t("intel.shared") + " " + c.shared + " " + t("intel.times") + " · " + t("intel.meanGap") + " " + Math.round(c.mean_gap_s) + " s"),
        passageTable(c.passages, true), addToList(c, body.plate));
      return item;
    }));
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); compBtn.click(); });
})();
