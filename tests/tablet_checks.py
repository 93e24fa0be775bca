"""Checks of what a person sees on a page, run in the real browser: nothing cut off or wider than the screen,
touch targets an officer can hit, no dictionary key or English dictionary text in the Chinese interface,
text readable against its background; and a recorder of page errors, console errors and failed requests.

Used by the tablet's browser tests (tests/test_browser_tablet.py) at every size, language and theme."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: English words of the dictionary that may stand in the Chinese interface: none so far. Plates, ids,
#: units and drug abbreviations are not dictionary values, so they need no entry here.
ALLOWED_ENGLISH: frozenset[str] = frozenset()

#: Smallest touch target, CSS pixels (WCAG 2.5.5, Apple's HIG).
TOUCH_PX = 44

_CHECKS = r"""
async ({ root, zh, allowed, touch }) => {
  const { CORDON_I18N } = await import("/common/i18n.js");
  const keys = new Set([...Object.keys(CORDON_I18N.zh), ...Object.keys(CORDON_I18N.en)]);
  const zhValues = new Set(Object.values(CORDON_I18N.zh));
  const enValues = new Set(Object.values(CORDON_I18N.en));
  const english = [...new Set(Object.values(CORDON_I18N.en))]
    .filter((v) => /[A-Za-z]{3,}/.test(v) && !zhValues.has(v) && !allowed.includes(v));
  const viewport = document.documentElement.clientWidth;
  const top = document.querySelector(root);
  const shown = (e) => {
    if (!e || !e.getClientRects().length) return false;
    const cs = getComputedStyle(e);
    if (cs.visibility === "hidden" || cs.display === "none" || Number(cs.opacity) === 0) return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\s+/).join(".") : "");
  const ownText = (e) => [...e.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join("").trim();
  const out = { overflow: [], offscreen: [], small: [], keys: [], english: [], contrast: [], ellipsis: [] };
  const all = [top, ...top.querySelectorAll("*")].filter(shown);
  // nothing wider than the screen, nothing cut off inside its box
  if (document.documentElement.scrollWidth > viewport + 1) out.offscreen.push("page " + document.documentElement.scrollWidth + " > " + viewport);
  for (const e of all) {
    const r = e.getBoundingClientRect();
    const cs = getComputedStyle(e);
    if (r.right > viewport + 1 || r.left < -1) out.offscreen.push(name(e) + " " + Math.round(r.left) + ".." + Math.round(r.right));
    const text = ownText(e);
    if (text && cs.display !== "inline" && e.scrollWidth > e.clientWidth + 1 && cs.overflowX !== "auto" && cs.overflowX !== "scroll") {
      out.overflow.push(name(e) + ": " + text.slice(0, 40) + " (" + e.scrollWidth + " > " + e.clientWidth + ")");
    }
    if (cs.textOverflow === "ellipsis" && e.scrollWidth > e.clientWidth + 1) out.ellipsis.push(name(e) + ": " + text.slice(0, 40));
  }
  // touch targets
  for (const e of all.filter((e) => e.matches("button, a[href], input:not([type=hidden]), select, textarea, [role=button]"))) {
    const r = e.getBoundingClientRect();
    if (r.width < touch - 0.5 || r.height < touch - 0.5) out.small.push(name(e) + " " + Math.round(r.width) + "x" + Math.round(r.height));
  }
  // the words on screen: text, placeholders, the chosen option of each select
  const texts = [];
  const walker = document.createTreeWalker(top, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    if (text && shown(n.parentElement) && !n.parentElement.closest("select, option, script, style")) texts.push([n.parentElement, text]);
  }
  for (const e of all.filter((e) => e.placeholder)) texts.push([e, e.placeholder]);
  for (const e of all.filter((e) => e.tagName === "SELECT" && e.selectedOptions.length)) texts.push([e, e.selectedOptions[0].textContent.trim()]);
  const looksLikeKey = /^[a-z][a-z0-9_]*(\.[a-z0-9_-]+)+$/;
  for (const [e, text] of texts) {
    // a key shown instead of its text (an English word that is both a key and a value, "offline", is text)
    if ((keys.has(text) && (zh || !enValues.has(text))) || looksLikeKey.test(text)) out.keys.push(name(e) + ": " + text);
    if (zh) {
      for (const v of english) {
        const at = text.indexOf(v);
        if (at < 0) continue;
        const before = text[at - 1], after = text[at + v.length];
        if ((!before || !/[A-Za-z]/.test(before)) && (!after || !/[A-Za-z]/.test(after))) out.english.push(name(e) + ": " + text.slice(0, 60) + " [" + v + "]");
      }
    }
  }
  // contrast of text with what is behind it (WCAG: 4.5, 3 for large text)
  const rgb = (c) => { const m = c.match(/[\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 1]; };
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  for (const e of all) {
    if (!ownText(e) || e.closest("button:disabled")) continue;
    const cs = getComputedStyle(e);
    let bg = null;
    for (let p = e; p; p = p.parentElement) {
      const ps = getComputedStyle(p);
      if (ps.backgroundImage !== "none") { bg = "image"; break; }
      const c = rgb(ps.backgroundColor);
      if ((c[3] === undefined ? 1 : c[3]) > 0.5) { bg = c; break; }
    }
    if (bg === "image") continue;
    bg = bg || [255, 255, 255];
    const fg = rgb(cs.color);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
    const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
    if (ratio < need) out.contrast.push(name(e) + ": " + ownText(e).slice(0, 30) + " " + ratio.toFixed(2) + " < " + need);
  }
  return out;
}
"""


async def problems(page: Any, root: str = "body", *, zh: bool) -> dict[str, list[str]]:
    """What is wrong with what ``root`` shows now: each kind of problem and where (empty lists: none)."""
    found = await page.evaluate(
        _CHECKS, {"root": root, "zh": zh, "allowed": sorted(ALLOWED_ENGLISH), "touch": TOUCH_PX}
    )
    return {kind: items for kind, items in found.items() if items}


@dataclass
class PageErrors:
    """Page errors, console errors and failed requests of the pages it watches."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Any, label: str) -> Any:
        page.on("pageerror", lambda exc: self.seen.append(f"{label}: page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.seen.append(f"{label}: console {msg.type}: {msg.text} {msg.location.get('url', '')}")
                if msg.type == "error"
                else None
            ),
        )
        page.on(
            "response",
            lambda resp: (
                self.seen.append(f"{label}: HTTP {resp.status} {resp.url}") if resp.status >= 400 else None
            ),
        )
        page.on(
            "requestfailed",
            lambda req: (
                self.seen.append(f"{label}: request failed: {req.url} {req.failure}")
                if "/api/v1/ws" not in req.url
                else None
            ),
        )
        return page

    def take(self) -> list[str]:
        taken, self.seen = self.seen, []
        return taken
