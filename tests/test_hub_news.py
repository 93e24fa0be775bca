"""The wake-up between hubs on one PostgreSQL store (central/record/postgresql/news.py): a hub that
committed alerts says so with ``NOTIFY`` after its commit, and the other hubs' relays read the store at
once instead of at their next poll."""

from __future__ import annotations

import asyncio
import threading
import time

from central.alerts.dispatch import AlertDispatcher
from central.alerts.relay import AlertRelay
from central.record.postgresql.store import PgStores
from runtime.fanout import Fanout
from tests.support import until
from tests.test_cluster_state import _alert


def test_a_hub_announcing_news_wakes_every_hub_listening_on_the_store(pg_dsn):
    a, b = PgStores(pg_dsn, hub="hub-a"), PgStores(pg_dsn, hub="hub-b")
    a.start()
    b.start()
    heard = threading.Event()
    try:
        b.listen_news(heard.set)
        assert heard.wait(10), "a listener is woken once on connecting (what it may have missed)"
        heard.clear()
        assert not heard.wait(0.3), "woken with nothing announced"
        b.announce_news()
        deadline = time.monotonic() + 10
        while b.news.announced < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b.news.announced == 1 and not heard.wait(0.5), "hub b woke itself with its own news"
        a.announce_news()
        assert heard.wait(10), "hub b never heard hub a's news"
    finally:
        a.stop()
        b.stop()


async def test_an_alert_another_hub_raised_reaches_this_hubs_consoles_without_waiting_for_the_poll(pg_dsn):
    """Hub b's relay polls once an hour here: only the wake-up can bring it hub a's alert."""
    a, b = PgStores(pg_dsn, hub="hub-a"), PgStores(pg_dsn, hub="hub-b")
    a.start()
    b.start()
    console = Fanout()
    frames: list[dict] = []

    async def send(frame: dict) -> None:
        frames.append(frame)

    dispatcher = AlertDispatcher(b, lambda *args, **kw: None, console)
    dispatcher.bind(asyncio.get_running_loop())
    relay = AlertRelay(b, dispatcher, escalate_after_s=300.0, poll_s=3600.0)
    watcher = asyncio.create_task(console.serve("console", send))
    await relay.start()
    running = asyncio.create_task(relay.run())
    try:
        await until(lambda: b.news.heard >= 1, what="hub b listening")
        alert = _alert("wake-1", "SD-DZ-001", time.time())
        assert await a.run(lambda tx: a.insert_alert(tx, alert))
        a.announce_news()
        await until(
            lambda: any(f.get("type") == "alert" and f["alert"].alert_id == "wake-1" for f in frames),
            timeout=20,
            what="hub a's alert at hub b's console",
        )
        assert relay.relayed == 1
    finally:
        for task in (running, watcher):
            task.cancel()
        await asyncio.gather(running, watcher, return_exceptions=True)
        a.stop()
        b.stop()
