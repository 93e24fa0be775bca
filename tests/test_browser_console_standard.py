"""The command console held to the standard of issue 20, in one real headless Chromium against one real hub,
edge and Mosquitto for the whole module (module-scoped: the checks share them, the module stays near a
minute and a half).

The walk: alerts arrive (an exact intercept, a look-alike, a pattern, a covert hit, a clone between two
checkpoints, repeats folded into one); the queue shows one dense row each and moves by keyboard; the detail
opens beside it, without asking for pictures the alert says do not exist; an intercept nobody answers is
escalated and the commander's notice names its plate, list and checkpoint without covering the detail; the
officer records the outcome through the edge's tablet API and the console shows it, with no overdue badge
left. Each role's console asks who it is once and shows only what the role may do: no request the hub
refuses. A list is created and edited with all five match kinds and read back unchanged. Every view in
both languages, both themes, at 1920x1080 and 1280x800: no text out of its box, no name cut short, no key
or English on the Chinese page, every key in both languages; no page error, console error or failed
request anywhere. Screenshots with CORDON_SCREENSHOTS=1: docs/screenshots/console-live-{zh,en}.png."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import async_playwright

from central.record.sqlite import users
from central.record.sqlite.store import HubStore
from protocols import topics
from protocols.messages import SCHEMA_VERSION, CheckpointStatus, EventBatch, PlateRead, encode
from tests.browser_checks import (
    PageWatch,
    broken_names,
    dense_rows,
    dictionary_gaps,
    keys_shown,
    low_contrast_text,
    overflowing_text,
    untranslated_text,
)
from tests.support import (
    Mosquitto,
    Service,
    edge_service,
    get_json,
    hub_service,
    login,
    session,
    until,
    wait_port,
)

pytestmark = [pytest.mark.browser, pytest.mark.system, pytest.mark.asyncio(loop_scope="module")]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
FEED_TOKEN = "feed-secret"
PASSWORD = "command centre 24h"
TIMEOUT_MS = 30_000
ESCALATE_AFTER_S = 3
WATCHLIST = (
    "plate,list,action,priority,reason\n"
    "鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n"
    "鲁C3M7P2,涉毒嫌疑车辆,intercept,90,毒品案件关联车辆\n"
    "鲁H6B2Z9,涉毒嫌疑车辆,intercept,90,贩毒团伙车辆\n"
    "冀F7M395,在逃人员关联车辆,covert,80,在逃人员驾驶\n"
)
USERS = {
    "sun.cmd": ("commander", "孙值班"),
    "wang.ana": ("analyst", "王研判"),
    "li.lists": ("watchlist_manager", "李名单"),
}
SHOOT = os.environ.get("CORDON_SCREENSHOTS") == "1"
#: The browsers run in another zone than the hub's (Asia/Shanghai): every time shown must be the hub's.
BROWSER_ZONE = "America/New_York"
SIZES = {"1920x1080": {"width": 1920, "height": 1080}, "1280x800": {"width": 1280, "height": 800}}


@dataclass
class World:
    hub: Service
    edge: Service
    broker: Mosquitto
    http: Any
    """Signed in to the hub (an admin session)."""
    tablet: Any
    """Signed in to the edge, as its tablet is (cookies are per host, not port: a session of its own)."""
    browser: Any
    seqs: dict[str, int]
    seeded: bool = False
    sessions: dict[str, Any] = field(default_factory=dict)

    async def push(self, plate: str, event_id: str, **extra: Any) -> int:
        async with self.tablet.post(
            f"{self.edge.base}/api/v1/cameras/cam1/reads",
            json={"plate": plate, "colour": "blue", "lane": 1, "event_id": event_id, **extra},
            headers={"X-Camera-Token": "t1"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["seq"]

    def publish(self, topic: str, payload: bytes) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-edge-{time.monotonic_ns()}")
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        try:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
        finally:
            client.loop_stop()
            client.disconnect()

    def fake_edge_read(self, checkpoint: str, plate: str, at: float) -> None:
        """A read from a checkpoint that has no edge process here: its batch straight onto the broker."""
        seq = self.seqs[checkpoint] = self.seqs.get(checkpoint, 0) + 1
        read = PlateRead(
            seq=seq,
            camera_id="cam-2",
            captured_at=at,
            plate=plate,
            plate_raw=plate,
            plate_valid=True,
            confidence=97.0,
            colour="blue",
        )
        batch = EventBatch(
            v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=time.time(), events=[read]
        )
        self.publish(topics.events(checkpoint), encode(batch))

    def fake_edge_status(self, checkpoint: str, software: str, feed_version: int) -> None:
        status = CheckpointStatus(
            v=SCHEMA_VERSION,
            checkpoint=checkpoint,
            online=True,
            sent_at=time.time(),
            epoch=1,
            software=software,
            feed_version=feed_version,
        )
        self.publish(topics.status(checkpoint), encode(status))

    async def page(
        self, who: str, size: str = "1280x800", lang: str = "zh", theme: str = "dark"
    ) -> tuple[Any, PageWatch]:
        """A console page signed in as ``who`` (an account, or "admin": the access code), in a context of
        its own, and what went wrong on it from the start; each account signs in through the login page
        once, later pages reuse its session."""
        context = await self.browser.new_context(
            viewport=SIZES[size], storage_state=self.sessions.get(who), timezone_id=BROWSER_ZONE
        )
        await context.add_init_script(
            f"localStorage.setItem('cordon.lang', '{lang}'); localStorage.setItem('cordon.theme', '{theme}');"
        )
        page = await context.new_page()
        watch = PageWatch(page)
        if who not in self.sessions:
            await page.goto(f"{self.hub.base}/login")
            if who == "admin":
                await page.click("summary")
                await page.fill("input[name=code]", "console-code")
            else:
                await page.fill("input[name=username]", who)
                await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
            self.sessions[who] = await context.storage_state()
        else:
            await page.goto(self.hub.base + "/")
            await page.wait_for_selector("#live.ok", timeout=TIMEOUT_MS)
        return page, watch

    def refusals(self) -> list[str]:
        return [line for line in self.hub.log().splitlines() if " refused " in line]


def _add_users(data_dir: Path) -> None:
    """The accounts, straight into the hub's store (one password hash for all: argon2 is slow on purpose)."""
    hashed = users.hash_password(PASSWORD)
    store = HubStore(data_dir / "hub.db")
    store.start()
    try:
        for name, (role, display) in USERS.items():
            store.submit(
                lambda db, n=name, r=role, d=display: users.add(db, n, r, hashed, display_name=d)
            ).result()
    finally:
        store.stop()


@contextlib.asynccontextmanager
async def open_world(tmp: Path) -> AsyncIterator[World]:
    """Mosquitto, a hub with three accounts and an edge, a browser; all stopped on the way out."""
    broker = Mosquitto(tmp / "mosquitto").start()
    wl = tmp / "watchlist.csv"
    wl.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(
        tmp / "hub",
        broker.url,
        watchlist_csv=wl,
        extra={
            "feed": {"token": FEED_TOKEN},
            "console": {"escalate_after_s": ESCALATE_AFTER_S},
            "alerts": {"fold_window_s": 600},
        },
    )
    edge = edge_service(
        tmp / "edge",
        "SD-DZ-001",
        broker.url,
        cameras={"cam1": "t1"},
        extra={"hub": {"url": hub.base, "token": FEED_TOKEN}},
    )
    await asyncio.to_thread(_add_users, tmp / "hub" / "data")
    hub.start(wait=False)
    edge.start(wait=False)
    for service in (hub, edge):
        await asyncio.to_thread(wait_port, service.port, 60)
    try:
        async with session() as http, session() as tablet, async_playwright() as pw:
            await login(http, hub.base, "console-code")
            await login(tablet, edge.base, "tablet-code")
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                yield World(hub, edge, broker, http, tablet, browser, {})
            finally:
                await browser.close()
    finally:
        edge.stop()
        hub.stop()
        broker.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    async with open_world(tmp_path_factory.mktemp("console")) as opened:
        yield opened


async def seed(world: World) -> None:
    """Once per world: alerts of every kind the console explains, and two more checkpoints that report themselves: a
    look-alike, a pattern, a covert hit, repeats folded into one alert, a clone between two checkpoints."""
    if world.seeded:
        return
    world.seeded = True
    async with world.http.post(
        f"{world.hub.base}/api/v1/watchlists", json={"list_id": "partial", "name": "部分号牌线索"}
    ) as resp:
        assert resp.status == 200, await resp.text()
    async with world.http.post(
        f"{world.hub.base}/api/v1/watchlists/partial/entries",
        json={"plate": "鲁B*88?5", "reason": "目击者记下部分号牌"},
    ) as resp:
        assert resp.status == 200, await resp.text()
    await world.push("鲁H682Z9", "seed-1")  # 鲁H6B2Z9 listed: B read as 8
    await world.push("鲁BK8835", "seed-2")  # the pattern
    await world.push("冀F7M395", "seed-3")  # covert
    await world.push("鲁C3M7P2", "seed-4")
    await world.push("鲁C3M7P2", "seed-5")  # folded into the one before
    now = time.time()
    world.fake_edge_status("SD-LC-001", "cordon-edge/0.0.9", 0)
    world.fake_edge_status("SD-LY-001", "cordon-edge/0.1", 1)
    world.fake_edge_read("SD-LY-001", "鲁H5T2K8", now - 900)
    world.fake_edge_read("SD-LC-001", "鲁H5T2K8", now - 60)  # 郯城 to 临清 in 14 minutes: a clone

    async def all_there():
        ids = await _alert_ids(world)
        return all(p in ids for p in ("鲁H682Z9", "鲁BK8835", "冀F7M395", "鲁C3M7P2", "鲁H5T2K8"))

    await until(all_there, timeout=30, what="the seeded alerts at the hub")


async def _alert_ids(world: World) -> dict[str, str]:
    alerts = (await get_json(world.http, f"{world.hub.base}/api/v1/alerts"))["alerts"]
    return {a["plate_read"]: a["alert_id"] for a in alerts}


async def test_the_walk_of_an_alert_on_the_commanders_console(world):
    page, watch = await world.page("sun.cmd")
    # the empty queue is designed: it says what will appear there
    await page.wait_for_selector("#queue-state:not([hidden]) .queue-empty-title", timeout=TIMEOUT_MS)

    # an intercept hit arrives: one dense row (plate, action and list, checkpoint name, time ago, kind, state)
    await world.push("鲁Q8K2L1", "walk-1")
    row = '#alerts li.intercept[data-alert-id]:has([data-role=plate-read]:text-is("鲁Q8K2L1"))'
    await page.wait_for_selector(row, timeout=TIMEOUT_MS)
    text = await page.inner_text(row)
    for shown in ("鲁Q8K2L1", "拦截", "涉毒嫌疑车辆", "德州京沪高速检查站", "刚刚", "完全比中", "待处置"):
        assert shown in text, (shown, text)
    box = await page.locator(row).bounding_box()
    assert box["height"] < 80, f"one dense row, not a card: {box}"
    assert await page.locator("#queue-state").is_hidden()

    # keyboard: focus the queue, move, open with Enter; the detail opens beside the queue
    await world.push("鲁C3M7P2", "walk-0")
    second = '#alerts li.alert:has([data-role=plate-read]:text-is("鲁C3M7P2"))'
    await page.wait_for_selector(second, timeout=TIMEOUT_MS)
    # the newer one stands above (same priority): down from it reaches the first, Enter opens it
    await page.locator(second).focus()
    await page.keyboard.press("ArrowDown")
    focused = await page.evaluate("document.activeElement.dataset.alertId")
    assert focused == await page.get_attribute(row, "data-alert-id")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#detail-body:not([hidden]) .facts", timeout=TIMEOUT_MS)
    detail = await page.inner_text("#detail-body")
    assert "识别号牌 鲁Q8K2L1 与布控号牌 鲁Q8K2L1 完全一致" in detail and "涉嫌运输毒品" in detail
    assert "该预警无现场图片" in detail and "尚无处置" in detail
    # in the hub's time zone, not the browser's
    (alert,) = [
        a
        for a in (await get_json(world.http, f"{world.hub.base}/api/v1/alerts"))["alerts"]
        if a["plate_read"] == "鲁Q8K2L1"
    ]
    shanghai = datetime.fromtimestamp(alert["captured_at"], ZoneInfo("Asia/Shanghai")).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    assert shanghai in detail, (shanghai, detail)
    queue_box = await page.locator("#alerts").bounding_box()
    detail_box = await page.locator("#detail").bounding_box()
    assert detail_box["x"] >= queue_box["x"] + queue_box["width"] - 1, "the detail stands beside the queue"

    # nobody answers: escalated; the commander's notice names the alert and does not cover the detail
    notice = '#commander-notices .commander-notice:has-text("鲁Q8K2L1")'
    await page.wait_for_selector(notice, timeout=TIMEOUT_MS)
    said = await page.inner_text(notice)
    assert "涉毒嫌疑车辆" in said and "德州京沪高速检查站" in said, said
    n, d = await page.locator(notice).bounding_box(), await page.locator("#detail").bounding_box()
    assert n["y"] + n["height"] <= d["y"] or d["y"] + d["height"] <= n["y"], "the notice covers the detail"
    await page.wait_for_selector(row + ".escalated .badge.escalation", timeout=TIMEOUT_MS)

    # the officer records the outcome at the checkpoint (the tablet's API): the console shows it at once,
    # the notice goes, and no red overdue badge is left on an alert marked intercepted
    alert_id = (await _alert_ids(world))["鲁Q8K2L1"]
    async with world.tablet.post(
        f"{world.edge.base}/api/v1/alerts/{alert_id}/outcome",
        json={"outcome": "intercepted", "note": "已带回"},
    ) as resp:
        assert resp.status == 200, await resp.text()
    await page.wait_for_selector(row + " .outcome-line:has-text('已拦截')", timeout=TIMEOUT_MS)
    await page.wait_for_selector(notice, state="detached", timeout=TIMEOUT_MS)
    assert await page.locator(row + " .escalation").count() == 0
    assert "escalated" not in (await page.get_attribute(row, "class"))
    assert "已拦截" in await page.inner_text("#detail-body .history")

    # no picture was asked for: the alert said it has none
    assert not [r for r in watch.requests if "/api/v1/evidence/" in r], watch.requests
    assert watch.problems() == [], watch.problems()
    assert world.refusals() == []


async def _open_views(page: Any) -> AsyncIterator[str]:
    """Walk every view of the console: the live view with a clone's and a folded alert's detail, the
    watchlists with a list open, the statistics, the intelligence panel, the quick tests."""
    await page.wait_for_selector("#alerts li.alert >> nth=4", timeout=TIMEOUT_MS)
    await page.click("#alerts li.notify")  # the clone
    await page.wait_for_selector("#detail-body:not([hidden]) .facts", timeout=TIMEOUT_MS)
    yield "live, a clone's detail"
    await page.click("#alerts li:has(.badge.folded)")
    await page.wait_for_selector("#detail-body .facts", timeout=TIMEOUT_MS)
    await page.wait_for_selector("#detail-body .passages li:not(.muted)", timeout=TIMEOUT_MS)
    yield "live, a folded alert's detail"
    await page.click("#tab-lists")
    await page.click('#wl-lists li[data-list="partial"]')
    await page.wait_for_selector("#wl-rows tr", timeout=TIMEOUT_MS)
    yield "watchlists"
    await page.click("#tab-stats")
    await page.wait_for_selector(
        "#stats-view:not([hidden]) #st-table table, #stats-view .st-none", timeout=TIMEOUT_MS
    )
    yield "statistics"
    await page.click("#tab-intel")
    await page.wait_for_selector("#intel:not([hidden])", timeout=TIMEOUT_MS)
    yield "intelligence"
    await page.click("#tab-live")
    await page.click("#kits-open")
    await page.wait_for_selector("#kits:not([hidden]) #kits-note", state="attached", timeout=TIMEOUT_MS)
    yield "quick tests"
    await page.click("#kits-close")


async def test_every_view_in_both_languages_themes_and_sizes(world):
    """No text out of its box or cut short, none too faint, no dictionary key or English on the Chinese
    page, every key in both languages, and no error of any kind: on every view, at 1920x1080 and 1280x800,
    in both languages and both themes, switched by the page's own buttons (what was drawn before a switch
    must follow it)."""
    await seed(world)
    found: list[str] = []
    page, watch = await world.page("sun.cmd", "1920x1080", "zh", "dark")
    # every edge's software and feed version, and which lags behind the hub's
    dz = '#checkpoints li[data-checkpoint="SD-DZ-001"]'
    await page.wait_for_selector(dz + ' .cp-feed:has-text("布控库 v")', timeout=TIMEOUT_MS)
    assert "软件 cordon-edge/0.1" in await page.inner_text(dz)
    lc = '#checkpoints li[data-checkpoint="SD-LC-001"]'
    await page.wait_for_selector(lc + " .cp-feed.lagging", timeout=TIMEOUT_MS)
    shown = await page.inner_text(lc)
    assert "软件 cordon-edge/0.0.9" in shown and "布控库 v0" in shown and "落后于中心" in shown, shown
    for size in SIZES:
        await page.set_viewport_size(SIZES[size])
        for lang, theme, switch in (
            ("zh", "dark", None),
            ("zh", "light", "#theme"),
            ("en", "light", "#lang"),
            ("en", "dark", "#theme"),
        ):
            if switch:
                await page.click(switch)
            async for view in _open_views(page):
                where = f"{size} {lang} {theme}, {view}"
                assert await page.get_attribute("html", "lang") == ("zh-CN" if lang == "zh" else "en")
                found += [f"{where}: overflow {o}" for o in await overflowing_text(page)]
                # (a long English checkpoint name may wrap in the detail's 160 px column of facts; no plate may)
                broken = await broken_names(page, names_may_wrap=(".facts",))
                found += [f"{where}: a name over two lines {b}" for b in broken]
                # one dense row per alert: the issue found five lines at 1280x800
                found += [
                    f"{where}: a tall queue row {r}" for r in await dense_rows(page, "#alerts li.alert", 3)
                ]
                found += [f"{where}: low contrast {c}" for c in await low_contrast_text(page)]
                if lang == "zh":
                    found += [f"{where}: untranslated {u}" for u in await untranslated_text(page)]
                else:
                    found += [f"{where}: a key shown {k}" for k in await keys_shown(page)]
                    text = await page.inner_text("body")
                    found += [
                        f"{where}: {m!r}" for m in re.findall(r"\b1 (?:entries|alerts|times|hits)\b", text)
                    ]
                    header = await page.inner_text("header")
                    if header.count("Live") > 1:
                        found.append(f"{where}: 'Live' twice in the header: {header!r}")
                if view.startswith("live, a clone") and theme == "dark" and size == "1920x1080" and SHOOT:
                    await page.screenshot(path=str(SHOTS / f"console-live-{lang}.png"))
        await page.click("#lang")  # back to Chinese for the next size
    gaps = await dictionary_gaps(page)
    assert gaps == {"zh_only": [], "en_only": []}, gaps
    assert not found, "\n".join(dict.fromkeys(found))
    assert watch.problems() == [], watch.problems()
    assert world.refusals() == []


async def test_each_role_sees_what_it_may_and_nothing_is_refused(world):
    """The console asks GET /api/v1/me once and shows only what the role may do: no probing, so the hub
    logs no refusal (a commander's console used to poll the import endpoint for a 403)."""
    await seed(world)
    shown = {
        "sun.cmd": {"#tab-lists", "#tab-stats", "#kits-open", "#tab-intel", "#wl-readonly"},
        "wang.ana": {"#tab-lists", "#tab-stats", "#kits-open", "#tab-intel", "#wl-readonly"},
        "li.lists": {"#tab-lists", "#wl-new"},
    }
    every = set().union(*shown.values())
    for who, visible in shown.items():
        page, watch = await world.page(who)
        await page.wait_for_selector("#alerts li.alert", timeout=TIMEOUT_MS)
        await page.click(
            "#alerts li.alert >> nth=0"
        )  # the detail: the record is searched only by those who may
        await page.wait_for_selector("#detail-body .facts", timeout=TIMEOUT_MS)
        await page.click("#tab-lists")
        await page.wait_for_selector("#wl-lists li", timeout=TIMEOUT_MS)
        for selector in every:
            assert await page.locator(selector).is_visible() == (selector in visible), (who, selector)
        assert await page.locator("#detail-body .passages").count() == 0 or who != "li.lists"
        asked = [r for r in watch.requests if "/api/v1/me" in r]
        assert len(asked) == 1, (who, asked)
        assert not [r for r in watch.requests if "/imports/" in r], "no probe of the import jobs"
        assert watch.problems() == [], (who, watch.problems())
        await page.context.close()
    assert world.refusals() == [], world.refusals()


async def test_a_list_keeps_every_setting_through_the_console(world):
    """The list editor offers exactly the five real match kinds, in words, and every list setting; a list is
    created with all five kinds and read back unchanged; editing one setting keeps all the others (saving
    used to reset max_swaps, source and owner, and offered kinds that do not exist: a 400)."""
    page, watch = await world.page("li.lists")
    await page.click("#tab-lists")
    await page.click("#wl-new")
    form = "#wl-create form"
    boxes = page.locator(form + " .wl-kinds input[type=checkbox]")
    assert [await b.get_attribute("value") for b in await boxes.all()] == [
        "exact",
        "equivalent",
        "edit",
        "province",
        "wildcard",
    ]
    words = await page.locator(form + " .wl-kinds label").all_inner_texts()
    assert [w.strip() for w in words] == ["完全比中", "形近字比中", "一字之差", "省份字误识", "模糊比中"]
    assert [await b.is_checked() for b in await boxes.all()] == [True, True, False, False, True], (
        "the default"
    )
    await page.fill(form + " input[name=list_id]", "five")
    await page.fill(form + " input[name=name]", "五种比对名单")
    await page.select_option(form + " select[name=action]", "notify")
    await page.fill(form + " input[name=priority]", "77")
    await page.fill(form + " input[name=max_swaps]", "1")
    for b in await boxes.all():
        await b.check()
    await page.fill(form + " input[name=valid_until]", "2031-01-01")
    await page.fill(form + " input[name=source]", "省厅下发")
    await page.fill(form + " input[name=owner]", "李名单")
    await page.check(form + " input[name=restricted]")
    await page.click(form + " button[type=submit]")
    await page.wait_for_selector('#wl-lists li[data-list="five"].selected', timeout=TIMEOUT_MS)

    async def stored(list_id):
        found = (await get_json(world.http, f"{world.hub.base}/api/v1/watchlists"))["watchlists"]
        (w,) = [x["watchlist"] for x in found if x["watchlist"]["list_id"] == list_id]
        return {**w, "alert_kinds": sorted(w["alert_kinds"])}

    created = await stored("five")
    assert created == {
        "list_id": "five",
        "name": "五种比对名单",
        "kind": "vehicle",
        "action": "notify",
        "priority": 77,
        "restricted": True,
        "alert_kinds": ["edit", "equivalent", "exact", "province", "wildcard"],
        "max_swaps": 1,
        "valid_from": None,
        "valid_until": datetime.fromisoformat("2031-01-01T00:00:00+08:00").timestamp(),
        "source": "省厅下发",
        "owner": "李名单",
    }
    # edit one setting: everything else stays, also a time of day the form's date does not show
    async with world.http.post(
        f"{world.hub.base}/api/v1/watchlists",
        json={
            **created,
            "list_id": "api",
            "name": "接口建的名单",
            "valid_until": created["valid_until"] + 3600.5,
        },
    ) as resp:
        assert resp.status == 200
    before = await stored("api")
    await page.click("#tab-lists")  # made elsewhere: the view reloads the lists
    await page.click('#wl-lists li[data-list="api"]')
    await page.wait_for_selector('#wl-title:has-text("接口建的名单")', timeout=TIMEOUT_MS)
    await page.fill("#wl-edit form input[name=priority]", "12")
    await page.click("#wl-edit form button[type=submit]")
    await until(lambda: _priority(world, "api", 12), timeout=20, what="the edited priority")
    assert await stored("api") == {**before, "priority": 12}
    # the import's mode is offered in words, not as the API's values
    modes = await page.locator("#wl-import select[name=mode] option").all_inner_texts()
    assert modes == ["合并：只新增和更新", "替换：名单与文件一致"]
    assert watch.problems() == [], watch.problems()


async def _priority(world, list_id, priority):
    found = (await get_json(world.http, f"{world.hub.base}/api/v1/watchlists"))["watchlists"]
    return any(x["watchlist"]["list_id"] == list_id and x["watchlist"]["priority"] == priority for x in found)


def _hits() -> list[dict[str, Any]]:
    """One hit of every form of explanation the hub and the edges write, made by the code that writes them."""
    from central.intel.clones import CloneCheck, load_geography
    from central.settings import CloneSettings
    from protocols import clones
    from protocols.matching import Entry, Watchlist, match_one
    from protocols.permits import check_permit

    wl = Watchlist(list_id="l", name="测试名单", alert_kinds=frozenset(), max_swaps=2)
    forms = [
        ("鲁A12345", "鲁A12345"),  # exact
        ("鲁A1234S", "鲁A12345"),  # look-alike
        ("豫A12345", "鲁A12345"),  # province
        ("豫A1234S", "鲁A12345"),  # province and a look-alike
        ("A12345", "鲁A12345"),  # province missing
        ("鲁A12347", "鲁A12345"),  # one character for another
        ("鲁A1234", "鲁A12345"),  # one missing
        ("鲁A123456", "鲁A12345"),  # one extra
        ("鲁AK2385", "鲁A*23?5"),  # a pattern
        ("鲁AK23B5", "鲁A*2385"),  # a pattern with a look-alike
    ]
    hits = []
    for read, plate in forms:
        hit = match_one(read, Entry(entry_id="l:" + plate, list_id="l", plate=plate), wl, now=time.time())
        assert hit is not None, (read, plate)
        hits.append(
            {"kind": hit.kind.value, "score": hit.score, "explanation": hit.explanation, "entry_plate": plate}
        )
    at_edge = dict(
        hits[0], explanation=hits[0]["explanation"] + " (matched at the checkpoint, feed version 7)"
    )

    class NoPermits:
        def on_list(self, *args: Any, **kw: Any) -> bool:
            return False

    from protocols.matching import PermitRule

    rule = PermitRule(
        rule_id="hazmat", list_id="p", colours=frozenset({"yellow"}), permit_name="危险货物运输许可"
    )
    (permit,) = check_permit("鲁A12345", "yellow", "truck", [rule], NoPermits(), time.time())
    geo = load_geography(CloneSettings())
    check = CloneCheck(CloneSettings(), geo, time_zone="Asia/Shanghai")

    def sight(cp: str, seq: int, at: float) -> clones.Sighting:
        return clones.Sighting(cp, 1, seq, at, "鲁H5T2K8", "cam-2", "blue")

    finding = clones.check(
        sight("SD-LY-001", 1, 1_767_000_000.0), sight("SD-LC-001", 2, 1_767_000_900.0), geo, check.rule
    )
    assert finding is not None
    clone = check.alert(finding, 1_767_000_901.0).hit
    return [
        *hits,
        at_edge,
        {"kind": "exact", "score": 1.0, "explanation": permit.explanation, "entry_plate": ""},
        {
            "kind": "rule",
            "score": 1.0,
            "explanation": "vehicle without a readable plate (camera sent '无牌')",
            "entry_plate": "",
        },
        {
            "kind": "kit",
            "score": 1.0,
            "explanation": "SD-SAL6 positive: MET, KET (R-17)",
            "entry_plate": "ID …002X",
        },
        {
            "kind": "person",
            "score": 1.0,
            "explanation": "quick test R-17: the subject's keyed ID hash is on this person list",
            "entry_plate": "ID …002X",
        },
        {
            "kind": "clone",
            "score": 1.0,
            "explanation": clone.explanation,
            "reason": clone.reason,
            "entry_plate": clone.entry_plate,
        },
    ]


async def test_every_explanation_is_said_in_the_pages_language(world):
    """Every form of explanation the matcher, the rules and the clone check write ("read X = entry Y",
    "equivalent", "kind.clone" ...) reaches the Chinese page in Chinese and the English page in English;
    a clone's reason names its two checkpoints, never the reads' ids."""
    from tests.browser_checks import english_words

    hits = _hits()
    page, watch = await world.page("sun.cmd")
    said = await page.evaluate(
        """async (hits) => {
            const m = await import("/static/console-explain.js");
            const i18n = await import("/common/i18n.js");
            const say = () => hits.map((h) => [m.kindWords(h), m.explain(h), m.reasonText(h), m.scoreText(h)]);
            const zh = say();
            i18n.toggleLang();
            const en = say();
            i18n.toggleLang();
            return { zh, en };
        }""",
        hits,
    )
    for hit, words in zip(hits, said["zh"], strict=True):
        assert all(w.strip() for w in words[:2]), (hit, words)
        assert not english_words(" ".join(words)), (hit["explanation"], words)
    for hit, words in zip(hits, said["en"], strict=True):
        text = " ".join(words)
        data = ("鲁", "豫", "危险货物运输许可", "无牌")  # plates and what the test's data says in Chinese
        for word in data:
            text = text.replace(word, "")
        assert not any("\u4e00" <= c <= "\u9fff" for c in text), (hit["explanation"], words)
        assert "read 鲁A12345 = entry" not in text
    clone_zh, clone_en = said["zh"][-1], said["en"][-1]
    assert "郯城京沪高速检查站" in clone_zh[2] and "临清青银高速检查站" in clone_zh[2], clone_zh
    assert "SD-LY-001/" not in clone_zh[2] and " / " not in clone_zh[1] and "fastest" not in clone_zh[1]
    assert (
        "fastest trip" in clone_en[1]
        and "Tancheng G2 Expressway" in clone_en[1]
        and "Tancheng" in clone_en[2]
    )
    assert watch.problems() == [], watch.problems()


async def test_the_queue_says_when_it_is_offline_or_cannot_load(world):
    """The queue's designed states beyond loading and empty: offline (the live feed cannot connect: the
    rows it has stay, dimmed, and it says they will be caught up) and error (the page cannot tell who it
    serves: it says so, with the way to sign in again)."""
    if "sun.cmd" not in world.sessions:
        await (await world.page("sun.cmd"))[0].context.close()
    context = await world.browser.new_context(
        storage_state=world.sessions["sun.cmd"], timezone_id=BROWSER_ZONE
    )
    page = await context.new_page()
    await page.route_web_socket("**/api/v1/ws", lambda ws: ws.close())
    await page.goto(world.hub.base + "/")
    await page.wait_for_selector("#queue-state.offline:not([hidden])", timeout=TIMEOUT_MS)
    assert "与中心的连接已中断" in await page.inner_text("#queue-state")
    assert await page.get_attribute("#live", "class") == "badge bad"
    await context.close()

    context = await world.browser.new_context(
        storage_state=world.sessions["sun.cmd"], timezone_id=BROWSER_ZONE
    )
    page = await context.new_page()
    await page.route("**/api/v1/me", lambda route: route.fulfill(status=401, json={"error": "sign in first"}))
    await page.goto(world.hub.base + "/")
    await page.wait_for_selector("#page-error:not([hidden])", timeout=TIMEOUT_MS)
    assert "登录已失效，请重新登录" in await page.inner_text("#page-error")
    assert await page.get_attribute("#page-error a", "href") == "/login"
    await page.wait_for_selector("#queue-state.error:not([hidden])", timeout=TIMEOUT_MS)
    assert "无法载入预警" in await page.inner_text("#queue-state")
    await context.close()
