// The console's quick-test results panel: drug quick tests from the checkpoints' tablets, newest first,
// filtered by checkpoint and result. Refreshed while open. Everything rendered as text (el()).
import { applyI18n, CORDON_I18N, el, fmtDateTime, t } from "/common/i18n.js";
import { checkpointName, drugName } from "./console-names.js";

Object.assign(CORDON_I18N.zh, {
  "kits.panel": "快检结果", "kits.title": "毒品快速检测结果", "kits.close": "关闭", "kits.all": "全部",
  "kits.positive": "阳性", "kits.negative": "阴性", "kits.invalid": "无效", "kits.checkpoint": "查缉点",
  "kits.time": "取样时间", "kits.subject": "身份证尾号", "kits.kit": "试剂盒", "kits.panels": "逐项（民警/机器）",
  "kits.officers": "民警", "kits.flags": "标记", "kits.expired": "试剂过期", "kits.window": "超出判读时间",
  "kits.person": "比中人员布控", "kits.lab": "送检", "kits.none": "暂无快检结果", "kits.failed": "无法读取快检结果",
});
Object.assign(CORDON_I18N.en, {
  "kits.panel": "Quick tests", "kits.title": "Drug quick-test results", "kits.close": "Close", "kits.all": "All",
  "kits.positive": "positive", "kits.negative": "negative", "kits.invalid": "invalid", "kits.checkpoint": "Checkpoint",
  "kits.time": "Sampled", "kits.subject": "ID (last 4)", "kits.kit": "Kit", "kits.panels": "Panels (officer/machine)",
  "kits.officers": "Officers", "kits.flags": "Flags", "kits.expired": "kit expired", "kits.window": "read outside window",
  "kits.person": "person watchlist hit", "kits.lab": "to lab", "kits.none": "No quick-test results yet", "kits.failed": "Quick-test results not available",
});

const kitPanel = { timer: null };

function kitI18n(tag, key, cls) {
  const node = el(tag, cls || null, t(key));
  node.dataset.i18n = key;
  return node;
}

function buildKitPanel() {
  const section = el("section", "kits-panel");
  section.id = "kits"; section.hidden = true;
  const head = el("div", "kits-head");
  const result = el("select"); result.id = "kits-result";
  ["", "positive", "negative", "invalid"].forEach((r) => {
    const o = kitI18n("option", r ? "kits." + r : "kits.all"); o.value = r; result.append(o);
  });
  const checkpoint = el("input"); checkpoint.id = "kits-checkpoint"; checkpoint.maxLength = 64;
  checkpoint.dataset.i18nPlaceholder = "kits.checkpoint"; checkpoint.placeholder = t("kits.checkpoint");
  const close = kitI18n("button", "kits.close"); close.id = "kits-close"; close.type = "button";
  head.append(kitI18n("h2", "kits.title"), checkpoint, result, close);
  const table = el("table", "kits-table");
  const tr = el("tr");
  ["kits.time", "kits.checkpoint", "kits.subject", "kits.kit", "kits.panels", "kits.officers", "kits.flags"]
    .forEach((k) => tr.append(kitI18n("th", k)));
  const thead = el("thead"); thead.append(tr);
  const body = el("tbody"); body.id = "kits-rows";
  table.append(thead, body);
  const note = el("p", "muted"); note.id = "kits-note";
  section.append(head, table, note);
  document.querySelector("main").after(section);
  result.addEventListener("change", loadKitResults);
  checkpoint.addEventListener("change", loadKitResults);
  close.addEventListener("click", () => showKits(false));
}

function kitRow(r) {
  const tr = el("tr", "kit-row " + r.result);
  tr.dataset.resultId = r.result_id;
  const place = el("td");
  const name = el("span", null, checkpointName(r.checkpoint)); name.dataset.name = "checkpoint";
  place.append(name, el("span", "muted", " · " + r.checkpoint));
  tr.append(el("td", null, fmtDateTime(r.sampled_at)), place,
    el("td", null, "…" + r.subject.id_last4 + (r.subject.name ? " " + r.subject.name : "")),
    el("td", null, r.kit_model + " · " + r.lot));
  const panels = el("td");
  r.panels.forEach((p) => {
    const machine = p.machine ? "/" + (p.machine.call === "uncertain" ? "?" : t("kits." + p.machine.call)) : "";
    panels.append(el("span", "panel " + p.officer_call, drugName(p.drug) + " " + t("kits." + p.officer_call) + machine));
  });
  const flags = el("td");
  flags.append(el("span", "badge " + (r.result === "negative" ? "ok" : "bad"), t("kits." + r.result)));
  if (r.kit_expired) flags.append(el("span", "badge warn", t("kits.expired")));
  if (r.outside_read_window) flags.append(el("span", "badge warn", t("kits.window")));
  if (r.person_hits.length) flags.append(el("span", "badge bad", t("kits.person")));
  if (r.needs_lab) flags.append(el("span", "badge", t("kits.lab") + " A " + r.sample_a + " / B " + r.sample_b));
  tr.append(panels, el("td", null, r.officers.join(" · ")), flags);
  return tr;
}

async function loadKitResults() {
  const params = new URLSearchParams({ limit: "200" });
  const result = document.getElementById("kits-result").value;
  const checkpoint = document.getElementById("kits-checkpoint").value.trim();
  if (result) params.set("result", result);
  if (checkpoint) params.set("checkpoint", checkpoint);
  const note = document.getElementById("kits-note");
  const resp = await fetch("/api/v1/kit-results?" + params);
  if (!resp.ok) { note.dataset.i18n = "kits.failed"; note.textContent = t("kits.failed") + " (" + resp.status + ")"; return; }
  const rows = (await resp.json()).kit_results;
  document.getElementById("kits-rows").replaceChildren(...rows.map(kitRow));
  note.textContent = rows.length ? "" : t("kits.none");
}

function showKits(open) {
  document.getElementById("kits").hidden = !open;
  document.querySelector("main").hidden = open;
  clearInterval(kitPanel.timer);
  if (open) { loadKitResults(); kitPanel.timer = setInterval(loadKitResults, 10000); }
}

(function hookKits() {
  const button = kitI18n("button", "kits.panel"); button.id = "kits-open"; button.type = "button";
  button.dataset.capability = "kits"; button.hidden = true;  // shown by console-me.js to roles that may read them
  document.getElementById("theme").before(button);
  button.addEventListener("click", () => showKits(document.getElementById("kits").hidden));
  buildKitPanel();
  document.addEventListener("cordon-lang", () => { if (!document.getElementById("kits").hidden) loadKitResults(); });
  applyI18n(document.getElementById("kits"));
})();
