"""Watchlist management in the console, in a real headless Chromium against real hub, edge and Mosquitto
processes: a watchlist manager creates a list, adds an entry (its `<img onerror>` reason shown as text),
imports a CSV and watches the job reach done with the new entry count, pages and searches the entries and
sees the checkpoint catch up with the hub's feed version; an analyst sees the same lists read-only and the
API refuses their writes. Screenshot docs/screenshots/console-lists.png with CORDON_SCREENSHOTS=1."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.browser_checks import wall_screenshot
from tests.support import edge_service, get_json, hub_service, login, running, session, until

pytestmark = [pytest.mark.browser, pytest.mark.system]
FEED_TOKEN = "feed-secret"
PASSWORD = "lists and more lists"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TIMEOUT_MS = 45_000
XSS = '<img src=x onerror="window.__xss=1">'
CSV = "plate,reason\n" + "".join(f"鲁N{n:05d},线索{n}\n" for n in range(120))


async def add_user(tmp_path, name, role):
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "cordon.cli",
            "user",
            "add",
            name,
            "--role",
            role,
            "--data",
            str(tmp_path / "hub" / "data"),
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


async def sign_in(browser, base, name):
    page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#tab-lists", timeout=TIMEOUT_MS)
    # module scripts run after the page is parsed, before it is complete: a tab exists before its listener
    await page.wait_for_function("document.readyState === 'complete'", timeout=TIMEOUT_MS)
    await page.click("#tab-lists")
    return page


async def has_entry(page, entry_id):
    return entry_id in [
        await tr.get_attribute("data-entry") for tr in await page.query_selector_all("#wl-rows tr")
    ]


async def reason_is(page, text):
    return await page.inner_text("#wl-rows .wl-reason") == text


async def test_watchlist_manager_and_read_only_analyst(tmp_path, mosquitto):
    hub = hub_service(tmp_path / "hub", mosquitto.url, extra={"feed": {"token": FEED_TOKEN}})
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam1": "t1"},
        extra={"hub": {"url": hub.base, "token": FEED_TOKEN}},
    )
    await add_user(tmp_path, "li.lists", "watchlist_manager")
    await add_user(tmp_path, "wang.analyst", "analyst")
    hub.start()
    edge.start()
    with running(hub, edge):
        async with session() as http, async_playwright() as pw:
            await login(http, hub.base, "console-code")
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                page = await sign_in(browser, hub.base, "li.lists")
                await page.wait_for_selector("#wl-new:not([hidden])", timeout=TIMEOUT_MS)
                assert await page.is_hidden("#wl-readonly")

                # create a list
                await page.click("#wl-new")
                await page.fill("#wl-create input[name=list_id]", "drugs")
                await page.fill("#wl-create input[name=name]", "涉毒嫌疑车辆")
                await page.select_option("#wl-create select[name=action]", "intercept")
                await page.fill("#wl-create input[name=priority]", "90")
                await page.click("#wl-create button[type=submit]")
                await page.wait_for_selector('#wl-lists li[data-list="drugs"].selected', timeout=TIMEOUT_MS)
                assert "涉毒嫌疑车辆" in await page.inner_text('#wl-lists li[data-list="drugs"]')

                # add an entry whose reason is markup: shown as text, never run
                await page.fill("#wl-add input[name=plate]", "鲁Q8K2L1")
                await page.fill("#wl-add input[name=reason]", XSS)
                await page.fill("#wl-add input[name=case_ref]", "A2026-17")
                await page.click("#wl-add button[type=submit]")
                await until(lambda: has_entry(page, "drugs:鲁Q8K2L1"), timeout=45, what="the new entry")
                assert await page.inner_text("#wl-rows .wl-reason") == XSS
                assert await page.locator("#wl-rows img").count() == 0
                assert await page.evaluate("window.__xss === undefined")
                # edit it: the same entry, a new reason
                await page.click('#wl-rows button:has-text("修改")')
                await page.fill("#wl-add input[name=reason]", "涉嫌运输毒品")
                await page.click("#wl-add button[type=submit]")
                await until(lambda: reason_is(page, "涉嫌运输毒品"), timeout=45, what="the edited reason")
                assert await page.locator("#wl-rows tr").count() == 1

                # import a CSV: the job reaches done, its rows counted, the list shows the new total
                await page.set_input_files(
                    "#wl-import input[name=file]",
                    files=[{"name": "drugs.csv", "mimeType": "text/csv", "buffer": CSV.encode()}],
                )
                await page.click("#wl-import button[type=submit]")
                await page.wait_for_selector('#wl-job[data-state="done"]', timeout=TIMEOUT_MS)
                assert "120 / 120" in await page.inner_text("#wl-job")
                await page.wait_for_selector(
                    '#wl-lists li[data-list="drugs"] .wl-count:has-text("121")', timeout=TIMEOUT_MS
                )
                # server-side paging and search
                assert await page.inner_text("#wl-page") == "1–50 / 121"
                await page.click("#wl-next")
                await page.wait_for_selector('#wl-page:has-text("51–100 / 121")', timeout=TIMEOUT_MS)
                await page.fill("#wl-q", "N0011")
                await page.click("#wl-search button[type=submit]")
                await page.wait_for_selector('#wl-page:has-text("1–10 / 10")', timeout=TIMEOUT_MS)

                # a bad file: rejected as a whole, the bad line named
                await page.set_input_files(
                    "#wl-import input[name=file]",
                    files=[
                        {
                            "name": "bad.csv",
                            "mimeType": "text/csv",
                            "buffer": "plate,reason\n鲁A12345,ok\n,empty\n".encode(),
                        }
                    ],
                )
                await page.click("#wl-import button[type=submit]")
                await page.wait_for_selector('#wl-job[data-state="rejected"]', timeout=TIMEOUT_MS)
                assert "第 3 行" in await page.inner_text("#wl-problems")

                # the checkpoint's feed version: shown, and it catches up with the hub's current one
                hub_version = (await get_json(http, f"{hub.base}/api/v1/feed"))["version"]
                assert hub_version >= 3

                async def edge_current():
                    await page.click("#tab-lists")  # reloads the view
                    row = page.locator('#wl-edges li[data-checkpoint="SD-DZ-001"]')
                    if await row.count() == 0:
                        return False
                    return (await row.inner_text()).find(f"v{hub_version}") >= 0 and "lagging" not in (
                        await row.get_attribute("class")
                    )

                await until(edge_current, timeout=60, interval=1, what="the edge at the hub's feed version")
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await wall_screenshot(page, str(SHOTS / "console-lists.png"))
                await page.click("#lang")
                assert await page.inner_text("#tab-lists") == "Watchlists"
                assert await page.evaluate("document.documentElement.scrollWidth <= 1280")

                # an analyst: the same lists, read-only, and the API refuses a write
                analyst = await sign_in(browser, hub.base, "wang.analyst")
                await analyst.wait_for_selector('#wl-lists li[data-list="drugs"]', timeout=TIMEOUT_MS)
                await analyst.wait_for_selector("#wl-readonly:not([hidden])", timeout=TIMEOUT_MS)
                assert await analyst.is_hidden("#wl-new")
                await analyst.click('#wl-lists li[data-list="drugs"]')
                await analyst.wait_for_selector('#wl-page:has-text("/ 121")', timeout=TIMEOUT_MS)
                await analyst.fill("#wl-q", "Q8K2")  # sorted by id, it is on the last page: search instead
                await analyst.click("#wl-search button[type=submit]")
                await until(
                    lambda: has_entry(analyst, "drugs:鲁Q8K2L1"), timeout=45, what="the entry, read-only"
                )
                assert await analyst.is_hidden("#wl-write")
                assert await analyst.locator("#wl-rows button").count() == 0
                assert await analyst.locator("#wl-edit form").count() == 0
                status = await analyst.evaluate("""async () => (await fetch('/api/v1/watchlists/drugs/entries',
                    {method: 'POST', headers: {'Content-Type': 'application/json'},
                     body: JSON.stringify({plate: '鲁A99999'})})).status""")
                assert status == 403

                # the checkpoint goes away and the hub moves on: its version is shown as lagging
                edge.stop()
                async with http.post(
                    f"{hub.base}/api/v1/watchlists/drugs/entries", json={"plate": "鲁A99999"}
                ) as r:
                    assert r.status == 200

                async def edge_lagging():
                    await analyst.click("#tab-lists")
                    row = analyst.locator('#wl-edges li[data-checkpoint="SD-DZ-001"].lagging')
                    return await row.count() == 1 and await row.inner_text()

                shown = await until(
                    edge_lagging, timeout=45, interval=1, what="the stopped edge shown as lagging"
                )
                feed = await get_json(http, f"{hub.base}/api/v1/feed")
                held = [e["feed_version"] for e in feed["edges"] if e["checkpoint"] == "SD-DZ-001"]
                assert held and (held[0] is None or held[0] < feed["version"]), feed
                assert f"v{held[0] if held[0] is not None else '—'}" in shown
            finally:
                await browser.close()
