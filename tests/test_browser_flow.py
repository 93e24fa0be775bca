"""The people's side in a real headless Chromium, against real hub, edge and Mosquitto processes:
an intercept hit pushed at a camera alarms the tablet (sound really playing) and reaches the console;
the officer's outcome reaches the console; a covert hit reaches a commander's console and never the
tablet; markup in a plate stays text; the tablet keeps alerting with the hub stopped; both languages
at 1280x800, with a screenshot of the console saved for the README (the tablet's views at every size are
tests/test_browser_tablet.py's)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.browser_checks import wall_screenshot
from tests.support import (
    Ring,
    chromium_args,
    edge_service,
    get_json,
    hub_service,
    running,
    session,
    sign_in_page,
    until,
)

pytestmark = [pytest.mark.browser, pytest.mark.system]
FEED_TOKEN = "feed-secret"
PASSWORD = "command centre 24h"
WATCHLIST = """plate,list,action,priority,reason
鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品
鲁B7T5X9,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品
鲁A0K88B,秘密布控车辆,covert,70,专案秘密布控
鲁C3M7P2,<img src=x onerror=window.pwn3=1>名单,intercept,80,<b>事由</b>
"""
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TIMEOUT_MS = 45_000


async def push(http, edge, plate, event_id):
    async with http.post(
        f"{edge.base}/api/v1/cameras/cam1/reads",
        json={"plate": plate, "colour": "blue", "lane": 1, "event_id": event_id},
        headers={"X-Camera-Token": "t1"},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def test_people_side_end_to_end(tmp_path, mosquitto):
    wl = tmp_path / "watchlist.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    ring = Ring.create(tmp_path / "pki", ["SD-DZ-001"])  # both web apps over HTTPS from the project's PKI
    hub = hub_service(
        tmp_path / "hub",
        mosquitto.url,
        watchlist_csv=wl,
        extra={"feed": {"token": FEED_TOKEN}, "http": ring.https("cordon-hub")},
    )
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam1": "t1"},
        extra={
            "hub": {"url": hub.base, "token": FEED_TOKEN, "ca_file": str(ring.ca)},
            "http": ring.https("SD-DZ-001"),
        },
    )
    assert hub.base.startswith("https://") and edge.base.startswith("https://")
    added = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "cordon.cli",
            "user",
            "add",
            "sun.cmd",
            "--role",
            "commander",
            "--data",
            str(tmp_path / "hub" / "data"),
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    hub.start()
    edge.start()
    shots = os.environ.get("CORDON_SCREENSHOTS") == "1"
    with running(hub, edge):
        async with session(ring.client_context()) as http, async_playwright() as pw:
            await until(lambda: _mirrored(http, edge), timeout=40, what="the edge's watchlist mirror")
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    *chromium_args(
                        ring.pki.root / "cordon-hub" / "server.crt",
                        ring.pki.root / "SD-DZ-001" / "server.crt",
                    ),
                    "--autoplay-policy=user-gesture-required",
                ],
            )
            try:
                view = {"width": 1280, "height": 800}
                console = await (await browser.new_context(viewport=view)).new_page()
                await console.goto(hub.base + "/login")
                await console.fill("input[name=username]", "sun.cmd")
                await console.fill("input[name=password]", PASSWORD)
                await console.click("button[type=submit]")
                await console.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)

                tablet = await (await browser.new_context(viewport=view)).new_page()
                await sign_in_page(tablet, edge.base, "tablet-code")
                await tablet.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                await tablet.mouse.click(640, 400)  # the officer's first tap unlocks the alarm sound
                assert (
                    await tablet.evaluate("window.cordonAudioState && window.cordonAudioState()") == "running"
                )

                # an intercept hit: full-screen alarm with sound at the tablet, and on the console
                await push(http, edge, "鲁Q8K2L1", "ev-1")
                await tablet.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
                assert "鲁Q8K2L1" in await tablet.inner_text("#overlay-body")
                assert await tablet.evaluate("window.cordonSirenCount || 0") >= 1, "the siren played"
                box = await tablet.locator("#overlay").bounding_box()
                assert box == {"x": 0, "y": 0, "width": 1280, "height": 800}, "the alarm fills the screen"
                assert await _overflowing(tablet, "#overlay button, #overlay-body .plate") == []
                await console.wait_for_selector("#alerts li.intercept", timeout=TIMEOUT_MS)

                # the officer records the outcome; the console shows it
                await tablet.fill("#overlay-note", "驾驶员已带回核查 <img src=x onerror=window.pwn=1>")
                await tablet.click("button[data-outcome=intercepted]")
                await tablet.wait_for_selector("#overlay", state="hidden", timeout=TIMEOUT_MS)
                await console.wait_for_selector(".outcome-line", timeout=TIMEOUT_MS)
                line = await console.inner_text(".outcome-line")
                assert "已拦截" in line and "驾驶员已带回核查" in line
                assert "<img src=x onerror=window.pwn=1>" in line, "a note with markup is shown as text"
                assert await console.evaluate("typeof window.pwn") == "undefined"

                # markup in a plate is shown as text
                await push(http, edge, "<script>x=1</script>", "ev-2")
                await until(
                    lambda: _shows(tablet, "#reads", "<SCRIPT>X=1"), timeout=45, what="the read on the tablet"
                )
                assert await tablet.evaluate("typeof x") == "undefined"

                # a covert hit reaches the commander's console ...
                await push(http, edge, "鲁A0K88B", "ev-3")
                await console.wait_for_selector("#alerts li.covert", timeout=TIMEOUT_MS)
                # ... and the tablet shows nothing of it (for certain once a later read is acknowledged, below)
                assert "鲁A0K88B" not in await tablet.inner_text("#alerts")
                assert await tablet.is_hidden("#overlay")

                if shots:
                    await wall_screenshot(
                        console, str(SHOTS / "console.png")
                    )  # the tablet's: test_browser_tablet

                # markup in a list name and a reason is shown as text on the tablet and the console
                await push(http, edge, "鲁C3M7P2", "ev-5")
                await tablet.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
                shown = await tablet.inner_text("#overlay-body")
                assert "<img src=x onerror=window.pwn3=1>名单" in shown and "<b>事由</b>" in shown
                await tablet.click("#overlay-later")
                # This read went up after the covert one and is acknowledged now: the hub had sent the
                # edge whatever it was going to send for the covert read (the broker keeps the order).
                await until(lambda: _acknowledged(http, edge), timeout=45, what="the later read acknowledged")
                shown = (await get_json(http, f"{edge.base}/api/v1/alerts"))["alerts"]
                assert "鲁A0K88B" not in {a["plate_read"] for a in shown}, "a covert hit reached the tablet"
                assert "鲁A0K88B" not in await tablet.inner_text("#alerts")
                await until(
                    lambda: _shows(console, "#alerts", "<img src=x onerror=window.pwn3=1>名单"),
                    timeout=45,
                    what="the list name on the console",
                )
                for page in (tablet, console):
                    assert await page.evaluate("typeof window.pwn3") == "undefined"

                # the hub stops: the tablet keeps alerting from the edge's own mirror
                hub.stop()
                await push(http, edge, "鲁B7T5X9", "ev-4")
                await tablet.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
                assert "鲁B7T5X9" in await tablet.inner_text("#overlay-body")
                await tablet.click("#overlay-later")

                # Chinese then English, at 1280x800, nothing spilling sideways or cut off
                assert (
                    await tablet.locator("header button").count() >= 3
                )  # the overflow checks look at something
                assert (
                    await _overflowing(tablet, "header button, header .badge, h1, h2, .col-side button") == []
                )
                assert await _overflowing(console, "header button, header .badge, h1, h2") == []
                await tablet.click("#lang")
                assert await tablet.inner_text("h2 >> nth=0") == "Alerts"
                assert await tablet.evaluate("document.documentElement.scrollWidth <= 1280")
                assert (
                    await _overflowing(tablet, "header button, header .badge, h1, h2, .col-side button") == []
                )
                await console.click("#lang")
                assert await console.inner_text("h2 >> nth=0") == "Alerts"
                assert await console.evaluate("document.documentElement.scrollWidth <= 1280")
                assert await _overflowing(console, "header button, header .badge, h1, h2") == []
            finally:
                await browser.close()


async def _overflowing(page, selector):
    """The visible elements matching ``selector`` whose text is wider than their box (cut off or spilling)."""
    return await page.eval_on_selector_all(
        selector,
        """els => els
        .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
        .map(e => e.tagName + '#' + e.id + ': ' + e.textContent.trim().slice(0, 40))""",
    )


async def _shows(page, selector, text):
    return text in await page.inner_text(selector)


async def _acknowledged(http, edge):
    status = await get_json(http, f"{edge.base}/api/v1/status")
    return status["outbox"]["depth"] == 0 and status["uplink"]["inflight"] == 0


async def _mirrored(http, edge):
    async with http.post(f"{edge.base}/login", json={"code": "tablet-code"}) as resp:
        assert resp.status == 200
    status = await get_json(http, f"{edge.base}/api/v1/status")
    return status["feed"]["entries"] >= 3
