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
    assert refused_for_good(MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=135))) == "not authorized"
    assert refused_for_good(MqttConnectError(3)) is None, "server unavailable: try again"


@pytest.mark.system
async def test_a_broker_that_refuses_us_stops_the_uplink(tmp_path, aiohttp_client):
    broker = Mosquitto(tmp_path / "mosquitto", extra_config="allow_anonymous false\n").start()
    try:
        app = create_app(EdgeSettings(checkpoint="SD-DZ-001", data_dir=str(tmp_path / "edge"),
                                      mqtt=MqttSettings(url=broker.url, reconnect_min_s=0.2, reconnect_max_s=0.5)))
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
        read = PlateRead(seq=1, camera_id="c", captured_at=1.0, plate="鲁A12345", plate_raw="鲁A12345",
                         plate_valid=True)
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
