"""The tablet folds: a vehicle read again while its alarm is open is one alarm with a count, by the same
rule (protocols/folding.py) the hub folds by for the console, with the uplink down and after a restart;
another listed vehicle still raises its own alarm; an outcome closes the alarm."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from central.record.sqlite import folding as hub_folding
from edge import keys
from edge.alertlog import AlertLog
from edge.app import create_app
from edge.settings import CameraSettings, EdgeSettings, MqttSettings, TabletSettings
from protocols import folding
from protocols.feed import EntryUpsert, FeedDelta, ListUpsert
from protocols.matching import Entry, Watchlist
from protocols.messages import SCHEMA_VERSION, Alert, AlertHit
from tests.support import edge_service, get_json, hub_service, login, running, session, until

CAM = {"X-Camera-Token": "cam-secret"}


def alert(
    aid: str, entry: str = "e1", at: float = 1_000_000.0, checkpoint: str = "SD-DZ-001", **hit
) -> Alert:
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=aid,
        checkpoint=checkpoint,
        epoch=1,
        seq=1,
        raised_at=at,
        captured_at=at,
        camera_id="c",
        plate_read="鲁Q8K2L1",
        hit=AlertHit(
            entry_id=entry,
            entry_plate="鲁Q8K2L1",
            list_id=hit.pop("list_id", "drugs"),
            list_name="涉毒",
            action="intercept",
            priority=90,
            kind=hit.pop("kind", "exact"),
            score=1.0,
            explanation="x",
        ),
    )


def test_the_key_and_the_window_are_defined_once():
    a, b = alert("A1"), alert("A2", at=1_000_000.0 + folding.FOLD_WINDOW_S)
    assert folding.fold_key(a) == ("drugs", "e1") and folding.folds_into(a, b, folding.FOLD_WINDOW_S)
    assert not folding.folds_into(
        a, alert("A3", at=1_000_000.0 + folding.FOLD_WINDOW_S + 1), folding.FOLD_WINDOW_S
    )
    assert not folding.folds_into(a, alert("A4", entry="e2"), folding.FOLD_WINDOW_S), "another vehicle"
    assert not folding.folds_into(a, alert("A5", list_id="stolen"), folding.FOLD_WINDOW_S), "another list"
    for kind in ("clone", "rule", "kit", "person"):
        assert folding.fold_key(alert("A6", kind=kind)) is None
    # the hub's folding is this rule, and the hub folds with the same window by default
    assert hub_folding.foldable(alert("A7")) and not hub_folding.foldable(alert("A8", kind="clone"))
    from central.settings import AlertSettings

    assert AlertSettings().fold_window_s == folding.FOLD_WINDOW_S
    updated = folding.fold_into(a, alert("A9", at=1_000_100.0, checkpoint="SD-DZ-002"))
    assert (updated.folded, updated.last_seen_at, updated.last_seen_checkpoint) == (
        1,
        1_000_100.0,
        "SD-DZ-002",
    )


async def test_the_edge_and_the_hub_count_a_sequence_of_hits_alike(tmp_path):
    """The same hits in the same order: the edge's alert log and the hub's store end with the same open
    alerts and the same counts (the hub through its real folding in SQLite)."""
    from central.record.sqlite.store import HubStore

    t = 1_000_000.0
    hits = [
        alert("A1", at=t),
        alert("A2", at=t + 1),  # a second lane, a second later
        alert("B1", entry="e2", at=t + 2),  # another vehicle
        alert("A3", at=t + 300),
        alert("A4", at=t + 300 + folding.FOLD_WINDOW_S + 5),  # past the window: a new alarm
        alert("B2", entry="e2", at=t + 30),
    ]
    log = AlertLog(tmp_path / "alerts.db")
    log.start()
    store = HubStore(tmp_path / "hub.db")
    store.start()
    try:
        for hit in hits:
            into = log.open_alert_for(hit)
            if into is None:
                assert log.claim(hit)
            else:
                log.fold(hit, into)

            def job(db, hit=hit):
                folded = hub_folding.fold(db, hit, folding.FOLD_WINDOW_S)
                if folded is None:
                    store.insert_alert(db, hit)

            store.submit(job).result(5)
        edge_counts = {a.alert_id: a.folded for a in log.recent}
        hub_counts = {a.alert_id: a.folded for a in store.recent_alerts()}
        assert edge_counts == hub_counts == {"A1": 2, "B1": 1, "A4": 0}
    finally:
        log.stop()
        store.stop()


@pytest.fixture
def settings(tmp_path, dead_broker_url):
    return EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        cameras=[
            CameraSettings(id="lane1", token="cam-secret", lane=1),
            CameraSettings(id="lane2", token="cam-secret"),
        ],
        tablet=TabletSettings(token="123456"),
    )


async def _mirror(app):
    await app[keys.MIRROR].apply_delta(
        FeedDelta(
            v=1,
            version=1,
            changes=[
                ListUpsert(watchlist=Watchlist(list_id="drugs", name="涉毒")),
                EntryUpsert(entry=Entry(entry_id="drugs:鲁Q8K2L1", list_id="drugs", plate="鲁Q8K2L1")),
                EntryUpsert(entry=Entry(entry_id="drugs:鲁B7T5X9", list_id="drugs", plate="鲁B7T5X9")),
            ],
        )
    )


async def _push(client, plate, camera="lane1"):
    resp = await client.post(f"/api/v1/cameras/{camera}/reads", headers=CAM, json={"plate": plate})
    assert resp.status == 200, await resp.text()


async def test_two_lanes_reading_one_vehicle_make_one_alarm_with_the_uplink_down(settings):
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        await _mirror(app)
        await client.post("/login", json={"code": "123456"})
        async with client.ws_connect("/api/v1/ws") as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await _push(client, "鲁Q8K2L1", "lane1")
            await _push(client, "鲁Q8K2L1", "lane2")
            frames = [await ws.receive_json(timeout=5) for _ in range(4)]
            kinds = [f["type"] for f in frames]
            assert kinds.count("alert") == 1 and kinds.count("alert_folded") == 1, kinds
            first = next(f["alert"] for f in frames if f["type"] == "alert")
            folded = next(f for f in frames if f["type"] == "alert_folded")
            assert folded["alert"]["alert_id"] == first["alert_id"] and folded["alert"]["folded"] == 1
            assert folded["folded_id"] != first["alert_id"]
            # another vehicle on the same list is an alarm of its own
            await _push(client, "鲁B7T5X9", "lane1")
            frames = [await ws.receive_json(timeout=5) for _ in range(2)]
            assert [f["type"] for f in frames if f["type"].startswith("alert")] == ["alert"]
        listed = (await (await client.get("/api/v1/alerts")).json())["alerts"]
        assert [(a["plate_read"], a["folded"]) for a in listed] == [("鲁B7T5X9", 0), ("鲁Q8K2L1", 1)]
        # the outcome is recorded under the alarm the tablet shows, also when given the folded hit's id
        resp = await client.post(
            f"/api/v1/alerts/{folded['folded_id']}/outcome", json={"outcome": "intercepted", "note": ""}
        )
        assert resp.status == 200 and (await resp.json())["outcome"]["alert_id"] == first["alert_id"]
        # closed: the vehicle read again raises a new alarm
        await _push(client, "鲁Q8K2L1", "lane1")
        listed = (await (await client.get("/api/v1/alerts")).json())["alerts"]
        assert [(a["plate_read"], a["folded"]) for a in listed][0] == ("鲁Q8K2L1", 0)
        assert len(listed) == 3
    # after a restart (uplink still down) the count and the folds are still there
    again = create_app(settings)
    async with TestClient(TestServer(again)) as client:
        await client.post("/login", json={"code": "123456"})
        listed = (await (await client.get("/api/v1/alerts")).json())["alerts"]
        assert sorted((a["plate_read"], a["folded"]) for a in listed) == [
            ("鲁B7T5X9", 0),
            ("鲁Q8K2L1", 0),
            ("鲁Q8K2L1", 1),
        ]
        log = again[keys.SERVICE].alert_log
        assert folded["folded_id"] in log and log.folded_into[folded["folded_id"]] == first["alert_id"]


async def test_the_window_the_hub_announced_is_kept_for_an_offline_restart(tmp_path):
    log = AlertLog(tmp_path / "alerts.db")
    log.start()
    try:
        assert log.fold_window_s == folding.FOLD_WINDOW_S, "before the hub was ever heard"
        await log.set_fold_window(30.0)
    finally:
        log.stop()
    again = AlertLog(tmp_path / "alerts.db")
    again.start()
    try:
        assert again.fold_window_s == 30.0
        t = time.time()
        assert again.claim(alert("A1", at=t))
        assert again.open_alert_for(alert("A2", at=t + 20)) is not None
        assert again.open_alert_for(alert("A3", at=t + 40)) is None, "the hub's window, not the default"
    finally:
        again.stop()


async def test_an_alerts_db_from_before_folding_is_upgraded(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "alerts.db") as db:
        db.execute(
            "CREATE TABLE alerts (alert_id TEXT PRIMARY KEY, shown_at REAL NOT NULL, body BLOB NOT NULL) WITHOUT ROWID"
        )
        import msgspec

        db.execute("INSERT INTO alerts VALUES ('A1', ?, ?)", (time.time(), msgspec.json.encode(alert("A1"))))
    log = AlertLog(tmp_path / "alerts.db")
    log.start()
    try:
        assert [a.alert_id for a in log.recent] == ["A1"] and "A1" in log
    finally:
        log.stop()


@pytest.mark.system
async def test_the_hub_announces_its_window_and_the_edge_takes_it(tmp_path, mosquitto):
    """A hub with a window other than the default announces it on its retained parameters topic (not in
    its status, which an edge of release r1 would refuse) and a connected edge folds with it; a second
    edge that connects later gets it from the retained message."""
    hub = hub_service(tmp_path / "hub", mosquitto.url, extra={"alerts": {"fold_window_s": 45}})
    early = edge_service(tmp_path / "early", "SD-DZ-001", mosquitto.url, cameras={"c": "t"})
    late = edge_service(tmp_path / "late", "SD-LC-003", mosquitto.url, cameras={"c": "t"})
    with running(hub, early, late):
        hub.start()
        early.start()
        # One session per edge: cookies are per host, not per port.
        async with session() as tablet, session() as late_tablet:
            await login(tablet, early.base, "tablet-code")
            await until(
                lambda: _window_is(tablet, early, 45.0), timeout=30, what="the hub's window at the edge"
            )
            late.start()
            await login(late_tablet, late.base, "tablet-code")
            await until(
                lambda: _window_is(late_tablet, late, 45.0),
                timeout=30,
                what="the retained window at a late edge",
            )
            for http, edge in ((tablet, early), (late_tablet, late)):
                status = await get_json(http, f"{edge.base}/api/v1/status")
                assert status["dead_letters"] == 0, "the edge refused nothing the hub sent"


async def _window_is(http, edge, window: float) -> bool:
    status = await get_json(http, f"{edge.base}/api/v1/status")
    return status["fold_window_s"] == window
