"""Composition root of the hub: everything is built here from one HubSettings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from protocols.feed import FeedChange, ListUpsert, PermitRules
from protocols.matching import ListAction, PermitRule, Watchlist
from protocols.messages import CheckpointStatus
from runtime.fanout import Fanout
from runtime.web import Principal, Sessions, add_login_routes, close_sockets, make_middlewares, token_matches

from . import keys, web_lists
from . import web as hub_web
from .alerts import AlertDispatcher
from .importer import ImportRejected, diff_entries
from .ingest import Ingest
from .lists import ListService, get_list, list_entries
from .mqtt import HubLink
from .settings import HubSettings
from .store import HubStore
from .upstream import UpstreamError, UpstreamSource
from .watchlists import HubWatchlists, changes_for, load_files
from .webhooks import WebhookSender

log = logging.getLogger(__name__)


def create_app(settings: HubSettings) -> web.Application:
    """Build the hub web app; the store, watchlists and broker link start with the app."""
    store = HubStore(settings.data_path / "hub.db", busy_timeout_s=settings.store.busy_timeout_s)
    console = Fanout()
    sessions = Sessions(secrets.token_bytes(32))
    app = web.Application(client_max_size=settings.http.max_body_bytes,
                          middlewares=make_middlewares(hub_web.POLICY, sessions, _machine_tokens(settings)))
    app[keys.SETTINGS] = settings
    app[keys.STORE] = store
    app[keys.CONSOLE] = console
    app[keys.CHECKPOINTS] = {}
    app[keys.SOCKETS] = set()
    app[keys.WATCHLISTS] = HubWatchlists()

    m = settings.mqtt
    link_ref: list[HubLink] = []

    def publish(topic: str, payload: bytes, qos: int = 1, retain: bool = False, on_delivered=None) -> None:  # noqa: ANN001
        link_ref[0].publish(topic, payload, qos=qos, retain=retain, on_delivered=on_delivered)

    webhooks = WebhookSender(store, settings.webhooks)
    dispatcher = AlertDispatcher(store, publish, console, webhooks)
    ingest = Ingest(store, app[keys.WATCHLISTS], publish=lambda topic, payload: publish(topic, payload),
                    on_alerts=dispatcher.submit_threadsafe,
                    on_status=lambda status, offset: _on_status_threadsafe(app, status, offset),
                    max_skew_s=settings.clock.max_skew_s)
    link = HubLink(m.url, m.client_id, m.username, m.password, m.keepalive_s,
                   on_message=ingest.handle,
                   reconnect_min_s=m.reconnect_min_s, reconnect_max_s=m.reconnect_max_s,
                   on_connected=lambda: app[keys.LISTS].publish_version(app[keys.WATCHLISTS].index.feed_version))
    link_ref.append(link)
    app[keys.LISTS] = ListService(store, app[keys.WATCHLISTS], publish)
    app[keys.INGEST] = ingest
    app[keys.DISPATCHER] = dispatcher
    app[keys.LINK] = link

    add_login_routes(app, sessions, hub_web.console_login(settings.console.token), secure=False,
                     on_login=hub_web.audit_login)
    hub_web.add_routes(app)
    web_lists.add_routes(app)
    app[keys.UPSTREAM] = [UpstreamSource(u) for u in settings.upstream]
    app.cleanup_ctx.extend([_store, _watchlists, _dispatch, _broker, _upstream])
    app.on_shutdown.append(_close_sockets)
    return app


def _machine_tokens(settings: HubSettings):  # noqa: ANN202 - returns the token checker
    def check(token: str) -> Principal | None:
        if token_matches(token, settings.feed.token):
            return Principal("edge", "edge")
        if token_matches(token, settings.metrics.token):
            return Principal("metrics", "metrics")
        return None

    return check


def _on_status_threadsafe(app: web.Application, status: CheckpointStatus, offset: float | None) -> None:
    app[keys.LOOP].call_soon_threadsafe(_on_status, app, status, offset)


def _on_status(app: web.Application, status: CheckpointStatus, offset: float | None) -> None:
    """A checkpoint's status changed: keep it for the console and tell the live consoles.

    The clock offset comes only from live status messages (a retained one is old by nature), so an
    unknown offset keeps the last one measured."""
    skew = app[keys.SETTINGS].clock.max_skew_s
    previous = app[keys.CHECKPOINTS].get(status.checkpoint, {})
    if offset is None:
        offset = previous.get("clock_offset_s")  # type: ignore[assignment]
    entry = {"checkpoint": status.checkpoint, "online": status.online, "outbox_depth": status.outbox_depth,
             "oldest_unacked_s": status.oldest_unacked_s, "epoch": status.epoch, "software": status.software,
             "clock_offset_s": None if offset is None else round(offset, 3),
             "clock_suspect": offset is not None and abs(offset) > skew,
             "dropped_reads": status.dropped_reads or 0, "feed_version": status.feed_version}
    app[keys.CHECKPOINTS][status.checkpoint] = entry
    app[keys.CONSOLE].publish({"type": "checkpoint", "checkpoint": entry})


async def _store(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.STORE]
    await asyncio.to_thread(store.start)
    app[keys.BASE_COUNTS] = await asyncio.to_thread(store.counts)
    for row in await asyncio.to_thread(store.checkpoints):
        offset = row["clock_offset_s"]
        app[keys.CHECKPOINTS][row["checkpoint"]] = {
            "checkpoint": row["checkpoint"], "online": row["online"], "epoch": row["epoch"],
            "clock_offset_s": offset, "dropped_reads": row["dropped_reads"],
            "clock_suspect": offset is not None and abs(offset) > app[keys.SETTINGS].clock.max_skew_s}
    app[keys.LOOP] = asyncio.get_running_loop()
    yield
    await asyncio.to_thread(store.stop)


async def _watchlists(app: web.Application) -> AsyncIterator[None]:
    lists = app[keys.LISTS]
    count = await asyncio.to_thread(lists.load)
    files = app[keys.SETTINGS].watchlists.csv
    if files:
        # Configured files are sources like any other: their lists are made to hold exactly their rows.
        loaded = await asyncio.to_thread(load_files, files)
        current = await asyncio.to_thread(app[keys.STORE].read, lambda db: {
            lid: {e.entry_id: e for e in list_entries(db, lid)} for lid in loaded.lists})
        changes = changes_for(loaded, current)
        applied = await lists.apply(changes, actor="config")
        count = len(app[keys.WATCHLISTS])
        log.info("watchlist files applied: feed version %d", applied.version)
    rules = [PermitRule(rule_id=p.rule_id, list_id=p.list_id, colours=frozenset(p.colours),
                        vehicle_types=frozenset(p.vehicle_types), permit_name=p.permit_name,
                        action=ListAction(p.action), priority=p.priority) for p in app[keys.SETTINGS].permits]
    if rules != app[keys.WATCHLISTS].permit_rules:
        await lists.apply([PermitRules(rules=rules)], actor="config")
    log.info("%d watchlist entries in %d list(s)", count, len(app[keys.WATCHLISTS].lists))
    yield


async def _dispatch(app: web.Application) -> AsyncIterator[None]:
    dispatcher = app[keys.DISPATCHER]
    dispatcher.bind(asyncio.get_running_loop())
    marker = asyncio.create_task(dispatcher.run_marker(), name="alert-marker")
    assert dispatcher.webhooks is not None
    await dispatcher.webhooks.resume()
    hooks = asyncio.create_task(dispatcher.webhooks.run(), name="webhooks")
    await dispatcher.resume()
    yield
    for task in (marker, hooks):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _broker(app: web.Application) -> AsyncIterator[None]:
    link = app[keys.LINK]
    link.start()  # on every connect the link republishes the retained feed version
    yield
    await asyncio.to_thread(link.stop)


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(_poll_source(app, source), name=f"upstream-{source.settings.name}")
             for source in app[keys.UPSTREAM]]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _poll_source(app: web.Application, source: UpstreamSource) -> None:
    """Poll one upstream source; each change it brings is applied as one feed version."""
    name, list_id = source.settings.name, source.settings.list_id
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                result = await source.poll(session)
                if result is not None:
                    current = await asyncio.to_thread(app[keys.STORE].read, lambda db: (
                        get_list(db, list_id), {e.entry_id: e for e in list_entries(db, list_id)}))
                    changes: list[FeedChange] = [] if current[0] else [ListUpsert(watchlist=Watchlist(
                        list_id=list_id, name=name, source=name))]
                    changes += diff_entries(current[1], result.entries)
                    if changes:
                        applied = await app[keys.LISTS].apply(changes, actor=f"upstream:{name}")
                        log.info("upstream %s: %d change(s), feed version %d", name, len(changes), applied.version)
            except (UpstreamError, ImportRejected) as exc:
                log.warning("upstream %s: %s", name, exc)
            except Exception:
                # Not applied: forget the fingerprint so the next poll tries again.
                source.forget()
                log.exception("upstream %s: change not applied", name)
            await asyncio.sleep(source.settings.interval_s)


async def _close_sockets(app: web.Application) -> None:
    await close_sockets(app[keys.SOCKETS])
