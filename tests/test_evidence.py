"""The evidence store (quota, retention, crop, thumbnail, restart), the video fallback, camera staleness."""

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import keys
from edge.app import create_app, warn_stale
from edge.evidence import EvidenceStore, ImageError, PlateRect, decode_image, thumbnail
from edge.settings import CameraSettings, EdgeSettings, MqttSettings
from edge.sources.video import FrameError, grab_frame
from protocols.messages import THUMBNAIL_MAX_BYTES

SCENE = (Path(__file__).parent / "fixtures" / "cameras" / "dahua" / "snapshot.jpg").read_bytes()


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def store(tmp_path, clock, **kw):
    s = EvidenceStore(
        tmp_path / "evidence",
        max_bytes=kw.pop("max_bytes", 0),
        retention_days=kw.pop("retention_days", 30),
        clock=clock,
        **kw,
    )
    s.start()
    return s


async def test_snapshot_crop_and_thumbnail(tmp_path):
    s = store(tmp_path, Clock())
    saved = await s.save(3, 7, snapshot=SCENE, plate_rect=PlateRect(420, 600, 200, 90))
    assert saved.kinds == ("snapshot", "plate", "thumb") and saved.error is None
    plate = cv2.imread(str(s.path(3, 7, "plate")))
    assert plate.shape[:2] == (360 * 90 // 1000, 640 * 200 // 1000)  # thousandths of 640x360
    assert plate.mean() > 180  # the white plate, not the grey road
    thumb = cv2.imdecode(np.frombuffer(s.thumbnail(7), np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) == 320 and len(s.thumbnail(7)) < 15_000
    assert s.thumbnail(8) is None and s.path(3, 7, "../../x") is None


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"", "empty"),
        (SCENE[:-600], "truncated JPEG"),
        (b"GIF89a not really", "not a decodable image"),
    ],
)
async def test_corrupt_pictures_are_refused_with_a_reason(tmp_path, data, needle):
    with pytest.raises(ImageError, match=needle):
        decode_image(data, "snapshot")
    saved = await store(tmp_path, Clock()).save(1, 1, snapshot=data)
    assert saved.kinds == () and needle in saved.error


async def test_quota_and_retention_delete_the_oldest_first_and_survive_a_restart(tmp_path):
    clock = Clock()
    s = store(tmp_path, clock, max_bytes=3 * (len(SCENE) + 6000), retention_days=1)
    for seq in range(1, 6):
        clock.t += 60
        await s.save(1, seq, snapshot=SCENE)
    assert (
        s.bytes <= s.max_bytes and s.path(1, 1, "snapshot") is None and s.path(1, 5, "snapshot") is not None
    )
    kept = [seq for seq in range(1, 6) if s.path(1, seq, "thumb")]
    assert kept == list(range(6 - len(kept), 6)) and len(kept) >= 2
    # A restart rebuilds the index from the files.
    again = store(tmp_path, clock, max_bytes=s.max_bytes, retention_days=1)
    assert again.bytes == s.bytes and again.thumbnail(5) == s.thumbnail(5)
    # Past the retention everything goes, and the day folders with it.
    clock.t += 2 * 86400
    again.start()
    assert len(again) == 0 and again.bytes == 0 and not any((tmp_path / "evidence").iterdir())


def make_video(path: Path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    for i in range(5):
        writer.write(np.full((120, 160, 3), 40 * i, np.uint8))
    writer.release()


async def test_video_frame_for_a_read_without_a_picture(aiohttp_client, tmp_path, dead_broker_url):
    video = tmp_path / "lane1.avi"
    make_video(video)
    frame = await grab_frame(str(video))
    assert cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    with pytest.raises(FrameError, match="did not open"):
        await grab_frame(str(tmp_path / "missing.avi"))
    settings = EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        cameras=[
            CameraSettings(id="lane1", token="t", video=str(video)),
            CameraSettings(id="lane2", token="t2", video=str(tmp_path / "none.avi")),
        ],
    )
    client = await aiohttp_client(create_app(settings))
    body = await (await client.post("/api/v1/cameras/lane1/reads?token=t", json={"plate": "鲁A12345"})).json()
    assert body["evidence"] == ["snapshot", "thumb"] and body["evidence_error"] is None
    body = await (
        await client.post("/api/v1/cameras/lane2/reads?token=t2", json={"plate": "鲁A12345"})
    ).json()
    assert body["seq"] == 2 and body["evidence"] == [] and "did not open" in body["evidence_error"]


async def test_a_silent_camera_turns_stale_and_is_warned_about_once(
    aiohttp_client, tmp_path, dead_broker_url, caplog
):
    settings = EdgeSettings(
        checkpoint="SD-DZ-001",
        data_dir=str(tmp_path / "edge"),
        mqtt=MqttSettings(url=dead_broker_url, reconnect_min_s=5),
        cameras=[CameraSettings(id="lane1", token="t", stale_after_s=60)],
    )
    client = await aiohttp_client(create_app(settings))
    service = client.app[keys.SERVICE]
    clock = Clock(service.now())
    service._clock = clock
    health = service.camera("lane1")
    assert not health.stale(clock.t) and warn_stale(service) == []
    clock.t += 61
    with caplog.at_level(logging.WARNING):
        assert warn_stale(service) == ["lane1"] and warn_stale(service) == []
    assert "camera lane1 is stale" in caplog.text and health.snapshot(clock.t)["stale"] is True
    await client.post("/api/v1/cameras/lane1/reads?token=t", json={"plate": "鲁A12345"})
    assert health.snapshot(clock.t)["stale"] is False and warn_stale(service) == []


def test_thumbnail_is_small_and_capped_even_for_a_noisy_scene():
    noise = np.random.default_rng(7).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)  # JPEG's worst case
    data = thumbnail(noise, 320)
    assert len(data) <= THUMBNAIL_MAX_BYTES
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and max(picture.shape[:2]) <= 320
    scene = thumbnail(decode_image(SCENE, "snapshot"), 320)  # a real scene keeps its full 320 px
    assert max(cv2.imdecode(np.frombuffer(scene, np.uint8), cv2.IMREAD_COLOR).shape[:2]) == 320
    with pytest.raises(ImageError, match="no thumbnail fits"):
        thumbnail(noise, 320, max_bytes=100)


async def test_render_then_keep_is_what_save_does(tmp_path):
    s = store(tmp_path, Clock())
    files, errors = await s.render(SCENE, b"not a picture", PlateRect(420, 600, 200, 90))
    assert set(files) == {"snapshot", "plate", "thumb"} and "plate picture" in errors[0]
    saved = await s.keep(3, 9, (files, errors))
    assert saved.kinds == ("snapshot", "plate", "thumb") and "plate picture" in saved.error
    assert s.thumbnail(9, 3) == files["thumb"]


async def test_the_answer_to_the_hubs_request_over_mqtt(tmp_path):
    import base64

    from edge import evidence_reply
    from protocols.messages import MAX_PAYLOAD_BYTES, EvidenceReply, EvidenceRequest, decode, encode

    epoch = 1795887127600975  # a real epoch's 16 digits: the index must still find it after a restart
    s = store(tmp_path, Clock())
    await s.save(epoch, 2, snapshot=SCENE)
    s = store(tmp_path, Clock())  # restarted
    ask = EvidenceRequest(v=1, request_id="R0123456789", epoch=epoch, seq=2, kinds=["scene", "plate"])
    scene, plate = evidence_reply.answer(s, "SD-DZ-001", epoch, ask)
    assert base64.b64decode(scene.data) == s.path(epoch, 2, "snapshot").read_bytes() and not scene.reencoded
    assert plate.data is None and "not kept" in plate.error  # no plate rectangle: an error, never silence
    (old,) = evidence_reply.answer(
        s,
        "SD-DZ-001",
        epoch + 1,
        EvidenceRequest(v=1, request_id="R0123456789", epoch=epoch, seq=2, kinds=["scene"]),
    )
    assert "not kept" in old.error and old.data is None
    # A picture too big for one message is re-encoded smaller, and the reply says so.
    noisy = np.random.default_rng(1).integers(0, 256, (2000, 2600, 3), dtype=np.uint8)
    big = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    assert len(big) > MAX_PAYLOAD_BYTES
    s.path(epoch, 2, "snapshot").write_bytes(big)
    (fitted,) = evidence_reply.answer(
        s,
        "SD-DZ-001",
        epoch,
        EvidenceRequest(v=1, request_id="R0123456789", epoch=epoch, seq=2, kinds=["scene"]),
    )
    payload = encode(fitted)
    assert fitted.reencoded and len(payload) < MAX_PAYLOAD_BYTES
    assert decode(EvidenceReply, payload) == fitted
    assert decode_image(base64.b64decode(fitted.data), "re-encoded").ndim == 3
