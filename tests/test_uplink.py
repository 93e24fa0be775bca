"""The edge uplink tells a broker that refuses it for good from a connection that merely died."""

from __future__ import annotations

import pytest
from aiomqtt import MqttCodeError
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge import keys
from edge.app import create_app
from edge.settings import EdgeSettings, MqttSettings
from edge.uplink import refused_for_good
from tests.support import Mosquitto, until


def test_only_a_refused_connect_is_for_good():
    # paho's MQTT_ERR_NO_CONN is 4, like CONNACK 4: a publish on a dying connection is not a refusal.
    # The fault suite's broker-kill case found the uplink giving up for good on exactly that.
    assert refused_for_good(MqttCodeError(4, "Could not publish message")) is None
    assert refused_for_good(MqttCodeError(5)) is None
    assert refused_for_good(MqttConnectError(4)) == "bad user name or password"
    assert (
        refused_for_good(MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=135)))
        == "not authorized"
    )
    assert refused_for_good(MqttConnectError(3)) is None, "server unavailable: try again"


@pytest.mark.system
async def test_a_broker_that_refuses_us_stops_the_uplink(tmp_path, aiohttp_client):
    broker = Mosquitto(tmp_path / "mosquitto", extra_config="allow_anonymous false\n").start()
    try:
        app = create_app(
            EdgeSettings(
                checkpoint="SD-DZ-001",
                data_dir=str(tmp_path / "edge"),
                mqtt=MqttSettings(url=broker.url, reconnect_min_s=0.2, reconnect_max_s=0.5),
            )
        )
        await aiohttp_client(app)
        uplink = app[keys.UPLINK]
        await until(lambda: uplink.state.value == "refused", timeout=20, what="the uplink to give up")
        assert "not authorized" in (uplink.last_error or "")
    finally:
        broker.stop()


async def test_events_chosen_for_a_batch_are_not_forgotten_when_the_connection_dies_meanwhile(tmp_path):
    """The fault suite's broker-kill case found a read left in the outbox for good: the sender had taken
    it from the queue and was loading its body when the dying connection cancelled it."""
    import asyncio
    import sqlite3

    import aiomqtt

    from edge.outbox import PRIORITY_READ, OutboxStore
    from edge.uplink import EdgeUplink
    from protocols.messages import PlateRead

    outbox = OutboxStore(tmp_path / "outbox.db")
    outbox.start()
    try:
        read = PlateRead(
            seq=1, camera_id="c", captured_at=1.0, plate="鲁A12345", plate_raw="鲁A12345", plate_valid=True
        )
        appended = await outbox.append([read], [PRIORITY_READ])

        async def ignore(alert):
            return None

        uplink = EdgeUplink("SD-DZ-001", MqttSettings(), outbox, on_alert=ignore)
        uplink.enqueue(appended.pending)
        # Another connection's write lock makes the outbox's load wait, so the sender is caught inside it.
        other = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        sender = asyncio.create_task(uplink._sender(aiomqtt.Client("127.0.0.1", 1)))
        await until(lambda: uplink.queued == 0, timeout=5, what="the sender taking the event")
        sender.cancel()
        other.execute("ROLLBACK")
        other.close()
        with pytest.raises(asyncio.CancelledError):
            await sender
        assert uplink.queued == 1 and uplink.inflight == 0, "the event is queued again, to be sent"
    finally:
        outbox.stop()


async def test_hits_with_thumbnails_are_sent_in_batches_under_the_hubs_payload_limit(tmp_path, mosquitto):
    """A replay of many hits, each carrying a ~16 KB thumbnail, must not make a batch the hub refuses
    as oversized (it would be a dead letter, the hits lost to the record)."""
    import asyncio
    import base64
    import os

    import aiomqtt

    from edge.outbox import PRIORITY_HIT, OutboxStore
    from edge.uplink import EdgeUplink
    from protocols import topics
    from protocols.messages import MAX_PAYLOAD_BYTES, THUMBNAIL_MAX_BYTES, EdgeHit, EventBatch, decode

    outbox = OutboxStore(tmp_path / "outbox.db")
    outbox.start()
    thumb = base64.b64encode(os.urandom(THUMBNAIL_MAX_BYTES)).decode()
    hits = [
        EdgeHit(
            seq=1,
            read_seq=i + 1,
            alert_id=f"A{i}",
            entry_id="e",
            list_id="l",
            kind="exact",
            score=1.0,
            explanation="x",
            feed_version=1,
            matcher_version="m",
            raised_at=1.0,
            thumbnail=thumb,
        )
        for i in range(80)
    ]  # 80 x 16 KB: about 2.5 times the limit
    appended = await outbox.append(hits, [PRIORITY_HIT] * len(hits))
    payloads: list[bytes] = []

    async def ignore(alert):
        return None

    uplink = EdgeUplink("SD-DZ-001", MqttSettings(), outbox, on_alert=ignore)
    uplink.enqueue(appended.pending)
    try:
        async with (
            aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hub-test") as hub,
            aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="SD-DZ-001") as edge,
        ):
            await hub.subscribe(topics.events("SD-DZ-001"), qos=1)

            async def collect():
                async for message in hub.messages:
                    payloads.append(bytes(message.payload))

            collector = asyncio.create_task(collect())
            sender = asyncio.create_task(uplink._sender(edge))
            uplink._wake.set()

            def all_sent():
                return sum(len(decode(EventBatch, p).events) for p in payloads) >= len(hits)

            try:
                await until(all_sent, timeout=30, what="every hit published")
            finally:
                sender.cancel()
                collector.cancel()
                await asyncio.gather(sender, collector, return_exceptions=True)
    finally:
        outbox.stop()
    assert len(payloads) >= 3 and all(len(p) <= MAX_PAYLOAD_BYTES for p in payloads)
    seqs = sorted(e.seq for p in payloads for e in decode(EventBatch, p).events)
    assert seqs == sorted(p.seq for p in appended.pending)  # each hit once, none lost


async def test_reads_wait_for_the_hubs_ack_to_travel_together_but_a_hit_never_waits(tmp_path, mosquitto):
    """Nagle's rule (``mqtt.hold_ms``): a read with nothing in flight goes at once; reads arriving while it is
    unacknowledged wait and go in one message when the ack comes, or when their hold ends without one; a
    hit goes at once and takes the waiting reads along. Without the rule every read went alone, and at a few
    hundred reads a second a hub on PostgreSQL spent its time on the fixed cost of one-read transactions."""
    import asyncio

    import aiomqtt

    from edge.outbox import PRIORITY_HIT, PRIORITY_READ, OutboxStore
    from edge.uplink import EdgeUplink
    from protocols import topics
    from protocols.messages import Ack, EdgeHit, EventBatch, PlateRead, decode

    outbox = OutboxStore(tmp_path / "outbox.db")
    outbox.start()
    messages: list[list[int]] = []  # the seqs of each message the hub got

    async def ignore(alert):
        return None

    uplink = EdgeUplink("SD-DZ-001", MqttSettings(hold_ms=400), outbox, on_alert=ignore)

    async def reads(*seqs: int) -> list[int]:
        events = [
            PlateRead(
                seq=0, camera_id="c", captured_at=1.0, plate=f"鲁A1234{s}", plate_raw="x", plate_valid=True
            )
            for s in seqs
        ]
        appended = await outbox.append(events, [PRIORITY_READ] * len(events))
        uplink.enqueue(appended.pending)
        return [p.seq for p in appended.pending]

    async def quiet(seconds: float) -> None:
        before = len(messages)
        await asyncio.sleep(seconds)
        assert len(messages) == before, f"sent while it should wait: {messages[before:]}"

    try:
        async with (
            aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hub-test") as hub,
            aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="SD-DZ-001") as edge,
        ):
            await hub.subscribe(topics.events("SD-DZ-001"), qos=1)

            async def collect():
                async for message in hub.messages:
                    messages.append([e.seq for e in decode(EventBatch, bytes(message.payload)).events])

            collector = asyncio.create_task(collect())
            sender = asyncio.create_task(uplink._sender(edge))
            try:
                first = await reads(1)
                await until(lambda: len(messages) == 1, timeout=10, what="a lone read sent at once")
                assert messages[0] == first
                held = [*(await reads(2)), *(await reads(3)), *(await reads(4))]
                await quiet(0.15)  # the first is unacknowledged: these wait (their hold is 0.4 s)
                await uplink._on_ack(Ack(v=1, epoch=outbox.epoch, ranges=[(first[0], first[0])]))
                await until(lambda: len(messages) == 2, timeout=10, what="the held reads after the ack")
                assert sorted(messages[1]) == sorted(held), "the three travel in one message"
                # Unacknowledged again: a hit goes at once, taking the reads that wait along.
                more = await reads(5)
                await quiet(0.1)
                hit = EdgeHit(
                    seq=0, read_seq=more[0], alert_id="A1", entry_id="e", list_id="l", kind="exact",
                    score=1.0, explanation="x", feed_version=1, matcher_version="m", raised_at=1.0,
                )  # fmt: skip
                appended = await outbox.append([hit], [PRIORITY_HIT])
                uplink.enqueue(appended.pending)
                await until(lambda: len(messages) == 3, timeout=10, what="the hit, at once")
                assert messages[2][0] == appended.pending[0].seq and more[0] in messages[2]
                # No ack comes: reads wait out their hold, then go anyway.
                late = await reads(6)
                await until(lambda: len(messages) == 4, timeout=10, what="a held read after its hold")
                assert messages[3] == late
            finally:
                sender.cancel()
                collector.cancel()
                await asyncio.gather(sender, collector, return_exceptions=True)
    finally:
        outbox.stop()
