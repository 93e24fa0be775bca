"""The tablet's quick-test API at the edge (uplink down: no broker listens): photo and analyzer
readings, the result record with its flags, and the ID number never kept anywhere."""

import datetime as dt
import json
import random
import sqlite3
import time

import aiohttp
import pytest

from edge.app import create_app
from edge.kits.catalogue import load_catalogue
from edge.kits.state import SHIPPED_CATALOGUE
from edge.kits.synth import PanelTruth, make_photo
from edge.settings import EdgeSettings, KitsSettings, MqttSettings, TabletSettings
from protocols.kits import hash_id_number

ID_NUMBER = "11010519491231002X"
SECRET = b"kits-test-secret-0123456789"


@pytest.fixture
def settings(tmp_path, dead_broker_url):
    secret = tmp_path / "id-secret"
    secret.write_bytes(SECRET)
    return EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        tablet=TabletSettings(token="123456"),
        kits=KitsSettings(id_secret_file=str(secret)),
    )


@pytest.fixture
async def client(aiohttp_client, settings):
    c = await aiohttp_client(create_app(settings))
    assert (await c.post("/login", json={"code": "123456"})).status == 200
    return c


async def catalogue(client):
    resp = await client.get("/api/v1/kits")
    assert resp.status == 200
    return {k["model"]: k for k in (await resp.json())["kits"]}


def photo_of(kit_model, calls, seed=7):
    kit = load_catalogue(SHIPPED_CATALOGUE).get(kit_model)
    panels = [
        PanelTruth(drug=p.drug, call=c, c_strength=0.8, t_contrast=0.0 if (c == "positive") else 0.6)
        for p, c in zip(kit.panels, calls, strict=True)
    ]
    return kit, make_photo(kit, random.Random(seed), panels=panels)


def upload(data, name="photo"):
    form = aiohttp.FormData()
    form.add_field(name, data, filename="cassette.jpg", content_type="image/jpeg")
    return form


def result_body(kit, calls, **over):
    now = time.time()
    body = {
        "id_number": ID_NUMBER,
        "kit_model": kit["model"],
        "lot": "L2026-11",
        "expiry": "2099-12-31",
        "sample_type": kit["sample_type"],
        "sampled_at": now - 10 * 60,
        "read_at": now,
        "second_officer": "警号 002",
        "panels": [{"drug": p["drug"], "officer_call": c} for p, c in zip(kit["panels"], calls, strict=True)],
    }
    body.update(over)
    return body


async def test_catalogue_needs_login(aiohttp_client, settings):
    c = await aiohttp_client(create_app(settings))
    assert (await c.get("/api/v1/kits", allow_redirects=False)).status in (401, 302)
    assert (await c.post("/api/v1/kits/results", json={})).status in (401, 403)


async def test_photo_is_read_per_panel(client):
    kits = await catalogue(client)
    model = "SD-SAL6"
    assert model in kits
    calls = ["negative"] * len(kits[model]["panels"])
    calls[0] = "positive"
    kit, photo = photo_of(model, calls)
    resp = await client.post(f"/api/v1/kits/read?kit={model}", data=upload(photo.data))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [p["drug"] for p in body["panels"]] == kit.panel_codes()
    assert len(body["photo_sha256"]) == 64
    for p, truth in zip(body["panels"], calls, strict=True):
        assert p["call"] in (truth, "uncertain")
        assert p["uncertain"] == (p["call"] == "uncertain")


@pytest.mark.parametrize("data", [b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 500])
async def test_bad_photo_is_a_clear_400(client, data):
    resp = await client.post("/api/v1/kits/read?kit=SD-SAL6", data=upload(data))
    assert resp.status == 400
    assert "photo not read" in (await resp.json())["error"]


async def test_photo_needs_a_known_kit_and_a_photo_part(client):
    resp = await client.post("/api/v1/kits/read?kit=NOPE", data=upload(b"x"))
    assert resp.status == 400 and "unknown kit model" in (await resp.json())["error"]
    resp = await client.post("/api/v1/kits/read?kit=SD-SAL6", data=upload(b"x", name="other"))
    assert resp.status == 400 and "photo" in (await resp.json())["error"]


async def test_oversized_photo_is_refused(client, settings):
    big = b"\xff" * (settings.kits.max_upload_bytes + 10)
    resp = await client.post("/api/v1/kits/read?kit=SD-SAL6", data=upload(big))
    assert resp.status == 413


async def test_result_is_committed_with_hash_never_the_number(client, settings):
    kit = (await catalogue(client))["SD-SAL6"]
    calls = ["negative"] * len(kit["panels"])
    resp = await client.post("/api/v1/kits/results", json=result_body(kit, calls, name="张三"))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["result"] == "negative" and body["alert"] is False and body["id_last4"] == "002X"
    assert body["kit_expired"] is False and body["outside_read_window"] is False
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        kind, raw = db.execute("SELECT kind, body FROM outbox WHERE kind = 'kit'").fetchone()
    stored = json.loads(raw)
    assert stored["result"]["subject"]["id_hash"] == hash_id_number(ID_NUMBER, SECRET)
    assert stored["result"]["officers"] == ["officer@SD-DZ-001", "警号 002"]
    # The plain number is nowhere in the edge's data dir (outbox, logs, photos, anything).
    for path in settings.data_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert ID_NUMBER.encode() not in data and ID_NUMBER[:17].encode() not in data, path


async def test_expired_kit_and_read_window_are_flagged_not_refused(client):
    kit = (await catalogue(client))["SD-SAL6"]
    calls = ["negative"] * len(kit["panels"])
    now = time.time()
    late = result_body(
        kit,
        calls,
        expiry=(dt.date.today() - dt.timedelta(days=30)).isoformat(),
        sampled_at=now - 3600,
        read_at=now,
    )
    body = await (await client.post("/api/v1/kits/results", json=late)).json()
    assert body["kit_expired"] is True and body["outside_read_window"] is True


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"id_number": None}, "id_number"),
        ({"second_officer": ""}, "second_officer"),
        ({"second_officer": "officer@SD-DZ-001"}, "two different officers"),
        ({"kit_model": "NOPE"}, "unknown kit model"),
        ({"panels": []}, "panels"),
        ({"needs_lab": True}, "only a positive"),
        ({"source": "photo"}, "sha256"),
        ({"photo_sha256": "0" * 64}, "no such photo"),
    ],
)
async def test_bad_result_is_400_naming_the_problem(client, settings, change, needle):
    kit = (await catalogue(client))["SD-SAL6"]
    body = result_body(kit, ["negative"] * len(kit["panels"]))
    body.update(change)
    if change.get("id_number", 1) is None:
        del body["id_number"]
    resp = await client.post("/api/v1/kits/results", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert needle in error and ID_NUMBER not in error
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'kit'").fetchone()[0] == 0


async def test_positive_goes_to_lab_with_seals_and_alerts_the_tablet(client):
    kit = (await catalogue(client))["SD-SAL6"]
    calls = ["negative"] * len(kit["panels"])
    calls[1] = "positive"
    async with client.ws_connect("/api/v1/ws") as ws:
        body = result_body(kit, calls, needs_lab=True, sample_a="A-0001", sample_b="B-0001")
        resp = await client.post("/api/v1/kits/results", json=body)
        assert resp.status == 200, await resp.text()
        saved = await resp.json()
        assert saved["result"] == "positive" and saved["alert"] is True
        while (frame := await ws.receive_json(timeout=10))["type"] != "alert":
            pass
        alert = frame["alert"]
        assert [alert["alert_id"]] == saved["alert_ids"]
        assert alert["plate_read"] == "ID …002X" and alert["hit"]["kind"] == "kit"
        assert saved["result_id"] in alert["hit"]["explanation"] and "MOR/OPI" in alert["hit"]["explanation"]
    # in the edge's alert log, as any alert (the officer can acknowledge it), and never the number
    alerts = (await (await client.get("/api/v1/alerts")).json())["alerts"]
    assert [a["alert_id"] for a in alerts] == saved["alert_ids"]
    assert ID_NUMBER not in json.dumps(alerts, ensure_ascii=False)


async def test_analyzer_export_is_read(client):
    kit = (await catalogue(client))["SD-SAL6"]
    rows = ["time,device_serial,test_id,kit_model,lot,expiry,sample_type,panel,result"]
    rows += [
        f"2026-11-28T10:00:00+08:00,DEV1,T1,SD-SAL6,L1,2099-01-01,saliva,{p['drug']},negative"
        for p in kit["panels"]
    ]
    resp = await client.post(
        "/api/v1/kits/analyzer?format=csv", data=upload("\n".join(rows).encode(), "export")
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["problems"] == [] and len(body["tests"]) == 1
    assert [p["call"] for p in body["tests"][0]["panels"]] == ["negative"] * len(kit["panels"])


async def test_person_watchlist_hit_offline_at_the_edge_and_never_a_plate(client):
    from edge import keys
    from protocols.feed import EntryUpsert, FeedDelta, ListUpsert
    from protocols.matching import Entry, ListKind, Watchlist
    from protocols.messages import SCHEMA_VERSION

    mirror = client.server.app[keys.MIRROR]
    person_hash = hash_id_number(ID_NUMBER, SECRET)
    await mirror.apply_delta(
        FeedDelta(
            v=SCHEMA_VERSION,
            version=mirror.version + 1,
            changes=[
                ListUpsert(watchlist=Watchlist(list_id="persons", name="在逃人员", kind=ListKind.PERSON)),
                EntryUpsert(
                    entry=Entry(entry_id="persons:1", list_id="persons", plate=person_hash, reason="在逃")
                ),
                # a person entry that happens to look like a plate must still never answer a plate read
                EntryUpsert(entry=Entry(entry_id="persons:2", list_id="persons", plate="鲁A12345")),
            ],
        )
    )
    kit = (await catalogue(client))["SD-SAL6"]
    calls = ["negative"] * len(kit["panels"])
    async with client.ws_connect("/api/v1/ws") as ws:
        resp = await client.post("/api/v1/kits/results", json=result_body(kit, calls))
        assert resp.status == 200, await resp.text()
        saved = await resp.json()
        assert saved["person_hits"] == ["persons:1"] and saved["person_lists"] == ["在逃人员"]
        assert saved["result"] == "negative" and saved["alert"] is True  # the person hit alone alerts
        while (frame := await ws.receive_json(timeout=10))["type"] != "alert":
            pass
        assert frame["alert"]["hit"]["kind"] == "person" and frame["alert"]["hit"]["list_name"] == "在逃人员"
        assert saved["alert_ids"] == [frame["alert"]["alert_id"]]
    other = result_body(kit, calls, id_number="110105194912310010")
    assert (await (await client.post("/api/v1/kits/results", json=other)).json())["person_hits"] == []
    check = await (await client.get("/api/v1/check", params={"plate": "鲁A12345"})).json()
    assert check["hits"] == []
