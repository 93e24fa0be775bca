"""Evidence pictures in a real headless Chromium against real hub, edge and Mosquitto processes: a
Hikvision push with its JPEG parts hits a watchlist; the tablet's full-screen alarm shows the scene and
the plate close-up from the edge's own store, and its live passages the read's thumbnail; the hub's alert carries the edge's thumbnail, and the
console shows it in the alert queue and, larger, in the alert detail. Screenshots
docs/screenshots/console-evidence.png and tablet-evidence.png with CORDON_SCREENSHOTS=1."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.support import (
    edge_service,
    get_json,
    hub_service,
    login,
    running,
    session,
    sign_in_page,
    until,
    write_toml,
)

pytestmark = [pytest.mark.browser, pytest.mark.system]
FEED_TOKEN = "feed-secret"
WATCHLIST = "plate,list,action,priority,reason\n皖A7XG66,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n"
HIK = Path(__file__).parent / "fixtures" / "cameras" / "hikvision"
BOUNDARY = "---------------------------7e13971310878"
TIMEOUT_MS = 45_000
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


async def test_the_picture_reaches_the_tablet_alarm_and_the_console(tmp_path, mosquitto):
    wl = tmp_path / "watchlist.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(
        tmp_path / "hub", mosquitto.url, watchlist_csv=wl, extra={"feed": {"token": FEED_TOKEN}}
    )
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
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
        async with session() as http, async_playwright() as pw:
            await login(http, edge.base, "tablet-code")
            await until(lambda: _mirrored(http, edge), timeout=40, what="the edge's watchlist mirror")
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                view = {"width": 1280, "height": 800}
                tablet = await (await browser.new_context(viewport=view)).new_page()
                await sign_in_page(tablet, edge.base, "tablet-code")
                await tablet.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                # the console on a wall screen: below 1600 px the queue's rows leave their thumbnail out
                # (two dense lines; the detail beside shows the pictures)
                wall = {"width": 1920, "height": 1080}
                console = await (await browser.new_context(viewport=wall)).new_page()
                await sign_in_page(console, hub.base, "console-code")
                await console.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)

                async with http.post(
                    f"{edge.base}/api/v1/cameras/hik1/reads?token=t1",
                    data=(HIK / "cn_v20.multipart").read_bytes(),
                    headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                ) as resp:
                    assert resp.status == 200, await resp.text()
                    seq = (await resp.json())["seq"]

                # the tablet: the alarm shows the scene and the plate crop, both decoded by the browser
                await tablet.wait_for_selector(
                    "#overlay:not([hidden]) img.evidence-scene", timeout=TIMEOUT_MS
                )
                await until(
                    lambda: _loaded(tablet, "#overlay img.evidence-scene"), timeout=30, what="the scene"
                )
                await until(
                    lambda: _loaded(tablet, "#overlay img.evidence-plate"), timeout=30, what="the crop"
                )
                src = await tablet.get_attribute("#overlay img.evidence-scene", "src")
                assert src.startswith(f"/api/v1/evidence/{seq}/snapshot")  # the edge's full picture
                # the live passages: the read's row shows its thumbnail
                await until(
                    lambda: _loaded(tablet, f'#reads li[data-seq="{seq}"] img.read-thumb'),
                    timeout=30,
                    what="the live row's thumbnail",
                )

                # the console: the thumbnail beside the alert in the queue, larger in the detail
                await console.wait_for_selector("#alerts li.intercept img.evidence-thumb", timeout=TIMEOUT_MS)
                await until(
                    lambda: _loaded(console, "#alerts li.intercept img.evidence-thumb"),
                    timeout=30,
                    what="the queue's thumbnail",
                )
                await login(http, hub.base, "console-code")
                alerts = (await get_json(http, f"{hub.base}/api/v1/alerts"))["alerts"]
                (alert,) = [a for a in alerts if a["plate_read"] == "皖A7XG66"]
                assert alert["thumbnail"] and alert["seq"] == seq  # kept with the alert at the hub
                await console.click("#alerts li.intercept")
                # the thumbnail stands in for the scene (or the full scene is there already)
                await console.wait_for_selector("#detail-body figure.evidence-scene img", timeout=TIMEOUT_MS)
                # then the full scene and plate crop, fetched by the hub from the edge over MQTT
                kept = tmp_path / "edge" / "data" / "evidence"
                (scene_file,) = kept.glob(f"*/{alert['epoch']}-{seq}-snapshot.jpg")
                full = "#detail-body img.evidence-full-picture[data-kind=scene]"
                await until(lambda: _loaded(console, full), timeout=30, what="the full scene")
                await until(
                    lambda: _loaded(console, "#detail-body img.evidence-full-picture[data-kind=plate]"),
                    timeout=30,
                    what="the full plate crop",
                )
                natural = await console.evaluate(f"document.querySelector('{full}').naturalWidth")
                assert natural == _jpeg_width(scene_file.read_bytes()) and natural > 320
                # one scene, not the same one twice: the thumbnail gave way to the full picture
                assert await console.locator("#detail-body img.evidence-picture").count() == 0
                assert await console.locator("#detail-body figure.evidence-scene img").count() == 1
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await console.screenshot(path=str(SHOTS / "console-evidence.png"))
                    await tablet.screenshot(path=str(SHOTS / "tablet-evidence.png"))
                await console.click("#lang")
                assert await console.get_attribute(full, "alt") is not None
                assert await console.evaluate("document.documentElement.scrollWidth <= 1920")
            finally:
                await browser.close()


def _jpeg_width(data: bytes) -> int:
    """The width in a JPEG's start-of-frame marker."""
    i = 2
    while i < len(data):
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[i + 7 : i + 9], "big")
        i += 2 + length
    raise ValueError("no start of frame")


async def _mirrored(http, edge):
    status = await get_json(http, f"{edge.base}/api/v1/status")
    return status["feed"]["entries"] >= 1


async def _loaded(page, selector):
    return await page.evaluate(
        "(s) => { const i = document.querySelector(s); return !!i && i.complete && i.naturalWidth > 0; }",
        selector,
    )
