"""The layout rules of DESIGN.md, enforced: pure protocols, and edge and hub never import each other."""

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


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_the_design_allows(package):
    bad = {}
    for path in (ROOT / package).rglob("*.py"):
        wrong = (imports(path) & PROJECT) - ALLOWED[package]
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
