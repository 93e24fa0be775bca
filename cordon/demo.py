"""``cordon demo``: an embedded broker, the hub and simulated checkpoints in one process."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from central.app import create_app as create_hub
from central.intel.ring import SHIPPED, read_ring
from central.settings import AlertSettings, ConsoleSettings, FeedSettings, HubSettings, WatchlistSettings
from central.settings import HttpSettings as HubHttp
from central.settings import KitsSettings as HubKits
from central.settings import MqttSettings as HubMqtt
from central.watchlists.index import parse_csv
from edge.app import create_app as create_edge
from edge.settings import CameraSettings, EdgeSettings, SimulatorSettings, TabletSettings
from edge.settings import HttpSettings as EdgeHttp
from edge.settings import HubSettings as EdgeHub
from edge.settings import KitsSettings as EdgeKits
from edge.settings import MqttSettings as EdgeMqtt
from protocols.ring import RingCheckpoint

from .broker import EmbeddedBroker
from .cli import serve_apps

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Each simulated checkpoint's cameras: configured (with a token each, printed) and fed by the simulator,
#: so every configured camera reads and a camera push can be tried against any of them.
DEMO_CAMERAS = ("sim-lane-1", "sim-lane-2")
#: The deployment secret that keys ID-number hashes (kits.id_secret_file), made once in the demo's folder.
KITS_SECRET = "kits-id-secret"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    port: int = 8080
    checkpoints: int = 3
    broker: str | None = None
    data: str = "./demo-data"
    vehicles_per_minute: float = 30.0
    duration_s: float | None = None
    #: Two or more: that many hub processes over the PostgreSQL database ``store`` names (cordon.demo_cluster).
    hubs: int = 1
    store: str | None = None


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free on this host, otherwise any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def ring_checkpoints(count: int) -> list[RingCheckpoint]:
    """``count`` checkpoints spread evenly around the demo ring."""
    rows = read_ring(SHIPPED)
    count = max(1, min(count, len(rows)))
    step = len(rows) / count
    return [rows[int(i * step)] for i in range(count)]


def demo_kits_secret(data: Path) -> Path:
    """The demo's ``kits.id_secret_file`` (hub and every edge share it), made on the first run and kept, so
    quick-test subjects hash the same across runs. Readable by its owner only."""
    path = data / KITS_SECRET
    if not path.exists() or path.stat().st_size < 16:
        data.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(secrets.token_bytes(32))
    return path


def demo_watchlist_path() -> Path:
    return Path(str(resources.files("cordon").joinpath("data/demo-watchlist.csv")))


def watchlisted_plates() -> list[str]:
    """The plates of the demo's list file, as the hub reads them (the one parser of list files)."""
    path = demo_watchlist_path()
    return [e.plate for e in parse_csv(path.read_text(encoding="utf-8"), source=str(path)).entries]


#: (user name, role, display name): the display name is a person's name on the page, in Chinese as the
#: ring's staff would be named ("演示 commander" put an English word in the Chinese header).
DEMO_ROLES = (
    ("demo-commander", "commander", "演示值班长"),
    ("demo-analyst", "analyst", "演示研判员"),
    ("demo-lists", "watchlist_manager", "演示名单管理员"),
    ("demo-auditor", "auditor", "演示审计员"),
    ("demo-admin", "admin", "演示管理员"),
)
DISPLAY_NAMES = {name: display for name, _, display in DEMO_ROLES}


#: The auditor's role has no console page (the console says so on its sign-in page): where its work is.
AUDITOR_NOTE = "   (no console page: the audit trail is GET /api/v1/audit, `cordon audit verify`)"


def demo_accounts(settings: HubSettings) -> list[tuple[str, str, str]]:
    """One account per console role, with a fresh password each run (printed in the banner), in the store
    ``settings`` name (hub.db under its data folder, or PostgreSQL), through the stores' Protocols."""
    from central.people import users
    from central.record.factory import open_store

    made = [(name, role, secrets.token_urlsafe(9)) for name, role, _ in DEMO_ROLES]
    hashes = {name: users.hash_password(password) for name, _, password in made}
    settings.data_path.mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    store.start()

    def job(tx):  # noqa: ANN001, ANN202
        kept = {user.username for user in store.users.all_users(tx)}
        for name, role, _ in made:
            if name in kept:  # kept from an earlier run: a new password
                store.users.set_password(tx, name, hashes[name])
                store.audit.append(tx, "cordon demo", "", "user.password", target=name)
            else:
                store.users.add(tx, name, role, hashes[name], display_name=DISPLAY_NAMES[name])
                store.audit.append(tx, "cordon demo", "", "user.add", target=name, detail={"role": role})

    try:
        store.submit(job).result()
    finally:
        store.stop()
    return made


def account_lines(accounts: list[tuple[str, str, str]]) -> list[str]:
    return [
        "  demo accounts (user name / password / role):",
        *[
            f"    {name} / {password} / {role}" + AUDITOR_NOTE * (role == "auditor")
            for name, role, password in accounts
        ],
    ]


def demo_edges(
    options: DemoOptions,
    data: Path,
    broker_url: str,
    hub_url: str,
    feed_token: str,
    tablet_code: str,
    kits_secret: Path,
) -> tuple[list[tuple[Any, str, int]], list[str]]:
    """The simulated checkpoints (edge apps to serve, on free ports) and the banner's lines about them."""
    sites: list[tuple[Any, str, int]] = []
    lines: list[str] = []
    plates = watchlisted_plates()
    cameras_lines = []
    for row in ring_checkpoints(options.checkpoints):
        port = free_port()
        cp = row.id
        cameras = [
            CameraSettings(id=cid, token=secrets.token_urlsafe(12), lane=lane)
            for lane, cid in enumerate(DEMO_CAMERAS, start=1)
        ]
        edge = EdgeSettings(
            checkpoint=cp,
            name=row.name,
            data_dir=str(data / f"edge-{cp}"),
            http=EdgeHttp(host=HOST, port=port),
            mqtt=EdgeMqtt(url=broker_url),
            hub=EdgeHub(url=hub_url, token=feed_token),
            cameras=cameras,
            tablet=TabletSettings(token=tablet_code),
            kits=EdgeKits(id_secret_file=str(kits_secret)),
            simulator=SimulatorSettings(
                enabled=True,
                cameras=list(DEMO_CAMERAS),
                vehicles_per_minute=options.vehicles_per_minute,
                neighbour=row.neighbour or "冀",
                watchlisted=plates,
                watchlisted_share=0.04,
            ),
        )
        sites.append((create_edge(edge), HOST, port))
        lines.append(f"  {row.name} ({cp}) tablet: http://{HOST}:{port}/   access code: {tablet_code}")
        lines.append("    cameras (id / token): " + " · ".join(f"{c.id} / {c.token}" for c in cameras))
        if not cameras_lines:
            first = cameras[0]
            cameras_lines = [
                "  Push a read as a camera (README, docs/protocol.md):",
                f"    curl -X POST http://{HOST}:{port}/api/v1/cameras/{first.id}/reads "
                f"-H 'X-Camera-Token: {first.token}' -H 'Content-Type: application/json' "
                """-d '{"plate": "鲁Q8K2L1", "colour": "blue", "lane": 1}'""",
            ]
    return sites, lines + cameras_lines


async def run_demo(
    options: DemoOptions, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None
) -> None:
    data = Path(options.data)  # made absolute by the caller
    await asyncio.to_thread(data.mkdir, parents=True, exist_ok=True)
    broker: EmbeddedBroker | None = None
    url = options.broker
    if url is None:
        broker = EmbeddedBroker(HOST, free_port())
        await broker.start()
        url = broker.url
    console_code = f"{secrets.randbelow(10**6):06d}"
    tablet_code = f"{secrets.randbelow(10**6):06d}"
    feed_token = secrets.token_urlsafe(16)
    hub_port = free_port(options.port)
    kits_secret = await asyncio.to_thread(demo_kits_secret, data)
    hub = HubSettings(
        data_dir=str(data / "hub"),
        http=HubHttp(host=HOST, port=hub_port),
        mqtt=HubMqtt(url=url, client_id="cordon-hub-demo", username="cordon-hub"),
        watchlists=WatchlistSettings(csv=[str(demo_watchlist_path())]),
        console=ConsoleSettings(token=console_code),
        feed=FeedSettings(token=feed_token),
        alerts=AlertSettings(fold_window_s=600),
        kits=HubKits(id_secret_file=str(kits_secret)),
    )
    accounts = await asyncio.to_thread(demo_accounts, hub)
    sites = [(create_hub(hub), HOST, hub_port)]
    lines = [
        f"  指挥中心 command console: http://{HOST}:{hub_port}/   access code: {console_code}",
        *account_lines(accounts),
    ]
    edges, edge_lines = demo_edges(
        options, data, url, f"http://{HOST}:{hub_port}", feed_token, tablet_code, kits_secret
    )
    sites += edges
    lines += edge_lines
    started = asyncio.Event()
    stop = stop or asyncio.Event()
    timer = None
    if options.duration_s:
        timer = asyncio.get_running_loop().call_later(options.duration_s, stop.set)

    async def announce() -> None:
        await started.wait()
        print("\nCordon demo is running (Ctrl-C stops it)", flush=True)
        print(f"  MQTT broker: {url}" + (" (embedded)" if broker else ""), flush=True)
        print("\n".join(lines), flush=True)
        print(
            "Watchlisted plates appear in the simulated traffic; alerts show within a minute.\n", flush=True
        )
        if ready is not None:
            ready.set()

    announcer = asyncio.create_task(announce())
    try:
        await serve_apps(sites, ready=started, stop=stop)
    finally:
        announcer.cancel()
        if timer is not None:
            timer.cancel()
        if broker is not None:
            await broker.stop()
        print("Cordon demo stopped.", flush=True)
