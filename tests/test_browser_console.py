"""The command console in a real headless Chromium against real hub, edge and Mosquitto processes:
the ring map colours a live checkpoint green, an unheard one grey and a stopped one red; an intercept
alert left without an outcome escalates (highlighted, sounded, audited exactly once); the alert detail
shows why it matched and the vehicle's passages; when its connection drops while an alert is raised,
the console catches up on reconnect, without duplicating alerts, and says it reconnected. Screenshot docs/screenshots/console-map.png with
CORDON_SCREENSHOTS=1."""

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
    UplinkCut,
    chromium_args,
    edge_service,
    get_json,
    hub_service,
    login,
    running,
    session,
    until,
)

pytestmark = [pytest.mark.browser, pytest.mark.system]
FEED_TOKEN = "feed-secret"
PASSWORD = "command centre 24h"
WATCHLIST = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TIMEOUT_MS = 45_000


async def test_console_map_escalation_and_detail(tmp_path, mosquitto):
    wl = tmp_path / "watchlist.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    pki = Ring.create(tmp_path / "pki", ["SD-DZ-001"])  # the hub's console over HTTPS from the project's PKI
    hub = hub_service(
        tmp_path / "hub",
        mosquitto.url,
        watchlist_csv=wl,
        extra={
            "feed": {"token": FEED_TOKEN},
            "console": {"escalate_after_s": 2},
            "http": pki.https("cordon-hub"),
            "alerts": {"fold_window_s": 0},  # the same vehicle twice: two alerts (it tests their delivery)
        },
    )
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam1": "t1"},
        extra={"hub": {"url": hub.base, "token": FEED_TOKEN, "ca_file": str(pki.ca)}},
    )
    assert hub.base.startswith("https://")
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
    line = await UplinkCut(hub.port).start()  # the console reaches the hub through a line the test can cut
    with running(hub, edge):
        async with session(pki.client_context()) as http, async_playwright() as pw:
            await login(http, hub.base, "console-code")  # an admin session, to read the audit trail
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    *chromium_args(pki.pki.root / "cordon-hub" / "server.crt"),
                    "--autoplay-policy=user-gesture-required",
                ],
            )
            try:
                page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
                await page.goto(f"https://127.0.0.1:{line.port}/login")
                await page.fill("input[name=username]", "sun.cmd")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                await page.mouse.click(5, 790)  # the first tap unlocks the escalation sound
                assert (
                    await page.evaluate("window.cordonAudioState && window.cordonAudioState()") == "running"
                )

                # the map: every checkpoint of the shipped ring; the live one green, the others grey
                ring = await get_json(http, f"{hub.base}/api/v1/ring")
                await page.wait_for_selector(
                    '#map g.cp.online[data-checkpoint="SD-DZ-001"]', timeout=TIMEOUT_MS
                )
                assert await page.locator("#map g.cp").count() == len(ring["checkpoints"]) > 10
                assert await page.locator("#map g.cp.unknown").count() == len(ring["checkpoints"]) - 1
                assert "德州京沪高速检查站" in await page.text_content('#map g[data-checkpoint="SD-DZ-001"]')

                # an intercept hit nobody answers: escalated after 2 s, highlighted and sounded
                await push(http, edge, "ev-1")
                await page.wait_for_selector("#alerts li.intercept", timeout=TIMEOUT_MS)
                await page.wait_for_selector("#alerts li.intercept.escalated", timeout=TIMEOUT_MS)
                assert await page.evaluate("window.cordonEscalationSounds || 0") == 1
                alert_id = await page.get_attribute("#alerts li.intercept", "data-alert-id")

                # the detail: why it matched, no outcome yet, and the vehicle's passage (an audited search)
                await page.click("#alerts li.intercept")
                detail = await page.inner_text("#detail-body")
                assert "完全比中" in detail and "涉嫌运输毒品" in detail and "尚无处置" in detail
                await page.wait_for_selector(
                    "#detail-body .passages li:has-text('SD-DZ-001')", timeout=TIMEOUT_MS
                )
                searches = await get_json(http, f"{hub.base}/api/v1/audit?action=record.search")
                assert [r["reason"] for r in searches["records"]] == [f"alert {alert_id}"]
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await wall_screenshot(page, str(SHOTS / "console-map.png"))

                # the console's connection drops while a second alert is raised: on reconnect it catches
                # up, says so, and shows each alert once; each escalation is audited exactly once
                line.cut()
                await push(http, edge, "ev-2")
                await until(
                    lambda: _alert_count(http, hub.base, 2), timeout=45, what="the second alert at the hub"
                )
                assert await page.locator("#alerts li").count() == 1, "the cut line delivered nothing"
                line.restore()
                await page.wait_for_selector("#reconnected:not([hidden])", timeout=TIMEOUT_MS)
                await page.wait_for_selector("#alerts li.intercept.escalated >> nth=1", timeout=TIMEOUT_MS)
                ids = [
                    await li.get_attribute("data-alert-id")
                    for li in await page.query_selector_all("#alerts li")
                ]
                assert len(ids) == len(set(ids)) == 2 and alert_id in ids
                escalated = await get_json(http, f"{hub.base}/api/v1/audit?action=alert.escalated")
                assert sorted(r["target"] for r in escalated["records"]) == sorted(ids), (
                    "audited once per alert"
                )
                assert await page.evaluate("window.cordonEscalationSounds || 0") == 2, (
                    "sounded once per alert"
                )

                # the checkpoint goes away: red on the map
                edge.stop()
                await page.wait_for_selector(
                    '#map g.cp.offline[data-checkpoint="SD-DZ-001"]', timeout=TIMEOUT_MS
                )
                await page.click("#lang")
                assert await page.inner_text("h2 >> nth=0") == "Alerts"
                assert await page.evaluate("document.documentElement.scrollWidth <= 1280")
            finally:
                await browser.close()
                await line.close()


async def push(http, edge, event_id):
    async with http.post(
        f"{edge.base}/api/v1/cameras/cam1/reads",
        json={"plate": "鲁Q8K2L1", "colour": "blue", "lane": 1, "event_id": event_id},
        headers={"X-Camera-Token": "t1"},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def _alert_count(http, base, count):
    return len((await get_json(http, f"{base}/api/v1/alerts"))["alerts"]) >= count
