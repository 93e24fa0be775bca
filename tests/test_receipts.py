"""Alarm receipts: the console learns that an alarm was shown on a checkpoint's tablet and when it was
acknowledged there. The hub keeps the earliest showing and the latest acknowledgement; end to end with
real Mosquitto, hub and edge processes, also across an outage of the uplink."""

from __future__ import annotations

import time

import pytest

from central.record.sqlite.store import HubStore
from protocols.messages import SCHEMA_VERSION, AlertReceipt
from tests.support import edge_service, get_json, hub_service, login, next_frame, running, session, until

WATCHLIST = """plate,list,action,priority,reason
鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品
鲁B7T5X9,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品
"""


def receipt(**fields) -> AlertReceipt:
    return AlertReceipt(
        v=SCHEMA_VERSION, checkpoint="SD-DZ-001", alert_id="A1", sent_at=time.time(), **fields
    )


def test_the_hub_keeps_the_first_showing_and_the_latest_acknowledgement(tmp_path):
    store = HubStore(tmp_path / "hub.db")
    store.start()
    try:
        frames = [
            store.submit(lambda db, r=r: store.insert_receipt(db, r, 100.0)).result(5)
            for r in (
                receipt(shown_at=20.0, shown_by="li"),
                receipt(shown_at=10.0, shown_by="wang"),  # another tablet showed it earlier (sent late)
                receipt(acknowledged_at=50.0, outcome="not_found", officer="li"),
                receipt(acknowledged_at=40.0, outcome="intercepted", officer="wang"),  # older: ignored
                receipt(shown_at=30.0),
            )
        ]
        last = frames[-1]
        assert (last["shown_at"], last["shown_by"]) == (10.0, "li")
        assert (last["acknowledged_at"], last["outcome"], last["officer"]) == (50.0, "not_found", "li")
        assert frames[0]["acknowledged_at"] is None and frames[0]["list_id"] is None, "alert not stored yet"
        (row,) = store.receipts(["A1"])["A1"]
        assert row["checkpoint"] == "SD-DZ-001" and row["shown_at"] == 10.0
    finally:
        store.stop()


@pytest.mark.system
async def test_a_receipt_reaches_the_console_also_after_an_outage(tmp_path, mosquitto):
    csv = tmp_path / "watchlist.csv"
    csv.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(tmp_path / "hub", mosquitto.url, watchlist_csv=csv, extra={"feed": {"token": "feed"}})
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam1": "t1"},
        extra={"hub": {"url": hub.base, "token": "feed"}},
    )
    hub.start()
    edge.start()
    with running(hub, edge):
        async with session() as console, session() as tablet:
            await login(console, hub.base, "console-code")
            await login(tablet, edge.base, "tablet-code")
            await until(lambda: _mirrored(tablet, edge), timeout=40, what="the edge's mirror")
            ws = await console.ws_connect(f"{hub.base}/api/v1/ws")
            await next_frame(ws, "hello")

            alert = await _hit(tablet, edge, "鲁Q8K2L1", "ev-1")
            before = time.time()
            async with tablet.post(f"{edge.base}/api/v1/alerts/{alert['alert_id']}/shown") as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["receipt"]["shown_by"] == "officer@SD-DZ-001"
            frame = await next_frame(ws, "receipt", timeout=30)
            got = frame["receipt"]
            assert got["alert_id"] == alert["alert_id"] and got["checkpoint"] == "SD-DZ-001"
            assert before - 1 <= got["shown_at"] <= time.time() and got["acknowledged_at"] is None
            assert got["action"] == "intercept", "the hub had stored the alert by then"

            async with tablet.post(
                f"{edge.base}/api/v1/alerts/{alert['alert_id']}/outcome", json={"outcome": "intercepted"}
            ) as resp:
                assert resp.status == 200
            got = (await next_frame(ws, "receipt", timeout=30))["receipt"]
            assert got["outcome"] == "intercepted" and got["acknowledged_at"] >= got["shown_at"]
            assert got["officer"] == "officer@SD-DZ-001"

            # the broker goes away: the tablet still alarms, and the receipt waits at the edge
            mosquitto.stop()
            other = await _hit(tablet, edge, "鲁B7T5X9", "ev-2")
            async with tablet.post(f"{edge.base}/api/v1/alerts/{other['alert_id']}/shown") as resp:
                assert resp.status == 200
            mosquitto.start()
            await mosquitto.ready()
            got = (
                await next_frame(
                    ws, "receipt", timeout=60, where=lambda f: f["receipt"]["alert_id"] == other["alert_id"]
                )
            )["receipt"]
            assert got["shown_at"] is not None

            # a console that connects later gets the receipts with the recent alerts
            again = await console.ws_connect(f"{hub.base}/api/v1/ws")
            replayed = await next_frame(
                again, "receipt", timeout=10, where=lambda f: f["receipt"]["alert_id"] == alert["alert_id"]
            )
            assert replayed["receipt"]["outcome"] == "intercepted"
            await again.close()
            await ws.close()


async def _hit(tablet, edge, plate, event_id):
    async with tablet.post(
        f"{edge.base}/api/v1/cameras/cam1/reads",
        json={"plate": plate, "event_id": event_id},
        headers={"X-Camera-Token": "t1"},
    ) as resp:
        assert resp.status == 200, await resp.text()

    async def shown():
        alerts = (await get_json(tablet, f"{edge.base}/api/v1/alerts"))["alerts"]
        return next((a for a in alerts if a["plate_read"] == plate), None)

    return await until(shown, timeout=20, what=f"the alert for {plate}")


async def _mirrored(http, edge):
    status = await get_json(http, f"{edge.base}/api/v1/status")
    return status["feed"]["entries"] >= 2
