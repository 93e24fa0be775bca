"""The hub fetches a read's full evidence picture from the edge over MQTT (the edge sits behind NAT):
real Mosquitto, real hub and edge processes, a Hikvision push with its JPEG parts. The bytes the hub
serves are the edge's own; a stopped edge gives a clear reason and the picture comes once it is back;
accounts that may not see it are refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.support import edge_service, get_json, hub_service, login, running, session, until, write_toml

pytestmark = [pytest.mark.system]
CP = "SD-DZ-001"
FEED_TOKEN = "feed-secret"
WATCHLIST = (
    "plate,list,action,priority,reason\n皖A7XG66,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n"
    "鲁A12345,秘密布控,covert,80,内部线索\n"
)
HIK = Path(__file__).parent / "fixtures" / "cameras" / "hikvision"
BOUNDARY = "---------------------------7e13971310878"
PASSWORD = "correct horse battery staple 9"


async def _get(http, url):
    async with http.get(url) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


async def _online(http, hub, online):
    found = (await get_json(http, f"{hub.base}/api/v1/checkpoints"))["checkpoints"]
    return any(c["checkpoint"] == CP and bool(c["online"]) is online for c in found)


async def test_the_hub_fetches_the_picture_from_the_edge_over_mqtt(tmp_path, mosquitto):
    wl = tmp_path / "watchlist.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(
        tmp_path / "hub", mosquitto.url, watchlist_csv=wl, extra={"feed": {"token": FEED_TOKEN}}
    )
    edge = edge_service(
        tmp_path / "edge",
        CP,
        mosquitto.url,
        cameras={"hik1": "t1"},
        extra={"hub": {"url": hub.base, "token": FEED_TOKEN}},
    )
    conf = tmp_path / "edge" / "edge.toml"
    config = tomllib.loads(conf.read_text(encoding="utf-8"))
    config["cameras"][0]["kind"] = "hikvision"
    write_toml(conf, config)
    hub.start()
    edge.start()
    with running(hub, edge):
        async with (
            session() as tablet,
            session() as http,
            session() as stranger,
            session() as officer,
            session() as manager,
        ):
            await login(tablet, edge.base, "tablet-code")
            await login(http, hub.base, "console-code")
            await until(lambda: _mirrored(tablet, edge), timeout=40, what="the edge's watchlist mirror")
            seq = await _push(tablet, edge, "cn_v20.multipart")
            alert = await until(lambda: _alert(http, hub), timeout=40, what="the hub's alert")
            assert alert["seq"] == seq
            epoch = alert["epoch"]
            kept_scene = await _get(tablet, f"{edge.base}/api/v1/evidence/{seq}/snapshot")
            kept_plate = await _get(tablet, f"{edge.base}/api/v1/evidence/{seq}/plate")
            assert kept_scene[0] == 200 and kept_plate[0] == 200
            url = f"{hub.base}/api/v1/evidence/{CP}/{epoch}/{seq}"

            # nobody signed in, and an officer (of another checkpoint) are refused
            assert (await _get(stranger, f"{url}/scene"))[0] == 401
            async with http.post(
                f"{hub.base}/api/v1/users",
                json={
                    "username": "wang.officer",
                    "role": "officer",
                    "password": PASSWORD,
                    "checkpoint": "SD-DZ-002",
                },
            ) as resp:
                assert resp.status in (200, 201), await resp.text()
            async with officer.post(
                f"{hub.base}/login", json={"username": "wang.officer", "password": PASSWORD}
            ) as resp:
                assert resp.status == 200, await resp.text()
            assert (await _get(officer, f"{url}/scene"))[0] == 403
            async with http.post(
                f"{hub.base}/api/v1/users",
                json={"username": "li.manager", "role": "watchlist_manager", "password": PASSWORD},
            ) as resp:
                assert resp.status in (200, 201), await resp.text()
            async with manager.post(
                f"{hub.base}/login", json={"username": "li.manager", "password": PASSWORD}
            ) as resp:
                assert resp.status == 200, await resp.text()
            assert (await _get(http, f"{url}/video"))[0] == 400

            # online: asked over MQTT, the edge's very bytes come back as a JPEG
            status, body, ctype = await _get(http, f"{url}/scene")
            assert status == 200, body[:300]
            assert ctype == "image/jpeg" and body == kept_scene[1]
            cached = tmp_path / "hub" / "data" / "evidence" / CP / f"{epoch}-{seq}-scene.jpg"
            # a read of another epoch is not kept at the edge: a reason, not silence
            status, body, _ = await _get(http, f"{hub.base}/api/v1/evidence/{CP}/{epoch - 1}/{seq}/scene")
            assert status == 404 and b"not kept" in body, body

            # both pictures came with the one request: the crop is served from the hub's cache
            assert cached.exists()
            status, body, _ = await _get(http, f"{url}/plate")
            assert status == 200 and body == kept_plate[1]

            # a second read (no alert: for the roles that search reads), then the edge stops
            seq2 = await _push(tablet, edge, "old_firmware.multipart")
            kept2 = await _get(tablet, f"{edge.base}/api/v1/evidence/{seq2}/snapshot")
            assert kept2[0] == 200
            # its read hit a covert list: the picture is for the privileged roles only
            await until(lambda: _alert(http, hub, "鲁A12345"), timeout=40, what="the covert alert")
            assert (await _get(manager, f"{url}/scene"))[0] == 200  # the intercept alert's picture: staff
            status, body, _ = await _get(manager, f"{hub.base}/api/v1/evidence/{CP}/{epoch}/{seq2}/scene")
            assert status == 404, body
            assert edge.stop() == 0
            await until(lambda: _online(http, hub, False), timeout=40, what="the checkpoint offline")
            url2 = f"{hub.base}/api/v1/evidence/{CP}/{epoch}/{seq2}/scene"
            status, body, _ = await _get(http, url2)
            assert status == 409 and b"checkpoint offline" in body, body
            # the scene fetched before is still served, from the hub's cache
            status, body, _ = await _get(http, f"{url}/scene")
            assert status == 200 and body == kept_scene[1]

            # back online: the hub asks again by itself and keeps the picture
            edge.start()
            await until(lambda: _online(http, hub, True), timeout=40, what="the checkpoint online")
            await until(
                cached.with_name(f"{epoch}-{seq2}-scene.jpg").exists,
                timeout=40,
                what="the picture fetched after the reconnect",
            )
            status, body, ctype = await _get(http, url2)
            assert status == 200 and ctype == "image/jpeg" and body == kept2[1]


async def _push(http, edge, fixture):
    async with http.post(
        f"{edge.base}/api/v1/cameras/hik1/reads?token=t1",
        data=(HIK / fixture).read_bytes(),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["seq"]


async def _mirrored(http, edge):
    status = await get_json(http, f"{edge.base}/api/v1/status")
    return status["feed"]["entries"] >= 1


async def _alert(http, hub, plate="皖A7XG66"):
    alerts = (await get_json(http, f"{hub.base}/api/v1/alerts"))["alerts"]
    return next((a for a in alerts if a["plate_read"] == plate), None)
