"""Both MQTT modules turn Nagle's algorithm off on their broker connection.

With it on, each event batch and each acknowledgement could wait about 40 ms for a delayed TCP ACK,
so an edge's round trip (publish, commit, ack) cost ~90 ms and capped a replay at ~5,000 events/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from central.mqtt import HubLink
from edge.outbox import OutboxStore
from edge.settings import MqttSettings
from edge.uplink import EdgeUplink
from runtime.link import LinkState

from .support import until


def _nodelay(sock: socket.socket | None) -> int:
    assert isinstance(sock, socket.socket)
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_hub_link_sends_at_once(mosquitto):
    link = HubLink(mosquitto.url, "hub-nodelay-test", None, None, 30, on_message=lambda *a: None)
    link.start()
    try:
        assert link.connected_event.wait(10)
        assert _nodelay(link._client.socket()) == 1
    finally:
        link.stop()


async def test_edge_uplink_sends_at_once(mosquitto, tmp_path):
    outbox = OutboxStore(tmp_path / "outbox.db")
    outbox.start()

    async def on_alert(alert: object) -> None:
        return None

    uplink = EdgeUplink("SD-T-001", MqttSettings(url=mosquitto.url), outbox, on_alert=on_alert)
    task = asyncio.create_task(uplink.run())
    try:
        await until(
            lambda: uplink.state is LinkState.CONNECTED and uplink._client is not None,
            10,
            what="the uplink to connect",
        )
        assert uplink._client is not None
        assert _nodelay(uplink._client._client.socket()) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outbox.stop()
