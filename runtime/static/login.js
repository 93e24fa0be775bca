import { applyI18n, toggleLang } from "./i18n.js";

applyI18n();
const asked = new URLSearchParams(location.search);
document.getElementById("failed").hidden = !asked.has("failed");
document.getElementById("refused").hidden = !asked.has("refused");
document.getElementById("lang").addEventListener("click", toggleLang);
