"""Watchlist sync with real processes: deltas, fresh-edge snapshot, catch-up, local alerting with the uplink down."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import (
    edge_service,
    get_json,
    hub_service,
    login,
    next_frame,
    running,
    session,
    until,
)

pytestmark = pytest.mark.system

WATCHLIST = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n鲁A0K88B,秘密布控,covert,70,专案\n"
FEED_TOKEN = "feed-secret"


def edge(tmp_path, name, cp, broker, hub):
    return edge_service(
        tmp_path / name,
        cp,
        broker.url,
        cameras={"cam1": "t1"},
        extra={"hub": {"url": hub.base, "token": FEED_TOKEN}},
    )


async def edge_status(http, edge):
    return await get_json(http, f"{edge.base}/api/v1/status")


async def feed_at(http, edge, version):
    status = await edge_status(http, edge)
    return status if status["feed"]["version"] >= version else None


async def push(http, edge, plate, event_id):
    async with http.post(
        f"{edge.base}/api/v1/cameras/cam1/reads",
        headers={"X-Camera-Token": "t1"},
        json={"plate": plate, "event_id": event_id},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


@pytest.fixture
def hub(tmp_path, mosquitto):
    wl = tmp_path / "wl.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    service = hub_service(
        tmp_path / "hub", mosquitto.url, watchlist_csv=wl, extra={"feed": {"token": FEED_TOKEN}}
    )
    service.start()
    yield service
    service.stop()


async def test_fresh_edge_takes_a_snapshot_then_follows_deltas(tmp_path, mosquitto, hub):
    e1 = edge(tmp_path, "e1", "SD-DZ-001", mosquitto, hub).start()
    with running(e1):
        async with session() as http, session() as console:
            await login(http, e1.base, "tablet-code")
            await login(console, hub.base, "console-code")
            # A fresh edge: empty mirror, retained version 1 from the hub -> snapshot, without the covert list.
            status = await until(lambda: feed_at(http, e1, 1), timeout=30, what="first snapshot")
            assert status["feed"]["snapshots"] == 1 and status["feed"]["entries"] == 1
            # A new entry reaches the edge as a delta and the edge matches it locally.
            async with console.post(
                f"{hub.base}/api/v1/watchlists/涉毒嫌疑车辆/entries",
                json={"plate": "冀F7M395", "reason": "新线索"},
            ) as resp:
                assert resp.status == 200, await resp.text()
                version = (await resp.json())["feed_version"]
            status = await until(lambda: feed_at(http, e1, version), timeout=10, what="delta applied")
            assert status["feed"]["snapshots"] == 1 and status["feed"]["deltas"] >= 1
            ws = await http.ws_connect(f"{e1.base}/api/v1/ws")
            await next_frame(ws, "hello")
            await push(http, e1, "冀F7M395", "d-1")
            frame = await next_frame(ws, "alert", timeout=10)
            assert frame["alert"]["hit"]["reason"] == "新线索"
            # A deleted entry stops matching at the edge.
            async with console.delete(f"{hub.base}/api/v1/entries/涉毒嫌疑车辆:冀F7M395") as resp:
                assert resp.status == 200
                version = (await resp.json())["feed_version"]
            await until(lambda: feed_at(http, e1, version), timeout=10, what="delete applied")
            assert (await edge_status(http, e1))["feed"]["entries"] == 1
            # The console sees which edge holds which version.
            feed = await until(
                lambda: _edge_reports(console, hub, "SD-DZ-001", version),
                timeout=20,
                what="edge version at the hub",
            )
            assert feed["version"] == version
            await ws.close()


async def _edge_reports(http, hub, cp, version):
    feed = await get_json(http, f"{hub.base}/api/v1/feed")
    return (
        feed if any(e["checkpoint"] == cp and e["feed_version"] == version for e in feed["edges"]) else None
    )


async def test_offline_edge_catches_up(tmp_path, mosquitto, hub):
    e1 = edge(tmp_path, "e1", "SD-DZ-001", mosquitto, hub).start()
    async with session() as http, session() as console:
        await login(http, e1.base, "tablet-code")
        await login(console, hub.base, "console-code")
        await until(lambda: feed_at(http, e1, 1), timeout=30, what="first snapshot")
        e1.stop()
        versions = []
        for plate in ("苏C5H0D8", "豫N6B823", "皖L2G506"):
            async with console.post(
                f"{hub.base}/api/v1/watchlists/涉毒嫌疑车辆/entries", json={"plate": plate}
            ) as r:
                versions.append((await r.json())["feed_version"])
        e1.start()
        with running(e1):
            await login(http, e1.base, "tablet-code")
            status = await until(lambda: feed_at(http, e1, versions[-1]), timeout=30, what="catch-up")
            assert status["feed"]["entries"] == 4


async def test_tablet_alerts_with_the_uplink_down_and_the_hub_keeps_one_alert(tmp_path, mosquitto, hub):
    e1 = edge(tmp_path, "e1", "SD-DZ-001", mosquitto, hub).start()
    with running(e1):
        async with session() as http, session() as console:
            await login(http, e1.base, "tablet-code")
            await login(console, hub.base, "console-code")
            await until(lambda: feed_at(http, e1, 1), timeout=30, what="first snapshot")
            ws = await http.ws_connect(f"{e1.base}/api/v1/ws")
            await next_frame(ws, "hello")
            mosquitto.kill()  # the uplink is gone
            await until(lambda: _uplink_down(http, e1), timeout=20, what="uplink down")
            answer = await push(http, e1, "鲁Q8K2LI", "offline-1")  # a look-alike misread of a listed plate
            frame = await next_frame(ws, "alert", timeout=10)
            assert frame["alert"]["hit"]["entry_plate"] == "鲁Q8K2L1"
            assert frame["alert"]["seq"] == answer["seq"]
            # The uplink comes back: the hub records the read, its own hit and the edge's hit as ONE alert.
            mosquitto.start()  # the same broker again: the fixture stops it at the end
            await until(lambda: _alerts(console, hub), timeout=60, what="alert at the hub")
            # The edge's hit event goes up too and must not make a second alert: once the edge's
            # outbox is empty, the hub has committed it (it acknowledges only what it committed).
            await until(lambda: _outbox_empty(http, e1), timeout=30, what="the edge's hit acknowledged")
            alerts = await _alerts(console, hub)
            assert [a["alert_id"] for a in alerts] == [frame["alert"]["alert_id"]]
            await ws.close()


async def _outbox_empty(http, edge):
    status = await edge_status(http, edge)
    return status["outbox"]["depth"] == 0 and status["uplink"]["inflight"] == 0


async def _uplink_down(http, edge):
    return (await edge_status(http, edge))["uplink"]["state"] != "connected"


async def _alerts(http, hub):
    return (await get_json(http, f"{hub.base}/api/v1/alerts"))["alerts"]


async def test_edge_that_missed_deltas_catches_up_from_the_hub(tmp_path, mosquitto, hub):
    """The broker restarts without persistence while an edge is away: its session and the queued
    deltas are gone. Back online, the edge sees the (republished) retained version ahead of its
    mirror, no delta to close the gap, and takes the missed deltas from the hub's log over HTTP
    (``GET /api/v1/feed/deltas``) instead of a whole snapshot."""
    e1 = edge(tmp_path, "e1", "SD-DZ-001", mosquitto, hub).start()
    async with session() as http, session() as console:
        await login(http, e1.base, "tablet-code")
        await login(console, hub.base, "console-code")
        await until(lambda: feed_at(http, e1, 1), timeout=30, what="first snapshot")
        e1.stop()
        async with console.post(
            f"{hub.base}/api/v1/watchlists/涉毒嫌疑车辆/entries", json={"plate": "苏C5H0D8"}
        ) as r:
            missed = (await r.json())["feed_version"]
        mosquitto.kill()
        mosquitto.start()
        await asyncio.sleep(1.5)  # the hub reconnects and republishes the retained version
        e1.start()
        with running(e1):
            await login(http, e1.base, "tablet-code")
            status = await until(lambda: feed_at(http, e1, missed), timeout=30, what="gap closed")
            assert status["feed"]["snapshots"] == 0, "the gap was closed without a snapshot"
            assert status["feed"]["deltas"] == 1, "by the missed delta, from the hub's log"
            assert status["feed"]["entries"] == 2
