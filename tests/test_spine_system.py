"""The spine, end to end with real processes: camera push -> edge -> Mosquitto -> hub -> console and tablet."""

from __future__ import annotations

import asyncio
import json
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.record.sqlite.dayfiles import SqliteReadStore
from tests.support import (
    edge_service,
    get_health,
    get_json,
    hub_service,
    login,
    next_frame,
    running,
    session,
    until,
)

pytestmark = pytest.mark.system

WATCHLIST = """plate,list,action,priority,reason
鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品
鲁H3D9Z1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品
鲁A0K88B,秘密布控车辆,covert,70,专案秘密布控
鲁F6P3W9,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品
"""


@pytest.fixture
def watchlist(tmp_path):
    path = tmp_path / "watchlist.csv"
    path.write_text(WATCHLIST, encoding="utf-8")
    return path


@pytest.fixture
def system(tmp_path, mosquitto, watchlist):
    hub = hub_service(tmp_path / "hub", mosquitto.url, watchlist_csv=watchlist)
    e1 = edge_service(tmp_path / "e1", "SD-DZ-001", mosquitto.url, cameras={"cam1": "t1", "cam2": "t2"})
    e2 = edge_service(tmp_path / "e2", "SD-LY-001", mosquitto.url, cameras={"cam1": "t3"})
    for service in (hub, e1, e2):
        service.start()
    with running(hub, e1, e2):
        yield hub, e1, e2


def stored_reads(hub) -> list[tuple[str, str | None, int]]:
    record = SqliteReadStore(hub.workdir / "data" / "record")
    return [(r.checkpoint, r.camera_event_id, r.seq) for day in record.days() for r in record.iter_reads(day)]


async def push(session, edge, camera, token, body):
    async with session.post(
        f"{edge.base}/api/v1/cameras/{camera}/reads", json=body, headers={"X-Camera-Token": token}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_every_read_stored_once_and_alerts_reach_console_and_tablet(system):
    hub, e1, e2 = system
    async with session() as console, session() as tablet, session() as e2_tablet, session() as cameras:
        await login(console, hub.base, "console-code")
        await login(tablet, e1.base, "tablet-code")
        await login(e2_tablet, e2.base, "tablet-code")
        console_ws = await console.ws_connect(f"{hub.base}/api/v1/ws")
        tablet_ws = await tablet.ws_connect(f"{e1.base}/api/v1/ws")
        await next_frame(console_ws, "hello")
        await next_frame(tablet_ws, "hello")

        pushed: set[str] = set()

        async def lane(edge, camera, token, prefix, n):
            for i in range(n):
                event_id = f"{prefix}-{i}"
                # each checkpoint sees its own vehicles: one plate at two checkpoints at once is a clone
                letter = "B" if edge is e1 else "C"
                await push(
                    cameras,
                    edge,
                    camera,
                    token,
                    {"plate": f"鲁{letter}{i % 10}{i:04d}"[:7], "event_id": event_id, "confidence": 90},
                )
                pushed.add(event_id)

        await asyncio.gather(
            lane(e1, "cam1", "t1", "a", 120),
            lane(e1, "cam2", "t2", "b", 120),
            lane(e2, "cam1", "t3", "c", 120),
        )
        # A listed plate read exactly, one read with a look-alike (1 -> I), a covert plate, and after it
        # another listed plate, all at e1 (the last one proves the tablet had its chance to get the covert).
        # (Another listed vehicle: a second read of the same one would fold into its alert, alerts.fold_window_s.)
        for event_id, plate in (
            ("hit-exact", "鲁Q8K2L1"),
            ("hit-lookalike", "鲁H3D9ZI"),
            ("hit-covert", "鲁A0K88B"),
            ("hit-after-covert", "鲁F6P3W9"),
        ):
            await push(cameras, e1, "cam1", "t1", {"plate": plate, "event_id": event_id})
            pushed.add(event_id)

        await until(lambda: len(stored_reads(hub)) >= len(pushed), timeout=60, what="all reads stored")
        for edge, http in ((e1, tablet), (e2, e2_tablet)):
            await until(
                lambda e=edge, h=http: _edge_depth(h, e), timeout=30, what=f"{edge.name}'s outbox drained"
            )
        # Then one more read at each edge: the broker delivers each edge's batches in order, so once
        # these are stored, a resend sent before them (a late duplicate) has had its chance to arrive.
        for edge, camera, token in ((e1, "cam1", "t1"), (e2, "cam1", "t3")):
            await push(cameras, edge, camera, token, {"plate": "鲁E99999", "event_id": f"last-{edge.name}"})
            pushed.add(f"last-{edge.name}")
        await until(
            lambda: {f"last-{e.name}" for e in (e1, e2)} <= {r[1] for r in stored_reads(hub)},
            timeout=30,
            what="the last reads stored",
        )
        rows = stored_reads(hub)
        ids = [r[1] for r in rows]
        assert len(ids) == len(set(ids)) == len(pushed), "every read stored exactly once"
        assert set(ids) == pushed

        seen = []
        for _ in range(4):
            frame = await next_frame(console_ws, "alert", timeout=30)
            seen.append(frame["alert"])
        by_plate = {a["plate_read"]: a for a in seen}
        assert by_plate["鲁Q8K2L1"]["hit"]["kind"] == "exact"
        assert by_plate["鲁Q8K2L1"]["hit"]["list_name"] == "涉毒嫌疑车辆"
        assert by_plate["鲁H3D9ZI"]["hit"]["kind"] == "equivalent"
        assert "1" in by_plate["鲁H3D9ZI"]["hit"]["explanation"]
        assert by_plate["鲁A0K88B"]["hit"]["action"] == "covert"
        assert all(a["checkpoint"] == "SD-DZ-001" for a in seen)

        # The covert alert reached the console above; the tablet must never get it. The hub handles
        # e1's reads in order and publishes each alert to the tablets' topic as it raises it, so the
        # alert of the listed read after the covert one comes after any the covert read could cause.
        tablet_alerts = [(await next_frame(tablet_ws, "alert", timeout=30))["alert"]]
        while tablet_alerts[-1]["plate_read"] != "鲁F6P3W9":
            tablet_alerts.append((await next_frame(tablet_ws, "alert", timeout=30))["alert"])
        assert sorted(a["plate_read"] for a in tablet_alerts) == ["鲁F6P3W9", "鲁H3D9ZI", "鲁Q8K2L1"]

        health = await get_health(console, f"{hub.base}/api/v1/health")
        assert health["status"] == "ok", health
        assert health["reads_total"] == len(pushed)
        assert health["alerts_total"] == 4
        assert health["checkpoints_online"] == 2

        await until(lambda: _edge_depth(tablet, e1), timeout=30, what="edge outbox drained")
        await console_ws.close()
        await tablet_ws.close()


async def _edge_depth(session, edge):
    status = await get_json(session, f"{edge.base}/api/v1/status")
    return status["outbox"]["depth"] == 0 and status["uplink"]["inflight"] == 0


async def test_malformed_mqtt_payload_is_dead_lettered_and_ingest_goes_on(system, mosquitto):
    hub, e1, _ = system
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="junk-sender", protocol=paho.MQTTv311)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        client.publish("cordon/v1/cp/SD-DZ-001/events", b"\x00\xffnot json at all", qos=1).wait_for_publish(5)
        forged = {
            "v": 1,
            "checkpoint": "SD-XX-999",
            "epoch": 1,
            "sent_at": time.time(),
            "events": [
                {
                    "type": "read",
                    "seq": 1,
                    "camera_id": "c",
                    "captured_at": 1.0,
                    "plate": "鲁A1",
                    "plate_raw": "鲁A1",
                    "plate_valid": False,
                }
            ],
        }
        client.publish("cordon/v1/cp/SD-DZ-001/events", json.dumps(forged).encode(), qos=1).wait_for_publish(
            5
        )
    finally:
        client.loop_stop()
        client.disconnect()
    async with session() as http:
        await login(http, hub.base, "console-code")

        async def dead():
            return (await get_json(http, f"{hub.base}/api/v1/dead-letters"))["dead_letters"]

        letters = await until(lambda: _at_least(dead, 2), timeout=20, what="dead letters")
        reasons = " | ".join(d["reason"] for d in letters)
        assert "not valid JSON" in reasons
        assert "differs from the topic" in reasons
        assert all(d["raw_bytes"] > 0 for d in letters)
        await push(http, e1, "cam1", "t1", {"plate": "鲁C12345", "event_id": "after-junk"})
        await until(
            lambda: any(r[1] == "after-junk" for r in stored_reads(hub)), timeout=30, what="ingest after junk"
        )
        health = await get_health(http, f"{hub.base}/api/v1/health")
        assert health["dead_letters_total"] >= 2


async def _at_least(fetch, n):
    items = await fetch()
    return items if len(items) >= n else None
