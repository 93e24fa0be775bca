"""The console side of routing: folded alerts reach only the consoles allowed to see them, and an
escalation carries the shift commander's notice to commander consoles only (real hub app and SQLite)."""

from __future__ import annotations

import time

import aiohttp
import msgspec
import pytest

from central.app import create_app
from central.lifecycle import escalate_once
from central.record.sqlite import users
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.web import keys
from protocols.messages import SCHEMA_VERSION, Alert, AlertHit

PASSWORD = "correct horse battery staple"
AFTER_S = 60.0


def alert(aid: str, raised_at: float, action: str = "intercept") -> Alert:
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=aid,
        checkpoint="SD-DZ-001",
        epoch=1,
        seq=int(raised_at) % 100000,
        raised_at=raised_at,
        captured_at=raised_at,
        camera_id="c",
        plate_read="鲁Q8K2L1",
        hit=AlertHit(
            entry_id="e-" + aid,
            entry_plate="鲁Q8K2L1",
            list_id="l",
            list_name="涉毒",
            action=action,
            priority=90,
            kind="exact",
            score=1.0,
            explanation="完全比中",
        ),
    )


@pytest.fixture
async def hub(aiohttp_server, tmp_path, dead_broker_url):
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="", escalate_after_s=AFTER_S),
    )
    app = create_app(settings)
    server = await aiohttp_server(app)
    hashed = users.hash_password(PASSWORD)
    app[keys.STORE].submit(
        lambda db: (
            users.add(db, "sun.cmd", "commander", hashed),
            users.add(db, "li.ana", "analyst", hashed),
            users.add(db, "wang.wl", "watchlist_manager", hashed),
            app[keys.DIRECTORY].reload(db),
        )
    ).result(5)
    sessions = []

    async def console(username):
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        resp = await http.post(server.make_url("/login"), json={"username": username, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        ws = await http.ws_connect(server.make_url("/api/v1/ws"))
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        return ws

    yield app, console
    for http in sessions:
        await http.close()


async def frames_until(ws, kind, alert_id):
    """Frames up to and including the first of ``kind`` about ``alert_id``."""
    seen = []
    while True:
        frame = await ws.receive_json(timeout=10)
        seen.append(frame)
        body = frame.get("alert") or frame.get("escalation") or {}
        if frame["type"] == kind and body.get("alert_id") == alert_id:
            return seen


async def test_a_folded_covert_alert_reaches_only_the_consoles_that_may_see_it(hub):
    app, console = hub
    now = time.time()
    covert, open_ = alert("covert", now, "covert"), alert("open", now)
    for a in (covert, open_):
        await app[keys.STORE].run(lambda db, a=a: app[keys.STORE].insert_alert(db, a))
    wl, ana = await console("wang.wl"), await console("li.ana")
    for ws in (wl, ana):
        await frames_until(ws, "alert", "open")  # the catch-up
    folded = [
        msgspec.structs.replace(a, folded=1, last_seen_at=now + 30, last_seen_checkpoint="SD-LY-001")
        for a in (covert, open_)
    ]
    app[keys.DISPATCHER].dispatch_folded(folded)
    got_ana = await frames_until(ana, "alert_folded", "open")
    assert [f["alert"]["alert_id"] for f in got_ana if f["type"] == "alert_folded"] == ["covert", "open"]
    got_wl = await frames_until(wl, "alert_folded", "open")
    assert [f["alert"]["alert_id"] for f in got_wl if f["type"] == "alert_folded"] == ["open"]
    assert got_wl[-1]["alert"]["folded"] == 1 and got_wl[-1]["alert"]["last_seen_checkpoint"] == "SD-LY-001"


async def test_an_escalation_carries_the_commanders_notice_to_commander_consoles_only(hub):
    app, console = hub
    now = time.time() + 3600
    due = alert("due", now - 2 * AFTER_S)
    await app[keys.STORE].run(lambda db: app[keys.STORE].insert_alert(db, due))
    cmd, ana = await console("sun.cmd"), await console("li.ana")
    for ws in (cmd, ana):
        await frames_until(ws, "alert", "due")
    assert [f["alert_id"] for f in await escalate_once(app, now)] == ["due"]
    to_cmd = (await frames_until(cmd, "escalation", "due"))[-1]["escalation"]
    to_ana = (await frames_until(ana, "escalation", "due"))[-1]["escalation"]
    assert to_cmd["commander_notice"] is True
    assert "commander_notice" not in to_ana
    # a commander console connecting later gets the notice with the catch-up too
    again = await console("sun.cmd")
    assert (await frames_until(again, "escalation", "due"))[-1]["escalation"]["commander_notice"] is True


async def test_an_escalation_reaches_a_webhook_that_takes_escalations_once_also_after_a_restart(tmp_path):
    """The commander's pager: an escalation POSTed with its own key; one the hub recorded but never sent
    (it stopped first) goes out after the restart, from the audit trail."""
    import asyncio
    import contextlib

    from central.alerts.webhooks import WebhookSender
    from central.record.sqlite import escalation
    from central.record.sqlite.store import HubStore
    from central.settings import WebhookSettings
    from tests.support import until
    from tests.test_webhooks import Receiver

    store = HubStore(tmp_path / "hub.db")
    store.start()
    receiver = Receiver()
    now = time.time()
    try:
        async with receiver.serve() as url:
            hooks = [
                WebhookSettings(name="pager", url=url, escalations=True, lists=["l"], retry_min_s=0.05),
                WebhookSettings(name="sms", url=url, lists=["l"], retry_min_s=0.05),
            ]
            for a in (alert("due", now - 2 * AFTER_S), alert("later", now - 2 * AFTER_S)):
                await store.run(lambda db, a=a: store.insert_alert(db, a))
            # "later" was escalated (recorded) just before a stop: nobody was told yet
            frames = await store.run(lambda db: escalation.escalate_due(db, AFTER_S, now))
            assert {f["alert_id"] for f in frames} == {"due", "later"}
            sender = WebhookSender(store, hooks)
            task = asyncio.create_task(sender.run())
            try:
                sender.offer_escalation(next(f for f in frames if f["alert_id"] == "due"))
                assert (
                    await sender.resume() >= 1
                )  # picks up "later" (and "due", not yet recorded, at most once more)
                await until(
                    lambda: (
                        {k for k, _, b in receiver.requests if b["type"] == "escalation"}
                        >= {"esc:due", "esc:later"}
                    ),
                    what="both escalations at the pager",
                )
                await until(lambda: sender.hooks["pager"].queue.empty(), what="the pager's queue drained")
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            esc = [(k, b["escalation"]) for k, _, b in receiver.requests if b["type"] == "escalation"]
            assert all(e["plate_read"] == "鲁Q8K2L1" and e["checkpoint"] == "SD-DZ-001" for _, e in esc)
            # after a second restart nothing is sent again: both are recorded as delivered
            again = WebhookSender(store, hooks)
            await until(
                lambda: (
                    len(
                        store.read(
                            lambda db: db.conn.execute(
                                "SELECT alert_id FROM webhook_deliveries WHERE hook='pager'"
                            ).fetchall()
                        )
                    )
                    >= 2
                ),
                what="deliveries recorded",
            )
            await again.resume()
            for name in ("pager", "sms"):
                queued = list(again.hooks[name].queue._queue)  # noqa: SLF001
                assert not [d.key for d in queued if d.key.startswith("esc:")], name
    finally:
        store.stop()
