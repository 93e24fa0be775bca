"""The sign-in page in a real headless Chromium: an account signs in and reaches the console; a wrong
password is told so; a plate with markup arrives on the console as text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from central.app import create_app
from central.record.sqlite import users
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.settings import HttpSettings as HubHttp
from central.web import keys
from protocols.messages import SCHEMA_VERSION, Alert, AlertHit
from runtime.tls import server_context
from tests.support import Ring, chromium_args, free_port

pytestmark = pytest.mark.browser
PASSWORD = "night shift 0200"


@pytest.fixture
async def hub(tmp_path, dead_broker_url):
    port = free_port()
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        http=HubHttp(host="127.0.0.1", port=port),
        console=ConsoleSettings(token=""),
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    ring = Ring.create(tmp_path / "pki", [])  # the console over HTTPS with the hub's certificate from the PKI
    tls = ring.https("cordon-hub")
    await web.TCPSite(
        runner, "127.0.0.1", port, ssl_context=server_context(tls["cert_file"], tls["key_file"], "http")
    ).start()
    hashed = users.hash_password(PASSWORD)
    app[keys.STORE].submit(
        lambda db: (users.add(db, "sun.cmd", "commander", hashed), app[keys.DIRECTORY].reload(db))
    ).result(5)
    yield app, f"https://127.0.0.1:{port}", Path(tls["cert_file"])
    await runner.cleanup()


async def test_an_account_signs_in_and_markup_in_a_plate_stays_text(hub):
    app, base, cert = hub
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(cert))
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(base + "/")
            assert page.url.endswith("/login"), "not signed in: the console sends you to the sign-in page"
            await page.fill("input[name=username]", "sun.cmd")
            await page.fill("input[name=password]", "wrong password")
            await page.click("button[type=submit]")
            await page.wait_for_selector("#failed:not([hidden])", timeout=15000)
            await page.fill("input[name=username]", "sun.cmd")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#alerts", state="attached", timeout=15000)
            await page.wait_for_selector("#live.ok", timeout=15000)
            cookies = await page.context.cookies()
            assert cookies and all(
                c["secure"] and c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies
            )
            evil = "<script>window.pwned=1</script>"
            alert = Alert(
                v=SCHEMA_VERSION,
                alert_id="Axss",
                checkpoint="SD-DZ-001",
                epoch=1,
                seq=1,
                raised_at=time.time(),
                captured_at=time.time(),
                camera_id="c",
                plate_read=evil[:32],
                hit=AlertHit(
                    entry_id="e",
                    entry_plate="鲁A12345",
                    list_id="l",
                    list_name="<b>list</b>",
                    action="intercept",
                    priority=90,
                    kind="exact",
                    score=1.0,
                    explanation="x",
                ),
            )
            app[keys.CONSOLE].publish({"type": "alert", "alert": alert})
            await page.wait_for_selector("#alerts li", timeout=15000)
            text = await page.inner_text("#alerts")
            assert "<script>" in text and "<b>list</b>" in text, "markup is shown as text"
            assert await page.evaluate("window.pwned === undefined")
        finally:
            await browser.close()
