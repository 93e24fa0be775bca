"""The checkpoint tablet as officers use it, in a real headless Chromium against the real demo (`cordon demo`
on a Mosquitto of the test's own): on duty the screen is kept awake and the alarm sound unlocked; an intercept
takes the full screen, the same vehicle read by the other lane folds into it with a count, another vehicle's
intercept takes the screen and the first waits in the queue, outcomes work the queue through (稍后处理 puts
it aside in one tap); the console gets the receipts; rows re-render in the new language; an uplink outage and
a silent camera are said plainly; a quick test is saved in the demo. Every view at 1280x800, 800x1280 and a
360x780 handset, in Chinese and English, dark and light: nothing cut off or wider than the screen, touch
targets of 44 px, no dictionary keys nor English dictionary text in the Chinese interface, readable text; no
page error, console error or failed request on the way. With CORDON_SCREENSHOTS=1 the main views are saved
to docs/screenshots/."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import async_playwright

from cordon.testing import write_toml
from tests.browser_checks import broken_names, dictionary_gaps, keys_shown, untranslated_text
from tests.support import Mosquitto, edge_service, free_port, get_json, running, session, until
from tests.tablet_checks import PageErrors, problems

pytestmark = [pytest.mark.browser, pytest.mark.system, pytest.mark.asyncio(loop_scope="module")]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SCREENSHOTS = os.environ.get("CORDON_SCREENSHOTS") == "1"
TIMEOUT_MS = 30_000
#: The test keeps each wake lock the page is granted (the real WakeLockSentinel), to release one as the browser
#: does when the page is hidden.
KEEP_WAKE_LOCKS = """
if (navigator.wakeLock) {
  const request = navigator.wakeLock.request.bind(navigator.wakeLock);
  window.cordonWakeLocks = [];
  navigator.wakeLock.request = async (type) => { const lock = await request(type); window.cordonWakeLocks.push(lock); return lock; };
}
"""
SIZES = {"landscape": (1280, 800), "portrait": (800, 1280), "handset": (360, 780)}


@dataclass
class Demo:
    console: str
    console_code: str
    commander: tuple[str, str]
    tablet: str
    tablet_code: str
    cameras: dict[str, str]
    proc: subprocess.Popen[str]
    other_tablet: str = ""
    """A second checkpoint (down the ring), for a vehicle seen at both: a cloned plate."""
    other_cameras: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, broker):
    """The real demo wiring: hub and one simulated checkpoint, its traffic nearly still (the test drives
    the cameras itself, with the tokens the demo prints)."""
    folder = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORDON_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cordon", "demo", "--port", str(free_port()), "--checkpoints", "2",
         "--vehicles-per-minute", "0.01", "--broker", broker.url, "--data", str(folder / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=folder,
    )  # fmt: skip
    try:
        banner, deadline = "", time.monotonic() + 60
        while "alerts show within a minute" not in banner:
            assert time.monotonic() < deadline and proc.poll() is None, f"the demo did not start:\n{banner}"
            if select.select([proc.stdout], [], [], 0.5)[0]:
                banner += proc.stdout.readline()
        console = re.search(r"command console: (http://\S+)/\s+access code: (\d+)", banner)
        commander = re.search(r"(demo-commander) / (\S+) / commander", banner)
        tablet = re.search(r"tablet: (http://\S+)/\s+access code: (\d+)", banner)
        cameras = re.search(r"cameras \(id / token\): (.+)", banner)
        other = re.findall(
            r"tablet: (http://\S+)/\s+access code: \d+\n\s+cameras \(id / token\): (.+)", banner
        )
        assert console and commander and tablet and cameras, banner
        yield Demo(
            console.group(1),
            console.group(2),
            (commander.group(1), commander.group(2)),
            tablet.group(1),
            tablet.group(2),
            dict(pair.split(" / ") for pair in cameras.group(1).split(" · ")),
            proc,
            other[1][0],
            dict(pair.split(" / ") for pair in other[1][1].split(" · ")),
        )
    finally:
        out = ""
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0 and "Traceback" not in out, (
        f"the demo ran the tests with a traceback:\n{out[-3000:]}"
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    async with async_playwright() as pw:
        # a Chinese tablet: the browser's own controls (the date field) in Chinese
        chromium = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--lang=zh-CN"]
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def errors():
    seen = PageErrors()
    yield seen


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tablets(browser, demo, errors):
    """One signed-in tablet page per screen size, sharing the demo's checkpoint."""
    pages = {}
    for size, (width, height) in SIZES.items():
        handset = size == "handset"
        context = await browser.new_context(
            viewport={"width": width, "height": height}, is_mobile=handset, has_touch=handset, locale="zh-CN"
        )
        await context.add_init_script(KEEP_WAKE_LOCKS)
        page = errors.watch(await context.new_page(), f"tablet {size}")
        await page.goto(demo.tablet + "/login")
        await page.click("summary")
        await page.fill("input[name=code]", demo.tablet_code)
        await page.click("button[type=submit]")
        await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
        pages[size] = page
    yield pages
    for page in pages.values():
        await page.context.close()


async def wait_js(page, expression, timeout=TIMEOUT_MS):
    """Wait until ``expression`` is true in the page. Playwright's wait_for_function evaluates strings, which
    the apps' Content-Security-Policy (no unsafe-eval) rightly refuses; page.evaluate is not affected."""
    deadline = time.monotonic() + timeout / 1000
    while not await page.evaluate(f"() => !!({expression})"):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        await page.wait_for_timeout(100)


async def push(demo, plate, camera="sim-lane-1", *, other=False, **extra):
    """A read pushed as the demo's camera does (at the second checkpoint with ``other``)."""
    base, tokens = (demo.other_tablet, demo.other_cameras) if other else (demo.tablet, demo.cameras)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/v1/cameras/{camera}/reads",
            json={"plate": plate, "colour": "blue", **extra},
            headers={"X-Camera-Token": tokens[camera]},
        ) as resp:
            assert resp.status == 200, await resp.text()


async def on_screen(page):
    """The plate of the alarm on screen, or None."""
    if await page.is_hidden("#overlay"):
        return None
    return await page.inner_text("#overlay-body [data-role=plate-read]")


async def queued(page):
    if await page.is_hidden("#overlay-queue"):
        return []
    return await page.eval_on_selector_all("#overlay-queue-list .plate", "els => els.map(e => e.textContent)")


async def outcome(page, which):
    await page.click(f"#overlay button[data-outcome={which}]")


async def test_an_alarm_on_duty_folds_queues_and_reaches_the_console(browser, demo, tablets, errors):
    tablet = tablets["landscape"]
    # on duty: the screen kept awake, the sound unlocked by the officer's tap
    assert await tablet.is_visible("#duty-start")
    await tablet.click("#duty-start")
    await wait_js(tablet, "window.cordonDuty && window.cordonDuty.awake === 'held'", timeout=TIMEOUT_MS)
    assert await tablet.evaluate("window.cordonAudioState()") == "running"
    assert await tablet.evaluate("window.cordonDutyTone") is True, "the officer heard the test tone"
    assert await tablet.is_hidden("#duty") and "屏幕常亮" in await tablet.inner_text("#duty-state")
    # the browser drops the lock when the page is hidden (screen off, another app): released, and asked
    # for again when the page is visible again
    await tablet.evaluate("window.cordonWakeLocks.at(-1).release()")
    await wait_js(tablet, "window.cordonDuty.awake === 'off'")
    await tablet.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    await wait_js(tablet, "window.cordonWakeLockRequests === 2 && window.cordonDuty.awake === 'held'")
    assert await tablet.evaluate("window.cordonWakeLocks.length") == 2

    console = errors.watch(
        await (await browser.new_context(viewport={"width": 1920, "height": 1080})).new_page(), "console"
    )
    await console.goto(demo.console + "/login")
    await console.fill("input[name=username]", demo.commander[0])
    await console.fill("input[name=password]", demo.commander[1])
    await console.click("button[type=submit]")
    await console.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
    await console.wait_for_selector("#who .who-name", timeout=TIMEOUT_MS)
    # the demo's commander is named in the page's language (it was "演示 commander" on the Chinese page)
    assert await untranslated_text(console) == [], await untranslated_text(console)

    # an intercept takes the full screen with the siren
    await push(demo, "鲁Q8K2L1", "sim-lane-1")
    await tablet.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
    assert await on_screen(tablet) == "鲁Q8K2L1"
    assert await tablet.locator("#overlay").bounding_box() == {"x": 0, "y": 0, "width": 1280, "height": 800}
    await wait_js(tablet, "(window.cordonSirenCount || 0) >= 1", timeout=5000)
    # the other lane reads the same vehicle a second later: one alarm, its count grown, nothing queued
    await push(demo, "鲁Q8K2L1", "sim-lane-2")
    await tablet.wait_for_selector("#overlay-body .fold-count[data-folded='2']", timeout=TIMEOUT_MS)
    assert await on_screen(tablet) == "鲁Q8K2L1" and await queued(tablet) == []
    assert "重复比中 ×2" in await tablet.inner_text("#overlay-body")
    # the console learns the alarm was shown at the checkpoint
    row = "#alerts li.intercept:has-text('鲁Q8K2L1')"
    await console.wait_for_selector(row + " .receipt[data-receipt=shown]", timeout=TIMEOUT_MS)
    await console.click(row)
    await console.wait_for_selector("#detail-body dd:has-text('已在终端显示')", timeout=TIMEOUT_MS)

    # another vehicle's intercept takes the screen; the first waits in the queue with its count
    await push(demo, "冀F7M395", "sim-lane-1")
    await wait_js(
        tablet,
        "document.querySelector('#overlay-body [data-role=plate-read]').textContent === '冀F7M395'",
        timeout=TIMEOUT_MS,
    )
    assert await queued(tablet) == ["鲁Q8K2L1"]
    assert "×2" in await tablet.inner_text("#overlay-queue")
    if SCREENSHOTS:
        await tablet.screenshot(path=str(SHOTS / "tablet-alarm-queue.png"))
    # the officer records each outcome: the queue is worked through, then the main view
    await tablet.fill("#overlay-note", "已移交")
    await outcome(tablet, "intercepted")
    await wait_js(
        tablet,
        "document.querySelector('#overlay-body [data-role=plate-read]').textContent === '鲁Q8K2L1'",
        timeout=TIMEOUT_MS,
    )
    assert await queued(tablet) == []
    await outcome(tablet, "not_found")
    await tablet.wait_for_selector("#overlay", state="hidden", timeout=TIMEOUT_MS)
    assert await tablet.is_hidden("#pending")
    # the console shows the acknowledgement at the checkpoint, with the outcome
    await console.wait_for_selector(row + " .receipt[data-receipt=acknowledged]", timeout=TIMEOUT_MS)
    await console.click(row)
    detail = await console.inner_text("#detail-body")
    assert "已签收" in detail and "未发现" in detail, detail

    # several at once: 稍后处理 puts them all aside in one tap, the pending button brings them back
    await push(demo, "苏C5H0D8", "sim-lane-1")
    await tablet.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
    await push(demo, "豫N6B823", "sim-lane-2")
    await wait_js(
        tablet, "document.querySelectorAll('#overlay-queue-list li').length === 1", timeout=TIMEOUT_MS
    )
    await tablet.click("#overlay-later")
    await tablet.wait_for_selector("#overlay", state="hidden")
    assert "2" in await tablet.inner_text("#pending")
    assert await tablet.locator("#alerts li.waiting").count() == 2
    await tablet.click("#pending")
    for _ in range(2):
        await tablet.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
        await outcome(tablet, "released")
        await tablet.wait_for_timeout(300)
    await tablet.wait_for_selector("#overlay", state="hidden", timeout=TIMEOUT_MS)
    assert await tablet.locator("#alerts li.waiting").count() == 0

    # rows that came before a language switch say it again in the new language
    await push(demo, "鲁A88888", "sim-lane-2")  # a plain read for the passages list
    await tablet.wait_for_selector("#reads li:has-text('鲁A88888')", timeout=TIMEOUT_MS)
    assert "车道" in await tablet.inner_text("#reads") and "拦截" in await tablet.inner_text("#alerts")
    await tablet.click("#lang")
    reads, alerts = await tablet.inner_text("#reads"), await tablet.inner_text("#alerts")
    assert "Lane" in reads and "车道" not in reads
    assert "Intercept" in alerts and "拦截" not in alerts and "Intercepted" in alerts
    assert "/min" in await tablet.inner_text("#status")
    await tablet.click("#lang")
    assert "车道" in await tablet.inner_text("#reads")
    await console.context.close()
    # the tablet's walk and the console's: no page error, console error or failed request on either (the
    # console asks no picture of an alert that has none, issue 20 item 2)
    assert errors.take() == []


async def standard(page, lang: str) -> list[dict]:
    """The console's checks too (tests/browser_checks.py): on the Chinese page no English word at all (not
    only the dictionary's), in both no key; no plate or name broken over two lines."""
    found = await broken_names(page)
    found += await untranslated_text(page) if lang == "zh" else await keys_shown(page)
    return found


async def test_every_view_fits_every_screen_in_both_languages_and_themes(demo, tablets, errors):
    """The full-screen alarm with its queue, the main view and the quick-test view at each size, in each
    language and theme, switched with the page's own buttons (so every row is redrawn, not reloaded)."""
    await push(demo, "皖L2G506", "sim-lane-1")
    await push(demo, "鲁H3D9Z2", "sim-lane-2")
    await push(demo, "鲁H3D9Z2", "sim-lane-1")  # the one on screen again: a repeat badge on the alarm
    for size, page in tablets.items():
        await wait_js(page, "document.querySelectorAll('#overlay-queue-list li').length === 1")
        await page.wait_for_selector("#overlay-body .fold-count", timeout=TIMEOUT_MS)
        if size != "landscape":  # these two pages were not touched yet: the officer's first tap
            await page.click("#overlay-title")
        for lang in ("zh", "en"):
            for theme in ("dark", "light"):
                where = f"{size} {lang} {theme}"
                if await page.is_hidden("#overlay"):
                    await page.click("#pending")
                await page.wait_for_selector("#overlay:not([hidden])")
                assert await problems(page, "#overlay", zh=lang == "zh") == {}, f"alarm, {where}"
                assert await standard(page, lang) == [], f"alarm, {where}"
                if SCREENSHOTS and (lang, theme) == ("zh", "dark") and size != "landscape":
                    await page.screenshot(path=str(SHOTS / f"tablet-alarm-{size}.png"))
                await page.click("#overlay-later")
                await page.wait_for_selector("#overlay", state="hidden")
                assert await problems(page, "body", zh=lang == "zh") == {}, f"main view, {where}"
                assert await standard(page, lang) == [], f"main view, {where}"
                if SCREENSHOTS and (lang, theme) == ("zh", "dark"):
                    await page.screenshot(path=str(SHOTS / f"tablet-{size}.png"), full_page=size == "handset")
                await page.click("#kits-open")
                await page.wait_for_selector("#kit-model option", state="attached", timeout=TIMEOUT_MS)
                assert await problems(page, "body", zh=lang == "zh") == {}, f"quick test, {where}"
                assert await standard(page, lang) == [], f"quick test, {where}"
                if SCREENSHOTS and (lang, theme, size) == ("zh", "dark", "portrait"):
                    await page.screenshot(path=str(SHOTS / "tablet-kits-portrait.png"))
                await page.click("#kit-close")
                await page.click("#theme")
            await page.click("#lang")
        assert await page.evaluate("document.documentElement.lang") == "zh-CN"
        assert not await page.evaluate("document.documentElement.classList.contains('light')")
    page = tablets["landscape"]
    assert await dictionary_gaps(page) == {"zh_only": [], "en_only": []}
    await page.click("#pending")
    for _ in range(2):
        await page.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
        await outcome(page, "misread")
        await page.wait_for_timeout(300)
    await page.wait_for_selector("#overlay", state="hidden", timeout=TIMEOUT_MS)
    assert errors.take() == []


async def test_the_officer_is_told_plainly_when_the_uplink_is_down(broker, demo, tablets, errors):
    page = tablets["handset"]
    await page.reload()
    await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
    assert await page.is_hidden("#trouble")
    broker.stop()
    try:
        await page.wait_for_selector("#trouble [data-kind=uplink]", timeout=TIMEOUT_MS)
        text = await page.inner_text("#trouble")
        assert "上行链路中断" in text and "本地布控库" in text, text
        # an alarm still comes, from the edge's own watchlist copy
        await push(demo, "鲁Q8K2L1", "sim-lane-1")
        await page.wait_for_selector("#overlay:not([hidden])", timeout=TIMEOUT_MS)
        await outcome(page, "not_found")
        await page.wait_for_selector("#overlay", state="hidden", timeout=TIMEOUT_MS)
        assert await problems(page, "body", zh=True) == {}
        if SCREENSHOTS:
            await page.screenshot(path=str(SHOTS / "tablet-uplink-down-handset.png"))
    finally:
        broker.start()
    await page.wait_for_selector("#trouble", state="hidden", timeout=TIMEOUT_MS)
    assert errors.take() == []


async def test_a_quick_test_is_saved_on_the_demo_tablet(demo, tablets, errors):
    page = tablets["portrait"]
    before = len(errors.seen)
    await page.reload()
    await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
    # a reload aborts what the page had in flight (its status poll): the page's going, not a failure
    errors.seen[before:] = [e for e in errors.seen[before:] if "net::ERR_ABORTED" not in e]
    await page.click("#kits-open")
    await page.wait_for_selector("#kit-model option", state="attached", timeout=TIMEOUT_MS)
    assert "唾液" in await page.inner_text("#kit-model"), "the kit named in the page's language"
    await page.fill("#kit-id", "11010519491231002X")
    await page.fill("#kit-lot", "L2026-11")
    await page.fill("#kit-expiry", "2099-12-31")
    await page.fill("#kit-officer2", "王警官 002")
    for row in range(await page.locator("#kit-panels li").count()):
        await page.click(f"#kit-panels li:nth-child({row + 1}) button[data-call=negative]")
    await page.click("#kit-save")
    await page.wait_for_selector("#kit-result .ok", timeout=TIMEOUT_MS)
    assert "已保存" in await page.inner_text("#kit-result") and "阴性" in await page.inner_text("#kit-result")
    await page.click("#lang")
    assert "Saved" in await page.inner_text("#kit-result"), "the saved result re-said in English"
    await page.click("#lang")
    await page.click("#kit-close")
    assert errors.take() == []


async def test_a_silent_camera_and_a_dead_uplink_are_said_plainly(tmp_path, browser, errors, dead_broker_url):
    """An edge whose configured camera has gone silent, its uplink down: both said at the top, in words."""
    edge = edge_service(tmp_path / "edge", "SD-LC-003", dead_broker_url, cameras={"lane-north": "t1"})
    conf = edge.workdir / "edge.toml"
    config = tomllib.loads(conf.read_text(encoding="utf-8"))
    config["cameras"][0]["stale_after_s"] = 1  # silent for a second: stale
    write_toml(conf, config)
    edge.start()
    with running(edge):
        async with session() as http:
            async with http.post(f"{edge.base}/login", json={"code": "tablet-code"}) as resp:
                assert resp.status == 200
            await until(lambda: _stale(http, edge), timeout=20, what="the camera reported stale")
        for size in ("handset", "landscape"):
            width, height = SIZES[size]
            page = errors.watch(
                await (
                    await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
                ).new_page(),
                f"stale {size}",
            )
            await page.goto(edge.base + "/login")
            await page.click("summary")
            await page.fill("input[name=code]", "tablet-code")
            await page.click("button[type=submit]")
            await page.wait_for_selector("#trouble [data-kind=camera]", timeout=TIMEOUT_MS)
            text = await page.inner_text("#trouble")
            assert "相机 lane-north 自启动以来无识别" in text and "上行链路中断" in text, text
            assert await problems(page, "body", zh=True) == {}
            await page.click("#lang")
            assert "Camera lane-north has read nothing" in await page.inner_text("#trouble")
            assert await problems(page, "body", zh=False) == {}
            if SCREENSHOTS and size == "landscape":
                await page.click("#lang")
                await page.screenshot(path=str(SHOTS / "tablet-trouble.png"))
            await page.context.close()
    assert errors.take() == []


async def _stale(http, edge):
    status = await get_json(http, f"{edge.base}/api/v1/status")
    return status["cameras"]["lane-north"]["stale"]


async def test_a_cloned_plate_is_said_in_the_tablets_language(demo, tablets, errors):
    """The same plate at the other checkpoint and here a second apart: the hub's clone rule warns this
    checkpoint, and the tablet names the rule and its two reads in the page's language (it showed the
    hub's "suspected cloned plate" and its internal "impossible_trip; earlier read SD-.../1796.../451
    camera ..." as the 布控事由)."""
    page = tablets["landscape"]
    await push(demo, "鲁K3C7N2", other=True, confidence=98.0)
    await push(demo, "鲁K3C7N2", confidence=98.0)
    row = "#alerts li:has(.plate:text-is('鲁K3C7N2'))"
    await page.wait_for_selector(row, timeout=TIMEOUT_MS)
    shown = await page.inner_text(row)
    assert "疑似套牌车" in shown and "先经" in shown and "后经" in shown, shown
    assert "相似度" not in shown, "no score for a rule's hit (a clone's is always 100%)"
    assert await untranslated_text(page) == [], await untranslated_text(page)
    await page.click("#lang")
    shown = await page.inner_text(row)
    assert "Suspected clone" in shown and "first at" in shown, shown
    assert await keys_shown(page) == []
    await page.click("#lang")
    assert errors.take() == []


async def test_the_tablet_shows_times_in_the_edges_time_zone(browser, demo, errors):
    """A tablet set to another zone (a borrowed handset, a tablet never set up) shows every time in the
    edge's ``time_zone`` (Asia/Shanghai by default), as the console shows the hub's: one clock on both."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="zh-CN", timezone_id="America/New_York"
    )
    try:
        await context.add_init_script(KEEP_WAKE_LOCKS)
        page = errors.watch(await context.new_page(), "tablet in New York time")
        await page.goto(demo.tablet + "/login")
        await page.click("summary")
        await page.fill("input[name=code]", demo.tablet_code)
        await page.click("button[type=submit]")
        await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
        # 1718000000 is 14:13:20 in Shanghai (+08:00) and 02:13:20 in New York (-04:00 then).
        # The page's own formatter (one module instance per page): what every row and alarm is drawn with.
        said = "() => import('/common/i18n.js').then((m) => m.fmtTime(1718000000))"
        texts = [await page.evaluate(said)]
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while texts[-1] != "14:13:20" and time.monotonic() < deadline:  # until the first status poll
            await page.wait_for_timeout(100)
            texts.append(await page.evaluate(said))
        assert texts[-1] == "14:13:20", f"times said in the tablet's own zone: {texts[-1]}"
        assert errors.take() == []
    finally:
        await context.close()
