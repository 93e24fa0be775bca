"""A hub of several that cannot commit leaves the shared events to the others (issue 23, fault case 2;
``central/ingest/share.py``, ``HubLink.take_events``): the broker gives every batch to the other hubs, the
hub's own status says offline (on which the edges send again at once), and a probe that commits brings it
back. A hub alone never leaves. Real Mosquitto and a real PostgreSQL (through a relay the test cuts);
tests/test_faults_cluster.py runs the same fault with real processes and an edge."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest
from psycopg.conninfo import conninfo_to_dict

from central.app import create_app
from central.ingest.share import LEAVE_AFTER_S, PROBE_S, EventShare
from central.record.postgresql.store import PgStores
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.web import keys
from protocols import topics
from tests.support import until
from tests.test_hub_postgresql import Relay, _with_port, one_read, store_settings
from tests.test_several_hubs import Taken, hub_link, watching

EVENTS = topics.events("SD-DZ-001")
PLATE = "鲁Q8K2L1"
#: The share's intervals, shrunk so that the test waits less (the defaults: 1 s, 0.25 s, 0.5 s).
FAST = {"leave_after_s": 0.5, "check_s": 0.05, "probe_s": 0.2, "probe_timeout_s": 3.0}


def fail_a_job(store: PgStores) -> None:
    """As ingest would meet the cut: a job fails, and the writer says why."""
    with contextlib.suppress(Exception):
        store.submit(lambda tx: tx.execute("SELECT 1")).result(30)
    assert store.writer_error is not None


async def test_a_hub_leaves_the_shared_events_while_its_store_fails_and_takes_them_again_after(
    mosquitto, pg_dsn
):
    relay = Relay(conninfo_to_dict(pg_dsn)["port"])
    store = PgStores(_with_port(pg_dsn, relay.port))
    store.start()
    a_took, b_took = Taken(), Taken()
    with watching(mosquitto.port, topics.hub_status(), topics.every_hub_status()) as watcher:
        a = hub_link(mosquitto.url, "hub-a", a_took)
        b = hub_link(mosquitto.url, "hub-b", b_took)
        share = EventShare(store, b.take_events, **FAST)
        task = asyncio.create_task(share.run())
        try:
            await until(
                lambda: watcher.on(topics.one_hub_status("hub-b")) == [True], timeout=10, what="hub-b's birth"
            )
            # A blip (one failed job, the store back at once) is no outage: the probe commits, b stays.
            relay.down()
            fail_a_job(store)
            relay.up()
            await until(lambda: store.writer_error is None, timeout=10, what="the probe to commit")
            assert share.taking and share.left == 0 and b.taking_events

            relay.down()
            fail_a_job(store)
            cut = time.monotonic()
            await until(lambda: not b.taking_events, timeout=10, what="hub-b to leave the events")
            assert time.monotonic() - cut < 5
            assert share.left == 1 and share.reason is not None
            # Its own status says offline, which the edges read as "send again now"; on the tier's topic
            # its offline is answered by hub-a at once, so the tier stays up for edges of release r1.
            await until(
                lambda: (
                    watcher.on(topics.one_hub_status("hub-b")) == [True, False]
                    and watcher.on(topics.hub_status())[-2:] == [False, True]
                ),
                timeout=10,
                what="hub-b offline on its own topic, the tier offline then online",
            )
            assert watcher.on(topics.one_hub_status("hub-a")) == [True]
            before = b_took.count(EVENTS)
            for i in range(30):
                watcher.publish(EVENTS, f"while out {i}".encode())
            await until(lambda: a_took.count(EVENTS) == 30, timeout=10, what="hub-a to take every batch")
            assert b_took.count(EVENTS) == before, "hub-b was given batches after it left"

            # Reconnecting while out, it subscribes to everything but the events and says offline again.
            sock = b._client.socket()
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)
            await until(lambda: not b.connected, timeout=10, what="hub-b's link to drop")
            await until(lambda: b.connected, timeout=15, what="hub-b's link back")
            for i in range(20):
                watcher.publish(EVENTS, f"after the reconnect {i}".encode())
            await until(lambda: a_took.count(EVENTS) == 50, timeout=10, what="hub-a to take every batch")
            assert b_took.count(EVENTS) == before
            assert watcher.on(topics.one_hub_status("hub-b"))[-1] is False

            # The store back: the next probe commits and hub-b takes its share again.
            relay.up()
            await until(lambda: b.taking_events, timeout=10, what="hub-b to take the events again")
            assert store.writer_error is None and share.reason is None
            await until(
                lambda: watcher.on(topics.one_hub_status("hub-b"))[-1] is True,
                timeout=10,
                what="hub-b online",
            )
            for i in range(40):
                watcher.publish(EVENTS, f"back {i}".encode())
            await until(
                lambda: a_took.count(EVENTS) + b_took.count(EVENTS) == before + 90,
                timeout=10,
                what="every batch taken",
            )
            assert b_took.count(EVENTS) > before, "hub-b took no share after it came back"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            a.stop()
            b.stop()
            store.stop()
            relay.close()


async def test_a_hub_alone_keeps_its_events_while_its_store_fails(
    aiohttp_client, tmp_path, mosquitto, pg_dsn
):
    """Alone (no ``mqtt.share_group``) there is nobody to leave the events to: the hub stays subscribed
    and its persistent session has the broker keep what it is given while it cannot commit."""
    relay = Relay(conninfo_to_dict(pg_dsn)["port"])
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=mosquitto.url),
        console=ConsoleSettings(token="246810"),
        store=store_settings(tmp_path, _with_port(pg_dsn, relay.port)),
    )
    client = await aiohttp_client(create_app(settings))
    try:
        link = client.app[keys.LINK]
        assert await asyncio.to_thread(link.connected_event.wait, 10)

        async def health() -> dict:
            async with client.get("/api/v1/health") as resp:
                return await resp.json()

        base = 0

        async def received(n: int) -> bool:
            said = await health()
            return said["status"] == "degraded" and said["events_received_total"] == base + n

        with watching(mosquitto.port, EVENTS) as edge:

            async def first_stored() -> bool:
                # Sent again until stored (idempotent): the hub subscribes once its connect is handled.
                await asyncio.to_thread(edge.publish, EVENTS, one_read(1, PLATE))
                await asyncio.sleep(0.2)
                return (await health())["reads_total"] == 1

            await until(first_stored, timeout=15, what="the first read stored")
            base = (await health())["events_received_total"]
            relay.down()
            for seq in (2, 3):
                await asyncio.to_thread(edge.publish, EVENTS, one_read(seq, PLATE))
            await until(lambda: received(2), timeout=15, what="the hub degraded, the batches received")
            await asyncio.sleep(LEAVE_AFTER_S + 2 * PROBE_S + 1.0)  # past when one of several would have left
            for seq in (4, 5):
                await asyncio.to_thread(edge.publish, EVENTS, one_read(seq, PLATE))
            await until(lambda: received(4), timeout=15, what="the later batches received")
            assert link.taking_events and (await health())["taking_events"] is True
            with pytest.raises(ValueError, match="alone"):
                link.take_events(False)
        relay.up()
    finally:
        await client.close()
        relay.close()
