"""Quick-test results at the hub: ingested once into kit_results, audited, on the console's feed,
and served by GET /api/v1/kit-results with its filters (no broker listens: the link stays down)."""

import datetime as dt
import sqlite3
import time

import pytest

from central.app import create_app
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.web import keys
from protocols.kits import KitResult, MachineReading, PanelResult, Subject
from protocols.messages import SCHEMA_VERSION, EventBatch, KitResultEvent, encode

HASH = "scrypt$n=32768,r=8,p=1$" + "ab" * 32


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="246810"),
    )
    c = await aiohttp_client(create_app(settings))
    return c


def kit_event(seq, call="negative", sampled_at=None):
    t = sampled_at or time.time() - 60
    result = KitResult(
        result_id=f"SD-DZ-001-{seq}",
        subject=Subject(id_hash=HASH, id_last4="002X"),
        kit_model="SD-SAL6",
        lot="L1",
        expiry=dt.date(2099, 1, 1),
        sample_type="saliva",
        panels=[
            PanelResult(
                drug="MET", officer_call=call, machine=MachineReading(call="uncertain", confidence=0.4)
            ),
            PanelResult(drug="KET", officer_call="negative"),
        ],
        sampled_at=t,
        read_at=t + 600,
        officers=["chen", "002"],
        source="manual",
    )
    return KitResultEvent(seq=seq, checkpoint_officer="chen", recorded_at=t + 601, result=result)


def ingest(app, events, checkpoint="SD-DZ-001"):
    batch = EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=time.time(), events=events)
    return app[keys.INGEST].handle(f"cordon/v1/cp/{checkpoint}/events", encode(batch), time.time()).result(5)


async def test_kit_results_are_stored_once_and_served_with_filters(client):
    app = client.server.app
    first = ingest(app, [kit_event(1, "positive", sampled_at=1_800_000_000.0), kit_event(2)])
    assert first.committed == [1, 2] and len(first.kits) == 2
    (alert,) = first.alerts  # the positive one, with the id the edge gave it
    assert alert.hit.kind == "kit" and alert.hit.action == "notify" and alert.plate_read == "ID …002X"
    from protocols.alerting import kit_alert

    assert (
        alert.alert_id == kit_alert("SD-DZ-001", 1, 1, kit_event(1, "positive").result, raised_at=0).alert_id
    )
    again = ingest(app, [kit_event(1, "positive", sampled_at=1_800_000_000.0)])
    assert again.duplicates == 1 and again.kits == []
    ingest(app, [kit_event(1, "invalid")], checkpoint="SD-DZ-002")
    with sqlite3.connect(app[keys.STORE].path) as db:
        assert db.execute("SELECT count(*) FROM kit_results").fetchone()[0] == 3
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'kit.result'").fetchone()[0] == 3

    assert (await client.get("/api/v1/kit-results")).status in (401, 403)
    assert (await client.post("/login", json={"code": "246810"})).status == 200
    everything = (await (await client.get("/api/v1/kit-results")).json())["kit_results"]
    assert len(everything) == 3
    positives = (await (await client.get("/api/v1/kit-results?result=positive")).json())["kit_results"]
    assert [(r["checkpoint"], r["result_id"], r["result"]) for r in positives] == [
        ("SD-DZ-001", "SD-DZ-001-1", "positive")
    ]
    p = positives[0]
    assert p["subject"] == {"id_hash": HASH, "id_last4": "002X", "id_problem": None, "name": None}
    assert p["panels"][0]["machine"]["call"] == "uncertain" and p["panels"][0]["officer_call"] == "positive"
    two = (await (await client.get("/api/v1/kit-results?checkpoint=SD-DZ-002")).json())["kit_results"]
    assert [r["result"] for r in two] == ["invalid"]
    later = (await (await client.get("/api/v1/kit-results?since=2027-01-01T00:00:00%2B00:00")).json())[
        "kit_results"
    ]
    assert [r["result_id"] for r in later] == ["SD-DZ-001-1"]
    earlier = (await (await client.get("/api/v1/kit-results?until=1800000000")).json())["kit_results"]
    assert len(earlier) == 2 and all(
        r["result_id"] != "SD-DZ-001-1" or r["checkpoint"] == "SD-DZ-002" for r in earlier
    )
    assert (await client.get("/api/v1/kit-results?result=maybe")).status == 400
    assert (await client.get("/api/v1/kit-results?since=yesterday")).status == 400
    with sqlite3.connect(app[keys.STORE].path) as db:
        reads = db.execute("SELECT actor, detail FROM audit WHERE action = 'kit_results.read'").fetchall()
    assert len(reads) == 5 and all(actor == "access code" for actor, _ in reads)


async def test_person_list_takes_id_numbers_hashed_and_the_hub_alerts_on_a_kit_subject(
    aiohttp_client, tmp_path, dead_broker_url
):
    from central.settings import KitsSettings
    from protocols.kits import hash_id_number
    from protocols.messages import PlateRead

    secret = b"hub-kits-secret-0123456789"
    (tmp_path / "secret").write_bytes(secret)
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="246810"),
        kits=KitsSettings(id_secret_file=str(tmp_path / "secret")),
    )
    client = await aiohttp_client(create_app(settings))
    app = client.server.app
    assert (await client.post("/login", json={"code": "246810"})).status == 200
    resp = await client.post(
        "/api/v1/watchlists",
        json={"list_id": "persons", "name": "在逃人员", "kind": "person", "priority": 95},
    )
    assert resp.status == 200, await resp.text()
    number = "11010519491231002X"
    url = "/api/v1/watchlists/persons/entries"
    resp = await client.post(url, json={"id_number": number, "reason": "在逃"})
    assert resp.status == 200, await resp.text()
    entry = (await resp.json())["entry"]
    hashed = hash_id_number(number, secret)
    assert entry["plate"] == hashed and number not in entry["entry_id"]
    # a pre-hashed value is taken as it is; a plate, both, or a malformed hash are refused
    other = hash_id_number("110105194912310010", secret)
    assert (await client.post(url, json={"id_hash": other})).status == 200
    for bad in ({"plate": "鲁A12345"}, {"id_number": number, "id_hash": other}, {"id_hash": "md5$x"}):
        assert (await client.post(url, json=bad)).status == 400, bad
    resp = await client.post(
        "/api/v1/watchlists/persons/import?format=csv", data=f"plate\n{number}\n".encode()
    )
    assert resp.status == 400 and "person list" in (await resp.json())["error"]
    assert (await client.post("/api/v1/watchlists", json={"list_id": "cars", "name": "车"})).status == 200
    assert (await client.post("/api/v1/watchlists/cars/entries", json={"id_number": number})).status == 400
    with sqlite3.connect(app[keys.STORE].path) as db:
        for table in ("wl_entries", "audit", "feed_changes"):
            try:
                dump = "\n".join(str(row) for row in db.execute(f"SELECT * FROM {table}"))  # noqa: S608
            except sqlite3.OperationalError:
                continue
            assert number not in dump, table

    event = kit_event(1)
    event = KitResultEvent(
        seq=1,
        checkpoint_officer="chen",
        recorded_at=event.recorded_at,
        result=KitResult(
            **{
                **{f: getattr(event.result, f) for f in event.result.__struct_fields__},
                "subject": Subject(id_hash=hashed, id_last4="002X"),
            }
        ),
    )
    stored = ingest(app, [event])
    (alert,) = stored.alerts
    assert alert.hit.kind == "person" and alert.hit.list_name == "在逃人员" and alert.plate_read == "ID …002X"
    assert hashed not in alert.hit.entry_plate
    # A plate read never answers a person entry, whatever it holds.
    read = PlateRead(
        seq=2, camera_id="c", captured_at=time.time(), plate=hashed[:32], plate_raw="x", plate_valid=False
    )
    assert ingest(app, [read]).alerts == []


async def test_kit_results_follow_the_hits_retention(client):
    app = client.server.app
    ingest(app, [kit_event(1), kit_event(2)])
    store = app[keys.STORE]
    assert store.purge_hits_before(time.time() - 3600)["kit_results"] == 0
    assert store.purge_hits_before(time.time() + 1)["kit_results"] == 2
    assert store.kit_results() == []
