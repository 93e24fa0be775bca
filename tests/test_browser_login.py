"""The sign-in page in a real headless Chromium: an account signs in and reaches the console; a wrong
password is told so; a plate with markup arrives on the console as text; an account whose role has no
console page (the demo's auditor) is told so in words on the sign-in page, not shown a JSON refusal."""

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
from tests.browser_checks import PageWatch, keys_shown, untranslated_text
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
        lambda db: (
            users.add(db, "sun.cmd", "commander", hashed),
            users.add(db, "zhao.audit", "auditor", hashed),
            app[keys.DIRECTORY].reload(db),
        )
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


async def test_a_role_without_a_console_page_is_told_so_in_words(hub):
    app, base, cert = hub
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(cert))
        try:
            for lang, words in (
                ("zh", "该账号的角色无权打开此页面"),
                ("en", "This account's role may not open"),
            ):
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                await context.add_init_script(f"localStorage.setItem('cordon.lang', '{lang}');")
                page = await context.new_page()
                watch = PageWatch(page)
                await page.goto(base + "/login")
                await page.fill("input[name=username]", "zhao.audit")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_selector("#refused:not([hidden])", timeout=15000)
                assert words in await page.inner_text("#refused")
                assert "may not do this" not in await page.inner_text("body"), "no raw refusal"
                assert await page.is_hidden("#failed")
                assert await untranslated_text(page) == [] if lang == "zh" else await keys_shown(page) == []
                assert watch.problems() == [], watch.problems()
                await context.close()
        finally:
            await browser.close()
