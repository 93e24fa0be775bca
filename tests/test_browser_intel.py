"""The console's intelligence view in a real headless Chromium against a real hub process: a plate's
route (table and stops on the ring map) and its companion vehicles, then "add to list" in one step;
each query audited with the reason typed in. The view is a tab of its own (the live view's alert detail
does not show beneath it); the route table has headers and checkpoint names, never internal ids; the
route map labels each stop's checkpoint, and a checkpoint passed twice shows both stop numbers; the
selects are styled in both themes; in both languages, at 1920×1080 and 1280×800. Screenshot
docs/screenshots/console-intel.png with CORDON_SCREENSHOTS=1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from central.intel.ring import SHIPPED, load_ring
from central.record.sqlite.store import HubStore
from protocols.messages import PlateRead
from tests.support import get_json, hub_service, login, running, session, sign_in_page, until
from tests.test_browser_map import READ_MAP, distance, intersects
from tests.test_intel import CPS, SCOUT, TARGET, fill, passage

NAMES = {c["checkpoint"]: c for c in load_ring(SHIPPED)}
ROUTE = [*CPS, CPS[0]]  # the load comes back through its first checkpoint: two stops at one place


async def route_checks(page, lang: str, theme: str, width: int) -> None:
    """What the route shows, read from the page: headers, names, labelled stops, styled selects."""
    headers = await page.locator("#intel-results .intel-table thead th").all_inner_texts()
    assert headers == (
        ["序号", "日期", "时间", "查缉点", "距上一站"]
        if lang == "zh"
        else ["#", "Date", "Time", "Checkpoint", "Since previous stop"]
    ), headers
    rows = page.locator("#intel-results .intel-table tbody tr")
    assert await rows.count() == len(ROUTE)
    key = "name" if lang == "zh" else "name_en"
    for i, cp in enumerate(ROUTE):
        cells = await rows.nth(i).locator("td").all_inner_texts()
        assert cells[0] == str(i + 1) and cells[3] == NAMES[cp][key], cells
        assert not any("SD-" in c for c in cells), f"an internal id shown: {cells}"
    seen = await page.evaluate(READ_MAP.replace("#map", "#intel-map"))
    labels = {lab["id"]: lab for lab in seen["labels"]}
    assert set(labels) == set(CPS), "every stop's checkpoint labelled on the route map"
    assert labels[CPS[0]]["rate"].endswith(f"1 · {len(ROUTE)}"), labels[CPS[0]]["rate"]
    short = NAMES[CPS[1]]["name"].removesuffix("检查站") if lang == "zh" else NAMES[CPS[1]]["name_en"]
    assert labels[CPS[1]]["name"] == short
    boxes = [lab["box"] for lab in seen["labels"]]
    assert not [1 for i, a in enumerate(boxes) for b in boxes[i + 1 :] if intersects(a, b)]
    dots = {d["id"]: d["at"] for d in seen["dots"]}
    for cp, lab in labels.items():  # each label nearest its own dot
        own = distance(lab["box"], dots[cp])
        assert all(distance(lab["box"], at) > own for other, at in dots.items() if other != cp), cp
    assert not seen["badges"]
    # styled selects: the page's colours, not a white platform box on the dark theme
    page_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    select_bg = await page.eval_on_selector("#intel-place", "s => getComputedStyle(s).backgroundColor")
    assert select_bg == page_bg, (theme, select_bg, page_bg)
    # a tab of its own: nothing of the live view beneath it
    assert await page.locator("main.console").is_hidden() and await page.locator("#detail").is_hidden()
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


pytestmark = [pytest.mark.browser, pytest.mark.system]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TIMEOUT_MS = 45_000


async def test_route_companions_and_add_to_list(tmp_path, mosquitto):
    hub = hub_service(tmp_path / "hub", mosquitto.url)
    record = HubStore(tmp_path / "hub" / "data" / "hub.db")  # the record, written before the hub starts
    record.start()
    fill(record, time.time() - 10 * 3600)
    back = passage(99, TARGET, time.time() - 10 * 3600 + len(CPS) * 3600)  # and back through the first
    record.submit(lambda db: record.insert_event(db, CPS[0], 1, back, 0.0, time.time())).result(10)
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
                await page.wait_for_selector("#tab-intel", timeout=TIMEOUT_MS)
                # module scripts run after the page is parsed, before it is complete: a tab exists before its listener
                await page.wait_for_function("document.readyState === 'complete'", timeout=TIMEOUT_MS)
                await page.click("#tab-intel")
                await page.fill("#intel-plate", TARGET)
                await page.fill("#intel-reason", "专案 2026-118")
                await page.click("#intel-route")
                await page.wait_for_selector(
                    "#intel-results .intel-table tbody tr >> nth=6", timeout=TIMEOUT_MS
                )
                await page.wait_for_selector("#intel-map g.cp .cp-label", timeout=TIMEOUT_MS)
                await route_checks(page, "zh", "dark", 1280)
                assert "德州京沪高速检查站" in await page.inner_text("#intel-results")

                # The record search: a partial plate at one place (the reason is audited with the place).
                await page.fill("#intel-plate", TARGET[:5] + "*")
                await page.select_option("#intel-place", CPS[1])
                await page.click("#intel-search")
                await page.wait_for_selector("#intel-reads tbody tr", timeout=TIMEOUT_MS)
                assert await page.locator("#intel-reads tbody tr").count() == 1
                row = await page.inner_text("#intel-reads tbody tr")
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
                await page.click("#tab-live")
                assert (
                    await page.locator("#intel").is_hidden()
                    and await page.locator("main.console").is_visible()
                )

                # the route in every language, theme and size
                for width, height, lang, theme in (
                    (1920, 1080, "en", "light"),
                    (1920, 1080, "zh", "dark"),
                    (1280, 800, "en", "dark"),
                    (1280, 800, "zh", "light"),
                ):
                    ctx = await browser.new_context(viewport={"width": width, "height": height})
                    await ctx.add_init_script(
                        f"localStorage.setItem('cordon.lang', '{lang}');"
                        f"localStorage.setItem('cordon.theme', '{theme}');"
                    )
                    other = await ctx.new_page()
                    await sign_in_page(other, hub.base, "console-code")
                    await other.wait_for_selector("#tab-intel", timeout=TIMEOUT_MS)
                    # module scripts run after the page is parsed, before it is complete: a tab exists before its listener
                    await other.wait_for_function("document.readyState === 'complete'", timeout=TIMEOUT_MS)
                    await other.click("#tab-intel")
                    await other.fill("#intel-plate", TARGET)
                    await other.fill("#intel-reason", "专案 2026-118")
                    await other.click("#intel-route")
                    await other.wait_for_selector(
                        "#intel-results .intel-table tbody tr >> nth=6", timeout=TIMEOUT_MS
                    )
                    await other.wait_for_selector("#intel-map g.cp .cp-label", timeout=TIMEOUT_MS)
                    await route_checks(other, lang, theme, width)
                    if os.environ.get("CORDON_SCREENSHOTS") == "1" and width == 1920 and lang == "zh":
                        await other.screenshot(path=str(SHOTS / "console-intel.png"))
                    if os.environ.get("CORDON_MAP_SHOTS"):
                        await other.screenshot(
                            path=f"{os.environ['CORDON_MAP_SHOTS']}-intel-{width}-{lang}-{theme}.png"
                        )
                    await ctx.close()
            finally:
                await browser.close()
