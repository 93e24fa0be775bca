// The tablet's drug quick-test view: type the ID number, choose the kit, photograph the cassette on the
// reading card, see the machine's reading per panel, confirm or correct each one, name the second officer,
// seal the samples of a positive, save. Everything is served and saved by the edge: works with the uplink down.
// Nothing received is parsed as HTML (el() sets textContent only).
import { drugName } from "/common/drugs.js";
import { applyI18n, CORDON_I18N, el, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "kind.kit": "毒品快检", "kind.person": "人员布控比中",
  "kits.open": "毒品快检", "kits.title": "毒品快速检测", "kits.close": "关闭", "kits.id": "身份证号",
  "kits.name": "姓名（可选）", "kits.kit": "试剂盒", "kits.lot": "批号", "kits.expiry": "有效期",
  "kits.sample": "样本", "kits.sample.saliva": "唾液", "kits.sample.urine": "尿液", "kits.minutes": "取样至今（分钟）",
  "kits.photo": "拍摄检测板", "kits.reading": "正在判读照片…", "kits.read.failed": "照片无法判读",
  "kits.panels": "逐项结果（请确认或更正）", "kits.machine": "机器判读", "kits.uncertain": "不确定，请确认",
  "kits.positive": "阳性", "kits.negative": "阴性", "kits.invalid": "无效", "kits.unconfirmed": "尚有项目未确认",
  "kits.officer2": "第二名民警（姓名/警号）", "kits.lab": "阳性送检", "kits.sealA": "A 样封签号", "kits.sealB": "B 样封签号",
  "kits.save": "保存结果", "kits.saved": "已保存", "kits.save.failed": "未保存", "kits.expired": "试剂已过期",
  "kits.window": "超出判读时间窗", "kits.alert": "快检阳性/无效", "kits.person": "比中人员布控", "kits.new": "新的检测",
  "kits.items": "{n} 项", "kits.photo.choose": "拍照或选择照片", "kits.photo.none": "未选择照片",
});
Object.assign(CORDON_I18N.en, {
  "kind.kit": "drug quick test", "kind.person": "person watchlist",
  "kits.open": "Drug test", "kits.title": "Drug quick test", "kits.close": "Close", "kits.id": "ID-card number",
  "kits.name": "Name (optional)", "kits.kit": "Kit", "kits.lot": "Lot", "kits.expiry": "Expiry",
  "kits.sample": "Sample", "kits.sample.saliva": "saliva", "kits.sample.urine": "urine", "kits.minutes": "Minutes since sampling",
  "kits.photo": "Photograph the cassette", "kits.reading": "Reading the photo…", "kits.read.failed": "Photo not read",
  "kits.panels": "Per panel (confirm or correct)", "kits.machine": "machine", "kits.uncertain": "uncertain, confirm",
  "kits.positive": "positive", "kits.negative": "negative", "kits.invalid": "invalid", "kits.unconfirmed": "Some panels are not confirmed",
  "kits.officer2": "Second officer (name/badge)", "kits.lab": "Positive sent to the lab", "kits.sealA": "Seal A number", "kits.sealB": "Seal B number",
  "kits.save": "Save result", "kits.saved": "Saved", "kits.save.failed": "Not saved", "kits.expired": "kit expired",
  "kits.window": "read outside the window", "kits.alert": "Quick test positive/invalid", "kits.person": "person watchlist hit", "kits.new": "New test",
  "kits.items": "{n}-panel", "kits.photo.choose": "Take or choose a photo", "kits.photo.none": "No photo chosen",
});

const kits = { catalogue: [], panels: [], photo: null, source: "manual", status: null, saved: null };
const CALLS = ["positive", "negative", "invalid"];

function field(labelKey, input) {
  const label = el("label", "kit-field");
  const span = el("span", null, t(labelKey));
  span.dataset.i18n = labelKey;
  label.append(span, input);
  return label;
}
// The cassette photo: the browser's own file button speaks the browser's language ("Choose File"), so it is
// hidden behind a button of ours that says what the file is in the page's language.
function photoField(photo) {
  const label = field("kits.photo", photo);
  photo.classList.add("photo-input");
  const button = el("span", "button photo-button", t("kits.photo.choose"));
  button.dataset.i18n = "kits.photo.choose";
  const chosen = el("span", "muted photo-chosen", t("kits.photo.none"));
  chosen.id = "kit-photo-chosen";
  chosen.dataset.i18n = "kits.photo.none";
  photo.addEventListener("change", () => {
    const file = photo.files[0];
    if (file) { delete chosen.dataset.i18n; chosen.textContent = file.name; }
    else { chosen.dataset.i18n = "kits.photo.none"; chosen.textContent = t("kits.photo.none"); }
  });
  const row = el("span", "photo-row");
  row.append(button, chosen);
  label.append(row);
  return label;
}
function input(id, attrs) {
  const node = el("input");
  node.id = id;
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  return node;
}
function i18nButton(id, key, cls) {
  const b = el("button", cls || null, t(key));
  b.id = id; b.type = "button"; b.dataset.i18n = key;
  return b;
}

function buildView() {
  const view = el("section", "kits-view");
  view.id = "kits"; view.hidden = true;
  const head = el("div", "kits-head");
  const h = el("h2", null, t("kits.title")); h.dataset.i18n = "kits.title";
  head.append(h, i18nButton("kit-new", "kits.new"), i18nButton("kit-close", "kits.close"));
  const model = el("select"); model.id = "kit-model";
  const sample = el("select"); sample.id = "kit-sample";
  ["saliva", "urine"].forEach((s) => { const o = el("option", null, t("kits.sample." + s)); o.value = s; sample.append(o); });
  const photo = input("kit-photo", { type: "file", accept: "image/*", capture: "environment" });
  const grid = el("div", "kits-grid");
  grid.append(
    field("kits.id", input("kit-id", { maxlength: "32", autocomplete: "off", inputmode: "text", spellcheck: "false" })),
    field("kits.name", input("kit-name", { maxlength: "64", autocomplete: "off" })),
    field("kits.kit", model), field("kits.sample", sample),
    field("kits.lot", input("kit-lot", { maxlength: "64", autocomplete: "off" })),
    field("kits.expiry", input("kit-expiry", { type: "date" })),
    field("kits.minutes", input("kit-minutes", { type: "number", min: "0", max: "1440", step: "1", value: "10" })),
    photoField(photo),
    field("kits.officer2", input("kit-officer2", { maxlength: "64", autocomplete: "off" })));
  const ph = el("h3", null, t("kits.panels")); ph.dataset.i18n = "kits.panels";
  const status = el("div", "kit-status"); status.id = "kit-status"; status.setAttribute("aria-live", "polite");
  const panels = el("ul", "kit-panels"); panels.id = "kit-panels";
  const lab = el("div", "kit-lab"); lab.id = "kit-lab"; lab.hidden = true;
  const needsLab = input("kit-needs-lab", { type: "checkbox" });
  lab.append(field("kits.lab", needsLab), field("kits.sealA", input("kit-seal-a", { maxlength: "64" })),
    field("kits.sealB", input("kit-seal-b", { maxlength: "64" })));
  const result = el("div", "kit-result"); result.id = "kit-result"; result.setAttribute("aria-live", "polite");
  view.append(head, grid, status, ph, panels, lab, i18nButton("kit-save", "kits.save", "primary"), result);
  document.querySelector("main").after(view);
}

function currentKit() {
  return kits.catalogue.find((k) => k.model === document.getElementById("kit-model").value);
}

function resetPanels() {
  const kit = currentKit();
  kits.photo = null; kits.source = "manual"; kits.status = null;
  kits.panels = kit ? kit.panels.map((p) => ({ drug: p.drug, machine: null, officer_call: null })) : [];
  if (kit) document.getElementById("kit-sample").value = kit.sample_type;
  drawStatus();
  drawPanels();
}

function drawPanels() {
  const list = document.getElementById("kit-panels");
  list.replaceChildren(...kits.panels.map((p, i) => {
    const li = el("li", "kit-panel" + (p.machine && p.machine.call === "uncertain" ? " uncertain" : ""));
    li.dataset.drug = p.drug;
    // the name, and the code as printed on the strip (an id: the same in both languages)
    const code = el("span", "drug-code muted", p.drug);
    code.dataset.id = "";
    const drug = el("span", "drug", drugName(p.drug) + " ");
    drug.append(code);
    li.append(drug);
    if (p.machine) {
      const m = p.machine.call === "uncertain" ? t("kits.uncertain") : t("kits." + p.machine.call);
      li.append(el("span", "machine", t("kits.machine") + ": " + m + " (" + Math.round(p.machine.confidence * 100) + "%)"));
    }
    const calls = el("span", "calls");
    CALLS.forEach((c) => {
      const b = el("button", "call " + c + (p.officer_call === c ? " chosen" : ""), t("kits." + c));
      b.type = "button"; b.dataset.call = c;
      b.addEventListener("click", () => { kits.panels[i].officer_call = c; drawPanels(); });
      calls.append(b);
    });
    li.append(calls);
    return li;
  }));
  document.getElementById("kit-lab").hidden = !kits.panels.some((p) => p.officer_call === "positive");
}

async function loadCatalogue() {
  const resp = await fetch("/api/v1/kits");
  if (!resp.ok) return;
  kits.catalogue = (await resp.json()).kits;
  const select = document.getElementById("kit-model");
  select.replaceChildren(...kits.catalogue.map((k) => { const o = el("option"); o.value = k.model; return o; }));
  labelKits();
  resetPanels();
}
// A kit by what the officer reads on its pouch: model, sample, panels. The catalogue's free-text name is
// shown only where it is in the page's language (a shipped name is English; a province's may be Chinese).
function labelKits() {
  const cjk = /[\u3400-\u9fff]/;
  document.querySelectorAll("#kit-model option").forEach((o) => {
    const k = kits.catalogue.find((x) => x.model === o.value);
    if (!k) return;
    const own = k.name && (cjk.test(k.name) === (document.documentElement.lang === "zh-CN")) ? " · " + k.name : "";
    o.textContent = k.model + " · " + t("kits.sample." + k.sample_type) + " · " + t("kits.items").replace("{n}", k.panels.length) + own;
  });
  document.querySelectorAll("#kit-sample option").forEach((o) => { o.textContent = t("kits.sample." + o.value); });
}
// What the photo reading said (kept as data, so a language switch says it again in the new language).
function drawStatus() {
  const status = document.getElementById("kit-status");
  const s = kits.status;
  if (!s) { status.replaceChildren(); delete status.dataset.read; return; }
  if (s.kind === "reading") status.replaceChildren(el("span", "muted", t("kits.reading")));
  else if (s.kind === "failed") status.replaceChildren(el("span", "error", t("kits.read.failed") + ": " + s.error));
  else { status.replaceChildren(el("span", "ok", t("kits.machine") + " ✓")); status.dataset.read = "1"; }
}
function drawResult() {
  const out = document.getElementById("kit-result");
  const r = kits.saved;
  if (!r) { out.replaceChildren(); delete out.dataset.resultId; return; }
  if (r.error !== undefined) { out.replaceChildren(el("span", "error", t(r.error) + (r.detail ? ": " + r.detail : ""))); return; }
  const parts = [el("span", "ok", t("kits.saved") + " · " + r.result_id + " · " + t("kits." + r.result) + " · …" + r.id_last4)];
  if (r.kit_expired) parts.push(el("span", "badge warn", t("kits.expired")));
  if (r.outside_read_window) parts.push(el("span", "badge warn", t("kits.window")));
  if (r.person_hits && r.person_hits.length) parts.push(el("span", "badge bad", t("kits.person")));
  out.replaceChildren(...parts);
  out.dataset.resultId = r.result_id;
}

async function readPhoto(file) {
  const kit = currentKit();
  if (!kit || !file) return;
  kits.status = { kind: "reading" };
  drawStatus();
  const form = new FormData();
  form.append("photo", file);
  const resp = await fetch("/api/v1/kits/read?kit=" + encodeURIComponent(kit.model), { method: "POST", body: form });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    kits.status = { kind: "failed", error: String(body.error || resp.status) };
    drawStatus();
    return;
  }
  kits.photo = body.photo_sha256; kits.source = "photo";
  // A confident machine call is preselected for the officer to confirm; an uncertain one must be chosen.
  kits.panels = body.panels.map((p) => ({ drug: p.drug, machine: p.machine,
    officer_call: p.uncertain ? null : p.call }));
  kits.status = { kind: "read" };
  drawStatus();
  drawPanels();
}

async function saveResult() {
  const kit = currentKit();
  if (!kit) return;
  if (kits.panels.some((p) => !p.officer_call)) { kits.saved = { error: "kits.unconfirmed" }; drawResult(); return; }
  const now = Date.now() / 1000;
  const minutes = Number(document.getElementById("kit-minutes").value || 0);
  const needsLab = document.getElementById("kit-needs-lab").checked && kits.panels.some((p) => p.officer_call === "positive");
  const body = {
    id_number: document.getElementById("kit-id").value.trim(), name: document.getElementById("kit-name").value.trim(),
    kit_model: kit.model, lot: document.getElementById("kit-lot").value.trim(),
    expiry: document.getElementById("kit-expiry").value, sample_type: document.getElementById("kit-sample").value,
    panels: kits.panels.map((p) => (p.machine ? { drug: p.drug, officer_call: p.officer_call, machine: p.machine }
      : { drug: p.drug, officer_call: p.officer_call })),
    sampled_at: now - minutes * 60, read_at: now, second_officer: document.getElementById("kit-officer2").value.trim(),
    source: kits.source, needs_lab: needsLab,
    sample_a: needsLab ? document.getElementById("kit-seal-a").value.trim() : "",
    sample_b: needsLab ? document.getElementById("kit-seal-b").value.trim() : "",
  };
  if (kits.photo) body.photo_sha256 = kits.photo;
  const button = document.getElementById("kit-save");
  button.disabled = true;
  try {
    const resp = await fetch("/api/v1/kits/results", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    const r = await resp.json().catch(() => ({}));
    if (!resp.ok) { kits.saved = { error: "kits.save.failed", detail: String(r.error || resp.status) }; drawResult(); return; }
    kits.saved = r;
    drawResult();
    document.getElementById("kit-id").value = "";  // the number leaves the page once saved
  } finally { button.disabled = false; }
}

buildView();
document.getElementById("kits-open").addEventListener("click", () => {
  document.getElementById("kits").hidden = false;
  document.querySelector("main").hidden = true;
  if (!kits.catalogue.length) loadCatalogue();
});
document.getElementById("kit-close").addEventListener("click", () => {
  document.getElementById("kits").hidden = true;
  document.querySelector("main").hidden = false;
});
document.getElementById("kit-new").addEventListener("click", () => {
  ["kit-id", "kit-name", "kit-seal-a", "kit-seal-b"].forEach((id) => { document.getElementById(id).value = ""; });
  document.getElementById("kit-photo").value = "";
  document.getElementById("kit-photo").dispatchEvent(new Event("change"));
  kits.saved = null;
  drawResult();
  resetPanels();
});
document.getElementById("kit-model").addEventListener("change", resetPanels);
document.getElementById("kit-photo").addEventListener("change", (ev) => readPhoto(ev.target.files[0]));
document.getElementById("kit-save").addEventListener("click", saveResult);
document.getElementById("lang").addEventListener("click", () => { labelKits(); drawPanels(); drawStatus(); drawResult(); });
applyI18n();  // tablet.js ran before these strings were added
