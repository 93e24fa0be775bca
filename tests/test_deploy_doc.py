"""docs/deploy.md cannot drift from the code: its ``sh runnable`` blocks run here exactly as written, its
``sh manual`` blocks are valid shell whose ``cordon`` commands exist with those options, and any other
shell block fails.

The runnable blocks build a lab box: the wheelhouse (this machine's architecture only, its downloads kept
in ``~/.cache/cordon-deploy-<lock hash>/``), the install, the CA, the broker, the hub's first start, the
first admin, a backup and a restore drill. They run as root inside a private mount and network namespace
(``unshare``) in which /etc is a copy and /opt, /srv, /var/lib, /var/backups, /var/log and /run are new
folders, so the lines write /etc/cordon or /opt/cordon as on a real box without touching this one, and
``systemctl`` is tests/unitrun.py, which starts a unit's own ExecStart. The installed units are then
checked with ``systemd-analyze verify`` in the same namespace, where their paths exist.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cordon.cli import build_parser

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "deploy.md"
FENCE = re.compile(r"^```(\S*)[ \t]*(.*)$")
SHELLS = {"sh", "bash", "shell", "console", "zsh"}


def blocks(text: str) -> list[tuple[str, str, str, int]]:
    """(language, marker, body, line) of every fenced block."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group(1):
            start, body = i + 1, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((m.group(1), m.group(2).strip(), "\n".join(body) + "\n", start))
        i += 1
    return out


def shell_blocks() -> list[tuple[str, str, int]]:
    return [(marker, body, line) for lang, marker, body, line in blocks(DOC.read_text()) if lang in SHELLS]


def test_every_shell_block_is_marked():
    found = shell_blocks()
    assert found, "docs/deploy.md has no shell blocks"
    unmarked = [
        line for marker, _, line in found if marker not in ("runnable", "runnable connected", "manual")
    ]
    assert not unmarked, (
        f"docs/deploy.md lines {unmarked}: mark each shell block `sh runnable` or `sh manual`"
    )


def test_an_unmarked_block_is_caught(tmp_path):
    text = "x\n```sh\ncordon --version\n```\n```sh runnable\ntrue\n```\n"
    assert [(lang, marker) for lang, marker, _, _ in blocks(text)] == [("sh", ""), ("sh", "runnable")]


def cordon_commands(body: str) -> list[list[str]]:
    """Every ``cordon ...`` invocation of a block, variables of the doc put in, as argv lists."""
    assigned = dict(re.findall(r'^\s*([A-Z]+)="([^"]*)"', DOC.read_text(), re.M))
    commands = []
    for raw in body.replace("\\\n", " ").splitlines():
        line = re.sub(r"\$\(([^()]*)\)", "VALUE", raw)
        line = re.sub(r"\$\{?([A-Za-z_]+)\}?", lambda m: assigned.get(m.group(1), "VALUE"), line)
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise AssertionError(f"cannot split {raw!r}: {exc}") from None
        # `cordon` in a command's place: first, or after a separator or runuser's `--`
        starts = [i + 1 for i, w in enumerate(words) if w in ("|", "||", "&&", ";", "--", "!")]
        for i in [0, *starts]:
            if i < len(words) and words[i] == "cordon":
                rest = words[i + 1 :]
                end = next((j for j, w in enumerate(rest) if w in ("|", "||", "&&", ";")), len(rest))
                commands.append(rest[:end])
    return commands


def test_manual_blocks_are_valid_shell_and_name_real_commands():
    parser = build_parser()
    checked = 0
    for _, body, line in shell_blocks():
        done = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        assert done.returncode == 0, f"docs/deploy.md line {line}: {done.stderr}"
        for argv in cordon_commands(body):
            if argv == ["--version"]:
                checked += 1
                continue
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"docs/deploy.md line {line}: `cordon {' '.join(argv)}` does not parse")
            checked += 1
    assert checked >= 15


def cache_dir() -> Path:
    lock = (ROOT / "deploy" / "requirements.lock").read_bytes()
    return Path.home() / ".cache" / f"cordon-deploy-{hashlib.sha256(lock).hexdigest()[:16]}"


NAMESPACE = """\
set -euo pipefail
T={t}
cp -a /etc "$T/etc"
for d in opt srv varlib varbackups varlog run units; do mkdir -p "$T/$d"; done
install -d -o mosquitto -g mosquitto "$T/varlib/mosquitto"
mount --bind "$T/etc" /etc
mount --bind "$T/opt" /opt
mount --bind "$T/srv" /srv
mkdir -p /srv/cordon-wheelhouse
mount --bind {cache} /srv/cordon-wheelhouse
mount --bind "$T/varlib" /var/lib
mount --bind "$T/varbackups" /var/backups
mount --bind "$T/varlog" /var/log
mount --bind "$T/run" /run
ip link set lo up
systemctl() {{ {python} {unitrun} "$T/units" "$@"; }}
finish() {{ rc=$?; set +e; for pid in "$T"/units/*.pid; do kill -INT -- "-$(cat "$pid")"; done 2>/dev/null; \
  sleep 2; for pid in "$T"/units/*.pid; do kill -KILL -- "-$(cat "$pid")"; done 2>/dev/null; exit $rc; }}
trap finish EXIT
cd {repo}
"""

EPILOGUE = """\
# --- the test's own checks, in the same namespace ---
systemd-analyze verify cordon-hub.service cordon-edge.service cordon-backup.service cordon-backup.timer \
  mosquitto.service haproxy.service > "$T/verify.out" 2>&1 || echo "systemd-analyze verify exited $?" >> "$T/verify.out"
{postgresql_drop_in}
systemd-analyze verify cordon-backup.service cordon-backup.timer >> "$T/verify.out" 2>&1 \
  || echo "systemd-analyze verify with the PostgreSQL drop-in exited $?" >> "$T/verify.out"
grep -q '^token = ""' /etc/cordon/hub.toml && echo "bootstrap code retired" > "$T/retired"
stat -c '%U:%G %a %n' /etc/cordon /etc/cordon/hub.toml /etc/cordon/id-secret /var/lib/cordon /var/lib/cordon/hub/hub.db > "$T/owners"
"""


def postgresql_drop_in_line() -> str:
    """The manual block's line that installs cordon-backup.service's PostgreSQL drop-in: the lab box runs it
    after the runbook (its SQLite backup is done by then), so the verify sees the unit as a PostgreSQL hub's."""
    lines = [
        line
        for marker, body, _ in shell_blocks()
        if marker == "manual"
        for line in body.splitlines()
        if line.startswith("install ") and "cordon-backup.service.d/" in line
    ]
    assert len(lines) == 1, f"docs/deploy.md should install the PostgreSQL backup drop-in once: {lines}"
    return lines[0]


def test_the_postgresql_backup_drop_in_is_the_one_documented():
    """The drop-in the doc installs is the shipped file, and the doc states every directive it sets."""
    line = postgresql_drop_in_line()
    shipped = ROOT / "deploy" / "systemd" / "cordon-backup.service.d" / "postgresql.conf"
    assert f"/deploy/systemd/{shipped.parent.name}/{shipped.name} " in line, line
    assert line.endswith(f"/etc/systemd/system/{shipped.parent.name}/{shipped.name}"), line
    directives = [
        raw.strip() for raw in shipped.read_text().splitlines() if "=" in raw and not raw.startswith("#")
    ]
    assert directives and all(f"`{d}`" in DOC.read_text() for d in directives), directives


def test_the_runnable_blocks_run_as_written(tmp_path):
    for tool in ("unshare", "systemd-analyze", "mosquitto", "haproxy"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} is missing: make system-deps installs it", pytrace=False)
    runnable = [(m, b) for m, b, _ in shell_blocks() if m.startswith("runnable")]
    connected = "".join(b for m, b in runnable if m == "runnable connected")
    offline = "".join(b for m, b in runnable if m == "runnable")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    # This run's own wheelhouse, started from the downloads kept in the cache: the cache is shared by every
    # checkout on the machine, and another checkout's run writing its Cordon wheel and SHA256SUMS there
    # between this run's two installs made the second one install anew (seen with two suites at once).
    house = tmp_path / "wheelhouse"
    shutil.copytree(cache, house)
    t = tmp_path / "box"
    t.mkdir()
    setup = NAMESPACE.format(
        t=shlex.quote(str(t)),
        cache=shlex.quote(str(house)),
        python=shlex.quote(sys.executable),
        unitrun=shlex.quote(str(ROOT / "tests" / "unitrun.py")),
        repo=shlex.quote(str(ROOT)),
    )
    # PYTHONPATH too: a checkout on it (with its cordon.egg-info) makes the box's pip think Cordon is installed
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORDON_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["WHEELHOUSE_ARCHES"] = os.uname().machine  # this machine's only: the doc's default builds both
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env["PYTHON"] = sys.executable  # pip for the download; the box's python3 is Debian's
    # 1. On "a connected machine": the wheelhouse (network), in a mount namespace of its own.
    built = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c",
         setup.replace("ip link set lo up\n", "").replace('cp -a /etc "$T/etc"\n', 'mkdir -p "$T/etc"\n')
         .replace('mount --bind "$T/etc" /etc\n', "") + connected],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, f"wheelhouse block:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    wheels = sorted(p.name for p in house.glob("*.whl"))
    assert any(w.startswith("cordon-") for w in wheels) and any(w.startswith("numpy-") for w in wheels)
    check_wheel_contents(next(house.glob("cordon-*.whl")))
    for wheel in house.glob(
        "*.whl"
    ):  # the downloads kept for the next run (Cordon's own wheel is this run's)
        if not wheel.name.startswith("cordon-") and not (cache / wheel.name).exists():
            shutil.copy2(wheel, cache / wheel.name)
    # 2. The offline box: no network but its own loopback.
    shutil.rmtree(t)
    t.mkdir()
    script = setup + offline + EPILOGUE.format(postgresql_drop_in=postgresql_drop_in_line())
    done = subprocess.run(
        ["unshare", "-m", "-n", "--propagation", "private", "bash", "-c", script],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in (t / "units").glob("*.log"))
    verify = (t / "verify.out").read_text() if (t / "verify.out").exists() else "(not run)"
    assert done.returncode == 0, (
        f"runnable blocks:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}{logs}\n--- verify\n{verify}"
    )
    out = done.stdout
    assert "install: release" in out and "already installed" in out  # the second run changed nothing
    assert re.search(r"cordon \d+\.\d+\.\d+ \(Python 3\.11", out)
    assert "cordon doctor hub: " in out
    assert re.search(r"^ok +port: cordon-hub answers", out, re.M), out
    assert re.search(r"^ok +broker: mqtts://mqtt.ring.example", out, re.M), out
    assert (t / "retired").exists(), "the bootstrap access code was not retired"
    assert '"ok": true' in out and '"audit": {"ok": true' in out  # restore drill and audit verify
    assert (t / "verify.out").read_text() == "", (t / "verify.out").read_text()
    owners = (t / "owners").read_text()
    assert "root:cordon 750 /etc/cordon\n" in owners and "root:cordon 640 /etc/cordon/hub.toml" in owners
    assert "cordon:cordon 750 /var/lib/cordon\n" in owners and "cordon:cordon" in owners.splitlines()[-1]


def check_wheel_contents(wheel: Path) -> None:
    """Every file git keeps in the packages is in the wheel (its package data was incomplete once)."""
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "protocols", "runtime", "edge", "central", "cordon"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    missing = [f for f in tracked if f not in names and not f.endswith(".py") and "/__pycache__/" not in f]
    missing += [f for f in tracked if f.endswith(".py") and f not in names]
    assert not missing, f"not in {wheel.name}: {missing}"


def test_the_namespace_script_is_valid_shell():
    script = NAMESPACE.format(
        t="/t", cache="/c", python="python", unitrun="u.py", repo="/r"
    ) + EPILOGUE.format(postgresql_drop_in=postgresql_drop_in_line())
    assert subprocess.run(["bash", "-n"], input=textwrap.dedent(script), text=True).returncode == 0
