"""Webhooks: each alert reaches each hook that takes it, with its id as the idempotency key, retried
through failures, and after a restart only what the hook has no record of is sent again."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiohttp import web

from central.alerts.webhooks import WebhookSender, wants
from central.record.sqlite.store import HubStore
from central.settings import WebhookSettings
from protocols.messages import SCHEMA_VERSION, Alert, AlertHit
from tests.support import free_port


def alert(aid: str, *, list_id: str = "drugs", action: str = "intercept", priority: int = 90) -> Alert:
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=aid,
        checkpoint="SD-DZ-001",
        epoch=1,
        seq=1,
        raised_at=time.time(),
        captured_at=time.time(),
        camera_id="c",
        plate_read="鲁Q8K2L1",
        hit=AlertHit(
            entry_id="e",
            entry_plate="鲁Q8K2L1",
            list_id=list_id,
            list_name="涉毒",
            action=action,
            priority=priority,
            kind="exact",
            score=1.0,
            explanation="x",
        ),
    )


class Receiver:
    """A real HTTP endpoint that fails the first ``fail_first`` requests with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[str, str, dict]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            (request.headers.get("Idempotency-Key", ""), request.headers.get("Authorization", ""), body)
        )
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503)
        return web.Response(status=204)

    @contextlib.asynccontextmanager
    async def serve(self):
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            yield f"http://127.0.0.1:{port}/hook"
        finally:
            await runner.cleanup()


def hook(url: str, **kw) -> WebhookSettings:
    return WebhookSettings(name="sms", url=url, token="t0k", retry_min_s=0.05, retry_max_s=0.2, **kw)


@pytest.fixture
def store(tmp_path):
    s = HubStore(tmp_path / "hub.db")
    s.start()
    yield s
    s.stop()


async def insert(store: HubStore, *alerts: Alert) -> None:
    await store.run(lambda db: [store.insert_alert(db, a) for a in alerts])


async def until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_filters_by_list_action_and_priority():
    h = WebhookSettings(name="h", url="http://x", lists=["drugs"], min_priority=50)
    assert wants(h, alert("A1"))
    assert not wants(h, alert("A2", list_id="stolen"))
    assert not wants(h, alert("A3", priority=10))
    assert not wants(h, alert("A4", action="covert")), "covert only goes to a hook that names it"
    assert wants(WebhookSettings(name="c", url="http://x", actions=["covert"]), alert("A5", action="covert"))


async def test_delivered_once_with_the_alert_id_as_idempotency_key_through_failures(store):
    receiver = Receiver(fail_first=2)
    async with receiver.serve() as url:
        sender = WebhookSender(store, [hook(url)])
        task = asyncio.create_task(sender.run())
        try:
            a, later = alert("A1"), alert("A2")
            await insert(store, a, later)
            sender.offer(a)
            sender.offer(a)  # dispatch offered twice (a resend): one delivery
            # A hook takes its deliveries in order: once the next alert is delivered, a second copy
            # of A1 would have been too.
            sender.offer(later)
            await until(lambda: sender.hooks["sms"].delivered == 2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    keys = [k for k, _, _ in receiver.requests]
    assert keys == ["A1", "A1", "A1", "A2"], (
        "two 503s retried, then taken; every attempt carries the same key"
    )
    assert receiver.requests[2][1] == "Bearer t0k"
    assert receiver.requests[2][2]["alert"]["alert_id"] == "A1"
    rows = store.read(
        lambda db: db.conn.execute(
            "SELECT hook, alert_id, outcome FROM webhook_deliveries WHERE alert_id = 'A1'"
        ).fetchall()
    )
    assert rows == [("sms", "A1", "delivered")]


async def test_after_a_restart_only_alerts_without_a_record_are_sent(store):
    receiver = Receiver()
    async with receiver.serve() as url:
        await insert(store, alert("A1"), alert("A2"), alert("A3", list_id="stolen"))
        await store.run(
            lambda db: db.conn.execute(
                "INSERT INTO webhook_deliveries (hook, alert_id, outcome, detail, at) VALUES ('sms','A1','delivered','',0)"
            )
        )
        sender = WebhookSender(store, [hook(url, lists=["drugs"])])  # the hub restarted: a new sender
        assert await sender.resume() == 1
        task = asyncio.create_task(sender.run())
        try:
            await until(lambda: sender.hooks["sms"].delivered == 1)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [k for k, _, _ in receiver.requests] == ["A2"], (
        "A1 was delivered before, A3 is not this hook's list"
    )


async def test_a_refusal_is_recorded_and_not_retried(store):
    async def refuse(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=400, text="bad")

    calls: list[int] = []
    app = web.Application()
    app.router.add_post("/hook", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sender = WebhookSender(store, [hook(f"http://127.0.0.1:{port}/hook")])
    task = asyncio.create_task(sender.run())
    try:
        a = alert("A9")
        await insert(store, a)
        sender.offer(a)
        # The refusal's record is written when the sender is done with the alert: no retry after it.
        await until(
            lambda: (
                store.read(
                    lambda db: db.conn.execute(
                        "SELECT outcome FROM webhook_deliveries WHERE alert_id = 'A9'"
                    ).fetchall()
                )
                == [("refused",)]
            )
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.cleanup()
    assert calls == [1] and sender.hooks["sms"].last_error == "HTTP 400"
    assert await WebhookSender(store, [hook("http://127.0.0.1:1/x")]).resume() == 0, (
        "a refusal is a record too"
    )
