"""An installed Cordon (a wheel, not the editable install of `make`) has every file its code reads.

The compatibility test found the first release unable to start from a wheel: `runtime/static` (the
login page every web app serves) was not package data, and an editable install hides that.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocols", "runtime", "edge", "central", "cordon")


def _package_of(path: Path) -> Path:
    """The innermost package (a folder with __init__.py) holding ``path``."""
    folder = path.parent
    while not (folder / "__init__.py").exists():
        folder = folder.parent
    return folder


def test_every_file_the_packages_hold_is_in_the_wheel():
    globs: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"
    ]["setuptools"]["package-data"]
    left_out = []
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
                continue
            package = _package_of(path)
            name = ".".join(package.relative_to(ROOT).parts)
            inside = path.relative_to(package).as_posix()
            # setuptools' globs: "*" does not cross a folder, so "static/*" leaves static/icons out.
            if not any(
                fnmatch.fnmatch(inside, pattern) and inside.count("/") == pattern.count("/")
                for pattern in globs.get(name, [])
            ):
                left_out.append(f"{path.relative_to(ROOT)} (package {name})")
    assert not left_out, (
        "not package data in pyproject.toml, so missing from an installed Cordon: " + ", ".join(left_out)
    )
