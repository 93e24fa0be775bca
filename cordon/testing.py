"""The harness that tests and benchmarks use to run real Mosquitto, PostgreSQL, hub and edge processes.

Mosquitto on a free port (plain, or the deployed TLS config with only paths and the port replaced),
``cordon hub`` and ``cordon edge`` processes with generated configs, and the plates, CSV, HTTP and
timing helpers more than one benchmark needs. ``tests/support.py`` builds the tests' helpers on it;
benchmarks (``cordon/bench/``) import it directly and never import ``tests/``. Every helper can be
stopped more than once and kills what it started when a polite stop does not work.

``PostgresCluster`` is a PostgreSQL cluster of its own (``initdb`` in a new folder under /tmp, on a free
port of 127.0.0.1, ``fsync`` and ``synchronous_commit`` on), run as an unprivileged user through
``runuser`` when the caller is root; it never touches a server that may already listen on 5432.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from protocols.errors import CordonError

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
#: The deployed broker configuration, which ``Mosquitto(tls=...)`` renders for a test or benchmark.
DEPLOY_MOSQUITTO = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto"
HOST = "127.0.0.1"
#: Ports never to use: a system broker listens on 1883, a system PostgreSQL on 5432.
_AVOID = {1883, 5432}
PROVINCES = "鲁冀豫苏皖"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # A-Z without I and O
SERIAL = LETTERS + "0123456789"
LIST_ID = "bench-intercept"
#: A hub loading 1,000,000 entries from CSV: ~50 s on SQLite, ~300 s on PostgreSQL (an entry a statement) on 2 cores.
HUB_LOAD_TIMEOUT_S = 900.0
POLL_S = 0.02


def free_port() -> int:
    """A free TCP port on the loopback interface (never 1883 or 5432)."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in _AVOID:
            return port


def port_open(port: int) -> bool:
    """Whether something listens on ``port`` of the loopback interface."""
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


async def wait_port(
    port: int,
    within_s: float,
    proc: subprocess.Popen[bytes] | None = None,
    interval: float = 0.02,
    what: str = "process",
) -> None:
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


def deployed_broker_limits() -> dict[str, int]:
    """The per-client queue limits of deploy/mosquitto/mosquitto.conf (``max_queued_messages``,
    ``max_inflight_messages``), for a plain broker that should queue as the deployed one does."""
    limits: dict[str, int] = {}
    for line in (DEPLOY_MOSQUITTO / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        if key in ("max_queued_messages", "max_inflight_messages"):
            limits[key] = int(value.strip())
    return limits


def render_production_config(
    text: str, *, port: int, tls: BrokerTls, workdir: Path, acl_file: Path | None = None
) -> str:
    """deploy/mosquitto/mosquitto.conf with only its paths and its listener's port replaced.

    Everything else (authentication, TLS options, ACL, limits) stays as deployed. A key that names a
    path this function does not know, or a second listener, raises: the tests must not quietly run a
    broker that differs from the deployed one.
    """
    paths = {
        "cafile": tls.cafile,
        "certfile": tls.certfile,
        "keyfile": tls.keyfile,
        "crlfile": tls.crlfile,
        "acl_file": acl_file or DEPLOY_MOSQUITTO / "cordon.acl",
        "persistence_location": f"{workdir}/",
    }
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
    #: With ``tls``: an ACL in place of deploy/mosquitto/cordon.acl (the deployed one with a block added
    #: as docs/deploy.md says, for a second hub).
    acl_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{HOST}:{self.port}"

    def config(self) -> str:
        if self.tls is not None:
            text = (DEPLOY_MOSQUITTO / "mosquitto.conf").read_text(encoding="utf-8")
            return (
                render_production_config(
                    text, port=self.port, tls=self.tls, workdir=self.workdir, acl_file=self.acl_file
                )
                + self.extra_config
            )
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"max_queued_messages {self.max_queued_messages}",
            f"log_dest file {self.workdir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "sys_interval 1",
            "set_tcp_nodelay true",  # as deploy/mosquitto/mosquitto.conf
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
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    async def ready(self) -> None:
        await wait_port(self.port, 15, self.proc, what="mosquitto")

    def kill(self) -> None:
        _stop_process(self.proc, signal.SIGKILL, 10)

    def stop(self) -> None:
        _stop_process(self.proc, signal.SIGTERM, 10)


PG_BIN = Path(os.environ.get("CORDON_PG_BIN", "/usr/lib/postgresql/15/bin"))
"""Where Debian's PostgreSQL 15 keeps ``initdb``, ``pg_ctl`` and ``postgres`` (``make test`` installs it)."""
PG_RUN_AS = os.environ.get("CORDON_PG_USER", "nobody")
"""The unprivileged user a root caller runs the cluster as (PostgreSQL refuses to run as root)."""


class PostgresError(CordonError, RuntimeError):
    """The test cluster could not be made, started or stopped; the message says why (and the log's tail)."""


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster of our own: a new data folder under /tmp, a free port on 127.0.0.1 only.

    The folder is made outside pytest's temporary folder on purpose: a root caller's pytest folders are
    readable by root alone, and the server runs as ``PG_RUN_AS``, who must own its data folder. The
    superuser is ``cordon`` with a random password (SCRAM over TCP; no Unix socket). ``settings`` are
    added to postgresql.conf (a benchmark gives the server more memory); ``fsync``, ``synchronous_commit``
    and ``full_page_writes`` are always on, as in production.
    """

    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    user: str = "cordon"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    folder: Path | None = None
    started: bool = False

    @property
    def data(self) -> Path:
        assert self.folder is not None, "start() the cluster first"
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        assert self.folder is not None, "start() the cluster first"
        return self.folder / "postgres.log"

    def dsn(self, dbname: str = "postgres", *, password: bool = True) -> str:
        """A libpq connection string for one database of this cluster (``password=False``: without the
        password, as a hub's ``store.dsn`` is written)."""
        secret = f"password={self.password} " if password else ""
        return f"host={HOST} port={self.port} user={self.user} {secret}dbname={dbname} connect_timeout=10"

    def _as_server(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", PG_RUN_AS, "--", *argv] if os.geteuid() == 0 else argv

    def _run(self, argv: list[str], what: str, timeout: float = 120) -> None:
        done = subprocess.run(
            self._as_server(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise PostgresError(
                f"{what} failed ({done.returncode}): {done.stderr.strip()[-1500:]}{self.log_tail()}"
            )

    def log_tail(self, chars: int = 1500) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, AssertionError):
            return ""
        return "\n--- postgres.log ---\n" + text[-chars:]

    def start(self) -> PostgresCluster:
        """initdb (once) and start the server; returns when it takes connections."""
        if not (PG_BIN / "initdb").exists():
            raise PostgresError(
                f"PostgreSQL 15 is not installed ({PG_BIN}/initdb is missing): run `make system-deps` "
                "(Debian package postgresql), or set CORDON_PG_BIN"
            )
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="cordon-pg-", dir="/tmp"))
            pwfile = self.folder / "pwfile"
            pwfile.write_text(self.password + "\n", encoding="utf-8")
            if os.geteuid() == 0:
                owner = pwd.getpwnam(PG_RUN_AS)
                for path in (self.folder, pwfile):
                    os.chown(path, owner.pw_uid, owner.pw_gid)
            self._run(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",  # the folder is thrown away; the server itself runs with fsync on
                ],
                "initdb",
            )
            pwfile.unlink()
            conf = {
                "listen_addresses": f"'{HOST}'",
                "port": str(self.port),
                "unix_socket_directories": "''",
                "fsync": "on",
                "synchronous_commit": "on",
                "full_page_writes": "on",
                "max_connections": "60",
                "logging_collector": "off",
                **self.settings,
            }
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
                f.write("\n# cordon.testing.PostgresCluster\n")
                f.writelines(f"{key} = {value}\n" for key, value in conf.items())
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                "60",
                "start",
            ],
            "pg_ctl start",
        )
        self.started = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no checkpoint, recovery at the next start)."""
        if self.started:
            self.started = False
            self._run(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
                "pg_ctl stop",
            )

    def destroy(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its connection string."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the sessions still connected to it."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def postmaster_pid(self) -> int | None:
        """The server's main process (None when it is not running)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, AssertionError):
            return None

    def cpu_s(self) -> float | None:
        """CPU time the server's whole process tree has used so far (``tree_cpu_s`` of the postmaster)."""
        postmaster = self.postmaster_pid()
        return None if postmaster is None else tree_cpu_s(postmaster)

    def server_pids(self) -> list[int]:
        """The postmaster's pid and its children's (for CPU accounting)."""
        postmaster = self.postmaster_pid()
        if postmaster is None:
            return []
        kids = Path(f"/proc/{postmaster}/task/{postmaster}/children")
        try:
            return [postmaster, *(int(p) for p in kids.read_text().split())]
        except OSError:
            return [postmaster]


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

    scheme: str = "http"

    @property
    def base(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> CordonProcess:
        """Start the process (does not wait); the start instants are kept for the caller's clocks."""
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
        self.started_wall = time.time()
        self.started_mono = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cordon", *self.args], stdout=log, stderr=log, env=env, cwd=self.workdir
        )
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

    def rss_mb(self, field: str = "VmRSS") -> float | None:
        return rss_mb(self.proc.pid, field) if self.proc is not None and self.proc.poll() is None else None

    def reset_peak(self) -> bool:
        """Start the process's VmHWM again from its resident size now (``/proc/PID/clear_refs``);
        False when that cannot be done (no such process, or a kernel without it)."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def cpu_s(self) -> float | None:
        return cpu_s(self.proc.pid) if self.proc is not None and self.proc.poll() is None else None

    def stop(self, timeout: float = 30) -> int | None:
        return _stop_process(self.proc, signal.SIGINT, timeout)


def rss_mb(pid: int | None = None, field: str = "VmRSS") -> float | None:
    """Resident memory of a process (this one by default), in MiB; None when unknown. ``field="VmHWM"``:
    its peak so far."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, in seconds; None when unknown."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu_s(root: int) -> float | None:
    """CPU time (user + system) used so far by ``root`` and every process under it, in seconds; None when
    ``root`` is gone.

    Each living process counts its own time and that of the children it has reaped (``cutime`` and
    ``cstime``: a child's time moves there when its parent waits for it), so a backend that exited
    between two readings is still counted, and nothing twice."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(name)
        if fields is None:
            continue
        pid = int(name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    if root not in times:
        return None
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / os.sysconf("SC_CLK_TCK")


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal (bool, number, string, list of these)."""
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


def hub_process(
    workdir: Path,
    broker_url: str,
    *,
    console_token: str,
    feed_token: str,
    csv_files: list[Path],
    http: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
    mqtt: dict[str, Any] | None = None,
) -> CordonProcess:
    """A ``cordon hub`` process (not started) on a free port, its watchlists loaded from ``csv_files``;
    ``http``: more ``[http]`` keys (``cert_file`` and ``key_file`` serve HTTPS); ``store``: its ``[store]``
    table (the default: SQLite under its data folder); ``mqtt``: more ``[mqtt]`` keys (``client_id`` and
    ``share_group`` for one of several hubs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = write_toml(
        workdir / "hub.toml",
        {
            "data_dir": str(workdir / "data"),
            "http": {"host": HOST, "port": port, "max_body_bytes": 4 * 1024 * 1024, **(http or {})},
            "mqtt": {
                "url": broker_url,
                "client_id": f"cordon-hub-bench-{port}",
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1,
                **(mqtt or {}),
            },
            "watchlists": {"csv": [str(p) for p in csv_files]},
            "console": {"token": console_token},
            "feed": {"token": feed_token},
            **({"store": store} if store else {}),
        },
    )
    return CordonProcess("hub", ["hub", "--config", str(conf)], workdir, port)


def edge_process(
    workdir: Path,
    checkpoint: str,
    broker_url: str,
    *,
    hub_url: str,
    feed_token: str,
    tablet_token: str,
    cameras: dict[str, str],
) -> CordonProcess:
    """A ``cordon edge`` process (not started) on a free port with JSON push ``cameras`` {id: token}."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = write_toml(
        workdir / "edge.toml",
        {
            "checkpoint": checkpoint,
            "data_dir": str(workdir / "data"),
            "http": {"host": HOST, "port": port},
            "mqtt": {"url": broker_url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
            "hub": {"url": hub_url, "token": feed_token},
            "tablet": {"token": tablet_token},
            "cameras": [{"id": cid, "token": tok} for cid, tok in cameras.items()],
        },
    )
    return CordonProcess(f"edge-{checkpoint}", ["edge", "--config", str(conf)], workdir, port)


# -- data shared by benchmarks --------------------------------------------------------------------------------------


def make_plates(n: int, seed: int) -> list[str]:
    """``n`` unique plates: 鲁/冀/豫/苏/皖, a letter, five serial characters (no I or O)."""
    rng = np.random.default_rng(seed)
    prov = np.array([ord(c) for c in PROVINCES], dtype=np.uint32)
    letters = np.array([ord(c) for c in LETTERS], dtype=np.uint32)
    serial = np.array([ord(c) for c in SERIAL], dtype=np.uint32)
    seen: dict[str, None] = {}
    while len(seen) < n:
        k = int((n - len(seen)) * 1.01) + 16
        codes = np.empty((k, 7), dtype=np.uint32)
        codes[:, 0] = prov[rng.integers(0, len(prov), k)]
        codes[:, 1] = letters[rng.integers(0, len(letters), k)]
        codes[:, 2:] = serial[rng.integers(0, len(serial), (k, 5))]
        for plate in codes.view("<U7").ravel().tolist():
            seen[plate] = None
    return list(seen)[:n]


def write_csv(path: Path, plates: Sequence[str]) -> Path:
    """A watchlist CSV that lists every plate of ``plates`` on ``LIST_ID`` as intercept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.write("plate,list,action,priority,reason\n")
        f.writelines(f"{p},{LIST_ID},intercept,80,bench\n" for p in plates)
    return path


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    """The ``q``th percentile of ``values`` (seconds) in milliseconds, one decimal; None when empty."""
    return round(float(np.percentile(np.array(values) * 1000.0, q)), 1) if values else None


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_time(text: str, needle: str) -> float | None:
    """Unix time of the first log line containing ``needle`` (cordon's logging format, local time)."""
    for line in text.splitlines():
        if needle in line and (m := _LOG_TIME.match(line)):
            return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


# -- HTTP --------------------------------------------------------------------------------------


def http_session(timeout: float = 60) -> aiohttp.ClientSession:
    """A client session that keeps the login cookie of a loopback server."""
    # unsafe=True keeps cookies from IP-address hosts (everything here is 127.0.0.1)
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=timeout)
    )


async def login(http: aiohttp.ClientSession, base: str, code: str) -> None:
    """Sign ``http`` in at ``base`` (hub console or edge tablet) with an access code."""
    async with http.post(f"{base}/login", json={"code": code}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"login at {base}: {resp.status} {await resp.text()}")


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    """GET ``url`` and decode its JSON; anything but 200 raises."""
    async with http.get(url) as resp:
        if resp.status != 200:
            raise RuntimeError(f"GET {url}: {resp.status} {(await resp.text())[:300]}")
        return await resp.json()


async def until(
    predicate: Callable[[], Awaitable[Any]], within_s: float, what: str, interval: float = POLL_S
) -> Any:
    """Await ``predicate()`` every ``interval`` until it is truthy and return that; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def start_hub(
    workdir: Path,
    broker: Mosquitto,
    plates: Sequence[str],
    console: str,
    feed_token: str,
    say: Callable[[str], None],
    store: dict[str, Any] | None = None,
    mqtt: dict[str, Any] | None = None,
    csv: bool = True,
) -> tuple[CordonProcess, dict[str, Any]]:
    """A hub process that loads ``plates`` from a CSV; returns when its feed holds them all. ``store``:
    its ``[store]`` table, ``mqtt``: more ``[mqtt]`` keys (see ``hub_process``); ``csv=False``: another hub
    of a shared store, which finds the lists there."""
    csv_files = [await asyncio.to_thread(write_csv, workdir / "watchlist.csv", plates)] if csv else []
    hub = hub_process(
        workdir,
        broker.url,
        console_token=console,
        feed_token=feed_token,
        csv_files=csv_files,
        store=store,
        mqtt=mqtt,
    )
    hub.start()
    say(f"hub started, loading {len(plates)} entries" + (" from CSV" if csv else " from the store"))
    await hub.wait_listening(HUB_LOAD_TIMEOUT_S)
    async with http_session() as http:
        await login(http, hub.base, console)

        async def loaded() -> dict[str, Any] | None:
            feed = await get_json(http, f"{hub.base}/api/v1/feed")
            return feed if feed["entries"] == len(plates) else None

        feed = await until(
            loaded, HUB_LOAD_TIMEOUT_S, what="the hub's feed to hold every entry", interval=0.1
        )
    load_s = time.monotonic() - hub.started_mono
    say(f"hub holds {feed['entries']} entries at feed version {feed['version']} after {load_s:.1f} s")
    return hub, {"hub_load_s": round(load_s, 2), "version": feed["version"], "entries": feed["entries"]}


_RELEASE_LINE = re.compile(r"^([0-9a-f]{40})\s+(\S+)")


class ReleaseError(CordonError, RuntimeError):
    """An earlier release cannot be run: the message says why and what to do."""


@dataclass(frozen=True)
class Release:
    """A release as ``RELEASES`` names it: the full commit it was cut from, and its name."""

    commit: str
    name: str


def releases(repo: Path) -> list[Release]:
    """Every release the repository's ``RELEASES`` file names, oldest first."""
    path = repo / "RELEASES"
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _RELEASE_LINE.match(line.strip())
        if match is None:
            raise ReleaseError(f"{path}:{number}: expected '<40-hex commit> <name>', got {line!r}")
        out.append(Release(match[1], match[2]))
    if not out:
        raise ReleaseError(f"{path} names no release")
    return out


def previous_release(repo: Path) -> Release:
    """The release before the code in ``repo``: the last one ``RELEASES`` names."""
    return releases(repo)[-1]


def check_release(repo: Path, release: Release) -> None:
    """Fail with what to do when the clone lacks the release's commit (a shallow clone, say)."""
    known = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "-e", f"{release.commit}^{{commit}}"], capture_output=True
    )
    if known.returncode != 0:
        shallow = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--is-shallow-repository"], capture_output=True, text=True
        ).stdout.strip()
        raise ReleaseError(
            f"release {release.name} ({release.commit}), named in RELEASES, is not in this clone's history"
            f"{' (a shallow clone)' if shallow == 'true' else ''}: the tests that run it need it. Fetch the "
            f"history: `git fetch --unshallow` (or `git fetch origin {release.commit}`)."
        )


def release_cache() -> Path:
    """Where earlier releases' environments are kept (``$CORDON_COMPAT_CACHE``, else ~/.cache/cordon-compat)."""
    configured = os.environ.get("CORDON_COMPAT_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "cordon-compat"


def previous_release_python(
    repo: Path, release: Release | None = None, say: Callable[[str], None] | None = None
) -> Path:
    """The Python of an environment running an earlier release of Cordon (by default the previous one).

    The release's source comes out of the clone's history with ``git archive`` (no worktree, nothing
    left in the clone) into ``<cache>/<commit>/src`` and is installed editable, as ``make`` installs
    (the first release's wheel lacks package data), into a virtual environment beside it, with the
    library versions of the running environment as pip constraints, so the two sides differ in
    Cordon's code alone. Built once per commit, under a file lock (test runs may share the cache). A
    clone without the commit fails with what to fetch (:class:`ReleaseError`).
    """
    import fcntl
    import importlib.metadata
    import io
    import tarfile

    release = release or previous_release(repo)
    check_release(repo, release)
    root = release_cache()
    home = root / release.commit
    python = home / "venv" / "bin" / "python"
    if (home / "ready").exists() and python.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{release.commit}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (home / "ready").exists() and python.exists():
            return python  # another process built it while this one waited
        started = time.monotonic()
        if say is not None:
            say(f"building release {release.name} ({release.commit[:10]}) in {home} ...")
        shutil.rmtree(home, ignore_errors=True)  # a build that died half-way
        (home / "src").mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", release.commit], capture_output=True
        )
        if archive.returncode != 0:
            raise ReleaseError(f"git archive {release.commit}: {archive.stderr.decode()[-2000:]}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                tar.extractall(home / "src", filter="data")
            else:
                tar.extractall(home / "src")  # our own repository's commit
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(home / "venv")], capture_output=True, text=True
        )
        if made.returncode != 0:
            raise ReleaseError(f"creating the environment of release {release.name}: {made.stderr[-2000:]}")
        pins = sorted(
            f"{d.metadata['Name']}=={d.version}"
            for d in importlib.metadata.distributions()
            if d.metadata["Name"] and d.metadata["Name"].lower() != "cordon"
        )
        (home / "constraints.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
        done = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "-c",
                str(home / "constraints.txt"),
                "-e",
                str(home / "src"),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ReleaseError(
                f"installing release {release.name}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        (home / "ready").write_text(f"{release.name} {release.commit}\n", encoding="utf-8")
        if say is not None:
            say(f"built in {time.monotonic() - started:.0f} s")
    return python


REALISTIC_LISTS = (
    ("bench-intercept", "vehicle", "intercept", 80),
    ("bench-notify", "vehicle", "notify", 40),
    ("bench-persons", "person", "intercept", 90),
)
_COLOURS = ("blue", "yellow", "green", "white", "black")
_VEHICLE_TYPES = ("car", "truck", "van", "bus", "motorcycle", "tractor")
_REASON_WORDS = (
    "涉毒",
    "盗抢",
    "套牌",
    "逃逸",
    "布控",
    "在逃人员",
    "涉嫌运输毒品",
    "未年检",
    "重点车辆",
    "协查",
    "drug courier",
    "stolen",
    "cloned plate",
    "hit and run",
    "wanted",
    "follow-up",
)


def realistic_feed(n: int, seed: int) -> tuple[list[Any], list[Any]]:
    """(watchlists, entries): ``n`` entries shaped like a real field feed (issue 24): 0.1% wildcard
    patterns, 5% person entries (keyed ID hashes), reasons drawn from a few hundred phrases, a unique
    case reference on 60%, an expiry on 30%, colour and vehicle type on the vehicles that have them."""
    from protocols.matching import Entry, ListAction, ListKind, Watchlist

    rng = np.random.default_rng(seed + 7)
    lists = [
        Watchlist(list_id=lid, name=lid, kind=ListKind(kind), action=ListAction(action), priority=prio)
        for lid, kind, action, prio in REALISTIC_LISTS
    ]
    phrases = [
        f"{_REASON_WORDS[i % len(_REASON_WORDS)]} {_REASON_WORDS[(i * 7 + 3) % len(_REASON_WORDS)]} #{i}"
        for i in range(300)
    ]
    persons = n // 20
    patterns = max(1, n // 1000)
    vehicles = n - persons - patterns
    plates = make_plates(vehicles + patterns, seed)
    base = 1_790_000_000.0
    reason_of = rng.integers(0, len(phrases), n).tolist()
    case = rng.random(n) < 0.6
    expiry = rng.random(n) < 0.3
    expiry_at = (base + rng.integers(86_400, 400 * 86_400, n)).tolist()
    colour_of = rng.integers(-3, len(_COLOURS), n).tolist()  # about a third have none
    vtype_of = rng.integers(-4, len(_VEHICLE_TYPES), n).tolist()
    entries: list[Any] = []
    for i in range(n):
        if i < vehicles:
            lid = "bench-intercept" if i % 5 else "bench-notify"
            plate = plates[i]
        elif i < vehicles + patterns:
            lid = "bench-intercept"
            p = plates[i]
            plate = p[:2] + "*" + p[4:6] + "?" if i % 2 else p[:3] + "?" + p[4:]
        else:
            lid = "bench-persons"
            plate = f"scrypt$n=32768,r=8,p=1${rng.bytes(32).hex()}"
        person = lid == "bench-persons"
        entries.append(
            Entry(
                entry_id=f"{lid}:{plate}",
                list_id=lid,
                plate=plate,
                colour=None if person or colour_of[i] < 0 else _COLOURS[colour_of[i]],
                vehicle_type=None if person or vtype_of[i] < 0 else _VEHICLE_TYPES[vtype_of[i]],
                reason=phrases[reason_of[i]],
                case_ref=f"SD{2020 + i % 7}-{rng.integers(0, 10**8):08d}" if case[i] else "",
                valid_until=expiry_at[i] if expiry[i] else None,
                created_by="import",
            )
        )
    return lists, entries


class ThinLine:
    """A TCP relay on loopback that behaves like a thin line in front of ``target``.

    ``rate_bps``: a token bucket in each direction (bursts of at most ``burst`` bytes); ``delay_s``:
    added one way, in each direction; ``reset_at``: once that many bytes have gone towards the client
    (over every connection), the connection is reset and the port refuses connections for
    ``refuse_s`` (the listening socket is closed, so a connect gets ECONNREFUSED). ``down_bytes``
    counts what reached clients.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        rate_bps: float | None = None,
        burst: int = 64 * 1024,
        delay_s: float = 0.0,
        reset_at: int | None = None,
        refuse_s: float = 0.0,
    ) -> None:
        self.target = (target_host, target_port)
        self.rate = rate_bps / 8 if rate_bps else None
        self.burst = burst
        self.delay_s = delay_s
        self.reset_at = reset_at
        self.refuse_s = refuse_s
        self.port = 0
        self.down_bytes = 0
        self.resets = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> ThinLine:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pair = (writer, up_writer)
        self._spawn(self._pipe(reader, up_writer, pair, down=False))
        self._spawn(self._pipe(up_reader, writer, pair, down=True))

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        down: bool,
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        tokens, last = float(self.burst), time.monotonic()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                if down and self.reset_at is not None and self.down_bytes + len(data) >= self.reset_at:
                    self.reset_at = None
                    await self._reset(pair)
                    return
                dst.write(data)
                if down:
                    self.down_bytes += len(data)
                await dst.drain()
            dst.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await src.read(min(self.burst, 16 * 1024))
                if not data:
                    break
                if self.rate:
                    now = time.monotonic()
                    tokens = min(self.burst, tokens + (now - last) * self.rate)
                    last = now
                    tokens -= len(data)
                    if tokens < 0:
                        await asyncio.sleep(-tokens / self.rate)
                queue.put_nowait((time.monotonic() + self.delay_s, data))
            queue.put_nowait((0.0, b""))
            await sender
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender

    async def _reset(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self.resets += 1
        for w in pair:
            sock = w.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: close with RST, as a dropped line looks to the client
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
        if self._server is not None and self.refuse_s > 0:
            self._server.close()
            self._server = None
            await asyncio.sleep(self.refuse_s)
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)


def seed_hub(data_dir: Path, lists: Sequence[Any], entries: Sequence[Any]) -> int:
    """Write lists and entries into a hub's store before the hub starts (the way its API would, as one
    change); returns the feed version. For benchmarks whose feeds hold what no CSV can (person lists,
    patterns, expiries)."""
    from central.record.factory import open_store
    from central.settings import HubSettings
    from central.watchlists.index import HubWatchlists
    from protocols.feed import EntryUpsert, ListUpsert

    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(HubSettings(data_dir=str(data_dir)))
    store.start()
    try:
        changes = [ListUpsert(watchlist=wl) for wl in lists] + [EntryUpsert(entry=e) for e in entries]
        applied = store.submit(
            lambda tx: store.watchlists.apply_changes(tx, changes, HubWatchlists(), "bench")
        ).result()
        return applied.version
    finally:
        store.stop()
