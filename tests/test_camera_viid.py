"""GA/T 1400 (视图库) devices pushing to the edge, against fixtures built from the standard's field lists
(tests/fixtures/cameras/viid). The device side is aiohttp's own digest client, not Cordon's code."""

import base64
import json
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from edge import keys
from edge.app import create_app
from edge.settings import CameraSettings, EdgeSettings, MqttSettings, NoPlateSettings, ViidSettings
from runtime.digest import DigestError, DigestGuard

FIX = Path(__file__).parent / "fixtures" / "cameras" / "viid"
CAMERA = "37142800001190000001"
BEHIND = "37142800001190000002"
PLATFORM = "37142800005030000001"
STRANGER = "37142800001190000099"
PASSWORD = "viid-secret"


def fixture(name: str) -> bytes:
    return (FIX / name).read_bytes()


@pytest.fixture
def settings(tmp_path, dead_broker_url):
    return EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        cameras=[
            CameraSettings(id="viid-lane1", kind="viid", device_id=CAMERA, lane=1),
            CameraSettings(
                id="viid-lane3", kind="viid", device_id=BEHIND, via=PLATFORM, password="county-pw"
            ),
        ],
        viid=ViidSettings(server_id="37142800005030000099", password=PASSWORD, max_body_bytes=64_000),
        no_plate=NoPlateSettings(alert=True),
    )


@pytest.fixture
async def server(aiohttp_server, settings):
    return await aiohttp_server(create_app(settings))


@pytest.fixture
async def device(server):
    """A checkpoint camera speaking GA/T 1400 with its digest credentials (user name: its code)."""
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")),
        middlewares=(aiohttp.DigestAuthMiddleware(CAMERA, PASSWORD),),
        headers={"User-Identify": CAMERA, "Content-Type": "application/VIID+JSON;charset=UTF-8"},
    ) as session:
        yield session


async def register(session, device_id=CAMERA):
    body = json.dumps({"RegisterObject": {"DeviceID": device_id}})
    async with session.post("/VIID/System/Register", data=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def post(session, path, name_or_body):
    data = fixture(name_or_body) if isinstance(name_or_body, str) else name_or_body
    async with session.post(path, data=data) as resp:
        return resp.status, await resp.json(content_type=None)


def statuses(answer):
    return answer["ResponseStatusListObject"]["ResponseStatusObject"]


def outbox_read(settings, seq):
    with sqlite3.connect(settings.data_path / "outbox.db") as db:
        (raw,) = db.execute("SELECT body FROM outbox WHERE seq = ?", (seq,)).fetchone()
    return json.loads(raw)


def kept(server, seq):
    evidence, epoch = server.app[keys.EVIDENCE], server.app[keys.OUTBOX].epoch
    return {k for k in ("snapshot", "plate", "thumb") if (p := evidence.path(epoch, seq, k)) and p.exists()}


def fixture_image(name, index):
    doc = json.loads(fixture(name))
    record = doc["MotorVehicleListObject"]["MotorVehicleObject"][0]
    return base64.b64decode(record["SubImageList"]["SubImageInfoObject"][index]["Data"])


async def test_a_camera_registers_keeps_alive_and_its_record_is_committed_with_its_pictures(
    server, device, settings
):
    status, answer = await register(device)
    assert status == 200, answer
    assert (
        answer["ResponseStatusObject"]["StatusCode"] == 0 and answer["ResponseStatusObject"]["Id"] == CAMERA
    )
    status, answer = await post(device, "/VIID/System/Keepalive", "keepalive.json")
    assert status == 200 and answer["ResponseStatusObject"]["StatusCode"] == 0
    async with device.get("/VIID/System/Time") as resp:
        clock = (await resp.json(content_type=None))["SystemTimeObject"]
    assert clock["VIIDServerID"] == "37142800005030000099" and clock["TimeZone"] == "+08:00"
    assert len(clock["LocalTime"]) == 14

    status, answer = await post(device, "/VIID/MotorVehicles", "single.json")
    assert status == 200, answer
    (entry,) = statuses(answer)
    assert (
        entry["StatusCode"] == 0
        and entry["Id"].startswith(CAMERA)
        and entry["RequestURL"] == "/VIID/MotorVehicles"
    )
    service = server.app[keys.SERVICE]
    assert service.reads_total == 1  # committed before the answer
    stored = outbox_read(settings, 1)
    assert stored["plate"] == "鲁N8K2L1" and stored["colour"] == "blue" and stored["lane"] == 1
    assert stored["camera_id"] == "viid-lane1" and stored["vehicle_type"] == "K33"
    assert stored["vehicle_colour"] == "white" and stored["vehicle_brand"] == "58"
    assert stored["camera_event_id"] == entry["Id"] and stored["has_evidence"] is True
    assert stored["captured_at"] == 1795832102.0  # 20261128101502 at +08:00
    evidence = server.app[keys.EVIDENCE]
    assert evidence.path(service.outbox.epoch, 1, "snapshot").read_bytes() == fixture_image("single.json", 0)
    assert evidence.path(service.outbox.epoch, 1, "plate").read_bytes() == fixture_image("single.json", 1)
    health = service.cameras["viid-lane1"]
    assert health.reads == 1 and health.errors == 0 and health.refused == 0


async def test_a_batch_gets_one_status_per_record(server, device, settings):
    assert (await register(device))[0] == 200
    status, answer = await post(device, "/VIID/MotorVehicles", "batch.json")
    assert status == 200
    assert [s["StatusCode"] for s in statuses(answer)] == [0, 0, 0]
    plates = [outbox_read(settings, seq) for seq in (1, 2, 3)]
    assert [r["plate"] for r in plates] == ["冀B12345", "鲁A7XG66", "皖A7XG66"]
    assert plates[1]["colour"] == "yellow" and plates[1]["has_evidence"] is False
    assert plates[2]["lane"] == 2 and plates[2]["captured_at"] == pytest.approx(1795832172.123)
    assert kept(server, 3) == {"snapshot", "plate", "thumb"}  # the scene came as Type 14, the crop as 02


async def test_a_resent_record_is_answered_taken_and_not_recorded_twice(server, device):
    assert (await register(device))[0] == 200
    first = await post(device, "/VIID/MotorVehicles", "single.json")
    again = await post(device, "/VIID/MotorVehicles", "single.json")
    assert statuses(first[1])[0]["StatusCode"] == statuses(again[1])[0]["StatusCode"] == 0
    assert "already taken" in statuses(again[1])[0]["StatusString"]
    assert server.app[keys.SERVICE].reads_total == 1


async def test_a_record_with_a_broken_image_is_kept_without_it(server, device, settings):
    assert (await register(device))[0] == 200
    status, answer = await post(device, "/VIID/MotorVehicles", "broken_image.json")
    assert status == 200
    (entry,) = statuses(answer)
    assert entry["StatusCode"] == 0 and "not base64" in entry["StatusString"]
    stored = outbox_read(settings, 1)
    assert stored["plate"] == "鲁P5M123"
    assert kept(server, 1) == {"plate", "thumb"}
    assert server.app[keys.SERVICE].cameras["viid-lane1"].errors == 1


async def test_a_record_without_a_plate_is_a_no_plate_read_with_its_picture(server, device, settings):
    assert (await register(device))[0] == 200
    status, answer = await post(device, "/VIID/MotorVehicles", "no_plate.json")
    assert status == 200 and statuses(answer)[0]["StatusCode"] == 0
    stored = outbox_read(settings, 1)
    assert stored["no_plate"] is True and stored["plate"] == "" and stored["plate_raw"] == "无车牌"
    (alert,) = server.app[keys.SERVICE].alerts
    assert alert.hit.list_id == "rule:no-plate"


async def test_a_bad_record_gets_its_own_error_and_the_others_are_taken(server, device, settings):
    assert (await register(device))[0] == 200
    status, answer = await post(device, "/VIID/MotorVehicles", "bad_record.json")
    assert status == 200
    bad, good = statuses(answer)
    assert bad["StatusCode"] == 8 and "PassTime" in bad["StatusString"] and bad["Id"].endswith("00007")
    assert good["StatusCode"] == 0
    assert server.app[keys.SERVICE].reads_total == 1 and outbox_read(settings, 1)["plate"] == "鲁Q5678X"
    assert server.app[keys.DEAD].count == 1
    (letter,) = await server.app[keys.DEAD].recent()
    assert "PassTime" in letter.reason and "鲁Q1234X" in letter.raw_preview


@pytest.mark.parametrize(
    "body, code",
    [
        (b"{not json", 7),
        (b'{"FaceListObject": {}}', 8),
        (b'{"MotorVehicleListObject": {"MotorVehicleObject": 3}}', 8),
    ],
)
async def test_a_body_that_is_no_motor_vehicle_list_is_a_400_and_a_dead_letter(server, device, body, code):
    assert (await register(device))[0] == 200
    status, answer = await post(device, "/VIID/MotorVehicles", body)
    assert status == 400 and answer["ResponseStatusObject"]["StatusCode"] == code
    assert server.app[keys.DEAD].count == 1 and server.app[keys.SERVICE].reads_total == 0
    assert (await post(device, "/VIID/MotorVehicles", "single.json"))[0] == 200  # and the edge goes on


async def test_an_oversized_body_is_a_413_and_a_dead_letter(server, device):
    assert (await register(device))[0] == 200
    doc = json.loads(fixture("batch.json"))
    for record in doc["MotorVehicleListObject"]["MotorVehicleObject"]:
        record["SubImageList"]["SubImageInfoObject"] *= (
            4  # pictures enough to be past viid.max_body_bytes here
        )
    body = json.dumps(doc).encode()
    assert len(body) > 64_000
    status, answer = await post(device, "/VIID/MotorVehicles", body)
    assert status == 413 and "limit" in answer["ResponseStatusObject"]["StatusString"]
    assert server.app[keys.DEAD].count == 1 and server.app[keys.SERVICE].reads_total == 0
    assert (await post(device, "/VIID/MotorVehicles", "single.json"))[0] == 200


async def test_a_device_that_never_registered_is_refused_and_logged(server, caplog):
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")), headers={"User-Identify": CAMERA}
    ) as s:
        status, answer = await post(s, "/VIID/MotorVehicles", "single.json")
        assert status == 401 and "not registered" in answer["ResponseStatusObject"]["StatusString"]
        status, _ = await post(s, "/VIID/System/Keepalive", "keepalive.json")
        assert status == 401
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")),
        middlewares=(aiohttp.DigestAuthMiddleware(STRANGER, PASSWORD),),
        headers={"User-Identify": STRANGER},
    ) as stranger:
        status, answer = await register(stranger, STRANGER)
        assert status == 401 and "not configured" in answer["ResponseStatusObject"]["StatusString"]
    assert server.app[keys.SERVICE].reads_total == 0
    assert server.app[keys.SERVICE].cameras["viid-lane1"].refused == 2
    assert server.app[keys.VIID_SOURCE].refused == 3
    assert "not registered" in caplog.text and STRANGER in caplog.text


async def test_a_wrong_digest_password_is_refused(server):
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")),
        middlewares=(aiohttp.DigestAuthMiddleware(CAMERA, "wrong"),),
        headers={"User-Identify": CAMERA},
    ) as wrong:
        status, answer = await register(wrong)
        assert (
            status == 401 and "wrong user name or password" in answer["ResponseStatusObject"]["StatusString"]
        )
        assert (await post(wrong, "/VIID/MotorVehicles", "single.json"))[0] == 401
    assert server.app[keys.VIID_SOURCE].registered == {}
    assert server.app[keys.SERVICE].cameras["viid-lane1"].refused >= 1


async def test_a_registration_lapses_and_unregister_ends_it(server, device):
    source = server.app[keys.VIID_SOURCE]
    assert (await register(device))[0] == 200
    source._clock = lambda: time.time() + 301  # past viid.register_ttl_s without a keepalive
    assert (await post(device, "/VIID/MotorVehicles", "single.json"))[0] == 401
    source._clock = time.time
    assert (await register(device))[0] == 200
    assert (await post(device, "/VIID/System/UnRegister", "unregister.json"))[0] == 200
    assert (await post(device, "/VIID/MotorVehicles", "single.json"))[0] == 401
    assert server.app[keys.SERVICE].reads_total == 0


async def test_a_platform_pushes_for_the_camera_behind_it(server, settings):
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")),
        middlewares=(aiohttp.DigestAuthMiddleware(PLATFORM, "county-pw"),),
        headers={"User-Identify": PLATFORM},
    ) as platform:
        assert (await register(platform, PLATFORM))[0] == 200
        status, answer = await post(platform, "/VIID/MotorVehicles", "platform.json")
        assert status == 200 and statuses(answer)[0]["StatusCode"] == 0
        # A record of a camera that is not behind this platform is refused on its own.
        status, answer = await post(platform, "/VIID/MotorVehicles", "single.json")
        assert status == 200 and statuses(answer)[0]["StatusCode"] == 4
    stored = outbox_read(settings, 1)
    assert stored["camera_id"] == "viid-lane3" and stored["lane"] == 3 and stored["plate"] == "鲁N55555"


async def test_persons_and_faces_are_answered_not_supported(server, device):
    assert (await register(device))[0] == 200
    status, answer = await post(device, "/VIID/Faces", "faces.json")
    assert status == 200
    (entry,) = statuses(answer)
    assert (
        entry["StatusCode"] == 4
        and "not supported" in entry["StatusString"]
        and entry["Id"].endswith("000001")
    )
    assert server.app[keys.VIID_SOURCE].unsupported == 1
    status, answer = await post(device, "/VIID/Persons", b"")
    assert status == 200 and answer["ResponseStatusObject"]["StatusCode"] == 4


def test_digest_nonces_expire_and_replays_are_refused():
    import hashlib

    now = [1000.0]
    guard = DigestGuard("r", nonce_ttl_s=60, clock=lambda: now[0])
    nonce = guard.challenge().split('nonce="')[1].split('"')[0]

    def header(nc, password="pw", uri="/VIID/System/Register"):
        md5 = lambda t: hashlib.md5(t.encode()).hexdigest()  # noqa: E731
        ha1, ha2 = md5(f"u:r:{password}"), md5(f"POST:{uri}")
        response = md5(f"{ha1}:{nonce}:{nc}:c0ffee:auth:{ha2}")
        return (
            f'Digest username="u", realm="r", nonce="{nonce}", uri="{uri}", qop=auth, nc={nc}, '
            f'cnonce="c0ffee", response="{response}", algorithm=MD5'
        )

    def check(h, uri="/VIID/System/Register"):
        return guard.verify("POST", uri, h, lambda user: "pw" if user == "u" else None)

    assert check(header("00000001")) == "u"
    with pytest.raises(DigestError, match="replayed"):
        check(header("00000001"))
    with pytest.raises(DigestError, match="wrong user name or password"):
        check(header("00000002", password="nope"))
    with pytest.raises(DigestError, match="another uri"):
        check(header("00000003"), uri="/VIID/MotorVehicles")
    now[0] += 61
    with pytest.raises(DigestError) as stale:
        check(header("00000004"))
    assert stale.value.stale


def test_the_standard_s_times_codes_and_identities():
    from protocols import viid

    assert viid.parse_time("20261128101502", 8 * 3600) == 1795832102.0
    assert viid.parse_time("20261128101502123", 8 * 3600) == pytest.approx(1795832102.123)
    assert viid.format_time(1795832102.0, 8 * 3600) == "20261128101502"
    for bad in ("2026-11-28", "20261345250000", None, 3.5):
        with pytest.raises(ValueError):
            viid.parse_time(bad, 0)
    assert viid.parse_offset("+08:00") == 28800 and viid.parse_offset("-0330") == -12600
    record = viid.parse_record(
        {"MotorVehicleID": "1", "PlateNo": "鲁A12345", "PlateColor": "6", "HasPlate": 1}, 0
    )
    assert record.plate_colour == "yellow" and record.has_plate and record.pass_time is None
    assert (
        viid.parse_record({"MotorVehicleID": "2", "PlateNo": "鲁A12345", "HasPlate": "false"}, 0).plate
        == "无车牌"
    )
    epoch, seq = viid.read_identity(PLATFORM, "X1")
    assert (epoch, seq) == viid.read_identity(PLATFORM, "X1") and epoch < 2**32 and 1 <= seq < 2**62 + 1
    assert viid.read_identity(PLATFORM, "X2")[1] != seq and viid.read_identity(CAMERA, "X1")[0] != epoch
    sid = viid.new_subscribe_id("371400000000", 1795832102.0, 7, 8 * 3600)
    assert sid == "3714000000000320261128101502" + "00007" and len(sid) == 33


async def test_with_require_digest_every_request_must_carry_one(aiohttp_server, settings):
    import msgspec

    strict = msgspec.structs.replace(
        settings, viid=msgspec.structs.replace(settings.viid, require_digest=True)
    )
    server = await aiohttp_server(create_app(strict))
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")),
        middlewares=(aiohttp.DigestAuthMiddleware(CAMERA, PASSWORD),),
        headers={"User-Identify": CAMERA},
    ) as device:
        assert (await register(device))[0] == 200
        assert (await post(device, "/VIID/MotorVehicles", "single.json"))[0] == 200  # digest on each
    async with aiohttp.ClientSession(
        base_url=str(server.make_url("/")), headers={"User-Identify": CAMERA}
    ) as bare:
        async with bare.post("/VIID/MotorVehicles", data=fixture("single.json")) as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Digest ")
    assert server.app[keys.SERVICE].reads_total == 1
