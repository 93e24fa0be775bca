"""The browser scripts are ES modules that import what they use (STYLE.md), checked without a browser.

Every page loads its scripts as ``<script type="module">`` and has no inline handler; every import names
a file and an export that exist; no script uses a name another script declares at top level without
importing it, nor reads a ``window.*`` property another script sets; the tablet's service worker caches
every module the tablet loads (a module missing offline stops all that import it); the apps serve the
scripts as text/javascript (a browser refuses a module script whose type is not JavaScript).

The check of names is lexical, not a JavaScript parser: comments, strings, template text and regular
expressions are dropped, then each file's names are sorted into declared (anywhere in the file: top
level, locals, parameters), imported and used (not a property after ``.``, not an object key). A name a
file uses, does not declare and does not import, that another script declares at top level, is
reported. It errs on the side of declarations: a parameter or local anywhere in a file hides that name
in the whole file, so a file that shadows a name somewhere and uses the other file's elsewhere passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest

from central.app import create_app as create_hub
from central.settings import ConsoleSettings, HubSettings
from central.settings import MqttSettings as HubMqtt
from edge.app import create_app as create_edge
from edge.settings import CameraSettings, EdgeSettings, MqttSettings, TabletSettings

ROOT = Path(__file__).resolve().parent.parent
COMMON = ROOT / "runtime" / "static"
HUB_STATIC = ROOT / "central" / "static"
EDGE_STATIC = ROOT / "edge" / "static"
SERVICE_WORKER = EDGE_STATIC / "sw.js"
#: Each page, and where the URL prefixes its scripts use are served from.
PAGES = {
    HUB_STATIC / "console.html": {"/static/": HUB_STATIC, "/common/": COMMON},
    EDGE_STATIC / "tablet.html": {"/static/": EDGE_STATIC, "/common/": COMMON},
    COMMON / "login.html": {"/common/": COMMON},
}

KEYWORDS = frozenset(
    "await break case catch class const continue debugger default delete do else export extends false "
    "finally for function if import in instanceof let new null of return static super switch this throw "
    "true try typeof undefined var void while with yield async as from".split()
)
# After one of these a "/" starts a regular expression; after a name, number or closing bracket it divides.
REGEX_AFTER_NAMES = frozenset(
    "return typeof case do else in of new delete void throw instanceof yield await".split()
)
STRING = re.compile(r""""(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'""")
COMPOUND = frozenset(("+", "-", "*", "/", "%", "|", "&", "||", "&&", "??"))  # x += 1, x ||= y ...
NAME = re.compile(r"[A-Za-z_$][\w$]*")
NUMBER = re.compile(r"\d[\w.]*")


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "punct", "str" (its text is the string's content), "regex", "template"
    text: str


def tokens(source: str) -> list[Token]:
    """The code's tokens: comments dropped, strings kept as one token, template text dropped (the code in
    its ``${...}`` kept), regular expressions as one token."""
    out: list[Token] = []
    resume: list[int] = []  # brace depths at which a template's ${...} ends
    braces = 0
    i, n = 0, len(source)

    def template(i: int) -> tuple[int, bool]:
        """Skip template text from i; return where it stopped and whether at a ${ (else at the closing `)."""
        while i < n:
            if source[i] == "\\":
                i += 2
            elif source[i] == "`":
                return i + 1, False
            elif source.startswith("${", i):
                return i + 2, True
            else:
                i += 1
        raise ValueError("unterminated template literal")

    def regex_allowed() -> bool:
        if not out:
            return True
        last = out[-1]
        if last.kind == "name":
            return last.text in REGEX_AFTER_NAMES
        return last.kind == "punct" and last.text not in (")", "]", "}")

    while i < n:
        c = source[i]
        if c.isspace():
            i += 1
        elif source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
        elif source.startswith("/*", i):
            i = source.index("*/", i) + 2
        elif c in "\"'":
            m = STRING.match(source, i)
            assert m, f"unterminated string at {i}"
            out.append(Token("str", m.group()[1:-1]))
            i = m.end()
        elif c == "`" or (c == "}" and resume and braces == resume[-1]):
            if c == "}":
                resume.pop()
            i, in_code = template(i + 1)
            if in_code:
                resume.append(braces)
            else:
                out.append(Token("template", ""))
        elif c == "/" and regex_allowed():
            j, in_class = i + 1, False
            while source[j] != "/" or in_class:
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                elif source[j] == "\n":
                    raise ValueError(f"unterminated regular expression at {i}")
                j += 1
            out.append(Token("regex", source[i : j + 1]))
            i = NAME.match(source, j + 1).end() if NAME.match(source, j + 1) else j + 1  # flags
        elif m := NAME.match(source, i):
            out.append(Token("name", m.group()))
            i = m.end()
        elif m := NUMBER.match(source, i):
            i = m.end()
        else:
            for punct in ("...", "?.", "=>", "==", "!=", "<=", ">=", "&&", "||", "??"):
                if source.startswith(punct, i):
                    break
            else:
                punct = c
            braces += {"{": 1, "}": -1}.get(punct, 0)
            out.append(Token("punct", punct))
            i += len(punct)
    return out


def _matching(toks: list[Token], start: int) -> int:
    """The index of the bracket closing the one at ``start``."""
    depth = 0
    for k in range(start, len(toks)):
        if toks[k].kind == "punct" and toks[k].text in "([{":
            depth += 1
        elif toks[k].kind == "punct" and toks[k].text in ")]}":
            depth -= 1
            if depth == 0:
                return k
    raise ValueError("unbalanced brackets")


def _bound(toks: list[Token]) -> set[str]:
    """The names a binding (a parameter list or a destructuring pattern) declares: every name that is not a
    key (followed by ``:``) and not a property (after ``.``)."""
    names = set()
    for k, tok in enumerate(toks):
        if tok.kind != "name" or tok.text in KEYWORDS:
            continue
        after = toks[k + 1].text if k + 1 < len(toks) else ""
        before = toks[k - 1].text if k else ""
        if after != ":" and before not in (".", "?."):
            names.add(tok.text)
    return names


def _split(toks: list[Token]) -> list[list[str]]:
    """``a, b as c`` -> [["a"], ["b", "as", "c"]]"""
    groups: list[list[str]] = [[]]
    for tok in toks:
        if tok.text == ",":
            groups.append([])
        else:
            groups[-1].append(tok.text)
    return [g for g in groups if g]


@dataclass
class Module:
    path: Path
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)
    """local name -> (specifier, exported name)"""
    specifiers: list[str] = field(default_factory=list)
    exports: set[str] = field(default_factory=set)
    top_level: set[str] = field(default_factory=set)
    declared: set[str] = field(default_factory=set)
    """Declared anywhere in the file (top level, locals, parameters, imports)."""
    used: set[str] = field(default_factory=set)
    window_set: set[str] = field(default_factory=set)
    window_read: set[str] = field(default_factory=set)


def _declarators(toks: list[Token], k: int) -> set[str]:
    """The names the ``const``/``let``/``var`` at ``k`` declares: ``a = 1, [b, c] = f(), {d, e: f} = g``."""
    names: set[str] = set()
    depth = 0
    j = k + 1
    expect_binding = True
    while j < len(toks):
        tok = toks[j]
        if expect_binding:
            if tok.kind == "punct" and tok.text in "{[":
                end = _matching(toks, j)
                names |= _bound(toks[j + 1 : end])
                j = end + 1
            elif tok.kind == "name":
                names.add(tok.text)
                j += 1
            expect_binding = False
            continue
        if tok.kind == "punct" and tok.text in "([{":
            depth += 1
        elif tok.kind == "punct" and tok.text in ")]}":
            depth -= 1
            if depth < 0:
                break
        elif depth == 0 and (tok.text == ";" or (tok.kind == "name" and tok.text in ("of", "in"))):
            break
        elif depth == 0 and tok.text == ",":
            expect_binding = True
        j += 1
    return names


def analyse(path: Path) -> Module:
    toks = tokens(path.read_text(encoding="utf-8"))
    mod = Module(path)
    skip: set[int] = set()  # tokens of import and export { } statements
    depth = 0
    for k, tok in enumerate(toks):
        prev = toks[k - 1] if k else Token("punct", ";")
        nxt = toks[k + 1] if k + 1 < len(toks) else Token("punct", ";")
        if tok.kind == "punct" and tok.text in "([{":
            depth += 1
        elif tok.kind == "punct" and tok.text in ")]}":
            depth -= 1
        if tok.kind != "name" or prev.text in (".", "?."):
            if tok.kind == "name" and prev.text in (".", "?.") and k >= 2 and toks[k - 2].text == "window":
                setting = nxt.text == "=" or (nxt.text in COMPOUND and toks[k + 2].text == "=")
                (mod.window_set if setting else mod.window_read).add(tok.text)
            continue
        if tok.text == "import" and depth == 0:
            end = next(j for j in range(k, len(toks)) if toks[j].kind == "str")
            skip.update(range(k, end + 1))
            spec = toks[end].text
            mod.specifiers.append(spec)
            inner = toks[k + 1 : end]
            assert not inner or (
                inner[0].text == "{" and inner[-2].text == "}" and inner[-1].text == "from"
            ), f'{path.name}: only `import {{ ... }} from` and `import "..."` are checked'
            for group in _split(inner[1:-2]):
                mod.imports[group[-1]] = (spec, group[0])  # a or a as b
            continue
        if k in skip:
            continue
        if tok.text == "export" and depth == 0:
            if nxt.text == "{":
                end = _matching(toks, k + 1)
                skip.update(range(k, end + 1))
                for group in _split(toks[k + 2 : end]):
                    mod.exports.add(group[-1])  # a or a as b
            elif nxt.text in ("const", "let", "var"):
                mod.exports |= _declarators(toks, k + 1)
            else:  # export [async] function name, export class name, export default ...
                after = toks[k + 1 : k + 4]
                mod.exports.add(next(t.text for t in after if t.kind == "name" and t.text not in KEYWORDS))
            continue
        if tok.text in ("const", "let", "var"):
            names = _declarators(toks, k)
            mod.declared |= names
            if depth == 0:
                mod.top_level |= names
        elif tok.text in ("function", "class"):
            j = k + 1
            if toks[j].text == "*":
                j += 1
            if toks[j].kind == "name":
                mod.declared.add(toks[j].text)
                if depth == 0:
                    mod.top_level.add(toks[j].text)
                j += 1
            if tok.text == "function" and toks[j].text == "(":
                mod.declared |= _bound(toks[j + 1 : _matching(toks, j)])
        elif tok.text == "catch" and nxt.text == "(":
            mod.declared |= _bound(toks[k + 2 : _matching(toks, k + 1)])
        elif tok.text not in KEYWORDS:
            if nxt.text == "=>":
                mod.declared.add(tok.text)  # x => ...
            elif not (nxt.text == ":" and prev.text in ("{", ",")):  # not an object key
                mod.used.add(tok.text)
    for k, tok in enumerate(toks):  # (a, b) => ...: the parameters of every arrow function
        if tok.text == "=>" and toks[k - 1].text == ")":
            depth, j = 0, k - 1
            while True:
                depth += {")": 1, "(": -1}.get(toks[j].text, 0) if toks[j].kind == "punct" else 0
                if depth == 0:
                    break
                j -= 1
            mod.declared |= _bound(toks[j + 1 : k - 1])
    mod.declared |= mod.top_level | set(mod.imports)
    return mod


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [f"<{tag} {name}>" for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data.strip()[:60])


def page_scripts(html: Path) -> _Page:
    parser = _Page()
    parser.feed(html.read_text(encoding="utf-8"))
    return parser


def served(url: str, prefixes: dict[str, Path]) -> Path:
    for prefix, folder in prefixes.items():
        if url.startswith(prefix):
            return folder / url[len(prefix) :]
    raise AssertionError(f"{url} is not under {sorted(prefixes)}")


def module_graph(html: Path, prefixes: dict[str, Path]) -> dict[str, Module]:
    """Every module a page loads, by URL: its script tags and, transitively, their imports."""
    found: dict[str, Module] = {}
    todo = [str(s["src"]) for s in page_scripts(html).scripts if s.get("src")]
    while todo:
        url = todo.pop()
        if url in found:
            continue
        path = served(url, prefixes)
        assert path.is_file(), f"{html.name}: {url} is loaded but {path} does not exist"
        found[url] = analyse(path)
        for spec in found[url].specifiers:
            assert spec.startswith(("/", "./", "../")), f"{path.name}: bare specifier {spec!r}"
            todo.append(urljoin(url, spec))
    return found


def all_scripts() -> list[Path]:
    scripts = [p for folder in (HUB_STATIC, EDGE_STATIC, COMMON) for p in sorted(folder.glob("*.js"))]
    return [p for p in scripts if p != SERVICE_WORKER]  # a worker script: no page loads it, it shares nothing


@pytest.mark.parametrize("html", list(PAGES), ids=lambda p: p.name)
def test_every_script_is_a_module(html):
    page = page_scripts(html)
    assert page.scripts, f"{html.name} loads no script"
    classic = [s.get("src") for s in page.scripts if s.get("type") != "module"]
    assert not classic, f"{html.name} loads scripts without type=module: {classic}"
    assert not page.inline, f"{html.name} has inline scripts: {page.inline}"
    assert not page.handlers, f"{html.name} has inline handlers (use addEventListener): {page.handlers}"


@pytest.mark.parametrize("html", list(PAGES), ids=lambda p: p.name)
def test_imports_name_files_and_exports_that_exist(html):
    graph = module_graph(html, PAGES[html])
    missing = []
    for url, mod in graph.items():
        for local, (spec, name) in mod.imports.items():
            target = graph[urljoin(url, spec)]
            if name not in target.exports:
                missing.append(
                    f"{mod.path.name} imports {name} (as {local}) from {spec}, which does not export it"
                )
    assert not missing, "\n".join(missing)


def test_every_script_is_loaded_by_a_page():
    loaded = {mod.path for html, prefixes in PAGES.items() for mod in module_graph(html, prefixes).values()}
    orphans = [p.name for p in all_scripts() if p not in loaded]
    assert not orphans, f"scripts no page loads as a module (nor imports): {orphans}"


def cross_file_uses(scripts: list[Path]) -> list[str]:
    """Names a script uses that another declares at top level, without importing them; and window.*
    properties a script reads that another sets."""
    mods = [analyse(p) for p in scripts]
    problems = []
    for mod in mods:
        for other in mods:
            if other is mod:
                continue
            for name in sorted((mod.used - mod.declared) & other.top_level):
                problems.append(f"{mod.path.name} uses {name} of {other.path.name} without importing it")
            for name in sorted(mod.window_read & (other.window_set - mod.window_set)):
                problems.append(f"{mod.path.name} reads window.{name}, set by {other.path.name}")
    return problems


def test_no_script_uses_another_s_names_without_importing_them():
    problems = cross_file_uses(all_scripts())
    assert not problems, "\n".join(problems)


def test_the_lexical_check_sees_what_it_should(tmp_path):
    """The check itself: a use through a global is reported, an import, a local or a property is not."""
    (tmp_path / "a.js").write_text(
        "export function shared(x) { return x; }\nfunction helper() {}\nexport const LIMIT = 3, OTHER = 4;\n"
        "window.hook = () => 1;\n",
        encoding="utf-8",
    )
    (tmp_path / "b.js").write_text(
        'import { shared } from "./a.js";\n'
        "// helper() in a comment, and in a string: 'helper()' and `helper ${shared(1)}`\n"
        "const re = /helper/g; const o = { helper: 1 }; o.helper; shared(OTHER);\n"
        "function f(LIMIT) { return LIMIT; }\nwindow.hook();\n",
        encoding="utf-8",
    )
    (tmp_path / "c.js").write_text(
        "helper();\n[1].map((shared) => shared);\nconst s = `n ${LIMIT}`;\n", encoding="utf-8"
    )
    problems = cross_file_uses([tmp_path / "a.js", tmp_path / "b.js", tmp_path / "c.js"])
    assert problems == [
        "b.js uses OTHER of a.js without importing it",
        "b.js reads window.hook, set by a.js",
        "c.js uses LIMIT of a.js without importing it",
        "c.js uses helper of a.js without importing it",
    ]
    assert analyse(tmp_path / "a.js").exports == {"shared", "LIMIT", "OTHER"}


def test_the_service_worker_caches_every_module_of_the_tablet():
    shell = re.search(r"const SHELL = \[(.*?)\];", SERVICE_WORKER.read_text(encoding="utf-8"), re.S)
    assert shell, "sw.js has no SHELL list"
    cached = set(STRING.findall(shell.group(1)))
    cached = {s[1:-1] for s in cached}
    tablet = EDGE_STATIC / "tablet.html"
    missing = sorted(set(module_graph(tablet, PAGES[tablet])) - cached)
    assert not missing, f"tablet modules the service worker does not cache: {missing}"


async def _assert_scripts_are_javascript(client, urls):
    for url in urls:
        resp = await client.get(url)
        assert resp.status == 200, url
        assert resp.content_type == "text/javascript", (url, resp.content_type)
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_hub_serves_scripts_as_javascript(aiohttp_client, tmp_path, dead_broker_url):
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=HubMqtt(url=dead_broker_url),
        console=ConsoleSettings(token="246810"),
    )
    client = await aiohttp_client(create_hub(settings))
    await _assert_scripts_are_javascript(
        client,
        [f"/static/{p.name}" for p in HUB_STATIC.glob("*.js")]
        + [f"/common/{p.name}" for p in COMMON.glob("*.js")],
    )


async def test_the_edge_serves_scripts_as_javascript(aiohttp_client, tmp_path, dead_broker_url):
    settings = EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        cameras=[CameraSettings(id="lane1", token="cam-secret", lane=1)],
        tablet=TabletSettings(token="123456"),
    )
    client = await aiohttp_client(create_edge(settings))
    await _assert_scripts_are_javascript(
        client,
        [f"/static/{p.name}" for p in EDGE_STATIC.glob("*.js")]
        + [f"/common/{p.name}" for p in COMMON.glob("*.js")]
        + ["/sw.js"],
    )
