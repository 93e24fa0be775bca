"""The tablet over HTTPS with the edge's certificate from the project's PKI, in a real headless Chromium
that trusts exactly that certificate: the session cookie is Secure, the manifest and the service worker
are there, and once the edge is unreachable the page still opens from the cached shell and says offline,
while API data is never served from the cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.support import Ring, chromium_args, edge_service, running, sign_in_page, until

pytestmark = [pytest.mark.browser, pytest.mark.system]
TIMEOUT_MS = 45_000
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


async def test_tablet_over_https_installs_and_opens_offline(tmp_path, mosquitto):
    ring = Ring.create(tmp_path / "pki", ["SD-DZ-001"])
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam1": "t1"},
        extra={"http": ring.https("SD-DZ-001")},
    )
    assert edge.base.startswith("https://")
    edge.start()
    with running(edge):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=chromium_args(ring.pki.root / "SD-DZ-001" / "server.crt"),
            )
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                page = await context.new_page()
                await sign_in_page(page, edge.base, "tablet-code")
                await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                assert await page.evaluate("window.isSecureContext") is True
                cookies = await context.cookies()
                assert cookies and all(
                    c["secure"] and c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies
                )

                manifest = await page.evaluate(
                    "fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())"
                )
                assert manifest["display"] == "standalone" and manifest["start_url"] == "/"
                assert {icon["sizes"] for icon in manifest["icons"]} >= {"192x192", "512x512"}

                await until(lambda: _sw_state(page), timeout=45, what="the service worker ready")
                # the worker claimed the page at once and cached the page itself: no second online load needed
                assert await page.evaluate("!!navigator.serviceWorker.controller")
                assert await page.is_hidden("#offline")

                # Only the service worker's cache may answer offline: the browser's own HTTP cache would
                # serve the scripts too (they are heuristically fresh) and hide a module missing from SHELL.
                cdp = await context.new_cdp_session(page)
                await cdp.send("Network.clearBrowserCache")
                await context.set_offline(True)
                await page.reload()
                await page.wait_for_selector("#offline:not([hidden])", timeout=TIMEOUT_MS)
                assert "离线" in await page.inner_text("#offline")
                assert await page.inner_text("h2 >> nth=0") == "预警", "the cached shell renders, in Chinese"
                # every module ran from the cache: tablet-kits.js built its view, tablet.js (which imports
                # the evidence, routing, live and i18n modules) switches the language
                assert await page.query_selector("#kits") is not None
                await page.click("#lang")
                assert await page.inner_text("h2 >> nth=0") == "Alerts"
                await page.click("#lang")
                # API data is never answered from the cache
                failed = await page.evaluate("fetch('/api/v1/status').then(() => false, () => true)")
                assert failed, "an API request offline fails instead of coming from a cache"
                if os.environ.get("CORDON_SCREENSHOTS") == "1":
                    await page.screenshot(path=str(SHOTS / "tablet-offline.png"))
                await context.set_offline(False)
                await page.reload()
                await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
                assert await page.is_hidden("#offline")
            finally:
                await browser.close()


async def _sw_state(page):
    return await page.evaluate("window.cordonServiceWorker") == "ready"
