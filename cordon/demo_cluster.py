"""``cordon demo --hubs N --store DSN``: the cluster on one machine (issue 23, docs/scaling.md).

N hub processes (``cordon hub``) over one PostgreSQL database, sharing the edges' events through one
Mosquitto (the embedded broker has no shared subscriptions), HAProxy in front of them when it is installed,
and the demo's simulated checkpoints in this process, as in the single-box demo. The single-box demo
(cordon/demo.py) is untouched by this: it stays one process on SQLite with the embedded broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from central.settings import load_settings
from protocols.errors import CordonError

from .cli import serve_apps
from .demo import (
    HOST,
    DemoOptions,
    account_lines,
    demo_accounts,
    demo_edges,
    demo_kits_secret,
    demo_watchlist_path,
    free_port,
)

#: The hubs' ``mqtt.share_group``.
SHARE_GROUP = "cordon-demo"
#: How long a hub may take to start and say ok (the first one makes the tables and loads the list).
HUB_START_S = 120.0


class ClusterDemoError(CordonError, RuntimeError):
    """The cluster demo cannot start; the message says what is missing."""


def front_door_config(port: int, hubs: list[int]) -> str:
    """HAProxy in front of the demo's hubs: deploy/haproxy/cordon.cfg's behaviour (TCP passthrough, least
    connections, GET /api/v1/health every 2 s, a 503 takes a hub out after two checks, its sessions cut,
    the console's WebSocket kept by ``timeout tunnel``) over plain HTTP, since the demo's hubs have no PKI."""
    servers = "".join(f"    server hub{i} {HOST}:{p}\n" for i, p in enumerate(hubs, start=1))
    return (
        "global\n    maxconn 1024\n\n"
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
        "    timeout tunnel 1h\n    timeout check 2s\n\n"
        f"frontend console\n    bind {HOST}:{port}\n    default_backend hubs\n\n"
        "backend hubs\n    balance leastconn\n    option httpchk GET /api/v1/health HTTP/1.1\n"
        f"    http-check send hdr Host {HOST}\n    http-check expect status 200\n"
        "    default-server check inter 2s fastinter 500ms downinter 2s fall 2 rise 2"
        " on-marked-down shutdown-sessions\n" + servers
    )


@dataclass
class _Proc:
    """A child process of the demo with its log file."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(2)  # SIGINT: as Ctrl-C, a clean shutdown
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class _Hub:
    name: str
    port: int
    config: Path
    proc: _Proc

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"


def _hub_config(
    path: Path, name: str, port: int, *, data: Path, broker: str, dsn: str, csv: bool, codes: dict[str, str]
) -> Path:
    from .testing import write_toml

    config: dict[str, Any] = {
        "data_dir": str(data / name),
        "http": {"host": HOST, "port": port},
        "mqtt": {"url": broker, "client_id": name, "username": "cordon-hub", "share_group": SHARE_GROUP},
        "console": {"token": codes["console"], "session_key_file": codes["session_key_file"]},
        "feed": {"token": codes["feed"]},
        "alerts": {"fold_window_s": 600},
        "kits": {"id_secret_file": codes["kits_secret"]},
        "store": {"backend": "postgresql", "dsn": dsn},
    }
    if csv:  # the first hub loads the demo's list into the store; the others read it from there
        config["watchlists"] = {"csv": [str(demo_watchlist_path())]}
    return write_toml(path, config)


def _session_key(data: Path) -> Path:
    """One key for console sessions on every hub (console.session_key_file): a sign-in through the front
    door holds at whichever hub the next connection reaches. Made on the first run, kept, owner-only."""
    path = data / "session-key"
    if not path.exists() or path.stat().st_size < 32:
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48) + "\n")
    return path


def _haproxy() -> str | None:
    """HAProxy's program (Debian puts it in /usr/sbin, off a user's PATH), or None."""
    return shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


def _start_front(haproxy: str, data: Path, port: int, hubs: list[int]) -> _Proc:
    cfg = data / "haproxy.cfg"
    cfg.write_text(front_door_config(port, hubs))
    checked = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
    if checked.returncode != 0:
        raise ClusterDemoError(f"haproxy -c {cfg}: {checked.stdout}{checked.stderr}")
    front = _Proc("haproxy", [haproxy, "-f", str(cfg), "-db"], data / "haproxy.log")
    front.start()
    return front


async def _healthy(hub: _Hub, deadline: float) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while True:
            proc = hub.proc.proc
            if proc is not None and proc.poll() is not None:
                raise ClusterDemoError(f"{hub.name} stopped at start-up:\n{hub.proc.tail()}")
            if time.monotonic() > deadline:
                raise ClusterDemoError(
                    f"{hub.name} did not say ok in {HUB_START_S:.0f} s:\n{hub.proc.tail()}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{hub.base}/api/v1/health") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.3)


async def run_cluster_demo(
    options: DemoOptions, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None
) -> None:
    if options.hubs < 2 or not options.store:
        raise ClusterDemoError("cordon demo --hubs N (2 or more) needs --store DSN (a PostgreSQL database)")
    data = Path(options.data)
    await asyncio.to_thread(data.mkdir, parents=True, exist_ok=True)
    from .testing import MOSQUITTO, Mosquitto

    broker: Mosquitto | None = None
    url = options.broker
    if url is None:
        if not await asyncio.to_thread(Path(MOSQUITTO).exists):
            raise ClusterDemoError(
                "several hubs share the edges' events through an MQTT shared subscription, which the "
                "embedded broker lacks: install Mosquitto (apt install mosquitto) or give --broker URL"
            )
        broker = Mosquitto(data / "broker")
        broker.start()
        await broker.ready()
        url = broker.url
    haproxy = await asyncio.to_thread(_haproxy)
    codes = {
        "console": f"{secrets.randbelow(10**6):06d}",
        "feed": secrets.token_urlsafe(16),
        "kits_secret": str(await asyncio.to_thread(demo_kits_secret, data)),
        "session_key_file": str(await asyncio.to_thread(_session_key, data)),
    }
    tablet_code = f"{secrets.randbelow(10**6):06d}"
    front_port = free_port(options.port) if haproxy else None
    hubs: list[_Hub] = []
    for i in range(1, options.hubs + 1):
        name = f"cordon-hub-{i}"
        port = free_port(None if haproxy or i > 1 else options.port)
        conf = _hub_config(
            data / f"{name}.toml",
            name,
            port,
            data=data,
            broker=url,
            dsn=options.store,
            csv=i == 1,
            codes=codes,
        )
        argv = [sys.executable, "-m", "cordon", "hub", "--config", str(conf)]
        hubs.append(_Hub(name, port, conf, _Proc(name, argv, data / name / "hub.log")))
    front: _Proc | None = None
    try:
        # The accounts first: this makes the store's tables, so the hubs start together.
        accounts = await asyncio.to_thread(demo_accounts, load_settings(str(hubs[0].config)))
        deadline = time.monotonic() + HUB_START_S
        for hub in hubs:
            hub.proc.start()
        await asyncio.gather(*(_healthy(hub, deadline) for hub in hubs))
        if haproxy and front_port is not None:
            front = await asyncio.to_thread(_start_front, haproxy, data, front_port, [h.port for h in hubs])
            console = f"http://{HOST}:{front_port}"
        else:
            console = hubs[0].base
        lines = [
            f"  指挥中心 command console: {console}/   access code: {codes['console']}",
            *(
                [f"    through HAProxy (front door) at {console}, config {data / 'haproxy.cfg'}"]
                if front
                else [
                    "    HAProxy is not installed (apt install haproxy): no front door; each hub answers itself"
                ]
            ),
            f"  {len(hubs)} hubs over PostgreSQL, sharing the events (mqtt.share_group = {SHARE_GROUP!r}):",
            *[f"    {hub.name}: {hub.base}/   log: {hub.proc.log}" for hub in hubs],
            *account_lines(accounts),
        ]
        edges, edge_lines = demo_edges(
            options, data, url, console, codes["feed"], tablet_code, Path(codes["kits_secret"])
        )
        lines += edge_lines
        started = asyncio.Event()
        stop = stop or asyncio.Event()
        timer = (
            asyncio.get_running_loop().call_later(options.duration_s, stop.set)
            if options.duration_s
            else None
        )

        async def announce() -> None:
            await started.wait()
            print("\nCordon demo (several hubs) is running (Ctrl-C stops it)", flush=True)
            print(
                f"  MQTT broker: {url}" + (" (Mosquitto, started by the demo)" if broker else ""), flush=True
            )
            print("\n".join(lines), flush=True)
            print(
                "Watchlisted plates appear in the simulated traffic; alerts show within a minute.\n",
                flush=True,
            )
            if ready is not None:
                ready.set()

        announcer = asyncio.create_task(announce())
        try:
            await serve_apps(edges, ready=started, stop=stop)
        finally:
            announcer.cancel()
            if timer is not None:
                timer.cancel()
    finally:
        for hub in hubs:
            await asyncio.to_thread(hub.proc.stop)
        if front is not None:
            await asyncio.to_thread(front.stop)
        if broker is not None:
            broker.stop()
        print("Cordon demo stopped.", flush=True)
