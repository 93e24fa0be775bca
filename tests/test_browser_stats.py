"""The console's statistics tab in a real headless Chromium against a real hub process: SVG bars of reads
and hits per checkpoint with the counts the ingest kept, the outcome bar and the misread table, in Chinese
and in English. Screenshot docs/screenshots/console-stats.png with CORDON_SCREENSHOTS=1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from central.ingest.pipeline import Ingest
from central.record.store import HubStore
from central.watchlists.index import HubWatchlists
from protocols.messages import SCHEMA_VERSION, AlertOutcome, CheckpointStatus, encode
from tests.support import hub_service, running, sign_in_page, until
from tests.test_hub_ingest import payload, read
from tests.test_kits_hub import kit_event

pytestmark = [pytest.mark.browser, pytest.mark.system]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TIMEOUT_MS = 45_000


def fill(path: Path) -> None:
    """Through the real ingest, before the hub starts: SD-DZ-001 3 reads and 2 positive tests (2 alerts, one
    answered as a misread), SD-JN-001 5 reads and no alert; SD-DZ-001's camera lane2 stale in one of four
    live statuses."""
    store = HubStore(path)
    store.start()
    try:
        ingest = Ingest(
            store,
            HubWatchlists(),
            publish=lambda t, p: None,
            on_alerts=lambda a: None,
            on_status=lambda s, o: None,
        )
        done = ingest.handle(
            "cordon/v1/cp/SD-DZ-001/events",
            payload(
                [read(1), read(2), read(3), kit_event(4, "positive"), kit_event(5, "positive")],
                checkpoint="SD-DZ-001",
            ),
            time.time(),
        ).result(10)
        assert len(done.alerts) == 2
        answer = AlertOutcome(
            seq=6,
            alert_id=done.alerts[0].alert_id,
            outcome="misread",
            officer="li",
            acknowledged_at=time.time() + 40,
            alert_raised_at=time.time(),
        )
        ingest.handle(
            "cordon/v1/cp/SD-DZ-001/events", payload([answer], checkpoint="SD-DZ-001"), time.time()
        ).result(10)
        ingest.handle(
            "cordon/v1/cp/SD-JN-001/events",
            payload([read(i) for i in range(1, 6)], checkpoint="SD-JN-001"),
            time.time(),
        ).result(10)
        for stale in ([], ["lane2"], [], []):
            status = CheckpointStatus(
                v=SCHEMA_VERSION,
                checkpoint="SD-DZ-001",
                online=True,
                sent_at=time.time(),
                stale_cameras=stale,
            )
            ingest.handle("cordon/v1/cp/SD-DZ-001/status", encode(status), time.time()).result(10)
    finally:
        store.stop()


async def bars(page) -> dict[str, tuple[str | None, str | None, int]]:
    found = {}
    for g in await page.query_selector_all("#st-bars svg g.st-row"):
        found[await g.get_attribute("data-key")] = (
            await g.get_attribute("data-reads"),
            await g.get_attribute("data-hits"),
            len(await g.query_selector_all("rect.st-bar")),
        )
    return found


async def test_stats_tab_draws_the_counts_in_both_languages(tmp_path, mosquitto):
    hub = hub_service(tmp_path / "hub", mosquitto.url)
    (tmp_path / "hub" / "data").mkdir(parents=True, exist_ok=True)
    fill(tmp_path / "hub" / "data" / "hub.db")
    hub.start()
    with running(hub):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
                await sign_in_page(page, hub.base, "console-code")
                await page.wait_for_selector("#tab-stats", timeout=TIMEOUT_MS)
                assert await page.inner_text("#tab-stats") == "统计"
                await page.click("#tab-stats")
                await page.wait_for_selector("#st-bars svg g.st-row", timeout=TIMEOUT_MS)
                assert await bars(page) == {"SD-DZ-001": ("3", "2", 2), "SD-JN-001": ("5", "0", 2)}
                assert await page.locator("main.console").is_hidden()
                legend = await page.text_content("#st-bars svg .st-legend")
                assert "过车" in legend and "比中预警" in legend
                out = page.locator('#st-outcomes rect[data-outcome="misread"]')
                assert await out.get_attribute("data-count") == "1"
                assert "误识别 1" in await page.text_content("#st-outcomes")
                row = page.locator('#st-misreads tr[data-kind="kit"]')
                assert "毒品快检" in await row.inner_text() and "100.0%" in await row.inner_text()
                assert await page.locator("#st-daily svg polyline").count() == 4
                # The table of every figure: SD-DZ-001's cameras up 75% of the samples, shown as low.
                dz = page.locator('#st-table tr[data-key="SD-DZ-001"]')
                cells = await dz.locator("td").all_inner_texts()
                # (the reads in fill() are sent without their passages)
                assert cells[:9] == ["SD-DZ-001", "3", "0", "0", "2", "40 s", "0", "2", "2 (MET 2)"]
                uptime = dz.locator("td.st-uptime")
                assert await uptime.inner_text() == "75.0%" and "st-low" in await uptime.get_attribute(
                    "class"
                )
                assert (
                    await page.locator('#st-table tr[data-key="SD-JN-001"] td.st-uptime').inner_text() == "–"
                )
                assert "相机在线率" in await page.text_content("#st-table")
                stale = await page.locator('#st-table tr[data-camera="SD-DZ-001/lane2"] td').all_inner_texts()
                assert stale == ["SD-DZ-001", "lane2", "4", "75.0%"]
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await page.screenshot(path=str(SHOTS / "console-stats.png"))
                await page.click("#lang")

                async def english() -> bool:
                    return await page.inner_text(
                        "#tab-stats"
                    ) == "Statistics" and "Hits" in await page.text_content("#st-bars svg .st-legend")

                await until(english, timeout=30, what="the statistics in English")
                assert await bars(page) == {"SD-DZ-001": ("3", "2", 2), "SD-JN-001": ("5", "0", 2)}
                assert "drug quick test" in await page.inner_text('#st-misreads tr[data-kind="kit"]')
                assert "Misread (false match) 1" in await page.text_content("#st-outcomes")
                assert "Camera uptime" in await page.text_content("#st-table")
                assert await page.evaluate("document.documentElement.scrollWidth <= 1280")
                await page.click("#tab-live")
                assert await page.locator("#stats-view").is_hidden()
                assert await page.locator("main.console").is_visible()
            finally:
                await browser.close()
