"""The console's intelligence view in a real headless Chromium against a real hub process: a plate's
route (table and stops on the ring map) and its companion vehicles, then "add to list" in one step;
each query audited with the reason typed in. Screenshot docs/screenshots/console-intel.png with
CORDON_SCREENSHOTS=1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from central.record.store import HubStore
from protocols.messages import PlateRead
from tests.support import get_json, hub_service, login, running, session, sign_in_page, until
from tests.test_intel import CPS, SCOUT, TARGET, fill

pytestmark = [pytest.mark.browser, pytest.mark.system]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TIMEOUT_MS = 45_000


async def test_route_companions_and_add_to_list(tmp_path, mosquitto):
    hub = hub_service(tmp_path / "hub", mosquitto.url)
    record = HubStore(tmp_path / "hub" / "data" / "hub.db")  # the record, written before the hub starts
    record.start()
    fill(record, time.time() - 10 * 3600)
    for i, cp in enumerate(CPS[:2]):  # two camera reads of the load, for the record search by place
        read = PlateRead(
            seq=1000 + i,
            camera_id="cam1",
            captured_at=time.time() - 3600 + i,
            plate=TARGET,
            plate_raw=TARGET,
            plate_valid=True,
            confidence=96.0,
        )
        record.submit(
            lambda db, cp=cp, read=read: record.insert_event(db, cp, 1, read, 0.0, time.time())
        ).result(10)
    record.stop()
    hub.start()
    with running(hub):
        async with session() as http, async_playwright() as pw:
            await login(http, hub.base, "console-code")
            resp = await http.post(
                f"{hub.base}/api/v1/watchlists",
                json={"list_id": "scouts", "name": "探路车"},
                headers={"Origin": hub.base},
            )
            assert resp.status in (200, 201), await resp.text()
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
                await sign_in_page(page, hub.base, "console-code")
                await page.wait_for_selector("#intel-open", timeout=TIMEOUT_MS)
                await page.click("#intel-open")
                await page.fill("#intel-plate", TARGET)
                await page.fill("#intel-reason", "专案 2026-118")
                await page.click("#intel-route")
                await page.wait_for_selector("#intel-results .intel-table tr >> nth=5", timeout=TIMEOUT_MS)
                assert await page.locator("#intel-map g.intel-stop").count() == len(CPS)
                assert await page.locator("#intel-results .intel-table tr").count() == len(CPS)
                assert "德州京沪高速检查站" in await page.inner_text("#intel-results")

                # The record search: a partial plate at one place (the reason is audited with the place).
                await page.fill("#intel-plate", TARGET[:5] + "*")
                await page.select_option("#intel-place", CPS[1])
                await page.click("#intel-search")
                await page.wait_for_selector("#intel-reads tr", timeout=TIMEOUT_MS)
                assert await page.locator("#intel-reads tr").count() == 1
                row = await page.inner_text("#intel-reads tr")
                assert TARGET in row and "cam1" in row
                trail = await get_json(http, f"{hub.base}/api/v1/audit?action=record.search")
                [search] = trail["records"]
                assert search["target"] == TARGET[:5] + "*" and search["reason"] == "专案 2026-118"
                assert CPS[1] in str(search["detail"])
                await page.fill("#intel-plate", TARGET)

                await page.click("#intel-companions")
                await page.wait_for_selector(f'.intel-companion[data-plate="{SCOUT}"]', timeout=TIMEOUT_MS)
                assert await page.locator(".intel-companion").count() == 1
                card = page.locator(f'.intel-companion[data-plate="{SCOUT}"]')
                assert "同行 5 次" in await card.inner_text()
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await page.screenshot(path=str(SHOTS / "console-intel.png"))
                await card.locator("select").select_option("scouts")
                await card.locator("button").click()
                await card.locator("text=已加入").wait_for(timeout=TIMEOUT_MS)

                async def listed() -> bool:
                    body = await get_json(http, f"{hub.base}/api/v1/watchlists/scouts/entries")
                    return any(e.get("plate") == SCOUT for e in body.get("entries", []))

                await until(listed, timeout=30, what="the scout on the list")

                trail = await get_json(http, f"{hub.base}/api/v1/audit?action=intel.companions")
                assert [r["reason"] for r in trail["records"]] == ["专案 2026-118"]
                trail = await get_json(http, f"{hub.base}/api/v1/audit?action=intel.route")
                assert [r["target"] for r in trail["records"]] == [TARGET]
                await page.click("#lang")
                assert await page.inner_text("#intel-companions") == "Companions"
                assert await page.evaluate("document.documentElement.scrollWidth <= 1280")
            finally:
                await browser.close()
