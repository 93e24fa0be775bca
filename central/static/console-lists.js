// Watchlist management in the console: lists, their entries (paged on the server), CSV import with
// progress, upstream sources and which edge holds which feed version. Everything received is set as text.
// The list form offers every list setting (the five real match kinds in words, look-alike swaps, source,
// owner ...) and saves the list whole, so an edit never resets a setting it does not show. Whether the role
// may write comes from GET /api/v1/me (console-me.js), never from probing a route.
import { applyI18n, CORDON_I18N, el, fmtDate, fmtDateTime, t, tf, zoneMidnight } from "/common/i18n.js";
import { applyCapabilities, can, me } from "./console-me.js";

Object.assign(CORDON_I18N.zh, {
  "tab.live": "态势", "tab.lists": "布控名单", "wl.lists": "布控名单", "wl.new": "新建名单", "wl.save": "保存",
  "wl.cancel": "取消", "wl.id": "名单编号", "wl.name": "名称", "wl.kind": "类型", "wl.action": "处置方式",
  "wl.priority": "优先级", "wl.restricted": "限制查看（仅值班长、研判员、管理员可见，不下发查缉点）",
  "wl.restricted.short": "限制查看", "wl.alert_kinds": "报警比对方式", "wl.max_swaps": "形近字最多几处",
  "wl.source": "来源", "wl.owner": "负责人", "wl.valid_from": "生效日期", "wl.valid_until": "失效日期",
  "wl.validity": "有效期", "wl.entries": "布控对象", "wl.count": "{n} 条", "wl.count.one": "{n} 条",
  "wl.readonly": "只读：您的角色不能修改布控名单", "wl.search": "按号牌检索", "wl.prev": "上一页",
  "wl.next": "下一页", "wl.plate": "号牌", "wl.reason": "布控事由", "wl.case_ref": "案件编号", "wl.add": "添加布控对象",
  "wl.expire": "撤控", "wl.delete": "删除", "wl.edit": "修改", "wl.expired": "已失效", "wl.import": "导入 CSV",
  "wl.import.go": "开始导入", "wl.import.running": "正在导入", "wl.import.applying": "正在生效", "wl.import.done": "导入完成",
  "wl.import.rejected": "导入被拒绝，未做任何修改", "wl.import.failed": "导入失败", "wl.line": "第 {n} 行",
  "wl.job": "{state} · {done} / {total}", "wl.file.pick": "选择 CSV 文件", "wl.file.none": "未选择文件",
  "wl.file.missing": "请先选择 CSV 文件",
  "wl.mode.merge": "合并：只新增和更新", "wl.mode.replace": "替换：名单与文件一致",
  "wl.upstream": "上级名单来源", "wl.upstream.none": "未配置上级来源", "wl.last_poll": "最近拉取",
  "wl.error": "错误", "wl.edges": "各查缉点名单版本", "wl.hub_version": "中心当前版本 v{v}", "wl.lagging": "落后",
  "wl.current": "已同步", "wl.none": "暂无名单", "wl.pick": "选择一个名单查看布控对象", "wl.saved": "已保存",
  "wl.yes": "是", "wl.no": "否", "wl.always": "长期", "wl.none.value": "—",
  "wl.kind.vehicle": "车辆", "wl.kind.person": "人员", "wl.kind.permit": "许可名单（白名单）",
  "wl.kinds.none": "至少选择一种比对方式", "wl.id.bad": "名单编号不能为空，不能含空格或 /",
  "wl.name.bad": "请填写名称", "wl.priority.bad": "优先级为 0 到 100 的整数", "wl.max_swaps.bad": "形近字为 0 到 16 的整数",
  "wl.dates.bad": "失效日期须晚于生效日期", "wl.date.hint": "如 2026-12-31", "wl.date.bad": "日期写作 年-月-日，如 2026-12-31",
  "err.400": "填写有误，未保存", "err.403": "无权限", "err.404": "对象不存在", "err.409": "与现有数据冲突，未保存",
  "err.413": "文件过大", "err.422": "文件有误，未做任何修改", "err.other": "操作失败（{status}）", "err.network": "无法连接中心",
  "wl.p.empty_plate": "号牌为空", "wl.p.no_plate": "没有号牌", "wl.p.plate_long": "号牌超过 {n} 个字符",
  "wl.p.pattern_all": "模式 {p} 没有确定的字符，会匹配所有号牌", "wl.p.colour": "未知的号牌颜色 {c}",
  "wl.p.range": "{what} 超出范围", "wl.p.time": "{what} 不是带时区的 ISO 8601 时间或 Unix 秒",
  "wl.p.time_tz": "{what} 缺少时区（加 Z 或 +08:00）", "wl.p.order": "生效时间晚于失效时间",
  "wl.p.empty_file": "文件为空：需要表头行", "wl.p.no_plate_col": "表头缺少 plate 列",
  "wl.p.columns": "未知的列 {cols}", "wl.p.twice": "重复的列 {cols}", "wl.p.csv": "CSV 格式错误",
  "wl.p.long": "{what} 过长",
});
Object.assign(CORDON_I18N.en, {
  "tab.live": "Situation", "tab.lists": "Watchlists", "wl.lists": "Watchlists", "wl.new": "New list", "wl.save": "Save",
  "wl.cancel": "Cancel", "wl.id": "List id", "wl.name": "Name", "wl.kind": "Kind", "wl.action": "Action",
  "wl.priority": "Priority", "wl.restricted": "Restricted (commanders, analysts and admins only; never sent to checkpoints)",
  "wl.restricted.short": "Restricted", "wl.alert_kinds": "Alert on", "wl.max_swaps": "Look-alike characters at most",
  "wl.source": "Source", "wl.owner": "Owner", "wl.valid_from": "Valid from", "wl.valid_until": "Valid until",
  "wl.validity": "Validity", "wl.entries": "Entries", "wl.count": "{n} entries", "wl.count.one": "{n} entry",
  "wl.readonly": "Read-only: your role cannot change watchlists", "wl.search": "Search by plate", "wl.prev": "Previous",
  "wl.next": "Next", "wl.plate": "Plate", "wl.reason": "Reason", "wl.case_ref": "Case ref", "wl.add": "Add entry",
  "wl.expire": "Expire", "wl.delete": "Delete", "wl.edit": "Edit", "wl.expired": "expired", "wl.import": "Import CSV",
  "wl.import.go": "Import", "wl.import.running": "Importing", "wl.import.applying": "Applying", "wl.import.done": "Import done",
  "wl.import.rejected": "Import rejected, nothing changed", "wl.import.failed": "Import failed", "wl.line": "line {n}",
  "wl.job": "{state} · {done} / {total}", "wl.file.pick": "Choose a CSV file", "wl.file.none": "No file chosen",
  "wl.file.missing": "Choose a CSV file first",
  "wl.mode.merge": "Merge: add and update only", "wl.mode.replace": "Replace: the list becomes the file",
  "wl.upstream": "Upstream sources", "wl.upstream.none": "No upstream sources configured", "wl.last_poll": "Last pull",
  "wl.error": "Error", "wl.edges": "Feed version per checkpoint", "wl.hub_version": "Hub version v{v}", "wl.lagging": "lagging",
  "wl.current": "current", "wl.none": "No lists yet", "wl.pick": "Pick a list to see its entries", "wl.saved": "Saved",
  "wl.yes": "yes", "wl.no": "no", "wl.always": "always", "wl.none.value": "—",
  "wl.kind.vehicle": "Vehicle", "wl.kind.person": "Person", "wl.kind.permit": "Permit list (allow-list)",
  "wl.kinds.none": "Choose at least one match kind", "wl.id.bad": "The list id must not be empty, nor hold spaces or /",
  "wl.name.bad": "Give the list a name", "wl.priority.bad": "Priority is a whole number from 0 to 100",
  "wl.max_swaps.bad": "Look-alike characters: a whole number from 0 to 16", "wl.dates.bad": "Valid until must be after valid from",
  "wl.date.hint": "e.g. 2026-12-31", "wl.date.bad": "Write dates as year-month-day, e.g. 2026-12-31",
  "err.400": "Not valid, not saved", "err.403": "Not allowed", "err.404": "Not found", "err.409": "Conflicts with what is there, not saved",
  "err.413": "File too large", "err.422": "The file has errors, nothing changed", "err.other": "Failed ({status})",
  "err.network": "Cannot reach the hub",
  "wl.p.empty_plate": "empty plate", "wl.p.no_plate": "no plate", "wl.p.plate_long": "plate longer than {n} characters",
  "wl.p.pattern_all": "pattern {p} has no fixed character: it would match every plate", "wl.p.colour": "unknown plate colour {c}",
  "wl.p.range": "{what} out of range", "wl.p.time": "{what} is neither ISO 8601 with an offset nor unix seconds",
  "wl.p.time_tz": "{what} has no UTC offset (add Z or +08:00)", "wl.p.order": "valid_from is after valid_until",
  "wl.p.empty_file": "the file is empty: a header row is required", "wl.p.no_plate_col": "the header has no plate column",
  "wl.p.columns": "unknown column(s) {cols}", "wl.p.twice": "column(s) given twice: {cols}", "wl.p.csv": "CSV syntax error",
  "wl.p.long": "{what} is too long",
});

const KINDS = ["exact", "equivalent", "edit", "province", "wildcard"];  // protocols/matching.py MatchKind
const DEFAULT_KINDS = ["exact", "equivalent", "wildcard"];             // DEFAULT_ALERT_KINDS
const WL = { lists: [], canWrite: false, current: null, q: "", offset: 0, total: 0, job: null, editing: null };
const PAGE = 50;

async function wlApi(method, path, body, raw) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.body = raw ? body : JSON.stringify(body);
    opts.headers["Content-Type"] = raw ? "text/csv" : "application/json";
  }
  let resp;
  try { resp = await fetch(path, opts); } catch { return { status: 0, ok: false, data: null }; }
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  return { status: resp.status, ok: resp.ok, data };
}
// What went wrong, in the page's language; the hub's own words only as the message's title.
function failure(r) {
  if (r.status === 0) return { text: t("err.network"), detail: "" };
  const key = "err." + r.status;
  const text = Object.prototype.hasOwnProperty.call(CORDON_I18N.zh, key) ? t(key) : tf("err.other", { status: r.status });
  return { text, detail: (r.data && r.data.error) || "" };
}
function wlMsg(text, bad, detail) {
  const m = document.getElementById("wl-msg");
  m.textContent = text; m.className = bad ? "badge bad" : "badge ok"; m.hidden = !text;
  m.title = detail || "";
}
function fmtWhen(ts) { return ts ? fmtDateTime(ts) : t("wl.none.value"); }
function wlField(labelKey, input, wide) {
  const label = el("label", "wl-field" + (wide ? " wide" : ""));
  label.append(el("span", null, t(labelKey)), input);
  return label;
}
function wlInput(name, type, value) {
  const i = document.createElement("input"); i.name = name; i.type = type || "text";
  if (type === "checkbox") i.checked = !!value; else if (value !== undefined && value !== null) i.value = String(value);
  return i;
}
function wlSelectEl(name, options, value) {
  const s = document.createElement("select"); s.name = name;
  for (const [v, key] of options) { const op = el("option", null, t(key)); op.value = v; s.append(op); }
  s.value = value; return s;
}
function idSpan(id) { const s = el("span", "muted wl-id", id); s.dataset.id = ""; return s; }
function wlButton(key, onClick, cls) {
  const b = el("button", cls || null, t(key)); b.type = "button"; b.addEventListener("click", onClick); return b;
}

async function wlLoad() {
  await me;
  WL.canWrite = can("watchlists.write");
  const r = await wlApi("GET", "/api/v1/watchlists");
  WL.lists = r.ok ? r.data.watchlists : [];
  if (!r.ok) { const f = failure(r); wlMsg(f.text, true, f.detail); }
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
    const name = el("strong", "wl-name", w.name);
    name.dataset.name = "list";
    li.append(name);
    if (w.list_id !== w.name) li.append(idSpan(w.list_id));  // the id only when it says more
    li.append(el("span", "act act-" + w.action, t("action." + w.action)), el("span", null, t("wl.priority") + " " + w.priority),
      el("span", "wl-count", tf("wl.count", { n: entries })));
    if (w.restricted) li.append(el("span", "badge warn", t("wl.restricted.short")));
    li.addEventListener("click", () => wlSelect(w.list_id));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") wlSelect(w.list_id); });
    return li;
  }));
  document.getElementById("wl-none").hidden = WL.lists.length > 0;
}

// The list form: every setting of a list; saving sends the list whole (what the form does not show is
// kept from the list as it was).
function wlListForm(w) {
  const f = document.createElement("form"); f.className = "wl-form"; f.noValidate = true;
  const kinds = new Set(w ? w.alert_kinds : DEFAULT_KINDS);
  const ak = el("span", "wl-kinds");
  for (const k of KINDS) {
    const c = wlInput("ak-" + k, "checkbox", kinds.has(k)); c.value = k;
    const l = el("label"); l.append(c, el("span", null, t("kind." + k))); ak.append(l);
  }
  // Dates as text (YYYY-MM-DD, in the hub's time zone): a date input shows the browser's own language.
  const dateInput = (name, ts) => {
    const i = wlInput(name, "text", ts ? fmtDate(ts) : ""); i.className = "wl-date"; i.placeholder = t("wl.date.hint");
    i.pattern = "\\d{4}-\\d{2}-\\d{2}"; i.inputMode = "numeric"; return i;
  };
  const from = dateInput("valid_from", w && w.valid_from);
  const until = dateInput("valid_until", w && w.valid_until);
  const priority = wlInput("priority", "number", w ? w.priority : 50); priority.min = "0"; priority.max = "100";
  const swaps = wlInput("max_swaps", "number", w ? w.max_swaps : 2); swaps.min = "0"; swaps.max = "16";
  const restricted = el("label", "wl-check");
  restricted.append(wlInput("restricted", "checkbox", w ? w.restricted : false), el("span", null, t("wl.restricted")));
  f.append(
    wlField("wl.id", wlInput("list_id", "text", w ? w.list_id : "")),
    wlField("wl.name", wlInput("name", "text", w ? w.name : "")),
    wlField("wl.kind", wlSelectEl("kind", [["vehicle", "wl.kind.vehicle"], ["person", "wl.kind.person"], ["permit", "wl.kind.permit"]], w ? w.kind : "vehicle")),
    wlField("wl.action", wlSelectEl("action", [["intercept", "action.intercept"], ["covert", "action.covert"], ["notify", "action.notify"]], w ? w.action : "intercept")),
    wlField("wl.priority", priority), wlField("wl.max_swaps", swaps),
    wlField("wl.alert_kinds", ak, true),
    wlField("wl.valid_from", from), wlField("wl.valid_until", until),
    wlField("wl.source", wlInput("source", "text", w ? w.source : "")),
    wlField("wl.owner", wlInput("owner", "text", w ? w.owner : "")),
    restricted);
  if (w) f.elements.list_id.readOnly = true;
  const save = el("button", "primary", t("wl.save")); save.type = "submit";
  const actions = el("div", "wl-actions"); actions.append(save);
  if (!w) actions.append(wlButton("wl.cancel", () => f.remove()));
  f.append(actions);
  // A date left as it was keeps its exact time (a list saved through the API may end at any hour).
  const dateOf = (input, was) => {
    const v = input.value.trim();
    if (v === (was ? fmtDate(was) : "")) return was || null;
    return v ? zoneMidnight(v) : null;
  };
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const e = f.elements;
    const body = { ...(w || {}), list_id: e.list_id.value.trim(), name: e.name.value.trim(), kind: e.kind.value,
      action: e.action.value, priority: Number(e.priority.value), max_swaps: Number(e.max_swaps.value),
      restricted: e.restricted.checked, alert_kinds: KINDS.filter((k) => e["ak-" + k].checked),
      valid_from: dateOf(e.valid_from, w && w.valid_from), valid_until: dateOf(e.valid_until, w && w.valid_until),
      source: e.source.value.trim(), owner: e.owner.value.trim() };
    const badDate = [e.valid_from.value, e.valid_until.value].some((v) => v && !/^\d{4}-\d{2}-\d{2}$/.test(v.trim()));
    const bad = badDate ? "wl.date.bad" : !body.list_id || /[\s/]/.test(body.list_id) ? "wl.id.bad" : !body.name ? "wl.name.bad"
      : !Number.isInteger(body.priority) || body.priority < 0 || body.priority > 100 ? "wl.priority.bad"
      : !Number.isInteger(body.max_swaps) || body.max_swaps < 0 || body.max_swaps > 16 ? "wl.max_swaps.bad"
      : !body.alert_kinds.length ? "wl.kinds.none"
      : body.valid_from !== null && body.valid_until !== null && body.valid_from >= body.valid_until ? "wl.dates.bad" : null;
    if (bad) { wlMsg(t(bad), true); return; }
    const r = await wlApi("POST", "/api/v1/watchlists", body);
    if (!r.ok) { const fl = failure(r); wlMsg(fl.text, true, fl.detail); return; }
    wlMsg(t("wl.saved"), false);
    WL.current = body.list_id;
    if (!w) f.remove();
    await wlLoad();
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
  const title = document.getElementById("wl-title");
  const name = el("span", "wl-name", w.name); name.dataset.name = "list";
  title.replaceChildren(name);
  if (w.list_id !== w.name) title.append(idSpan(w.list_id));
  const kinds = KINDS.filter((k) => w.alert_kinds.includes(k)).map((k) => t("kind." + k)).join(" · ");
  document.getElementById("wl-facts").replaceChildren(
    ...[["wl.kind", t("wl.kind." + w.kind)], ["wl.action", t("action." + w.action)], ["wl.priority", String(w.priority)],
      ["wl.alert_kinds", kinds], ["wl.max_swaps", String(w.max_swaps)],
      ["wl.restricted.short", t(w.restricted ? "wl.yes" : "wl.no")],
      ["wl.validity", !w.valid_from && !w.valid_until ? t("wl.always")
        : (w.valid_from ? fmtWhen(w.valid_from) : t("wl.always")) + " – " + (w.valid_until ? fmtWhen(w.valid_until) : t("wl.always"))],
      ["wl.source", w.source || t("wl.none.value")], ["wl.owner", w.owner || t("wl.none.value")]]
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
    const act = el("td", "wl-entry-actions");
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
  if (r.ok) wlMsg(t("wl.saved"), false); else { const f = failure(r); wlMsg(f.text, true, f.detail); }
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
  if (r.ok) wlMsg(t("wl.saved"), false); else { const fl = failure(r); wlMsg(fl.text, true, fl.detail); }
  if (r.ok) { f.reset(); await wlLoad(); }
}

async function wlImport(ev) {
  ev.preventDefault();
  const file = ev.target.elements.file.files[0];
  if (!file) { wlMsg(t("wl.file.missing"), true); return; }
  if (!WL.current) return;
  const mode = ev.target.elements.mode.value;
  const r = await wlApi("POST", "/api/v1/watchlists/" + encodeURIComponent(WL.current) + "/import?job=1&mode=" + mode,
    await file.arrayBuffer(), true);
  if (!r.ok) { const f = failure(r); wlMsg(f.text, true, f.detail); return; }
  WL.job = r.data.job; wlDrawJob(r.data); wlPollJob(r.data.job);
}

async function wlPollJob(job) {
  const r = await wlApi("GET", "/api/v1/watchlists/imports/" + encodeURIComponent(job));
  if (!r.ok || WL.job !== job) return;
  wlDrawJob(r.data);
  if (r.data.state === "running" || r.data.state === "applying") setTimeout(() => wlPollJob(job), 500);
  else if (r.data.state === "done") await wlLoad();
}

// An import problem in the page's language (the importer's own words as the title).
const PROBLEMS = [
  [/^empty plate$/, () => t("wl.p.empty_plate")],
  [/^no plate( in .*)?$/, () => t("wl.p.no_plate")],
  [/^plate is longer than (\d+) characters$/, (m) => tf("wl.p.plate_long", { n: m[1] })],
  [/^pattern (.+) has no literal character/, (m) => tf("wl.p.pattern_all", { p: m[1] })],
  [/^unknown plate colour (.+)$/, (m) => tf("wl.p.colour", { c: m[1] })],
  [/^(\w+) .* is out of range/, (m) => tf("wl.p.range", { what: m[1] })],
  [/^(\w+) .* has no UTC offset/, (m) => tf("wl.p.time_tz", { what: m[1] })],
  [/^(\w+) .* is neither ISO 8601/, (m) => tf("wl.p.time", { what: m[1] })],
  [/^valid_from is after valid_until$/, () => t("wl.p.order")],
  [/^the file is empty/, () => t("wl.p.empty_file")],
  [/^the header has no plate column$/, () => t("wl.p.no_plate_col")],
  [/^unknown column\(s\) (.*?);/, (m) => tf("wl.p.columns", { cols: m[1] })],
  [/^column\(s\) given twice: (.*)$/, (m) => tf("wl.p.twice", { cols: m[1] })],
  [/^CSV syntax error/, () => t("wl.p.csv")],
  [/^(\w+) is longer than \d+ characters$/, (m) => tf("wl.p.long", { what: m[1] })],
];
function problemText(reason) {
  for (const [form, say] of PROBLEMS) { const m = form.exec(reason); if (m) return say(m); }
  return reason;
}

function wlDrawJob(s) {
  const bar = document.getElementById("wl-progress");
  bar.max = Math.max(s.rows_total, s.rows_done, 1); bar.value = s.state === "done" ? bar.max : s.rows_done;
  const st = document.getElementById("wl-job");
  st.dataset.state = s.state;
  st.textContent = tf("wl.job", { state: t("wl.import." + s.state), done: s.rows_done, total: s.rows_total }) +
    (s.result ? " · " + tf("wl.count", { n: s.result.entries }) : "");
  document.getElementById("wl-problems").replaceChildren(...s.problems.slice(0, 200).map((p) => {
    const li = el("li", null, tf("wl.line", { n: p.line }) + ": " + problemText(p.reason));
    li.title = p.reason;
    return li;
  }));
}

async function wlFeed() {
  const r = await wlApi("GET", "/api/v1/feed");
  if (!r.ok) return;
  document.getElementById("wl-hub-version").textContent = tf("wl.hub_version", { v: r.data.version });
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
      el("span", "muted", (st.fingerprint || "").slice(0, 12) + " · " + tf("wl.count", { n: st.last_entries })));
    if (st.last_error) { const b = el("span", "badge bad", t("wl.error")); b.title = st.last_error; li.append(b); }
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
document.querySelector("#wl-import input[name=file]").addEventListener("change", (ev) => {
  const file = ev.target.files[0];
  const shown = document.getElementById("wl-file");
  if (file) { shown.textContent = file.name; delete shown.dataset.i18n; } else { shown.dataset.i18n = "wl.file.none"; shown.textContent = t("wl.file.none"); }
});
document.getElementById("wl-search").addEventListener("submit", (ev) => {
  ev.preventDefault(); WL.q = document.getElementById("wl-q").value.trim(); WL.offset = 0; wlEntries();
});
document.getElementById("wl-prev").addEventListener("click", () => { WL.offset = Math.max(0, WL.offset - PAGE); wlEntries(); });
document.getElementById("wl-next").addEventListener("click", () => { WL.offset += PAGE; wlEntries(); });
document.addEventListener("cordon-lang", () => {
  if (!document.getElementById("lists-view").hidden) {
    const form = document.querySelector("#wl-create form");
    if (form) form.remove();  // a half-filled new list form is drawn again empty in the new language
    wlDrawLists(); wlEntries(); wlFeed(); wlUpstream();
  }
});
applyI18n(document.getElementById("lists-view"));
me.then(() => applyCapabilities(document.getElementById("lists-view"))).catch(() => {});
