"""Several hubs on one broker (``mqtt.share_group``, issue 23): they split the edges' events through a
shared subscription, each keeps its own status with its last will, the tier's status stays online for
edges of release r1 while any hub is up, and an edge sends again at once what it had in flight when a
hub goes. Real Mosquitto throughout; the last test runs real hub and edge processes over PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.mqtt import HubLink
from central.settings import load_settings
from cordon.testing import DEPLOY_MOSQUITTO
from edge.outbox import PRIORITY_READ, OutboxStore
from edge.settings import MqttSettings
from edge.uplink import EdgeUplink
from protocols import topics
from protocols.messages import SCHEMA_VERSION, HubStatus, PlateRead, decode, encode
from runtime.config import SettingsError
from runtime.link import LinkState
from tests.support import (
    Mosquitto,
    Ring,
    Service,
    edge_service,
    get_json,
    hub_service,
    login,
    running,
    scrape,
    session,
    until,
)

GROUP = "cordon-hubs"


def test_the_share_group_and_the_hubs_id_are_topic_levels():
    settings = load_settings(
        None, {"CORDON_HUB_MQTT__SHARE_GROUP": GROUP, "CORDON_HUB_MQTT__CLIENT_ID": "hub-2"}
    )
    assert (settings.mqtt.share_group, settings.mqtt.client_id) == (GROUP, "hub-2")
    assert load_settings(None, {}).mqtt.share_group == "", "alone by default"
    with pytest.raises(SettingsError, match="share_group"):
        load_settings(None, {"CORDON_HUB_MQTT__SHARE_GROUP": "hubs/a"})
    with pytest.raises(SettingsError, match="client_id"):
        load_settings(None, {"CORDON_HUB_MQTT__SHARE_GROUP": GROUP, "CORDON_HUB_MQTT__CLIENT_ID": "hub+1"})
    # Alone, a client id is only a client id, as before.
    assert load_settings(None, {"CORDON_HUB_MQTT__CLIENT_ID": "hub bench 1"}).mqtt.client_id == "hub bench 1"


def test_one_name_per_hub():
    """``cluster.name`` and ``mqtt.client_id`` name one hub: either alone names it for both; in a cluster
    two different ones are refused; alone, the client id stays cordon-hub unless set."""

    def names(**env: str) -> tuple[str, str]:
        settings = load_settings(None, {f"CORDON_HUB_{k.upper()}": v for k, v in env.items()})
        return settings.hub_name, settings.mqtt.client_id

    shared = {"mqtt__share_group": GROUP}
    assert names(**shared, mqtt__client_id="hub-2") == ("hub-2", "hub-2")
    assert names(**shared, cluster__name="hub-3") == ("hub-3", "hub-3")
    assert names(**shared, cluster__name="hub-4", mqtt__client_id="hub-4") == ("hub-4", "hub-4")
    with pytest.raises(SettingsError, match="both name this hub"):
        names(**shared, cluster__name="hub-a", mqtt__client_id="hub-b")
    with pytest.raises(SettingsError, match="cluster.name 'hub 5'.*MQTT client id"):
        names(**shared, cluster__name="hub 5")
    # Alone: the name follows an explicit client id; a name leaves the client id (its session) as it was.
    assert names(mqtt__client_id="hub-6") == ("hub-6", "hub-6")
    assert names(cluster__name="hub-7") == ("hub-7", "cordon-hub")
    assert names(cluster__name="hub-8", mqtt__client_id="cordon-hub-x") == ("hub-8", "cordon-hub-x")
    assert names()[1] == "cordon-hub" and names()[0].endswith(":8080")


class Watcher:
    """A plain MQTT client that records what arrives (retained statuses included), thread-safely."""

    def __init__(self, port: int, *filters: str, tls: ssl.SSLContext | None = None) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"watcher-{time.monotonic_ns()}", protocol=paho.MQTTv311
        )
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.got.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[bool]:
        """The ``online`` of every hub status that arrived on ``topic``, in order."""
        with self._lock:
            return [decode(HubStatus, p).online for t, p, _ in self.got if t == topic and p]

    def count(self, topic: str) -> int:
        with self._lock:
            return sum(1 for t, _, _ in self.got if t == topic)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@contextlib.contextmanager
def watching(port: int, *filters: str, tls: ssl.SSLContext | None = None) -> Iterator[Watcher]:
    watcher = Watcher(port, *filters, tls=tls)
    try:
        yield watcher
    finally:
        watcher.close()


class Taken:
    """What one hub link was given, by topic."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self.payloads: list[bytes] = []

    def __call__(self, topic: str, payload: bytes, received_at: float, retained: bool = False) -> None:
        self.topics.append(topic)
        self.payloads.append(payload)

    def count(self, topic: str) -> int:
        return self.topics.count(topic)


def hub_link(
    url: str, hub_id: str, taken: Taken, group: str = GROUP, tls: ssl.SSLContext | None = None
) -> HubLink:
    link = HubLink(url, hub_id, None, None, 30, on_message=taken, share_group=group, tls=tls)
    link.start()
    assert link.connected_event.wait(10), f"{hub_id} did not connect"
    return link


def crash(link: HubLink) -> None:
    """As if the hub's process died: its network threads stop and its sockets close without a
    DISCONNECT, so the broker publishes both of its wills."""
    clients = [link._client] + ([link._tier._client] if link._tier is not None else [])
    for client in clients:
        client.loop_stop()
    for client in clients:
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


async def test_hubs_in_a_share_group_split_the_events_and_each_keeps_its_status(mosquitto):
    a_took, b_took = Taken(), Taken()
    events, status = topics.events("SD-DZ-001"), topics.status("SD-DZ-001")
    with watching(mosquitto.port, "cordon/v1/hub/#") as watcher:
        a = hub_link(mosquitto.url, "hub-a", a_took)
        b = hub_link(mosquitto.url, "hub-b", b_took)
        try:
            assert a._client._clean_session is True and b._client._clean_session is True
            await until(
                lambda: (
                    watcher.on(topics.one_hub_status("hub-a")) == [True]
                    and watcher.on(topics.one_hub_status("hub-b")) == [True]
                    and watcher.on(topics.hub_status())[-1:] == [True]
                ),
                timeout=10,
                what="both hubs' births and the tier's",
            )
            for i in range(40):
                watcher.publish(events, f"batch {i}".encode())
            watcher.publish(status, b"a checkpoint's status")
            await until(
                lambda: (
                    a_took.count(events) + b_took.count(events) == 40
                    and a_took.count(status) == b_took.count(status) == 1
                ),
                timeout=10,
                what="every batch taken, the status by both",
            )
            # Each batch went to one hub, and each hub took some.
            assert a_took.count(events) > 0 and b_took.count(events) > 0
            taken = [
                p
                for t, p in zip(a_took.topics + b_took.topics, a_took.payloads + b_took.payloads, strict=True)
                if t == events
            ]
            assert sorted(taken) == sorted(f"batch {i}".encode() for i in range(40))

            # hub-a dies: its own will says offline; the tier's topic says offline (hub-a's second
            # connection's will) and hub-b answers online at once, so it ends online.
            crash(a)
            await until(
                lambda: (
                    watcher.on(topics.one_hub_status("hub-a")) == [True, False]
                    and watcher.on(topics.hub_status())[-2:] == [False, True]
                ),
                timeout=10,
                what="hub-a's will, and the tier offline then online again",
            )
            assert watcher.on(topics.one_hub_status("hub-b")) == [True]
            before = b_took.count(events)
            for i in range(10):
                watcher.publish(events, f"later {i}".encode())
            await until(
                lambda: b_took.count(events) == before + 10, timeout=10, what="hub-b taking every batch"
            )

            # hub-b stops cleanly: offline on its own topic and on the tier's, where nobody answers.
            b.stop()
            await until(
                lambda: (
                    watcher.on(topics.one_hub_status("hub-b")) == [True, False]
                    and watcher.on(topics.hub_status())[-1:] == [False]
                ),
                timeout=10,
                what="hub-b's goodbye on both topics",
            )
            await asyncio.sleep(0.5)
            assert watcher.on(topics.hub_status())[-1] is False, "no hub is left to say online"
        finally:
            b.stop()


async def test_a_hub_alone_keeps_its_status_on_the_tiers_topic(mosquitto):
    taken = Taken()
    with watching(mosquitto.port, "cordon/v1/hub/#") as watcher:
        link = HubLink(mosquitto.url, "cordon-hub-alone", None, None, 30, on_message=taken)
        link.start()
        try:
            assert link.connected_event.wait(10)
            await until(lambda: watcher.on(topics.hub_status()) == [True], timeout=10, what="the birth")
            assert link._tier is None and link._client._clean_session is False
        finally:
            link.stop()
        await until(lambda: watcher.on(topics.hub_status()) == [True, False], timeout=10, what="the goodbye")
        assert [t for t, _, _ in watcher.got if t != topics.hub_parameters()] == [topics.hub_status()] * 2


def acl_with_hubs(*names: str) -> str:
    """deploy/mosquitto/cordon.acl with the first hub's block again under each further hub's name, as
    docs/deploy.md says to do for each hub of several."""
    lines = (DEPLOY_MOSQUITTO / "cordon.acl").read_text(encoding="utf-8").splitlines()
    start = lines.index("user cordon-hub")
    end = lines.index("", start)
    added = [line for name in names for line in ["", f"user {name}", *lines[start + 1 : end]]]
    return "\n".join(lines[:end] + added + lines[end:]) + "\n"


@pytest.mark.system
async def test_hubs_with_certificates_of_their_own_share_the_events_under_the_deployed_acl(tmp_path):
    """The production broker config and ACL, TLS with `cordon pki` certificates: the ACL lets each hub
    user take the shared subscription (Mosquitto checks it against the topic filter) and be given its
    share, publish its own status and the tier's; a checkpoint reads them and cannot forge them."""
    ring = Ring.create(tmp_path / "pki", ["SD-DZ-001"])
    ring.pki.issue("cordon-hub-2", ["127.0.0.1"])
    acl = tmp_path / "cordon.acl"
    acl.write_text(acl_with_hubs("cordon-hub-2"), encoding="utf-8")
    broker = Mosquitto(tmp_path / "mosquitto", tls=ring.broker(), acl_file=acl).start()
    taken = {"cordon-hub": Taken(), "cordon-hub-2": Taken()}
    links: list[HubLink] = []
    events, own_status = topics.events("SD-DZ-001"), topics.status("SD-DZ-001")
    forged = topics.one_hub_status("cordon-hub")
    try:
        with (
            watching(broker.port, "cordon/v1/hub/#", tls=ring.client_context("SD-DZ-001")) as checkpoint,
            watching(broker.port, own_status, forged, tls=ring.client_context("cordon-hub")) as hubside,
        ):
            for name, took in taken.items():
                links.append(hub_link(broker.url, name, took, tls=ring.client_context(name)))
            await until(
                lambda: (
                    checkpoint.on(topics.one_hub_status("cordon-hub"))[-1:] == [True]
                    and checkpoint.on(topics.one_hub_status("cordon-hub-2"))[-1:] == [True]
                    and checkpoint.on(topics.hub_status())[-1:] == [True]
                ),
                timeout=15,
                what="the checkpoint to read both hubs' statuses and the tier's",
            )
            for i in range(30):
                checkpoint.publish(events, f"batch {i}".encode())
            await until(
                lambda: sum(t.count(events) for t in taken.values()) == 30,
                timeout=15,
                what="every batch taken by one hub",
            )
            assert all(t.count(events) > 0 for t in taken.values()), {
                n: t.count(events) for n, t in taken.items()
            }

            # A checkpoint may not speak for a hub: the broker drops it. Its own status, sent after on
            # the same connection, arrives; had the forgery passed, it would have come first.
            checkpoint.publish(forged, status(False), retain=True)
            checkpoint.publish(own_status, b"marker")
            await until(lambda: hubside.count(own_status), timeout=15, what="the checkpoint's marker")
            assert hubside.on(forged) == [True], "only the hub's own birth, retained"
    finally:
        for link in links:
            link.stop()
        broker.stop()


def status(online: bool) -> bytes:
    return encode(HubStatus(v=SCHEMA_VERSION, online=online, sent_at=time.time(), schema_versions=[1]))


async def test_an_edge_resends_at_once_when_one_hub_goes_and_sees_the_tier_up_while_another_runs(
    mosquitto, tmp_path
):
    """The hubs here are played by hand (nothing acknowledges), so only the edge's own rules resend;
    its ack timeout is a minute, longer than the test."""
    outbox = OutboxStore(tmp_path / "outbox.db")
    outbox.start()

    async def ignore(alert: object) -> None:
        return None

    events = topics.events("SD-DZ-001")
    uplink = EdgeUplink(
        "SD-DZ-001",
        MqttSettings(url=mosquitto.url, ack_timeout_s=60, reconnect_min_s=0.2, reconnect_max_s=1),
        outbox,
        on_alert=ignore,
    )
    with watching(mosquitto.port, events) as hubs:
        for hub in ("hub-a", "hub-b"):
            hubs.publish(topics.one_hub_status(hub), status(True), retain=True)
        task = asyncio.create_task(uplink.run())
        try:
            await until(
                lambda: uplink.state is LinkState.CONNECTED and uplink.hubs == {"hub-a": True, "hub-b": True},
                timeout=10,
                what="the edge to see both hubs",
            )
            assert uplink.hub_online is True
            reads = [
                PlateRead(
                    seq=0,
                    camera_id="c",
                    captured_at=1.0,
                    plate=f"鲁A1234{i}",
                    plate_raw="x",
                    plate_valid=True,
                )
                for i in range(5)
            ]
            uplink.enqueue((await outbox.append(reads, [PRIORITY_READ] * 5)).pending)
            await until(lambda: uplink.inflight == 5, timeout=10, what="the reads in flight")
            sent = hubs.count(events)

            # hub-a's will: everything in flight goes again now, not after the minute; the tier stays up.
            went = time.monotonic()
            hubs.publish(topics.one_hub_status("hub-a"), status(False), retain=True)
            await until(
                lambda: hubs.count(events) > sent and uplink.resent_events == 5,
                timeout=10,
                what="the edge to send its unacknowledged reads again",
            )
            assert time.monotonic() - went < 10
            assert uplink.hubs == {"hub-a": False, "hub-b": True} and uplink.hub_online is True

            # The tier's topic blinking offline (as the r1 edges are told) does not take the tier down.
            hubs.publish(topics.hub_status(), status(False), retain=True)
            await asyncio.sleep(0.3)
            assert uplink.hub_online is True
            # A hub joining again sends nothing again; the last hub going takes the tier down.
            resent = uplink.resent_events
            hubs.publish(topics.one_hub_status("hub-a"), status(True), retain=True)
            await until(lambda: uplink.hubs.get("hub-a") is True, timeout=10, what="hub-a back")
            assert uplink.resent_events == resent
            for n, hub in enumerate(("hub-a", "hub-b"), start=1):
                await until(lambda: uplink.inflight == 5, timeout=10, what="the reads in flight again")
                hubs.publish(topics.one_hub_status(hub), status(False), retain=True)
                await until(
                    lambda n=n: uplink.resent_events == resent + 5 * n, timeout=10, what=f"{hub} gone"
                )
            assert uplink.hub_online is False and uplink.hubs == {"hub-a": False, "hub-b": False}
            # A hub alone (or of release r1) says so on the tier's topic only: that is enough again.
            hubs.publish(topics.hub_status(), status(True), retain=True)
            await until(lambda: uplink.hub_online is True, timeout=10, what="the tier up")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for topic in (
                topics.one_hub_status("hub-a"),
                topics.one_hub_status("hub-b"),
                topics.hub_status(),
            ):
                hubs.publish(topic, b"", retain=True)
            outbox.stop()


# -- real processes: two hubs over one PostgreSQL database, one edge ------------------------------------------
METRICS_TOKEN = "metrics-secret"
TABLET = "tablet-code"


def _hub(tmp_path: Path, name: str, broker_url: str, dsn: str) -> Service:
    return hub_service(
        tmp_path / name,
        broker_url,
        extra={
            "mqtt": {"client_id": name, "share_group": GROUP},
            "store": {"backend": "postgresql", "dsn": dsn},
            "metrics": {"token": METRICS_TOKEN},
        },
    )


async def _batches(http: aiohttp.ClientSession, hub: Service) -> float:
    return (await scrape(http, hub.base, METRICS_TOKEN)).get("cordon_hub_batches_committed_total", 0.0)


@pytest.mark.system
@pytest.mark.timeout(300)
@pytest.mark.parametrize("release", ["this", "r1"])
async def test_two_hubs_share_an_edges_events_and_one_dying_loses_nothing(
    tmp_path, mosquitto, pg_dsn, release, request
):
    """An edge of this release sees each hub and resends on the dying hub's will, the tier up throughout;
    an edge of release r1 (RELEASES) sees the tier's topic blink offline and online and replays."""
    this = release == "this"
    a, b = _hub(tmp_path, "hub-a", mosquitto.url, pg_dsn), _hub(tmp_path, "hub-b", mosquitto.url, pg_dsn)
    # An ack timeout longer than the test: only the hub's going can make the edge send again in time.
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam1": "t1"},
        tablet_token=TABLET,
        extra={"mqtt": {"ack_timeout_s": 60.0}},
        python=sys.executable if this else request.getfixturevalue("previous_python"),
    )
    with running(a, b, edge):
        try:
            await asyncio.to_thread(a.start)  # the first start makes the tables; then the other hub
            await asyncio.to_thread(b.start)
            await asyncio.to_thread(edge.start)
            async with session() as http:
                await login(http, edge.base, TABLET)

                async def uplink() -> dict[str, Any]:
                    return (await get_json(http, f"{edge.base}/api/v1/status"))["uplink"]

                async def push(n: int) -> None:
                    async with http.post(
                        f"{edge.base}/api/v1/cameras/cam1/reads",
                        headers={"X-Camera-Token": "t1"},
                        json={"plate": f"鲁A{n:05d}", "event_id": f"e-{n}"},
                    ) as resp:
                        assert resp.status == 200, await resp.text()

                async def drained() -> bool:
                    status = await get_json(http, f"{edge.base}/api/v1/status")
                    return status["outbox"]["depth"] == 0 and status["uplink"]["inflight"] == 0

                await until(
                    lambda: _eq(
                        uplink(),
                        lambda u: u["hubs"] == {"hub-a": True, "hub-b": True} if this else u["hub_online"],
                    ),
                    timeout=30,
                    what="the edge to see both hubs online",
                )
                # 1. Both hubs take a share of the edge's batches; every read is acknowledged.
                for n in range(40):
                    await push(n)
                    await asyncio.sleep(0.02)  # one batch each, more or less
                await until(drained, timeout=30, what="every read acknowledged")
                took = [await _batches(http, a), await _batches(http, b)]
                assert all(t > 0 for t in took), f"each hub took some batches: {took}"

                # 2. hub-a hangs (its share waits at the edge, unacknowledged), then dies.
                a.proc.send_signal(signal.SIGSTOP)
                for n in range(40, 80):
                    await push(n)
                    await asyncio.sleep(0.02)
                await until(
                    lambda: _eq(uplink(), lambda u: u["inflight"] > 0 and u["queued"] == 0),
                    timeout=30,
                    what="reads waiting on the hung hub",
                )
                stuck = await _settled(uplink)  # hub-b has acknowledged its share; hub-a's stay
                assert stuck > 0
                resent_before = (await uplink())["resent"]
                offline_seen: list[dict[str, Any]] = []

                async def watch_tier() -> None:
                    while True:
                        u = await uplink()
                        if u["hub_online"] is not True:
                            offline_seen.append(u)
                        await asyncio.sleep(0.05)

                watcher = asyncio.create_task(watch_tier())
                try:
                    killed = time.monotonic()
                    a.kill()
                    await until(
                        drained, timeout=30, what="hub-a's share sent again and acknowledged by hub-b"
                    )
                    took_s = time.monotonic() - killed
                    if this:
                        await until(
                            lambda: _eq(uplink(), lambda u: u["hubs"] == {"hub-a": False, "hub-b": True}),
                            timeout=10,
                            what="hub-a offline, hub-b online at the edge",
                        )
                    await asyncio.sleep(0.5)
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                u = await uplink()
                assert took_s < 20, f"sent again {took_s:.1f} s after the kill: the ack timeout (60 s) did it"
                assert u["resent"] > resent_before and u["hub_online"] is True
                if this:
                    assert not offline_seen, f"the edge saw the tier down while hub-b ran: {offline_seen[:3]}"
                    assert "hub hub-a went offline: sending again" in edge.log()
                else:  # the blink, seen or not by this poll, made it replay
                    assert "hub is online: replaying" in edge.log()

            # 3. Every read is in the record once.
            with psycopg.connect(pg_dsn) as db:
                rows = db.execute(
                    "SELECT seq, count(*) FROM reads WHERE checkpoint = 'SD-DZ-001' GROUP BY seq"
                ).fetchall()
            assert len(rows) == 80 and all(count == 1 for _, count in rows), rows
        except BaseException:
            for service in (a, b, edge):
                print(f"--- {service.workdir.name} log:\n{service.log()}")
            raise


async def _settled(uplink: Callable[[], Awaitable[dict[str, Any]]]) -> int:
    """The edge's count of events in flight once it has not changed for a second."""
    last, since = (await uplink())["inflight"], time.monotonic()
    while time.monotonic() - since < 1.0:
        await asyncio.sleep(0.1)
        now = (await uplink())["inflight"]
        if now != last:
            last, since = now, time.monotonic()
    return int(last)


async def _eq(value: Awaitable[dict[str, Any]], check: Callable[[dict[str, Any]], bool]) -> bool:
    return check(await value)
