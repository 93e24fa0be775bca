"use strict";
applyI18n();
document.getElementById("failed").hidden = !new URLSearchParams(location.search).has("failed");
document.getElementById("lang").addEventListener("click", toggleLang);
