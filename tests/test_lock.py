"""deploy/requirements.lock pins every dependency of pyproject.toml, and its dependencies, each with hashes:
what `pip install --require-hashes` on an offline box needs (`make lock` regenerates it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "deploy" / "requirements.lock"


def pins() -> dict[str, tuple[Version, int]]:
    """name -> (version, number of hashes) of every requirement in the lock."""
    out: dict[str, tuple[Version, int]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text(encoding="utf-8")):
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", entry)
        if m:
            out[m.group(1).lower().replace("_", "-")] = (Version(m.group(2)), entry.count("--hash=sha256:"))
    return out


def test_every_dependency_is_locked_with_hashes():
    locked = pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    problems = []
    for text in project["dependencies"]:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        if name not in locked:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{req.name} {locked[name][0]} does not satisfy {req.specifier}")
    assert not problems, "; ".join(problems) + ": run `make lock`"
    assert len(locked) > len(project["dependencies"])  # their dependencies are pinned too
    unhashed = [name for name, (_, hashes) in locked.items() if hashes == 0]
    assert not unhashed, f"pins without a hash: {unhashed}"
    # A platform wheel is locked for every platform: numpy has many files, so many hashes.
    assert locked["numpy"][1] > 10 and locked["opencv-python-headless"][1] >= 4
