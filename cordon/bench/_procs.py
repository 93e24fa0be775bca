"""Real parts for benchmarks: Mosquitto on a free port, ``cordon hub``/``cordon edge`` processes.

Benchmarks must not import ``tests/``; this is the little they need of it. Every helper can be
stopped more than once and kills what it started when a polite stop does not work.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
#: The deployed broker configuration, which ``Mosquitto(tls=...)`` renders for a test or benchmark.
DEPLOY_MOSQUITTO = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
HOST = "127.0.0.1"
#: Ports never to use: a system broker listens on 1883.
_AVOID = {1883}


def free_port() -> int:
    """A free TCP port on the loopback interface (never 1883)."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in _AVOID:
            return port


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


async def wait_port(port: int, within_s: float, proc: subprocess.Popen[bytes] | None = None,
                    interval: float = 0.02, what: str = "process") -> None:
    """Wait until something listens on ``port``; fail early when ``proc`` has exited."""
    deadline = time.monotonic() + within_s
    while not port_open(port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {within_s:.0f} s ({what})")
        await asyncio.sleep(interval)


def _stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass(frozen=True)
class BrokerTls:
    """The broker's files for the production config: CA, its own certificate and key, the CRL."""

    cafile: Path
    certfile: Path
    keyfile: Path
    crlfile: Path


#: Keys of deploy/mosquitto/mosquitto.conf whose value is a path on the broker machine.
_PATH_KEYS = {"cafile", "certfile", "keyfile", "crlfile", "acl_file", "password_file", "persistence_location"}


def render_production_config(text: str, *, port: int, tls: BrokerTls, workdir: Path,
                             acl_file: Path | None = None) -> str:
    """deploy/mosquitto/mosquitto.conf with only its paths and its listener's port replaced.

    Everything else (authentication, TLS options, ACL, limits) stays as deployed. A key that names a
    path this function does not know, or a second listener, raises: the tests must not quietly run a
    broker that differs from the deployed one.
    """
    paths = {"cafile": tls.cafile, "certfile": tls.certfile, "keyfile": tls.keyfile, "crlfile": tls.crlfile,
             "acl_file": acl_file or DEPLOY_MOSQUITTO / "cordon.acl", "persistence_location": f"{workdir}/"}
    out: list[str] = []
    listeners = 0
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            out.append(line)
            continue
        key = words[0]
        if key == "listener":
            listeners += 1
            if listeners > 1:
                raise ValueError(f"the production config has a second listener ({line!r}): render it too")
            out.append(f"listener {port} {HOST}")
        elif key in _PATH_KEYS:
            if key not in paths:
                raise ValueError(f"no test value for {key!r} of the production config")
            out.append(f"{key} {paths[key]}")
        elif key in ("log_dest", "user"):
            continue
        else:
            if any(w.startswith("/") for w in words[1:]):
                raise ValueError(f"unexpected path in the production config: {line!r}")
            out.append(line)
    out.append(f"log_dest file {workdir}/mosquitto.log")
    if os.geteuid() == 0:
        out.append("user root")  # otherwise Mosquitto drops to a user that cannot read our 0600 key
    return "\n".join(out) + "\n"


@dataclass
class Mosquitto:
    """A Mosquitto broker of our own on a free port.

    Without ``tls`` it is configured from nothing but this class (anonymous, plain MQTT). With
    ``tls`` it runs deploy/mosquitto/mosquitto.conf and its ACL as deployed, only paths and the port
    substituted: client certificates, no anonymous access, the CRL.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    max_queued_messages: int = 10_000
    persistence: bool = False
    #: Seconds between saves of the persistence file (Mosquitto's default is 1800): a broker killed
    #: with SIGKILL keeps only what it saved, so tests of a crash with persistence make this short.
    autosave_interval_s: int | None = None
    extra_config: str = ""
    tls: BrokerTls | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{HOST}:{self.port}"

    def config(self) -> str:
        if self.tls is not None:
            text = (DEPLOY_MOSQUITTO / "mosquitto.conf").read_text(encoding="utf-8")
            return render_production_config(text, port=self.port, tls=self.tls, workdir=self.workdir) \
                + self.extra_config
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"max_queued_messages {self.max_queued_messages}",
            f"log_dest file {self.workdir}/mosquitto.log",
            "log_type error", "log_type warning", "log_type notice",
            "sys_interval 1",
        ]
        if self.persistence and self.autosave_interval_s is not None:
            lines.append(f"autosave_interval {self.autosave_interval_s}")
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise Mosquitto drops to a user that cannot write our folder
        return "\n".join(lines) + "\n" + self.extra_config

    def start(self) -> Mosquitto:
        """Start the broker (does not wait: ``await ready()``)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        return self

    async def ready(self) -> None:
        await wait_port(self.port, 15, self.proc, what="mosquitto")

    def kill(self) -> None:
        _stop_process(self.proc, signal.SIGKILL, 10)

    def stop(self) -> None:
        _stop_process(self.proc, signal.SIGTERM, 10)


@dataclass
class CordonProcess:
    """``python -m cordon <args>`` with its own working folder and log file."""

    name: str
    args: list[str]
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    started_wall: float = 0.0
    started_mono: float = 0.0

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> CordonProcess:
        """Start the process (does not wait); the start instants are kept for the caller's clocks."""
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
        self.started_wall = time.time()
        self.started_mono = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "cordon", *self.args], stdout=log, stderr=log,
                                     env=env, cwd=self.workdir)
        log.close()
        return self

    async def wait_listening(self, within_s: float) -> None:
        try:
            await wait_port(self.port, within_s, self.proc, what=self.name)
        except (TimeoutError, RuntimeError) as exc:
            raise type(exc)(f"{exc}; log tail:\n{self.log_tail()}") from None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def rss_mb(self) -> float | None:
        return rss_mb(self.proc.pid) if self.proc is not None and self.proc.poll() is None else None

    def stop(self, timeout: float = 30) -> int | None:
        return _stop_process(self.proc, signal.SIGINT, timeout)


def rss_mb(pid: int | None = None) -> float | None:
    """Resident memory of a process (this one by default), in MiB; None when unknown."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A small TOML writer for generated configs: scalars, lists, tables, arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {toml_value(value)}")
    for key, value in tables:
        for table in value if isinstance(value, list) else [value]:
            lines.append(f"\n[[{key}]]" if isinstance(value, list) else f"\n[{key}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def hub_process(workdir: Path, broker_url: str, *, console_token: str, feed_token: str,
                csv_files: list[Path]) -> CordonProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = write_toml(workdir / "hub.toml", {
        "data_dir": str(workdir / "data"),
        "http": {"host": HOST, "port": port, "max_body_bytes": 4 * 1024 * 1024},
        "mqtt": {"url": broker_url, "client_id": f"cordon-hub-bench-{port}", "reconnect_min_s": 0.2,
                 "reconnect_max_s": 1},
        "watchlists": {"csv": [str(p) for p in csv_files]},
        "console": {"token": console_token},
        "feed": {"token": feed_token},
    })
    return CordonProcess("hub", ["hub", "--config", str(conf)], workdir, port)


def edge_process(workdir: Path, checkpoint: str, broker_url: str, *, hub_url: str, feed_token: str,
                 tablet_token: str, cameras: dict[str, str]) -> CordonProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = write_toml(workdir / "edge.toml", {
        "checkpoint": checkpoint,
        "data_dir": str(workdir / "data"),
        "http": {"host": HOST, "port": port},
        "mqtt": {"url": broker_url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "hub": {"url": hub_url, "token": feed_token},
        "tablet": {"token": tablet_token},
        "cameras": [{"id": cid, "token": tok} for cid, tok in cameras.items()],
    })
    return CordonProcess(f"edge-{checkpoint}", ["edge", "--config", str(conf)], workdir, port)
