"use strict";
applyI18n();
document.getElementById("lang").addEventListener("click", toggleLang);
document.getElementById("theme").addEventListener("click", toggleTheme);
const seen = new Set();
const alertsList = document.getElementById("alerts");
const readsList = document.getElementById("reads");
let audio = null;
// Browsers only allow sound after a user gesture: the officer's first tap unlocks it.
document.addEventListener("pointerdown", () => { if (!audio) { audio = new AudioContext(); } else { audio.resume(); } });
function siren() {
  if (!audio) return;
  const osc = audio.createOscillator(); const gain = audio.createGain();
  osc.type = "square"; osc.frequency.setValueAtTime(880, audio.currentTime);
  osc.frequency.linearRampToValueAtTime(440, audio.currentTime + 0.6);
  gain.gain.value = 0.2; osc.connect(gain).connect(audio.destination); osc.start(); osc.stop(audio.currentTime + 1.2);
}
function showAlert(alert, fresh) {
  if (seen.has(alert.alert_id)) return;
  seen.add(alert.alert_id);
  document.getElementById("no-alerts").hidden = true;
  alertsList.prepend(renderAlert(alert));
  if (fresh && alert.hit.action === "intercept") {
    const body = document.getElementById("overlay-body");
    body.replaceChildren(renderAlert(alert));
    document.getElementById("overlay").hidden = false;
    siren();
    if (navigator.vibrate) navigator.vibrate([400, 200, 400]);
  }
}
document.getElementById("overlay-close").addEventListener("click", () => { document.getElementById("overlay").hidden = true; });
let greeted = false;
connectLive((frame) => {
  if (frame.type === "hello") { document.getElementById("checkpoint").textContent = frame.checkpoint; greeted = true; }
  else if (frame.type === "alert") showAlert(frame.alert, greeted && Date.now() / 1000 - frame.alert.raised_at < 120);
  else if (frame.type === "read") {
    const li = el("li");
    li.append(el("span", "plate " + (frame.read.colour || ""), frame.read.no_plate ? "—" : frame.read.plate));
    li.append(el("span", "muted", " " + frame.read.camera_id));
    readsList.prepend(li);
    while (readsList.children.length > 30) readsList.lastChild.remove();
  }
}, (up) => {
  const badge = document.getElementById("live");
  badge.className = "badge " + (up ? "ok" : "bad");
  badge.dataset.i18n = up ? "live.connected" : "live.lost";
  badge.textContent = t(badge.dataset.i18n);
});
