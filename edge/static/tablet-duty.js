// On duty: the alarm must be heard and seen. Browsers play sound only after a gesture on the page, so the
// officer's first tap (the 开始值守 button, or any tap: an alarm may already be on screen) unlocks a Web
// Audio context and starts duty, with a short tone so the officer hears that the sound works. While on duty the screen is kept awake (Screen Wake Lock
// API); the browser drops the lock whenever the page is hidden, so it is asked again when the page is
// visible again. The tones are generated: no sound file is needed, also offline.
import { CORDON_I18N, t } from "/common/i18n.js";

Object.assign(CORDON_I18N.zh, {
  "duty.start": "开始值守", "duty.hint": "开始值守：警报声音启用，屏幕保持常亮",
  "duty.on": "值守中", "duty.awake": "屏幕常亮", "duty.awake.lost": "屏幕常亮未获准，请调整设备息屏设置",
  "duty.awake.none": "本浏览器不支持屏幕常亮，请调整设备息屏设置", "duty.sound.off": "警报声音未启用，请轻触屏幕",
});
Object.assign(CORDON_I18N.en, {
  "duty.start": "Start duty", "duty.hint": "Start duty: alarm sound on, screen kept awake",
  "duty.on": "On duty", "duty.awake": "screen kept awake", "duty.awake.lost": "Screen wake lock refused: check the device's sleep setting",
  "duty.awake.none": "This browser cannot keep the screen awake: check the device's sleep setting", "duty.sound.off": "Alarm sound off: tap the screen",
});

let audio = null;
let onDuty = false;
let wakeLock = null;
let awake = "off";   // off | held | refused | unsupported
const listeners = [];

// Called on the officer's gestures: a context created (or resumed) inside one may play sound.
export function unlockAudio() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  if (!audio) audio = new Ctx();
  if (audio.state !== "running") audio.resume();
  window.cordonAudioState = () => audio.state;
  changed();
  return audio;
}
// On the click, not on pointerdown: starting duty changes the header (its badge appears), and a change between
// pointerdown and click would move the button the officer is pressing from under the finger.
function firstTouch() { if (onDuty) unlockAudio(); else startDuty(); }
document.addEventListener("click", firstTouch, { capture: true });
document.addEventListener("keydown", firstTouch, { capture: true });

// The running audio context, or null while the browser still blocks sound.
export function audioContext() { return audio && audio.state === "running" ? audio : null; }

// One generated tone (square wave sweeping down): the siren repeats it, the duty button plays it once.
export function tone(ctx, at, from, to, length, volume) {
  const osc = ctx.createOscillator(); const gain = ctx.createGain();
  osc.type = "square"; osc.frequency.setValueAtTime(from, at); osc.frequency.linearRampToValueAtTime(to, at + length * 0.6);
  gain.gain.setValueAtTime(volume, at); gain.gain.linearRampToValueAtTime(0.0001, at + length);
  osc.connect(gain).connect(ctx.destination); osc.start(at); osc.stop(at + length);
}

async function keepAwake() {
  if (!onDuty || wakeLock || document.visibilityState !== "visible") return;
  if (!("wakeLock" in navigator)) { awake = "unsupported"; changed(); return; }
  window.cordonWakeLockRequests = (window.cordonWakeLockRequests || 0) + 1;
  try {
    wakeLock = await navigator.wakeLock.request("screen");
    awake = "held";
    wakeLock.addEventListener("release", () => { wakeLock = null; awake = "off"; changed(); });
  } catch (e) {
    awake = "refused";
    window.cordonWakeLockError = String(e);
  }
  changed();
}
// The browser releases the lock when the page is hidden (screen off, another app): ask again on return.
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") keepAwake(); });

export function startDuty() {
  onDuty = true;
  const ctx = unlockAudio();
  if (ctx) {
    const play = () => { tone(ctx, ctx.currentTime, 880, 660, 0.25, 0.15); window.cordonDutyTone = true; };
    if (ctx.state === "running") play(); else ctx.resume().then(play);
  }
  keepAwake();
  changed();
}
export function dutyState() { return { onDuty, awake, sound: !!audioContext() }; }
// Called with the state whenever it changes (the page redraws its duty bar).
export function onDutyChange(fn) { listeners.push(fn); }
function changed() {
  window.cordonDuty = dutyState();
  listeners.forEach((fn) => fn(dutyState()));
}

// The duty bar and the header badge, in the page's language.
export function drawDuty() {
  const s = dutyState();
  const bar = document.getElementById("duty");
  const badge = document.getElementById("duty-state");
  bar.hidden = s.onDuty && s.awake !== "refused" && s.awake !== "unsupported" && s.sound;
  document.getElementById("duty-start").hidden = s.onDuty;
  const hint = bar.querySelector(".duty-hint");
  if (!s.onDuty) { hint.dataset.i18n = "duty.hint"; hint.className = "duty-hint"; }
  else if (!s.sound) { hint.dataset.i18n = "duty.sound.off"; hint.className = "duty-hint bad"; }
  else { hint.dataset.i18n = s.awake === "unsupported" ? "duty.awake.none" : "duty.awake.lost"; hint.className = "duty-hint bad"; }
  hint.textContent = t(hint.dataset.i18n);
  badge.hidden = !s.onDuty;
  badge.className = "badge " + (s.awake === "held" ? "ok" : "warn");
  badge.textContent = t("duty.on") + (s.awake === "held" ? " · " + t("duty.awake") : "");
}
onDutyChange(drawDuty);
drawDuty();
