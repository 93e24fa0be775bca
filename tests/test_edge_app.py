"""Component tests of the edge web app (uplink down: no broker listens)."""

import json
import sqlite3

import pytest

from edge.app import create_app
from edge.settings import CameraSettings, EdgeSettings, MqttSettings, TabletSettings


@pytest.fixture
def settings(tmp_path, dead_broker_url):
    return EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        cameras=[CameraSettings(id="lane1", token="cam-secret", lane=1)],
        tablet=TabletSettings(token="123456"),
    )


@pytest.fixture
async def client(aiohttp_client, settings):
    return await aiohttp_client(create_app(settings))


CAM = {"X-Camera-Token": "cam-secret"}


async def test_push_commits_before_answering(client, settings):
    resp = await client.post(
        "/api/v1/cameras/lane1/reads",
        headers=CAM,
        json={"plate": "蓝鲁Ａ·12345", "confidence": 91.5, "event_id": "e-1"},
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["plate"] == "鲁A12345" and body["plate_valid"] is True and body["seq"] == 1
    # The answer came after the commit: the row is in the outbox file right now.
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        (kind, raw) = db.execute("SELECT kind, body FROM outbox WHERE seq = 1").fetchone()
    stored = json.loads(raw)
    assert kind == "read" and stored["plate"] == "鲁A12345" and stored["colour"] == "blue"
    assert stored["lane"] == 1 and stored["camera_event_id"] == "e-1"


async def test_invalid_plate_is_flagged_not_rejected(client):
    resp = await client.post("/api/v1/cameras/lane1/reads", headers=CAM, json={"plate": "台A1234O"})
    assert resp.status == 200
    body = await resp.json()
    assert body["plate_valid"] is False and body["plate_problem"]


async def test_a_plate_with_a_nul_from_a_broken_camera_is_flagged_and_kept_raw(client, settings):
    resp = await client.post("/api/v1/cameras/lane1/reads", headers=CAM, json={"plate": "鲁A\x0012345"})
    assert resp.status == 200
    body = await resp.json()
    assert body["plate"] == "鲁A12345", "matched as the plate it most likely is"
    assert body["plate_valid"] is False and "control character" in body["plate_problem"]
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        (raw,) = db.execute("SELECT body FROM outbox WHERE seq = ?", (body["seq"],)).fetchone()
    stored = json.loads(raw)
    assert stored["plate_raw"] == "鲁A\x0012345" and stored["plate_valid"] is False


async def test_no_plate_vehicle_is_recorded(client):
    resp = await client.post("/api/v1/cameras/lane1/reads", headers=CAM, json={"plate": "无车牌"})
    assert resp.status == 200
    assert (await resp.json())["plate"] == ""


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"{not json", "not valid JSON"),
        (b'{"plate": "A", "extra": 1}', "extra"),
        (b'{"confidence": 90}', "plate"),
        (b'{"plate": "A", "captured_at": "yesterday"}', "captured_at"),
    ],
)
async def test_bad_push_is_400_with_reason_and_dead_letter(client, body, needle):
    resp = await client.post(
        "/api/v1/cameras/lane1/reads", headers={**CAM, "Content-Type": "application/json"}, data=body
    )
    assert resp.status == 400
    assert needle in (await resp.json())["error"]
    assert client.app[__import__("edge.keys").keys.DEAD].count == 1
    # and the edge keeps working
    ok = await client.post("/api/v1/cameras/lane1/reads", headers=CAM, json={"plate": "鲁A12345"})
    assert ok.status == 200


@pytest.mark.parametrize(
    "headers, path",
    [
        ({}, "/api/v1/cameras/lane1/reads"),
        ({"X-Camera-Token": "wrong"}, "/api/v1/cameras/lane1/reads"),
        ({"X-Camera-Token": "cam-secret"}, "/api/v1/cameras/lane9/reads"),
    ],
)
async def test_camera_must_authenticate(client, headers, path):
    resp = await client.post(path, headers=headers, json={"plate": "鲁A12345"})
    assert resp.status == 401


async def test_token_in_query_and_bearer_work(client):
    assert (
        await client.post("/api/v1/cameras/lane1/reads?token=cam-secret", json={"plate": "鲁A1"})
    ).status == 200
    assert (
        await client.post(
            "/api/v1/cameras/lane1/reads",
            headers={"Authorization": "Bearer cam-secret"},
            json={"plate": "鲁A1"},
        )
    ).status == 200


async def test_tablet_needs_login(client):
    resp = await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/login"
    assert (await client.get("/api/v1/status")).status == 401
    assert (await client.post("/login", json={"code": "000000"})).status == 401
    resp = await client.post("/login", json={"code": "123456"})
    assert resp.status == 200
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = await client.get("/")
    assert page.status == 200 and "查缉点" in await page.text()
    assert "Content-Security-Policy" in page.headers


async def test_status_and_health(client):
    await client.post("/api/v1/cameras/lane1/reads", headers=CAM, json={"plate": "鲁A12345"})
    health = await (await client.get("/api/v1/health")).json()
    assert health["status"] == "degraded" and any("uplink" in r for r in health["reasons"])
    await client.post("/login", json={"code": "123456"})
    status = await (await client.get("/api/v1/status")).json()
    assert status["outbox"]["depth"] >= 1 and status["reads_total"] == 1
    assert status["cameras"]["lane1"]["reads"] == 1
    assert status["uplink"]["state"] in ("connecting", "offline")


async def test_live_feed_shows_reads(client):
    await client.post("/login", json={"code": "123456"})
    async with client.ws_connect("/api/v1/ws") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello == {"type": "hello", "checkpoint": "SD-DZ-001"}
        await client.post("/api/v1/cameras/lane1/reads", headers=CAM, json={"plate": "鲁A<script>"})
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "read" and frame["read"]["plate"] == "鲁A<SCRIPT>"


async def test_manual_plate_check_uses_the_local_mirror(client):
    from edge import keys
    from protocols.feed import EntryUpsert, FeedDelta, ListUpsert
    from protocols.matching import Entry, Watchlist

    await client.post("/login", json={"code": "123456"})
    mirror = client.app[keys.MIRROR]
    await mirror.apply_delta(
        FeedDelta(
            v=1,
            version=1,
            changes=[
                ListUpsert(watchlist=Watchlist(list_id="drugs", name="涉毒")),
                EntryUpsert(entry=Entry(entry_id="drugs:鲁Q8K2L1", list_id="drugs", plate="鲁Q8K2L1")),
            ],
        )
    )
    body = await (await client.get("/api/v1/check", params={"plate": "鲁Q8K2LI"})).json()
    assert body["feed_version"] == 1
    (hit,) = body["hits"]
    assert hit["entry_plate"] == "鲁Q8K2L1" and hit["kind"] == "equivalent" and hit["list_name"] == "涉毒"
    assert (await (await client.get("/api/v1/check", params={"plate": "鲁B00000"})).json())["hits"] == []
    body = await (await client.get("/api/v1/check", params={"plate": "鲁Q8K2L\x001"})).json()
    assert body["hits"] and body["plate_valid"] is False and "control character" in body["plate_problem"]
    assert (await client.get("/api/v1/check")).status == 400


async def test_a_read_that_hits_is_never_dropped_at_the_outbox_quota(tmp_path, dead_broker_url):
    """The fault suite's case 5 found it: a watched read committed as a plain read and promoted only with
    its hit was dropped in between, when the outbox was full of what it may not drop."""
    from aiohttp.test_utils import TestClient, TestServer

    from edge import keys
    from edge.outbox import PRIORITY_HIT
    from edge.settings import OutboxSettings
    from protocols.feed import EntryUpsert, FeedDelta, ListUpsert
    from protocols.matching import Entry, Watchlist
    from protocols.messages import PlateRead

    app = create_app(
        EdgeSettings(
            checkpoint="SD-DZ-001",
            data_dir=str(tmp_path / "edge"),
            mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
            cameras=[CameraSettings(id="lane1", token="cam-secret")],
            outbox=OutboxSettings(max_bytes=2000),
        )
    )
    async with TestClient(TestServer(app)) as client:
        await app[keys.MIRROR].apply_delta(
            FeedDelta(
                v=1,
                version=1,
                changes=[
                    ListUpsert(watchlist=Watchlist(list_id="drugs", name="涉毒")),
                    EntryUpsert(entry=Entry(entry_id="drugs:鲁Q8K2L1", list_id="drugs", plate="鲁Q8K2L1")),
                ],
            )
        )
        outbox = app[keys.OUTBOX]
        keep = [
            PlateRead(
                seq=1,
                camera_id="x",
                captured_at=1.0,
                plate="鲁A12345",
                plate_raw="鲁A12345",
                plate_valid=True,
            )
        ] * 12
        await outbox.append(keep, [PRIORITY_HIT] * len(keep))  # over the quota, nothing it may drop
        resp = await client.post("/api/v1/cameras/lane1/reads", headers=CAM, json={"plate": "鲁Q8K2L1"})
        assert resp.status == 200
        seq = (await resp.json())["seq"]
        assert (await outbox.load([seq])).get(seq), "the read that hit was dropped"
        assert (await outbox.stats()).dropped_total == 0


async def test_json_push_carries_vehicle_colour_and_brand(client, settings):
    resp = await client.post(
        "/api/v1/cameras/lane1/reads",
        headers=CAM,
        json={"plate": "鲁A12345", "vehicle_colour": "白", "vehicle_brand": "大众"},
    )
    assert resp.status == 200, await resp.text()
    seq = (await resp.json())["seq"]
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        (raw,) = db.execute("SELECT body FROM outbox WHERE seq = ?", (seq,)).fetchone()
    stored = json.loads(raw)
    assert stored["vehicle_colour"] == "白" and stored["vehicle_brand"] == "大众"
    assert stored["has_evidence"] is False  # the JSON push brings no picture
    long = await client.post(
        "/api/v1/cameras/lane1/reads", headers=CAM, json={"plate": "鲁A12345", "vehicle_brand": "x" * 33}
    )
    assert long.status == 400
