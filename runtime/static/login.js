import { applyI18n, toggleLang } from "./i18n.js";

applyI18n();
document.getElementById("failed").hidden = !new URLSearchParams(location.search).has("failed");
document.getElementById("lang").addEventListener("click", toggleLang);
