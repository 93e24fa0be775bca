"""Statistics for command (central/intel/stats.py, central/web/stats.py): counts kept at ingest through the real
Ingest and HubStore, alerts with their outcomes and acknowledgement times, misread rates per match kind,
quick-test positives by drug, camera uptime, and the audited, formula-safe CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import pytest

from central.app import create_app
from central.ingest import listener as ingest_listener
from central.ingest.pipeline import Ingest
from central.intel import stats
from central.record.days import day_of, parse_offset
from central.record.sqlite import stats as stats_store
from central.record.sqlite.store import HubStore
from central.record.sqlite.watchlists import apply_changes
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.watchlists.index import HubWatchlists, changes_for, parse_csv
from central.watchlists.lists import ListService
from protocols.messages import SCHEMA_VERSION, AlertOutcome, CheckpointStatus, Passage, encode
from tests.support import login
from tests.test_hub_ingest import CSV, TOPIC, Recorder, payload, read
from tests.test_kits_hub import ingest, kit_event

TZ = parse_offset("+08:00")
PASSWORD = "correct horse battery"


@pytest.fixture
def hub(tmp_path):
    """The real ingest on a real store with two plate lists (as in tests/test_hub_ingest.py)."""
    store = HubStore(tmp_path / "hub.db")
    store.start()
    rec, watchlists = Recorder(), HubWatchlists()
    ListService(store, watchlists, lambda *a, **k: None).load()
    store.submit(
        lambda db: [
            op() for op in apply_changes(db, changes_for(parse_csv(CSV), {}), watchlists, "test").index_ops
        ]
    ).result(5)
    yield (
        Ingest(
            store,
            watchlists,
            publish=lambda t, p: rec.published.append((t, p)),
            listener=ingest_listener.Recorder(alerts=rec.alerts, statuses=rec.statuses),
        ),
        store,
        rec,
    )
    store.stop()


def today() -> str:
    return day_of(time.time(), TZ).isoformat()


def summary(store, group="checkpoint", first=None, last=None, ring=(), hidden=None):
    d = dt.date.fromisoformat(today())
    return store.read(lambda db: stats_store.summary(db, group, first or d, last or d, TZ, ring, hidden))


def passage(seq, plate="鲁B12345", no_plate=False):
    now = time.time()
    return Passage(
        seq=seq,
        plate=plate,
        first_seen=now,
        last_seen=now + 1,
        best_seq=seq,
        read_seqs=[seq],
        cameras=["cam"],
        no_plate=no_plate,
    )


def test_reads_passages_and_no_plate_are_counted_once_per_day_and_checkpoint(hub):
    ingest_, store, _ = hub
    events = [
        read(1),
        read(2, plate="", no_plate=True),
        read(3),
        passage(4),
        passage(5, plate="", no_plate=True),
    ]
    ingest_.handle(TOPIC, payload(events), time.time()).result(5)
    ingest_.handle(TOPIC, payload(events), time.time()).result(5)  # a resend: nothing new
    ingest_.handle(TOPIC, payload([read(6), read(1)]), time.time()).result(5)  # one new, one duplicate
    ingest_.handle(
        "cordon/v1/cp/SD-DZ-002/events", payload([read(1)], checkpoint="SD-DZ-002"), time.time()
    ).result(5)
    yesterday = time.time() - 86400
    old = read(7)
    old = type(old)(**{**{f: getattr(old, f) for f in old.__struct_fields__}, "captured_at": yesterday})
    ingest_.handle(TOPIC, payload([old]), time.time()).result(5)
    rows = {r["key"]: r for r in summary(store)["rows"]}
    assert (rows["SD-DZ-001"]["reads"], rows["SD-DZ-001"]["passages"], rows["SD-DZ-001"]["no_plate"]) == (
        4,
        2,
        1,
    )
    assert rows["SD-DZ-002"]["reads"] == 1
    days = {
        r["key"]: r["reads"]
        for r in summary(store, "day", first=dt.date.fromisoformat(today()) - dt.timedelta(days=1))["rows"]
    }
    assert days == {day_of(yesterday, TZ).isoformat(): 1, today(): 5}, (
        "the read's own day, in the hub's offset"
    )
    ring = [
        {"checkpoint": "SD-DZ-001", "county": "德城区", "city": "德州"},
        {"checkpoint": "SD-DZ-002", "county": "陵城区", "city": "德州"},
    ]
    assert {r["key"]: r["reads"] for r in summary(store, "city", ring=ring)["rows"]} == {"德州": 5}
    assert {r["key"]: r["reads"] for r in summary(store, "county", ring=ring)["rows"]} == {
        "德城区": 4,
        "陵城区": 1,
    }


def test_alerts_outcomes_ack_times_and_misreads_per_kind(hub):
    ingest_, store, _ = hub
    plates = ["鲁Q8K2L1"] * 5 + ["鲁QBK2L1"] * 2 + ["鲁A0K88B"]
    result = ingest_.handle(
        TOPIC, payload([read(i + 1, plate=p) for i, p in enumerate(plates)]), time.time()
    ).result(5)
    alerts = result.alerts
    assert len(alerts) == len(plates), "one alert per read (no folding here)"
    kinds = {a.hit.kind for a in alerts}
    assert "exact" in kinds and len(kinds) == 2, kinds
    fuzzy = [a for a in alerts if a.hit.kind != "exact"]
    exact = [a for a in alerts if a.hit.kind == "exact"]
    now = time.time()
    answers = [
        (exact[0], "intercepted", 30),
        (exact[1], "not_found", 60),
        (exact[2], "released", 90),
        (fuzzy[0], "misread", 10),
        (fuzzy[1], "intercepted", 120),
    ]
    outcomes = [
        AlertOutcome(
            seq=100 + i,
            alert_id=a.alert_id,
            outcome=o,
            officer="li",
            acknowledged_at=now + s,
            alert_raised_at=now,
        )
        for i, (a, o, s) in enumerate(answers)
    ]
    # A correction later does not change the first outcome or its time.
    outcomes.append(
        AlertOutcome(
            seq=200,
            alert_id=fuzzy[0].alert_id,
            outcome="intercepted",
            officer="li",
            acknowledged_at=now + 500,
            alert_raised_at=now,
        )
    )
    ingest_.handle(TOPIC, payload(outcomes), time.time()).result(5)
    (row,) = summary(store)["rows"]
    assert row["alerts"] == 8
    assert row["hits_by_kind"] == {"exact": 6, fuzzy[0].hit.kind: 2}
    assert sum(row["hits_by_list"].values()) == 8 and len(row["hits_by_list"]) == 2
    assert row["outcomes"] == {"intercepted": 2, "not_found": 1, "misread": 1, "released": 1}
    assert row["ack_median_s"] == 60 and row["ack_p90_s"] == 120
    found = store.read(
        lambda db: stats_store.misreads(
            db, dt.date.fromisoformat(today()), dt.date.fromisoformat(today()), TZ
        )
    )
    by_kind = {r["kind"]: r for r in found["by_kind"]}
    assert by_kind["exact"] == {"kind": "exact", "outcomes": 3, "misreads": 0, "rate": 0.0, "few": True}
    assert by_kind[fuzzy[0].hit.kind]["outcomes"] == 2 and by_kind[fuzzy[0].hit.kind]["rate"] == 0.5
    assert sum(r["outcomes"] for r in found["by_list"]) == 5
    # Roles that may not see covert lists' hits do not count them either.
    (seen,) = summary(store, hidden=lambda a: a.hit.action == "covert")["rows"]
    assert seen["alerts"] == 7 and len(seen["hits_by_list"]) == 1


def test_camera_uptime_from_live_status(hub):
    ingest_, store, _ = hub
    topic = "cordon/v1/cp/SD-DZ-001/status"
    for stale in ([], ["lane2"], [], []):
        status = CheckpointStatus(
            v=SCHEMA_VERSION, checkpoint="SD-DZ-001", online=True, sent_at=time.time(), stale_cameras=stale
        )
        ingest_.handle(topic, encode(status), time.time()).result(5)
    retained = CheckpointStatus(
        v=SCHEMA_VERSION, checkpoint="SD-DZ-001", online=True, sent_at=time.time(), stale_cameras=["lane2"]
    )
    ingest_.handle(topic, encode(retained), time.time(), retained=True).result(5)  # not a new sample
    found = summary(store)
    assert found["rows"][0]["camera_uptime"] == 0.75
    # lane2 was stale in one of the checkpoint's four live statuses.
    assert found["stale_cameras"] == [
        {"checkpoint": "SD-DZ-001", "camera": "lane2", "samples": 4, "stale": 1, "uptime": 0.75}
    ]
    # Four more samples the day before, all cameras up: lane2's uptime is over all eight.
    yesterday = time.time() - 86400
    for _ in range(4):
        store.submit(
            lambda db: stats_store.sample_status(
                db,
                CheckpointStatus(v=SCHEMA_VERSION, checkpoint="SD-DZ-001", online=True, sent_at=yesterday),
                yesterday,
                TZ,
            )
        ).result(5)
    found = summary(store, first=dt.date.fromisoformat(today()) - dt.timedelta(days=1))
    assert found["stale_cameras"][0]["samples"] == 8 and found["stale_cameras"][0]["uptime"] == 0.875


def test_csv_cells_cannot_run_as_formulas():
    assert [stats.safe_cell(v) for v in ("=1+1", "+86", "-3", "@SUM", "\tx", "\rx", "ok", 5, None)] == [
        "'=1+1",
        "'+86",
        "'-3",
        "'@SUM",
        "'\tx",
        "'\rx",
        "ok",
        "5",
        "",
    ]


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    ring = tmp_path / "ring.csv"  # a city name a spreadsheet would run as a formula
    ring.write_text("id,lat,lon,city,county\nSD-DZ-001,37.4,116.3,=HYPERLINK(1),德城区\n", encoding="utf-8")
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="246810", checkpoints_csv=str(ring)),
    )
    return await aiohttp_client(create_app(settings))


async def make(client, username, role):
    await login(client.session, str(client.make_url("")), "246810")
    resp = await client.post("/api/v1/users", json={"username": username, "role": role, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    client.session.cookie_jar.clear()


async def test_routes_roles_positives_by_drug_and_audited_csv(client):
    app = client.server.app
    ingest(
        app,
        [kit_event(1, "positive"), kit_event(2), kit_event(3, "positive"), read(4), read(5)],
        checkpoint="SD-DZ-001",
    )
    params = {"group": "checkpoint", "from": today(), "to": today()}
    assert (await client.get("/api/v1/stats", params=params)).status == 401
    await make(client, "wang.lists", "watchlist_manager")
    await make(client, "sun.audit", "auditor")
    assert (await client.post("/login", json={"username": "wang.lists", "password": PASSWORD})).status == 200
    for path in ("/api/v1/stats", "/api/v1/stats/misreads", "/api/v1/stats/export.csv"):
        assert (await client.get(path, params={**params, "reason": "r"})).status == 403, path
    client.session.cookie_jar.clear()
    assert (await client.post("/login", json={"username": "sun.audit", "password": PASSWORD})).status == 200
    assert (await client.get("/api/v1/stats", params={**params, "group": "plate"})).status == 400
    assert (await client.get("/api/v1/stats", params={**params, "from": "yesterday"})).status == 400
    body = await (await client.get("/api/v1/stats", params=params)).json()
    (row,) = body["rows"]
    assert (row["key"], row["reads"], row["tests"], row["positives"]) == ("SD-DZ-001", 2, 3, 2)
    assert row["positives_by_drug"] == {"MET": 2} and row["alerts"] == 2 and row["hits_by_kind"] == {"kit": 2}
    assert (await client.get("/api/v1/stats/misreads", params=params)).status == 200
    missing = await client.get("/api/v1/stats/export.csv", params=params)
    assert missing.status == 400 and "reason" in (await missing.json())["error"]
    resp = await client.get(
        "/api/v1/stats/export.csv", params={**params, "group": "city", "reason": "月报 11月"}
    )
    assert resp.status == 200 and resp.content_type == "text/csv"
    table = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert table[0][:3] == ["key", "reads", "passages"]
    assert table[1][0] == "'=HYPERLINK(1)" and table[1][1] == "2"
    client.session.cookie_jar.clear()
    await login(client.session, str(client.make_url("")), "246810")
    trail = (await (await client.get("/api/v1/audit", params={"action": "stats.export"})).json())["records"]
    assert [(r["actor"], r["reason"]) for r in trail] == [("sun.audit", "月报 11月")]


async def test_covert_hits_are_counted_only_for_roles_that_see_them(client):
    app = client.server.app
    await login(client.session, str(client.make_url("")), "246810")
    resp = await client.post(
        "/api/v1/watchlists", json={"list_id": "secret", "name": "专案", "action": "covert"}
    )
    assert resp.status in (200, 201), await resp.text()
    resp = await client.post("/api/v1/watchlists/secret/entries", json={"plate": "鲁A0K88B"})
    assert resp.status in (200, 201), await resp.text()
    client.session.cookie_jar.clear()
    done = ingest(app, [read(1, plate="鲁A0K88B"), kit_event(2, "positive")], checkpoint="SD-DZ-001")
    assert len(done.alerts) == 2
    await make(client, "sun.audit", "auditor")
    await make(client, "li.analyst", "analyst")
    params = {"from": today(), "to": today()}
    seen = {}
    for name in ("sun.audit", "li.analyst"):
        assert (await client.post("/login", json={"username": name, "password": PASSWORD})).status == 200
        (row,) = (await (await client.get("/api/v1/stats", params=params)).json())["rows"]
        seen[name] = (row["alerts"], sorted(row["hits_by_list"]))
        client.session.cookie_jar.clear()
    assert seen["li.analyst"][0] == 2 and "secret" in seen["li.analyst"][1]
    assert seen["sun.audit"][0] == 1 and "secret" not in seen["sun.audit"][1]
