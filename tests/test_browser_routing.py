"""The console map in a real headless Chromium against real hub, edge and Mosquitto processes: a checkpoint
whose edge reports a stale camera is coloured as such, and its read rate (reads per minute as stored by
the hub) is drawn next to it, labels of close checkpoints do not overlap; a folded repeat shows its count on
the queue row and the detail says where the alert was routed. Screenshot docs/screenshots/console-routing.png
with CORDON_SCREENSHOTS=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.browser_checks import wall_screenshot
from tests.support import edge_service, hub_service, running, session, sign_in_page, until

pytestmark = [pytest.mark.browser, pytest.mark.system]
WATCHLIST = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n"
TIMEOUT_MS = 45_000
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


async def push(http, edge, event_id, plate):
    async with http.post(
        f"{edge.base}/api/v1/cameras/cam1/reads",
        json={"plate": plate, "event_id": event_id},
        headers={"X-Camera-Token": "t1"},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def test_map_shows_a_stale_camera_and_the_read_rate(tmp_path, mosquitto):
    wl = tmp_path / "watchlist.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(
        tmp_path / "hub", mosquitto.url, watchlist_csv=wl, extra={"alerts": {"fold_window_s": 600}}
    )
    edge = edge_service(tmp_path / "edge", "SD-DZ-001", mosquitto.url, cameras={"cam1": "t1"})
    conf = edge.workdir / "edge.toml"
    # a second camera that never sends anything: stale after a second
    conf.write_text(
        conf.read_text(encoding="utf-8") + '\n[[cameras]]\nid = "cam-dead"\ntoken = "t9"\n'
        "stale_after_s = 1\n",
        encoding="utf-8",
    )
    hub.start()
    edge.start()
    with running(hub, edge):
        async with session() as http, async_playwright() as pw:
            for i in range(7):
                await push(http, edge, f"ev-{i}", f"鲁B{i}0{i}23")
            # the listed vehicle twice: one alert, the second hit folded into it
            await push(http, edge, "hit-1", "鲁Q8K2L1")
            await push(http, edge, "hit-2", "鲁Q8K2L1")
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
                await sign_in_page(page, hub.base, "console-code")
                await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                cp = '#map g.cp[data-checkpoint="SD-DZ-001"]'
                await page.wait_for_selector(cp + ".stale", timeout=TIMEOUT_MS)
                assert "cam-dead" in await page.text_content(cp + " title")
                colour = await page.eval_on_selector(cp + " circle", "c => getComputedStyle(c).fill")
                online = await page.eval_on_selector(
                    ".dot.online", "d => getComputedStyle(d).backgroundColor"
                )
                assert colour != online

                async def rate():
                    text = (
                        await page.text_content(cp + " .cp-rate")
                        if await page.locator(cp + " .cp-rate").count()
                        else ""
                    )
                    return text if text.startswith("9 ") else None

                # the rate and, as the checkpoint is not plainly online, its state in words
                assert (
                    await until(rate, timeout=45, what="the read rate on the map")
                ) == "9 辆/分 · 相机失联"

                # labels of close checkpoints do not overlap
                boxes = await page.eval_on_selector_all(
                    "#map g.cp text.cp-name",
                    """ts => ts.map(t => {
                    const b = t.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; })""",
                )
                assert len(boxes) > 10
                overlapping = [
                    (a, b)
                    for i, a in enumerate(boxes)
                    for b in boxes[i + 1 :]
                    if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                ]
                assert not overlapping, overlapping
                frame = await page.eval_on_selector(
                    "#map",
                    "m => { const b = m.getBoundingClientRect(); "
                    "return [b.left, b.top, b.right, b.bottom]; }",
                )
                assert all(frame[1] <= b[1] and b[3] <= frame[3] for b in boxes), (
                    frame,
                    [b for b in boxes if not (frame[1] <= b[1] and b[3] <= frame[3])],
                    len(boxes),
                )

                row = "#alerts li.intercept"
                await page.wait_for_selector(row + " .badge.folded", timeout=TIMEOUT_MS)
                assert await page.locator(row).count() == 1
                assert "×2" in await page.text_content(row + " .badge.folded")
                await page.click(row)
                detail = await page.inner_text("#detail-body")
                assert "推送至" in detail and "SD-DZ-001" in detail and "重复比中" in detail
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await wall_screenshot(page, str(SHOTS / "console-routing.png"))
            finally:
                await browser.close()


ROUTING = """
[[routing.downstream]]
from = "SD-DZ-001"
direction = "in"
to = ["SD-LY-001"]
"""


async def test_the_downstream_tablet_marks_the_alert_and_its_outcome_reaches_the_console(tmp_path, mosquitto):
    wl = tmp_path / "watchlist.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(tmp_path / "hub", mosquitto.url, watchlist_csv=wl)
    conf = hub.workdir / "hub.toml"
    conf.write_text(conf.read_text(encoding="utf-8") + ROUTING, encoding="utf-8")
    e1 = edge_service(tmp_path / "e1", "SD-DZ-001", mosquitto.url, cameras={"cam1": "t1"})
    e2 = edge_service(tmp_path / "e2", "SD-LY-001", mosquitto.url, cameras={"cam1": "t2"})
    for service in (hub, e1, e2):
        service.start()
    with running(hub, e1, e2):
        async with session() as http, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
                console, tablet = await ctx.new_page(), await ctx.new_page()
                await sign_in_page(console, hub.base, "console-code")
                await console.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                await sign_in_page(tablet, e2.base, "tablet-code")
                await tablet.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                await tablet.mouse.click(640, 400)

                async with http.post(
                    f"{e1.base}/api/v1/cameras/cam1/reads",
                    json={"plate": "鲁Q8K2L1", "event_id": "in-1", "direction": "in"},
                    headers={"X-Camera-Token": "t1"},
                ) as resp:
                    assert resp.status == 200, await resp.text()
                await tablet.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
                note = tablet.locator('#overlay-body .route-note[data-why="downstream"]')
                assert await note.count() == 1
                assert (
                    "车辆正驶向本查缉点" in await note.text_content()
                    and "SD-DZ-001" in await note.text_content()
                )
                await tablet.click("button[data-outcome=not_found]")
                await tablet.wait_for_selector("#overlay", state="hidden", timeout=TIMEOUT_MS)
                await console.wait_for_selector("#alerts li.intercept .outcome-line", timeout=TIMEOUT_MS)
                assert "未发现" in await console.text_content("#alerts li.intercept .outcome-line")
                await console.click("#alerts li.intercept")
                assert "下游查缉点" in await console.inner_text("#detail-body")
            finally:
                await browser.close()
