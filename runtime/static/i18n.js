// Minimal i18n: zh-CN by default, English on request; remembered per device.
export const CORDON_I18N = {
  zh: {
    "app.console": "环省查缉防控圈 · 指挥中心", "app.tablet": "查缉点警务终端", "login.title": "登录",
    "login.code": "访问码", "login.submit": "登录", "login.failed": "用户名、密码或访问码错误", "login.refused": "该账号的角色无权打开此页面，请换一个账号登录", "login.username": "用户名", "login.password": "密码", "login.useCode": "使用访问码", "lang": "English",
    "alerts": "预警", "alerts.none": "暂无预警", "live.connected": "实时连接", "live.lost": "连接中断，正在重连",
    "action.intercept": "拦截", "action.covert": "秘密布控", "action.notify": "提示",
    "kind.exact": "完全比中", "kind.equivalent": "形近字比中", "kind.edit": "一字之差", "kind.province": "省份字误识",
    "kind.wildcard": "模糊比中", "checkpoints": "查缉点", "online": "在线", "offline": "离线",
    "reads": "过车记录", "read": "识别", "list": "布控名单", "reason": "布控事由", "camera": "相机", "lane": "车道",
    "outcome.intercepted": "已拦截", "outcome.not_found": "未发现", "outcome.misread": "误识别", "outcome.released": "核查放行", "note": "备注（可选）", "ack": "处置", "ack.change": "更改处置", "ack.later": "稍后处理", "ack.failed": "处置未保存", "listed": "布控车牌", "check": "核查车牌", "check.button": "查询", "check.none": "未比中", "check.failed": "查询失败", "check.placeholder": "如 鲁A12345", "status": "状态", "entries": "条", "errors": "错误", "uplink.up": "正常", "uplink.down": "中断", "uplink.unknown": "上行状态未知", "uplink.state.connected": "已连接", "uplink.state.connecting": "连接中", "uplink.state.offline": "离线", "uplink.state.refused": "被拒绝", "hub.offline": "中心离线", "noplate": "无牌", "plate.suspect": "疑似误识", "sound.hint": "轻触屏幕任意位置以启用警报声音", "outcomes": "处置结果", "logout": "退出", "theme": "日/夜", "outbox": "待上传", "dropped": "已丢弃过车", "clock": "时钟偏差", "uplink": "上行链路", "hub": "中心", "feed": "布控库",
    "map": "防控圈态势", "status.online": "在线", "status.offline": "离线", "status.degraded": "异常", "status.unknown": "未知", "rpm.none": "过车率：查缉点尚未上报", "map.absent": "不在地图上", "escalated": "超时未处置·已升级", "detail": "预警详情", "detail.none": "点击一条预警查看详情", "explanation": "比中说明", "priority": "优先级", "checkpoint": "查缉点", "time": "时间", "outcomes.none": "尚无处置", "passages": "近期过车", "passages.none": "近24小时无过车记录", "passages.failed": "过车记录查询失败", "passages.denied": "无权查询过车记录", "reconnected": "已重新连接，已补齐",
  },
  en: {
    "app.console": "Perimeter ring · Command console", "app.tablet": "Checkpoint tablet", "login.title": "Sign in",
    "login.code": "Access code", "login.submit": "Sign in", "login.failed": "Wrong user name, password or access code", "login.refused": "This account's role may not open this page: sign in with another account", "login.username": "User name", "login.password": "Password", "login.useCode": "Use an access code", "lang": "中文",
    "alerts": "Alerts", "alerts.none": "No alerts yet", "live.connected": "Connected", "live.lost": "Connection lost, reconnecting",
    "action.intercept": "Intercept", "action.covert": "Covert", "action.notify": "Notify",
    "kind.exact": "exact", "kind.equivalent": "look-alike", "kind.edit": "one edit", "kind.province": "province misread",
    "kind.wildcard": "wildcard", "checkpoints": "Checkpoints", "online": "online", "offline": "offline",
    "reads": "Passing vehicles", "read": "Read", "list": "Watchlist", "reason": "Reason", "camera": "Camera", "lane": "Lane",
    "outcome.intercepted": "Intercepted", "outcome.not_found": "Not found", "outcome.misread": "Misread (false match)", "outcome.released": "Checked, released", "note": "Note (optional)", "ack": "Respond", "ack.change": "Change", "ack.later": "Later", "ack.failed": "Outcome not saved", "listed": "Listed plate", "check": "Check a plate", "check.button": "Check", "check.none": "No hit", "check.failed": "Check failed", "check.placeholder": "e.g. 鲁A12345", "status": "Status", "entries": "entries", "errors": "errors", "uplink.up": "up", "uplink.down": "down", "uplink.unknown": "Uplink unknown", "uplink.state.connected": "connected", "uplink.state.connecting": "connecting", "uplink.state.offline": "offline", "uplink.state.refused": "refused", "hub.offline": "hub offline", "noplate": "no plate", "plate.suspect": "suspect read", "sound.hint": "Tap anywhere to enable the alarm sound", "outcomes": "Outcome", "logout": "Sign out", "theme": "Day/Night", "outbox": "Outbox", "dropped": "reads dropped", "clock": "clock off by", "uplink": "Uplink", "hub": "Hub", "feed": "Watchlists",
    "map": "Ring status", "status.online": "online", "status.offline": "offline", "status.degraded": "degraded", "status.unknown": "unknown", "rpm.none": "Read rates: not reported by the checkpoints yet", "map.absent": "not on the map", "escalated": "No outcome · escalated", "detail": "Alert detail", "detail.none": "Click an alert for its detail", "explanation": "Why it matched", "priority": "priority", "checkpoint": "Checkpoint", "time": "Time", "outcomes.none": "No outcome yet", "passages": "Recent passages", "passages.none": "No reads in the last 24 hours", "passages.failed": "Could not search the passages", "passages.denied": "Your role may not search the record", "reconnected": "Reconnected, caught up",
  },
};
export function cordonLang() { return localStorage.getItem("cordon.lang") === "en" ? "en" : "zh"; }
// A key missing from the page's language is a bug, told once per key on the console (the browser checks
// of `make test` fail on it), and shown as the key rather than as nothing.
const missingKeys = new Set();
export function t(key) {
  const table = CORDON_I18N[cordonLang()];
  if (Object.prototype.hasOwnProperty.call(table, key)) return table[key];
  if (!missingKeys.has(key)) { missingKeys.add(key); console.error("i18n: no " + cordonLang() + " text for " + key); }
  return key;
}
// A text with {name} slots; a count takes the key's ".one" form for 1 when the language has one ("1 entry").
export function tf(key, values) {
  const n = values && values.n;
  const one = n === 1 && Object.prototype.hasOwnProperty.call(CORDON_I18N[cordonLang()], key + ".one");
  return t(one ? key + ".one" : key).replace(/\{(\w+)\}/g, (m, name) => (values && name in values ? String(values[name]) : m));
}
// Each module adds its own words when it runs, so while the page's modules are still running a key may not
// be there yet: such an element keeps its text for now, and the whole page is put in its language once every
// module has run (DOMContentLoaded comes after the last module script). A key missing after that is a bug.
let settled = false;
function known(key) { return Object.prototype.hasOwnProperty.call(CORDON_I18N[cordonLang()], key); }
export function applyI18n(root) {
  document.documentElement.lang = cordonLang() === "en" ? "en" : "zh-CN";
  (root || document).querySelectorAll("[data-i18n]").forEach((el) => {
    if (settled || known(el.dataset.i18n)) el.textContent = t(el.dataset.i18n);
  });
  (root || document).querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
    if (settled || known(el.dataset.i18nPlaceholder)) el.placeholder = t(el.dataset.i18nPlaceholder);
  });
}
if (document.readyState === "complete") settled = true;
else document.addEventListener("DOMContentLoaded", () => { settled = true; applyI18n(); }, { once: true });
// Switching language tells every module once the new language is in place ("cordon-lang" on document),
// so what a module drew is drawn again in it, whichever module's listener on the button runs first.
export function toggleLang() {
  localStorage.setItem("cordon.lang", cordonLang() === "en" ? "zh" : "en");
  applyI18n();
  document.dispatchEvent(new CustomEvent("cordon-lang"));
}
export function applyTheme() { document.documentElement.classList.toggle("light", localStorage.getItem("cordon.theme") === "light"); }
export function toggleTheme() {
  localStorage.setItem("cordon.theme", localStorage.getItem("cordon.theme") === "light" ? "dark" : "light"); applyTheme();
}
// Build an element with text content only: nothing received from the network is ever parsed as HTML.
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
applyTheme();
// Times as the officers read them: 24-hour clock, in the page's language, in one time zone: the one the
// server names (setTimeZone; the hub's time_zone setting), else the browser's own.
let timeZone;
export function setTimeZone(zone) { timeZone = zone || undefined; }
function locale() { return cordonLang() === "en" ? "en-GB" : "zh-CN"; }
export function fmtTime(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString(locale(), { hour12: false, timeZone });
}
// YYYY-MM-DD and YYYY-MM-DD HH:MM:SS in that zone (the same in both languages, as forms and tables want).
function zoneParts(unixSeconds) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone, hourCycle: "h23", year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(new Date(unixSeconds * 1000));
  return Object.fromEntries(parts.map((p) => [p.type, p.value]));
}
export function fmtDate(unixSeconds) { const p = zoneParts(unixSeconds); return p.year + "-" + p.month + "-" + p.day; }
export function fmtDateTime(unixSeconds) {
  const p = zoneParts(unixSeconds);
  return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second;
}
// Unix seconds of midnight starting a YYYY-MM-DD day in that zone (for date inputs).
export function zoneMidnight(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  let guess = Date.UTC(y, m - 1, d) / 1000;
  for (let i = 0; i < 2; i++) {
    const p = zoneParts(guess);
    const shown = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) / 1000;
    guess -= shown - Date.UTC(y, m - 1, d) / 1000;
  }
  return guess;
}
