"""A stand-in for ``systemctl`` in tests/test_deploy_doc.py, where no systemd runs: it starts a unit the way
its unit file and drop-ins say (Environment, ExecStartPre, ExecStart, User, Group; a oneshot in the
foreground), so the runbook's ``systemctl enable --now cordon-hub`` starts the installed unit's own
command. Only what the runbook uses: start, restart, enable [--now], stop, daemon-reload, is-active.
The hardening directives are not applied here (systemd-analyze verify checks them, nothing runs them).

    python tests/unitrun.py STATE_DIR systemctl-arguments...
"""

from __future__ import annotations

import os
import pwd
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

UNIT_DIRS = [Path("/etc/systemd/system"), Path("/usr/lib/systemd/system")]


def unit_lines(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit, its drop-ins after it, in order."""
    files = [d / name for d in UNIT_DIRS if (d / name).is_file()][-1:]
    if not files:
        raise SystemExit(f"unitrun: no unit {name}")
    for d in reversed(UNIT_DIRS):
        files += sorted((d / f"{name}.d").glob("*.conf"))
    out, section = [], ""
    for path in files:
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
            elif "=" in line:
                key, value = line.split("=", 1)
                out.append((section, key.strip(), value.strip()))
    return out


def environment(lines: list[tuple[str, str, str]]) -> dict[str, str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    for section, key, value in lines:
        if section == "Service" and key == "Environment":
            for word in shlex.split(value):
                k, v = word.split("=", 1)
                env[k] = v
    return env


def expand(command: str, env: dict[str, str]) -> list[str]:
    command = command.lstrip("-@+!:")
    out = []
    for word in shlex.split(command):
        if word.startswith("$") and word[1:] in env:
            out += shlex.split(env[word[1:]])  # $VAR splits into words, as systemd does
        else:
            out.append(word.replace("${MAINPID}", ""))
    return out


def start(state: Path, name: str) -> None:
    lines = unit_lines(name)
    service = {k: v for s, k, v in lines if s == "Service" and k not in ("ExecStartPre", "Environment")}
    env = environment(lines)
    user = service.get("User")
    prefix = ["runuser", "-u", user, "--"] if user else []
    for s, k, v in lines:
        if s == "Service" and k == "ExecStartPre":
            subprocess.run(expand(v, env), check=True, env=env)
    for key in ("StateDirectory", "RuntimeDirectory", "LogsDirectory"):
        base = {"StateDirectory": "/var/lib", "RuntimeDirectory": "/run", "LogsDirectory": "/var/log"}[key]
        for d in service.get(key, "").split():
            path = Path(base) / d
            path.mkdir(parents=True, exist_ok=True)
            if user:
                info = pwd.getpwnam(user)
                os.chown(path, info.pw_uid, info.pw_gid)
    command = prefix + expand(service["ExecStart"], env)
    log = (state / f"{name}.log").open("ab")
    if service.get("Type") == "oneshot":
        done = subprocess.run(command, stdout=log, stderr=log, env=env)
        if done.returncode != 0:
            raise SystemExit(
                f"unitrun: {name} exited {done.returncode}: {(state / f'{name}.log').read_text()[-2000:]}"
            )
        return
    proc = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
    (state / f"{name}.pid").write_text(str(proc.pid))
    time.sleep(0.5)
    if proc.poll() is not None:
        raise SystemExit(f"unitrun: {name} exited at once: {(state / f'{name}.log').read_text()[-2000:]}")


def stop(state: Path, name: str) -> None:
    pid_file = state / f"{name}.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    signals = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
    kill = next((v for s, k, v in unit_lines(name) if k == "KillSignal"), "SIGTERM")
    try:
        os.killpg(pid, signals.get(kill, signal.SIGTERM))
        for _ in range(300):
            os.killpg(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink()


def main(argv: list[str]) -> None:
    state = Path(argv[0])
    state.mkdir(parents=True, exist_ok=True)
    args = [a for a in argv[1:] if not a.startswith("--") or a == "--now"]
    verb, names = args[0], [n if "." in n else f"{n}.service" for n in args[1:] if n != "--now"]
    if verb == "daemon-reload":
        return
    for name in names:
        if verb in ("start", "restart") or (verb == "enable" and "--now" in args):
            stop(state, name)
            start(state, name)
        elif verb == "stop":
            stop(state, name)
        elif verb == "is-active":
            pid_file = state / f"{name}.pid"
            raise SystemExit(0 if pid_file.exists() else 3)
        elif verb != "enable":
            raise SystemExit(f"unitrun: {verb} is not supported")


if __name__ == "__main__":
    main(sys.argv[1:])
