"""The Hikvision ISAPI ANPR push, against recorded-format fixtures (tests/fixtures/cameras/hikvision)."""

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from edge import keys
from edge.app import create_app
from edge.settings import CameraSettings, EdgeSettings, MqttSettings, NoPlateSettings, TabletSettings
from edge.sources.hikvision import parse_event

FIX = Path(__file__).parent / "fixtures" / "cameras" / "hikvision"
BOUNDARY = "---------------------------7e13971310878"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
URL = "/api/v1/cameras/hik1/reads?token=hik-secret"


@pytest.fixture
def settings(tmp_path, dead_broker_url):
    return EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        cameras=[
            CameraSettings(id="hik1", kind="hikvision", token="hik-secret"),
            CameraSettings(
                id="hik-basic",
                kind="hikvision",
                username="admin",
                password="pa:ss",
                allow_from=["127.0.0.0/8"],
            ),
            CameraSettings(id="hik-far", kind="hikvision", token="t", allow_from=["192.168.1.0/24"]),
        ],
        tablet=TabletSettings(token="123456"),
        no_plate=NoPlateSettings(alert=True),
    )


@pytest.fixture
async def client(aiohttp_client, settings):
    return await aiohttp_client(create_app(settings))


def outbox_read(settings, seq):
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        (raw,) = db.execute("SELECT body FROM outbox WHERE seq = ?", (seq,)).fetchone()
    return json.loads(raw)


async def push(client, name, url=URL, headers=MULTIPART):
    return await client.post(url, data=(FIX / name).read_bytes(), headers=headers)


async def test_chinese_firmware_push_is_committed_with_its_pictures(client, settings):
    resp = await push(client, "cn_v20.multipart")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["plate"] == "皖A7XG66" and body["evidence_error"] is None
    assert sorted(body["evidence"]) == ["plate", "snapshot", "thumb"]
    assert body["vehicle"] == {"colour": "white", "brand": "1036"}
    stored = outbox_read(settings, body["seq"])  # committed before the answer
    assert stored["colour"] == "blue" and stored["lane"] == 2 and stored["direction"] == "in"
    assert stored["confidence"] == 94 and stored["vehicle_type"] == "SUVMPV"
    assert stored["vehicle_colour"] == "white" and stored["vehicle_brand"] == "1036"
    assert stored["has_evidence"] is True  # the read says so; its picture does not travel with it
    assert stored.get("thumbnail") is None
    assert stored["camera_event_id"] == "46dd0716-1dd2-11b2-821f-8ba17e6f56b7"
    assert stored["captured_at"] == 1795832102.0  # 2026-11-28T10:15:02+08:00
    evidence = client.app[keys.EVIDENCE]
    snapshot = evidence.path(body["epoch"], body["seq"], "snapshot").read_bytes()
    assert snapshot == _part(FIX / "cn_v20.multipart", "detectionPicture.jpg")  # the camera's own bytes
    thumb = evidence.thumbnail(body["seq"])
    assert thumb[:3] == b"\xff\xd8\xff" and len(thumb) < 20_000


def _part(path, name):
    raw = path.read_bytes()
    head = raw.index(f'name="{name}"'.encode())
    start = raw.index(b"\r\n\r\n", head) + 4
    return raw[start : raw.index(b"\r\n--" + BOUNDARY.encode(), start)]


async def test_old_firmware_without_picture_list_crops_the_plate_from_nothing(client, settings):
    resp = await push(client, "old_firmware.multipart")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    stored = outbox_read(settings, body["seq"])
    assert stored["plate"] == "鲁A12345" and stored["colour"] == "yellow" and stored["direction"] == "out"
    assert sorted(body["evidence"]) == ["snapshot", "thumb"]  # no plateRect, no plate picture: no crop


@pytest.mark.parametrize("name", ["gbk.multipart", "wrong_charset.multipart"])
async def test_gbk_xml_is_read(client, settings, name):
    resp = await push(client, name)
    assert resp.status == 200, await resp.text()
    stored = outbox_read(settings, (await resp.json())["seq"])
    assert stored["plate"] == "鲁Q8K2L1" and stored["plate_raw"] == "黄鲁Q8K2L1" and stored["lane"] == 3


def test_parse_event_keeps_the_firmware_shapes():
    event = parse_event((FIX / "anpr_cn_v20.xml").read_bytes())
    (plate_pic, scene) = event.pictures
    assert plate_pic.type == "licensePlatePicture" and plate_pic.plate_rect is None
    assert (
        scene.file_name == "detectionPicture.jpg"
        and scene.plate_rect.x == 375
        and scene.plate_rect.height == 118
    )
    assert parse_event((FIX / "anpr_gbk.xml").read_bytes()).charset == "gb2312"
    assert parse_event((FIX / "anpr_wrong_charset.xml").read_bytes()).charset == "gb18030"


async def test_no_plate_vehicle_is_a_flagged_read_with_evidence_and_a_notify_alert(client, settings):
    resp = await push(client, "no_plate.multipart")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["no_plate"] is True and body["plate"] == "" and "snapshot" in body["evidence"]
    stored = outbox_read(settings, body["seq"])
    assert stored["no_plate"] is True and stored["plate_raw"] == "无车牌"
    (alert,) = client.app[keys.SERVICE].alerts
    assert alert.hit.list_id == "rule:no-plate" and alert.hit.action == "notify" and alert.seq == body["seq"]


async def test_corrupt_jpeg_is_refused_but_the_read_is_kept(client, settings):
    resp = await push(client, "corrupt_jpeg.multipart")
    assert resp.status == 200
    body = await resp.json()
    assert "snapshot" in body["evidence_error"] and "not a decodable image" in body["evidence_error"]
    assert body["evidence"] == [] and outbox_read(settings, body["seq"])["plate"] == "皖A7XG66"
    status = client.app[keys.SERVICE].cameras["hik1"]
    assert status.reads == 1 and status.errors == 1


@pytest.mark.parametrize(
    "name, status, needle",
    [
        ("truncated.multipart", 400, "truncated or malformed multipart"),
        ("missing_xml.multipart", 400, "no XML part"),
        ("bomb.multipart", 400, "DTDForbidden"),
        ("xxe.multipart", 400, "DTDForbidden"),
        ("undecodable.multipart", 400, "nor GB18030"),
    ],
)
async def test_broken_pushes_get_a_clear_400_and_the_edge_goes_on(client, settings, name, status, needle):
    resp = await push(client, name)
    assert resp.status == status
    assert needle in (await resp.json())["error"]
    assert client.app[keys.SERVICE].reads_total == 0
    assert client.app[keys.DEAD].count == 1
    assert client.app[keys.SERVICE].cameras["hik1"].errors == 1
    assert (await push(client, "cn_v20.multipart")).status == 200


async def test_too_many_parts_is_refused(client):
    xml = (FIX / "anpr_cn_v20.xml").read_bytes()
    parts = b"".join(
        b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="p%d"\r\n\r\nx\r\n' % i
        for i in range(20)
    )
    body = (
        b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="anpr.xml"\r\n'
        b"Content-Type: application/xml\r\n\r\n"
        + xml
        + b"\r\n"
        + parts
        + b"--"
        + BOUNDARY.encode()
        + b"--\r\n"
    )
    resp = await client.post(URL, data=body, headers=MULTIPART)
    assert resp.status == 413 and "parts" in (await resp.json())["error"]


async def test_heartbeat_is_answered_and_ignored(client):
    resp = await client.post(
        URL, data=(FIX / "heartbeat.xml").read_bytes(), headers={"Content-Type": "application/xml"}
    )
    assert resp.status == 200 and (await resp.json()) == {"ignored": "videoloss"}
    health = client.app[keys.SERVICE].cameras["hik1"]
    assert health.reads == 0 and health.last_seen_at is not None


async def test_camera_credentials_and_address(client):
    # wrong token
    resp = await push(client, "cn_v20.multipart", url="/api/v1/cameras/hik1/reads?token=nope")
    assert resp.status == 401
    # basic auth: challenged first (not counted), then accepted; wrong password refused and counted
    first = await push(client, "cn_v20.multipart", url="/api/v1/cameras/hik-basic/reads")
    assert first.status == 401 and first.headers["WWW-Authenticate"].startswith("Basic")
    import aiohttp

    ok = await client.post(
        "/api/v1/cameras/hik-basic/reads",
        data=(FIX / "cn_v20.multipart").read_bytes(),
        headers={**MULTIPART, "Authorization": aiohttp.BasicAuth("admin", "pa:ss").encode()},
    )
    assert ok.status == 200, await ok.text()
    bad = await client.post(
        "/api/v1/cameras/hik-basic/reads",
        data=b"",
        headers={**MULTIPART, "Authorization": aiohttp.BasicAuth("admin", "wrong").encode()},
    )
    assert bad.status == 401
    # an address outside allow_from: 403 with the reason, even with the right token
    far = await push(client, "cn_v20.multipart", url="/api/v1/cameras/hik-far/reads?token=t")
    assert far.status == 403 and "allow_from" in (await far.json())["error"]
    cams = client.app[keys.SERVICE].cameras
    assert cams["hik1"].refused == 1 and cams["hik-basic"].refused == 1 and cams["hik-far"].refused == 1


async def test_evidence_route_needs_a_session_and_serves_only_kept_pictures(client):
    body = await (await push(client, "cn_v20.multipart")).json()
    url = f"/api/v1/evidence/{body['seq']}/thumb"
    assert (await client.get(url)).status == 401
    await client.post("/login", json={"code": "123456"})
    resp = await client.get(url)
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"
    assert (await resp.read()) == client.app[keys.EVIDENCE].thumbnail(body["seq"])
    for bad in (
        "/api/v1/evidence/1/..%2F..%2Foutbox.db",
        "/api/v1/evidence/..%2F1/thumb",
        f"/api/v1/evidence/{body['seq'] + 1}/snapshot",
        "/api/v1/evidence/1/thumb?epoch=x",
    ):
        assert (await client.get(bad)).status in (400, 404), bad
    status = await (await client.get("/api/v1/status")).json()
    cam = status["cameras"]["hik1"]
    assert cam["reads"] == 1 and cam["stale"] is False and cam["reads_per_minute"] == 1
    assert status["evidence"]["reads"] == 1


async def test_a_hit_carries_the_thumbnail_to_the_tablet_and_towards_the_hub(client, settings):
    from protocols.feed import EntryUpsert, FeedDelta, ListUpsert
    from protocols.matching import Entry, Watchlist

    await client.app[keys.MIRROR].apply_delta(
        FeedDelta(
            v=1,
            version=1,
            changes=[
                ListUpsert(watchlist=Watchlist(list_id="drugs", name="涉毒")),
                EntryUpsert(entry=Entry(entry_id="drugs:皖A7XG66", list_id="drugs", plate="皖A7XG66")),
            ],
        )
    )
    await client.post("/login", json={"code": "123456"})
    async with client.ws_connect("/api/v1/ws") as ws:
        await ws.receive_json(timeout=5)  # hello
        resp = await push(client, "cn_v20.multipart")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        frames = [await ws.receive_json(timeout=5) for _ in range(3)]
    (alert,) = [f["alert"] for f in frames if f["type"] == "alert"]
    (kept,) = [f for f in frames if f["type"] == "evidence"]  # the tablets learn the pictures are kept
    assert kept["seq"] == body["seq"] and sorted(kept["kinds"]) == ["plate", "snapshot", "thumb"]
    thumb = client.app[keys.EVIDENCE].thumbnail(body["seq"])
    assert alert["plate_read"] == "皖A7XG66" and base64.b64decode(alert["thumbnail"]) == thumb
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        (raw,) = db.execute("SELECT body FROM outbox WHERE kind = 'hit'").fetchone()
    hit = json.loads(raw)
    assert hit["read_seq"] == body["seq"] and base64.b64decode(hit["thumbnail"]) == thumb
    assert len(hit["thumbnail"]) <= 16_384


async def test_a_hit_on_a_read_with_a_corrupt_picture_has_no_thumbnail_and_is_still_raised(client, settings):
    from protocols.feed import EntryUpsert, FeedDelta, ListUpsert
    from protocols.matching import Entry, Watchlist

    resp = await push(client, "corrupt_jpeg.multipart")
    plate = (await resp.json())["plate"]
    await client.app[keys.MIRROR].apply_delta(
        FeedDelta(
            v=1,
            version=1,
            changes=[
                ListUpsert(watchlist=Watchlist(list_id="drugs", name="涉毒")),
                EntryUpsert(entry=Entry(entry_id=f"drugs:{plate}", list_id="drugs", plate=plate)),
            ],
        )
    )
    resp = await push(client, "corrupt_jpeg.multipart")
    body = await resp.json()
    assert resp.status == 200 and body["evidence_error"]
    alert = client.app[keys.SERVICE].alerts[-1]
    assert alert.seq == body["seq"] and alert.thumbnail is None
