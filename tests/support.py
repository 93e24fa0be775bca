"""Real parts for tests: Mosquitto on a free port, hub and edge processes, small HTTP helpers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from central.record.sqlite.dayfiles import SqliteReadStore
from cordon import testing
from cordon.pki import Pki
from cordon.testing import BrokerTls, free_port, write_toml


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


@dataclass
class Mosquitto(testing.Mosquitto):
    """A real Mosquitto broker of the test's own, on a free port; ``start()`` waits until it listens."""

    max_queued_messages: int = 1000  # Mosquitto's own default: the tests meet the real limit

    def start(self) -> Mosquitto:
        super().start()
        wait_port(self.port)
        return self

    def restart(self) -> Mosquitto:
        """Start again on the same port and folder (after ``kill()`` or ``stop()``)."""
        return self.start()


@dataclass
class Service:
    """A real ``cordon hub`` or ``cordon edge`` process with its own config file and log."""

    name: str
    args: list[str]
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    scheme: str = "http"
    python: str = sys.executable
    """The interpreter that runs ``-m cordon``: another environment's runs another release
    (cordon.testing.previous_release_python)."""

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, wait: bool = True) -> Service:
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
        if self.python != sys.executable:
            # Another release's environment runs its own code: a PYTHONPATH naming this checkout (a
            # worktree's tests run so) would put this release's packages before it, and test nothing.
            env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [self.python, "-m", "cordon", *self.args], stdout=log, stderr=log, env=env, cwd=self.workdir
        )
        if wait:
            try:
                wait_port(self.port, timeout=30)
            except TimeoutError:
                raise TimeoutError(f"{self.name} did not start; log:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def hub_service(
    workdir: Path,
    broker_url: str,
    *,
    watchlist_csv: Path | None = None,
    token: str = "console-code",
    extra: dict[str, Any] | None = None,
    python: str = sys.executable,
) -> Service:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "data_dir": str(workdir / "data"),
        "http": {"host": "127.0.0.1", "port": port},
        "mqtt": {
            "url": broker_url,
            "client_id": "cordon-hub-test",
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1,
        },
        "console": {"token": token},
    }
    if watchlist_csv is not None:
        config["watchlists"] = {"csv": [str(watchlist_csv)]}
    for section, values in (extra or {}).items():
        if isinstance(values, list):
            config[section] = values  # an array of tables (``[[upstream]]``)
        elif isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values  # a top-level key (time_zone)
    conf = write_toml(workdir / "hub.toml", config)
    return Service(
        "hub", ["hub", "--config", str(conf)], workdir, port, scheme=_scheme(config), python=python
    )


def edge_service(
    workdir: Path,
    checkpoint: str,
    broker_url: str,
    *,
    cameras: dict[str, str],
    tablet_token: str = "tablet-code",
    extra: dict[str, Any] | None = None,
    python: str = sys.executable,
) -> Service:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "checkpoint": checkpoint,
        "data_dir": str(workdir / "data"),
        "http": {"host": "127.0.0.1", "port": port},
        "mqtt": {
            "url": broker_url,
            "ack_timeout_s": 3.0,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "status_interval_s": 2.0,
        },
        "tablet": {"token": tablet_token},
        "passages": {"window_s": 2.0},
        "cameras": [{"id": cid, "token": tok} for cid, tok in cameras.items()],
    }
    for section, values in (extra or {}).items():
        config.setdefault(section, {}).update(values)
    conf = write_toml(workdir / "edge.toml", config)
    return Service(
        f"edge-{checkpoint}",
        ["edge", "--config", str(conf)],
        workdir,
        port,
        scheme=_scheme(config),
        python=python,
    )


def _scheme(config: dict[str, Any]) -> str:
    return "https" if config["http"].get("cert_file") else "http"


@dataclass
class Ring:
    """A real PKI made with ``cordon pki`` for TLS tests: the broker's, the hub's and checkpoints' files."""

    pki: Pki

    @classmethod
    def create(cls, root: Path, checkpoints: list[str], *, revoked: tuple[str, ...] = ()) -> Ring:
        pki = Pki(root)
        pki.init()
        pki.issue_server("broker", ["127.0.0.1", "localhost"])
        pki.issue("cordon-hub", ["127.0.0.1"])
        for name in [*checkpoints, *revoked]:
            pki.issue(name, ["127.0.0.1"])
        for name in revoked:
            pki.revoke(name)
        return cls(pki)

    @property
    def ca(self) -> Path:
        return self.pki.root / "ca.crt"

    def broker(self) -> BrokerTls:
        folder = self.pki.root / "broker"
        return BrokerTls(self.ca, folder / "server.crt", folder / "server.key", self.pki.root / "crl.pem")

    def mqtt(self, name: str) -> dict[str, str]:
        """The ``[mqtt]`` TLS keys of a node."""
        folder = self.pki.root / name
        return {
            "ca_file": str(self.ca),
            "cert_file": str(folder / "client.crt"),
            "key_file": str(folder / "client.key"),
        }

    def https(self, name: str) -> dict[str, str]:
        """The ``[http]`` keys that serve a node's web app over HTTPS."""
        folder = self.pki.root / name
        return {"cert_file": str(folder / "server.crt"), "key_file": str(folder / "server.key")}

    def client_context(self, name: str | None = None) -> ssl.SSLContext:
        """Verifies servers against the ring's CA; presents ``name``'s client certificate when given."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if name is not None:
            ctx.load_cert_chain(self.pki.root / name / "client.crt", self.pki.root / name / "client.key")
        return ctx


async def login(session: aiohttp.ClientSession, base: str, code: str) -> None:
    async with session.post(f"{base}/login", json={"code": code}) as resp:
        assert resp.status == 200, await resp.text()


async def sign_in_page(page: Any, base: str, code: str) -> None:
    """Sign a browser page in with an access code on the login page of ``base`` (console or tablet)."""
    await page.goto(f"{base}/login")
    await page.click("summary")
    await page.fill("input[name=code]", code)
    await page.click("button[type=submit]")


@contextlib.contextmanager
def running(*services: Service | Mosquitto) -> Iterator[None]:
    try:
        yield
    finally:
        for service in reversed(services):
            service.stop()


async def until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Async polling: await ``predicate()`` (sync or async) until truthy, or fail after ``timeout``."""
    import asyncio
    import inspect

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        assert resp.status == 200, f"{url}: {resp.status} {await resp.text()}"
        return await resp.json()


async def get_health(session: aiohttp.ClientSession, url: str) -> Any:
    """A hub's health: 200 with ``ok``, 503 with ``degraded`` and the same body (a front door's check)."""
    async with session.get(url) as resp:
        health = await resp.json()
        assert resp.status == (200 if health["status"] == "ok" else 503), f"{url}: {resp.status} {health}"
        return health


async def next_frame(
    ws: aiohttp.ClientWebSocketResponse,
    kind: str,
    timeout: float = 30.0,
    where: Callable[[dict[str, Any]], bool] = lambda f: True,
) -> dict[str, Any]:
    """The next live frame of ``kind`` that satisfies ``where``; other frames are skipped.

    One deadline for the whole wait: aiohttp restarts a ``receive(timeout=...)`` after each ping it
    answers, so with the apps' 20 s heartbeat a per-receive timeout longer than that never ran out and
    a frame that never came hung the test until pytest's own timeout."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    frame = await ws.receive_json()
                except TypeError:
                    raise AssertionError("live feed closed") from None
                if frame.get("type") == kind and where(frame):
                    return frame
    except TimeoutError:
        raise TimeoutError(f"no {kind} frame within {timeout}s") from None


def session(ssl_context: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """A client session that keeps cookies from IP-address hosts (the test servers are on 127.0.0.1);
    with ``ssl_context`` it verifies HTTPS servers with it."""
    connector = aiohttp.TCPConnector(ssl=ssl_context) if ssl_context is not None else None
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector)


def stored_camera_event_ids(hub_data_dir: Path) -> Counter[str]:
    """How many times each camera ``event_id`` is in the hub's record of reads.

    The one place tests read the layout of the hub's store (read-only): a test that wants to know
    whether a read is in the record exactly once asks this, so a new layout changes only this helper.
    """
    record = SqliteReadStore(Path(hub_data_dir) / "record")
    return Counter(
        r.camera_event_id
        for day in record.days()
        for r in record.iter_reads(day)
        if r.camera_event_id is not None
    )


def stored_camera_event_ids_postgresql(dsn: str) -> Counter[str]:
    """``stored_camera_event_ids`` for a hub whose store is on PostgreSQL (``[store] backend =
    "postgresql"``): the same count, read through the record's own ``PgReadStore`` from ``dsn``."""
    from central.record.postgresql.reads import PgReadStore

    record = PgReadStore(dsn)  # reads only: its pool connects on the first call, no start() (no migration)
    try:
        return Counter(
            r.camera_event_id
            for day in record.days()
            for r in record.iter_reads(day)
            if r.camera_event_id is not None
        )
    finally:
        record.stop()


async def scrape(http: aiohttp.ClientSession, base: str, token: str) -> dict[str, float]:
    """A service's /metrics as {sample name with labels: value} (Prometheus text, read with its token)."""
    async with http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200, f"{base}/metrics: {resp.status} {await resp.text()}"
        text = await resp.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def broker_sys_value(port: int, topic: str, timeout: float = 10.0) -> float:
    """One number from a broker's ``$SYS`` tree (retained, refreshed every ``sys_interval``)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        got.append(bytes(message.payload))
        arrived.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"sys-reader-{time.monotonic_ns()}", protocol=paho.MQTTv311
    )
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not arrived.wait(timeout):
            raise TimeoutError(f"the broker published no {topic} within {timeout}s")
    finally:
        client.loop_stop()
        client.disconnect()
    return float(got[0])


class UplinkCut:
    """A TCP relay between an edge and its broker that a test can cut like a cable.

    Cut, it forwards nothing and closes nothing: the edge and the broker each notice only when their
    MQTT keepalive runs out, as with a real line down. New connections are accepted and left silent.
    Restored, every connection that lived through the cut is reset (the line's state is gone after an
    outage) and new ones are forwarded again.
    """

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.port = free_port()
        self.is_cut = False
        self.resets = False
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> UplinkCut:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    def cut(self, reset: bool = False) -> None:
        """``reset``: as a firewall that rejects, every connection through the relay is reset now and new
        ones are refused (closed at once), so both ends learn of the cut at their next use of it."""
        self.is_cut = True
        self.resets = reset
        if reset:
            for writer in list(self._open):
                writer.transport.abort()
            self._open.clear()

    def restore(self) -> None:
        self.is_cut = self.resets = False
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def close(self) -> None:
        self.restore()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._open.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            if self.is_cut and self.resets:
                return  # refused: closed at once
            if self.is_cut:
                while await reader.read(65536):
                    pass  # the line is down: what the edge sends goes nowhere
                return
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.broker_port)
            self._open.add(upstream)
            await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._open.discard(w)
                    w.transport.abort()
            self._tasks.discard(task)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self.is_cut:
                    continue
                dst.write(data)
                await dst.drain()
        finally:
            dst.transport.abort()


def spki_hash(cert_file: Path) -> str:
    """base64 SHA-256 of a certificate's public key, as Chromium's ``--ignore-certificate-errors-spki-list``
    takes it: the browser then trusts exactly these test certificates, and the origin stays a secure context."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chromium_args(*server_certs: Path) -> list[str]:
    """Launch arguments for the Debian Chromium that trust the ring's server certificates."""
    args = ["--no-sandbox"]
    if server_certs:
        args.append("--ignore-certificate-errors-spki-list=" + ",".join(spki_hash(c) for c in server_certs))
    return args
