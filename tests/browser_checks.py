"""Checks every page of Cordon must pass in a real browser, for the console's and the tablet's tests alike.

- ``PageWatch``: page errors, console errors and warnings, failed requests and answers of 400 and up,
  collected while a test walks a page; ``problems()`` lists them.
- ``overflowing_text``: visible text that runs out of its box (sideways always; down, unless the box
  scrolls), and text cut short: an element whose content is clipped (an ellipsis, ``overflow: hidden``)
  unless it carries ``data-may-clip`` (a note whose whole text is shown elsewhere). Plates, checkpoint
  names and list names must never carry it.
- ``untranslated_text``: on a Chinese page, visible text that is a dictionary key, holds an English value
  of the dictionary, or holds an English word at all; plates (``.plate``), ids (an element marked
  ``data-id``, or words with digits, ``-``, ``_``, ``/``, ``.``, ``:``) and units aside, and the short
  reviewed ``ALLOWED_WORDS``.
- ``keys_shown``: in either language, visible text that is, or holds as a word, a dictionary key.
- ``dictionary_gaps``: keys that one language of the page's dictionary has and the other lacks.
- ``broken_names``: a plate, checkpoint name or list name (``.plate``, ``[data-name]``, or an element marked
  ``data-whole``) laid out on more than one line: a plate split after its province character, a name
  wrapped in a column too narrow for it, reads as two things.
- ``dense_rows``: rows of a list (a selector) taller than a dense row may be, in lines of their text.
- ``low_contrast_text``: visible text whose colour is too close to the background it is drawn on (dark
  text on a dark select in the light theme, amber on white): under 3:1, WCAG's floor for large text.

All run inside the page (Playwright's ``page.evaluate``); the dictionary is read from the page's own
``/common/i18n.js`` module, with whatever every script added to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: English words a Chinese page may show, reviewed: the language switch names the other language; CSV
#: and MDMA are what Chinese users call them too; Enter names a key.
ALLOWED_WORDS = frozenset({"English", "CSV", "MDMA", "Enter"})


@dataclass
class PageWatch:
    """Everything that went wrong on a page while a test used it."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    """Every request the page made, as "METHOD URL"."""

    def __post_init__(self) -> None:
        self.page.on("request", lambda req: self.requests.append(f"{req.method} {req.url}"))
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("console", self._console)
        self.page.on(
            "requestfailed",
            lambda req: self.errors.append(f"request failed: {req.method} {req.url} ({req.failure})"),
        )
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def problems(self) -> list[str]:
        return list(self.errors)

    def clear(self) -> None:
        self.errors.clear()


#: The ways through a page's own buttons from (zh, dark) to every language and theme: (lang, theme, button).
SWITCHES = (
    ("zh", "dark", None),
    ("zh", "light", "#theme"),
    ("en", "light", "#lang"),
    ("en", "dark", "#theme"),
)


def open_console_sync(
    browser: Any, base: str, width: int, height: int, *, code: str = "console-code", timeout_ms: int = 45_000
) -> tuple[Any, PageWatch]:
    """A console page (sync Playwright) in a context of its own at ``width`` x ``height``, signed in with
    the access code, in Chinese and the dark theme, every module script run; and its ``PageWatch``. Tests
    reach the other languages and themes with the page's own buttons (``SWITCHES``): what was drawn before
    a switch must follow it, and a new sign-in per variant cost seconds each."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(
        "localStorage.setItem('cordon.lang', 'zh'); localStorage.setItem('cordon.theme', 'dark');"
    )
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(f"{base}/login")
    page.click("summary")
    page.fill("input[name=code]", code)
    page.click("button[type=submit]")
    page.wait_for_selector("#live.ok", timeout=timeout_ms)
    # module scripts run after the page is parsed, before it is complete: a tab exists before its listener
    page.wait_for_function("document.readyState === 'complete'", timeout=timeout_ms)
    return page, watch


def switch_sync(page: Any, button: str | None, lang: str, theme: str, timeout_ms: int = 45_000) -> None:
    """Press a language or theme button (or none) and wait until the page says it is in ``lang``/``theme``."""
    if button:
        page.click(button)
    page.wait_for_function(
        f"document.documentElement.lang === '{'zh-CN' if lang == 'zh' else 'en'}'"
        f" && document.documentElement.classList.contains('light') === {str(theme == 'light').lower()}",
        timeout=timeout_ms,
    )


#: The console's screenshots in docs/screenshots/ are taken at a command-center wall's size.
WALL = {"width": 1920, "height": 1080}


async def wall_screenshot(page: Any, path: str) -> None:
    """Save a console screenshot at 1920x1080 (``WALL``) whatever size the test drives the page at, then
    give the page its size back; the map and charts redraw for a size (ResizeObserver) before the next
    frame, so two frames later the picture is of the page as drawn at that size."""
    frames = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
    before = page.viewport_size
    await page.set_viewport_size(WALL)
    await page.evaluate(frames)
    await page.screenshot(path=path)
    await page.set_viewport_size(before)
    await page.evaluate(frames)


_VISIBLE = """
function visible(el) {
  if (!el || !el.isConnected) return false;
  if (el.checkVisibility && !el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0;
}
function describe(el) {
  const id = el.id ? "#" + el.id : "";
  const cls = typeof el.className === "string" && el.className ? "." + el.className.trim().split(/\\s+/).join(".") : "";
  return el.tagName.toLowerCase() + id + cls;
}
"""

_OVERFLOW = (
    """
(skip) => {
"""
    + _VISIBLE
    + """
  const skipped = (el) => skip.some((s) => el.closest(s));
  const found = [];
  const blockOf = (el) => {
    let box = el;
    while (box && box !== document.body) {
      const d = getComputedStyle(box).display;
      if (box instanceof SVGElement ? box.tagName.toLowerCase() === "svg" : !["inline", "contents"].includes(d)) return box;
      box = box.parentElement;
    }
    return document.body;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!node.textContent.trim() || !visible(parent) || skipped(parent)) continue;
    if (["OPTION", "SCRIPT", "STYLE", "TITLE"].includes(parent.tagName.toUpperCase())) continue;
    if (parent.closest("title")) continue;
    const box = blockOf(parent);
    const b = box.getBoundingClientRect();
    const style = getComputedStyle(box);
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (r.width === 0) continue;
      const sideways = r.left < b.left - 1 || r.right > b.right + 1;
      const down = (r.top < b.top - 1 || r.bottom > b.bottom + 1) && !["auto", "scroll"].includes(style.overflowY);
      if (sideways || down) {
        found.push({ text: node.textContent.trim().slice(0, 60), box: describe(box),
          how: sideways ? "sideways" : "down", text_rect: [r.left, r.top, r.right, r.bottom].map(Math.round),
          box_rect: [b.left, b.top, b.right, b.bottom].map(Math.round) });
        break;
      }
    }
  }
  // Clipped content: an ellipsis or hidden overflow that actually cuts text, unless the element says a
  // cut is fine there (data-may-clip: a note shown whole elsewhere).
  for (const el of document.querySelectorAll("body *")) {
    if (!visible(el) || skipped(el) || el.closest("[data-may-clip]") || el instanceof SVGElement) continue;
    if (!el.textContent.trim() || ["SELECT", "OPTION", "INPUT", "TEXTAREA"].includes(el.tagName)) continue;
    const s = getComputedStyle(el);
    const clips = ["hidden", "clip"].includes(s.overflowX) || s.textOverflow === "ellipsis";
    if (clips && el.scrollWidth > el.clientWidth + 1) {
      found.push({ text: el.textContent.trim().slice(0, 60), box: describe(el), how: "cut",
        scroll: el.scrollWidth, client: el.clientWidth });
    }
  }
  return found;
}
"""
)


async def overflowing_text(page: Any, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Visible text that runs out of its box or is cut short (see the module docstring); ``skip`` names
    selectors whose insides are not checked (say why at the call)."""
    return await page.evaluate(_OVERFLOW, list(skip))


_TEXTS = (
    """
(skip) => {
"""
    + _VISIBLE
    + """
  const skipped = (el) => skip.some((s) => el.closest(s));
  const out = [];
  const joined = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    let parent = node.parentElement;
    let text = node.textContent.trim();
    if (!text || !visible(parent) || skipped(parent) || parent.closest(".plate, [data-id], title, script, style")) continue;
    // a sentence with a plate or id kept whole in a span of its own ([data-whole]) is read as one text
    if (parent.matches("[data-whole]")) parent = parent.parentElement;
    if (parent.querySelector(":scope > [data-whole]")) {
      if (joined.has(parent)) continue;
      joined.add(parent);
      text = parent.textContent.trim();
    }
    out.push({ text, where: describe(parent) });
  }
  for (const el of document.querySelectorAll("input[placeholder], select, button, input[type=button], input[type=submit]")) {
    if (!visible(el) || skipped(el)) continue;
    if (el.placeholder) out.push({ text: el.placeholder, where: describe(el) + "[placeholder]" });
    if (el.tagName === "SELECT") for (const o of el.options) out.push({ text: o.text.trim(), where: describe(el) + " option" });
    if (el.tagName === "INPUT" && el.value && ["button", "submit"].includes(el.type)) out.push({ text: el.value, where: describe(el) });
  }
  return out;
}
"""
)

_DICTIONARY = """
async () => {
  const { CORDON_I18N } = await import("/common/i18n.js");
  return { zh: CORDON_I18N.zh, en: CORDON_I18N.en };
}
"""


async def dictionary(page: Any) -> dict[str, dict[str, str]]:
    """The page's dictionary as every script left it: ``{"zh": {...}, "en": {...}}``."""
    return await page.evaluate(_DICTIONARY)


async def dictionary_gaps(page: Any) -> dict[str, list[str]]:
    """Keys only one language has: ``{"zh_only": [...], "en_only": [...]}`` (both empty when complete)."""
    found = await dictionary(page)
    zh, en = set(found["zh"]), set(found["en"])
    return {"zh_only": sorted(zh - en), "en_only": sorted(en - zh)}


def _is_id(chunk: str) -> bool:
    return any(c.isdigit() or c in "-_/.:@" for c in chunk)


def english_words(text: str, allowed: frozenset[str] = ALLOWED_WORDS) -> list[str]:
    """English words in a text meant to be Chinese: runs of three or more Latin letters that are not part
    of an id (a run of letters, digits and ``-_/.:@`` with a digit or one of those in it), nor allowed."""
    import re

    words = []
    for chunk in re.findall(r"[A-Za-z0-9_./:@-]+", text):
        if _is_id(chunk):
            continue
        words += [w for w in re.findall(r"[A-Za-z]{3,}", chunk) if w not in allowed]
    return words


def _keys_in(words: dict[str, dict[str, str]], texts: list[dict[str, str]]) -> list[dict[str, str]]:
    values = set(words["zh"].values()) | set(words["en"].values())
    keys = set(words["zh"]) - values  # a key that is also a text (en "online") is no sign of a leak
    dotted = {k for k in keys if "." in k}
    return [
        {**item, "why": "a dictionary key"}
        for item in texts
        if item["text"] in keys or any(word.strip("()（）:：,，") in dotted for word in item["text"].split())
    ]


def _untranslated_in(
    words: dict[str, dict[str, str]], texts: list[dict[str, str]], allowed: frozenset[str]
) -> list[dict[str, str]]:
    keys = set(words["zh"])
    english = {
        v.strip()
        for k, v in words["en"].items()
        if "{" not in v and words["zh"].get(k) != v and len(english_words(v, allowed)) > 0
    }
    found = []
    for item in texts:
        text = item["text"]
        if text in keys:
            found.append({**item, "why": "a dictionary key"})
        elif hit := next((v for v in english if v in text), None):
            found.append({**item, "why": f"the English text {hit!r}"})
        elif leaked := english_words(text, allowed):
            found.append({**item, "why": f"English words {leaked}"})
    return found


async def keys_shown(page: Any, skip: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """In either language: visible texts that are a dictionary key (``kind.clone``, ``folded.times``)."""
    return _keys_in(await dictionary(page), await page.evaluate(_TEXTS, list(skip)))


def keys_shown_sync(page: Any, skip: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """``keys_shown`` for a page of Playwright's sync API."""
    return _keys_in(page.evaluate(_DICTIONARY), page.evaluate(_TEXTS, list(skip)))


async def untranslated_text(
    page: Any, skip: tuple[str, ...] = (), allowed: frozenset[str] = ALLOWED_WORDS
) -> list[dict[str, str]]:
    """On a Chinese page: visible texts that are a dictionary key, contain an English value of the
    dictionary, or contain an English word (see ``english_words``)."""
    return _untranslated_in(await dictionary(page), await page.evaluate(_TEXTS, list(skip)), allowed)


def untranslated_text_sync(
    page: Any, skip: tuple[str, ...] = (), allowed: frozenset[str] = ALLOWED_WORDS
) -> list[dict[str, str]]:
    """``untranslated_text`` for a page of Playwright's sync API."""
    return _untranslated_in(page.evaluate(_DICTIONARY), page.evaluate(_TEXTS, list(skip)), allowed)


_CONTRAST = (
    """
(args) => {
"""
    + _VISIBLE
    + """
  const [skip, minimum] = args;
  const rgba = (c) => { const m = c.match(/[\\d.]+/g); return m ? m.map(Number).concat([1]).slice(0, 4) : [0, 0, 0, 0]; };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  // The colour behind an element: the first ancestor that paints one (none drawn as a picture or gradient).
  const behind = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const s = getComputedStyle(n);
      if (s.backgroundImage && s.backgroundImage !== "none") return null;
      const c = rgba(s.backgroundColor);
      if (c[3] > 0.5) return c;
    }
    return rgba(getComputedStyle(document.documentElement).backgroundColor);
  };
  const found = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || seen.has(el) || !visible(el) || el instanceof SVGElement) continue;
    if (skip.some((s) => el.closest(s)) || el.closest("option")) continue;
    seen.add(el);
    const s = getComputedStyle(el);
    if (s.animationName && s.animationName !== "none") continue;  // mid-flash, its colours are in motion
    const fg = rgba(s.color), bg = behind(el);
    if (!bg || fg[3] < 0.5) continue;
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < minimum) found.push({ text: el.textContent.trim().slice(0, 40), where: describe(el), ratio: Math.round(ratio * 100) / 100 });
  }
  return found;
}
"""
)


async def low_contrast_text(
    page: Any, skip: tuple[str, ...] = (), minimum: float = 3.0
) -> list[dict[str, Any]]:
    """Visible text drawn under ``minimum`` contrast with what is behind it (see the module docstring)."""
    return await page.evaluate(_CONTRAST, [list(skip), minimum])


_BROKEN = (
    """
([skip, mayWrap]) => {
"""
    + _VISIBLE
    + """
  const found = [];
  for (const el of document.querySelectorAll(".plate, [data-name], [data-whole]")) {
    if (!visible(el) || skip.some((s) => el.closest(s)) || !el.textContent.trim()) continue;
    if (el.matches("[data-name]") && !el.matches(".plate, [data-whole]") && mayWrap.some((s) => el.closest(s))) continue;
    const range = document.createRange();
    range.selectNodeContents(el);
    const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.bottom)));
    if (tops.size > 1) found.push({ text: el.textContent.trim().slice(0, 60), where: describe(el), lines: tops.size });
  }
  return found;
}
"""
)


async def broken_names(
    page: Any, skip: tuple[str, ...] = (), names_may_wrap: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Plates and names laid out on more than one line (see the module docstring); a name (never a plate)
    inside ``names_may_wrap`` may take two lines (say why at the call)."""
    return await page.evaluate(_BROKEN, [list(skip), list(names_may_wrap)])


_ROWS = (
    """
([selector, most]) => {
"""
    + _VISIBLE
    + """
  const found = [];
  for (const row of document.querySelectorAll(selector)) {
    if (!visible(row)) continue;
    const s = getComputedStyle(row);
    const line = parseFloat(s.lineHeight) || 1.2 * parseFloat(s.fontSize);
    const inner = row.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom);
    const lines = Math.round((inner / line) * 10) / 10;
    if (lines > most) found.push({ text: row.innerText.replace(/\\s+/g, " ").slice(0, 80), lines });
  }
  return found;
}
"""
)


async def dense_rows(page: Any, selector: str, most: int) -> list[dict[str, Any]]:
    """Rows matching ``selector`` taller than ``most`` lines of their own text (their padding aside)."""
    return await page.evaluate(_ROWS, [selector, most])
