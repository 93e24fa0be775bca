"""The layout rules of DESIGN.md, enforced: pure protocols, edge and hub never import each other, the
hub's subpackages import only downward, and nothing outside ``cordon/`` reaches into ``cordon/``."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {
    "aiohttp",
    "aiomqtt",
    "paho",
    "sqlite3",
    "sqlite_utils",
    "socket",
    "cv2",
    "requests",
    "urllib",
    "http",
    "subprocess",
    "asyncio",
    "threading",
}
ALLOWED = {
    "protocols": {"protocols"},
    "runtime": {"runtime"},
    "edge": {"protocols", "runtime", "edge"},
    "central": {"protocols", "runtime", "central"},
}
PROJECT = {"protocols", "runtime", "edge", "central", "cordon", "tests"}
#: runtime/ holds no domain logic: of protocols/ it uses only the base of the one exception tree.
RUNTIME_MAY_USE = {"protocols.errors"}


#: The hub's parts from the bottom up: each may import only itself and the parts before it.
CENTRAL_LAYERS = (
    "settings",
    "mqtt",
    "people",
    "record",
    "watchlists",
    "intel",
    "ingest",
    "alerts",
    "web",
    "lifecycle",
    "app",
)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, in full (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def central_part(module: str) -> str | None:
    """The hub part a dotted module name belongs to (``central.record.sqlite.store`` -> ``record``)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "central" and len(parts) > 1 and parts[1] in CENTRAL_LAYERS else None


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_design_allows(package):
    bad = {}
    for path in (ROOT / package).rglob("*.py"):
        found = imported_modules(path)
        if package == "runtime":
            found = {m for m in found if not any(m == a or m.startswith(a + ".") for a in RUNTIME_MAY_USE)}
        wrong = ({name.split(".")[0] for name in found} & PROJECT) - ALLOWED[package]
        if wrong:
            bad[str(path.relative_to(ROOT))] = sorted(wrong)
    assert not bad, f"{package} imports what it must not: {bad}"


def test_protocols_do_no_io():
    bad = {}
    for path in (ROOT / "protocols").rglob("*.py"):
        if path.name == "asyncapi_gen.py":
            continue  # a development tool that renders the document; not imported by either side
        wrong = imports(path) & IO_MODULES
        if wrong:
            bad[path.name] = sorted(wrong)
    assert not bad, f"protocols/ must stay free of I/O: {bad}"


def test_every_hub_module_belongs_to_a_known_part():
    strays = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "central").rglob("*.py")
        if p.parent != ROOT / "central" or p.stem not in ("__init__", *CENTRAL_LAYERS)
        if p.relative_to(ROOT / "central").parts[0] not in CENTRAL_LAYERS
    ]
    assert not strays, f"put these in one of central's parts {CENTRAL_LAYERS}: {strays}"


def test_hub_modules_import_absolutely():
    """STYLE.md: absolute imports, so the layering below sees every import."""
    relative = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "central").rglob("*.py")
        if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(p.read_text("utf-8"))))
    ]
    assert not relative, f"relative imports in {relative}"


def test_hub_parts_import_only_downward():
    bad = {}
    for path in (ROOT / "central").rglob("*.py"):
        rel = path.relative_to(ROOT / "central")
        here = rel.parts[0].removesuffix(".py")
        if here not in CENTRAL_LAYERS:
            continue
        rank = CENTRAL_LAYERS.index(here)
        upward = {
            m
            for m in imported_modules(path)
            if (part := central_part(m)) and CENTRAL_LAYERS.index(part) > rank
        }
        if upward:
            bad[str(rel)] = sorted(upward)
    assert not bad, f"hub parts import upward (order: {' < '.join(CENTRAL_LAYERS)}): {bad}"


@pytest.mark.parametrize("package", ["protocols", "runtime", "edge", "central"])
def test_nothing_outside_cordon_reaches_into_it(package):
    """Not by import, nor by path: the command line composes the sides, they never lean on it."""
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if (
            "cordon" in imports(path)
            or 'files("cordon")' in text
            or '/ "cordon"' in text
            or "cordon/data" in text
        ):
            bad.append(str(path.relative_to(ROOT)))
    assert not bad, f"these reach into cordon/: {bad}"


def test_the_layout_check_sees_an_upward_import(tmp_path):
    """The rule above catches what it is for (a record module importing the web)."""
    probe = tmp_path / "probe.py"
    probe.write_text("from central.web import keys\nimport central.ingest.pipeline\n", encoding="utf-8")
    assert {central_part(m) for m in imported_modules(probe)} >= {"web", "ingest"}
