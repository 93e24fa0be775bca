// Watchlist management in the console: lists, their entries (paged on the server), CSV import with
// progress, upstream sources and which edge holds which feed version. Everything received is set as text.
import { applyI18n, CORDON_I18N, cordonLang, el, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "tab.live": "态势", "tab.lists": "布控名单", "wl.lists": "布控名单", "wl.new": "新建名单", "wl.save": "保存",
  "wl.id": "名单编号", "wl.name": "名称", "wl.kind": "类型", "wl.action": "处置方式", "wl.priority": "优先级",
  "wl.restricted": "限制查看", "wl.alert_kinds": "报警比对方式", "wl.validity": "有效期", "wl.entries": "布控对象",
  "wl.count": "条", "wl.readonly": "只读：您的角色不能修改布控名单", "wl.search": "按号牌检索", "wl.prev": "上一页",
  "wl.next": "下一页", "wl.plate": "号牌", "wl.reason": "布控事由", "wl.case_ref": "案件编号", "wl.add": "添加布控对象",
  "wl.expire": "撤控", "wl.delete": "删除", "wl.edit": "修改", "wl.expired": "已失效", "wl.import": "导入 CSV", "wl.import.go": "开始导入",
  "wl.import.running": "正在导入", "wl.import.applying": "正在生效", "wl.import.done": "导入完成",
  "wl.import.rejected": "导入被拒绝，未做任何修改", "wl.import.failed": "导入失败", "wl.line": "第 {n} 行",
  "wl.upstream": "上级名单来源", "wl.upstream.none": "未配置上级来源", "wl.last_poll": "最近拉取",
  "wl.error": "错误", "wl.edges": "各查缉点名单版本", "wl.hub_version": "中心当前版本", "wl.lagging": "落后",
  "wl.current": "已同步", "wl.none": "暂无名单", "wl.pick": "选择一个名单查看布控对象", "wl.saved": "已保存",
  "wl.denied": "无权限", "wl.yes": "是", "wl.no": "否", "wl.always": "长期",
  "action.intercept": "拦截", "action.covert": "秘密布控", "action.notify": "提示",
  "kind.vehicle": "车辆", "kind.person": "人员",
});
Object.assign(CORDON_I18N.en, {
  "tab.live": "Live", "tab.lists": "Watchlists", "wl.lists": "Watchlists", "wl.new": "New list", "wl.save": "Save",
  "wl.id": "List id", "wl.name": "Name", "wl.kind": "Kind", "wl.action": "Action", "wl.priority": "Priority",
  "wl.restricted": "Restricted", "wl.alert_kinds": "Alert on match kinds", "wl.validity": "Validity",
  "wl.entries": "Entries", "wl.count": "entries", "wl.readonly": "Read-only: your role cannot change watchlists",
  "wl.search": "Search by plate", "wl.prev": "Previous", "wl.next": "Next", "wl.plate": "Plate",
  "wl.reason": "Reason", "wl.case_ref": "Case ref", "wl.add": "Add entry", "wl.expire": "Expire",
  "wl.delete": "Delete", "wl.edit": "Edit", "wl.expired": "expired", "wl.import": "Import CSV", "wl.import.go": "Import",
  "wl.import.running": "Importing", "wl.import.applying": "Applying", "wl.import.done": "Import done",
  "wl.import.rejected": "Import rejected, nothing changed", "wl.import.failed": "Import failed", "wl.line": "line {n}",
  "wl.upstream": "Upstream sources", "wl.upstream.none": "No upstream sources configured",
  "wl.last_poll": "Last pull", "wl.error": "Error", "wl.edges": "Feed version per checkpoint",
  "wl.hub_version": "Hub version", "wl.lagging": "lagging", "wl.current": "current", "wl.none": "No lists yet",
  "wl.pick": "Pick a list to see its entries", "wl.saved": "Saved", "wl.denied": "Not allowed", "wl.yes": "yes",
  "wl.no": "no", "wl.always": "always",
  "action.intercept": "Intercept", "action.covert": "Covert", "action.notify": "Notify",
  "kind.vehicle": "Vehicle", "kind.person": "Person",
});

const WL = { lists: [], canWrite: false, current: null, q: "", offset: 0, limit: 50, total: 0, job: null };
const PAGE = 50;

async function wlApi(method, path, body, raw) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.body = raw ? body : JSON.stringify(body);
    opts.headers["Content-Type"] = raw ? "text/csv" : "application/json";
  }
  const resp = await fetch(path, opts);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  return { status: resp.status, ok: resp.ok, data };
}
function wlMsg(text, bad) {
  const m = document.getElementById("wl-msg");
  m.textContent = text; m.className = bad ? "badge bad" : "badge ok"; m.hidden = !text;
}
function fmtWhen(ts) { return ts ? new Date(ts * 1000).toLocaleString(cordonLang() === "en" ? "en-GB" : "zh-CN", { hour12: false }) : "—"; }
function wlField(labelKey, input) {
  const label = el("label", "wl-field"); label.append(el("span", null, t(labelKey)), input); return label;
}
function wlInput(name, type, value) {
  const i = document.createElement("input"); i.name = name; i.type = type || "text";
  if (type === "checkbox") i.checked = !!value; else if (value !== undefined && value !== null) i.value = String(value);
  return i;
}
function wlSelectEl(name, options, value) {
  const s = document.createElement("select"); s.name = name;
  for (const o of options) { const op = el("option", null, t(o[1])); op.value = o[0]; s.append(op); }
  s.value = value; return s;
}
function wlButton(key, onClick, cls) {
  const b = el("button", cls || null, t(key)); b.type = "button"; b.addEventListener("click", onClick); return b;
}

async function wlLoad() {
  const probe = await wlApi("GET", "/api/v1/watchlists/imports/-");  // 404 for writers, 403 for the others
  WL.canWrite = probe.status === 404;
  const r = await wlApi("GET", "/api/v1/watchlists");
  WL.lists = r.ok ? r.data.watchlists : [];
  if (!r.ok) wlMsg(t("wl.denied") + " (" + r.status + ")", true);
  wlDrawLists();
  if (WL.current) await wlEntries();
  await Promise.all([wlFeed(), wlUpstream()]);
}

function wlDrawLists() {
  document.getElementById("wl-readonly").hidden = WL.canWrite;
  document.getElementById("wl-new").hidden = !WL.canWrite;
  const ul = document.getElementById("wl-lists");
  ul.replaceChildren(...WL.lists.map(({ watchlist: w, entries }) => {
    const li = el("li", "wl-list" + (WL.current === w.list_id ? " selected" : ""));
    li.dataset.list = w.list_id; li.tabIndex = 0;
    li.append(el("strong", "wl-name", w.name), el("span", "muted", w.list_id),
      el("span", "badge", t("action." + w.action)), el("span", null, t("wl.priority") + " " + w.priority),
      el("span", "wl-count", entries + " " + t("wl.count")));
    if (w.restricted) li.append(el("span", "badge warn", t("wl.restricted")));
    li.addEventListener("click", () => wlSelect(w.list_id));
    return li;
  }));
  document.getElementById("wl-none").hidden = WL.lists.length > 0;
}

function wlListForm(w) {
  const f = document.createElement("form"); f.className = "wl-form";
  const kinds = new Set(w ? w.alert_kinds : ["exact", "equivalent"]);
  const ak = el("span", "wl-kinds");
  for (const k of ["exact", "equivalent", "fuzzy", "pattern"]) {
    const c = wlInput("ak-" + k, "checkbox", kinds.has(k)); const l = el("label"); l.append(c, el("span", null, k)); ak.append(l);
  }
  const date = (ts) => ts ? new Date(ts * 1000).toISOString().slice(0, 10) : "";
  f.append(wlField("wl.id", wlInput("list_id", "text", w ? w.list_id : "")), wlField("wl.name", wlInput("name", "text", w ? w.name : "")),
    wlField("wl.kind", wlSelectEl("kind", [["vehicle", "kind.vehicle"], ["person", "kind.person"]], w ? w.kind : "vehicle")),
    wlField("wl.action", wlSelectEl("action", [["intercept", "action.intercept"], ["covert", "action.covert"], ["notify", "action.notify"]], w ? w.action : "intercept")),
    wlField("wl.priority", wlInput("priority", "number", w ? w.priority : 50)),
    wlField("wl.restricted", wlInput("restricted", "checkbox", w ? w.restricted : false)), wlField("wl.alert_kinds", ak),
    wlField("wl.validity", wlInput("valid_from", "date", date(w && w.valid_from))), wlInput("valid_until", "date", date(w && w.valid_until)));
  if (w) f.elements.list_id.readOnly = true;
  const save = el("button", "primary", t("wl.save")); save.type = "submit"; f.append(save);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const e = f.elements, ts = (v) => v ? Date.parse(v + "T00:00:00") / 1000 : null;
    const body = { list_id: e.list_id.value.trim(), name: e.name.value.trim(), kind: e.kind.value, action: e.action.value,
      priority: Number(e.priority.value), restricted: e.restricted.checked, valid_from: ts(e.valid_from.value),
      valid_until: ts(e.valid_until.value),
      alert_kinds: ["exact", "equivalent", "fuzzy", "pattern"].filter((k) => e["ak-" + k].checked) };
    const r = await wlApi("POST", "/api/v1/watchlists", body);
    wlMsg(r.ok ? t("wl.saved") : (r.data && r.data.error) || String(r.status), !r.ok);
    if (r.ok) { WL.current = body.list_id; f.remove(); await wlLoad(); }
  });
  return f;
}

async function wlSelect(listId) {
  WL.current = listId; WL.offset = 0; WL.q = "";
  document.getElementById("wl-q").value = "";
  wlDrawLists(); await wlEntries();
}

async function wlEntries() {
  const box = document.getElementById("wl-detail");
  const item = WL.lists.find((x) => x.watchlist.list_id === WL.current);
  if (!item) { box.hidden = true; return; }
  box.hidden = false;
  const w = item.watchlist;
  document.getElementById("wl-title").textContent = w.name + " · " + w.list_id;
  document.getElementById("wl-facts").replaceChildren(
    ...[["wl.kind", t("kind." + w.kind)], ["wl.action", t("action." + w.action)], ["wl.priority", w.priority],
      ["wl.restricted", t(w.restricted ? "wl.yes" : "wl.no")], ["wl.alert_kinds", w.alert_kinds.join(", ")],
      ["wl.validity", (w.valid_from ? fmtWhen(w.valid_from) : t("wl.always")) + " – " + (w.valid_until ? fmtWhen(w.valid_until) : t("wl.always"))]]
      .flatMap(([k, v]) => [el("dt", null, t(k)), el("dd", null, v)]));
  const edit = document.getElementById("wl-edit"); edit.replaceChildren();
  document.getElementById("wl-write").hidden = !WL.canWrite;
  if (WL.canWrite) edit.append(wlListForm(w));
  const params = new URLSearchParams({ q: WL.q, limit: String(PAGE), offset: String(WL.offset) });
  const r = await wlApi("GET", "/api/v1/watchlists/" + encodeURIComponent(w.list_id) + "/entries?" + params);
  const rows = r.ok ? r.data.entries : [];
  WL.total = r.ok ? r.data.total : 0;
  const now = Date.now() / 1000;
  document.getElementById("wl-rows").replaceChildren(...rows.map((e) => {
    const tr = el("tr"); tr.dataset.entry = e.entry_id;
    const expired = e.valid_until && e.valid_until <= now;
    tr.append(el("td", "plate", e.plate), el("td", "wl-reason", e.reason), el("td", null, e.case_ref),
      el("td", null, expired ? t("wl.expired") : (e.valid_until ? fmtWhen(e.valid_until) : t("wl.always"))));
    const act = el("td");
    if (WL.canWrite) {
      if (!expired) act.append(wlButton("wl.expire", () => wlEntryAction("POST", "/api/v1/entries/" + encodeURIComponent(e.entry_id) + "/expire")));
      act.append(wlButton("wl.edit", () => wlEditEntry(e)));
      act.append(wlButton("wl.delete", () => wlEntryAction("DELETE", "/api/v1/entries/" + encodeURIComponent(e.entry_id)), "danger"));
    }
    tr.append(act); return tr;
  }));
  const last = Math.min(WL.offset + rows.length, WL.total);
  document.getElementById("wl-page").textContent = (WL.total ? WL.offset + 1 : 0) + "–" + last + " / " + WL.total;
  document.getElementById("wl-prev").disabled = WL.offset === 0;
  document.getElementById("wl-next").disabled = last >= WL.total;
}

async function wlEntryAction(method, path) {
  const r = await wlApi(method, path);
  wlMsg(r.ok ? t("wl.saved") : (r.data && r.data.error) || String(r.status), !r.ok);
  await wlLoad();
}

// Edit: the add form filled with the entry, saved under its id (an upsert of the same entry).
function wlEditEntry(entry) {
  const e = document.getElementById("wl-add").elements;
  e.plate.value = entry.plate; e.reason.value = entry.reason; e.case_ref.value = entry.case_ref;
  WL.editing = entry;
  e.plate.focus();
}

async function wlAddEntry(ev) {
  ev.preventDefault();
  const f = ev.target, e = f.elements;
  const body = { plate: e.plate.value, reason: e.reason.value, case_ref: e.case_ref.value };
  const old = WL.editing;
  if (old && old.plate === body.plate) {
    Object.assign(body, { entry_id: old.entry_id, colour: old.colour, vehicle_type: old.vehicle_type,
      valid_from: old.valid_from, valid_until: old.valid_until });
  }
  WL.editing = null;
  const r = await wlApi("POST", "/api/v1/watchlists/" + encodeURIComponent(WL.current) + "/entries", body);
  wlMsg(r.ok ? t("wl.saved") : (r.data && r.data.error) || String(r.status), !r.ok);
  if (r.ok) { f.reset(); await wlLoad(); }
}

async function wlImport(ev) {
  ev.preventDefault();
  const file = ev.target.elements.file.files[0];
  if (!file || !WL.current) return;
  const mode = ev.target.elements.mode.value;
  const r = await wlApi("POST", "/api/v1/watchlists/" + encodeURIComponent(WL.current) + "/import?job=1&mode=" + mode,
    await file.arrayBuffer(), true);
  if (!r.ok) { wlMsg((r.data && r.data.error) || String(r.status), true); return; }
  WL.job = r.data.job; wlDrawJob(r.data); wlPollJob(r.data.job);
}

async function wlPollJob(job) {
  const r = await wlApi("GET", "/api/v1/watchlists/imports/" + encodeURIComponent(job));
  if (!r.ok || WL.job !== job) return;
  wlDrawJob(r.data);
  if (r.data.state === "running" || r.data.state === "applying") setTimeout(() => wlPollJob(job), 500);
  else if (r.data.state === "done") await wlLoad();
}

function wlDrawJob(s) {
  const bar = document.getElementById("wl-progress");
  bar.max = Math.max(s.rows_total, s.rows_done, 1); bar.value = s.state === "done" ? bar.max : s.rows_done;
  const st = document.getElementById("wl-job");
  st.dataset.state = s.state;
  st.textContent = t("wl.import." + s.state) + " · " + s.rows_done + " / " + s.rows_total +
    (s.result ? " · " + s.result.entries + " " + t("wl.count") : "");
  document.getElementById("wl-problems").replaceChildren(...s.problems.slice(0, 200).map((p) =>
    el("li", null, t("wl.line").replace("{n}", p.line) + ": " + p.reason)));
}

async function wlFeed() {
  const r = await wlApi("GET", "/api/v1/feed");
  if (!r.ok) return;
  document.getElementById("wl-hub-version").textContent = t("wl.hub_version") + ": " + r.data.version;
  document.getElementById("wl-edges").replaceChildren(...r.data.edges.map((e) => {
    const lag = e.feed_version === null || e.feed_version === undefined || e.feed_version < r.data.version;
    const li = el("li", "wl-edge" + (lag ? " lagging" : "")); li.dataset.checkpoint = e.checkpoint;
    li.append(el("strong", null, e.checkpoint), el("span", "wl-edge-version", "v" + (e.feed_version ?? "—")),
      el("span", lag ? "badge bad" : "badge ok", t(lag ? "wl.lagging" : "wl.current")));
    return li;
  }));
}

async function wlUpstream() {
  const r = await wlApi("GET", "/api/v1/upstream");
  const sources = r.ok ? r.data.sources : [];
  document.getElementById("wl-upstream-none").hidden = sources.length > 0;
  document.getElementById("wl-upstream").replaceChildren(...sources.map(({ settings: s, state: st }) => {
    const li = el("li", "wl-source");
    li.append(el("strong", null, s.name), el("span", null, "→ " + s.list_id),
      el("span", null, t("wl.last_poll") + ": " + fmtWhen(st.last_poll_at)),
      el("span", "muted", (st.fingerprint || "").slice(0, 12) + " · " + st.last_entries + " " + t("wl.count")));
    if (st.last_error) li.append(el("span", "badge bad", t("wl.error") + ": " + st.last_error));
    return li;
  }));
}

function wlShow(which) {
  document.querySelector("main.console").hidden = which === "lists";
  document.getElementById("lists-view").hidden = which !== "lists";
  document.getElementById("tab-live").classList.toggle("selected", which !== "lists");
  document.getElementById("tab-lists").classList.toggle("selected", which === "lists");
  if (which === "lists") wlLoad();
}

document.getElementById("tab-live").addEventListener("click", () => wlShow("live"));
document.getElementById("tab-lists").addEventListener("click", () => wlShow("lists"));
document.getElementById("wl-new").addEventListener("click", () => {
  const box = document.getElementById("wl-create"); box.replaceChildren(wlListForm(null));
});
document.getElementById("wl-add").addEventListener("submit", wlAddEntry);
document.getElementById("wl-import").addEventListener("submit", wlImport);
document.getElementById("wl-search").addEventListener("submit", (ev) => {
  ev.preventDefault(); WL.q = document.getElementById("wl-q").value.trim(); WL.offset = 0; wlEntries();
});
document.getElementById("wl-prev").addEventListener("click", () => { WL.offset = Math.max(0, WL.offset - PAGE); wlEntries(); });
document.getElementById("wl-next").addEventListener("click", () => { WL.offset += PAGE; wlEntries(); });
document.getElementById("lang").addEventListener("click", () => {
  if (!document.getElementById("lists-view").hidden) { wlDrawLists(); wlEntries(); wlFeed(); wlUpstream(); }
});
applyI18n(document.getElementById("lists-view"));
applyI18n(document.querySelector("nav.tabs"));
