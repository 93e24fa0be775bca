"""The previous release in an environment of its own, for tests/test_compat_system.py.

``RELEASES`` (at the repository's root) names each release by its commit; the last one is the release
before this checkout. :func:`release_python` checks that commit out of this clone's history with
``git archive`` (no worktree, nothing left behind in the clone), installs it with pip (editable, as
``make`` does) into a virtual environment of its own beside it, and returns that environment's Python. The environment is kept under
``~/.cache/cordon-compat/<commit>`` (or ``$CORDON_COMPAT_CACHE/<commit>``), so only the first run for
a release pays for it. It gets the same versions of the libraries as the environment running the
tests (pip constraints), so the two sides differ in Cordon's code alone.

``make test`` builds it before pytest starts (``python -m tests.compat``), so its minute or so is
not spent inside a test's timeout; a test run without make builds it in the fixture.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RELEASES = REPO / "RELEASES"
_LINE = re.compile(r"^([0-9a-f]{40})\s+(\S+)")


class CompatError(RuntimeError):
    """The previous release cannot be run: the message says why and what to do."""


@dataclass(frozen=True)
class Release:
    commit: str
    name: str


def releases(path: Path = RELEASES) -> list[Release]:
    """Every release ``RELEASES`` names, oldest first."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line.strip())
        if match is None:
            raise CompatError(f"{path}:{number}: expected '<40-hex commit> <name>', got {line!r}")
        out.append(Release(match[1], match[2]))
    if not out:
        raise CompatError(f"{path} names no release")
    return out


def previous_release() -> Release:
    return releases()[-1]


def cache_root() -> Path:
    configured = os.environ.get("CORDON_COMPAT_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "cordon-compat"


def _git(*args: str, capture: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=capture, check=False)


def check_commit(release: Release) -> None:
    """Fail with what to do when this clone lacks the release's commit (a shallow clone, say)."""
    if _git("cat-file", "-e", f"{release.commit}^{{commit}}").returncode != 0:
        shallow = _git("rev-parse", "--is-shallow-repository").stdout.decode().strip() == "true"
        raise CompatError(
            f"release {release.name} ({release.commit}), named in RELEASES as the previous release, is not "
            f"in this clone's history{' (it is a shallow clone)' if shallow else ''}: the compatibility "
            "test runs that release's code and needs it. Fetch the history: `git fetch --unshallow` "
            f"(or `git fetch origin {release.commit}`)."
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per release at a time, across processes (several test runs may share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _constraints() -> str:
    """The library versions of the environment running this, as pip constraints (Cordon itself left out)."""
    pins = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "cordon":
            pins.add(f"{name}=={dist.version}")
    return "\n".join(sorted(pins)) + "\n"


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CompatError(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def release_python(release: Release | None = None, *, say: bool = False) -> Path:
    """The Python of the release's own environment, built first when the cache has none."""
    release = release or previous_release()
    check_commit(release)
    home = cache_root() / release.commit
    python = home / "venv" / "bin" / "python"
    ready = home / "ready"
    if ready.exists() and python.exists():
        return python
    with _locked(cache_root() / f"{release.commit}.lock"):
        if ready.exists() and python.exists():
            return python  # another process built it while this one waited
        started = time.monotonic()
        if say:
            print(f"building release {release.name} ({release.commit[:10]}) in {home} ...", flush=True)
        shutil.rmtree(home, ignore_errors=True)  # a build that died half-way
        source = home / "src"
        source.mkdir(parents=True)
        archive = _git("archive", "--format=tar", release.commit)
        if archive.returncode != 0:
            raise CompatError(f"git archive {release.commit} failed: {archive.stderr.decode()[-2000:]}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                tar.extractall(source, filter="data")
            else:
                tar.extractall(source)  # noqa: S202 - our own repository's commit
        _run([sys.executable, "-m", "venv", str(home / "venv")], "creating the release's environment")
        constraints = home / "constraints.txt"
        constraints.write_text(_constraints(), encoding="utf-8")
        # Editable, as `make` installs it: a release's package data need not be complete (r1 leaves
        # runtime/static out of its wheel), and its source stays beside its environment.
        _run(
            [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), "-e", str(source)],
            f"installing release {release.name} into its environment",
        )
        ready.write_text(f"{release.name} {release.commit}\n", encoding="utf-8")
        if say:
            print(f"built in {time.monotonic() - started:.0f} s", flush=True)
    return python


def main() -> None:
    """Build (or find) the previous release's environment and print its Python; make test runs this."""
    try:
        print(release_python(say=True))
    except CompatError as exc:
        sys.exit(f"tests/compat.py: {exc}")


if __name__ == "__main__":
    main()
