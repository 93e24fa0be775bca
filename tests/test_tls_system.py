"""The ring over TLS with the production broker config: deploy/mosquitto/mosquitto.conf and cordon.acl,
rendered with only paths and the port replaced, certificates made by `cordon pki`.

Real Mosquitto, real hub and edge processes: the spine works over MQTT+TLS with client certificates
and over HTTPS; a client without a valid certificate is refused; a checkpoint can neither publish
on another's topics (the broker drops it: the hub never sees it) nor read another's alerts.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import struct
import threading
import time

import aiohttp
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.record.sqlite.dayfiles import SqliteReadStore
from protocols.messages import SCHEMA_VERSION, CheckpointStatus, EventBatch, PlateRead, encode
from tests.support import (
    Mosquitto,
    Ring,
    edge_service,
    get_health,
    get_json,
    hub_service,
    login,
    running,
    session,
    until,
)

pytestmark = pytest.mark.system

WATCHLIST = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n"
FEED_TOKEN = "feed-secret"
CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


@pytest.fixture
def ring(tmp_path):
    return Ring.create(tmp_path / "pki", ["SD-DZ-001", "SD-LY-001"], revoked=("SD-XX-666",))


@pytest.fixture
def broker(tmp_path, ring):
    mosquitto = Mosquitto(tmp_path / "mosquitto", tls=ring.broker()).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def tls_system(tmp_path, ring, broker):
    wl = tmp_path / "wl.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    # The hub asks HTTPS clients for a certificate; the edge proves itself with its own, no feed token.
    hub = hub_service(
        tmp_path / "hub",
        broker.url,
        watchlist_csv=wl,
        extra={
            "mqtt": ring.mqtt("cordon-hub"),
            "http": {
                **ring.https("cordon-hub"),
                "ca_file": str(ring.ca),
                "crl_file": str(ring.pki.root / "crl.pem"),
            },
            "feed": {"token": FEED_TOKEN},
        },
    )
    edge = edge_service(
        tmp_path / "e1",
        "SD-DZ-001",
        broker.url,
        cameras={"cam1": "t1"},
        extra={
            "mqtt": ring.mqtt("SD-DZ-001"),
            "http": ring.https("SD-DZ-001"),
            "hub": {"url": hub.base, **ring.mqtt("SD-DZ-001")},
        },
    )
    hub.start()
    edge.start()
    with running(hub, edge):
        yield hub, edge


def hub_reads(hub) -> list:
    """Every read in the hub's record (its day files), through the store's own interface."""
    record = SqliteReadStore(hub.workdir / "data" / "record")
    return [r for day in record.days() for r in record.iter_reads(day)]


def hub_rows(hub, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{hub.workdir / 'data' / 'hub.db'}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


def mqtt_connect(port: int, ctx: ssl.SSLContext, client_id: str) -> bytes:
    """Send an MQTT 3.1.1 CONNECT over TLS and return the broker's first answer (b"" if it hung up).

    A refused certificate shows as an SSLError in the handshake or at the first read (TLS 1.3 sends
    the server's verdict on the client certificate after the client thinks the handshake is done).
    """
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(ident)) + ident
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(bytes([0x10, len(body)]) + body)
        return tls.recv(4)


def peer_cn(port: int, ctx: ssl.SSLContext) -> str:
    """The CN of the certificate a TLS server on ``port`` presents, verified by ``ctx``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        subject = tls.getpeercert()["subject"]
    return next(value for rdn in subject for key, value in rdn if key == "commonName")


def refused(port: int, ctx: ssl.SSLContext, client_id: str) -> bool:
    try:
        return mqtt_connect(port, ctx, client_id) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


class Client:
    """A paho client with a ring certificate, for playing a compromised or a foreign node."""

    def __init__(self, broker: Mosquitto, ring: Ring, name: str, client_id: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        self.client.tls_set_context(ring.client_context(name))
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set() if rc == 0 else None
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.connected.wait(10), f"{name} could not connect"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def subscribe(self, *topics: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe([(t, 1) for t in topics])
        assert done.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def batch(checkpoint: str, camera: str, plate: str = "鲁B12345") -> bytes:
    read = PlateRead(
        seq=1, camera_id=camera, captured_at=time.time(), plate=plate, plate_raw=plate, plate_valid=True
    )
    return encode(
        EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=7, sent_at=time.time(), events=[read])
    )


async def test_spine_over_tls_with_https_tablet_and_snapshot(tls_system, ring):
    hub, edge = tls_system
    assert hub.base.startswith("https://") and edge.base.startswith("https://")
    async with session(ring.client_context()) as http, session(ring.client_context()) as console:
        # The tablet page is served over HTTPS with a certificate the ring's CA verifies; the session
        # cookie is Secure.
        async with http.get(f"{edge.base}/login") as resp:
            assert resp.status == 200
        assert peer_cn(edge.port, ring.client_context()) == "SD-DZ-001"  # verified, host name included
        async with http.post(f"{edge.base}/login", json={"code": "tablet-code"}) as resp:
            assert resp.status == 200
            assert "Secure" in resp.headers["Set-Cookie"]
        await login(console, hub.base, "console-code")

        # Reads pushed over HTTPS reach the hub over MQTT+TLS and are acknowledged back to the edge.
        for i in range(20):
            async with http.post(
                f"{edge.base}/api/v1/cameras/cam1/reads",
                headers={"X-Camera-Token": "t1"},
                json={"plate": f"鲁B{i:05d}", "event_id": f"tls-{i}"},
            ) as resp:
                assert resp.status == 200, await resp.text()
        await until(
            lambda: len([r for r in hub_reads(hub) if r.checkpoint == "SD-DZ-001"]) == 20,
            timeout=30,
            what="reads stored by the hub",
        )

        async def drained():
            status = await get_json(http, f"{edge.base}/api/v1/status")
            return status["outbox"]["depth"] == 0 and status["uplink"]["inflight"] == 0

        await until(drained, timeout=30, what="acks back at the edge")

        # The edge fetched the watchlist snapshot from the hub over HTTPS (verifying the hub with the CA),
        # and a new entry reaches it as a delta on the feed topic the ACL lets the hub write.
        async def feed():
            return (await get_json(http, f"{edge.base}/api/v1/status"))["feed"]

        first = await until(
            lambda: _when(feed, lambda f: f["snapshots"] == 1 and f["entries"] == 1),
            timeout=30,
            what="snapshot over HTTPS",
        )
        async with console.post(
            f"{hub.base}/api/v1/watchlists/涉毒嫌疑车辆/entries", json={"plate": "冀F7M395"}
        ) as resp:
            assert resp.status == 200, await resp.text()
        after = await until(
            lambda: _when(feed, lambda f: f["entries"] == 2), timeout=30, what="delta over MQTT"
        )
        assert after["deltas"] >= 1 and after["version"] > first["version"]

        health = await get_health(console, f"{hub.base}/api/v1/health")
        assert health["checkpoints_online"] == 1 and health["dead_letters_total"] == 0

    # The snapshot route: a ring certificate opens it, no certificate (nor token) does not, a revoked
    # certificate does not even get through the handshake.
    snapshot = f"{hub.base}/api/v1/feed/snapshot"
    async with session(ring.client_context()) as anonymous, anonymous.get(snapshot) as resp:
        assert resp.status == 401
    async with session(ring.client_context("SD-LY-001")) as other, other.get(snapshot) as resp:
        assert resp.status == 200 and (await resp.json())["version"] >= 1
    async with session(ring.client_context("SD-XX-666")) as revoked:
        with pytest.raises(aiohttp.ClientError):
            async with revoked.get(snapshot) as resp:
                await resp.read()


async def _when(fetch, check):
    value = await fetch()
    return value if check(value) else None


async def test_a_checkpoint_cannot_publish_or_read_for_another(tls_system, ring, broker):
    hub, _ = tls_system
    rogue = Client(broker, ring, "SD-LY-001", "rogue-ly")
    fake_hub = Client(broker, ring, "cordon-hub", "test-hub-publisher")
    try:
        rogue.subscribe("cordon/v1/cp/SD-DZ-001/alerts", "cordon/v1/cp/SD-LY-001/alerts")
        # A perfect forgery on another checkpoint's topic: the broker drops it (ACL).
        rogue.publish("cordon/v1/cp/SD-DZ-001/events", batch("SD-DZ-001", "forged-cam"))
        # On its own status topic, claiming to be another checkpoint: reaches the hub, which refuses it.
        rogue.publish(
            "cordon/v1/cp/SD-LY-001/status",
            encode(
                CheckpointStatus(
                    v=SCHEMA_VERSION, checkpoint="SD-DZ-001", online=False, sent_at=time.time(), epoch=7
                )
            ),
        )
        # Then an honest batch on its own topic, after the others on the same connection.
        rogue.publish("cordon/v1/cp/SD-LY-001/events", batch("SD-LY-001", "marker-cam"))
        await until(
            lambda: [r for r in hub_reads(hub) if r.camera_id == "marker-cam"],
            timeout=30,
            what="the honest batch stored",
        )
        assert not [r for r in hub_reads(hub) if r.camera_id == "forged-cam"]
        letters = hub_rows(hub, "SELECT checkpoint, reason FROM dead_letters")
        assert len(letters) == 1, letters  # only the status: the forged events never reached the hub
        assert letters[0][0] == "SD-LY-001" and "differs from the topic" in letters[0][1]
        online = hub_rows(hub, "SELECT online FROM checkpoints WHERE checkpoint = 'SD-DZ-001'")
        assert online == [(1,)], "the forged offline status changed nothing"

        # Alerts for SD-DZ-001 never reach SD-LY-001, though it subscribed: its own do.
        fake_hub.publish("cordon/v1/cp/SD-DZ-001/alerts", b"for DZ only")
        fake_hub.publish("cordon/v1/cp/SD-LY-001/alerts", b"for LY")
        await until(lambda: rogue.received, timeout=10, what="LY's own alert")
        # One publisher, one subscriber: had the broker let DZ's alert through, it would have come first.
        assert rogue.received == [("cordon/v1/cp/SD-LY-001/alerts", b"for LY")]

        # Evidence: a checkpoint reads only its own requests and answers only on its own reply topic.
        rogue.subscribe("cordon/v1/cp/SD-DZ-001/evidence/request", "cordon/v1/cp/SD-LY-001/evidence/request")
        fake_hub.subscribe("cordon/v1/cp/+/evidence/reply")
        fake_hub.publish("cordon/v1/cp/SD-DZ-001/evidence/request", b"DZ's request")
        fake_hub.publish("cordon/v1/cp/SD-LY-001/evidence/request", b"LY's request")
        await until(lambda: len(rogue.received) >= 2, timeout=10, what="LY's own evidence request")
        assert rogue.received[1:] == [("cordon/v1/cp/SD-LY-001/evidence/request", b"LY's request")]
        rogue.publish("cordon/v1/cp/SD-DZ-001/evidence/reply", b"forged DZ picture")
        rogue.publish("cordon/v1/cp/SD-LY-001/evidence/reply", b"LY's picture")
        await until(lambda: fake_hub.received, timeout=10, what="LY's own evidence reply")
        assert fake_hub.received == [("cordon/v1/cp/SD-LY-001/evidence/reply", b"LY's picture")]
    finally:
        rogue.close()
        fake_hub.close()


def test_clients_without_a_valid_certificate_are_refused(tmp_path, ring, broker):
    assert mqtt_connect(broker.port, ring.client_context("SD-LY-001"), "ok-ly") == CONNACK_ACCEPTED
    assert refused(broker.port, ring.client_context(), "no-cert")
    assert refused(broker.port, ring.client_context("SD-XX-666"), "revoked")
    other = Ring.create(tmp_path / "other-pki", ["SD-DZ-001"])
    foreign = ssl.create_default_context(cafile=str(ring.ca))  # trusts our broker, holds another CA's cert
    foreign.load_cert_chain(
        other.pki.root / "SD-DZ-001" / "client.crt", other.pki.root / "SD-DZ-001" / "client.key"
    )
    assert refused(broker.port, foreign, "foreign")
    # And nobody gets in over plain MQTT on the TLS port.
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as raw:
        raw.sendall(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04anon")
        try:
            answer = raw.recv(4)
        except ConnectionResetError:
            answer = b""
        assert answer != CONNACK_ACCEPTED
