// Intelligence view of the console: a plate's route across the ring (table and map) and the vehicles
// that travel with it, with "add to list" in one step. Every query carries a reason (the hub audits it).
// Uses console-map.js's projector() and svgEl(); renders with textContent only.
import { applyI18n, CORDON_I18N, cordonLang, el, fmtTime, t } from "/common/i18n.js";
import { projector, svgEl } from "./console-map.js";

Object.assign(CORDON_I18N.zh, {
  "intel": "研判", "intel.title": "车辆研判：行车轨迹与同行车辆", "intel.plate": "车牌", "intel.reason": "查询事由（必填，留痕）",
  "intel.days": "天数", "intel.window": "前后间隔（秒）", "intel.minShared": "最少同行次数", "intel.route": "行车轨迹",
  "intel.companions": "同行车辆", "intel.close": "关闭", "intel.none": "无结果", "intel.failed": "查询失败",
  "intel.denied": "无权查询", "intel.shared": "同行", "intel.times": "次", "intel.meanGap": "平均间隔",
  "intel.add": "加入名单", "intel.added": "已加入", "intel.addFailed": "加入失败", "intel.list": "名单",
  "intel.gap": "间隔", "intel.truncated": "结果过多，仅显示部分",
  "intel.search": "检索记录", "intel.place": "地点（全部）", "intel.plateHint": "车牌或部分车牌（* 任意，? 一位）",
});
Object.assign(CORDON_I18N.en, {
  "intel": "Intel", "intel.title": "Vehicle intelligence: route and companions", "intel.plate": "Plate",
  "intel.reason": "Reason (required, audited)", "intel.days": "Days", "intel.window": "Within (s)",
  "intel.minShared": "At least shared", "intel.route": "Route", "intel.companions": "Companions", "intel.close": "Close",
  "intel.none": "Nothing found", "intel.failed": "Query failed", "intel.denied": "Your role may not query the record",
  "intel.shared": "shared", "intel.times": "times", "intel.meanGap": "mean gap", "intel.add": "Add to list",
  "intel.added": "Added", "intel.addFailed": "Could not add", "intel.list": "List", "intel.gap": "gap",
  "intel.truncated": "Too many results, showing some",
  "intel.search": "Search record", "intel.place": "Place (all)", "intel.plateHint": "Plate or partial plate (* any, ? one)",
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

  const open = button("intel", "intel-open");
  document.querySelector("header").insertBefore(open, document.getElementById("theme"));
  const panel = el("section", "intel-panel"); panel.id = "intel"; panel.hidden = true;
  const title = el("h2", "", t("intel.title")); title.dataset.i18n = "intel.title";
  const form = el("form", "intel-form");
  const [plateL, plate] = field("intel.plate", { id: "intel-plate", required: "", maxlength: "16", autocomplete: "off" });
  const [reasonL, reason] = field("intel.reason", { id: "intel-reason", required: "", maxlength: "200" });
  const [daysL, days] = field("intel.days", { id: "intel-days", type: "number", min: "1", max: "31", value: "7" });
  const [windowL, windowS] = field("intel.window", { id: "intel-window", type: "number", min: "1", max: "1800", value: "120" });
  const [minL, minShared] = field("intel.minShared", { id: "intel-min", type: "number", min: "1", max: "50", value: "3" });
  const routeBtn = button("intel.route", "intel-route"), compBtn = button("intel.companions", "intel-companions");
  const close = button("intel.close", "intel-close");
  plate.dataset.i18nPlaceholder = "intel.plateHint"; plate.placeholder = t("intel.plateHint");
  // The record search: a plate or a partial plate, over the days given, at one checkpoint or all.
  const place = document.createElement("select"); place.id = "intel-place";
  const searchBtn = button("intel.search", "intel-search");
  form.append(plateL, reasonL, daysL, place, windowL, minL, searchBtn, routeBtn, compBtn, close);
  const status = el("p", "muted"); status.id = "intel-status";
  const map = svgEl("svg", { id: "intel-map", class: "ring-map intel-map", viewBox: "0 0 600 440", role: "img" });
  const results = el("div", "intel-results"); results.id = "intel-results";
  panel.append(title, form, status, map, results);
  document.body.append(panel);

  open.addEventListener("click", () => { panel.hidden = !panel.hidden; if (!panel.hidden) plate.focus(); });
  close.addEventListener("click", () => { panel.hidden = true; });
  document.getElementById("lang").addEventListener("click", () => applyI18n(panel));

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

  function drawRoute(passages) {
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    map.replaceChildren(title);
    if (!ringCps.length) return;
    const project = projector(ringCps);
    const where = new Map(ringCps.map((c) => [c.checkpoint, project(c)]));
    for (const [id, xy] of where) {
      const g = svgEl("g", { class: "cp unknown", transform: "translate(" + xy[0].toFixed(1) + "," + xy[1].toFixed(1) + ")" });
      g.append(svgEl("title", {}, names().get(id))); g.append(svgEl("circle", { r: 5 }));
      map.append(g);
    }
    const points = passages.map((p) => where.get(p.checkpoint)).filter(Boolean);
    if (points.length > 1) map.append(svgEl("polyline", { class: "intel-path", points: points.map((xy) => xy.map((v) => v.toFixed(1)).join(",")).join(" ") }));
    passages.forEach((p, i) => {
      const xy = where.get(p.checkpoint);
      if (!xy) return;
      const g = svgEl("g", { class: "intel-stop", transform: "translate(" + xy[0].toFixed(1) + "," + xy[1].toFixed(1) + ")" });
      g.dataset.checkpoint = p.checkpoint;
      g.append(svgEl("circle", { r: 9 })); g.append(svgEl("text", { y: 4, "text-anchor": "middle" }, i + 1));
      map.append(g);
    });
  }
  function passageTable(passages, withGap) {
    const table = el("table", "intel-table");
    const n = names();
    passages.forEach((p, i) => {
      const tr = el("tr");
      tr.append(el("td", "", String(i + 1)), el("td", "", fmtTime(p.first_seen)), el("td", "", n.get(p.checkpoint) || p.checkpoint),
        el("td", "muted", p.checkpoint + "/" + p.epoch + "/" + p.seq));
      if (withGap) tr.append(el("td", "", t("intel.gap") + " " + (p.gap_s > 0 ? "+" : "") + Math.round(p.gap_s) + " s"));
      table.append(tr);
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
    const table = el("table", "intel-table"); table.id = "intel-reads";
    for (const r of body.reads) {
      const tr = el("tr");
      tr.append(el("td", "", fmtTime(r.captured_at)), el("td", "plate", r.plate || r.plate_raw),
        el("td", "", n.get(r.checkpoint) || r.checkpoint), el("td", "muted", r.camera_id),
        el("td", "muted", r.confidence == null ? "" : String(r.confidence)));
      table.append(tr);
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
    select.className = "intel-list";
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
