"""Fault suite (issue 4): real cameras' traffic through a real edge, Mosquitto and hub, with a fault mid-stream.

Every case streams generic JSON reads from test cameras into a real ``cordon edge`` process (a tenth
of them of plates on the hub's watchlist, so alerts are expected), injects its fault while reads are
in flight, recovers, and then asserts:

* every read a camera got a 200 for is in the hub's record exactly once (case 5: or inside a range
  the edge reported dropped), and no read is there twice;
* every expected alert reached the command console and the checkpoint's tablet, and none arrived
  twice (see ``AlertWatch`` for what "twice" means across a restart);
* the edge's outbox drained, so nothing is left waiting.

Each case also proves the fault hit work in flight: right before injecting it reads the edge's
``/metrics`` and fails as "fault missed" unless ``cordon_edge_outbox_depth`` is above zero.

Outage lengths are settings: keepalives of 2 s and an ack timeout of 2 s make "minutes" a few seconds.

Case 8 (issue 22) runs the hub on PostgreSQL, on a cluster of the case's own, and crashes the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cordon.testing import PostgresCluster
from protocols import signing, topics
from protocols.messages import Ack, decode
from tests.support import (
    Mosquitto,
    Service,
    UplinkCut,
    broker_sys_value,
    edge_service,
    get_health,
    get_json,
    hub_service,
    login,
    scrape,
    session,
    stored_camera_event_ids,
    stored_camera_event_ids_postgresql,
    until,
)

pytestmark = pytest.mark.fault

CHECKPOINT = "SD-DZ-001"
CAMERAS = {"cam1": "t1", "cam2": "t2"}
CONSOLE_CODE = "console-code"
TABLET_CODE = "tablet-code"
METRICS_TOKEN = "scrape-secret"
FEED_TOKEN = "feed-secret"
WATCHED = ("鲁Q8K2L1", "冀F7M395")
WATCHLIST = (
    "plate,list,action,priority,reason\n"
    "鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n"
    "冀F7M395,涉毒嫌疑车辆,intercept,90,毒品案件关联车辆\n"
)
#: Every HIT_EVERY-th read of a camera is of a watched plate.
HIT_EVERY = 10
KEEPALIVE_S = 2
ACK_TIMEOUT_S = 2.0
#: Pause between one camera's pushes: two cameras make about 30 reads a second.
PUSH_PAUSE_S = 0.05
SETTLE_S = 90.0
SYS_DROPPED = "$SYS/broker/publish/messages/dropped"


# -- cameras -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    epoch: int
    seq: int
    plate: str


@dataclass
class Cameras:
    """Test cameras pushing reads to the edge until stopped, recording which event ids got a 200."""

    edge: Service
    tag: str
    accepted: dict[str, Accepted] = field(default_factory=dict)
    unanswered: Counter[str] = field(default_factory=Counter)
    _count: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _http: aiohttp.ClientSession | None = None

    async def start(self) -> Cameras:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._tasks = [asyncio.create_task(self._lane(cam, token)) for cam, token in CAMERAS.items()]
        return self

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._http is not None:
            await self._http.close()

    async def pushed(self, more: int, timeout: float = 60.0, what: str = "reads accepted") -> None:
        """Wait until ``more`` further reads got their 200."""
        target = len(self.accepted) + more
        await until(lambda: len(self.accepted) >= target, timeout=timeout, what=f"{more} {what}")

    async def burst(self, n: int) -> None:
        """``n`` concurrent pushes from the first camera; returns when every one is answered."""
        cam, token = next(iter(CAMERAS.items()))
        await asyncio.gather(*(self.push(cam, token) for _ in range(n)))

    async def push(self, camera: str, token: str) -> bool:
        i = self._count[camera]
        self._count[camera] += 1
        event_id = f"{self.tag}-{camera}-{i}"
        plate = (
            WATCHED[(i // HIT_EVERY) % len(WATCHED)]
            if i % HIT_EVERY == HIT_EVERY - 1
            else f"鲁C{camera[-1]}{i:04d}"
        )
        assert self._http is not None
        try:
            async with self._http.post(
                f"{self.edge.base}/api/v1/cameras/{camera}/reads",
                json={"plate": plate, "event_id": event_id, "confidence": 90},
                headers={"X-Camera-Token": token},
            ) as resp:
                if resp.status != 200:
                    self.unanswered[f"HTTP {resp.status}"] += 1
                    return False
                answer = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.unanswered[type(exc).__name__] += 1
            return False
        self.accepted[event_id] = Accepted(answer["epoch"], answer["seq"], plate)
        return True

    async def _lane(self, camera: str, token: str) -> None:
        while not self._stop.is_set():
            ok = await self.push(camera, token)
            await asyncio.sleep(PUSH_PAUSE_S if ok else 0.2)  # a camera backs off while its edge is away

    def expected_alerts(self) -> set[tuple[str, int, int]]:
        """(checkpoint, epoch, seq) of every accepted read of a watched plate: each must raise one alert."""
        return {(CHECKPOINT, a.epoch, a.seq) for a in self.accepted.values() if a.plate in WATCHED}


# -- alerts on the live feeds ----------------------------------------------------------------------------


class AlertWatch:
    """Counts alert frames per ``alert_id`` on a live feed (console or tablet), one counter per connection.

    A live feed starts every connection with the recent alerts (the console's from the hub's record,
    the tablet's from the edge's alert log), then sends new ones as they are raised. So:

    * on one connection an alert id must arrive at most once: a second frame, whether the replay and
      a live frame or two live frames, is an alert shown twice;
    * across a restart of the service behind the feed, the watcher logs in again and opens a new
      connection, whose replay repeats what the old connection showed. That repeat is the history a
      newly opened page draws, not a second alarm, so it is not counted against the product; an alert
      that only the replay of the new connection shows still counts as delivered, because the replay
      is exactly what an officer or operator opening the page sees;
    * a feed whose service is not restarted (the tablet in every case but 3, the console in every case
      but 1) stays on one connection for the whole case, so there "at most once per connection" is
      "exactly once, ever".
    """

    def __init__(self, name: str, service: Service, code: str) -> None:
        self.name = name
        self.service = service
        self.code = code
        self.connections: list[Counter[str]] = []
        self.keys: dict[str, tuple[str, int, int]] = {}
        self.reads: set[tuple[str, int]] = set()
        """(plate, seq) of the read frames seen (the tablet's feed shows every read as it is taken)."""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> AlertWatch:
        self._task = asyncio.create_task(self._run())
        await until(lambda: self.connections, timeout=30, what=f"{self.name} live feed")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with session() as http:
                    await login(http, self.service.base, self.code)
                    async with http.ws_connect(f"{self.service.base}/api/v1/ws") as ws:
                        counts: Counter[str] = Counter()
                        self.connections.append(counts)
                        async for message in ws:
                            if message.type is not aiohttp.WSMsgType.TEXT:
                                break
                            frame = json.loads(message.data)
                            if frame.get("type") == "read":
                                self.reads.add((frame["read"]["plate"], frame["read"]["seq"]))
                            if frame.get("type") == "alert":
                                alert = frame["alert"]
                                counts[alert["alert_id"]] += 1
                                self.keys[alert["alert_id"]] = (
                                    alert["checkpoint"],
                                    alert["epoch"],
                                    alert["seq"],
                                )
            except (aiohttp.ClientError, AssertionError, OSError, TimeoutError):
                pass  # the service is away: try again
            await asyncio.sleep(0.3)

    def delivered(self) -> set[tuple[str, int, int]]:
        return {self.keys[a] for counts in self.connections for a in counts}

    def twice(self) -> list[str]:
        return [
            f"{self.name} connection {i}: alert {a} arrived {n} times"
            for i, counts in enumerate(self.connections)
            for a, n in counts.items()
            if n > 1
        ]


# -- the system under test -----------------------------------------------------------------------------


@dataclass
class Rig:
    broker: Mosquitto
    hub: Service
    edge: Service
    http: aiohttp.ClientSession
    """Signed in to the hub's console API."""
    cut: UplinkCut | None = None
    store_dsn: str | None = None
    """The hub's database when its store is on PostgreSQL (None: SQLite under its data folder)."""
    figures: dict[str, Any] = field(default_factory=dict)
    """What the case measured, printed as one JSON line when it settled (for the record, not asserted)."""

    async def edge_metrics(self) -> dict[str, float]:
        return await scrape(self.http, self.edge.base, METRICS_TOKEN)

    async def hub_metrics(self) -> dict[str, float]:
        return await scrape(self.http, self.hub.base, METRICS_TOKEN)

    def stored(self) -> Counter[str]:
        if self.store_dsn is not None:
            return stored_camera_event_ids_postgresql(self.store_dsn)
        return stored_camera_event_ids(self.hub.workdir / "data")

    async def work_in_flight(self, within_s: float = 10.0) -> float:
        """Right before a fault: the edge's unacknowledged events; the case fails as "fault missed"
        if there are none within ``within_s`` (the fault would hit an idle system)."""
        deadline = time.monotonic() + within_s
        while True:
            depth = (await self.edge_metrics())["cordon_edge_outbox_depth"]
            if depth > 0:
                self.figures["in_flight_at_fault"] = depth
                return depth
            if time.monotonic() > deadline:
                pytest.fail(
                    "fault missed: the edge's outbox held no unacknowledged events when the fault was due"
                )
            await asyncio.sleep(0.01)

    async def checkpoint(self) -> dict[str, Any] | None:
        rows = (await get_json(self.http, f"{self.hub.base}/api/v1/checkpoints"))["checkpoints"]
        return next((row for row in rows if row["checkpoint"] == CHECKPOINT), None)

    def logs(self) -> str:
        return f"--- hub log ---\n{self.hub.log()[-2500:]}\n--- edge log ---\n{self.edge.log()[-2500:]}"

    async def settle(
        self,
        cams: Cameras,
        console: AlertWatch,
        tablet: AlertWatch,
        dropped: list[tuple[int, int, int]] | None = None,
    ) -> None:
        """After recovery: every accepted read stored exactly once (or, given ``dropped`` (epoch, lo, hi)
        ranges, inside one of them), every expected alert on console and tablet once, the outbox empty."""
        accepted = cams.accepted
        started = time.monotonic()

        def owed(stored: Counter[str]) -> list[str]:
            return [e for e, a in accepted.items() if stored[e] == 0 and not _within(a, dropped)]

        try:
            await until(
                lambda: not owed(self.stored()),
                timeout=SETTLE_S,
                interval=0.3,
                what="every accepted read in the hub's record",
            )
            await until(self._drained, timeout=SETTLE_S, interval=0.3, what="the edge's outbox drained")
        except TimeoutError as exc:
            missing = owed(self.stored())
            pytest.fail(
                f"{exc}: {len(missing)} of {len(accepted)} accepted reads not stored "
                f"(e.g. {missing[:5]})\n{self.logs()}"
            )
        self.figures["settle_s"] = round(time.monotonic() - started, 1)

        expected = cams.expected_alerts()
        assert expected, "the stream had no watched plates: no alert was put to the test"
        try:
            await until(
                lambda: expected <= console.delivered() and expected <= tablet.delivered(),
                timeout=30,
                what="every expected alert on console and tablet",
            )
        except TimeoutError:
            pytest.fail(
                f"alerts never delivered: console {sorted(expected - console.delivered())[:5]}, "
                f"tablet {sorted(expected - tablet.delivered())[:5]}\n{self.logs()}"
            )
        await self.last_word(cams.tag, console, tablet)
        stored = self.stored()
        twice = {e: n for e, n in stored.items() if n > 1}
        assert not twice, f"reads stored more than once: {dict(list(twice.items())[:10])}"
        assert not owed(stored)
        twice_alerts = console.twice() + tablet.twice()
        assert not twice_alerts, "\n".join(twice_alerts[:10])
        self.figures.update(
            accepted=len(accepted),
            alerts=len(expected),
            unanswered=dict(cams.unanswered),
            console_connections=len(console.connections),
            tablet_connections=len(tablet.connections),
        )
        print(f"\nfault case {cams.tag}: {json.dumps(self.figures)}")

    async def last_word(self, tag: str, console: AlertWatch, tablet: AlertWatch) -> None:
        """Wait for the event that proves every earlier message had its chance to arrive (a resend
        stored twice, a second copy of an alert), instead of waiting a fixed time.

        One more read of a watched plate, pushed once all else settled: the edge sends its outbox in
        order and the broker delivers in order, so once the hub has stored it and the edge holds its
        acknowledgement, every batch sent before it has reached the hub and every message the hub
        published before that ack (copies of alerts too) has reached the edge. Its alert on the
        console's feed comes after every alert frame the hub sent the console before; a plain read
        pushed then shows on the tablet's feed after every frame the edge sent the tablet before."""
        camera, token = next(iter(CAMERAS.items()))

        async def push(event_id: str, plate: str) -> dict[str, Any]:
            async with (
                session() as cameras,
                cameras.post(
                    f"{self.edge.base}/api/v1/cameras/{camera}/reads",
                    json={"plate": plate, "event_id": event_id, "confidence": 90},
                    headers={"X-Camera-Token": token},
                ) as resp,
            ):
                assert resp.status == 200, await resp.text()
                return await resp.json()

        word = await push(f"{tag}-last-word", WATCHED[0])
        await until(
            lambda: self.stored()[f"{tag}-last-word"] == 1, timeout=SETTLE_S, what="the last read stored"
        )
        await until(self._drained, timeout=SETTLE_S, interval=0.3, what="the last read acknowledged")
        await until(
            lambda: (CHECKPOINT, word["epoch"], word["seq"]) in console.delivered(),
            timeout=30,
            what="the last read's alert on the console",
        )
        plain = await push(f"{tag}-last-read", "鲁E99999")
        await until(
            lambda: ("鲁E99999", plain["seq"]) in tablet.reads, timeout=30, what="the last read on the tablet"
        )

    async def _drained(self) -> bool:
        m = await self.edge_metrics()
        return m["cordon_edge_outbox_depth"] == 0 and m["cordon_edge_uplink_connected"] == 1


def _within(read: Accepted, dropped: list[tuple[int, int, int]] | None) -> bool:
    return bool(dropped) and any(read.epoch == e and lo <= read.seq <= hi for e, lo, hi in dropped or [])


def _merge(
    base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    out = {k: dict(v) for k, v in base.items()}
    for section, values in (extra or {}).items():
        out.setdefault(section, {}).update(values)
    return out


async def _start(service: Service) -> None:
    await asyncio.to_thread(service.start)


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path,
    *,
    persistence: bool = False,
    max_queued: int = 1000,
    via_cut: bool = False,
    hub_extra: dict[str, dict[str, Any]] | None = None,
    edge_extra: dict[str, dict[str, Any]] | None = None,
    store_dsn: str | None = None,
) -> AsyncIterator[Rig]:
    """Broker, hub and one edge (optionally behind an ``UplinkCut``), the edge's watchlist mirror in sync;
    with ``store_dsn`` the hub's store is that PostgreSQL database (its password from a secret file)."""
    if store_dsn is not None:
        parts = conninfo_to_dict(store_dsn)
        secret = tmp_path / "db-password"
        secret.write_text(f"{parts.pop('password')}\n", encoding="utf-8")
        store = {"backend": "postgresql", "dsn": make_conninfo(**parts), "password_file": str(secret)}
        hub_extra = _merge({"store": store}, hub_extra)
    broker = Mosquitto(
        tmp_path / "mosquitto", persistence=persistence, autosave_interval_s=1, max_queued_messages=max_queued
    )
    watchlist = tmp_path / "watchlist.csv"
    watchlist.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(
        tmp_path / "hub",
        broker.url,
        watchlist_csv=watchlist,
        token=CONSOLE_CODE,
        extra=_merge(
            {
                "mqtt": {"keepalive_s": KEEPALIVE_S},
                "metrics": {"token": METRICS_TOKEN},
                "feed": {"token": FEED_TOKEN},
                "console": {"recent_alerts": 1000},
                # Every watched read must raise its own alert, on the console and the tablet (the hub
                # announces the window to the edge): this suite counts each one delivered, so nothing folds.
                "alerts": {"fold_window_s": 0},
            },
            hub_extra,
        ),
    )
    cut = UplinkCut(broker.port) if via_cut else None
    edge = edge_service(
        tmp_path / "edge",
        CHECKPOINT,
        cut.url if cut else broker.url,
        cameras=CAMERAS,
        tablet_token=TABLET_CODE,
        extra=_merge(
            {
                "mqtt": {
                    "keepalive_s": KEEPALIVE_S,
                    "ack_timeout_s": ACK_TIMEOUT_S,
                    "status_interval_s": 1.0,
                },
                "hub": {"url": hub.base, "token": FEED_TOKEN},
                "metrics": {"token": METRICS_TOKEN},
                "passages": {"window_s": 1.0},
                "tablet": {"recent_alerts": 1000},
            },
            edge_extra,
        ),
    )
    http = session()
    try:
        await asyncio.to_thread(broker.start)
        if cut is not None:
            await cut.start()
        await _start(hub)
        await _start(edge)
        await login(http, hub.base, CONSOLE_CODE)
        r = Rig(broker, hub, edge, http, cut, store_dsn)
        hub_version = (await r.hub_metrics())["cordon_hub_watchlist_version"]

        async def mirror_in_sync() -> bool:
            m = await r.edge_metrics()
            return (
                m["cordon_edge_watchlist_version"] >= hub_version and m["cordon_edge_uplink_connected"] == 1
            )

        await until(mirror_in_sync, timeout=30, what="the edge's watchlist mirror in sync")
        yield r
    finally:
        await http.close()
        for service in (edge, hub):
            if service.proc is not None and service.proc.poll() is None:
                os.kill(service.proc.pid, signal.SIGCONT)  # a case may have left it stopped
            await asyncio.to_thread(service.stop, 10)
        if cut is not None:
            await cut.close()
        broker.stop()


@contextlib.asynccontextmanager
async def watching(r: Rig) -> AsyncIterator[tuple[AlertWatch, AlertWatch]]:
    console = await AlertWatch("console", r.hub, CONSOLE_CODE).start()
    tablet = await AlertWatch("tablet", r.edge, TABLET_CODE).start()
    try:
        yield console, tablet
    finally:
        await console.stop()
        await tablet.stop()


@contextlib.asynccontextmanager
async def streaming(r: Rig, tag: str) -> AsyncIterator[Cameras]:
    cams = await Cameras(r.edge, tag).start()
    try:
        yield cams
    finally:
        await cams.stop()


# -- 1. the hub is killed -----------------------------------------------------------------------------


async def test_hub_killed_and_restarted(tmp_path):
    async with rig(tmp_path) as r, watching(r) as (console, tablet):
        async with streaming(r, "hubkill") as cams:
            await cams.pushed(60)
            await r.work_in_flight()
            r.hub.kill()
            await cams.pushed(60, what="reads accepted with the hub dead")
            await _start(r.hub)
            await cams.pushed(60, what="reads accepted after the hub's restart")
        assert len(console.connections) >= 2, "the console never reconnected to the restarted hub"
        await r.settle(cams, console, tablet)


# -- 2. the broker is killed ----------------------------------------------------------------------------


@pytest.mark.parametrize("persistence", [False, True], ids=["no-persistence", "persistence"])
async def test_broker_killed_and_restarted(tmp_path, persistence):
    async with rig(tmp_path, persistence=persistence) as r, watching(r) as (console, tablet):
        async with streaming(r, "brokerkill") as cams:
            await cams.pushed(60)
            await asyncio.sleep(
                1.5
            )  # with persistence, let an autosave happen: a real broker has run a while
            await r.work_in_flight()
            if persistence:
                assert (r.broker.workdir / "mosquitto.db").exists(), (
                    "the broker has saved nothing to restart from"
                )
            r.broker.kill()
            await cams.pushed(60, what="reads accepted with the broker dead")
            await asyncio.to_thread(r.broker.restart)
            await cams.pushed(60, what="reads accepted after the broker's restart")
        await r.settle(cams, console, tablet)


# -- 3. the edge is killed right after answering cameras ----------------------------------------------------


async def test_edge_killed_right_after_answering_and_restarted(tmp_path):
    async with rig(tmp_path) as r, watching(r) as (console, tablet):
        async with streaming(r, "edgekill") as cams:
            await cams.pushed(60)
            for _ in range(50):
                await cams.burst(20)
                depth = (await r.edge_metrics())["cordon_edge_outbox_depth"]
                if depth > 0:
                    r.edge.kill()  # right after the 200s, with those reads not yet acknowledged
                    r.figures["in_flight_at_fault"] = depth
                    break
            else:
                pytest.fail("fault missed: every burst was acknowledged before the edge could be killed")
            await asyncio.sleep(1)
            await _start(r.edge)  # same data dir, same port: it must send what it had not been acked for
            await cams.pushed(60, what="reads accepted after the edge's restart")
        assert len(tablet.connections) >= 2, "the tablet never reconnected to the restarted edge"
        await r.settle(cams, console, tablet)
        epochs = {a.epoch for a in cams.accepted.values()}
        assert len(epochs) == 1, f"the restarted edge started a new epoch on the same disk: {epochs}"


# -- 4. the uplink is cut for longer than keepalive and session --------------------------------------------


def _end_session(port: int, client_id: str) -> None:
    """End a client's persistent session on the broker, as its expiry would: subscriptions and queued
    messages are gone. Mosquitto 2.0 cannot expire an MQTT 3.1.1 session sooner than an hour
    (``persistent_client_expiration`` takes hours at least), so the test does what the broker does at
    expiry by taking over the client id with a clean session."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True, protocol=paho.MQTTv311
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not client.is_connected():
            if time.monotonic() > deadline:
                raise TimeoutError("could not take over the edge's client id")
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_uplink_cut_past_keepalive_and_session_then_restored(tmp_path):
    async with rig(tmp_path, via_cut=True) as r, watching(r) as (console, tablet):
        assert r.cut is not None
        async with streaming(r, "cut") as cams:
            await cams.pushed(60)
            await r.work_in_flight()
            r.cut.cut()
            # Nobody hears a cut line: the edge learns it from its keepalive, the broker from its own,
            # and then fires the edge's last will, which tells the hub the checkpoint is offline.
            await until(lambda: _edge_offline(r), timeout=20, what="the edge noticing the cut")
            await until(lambda: _hub_sees_offline(r), timeout=20, what="the hub seeing the edge offline")
            await asyncio.to_thread(_end_session, r.broker.port, CHECKPOINT)
            await cams.pushed(60, what="reads accepted with the uplink cut")
            r.cut.restore()
            await cams.pushed(60, what="reads accepted after the uplink came back")
        await r.settle(cams, console, tablet)


async def _edge_offline(r: Rig) -> bool:
    return (await r.edge_metrics())["cordon_edge_uplink_connected"] == 0


async def _hub_sees_offline(r: Rig) -> bool:
    row = await r.checkpoint()
    return row is not None and row["online"] is False


# -- 5. the edge's outbox reaches its disk quota --------------------------------------------------------------

#: Small enough that half a minute of cut uplink overflows it, large enough for every hit it must keep.
OUTBOX_QUOTA = 48 * 1024


async def test_outbox_quota_drops_oldest_plain_reads_and_reports_them(tmp_path):
    async with (
        rig(tmp_path, via_cut=True, edge_extra={"outbox": {"max_bytes": OUTBOX_QUOTA}}) as r,
        watching(r) as (console, tablet),
    ):
        assert r.cut is not None
        async with streaming(r, "quota") as cams:
            await cams.pushed(40)
            await r.work_in_flight()
            r.cut.cut()

            async def dropping() -> bool:
                return (await r.edge_metrics())["cordon_edge_outbox_dropped_reads_total"] > 0

            try:
                await until(dropping, timeout=60, what="the outbox reaching its quota")
            except TimeoutError:
                pytest.fail(f"fault missed: the outbox never reached its quota of {OUTBOX_QUOTA} bytes")
            await cams.pushed(60, what="reads accepted past the quota")
            r.cut.restore()
            await cams.pushed(30, what="reads accepted after the uplink came back")
        edge_dropped = -1.0

        async def hub_knows_all_dropped() -> bool:
            # Passages closing after the cameras stopped can still push old reads out until the outbox drains.
            nonlocal edge_dropped
            m = await r.edge_metrics()
            edge_dropped = m["cordon_edge_outbox_dropped_reads_total"]
            row = await r.checkpoint()
            return (
                m["cordon_edge_outbox_depth"] == 0
                and row is not None
                and row["dropped_reads"] == edge_dropped
            )

        try:
            await until(hub_knows_all_dropped, timeout=SETTLE_S, interval=0.3, what="the hub's dropped_reads")
        except TimeoutError:
            pytest.fail(
                f"the hub's record of dropped reads {await r.checkpoint()} never matched the edge's "
                f"{edge_dropped}\n{r.logs()}"
            )
        gaps = (await get_json(r.http, f"{r.hub.base}/api/v1/gaps?checkpoint={CHECKPOINT}&limit=1000"))[
            "gaps"
        ]
        ranges = [(g["epoch"], g["lo"], g["hi"]) for g in gaps]
        assert sum(g["count"] for g in gaps) == edge_dropped
        r.figures.update(dropped_reads=edge_dropped, gap_ranges=len(ranges))
        await r.settle(cams, console, tablet, dropped=ranges)

        stored = r.stored()
        lost = [e for e in cams.accepted if stored[e] == 0]
        assert lost, "no accepted read was dropped: the quota was never put to the test"
        hits = [e for e, a in cams.accepted.items() if a.plate in WATCHED]
        assert all(stored[e] == 1 for e in hits), "a read of a watched plate was dropped"


# -- 6. the hub's disk write fails for a while ------------------------------------------------------------------

#: Holds an exclusive lock on the hub's database from another process, longer than the hub's busy timeout.
LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""
BUSY_TIMEOUT_S = 0.5
LOCK_HELD_S = 5.0


async def test_hub_database_locked_by_another_process(tmp_path):
    async with (
        rig(tmp_path, hub_extra={"store": {"busy_timeout_s": BUSY_TIMEOUT_S}}) as r,
        watching(r) as (console, tablet),
    ):
        failures_before = (await r.hub_metrics())["cordon_hub_commit_failures_total"]
        async with streaming(r, "locked") as cams:
            await cams.pushed(60)
            await r.work_in_flight()
            locker = subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(r.hub.workdir / "data" / "hub.db"), str(LOCK_HELD_S)],
                stdout=subprocess.PIPE,
            )
            try:
                assert locker.stdout is not None
                line = await asyncio.to_thread(locker.stdout.readline)
                assert line.strip() == b"locked", "the locking process did not get its lock"
                await cams.pushed(40, what="reads accepted while the hub cannot commit")

                async def says_locked() -> bool:
                    health = await get_health(r.http, f"{r.hub.base}/api/v1/health")
                    return health["status"] == "degraded" and "locked" in " ".join(health["reasons"])

                await until(says_locked, timeout=LOCK_HELD_S, what="the hub's health naming the locked store")
                assert r.hub.proc is not None and r.hub.proc.poll() is None, (
                    "the hub died of a locked database"
                )
                await asyncio.to_thread(locker.wait, LOCK_HELD_S + 30)
            finally:
                if locker.poll() is None:
                    locker.kill()
                    locker.wait()
            await cams.pushed(60, what="reads accepted after the lock was released")
        failures = (await r.hub_metrics())["cordon_hub_commit_failures_total"]
        r.figures["commit_failures"] = failures - failures_before
        await r.settle(cams, console, tablet)
        assert failures > failures_before, "no commit failed: the lock never hit the hub's writes"
        health = await get_health(r.http, f"{r.hub.base}/api/v1/health")
        assert health["status"] == "ok", health


# -- 7. a burst larger than Mosquitto's per-client queue ---------------------------------------------------------

BROKER_QUEUE = 20


async def test_burst_beyond_the_brokers_queue_for_a_stopped_hub(tmp_path):
    """The hub stops taking messages (SIGSTOP: its persistent session stays, its socket goes quiet) while
    the edge publishes one event per message, far more than Mosquitto queues per client; the broker's
    dropped-message counter must rise, so the loss was real, and the edge's resends must make it good."""
    async with (
        rig(tmp_path, max_queued=BROKER_QUEUE, edge_extra={"mqtt": {"batch_max": 1}}) as r,
        watching(r) as (console, tablet),
    ):
        dropped_before = await asyncio.to_thread(broker_sys_value, r.broker.port, SYS_DROPPED)
        async with streaming(r, "burst") as cams:
            await cams.pushed(40)
            await r.work_in_flight()
            assert r.hub.proc is not None
            r.hub.proc.send_signal(signal.SIGSTOP)
            try:
                await cams.pushed(6 * BROKER_QUEUE, what="reads accepted with the hub stopped")

                async def dropped() -> float:
                    value = await asyncio.to_thread(broker_sys_value, r.broker.port, SYS_DROPPED)
                    return value if value > dropped_before else 0

                try:
                    dropped_after = await until(dropped, timeout=20, interval=0.5, what="the broker dropping")
                except TimeoutError:
                    pytest.fail("fault missed: the broker dropped nothing, the burst fit its queue")
            finally:
                r.hub.proc.send_signal(signal.SIGCONT)
            await cams.pushed(40, what="reads accepted after the hub resumed")
        r.figures["broker_dropped"] = dropped_after - dropped_before
        await r.settle(cams, console, tablet)
        assert dropped_after > dropped_before


# -- 8. PostgreSQL crashes under load (issue 22) -----------------------------------------------------------------


@dataclass
class AckWatch:
    """Every acknowledgement the hub publishes to the checkpoint, with when it arrived (a subscriber of the
    test's own on the broker: the edge's view, without the edge's processing)."""

    port: int
    heard: list[tuple[float, Ack]] = field(default_factory=list)
    _client: paho.Client | None = None

    def start(self) -> AckWatch:
        subscribed = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="fault-ack-watch", protocol=paho.MQTTv311)
        client.on_connect = lambda c, *_: c.subscribe(topics.ack(CHECKPOINT), qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda _c, _u, m: self.heard.append(
            (time.monotonic(), decode(Ack, signing.split(m.payload)[0]))
        )
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        self._client = client
        if not subscribed.wait(10):
            raise TimeoutError("the ack watcher could not subscribe")
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def between(self, since: float, until: float) -> list[Ack]:
        return [ack for at, ack in self.heard if since <= at <= until]


def _hold_checkpoints_lock(dsn: str) -> psycopg.Connection:
    """A transaction holding the checkpoints table, returned once a transaction of the hub waits for it."""
    conn = psycopg.connect(dsn)
    conn.execute("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE")
    deadline = time.monotonic() + 10
    while not conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    ).fetchone()[0]:  # type: ignore[index]
        if time.monotonic() > deadline:
            conn.close()
            pytest.fail("fault missed: no transaction of the hub was in flight to be cut off")
        time.sleep(0.01)
    return conn


async def _health(r: Rig) -> dict[str, Any]:
    return await get_health(r.http, f"{r.hub.base}/api/v1/health")


async def test_postgresql_crashes_under_load_and_comes_back(tmp_path):
    """The hub's store on PostgreSQL, which crashes (``pg_ctl stop -m immediate``: no shutdown checkpoint,
    recovery at the next start) while reads stream in, stays down past the edge's ack timeout, then starts
    again. Meanwhile the hub must say it is degraded because of its store, acknowledge nothing (what it
    could not commit is the edge's to send again), turn none of it into dead letters (an outage is not bad
    input), and once the database is back catch up: every read stored once, every alert delivered once."""
    cluster = PostgresCluster()  # the test's own: the session's cluster is not to be crashed
    try:
        await asyncio.to_thread(cluster.start)
        dsn = await asyncio.to_thread(cluster.create_database, "cordon")
        # No status messages after the first (they write the checkpoint's row too): the transaction the
        # crash cuts off is then a batch of events, its reads inserted and the row next.
        quiet = {"mqtt": {"status_interval_s": 3600}}
        async with rig(tmp_path, store_dsn=dsn, edge_extra=quiet) as r, watching(r) as (console, tablet):
            acks = await asyncio.to_thread(AckWatch(r.broker.port).start)
            try:
                before = await r.hub_metrics()
                async with streaming(r, "pgcrash") as cams:
                    await cams.pushed(60)
                    assert acks.heard, "no acknowledgement before the crash: the hub never committed"
                    await r.work_in_flight()
                    # So that the crash cuts a transaction off mid-job, not only the idle writer between
                    # two: a session of the test's own holds a lock the next batch needs (ingest updates
                    # its checkpoint's row after storing its events) until the crash ends every session.
                    locker = await asyncio.to_thread(_hold_checkpoints_lock, dsn)
                    try:
                        await asyncio.to_thread(cluster.stop, "immediate")
                    finally:
                        locker.close()

                    async def says_store_down() -> bool:
                        health = await _health(r)
                        return health["status"] == "degraded" and "store" in " ".join(health["reasons"])

                    await until(says_store_down, timeout=10, what="the hub's health naming its store")
                    down = time.monotonic()
                    assert (await r.hub_metrics())["cordon_hub_degraded"] == 1
                    # Past the edge's ack timeout, so its resends meet the dead database too.
                    await cams.pushed(40, what="reads accepted with PostgreSQL down")
                    await asyncio.sleep(max(0.0, down + 2 * ACK_TIMEOUT_S - time.monotonic()))
                    assert (await _health(r))["status"] == "degraded"
                    assert r.hub.proc is not None and r.hub.proc.poll() is None, "the hub died with its store"
                    restarting = time.monotonic()
                    # Commits that succeeded before the crash were acknowledged before the first failure
                    # made the hub degraded; the half second is for the broker's delivery of those.
                    during = acks.between(down + 0.5, restarting)
                    assert not during, f"acknowledged while PostgreSQL was down: {during[:5]}"
                    r.figures["outage_s"] = round(restarting - down, 1)
                    await asyncio.to_thread(cluster.start)

                    async def ok_again() -> bool:
                        return (await _health(r))["status"] == "ok"

                    await until(ok_again, timeout=30, what="the hub's health ok after PostgreSQL came back")
                    r.figures["ok_after_restart_s"] = round(time.monotonic() - restarting, 1)
                    await cams.pushed(60, what="reads accepted after PostgreSQL came back")
                after = await r.hub_metrics()
                assert after["cordon_hub_degraded"] == 0
                r.figures["commit_failures"] = (
                    after["cordon_hub_commit_failures_total"] - before["cordon_hub_commit_failures_total"]
                )
                assert r.figures["commit_failures"] > 0, (
                    "no commit failed: the crash never hit the hub's writes"
                )
                await r.settle(cams, console, tablet)
                health = await _health(r)
                assert health["dead_letters_total"] == 0, "the outage turned events into dead letters"
            finally:
                acks.stop()
    finally:
        await asyncio.to_thread(cluster.destroy)
