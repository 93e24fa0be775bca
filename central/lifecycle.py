"""What the hub runs while it lives, once ``central.app.create_app`` has built it: the cleanup contexts
that start and stop its parts (the store, the watchlists, dispatch, the other hubs, the broker link, the
VIID platforms, the console) and the loops of the work that runs once among the hubs (retention,
escalation, redispatch, upstream polls), which ``add_duties`` gives the duty keeper."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from central.alerts import escalation
from central.alerts.relay import AlertRelay
from central.ingest.routing import unknown_checkpoints
from central.ingest.share import EventShare
from central.ingest.viid import ViidSubscriber
from central.intel.clones import recent_reads
from central.intel.ring import load_ring, ring_path
from central.record import duties, retention
from central.record.duties import DutyKeeper, DutyLost
from central.record.tx import StoreUnavailable, Tx
from central.settings import HubSettings
from central.watchlists.files import ImportRejected, diff_entries
from central.watchlists.follow import ListFollower
from central.watchlists.index import changes_for, load_files
from central.watchlists.upstream import UpstreamError, UpstreamSource
from central.web import keys
from central.web import users as web_users
from protocols.feed import FeedChange, ListUpsert, PermitRules
from protocols.matching import ListAction, PermitRule, Watchlist
from protocols.messages import CheckpointStatus
from runtime.background import background, poll, stop
from runtime.web import close_sockets

log = logging.getLogger(__name__)


def add_duties(app: web.Application, keeper: DutyKeeper) -> None:
    """The work that must run once among the hubs sharing a database (docs/architecture.md, "Work that
    runs once"); alone on SQLite this hub holds all of it from its start."""
    # With other hubs on the store, what they committed is found there, not offered by this hub's own parts.
    poll_s = duties.POLL_S if keeper.store.shared else None
    sender = app[keys.DISPATCHER].webhooks
    assert sender is not None
    keeper.add(duties.RETENTION, lambda: _purge_loop(app))
    keeper.add(duties.ESCALATION, lambda: _escalate_loop(app))
    if sender.hooks:
        keeper.add(duties.WEBHOOKS, lambda: sender.run_duty(poll_s))
    keeper.add(duties.FEED, lambda: app[keys.LISTS].feed.run(poll_s))
    keeper.add(duties.EVIDENCE, lambda: app[keys.EVIDENCE].run_duty(lambda: _online(app), poll_s))
    if keeper.store.shared:
        # Alone, a hub's restart resends what it left undispatched (AlertDispatcher.resume); with others,
        # a hub that is gone is told by its life duty, and its alerts are taken over by the redispatch duty.
        keeper.add(duties.life(keeper.hub), _alive)
        keeper.add(duties.REDISPATCH, lambda: _redispatch_loop(app))
    for source in app[keys.UPSTREAM]:
        keeper.add(duties.upstream(source.settings.name), lambda source=source: _poll_source(app, source))


def run_parts(app: web.Application) -> None:
    """The hub's parts as cleanup contexts, started in this order and stopped in the reverse, and the
    sockets closed at shutdown."""
    app.cleanup_ctx.extend(
        [
            _store,
            background("clone-warm", _warm_clones),
            _watchlists,
            background("feed-files", lambda app: app[keys.FEED_FILES].run()),
            _dispatch,
            _other_hubs,
            _broker,
            _viid,
            _console,
            background("duties", lambda app: app[keys.DUTIES].run()),
        ]
    )
    app.on_shutdown.append(_close_sockets)


def on_status(app: web.Application, status: CheckpointStatus, offset: float | None) -> None:
    """A checkpoint's status changed: keep it for the console and tell the live consoles.

    The clock offset comes only from live status messages (a retained one is old by nature), so an
    unknown offset keeps the last one measured."""
    skew = app[keys.SETTINGS].clock.max_skew_s
    previous = app[keys.CHECKPOINTS].get(status.checkpoint, {})
    if offset is None:
        offset = previous.get("clock_offset_s")  # type: ignore[assignment]
    entry = {
        "checkpoint": status.checkpoint,
        "online": status.online,
        "outbox_depth": status.outbox_depth,
        "oldest_unacked_s": status.oldest_unacked_s,
        "epoch": status.epoch,
        # A last will says less than a live status: what it leaves out stays as last known.
        "software": status.software or previous.get("software"),
        "clock_offset_s": None if offset is None else round(offset, 3),
        "clock_suspect": offset is not None and abs(offset) > skew,
        "dropped_reads": status.dropped_reads or 0,
        "feed_version": status.feed_version
        if status.feed_version is not None
        else previous.get("feed_version"),
        "stale_cameras": list(status.stale_cameras or []),
        "reads_per_minute": app[keys.INGEST].rates.per_minute(status.checkpoint),
    }
    if entry == previous:
        return  # the same status again (this hub's own, read back from the store)
    app[keys.CHECKPOINTS][status.checkpoint] = entry
    if status.online and not previous.get("online"):
        app[keys.EVIDENCE].checkpoint_online(status.checkpoint)
    app[keys.CONSOLE].publish({"type": "checkpoint", "checkpoint": entry})


async def _store(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.STORE]
    await asyncio.to_thread(store.start)
    app[keys.BASE_COUNTS] = await asyncio.to_thread(store.counts)
    await asyncio.to_thread(store.read, app[keys.DIRECTORY].reload)
    refresher = asyncio.create_task(_refresh_directory(app), name="directory")
    for row in await asyncio.to_thread(store.checkpoints):
        offset = row["clock_offset_s"]
        last = row["status"] if isinstance(row["status"], dict) else {}
        app[keys.CHECKPOINTS][row["checkpoint"]] = {
            "checkpoint": row["checkpoint"],
            "online": row["online"],
            "epoch": row["epoch"],
            "clock_offset_s": offset,
            "dropped_reads": row["dropped_reads"],
            "clock_suspect": offset is not None and abs(offset) > app[keys.SETTINGS].clock.max_skew_s,
            # what the edge last said of itself: the console shows its software and feed version
            "software": last.get("software"),
            "feed_version": last.get("feed_version"),
            "stale_cameras": list(last.get("stale_cameras") or []),
        }
    app[keys.LOOP] = asyncio.get_running_loop()
    app[keys.EVIDENCE].bind(app[keys.LOOP])
    yield
    await stop(refresher)
    await asyncio.to_thread(store.stop)


async def _refresh_directory(app: web.Application, every_s: float = 5.0) -> None:
    """Pick up account changes made outside this process (``cordon user ...`` on the same store)."""
    store, directory = app[keys.STORE], app[keys.DIRECTORY]
    signature = None
    while True:
        try:
            now = await asyncio.to_thread(
                store.read,
                store.users.signature,
            )
            if now != signature:
                await asyncio.to_thread(store.read, directory.reload)
                if signature is not None:  # changed by someone else (cordon user): tell the edges
                    await asyncio.to_thread(web_users.publish_accounts, app)
                signature = now
        except StoreUnavailable as exc:  # health says so already; no traceback every few seconds
            log.warning("could not refresh the accounts: %s", exc)
        except Exception:
            log.exception("could not refresh the accounts")
        await asyncio.sleep(every_s)


async def _watchlists(app: web.Application) -> AsyncIterator[None]:
    lists = app[keys.LISTS]
    count = await asyncio.to_thread(lists.load)
    files = app[keys.SETTINGS].watchlists.csv
    if files:
        # Configured files are sources like any other: their lists are made to hold exactly their rows.
        loaded = await asyncio.to_thread(load_files, files)
        current = await asyncio.to_thread(
            app[keys.STORE].read,
            lambda tx: {
                lid: {e.entry_id: e for e in app[keys.STORE].watchlists.list_entries(tx, lid)}
                for lid in loaded.lists
            },
        )
        changes = changes_for(loaded, current)
        applied = await lists.apply(changes, actor="config")
        count = len(app[keys.WATCHLISTS])
        log.info("watchlist files applied: feed version %d", applied.version)
    rules = [
        PermitRule(
            rule_id=p.rule_id,
            list_id=p.list_id,
            colours=frozenset(p.colours),
            vehicle_types=frozenset(p.vehicle_types),
            permit_name=p.permit_name,
            action=ListAction(p.action),
            priority=p.priority,
        )
        for p in app[keys.SETTINGS].permits
    ]
    if rules != app[keys.WATCHLISTS].permit_rules:
        await lists.apply([PermitRules(rules=rules)], actor="config")
    log.info("%d watchlist entries in %d list(s)", count, len(app[keys.WATCHLISTS].lists))
    yield


async def _dispatch(app: web.Application) -> AsyncIterator[None]:
    dispatcher = app[keys.DISPATCHER]
    dispatcher.bind(asyncio.get_running_loop())
    # Every hub marks the alerts it dispatched itself; webhook deliveries are a duty (add_duties).
    marker = asyncio.create_task(dispatcher.run_marker(), name="alert-marker")
    await dispatcher.resume()
    yield
    await stop(marker)


async def _other_hubs(app: web.Application) -> AsyncIterator[None]:
    """What the other hubs on the store do that this hub's consoles and index must follow: their alerts
    (``AlertRelay``) and their changes to the lists (``ListFollower``); alone, only this hub's own."""
    relay = AlertRelay(app[keys.STORE], app[keys.DISPATCHER], app[keys.SETTINGS].console.escalate_after_s)
    await relay.start()
    lists = app[keys.LISTS]
    follower = ListFollower(
        app[keys.STORE], app[keys.WATCHLISTS], on_version=lambda v: [hook(v) for hook in lists.on_version]
    )
    tasks = [
        asyncio.create_task(relay.run(), name="alert-relay"),
        asyncio.create_task(follower.run(), name="list-follower"),
    ]
    if app[keys.DUTIES].store.shared:
        tasks.append(asyncio.create_task(_follow_checkpoints(app), name="checkpoint-follower"))
    yield
    for task in tasks:
        await stop(task)


#: With other hubs on the store: how often a hub says its read rates there, reads the others', and reads the
#: checkpoints' statuses every hub stored (a status that reached another hub reaches this hub's consoles).
SHARE_S = 2.0


async def _follow_checkpoints(app: web.Application, every_s: float = SHARE_S) -> None:
    """Keep this hub's view of the checkpoints (``app[CHECKPOINTS]``, the map's read rates) with what the
    other hubs on the store took: their read rates, and statuses stored since this hub last looked."""
    store, rates = app[keys.STORE], app[keys.INGEST].rates
    seen: dict[str, Any] = {}
    first = True

    async def step() -> bool:
        nonlocal first
        rates.others = await asyncio.to_thread(store.share_rates, rates.own(), time.time(), every_s * 3)
        for row in await asyncio.to_thread(store.checkpoints):
            said = row["status"]
            if not isinstance(said, dict) or seen.get(row["checkpoint"]) == said:
                continue
            seen[row["checkpoint"]] = said
            if not first:  # at the start this hub's view was loaded from the same rows
                try:
                    status = msgspec.convert(said, CheckpointStatus)
                except msgspec.ValidationError:
                    continue
                on_status(app, status, row["clock_offset_s"])
        first = False
        return False

    await poll(step, every_s, log, "following the checkpoints the other hubs took")


async def _broker(app: web.Application) -> AsyncIterator[None]:
    link = app[keys.LINK]
    link.start()  # on every connect the link republishes the retained feed version
    share = None
    if app[keys.SETTINGS].mqtt.share_group:
        # One of several hubs: out of the shared events while its store cannot commit them; alone, the
        # broker's persistent session keeps them for it (central/ingest/share.py).
        share = asyncio.create_task(EventShare(app[keys.STORE], link.take_events).run(), name="event-share")
    yield
    if share is not None:
        await stop(share)
    await asyncio.to_thread(link.stop)


async def _viid(app: web.Application) -> AsyncIterator[None]:
    """Each 视图库's registration and subscription, kept alive (central/ingest/viid.py)."""
    tasks = [
        asyncio.create_task(ViidSubscriber(p).run(), name=f"viid-{p.settings.name}")
        for p in app[keys.VIID_PLATFORMS]
    ]
    yield
    for task in tasks:
        await stop(task)


async def _poll_source(app: web.Application, source: UpstreamSource) -> None:
    """Poll one upstream source (its duty); each change it brings is applied as one feed version."""
    name, list_id = source.settings.name, source.settings.list_id
    # Another hub may have applied the source since this one last polled it: compare the whole list again.
    source.forget()
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                result = await source.poll(session)
                if result is not None:
                    current = await asyncio.to_thread(
                        app[keys.STORE].read,
                        lambda tx: (
                            app[keys.STORE].watchlists.get_list(tx, list_id),
                            {e.entry_id: e for e in app[keys.STORE].watchlists.list_entries(tx, list_id)},
                        ),
                    )
                    changes: list[FeedChange] = (
                        []
                        if current[0]
                        else [ListUpsert(watchlist=Watchlist(list_id=list_id, name=name, source=name))]
                    )
                    changes += diff_entries(current[1], result.entries)
                    if changes:
                        applied = await app[keys.LISTS].apply(changes, actor=f"upstream:{name}")
                        log.info(
                            "upstream %s: %d change(s), feed version %d", name, len(changes), applied.version
                        )
            except (UpstreamError, ImportRejected) as exc:
                log.warning("upstream %s: %s", name, exc)
            except Exception:
                # Not applied: forget the fingerprint so the next poll tries again.
                source.forget()
                log.exception("upstream %s: change not applied", name)
            await asyncio.sleep(source.settings.interval_s)


async def _warm_clones(app: web.Application) -> None:
    """After a restart the clone index learns the record's recent hours (ingest is not held up)."""
    check = app[keys.INGEST].clones
    hours = app[keys.SETTINGS].clones.warm_hours
    if check is None or hours <= 0:
        return
    since = time.time() - hours * 3600.0
    record = app[keys.STORE].record
    plates = await asyncio.to_thread(lambda: check.warm_from(recent_reads(record, since)))
    log.info("clone index warmed from the record's last %.1f h: %d plates", hours, plates)


async def _purge_loop(app: web.Application) -> None:
    """Least data: the retention rules run now and then (central/record/retention.py; the retention duty)."""
    settings, store, keeper = app[keys.SETTINGS].record, app[keys.STORE], app[keys.DUTIES]

    def fence(tx: Tx) -> None:
        keeper.store.fence(tx, duties.RETENTION)

    async def run() -> None:
        report = await asyncio.to_thread(
            lambda: retention.purge(store, settings, time.time(), hub=keeper.hub, fence=fence)
        )
        app[keys.PURGED_DAYS].extend(report.days)

    await _duty_every("retention run", settings.purge_interval_s, run)


async def _duty_every(what: str, every_s: float, run: Callable[[], Awaitable[None]]) -> None:
    """Run a duty's ``run`` for ever, ``every_s`` apart. A lost duty (its commit refused by the fence) or a
    store away is said in one line, anything else with its traceback; the next turn tries again."""
    while True:
        try:
            await run()
        except DutyLost as exc:
            log.warning("%s not committed: %s", what, exc)
        except StoreUnavailable as exc:
            log.warning("%s failed; trying again later: %s", what, exc)
        except Exception:
            log.exception("%s failed; trying again later", what)
        await asyncio.sleep(every_s)


async def _console(app: web.Application) -> AsyncIterator[None]:
    """The console's map (a bad checkpoints file stops start-up, naming it)."""
    app[keys.RING] = await asyncio.to_thread(load_ring, ring_path(app[keys.SETTINGS].console.checkpoints_csv))
    unknown = unknown_checkpoints(app[keys.SETTINGS].routing, {c["checkpoint"] for c in app[keys.RING]})
    if unknown:
        log.warning(
            "[routing] names checkpoints that are not on the ring (console.checkpoints_csv): %s",
            ", ".join(unknown),
        )
    _warn_if_the_days_are_cut_elsewhere(app[keys.SETTINGS])
    yield


def _warn_if_the_days_are_cut_elsewhere(settings: HubSettings) -> None:
    """The console shows times in ``time_zone``; the record and the statistics cut days at
    ``record.utc_offset``. Different offsets would make a day's figures disagree with the console's clock."""
    zone = zoneinfo.ZoneInfo(settings.time_zone)
    offset = dt.datetime.now(zone).utcoffset() or dt.timedelta(0)
    sign, text = ("-" if offset < dt.timedelta(0) else "+"), settings.record.utc_offset
    minutes = abs(int(offset.total_seconds())) // 60
    if f"{sign}{minutes // 60:02d}:{minutes % 60:02d}" != text:
        log.warning(
            "time_zone %s is at UTC%s%02d:%02d now but record.utc_offset is %s: the console's clock and "
            "the record's days disagree",
            settings.time_zone,
            sign,
            minutes // 60,
            minutes % 60,
            text,
        )


async def _online(app: web.Application) -> list[str]:
    """The checkpoints whose status is online: as every hub stored it, with other hubs on the store (the
    status may have reached another hub); alone, as this hub has it."""
    if app[keys.DUTIES].store.shared:
        rows = await asyncio.to_thread(app[keys.STORE].checkpoints)
        return [r["checkpoint"] for r in rows if r["online"]]
    return [cp for cp, entry in app[keys.CHECKPOINTS].items() if entry.get("online")]


async def _alive() -> None:
    """This hub's life duty: held while the hub lives, nothing to do."""
    await asyncio.Event().wait()


async def _redispatch_loop(app: web.Application) -> None:
    """Dispatch the alerts hubs that are gone committed and left undispatched (the redispatch duty)."""
    after_s = app[keys.SETTINGS].cluster.redispatch_after_s
    keeper, dispatcher = app[keys.DUTIES], app[keys.DISPATCHER]

    async def step() -> bool:
        try:
            return (
                await dispatcher.take_over(after_s, lambda tx: keeper.store.fence(tx, duties.REDISPATCH)) > 0
            )
        except DutyLost as exc:
            log.warning("alerts not taken over: %s", exc)
            return False

    await poll(step, duties.POLL_S, log, "taking over the alerts of hubs that are gone")


async def _escalate_loop(app: web.Application) -> None:
    """Escalate intercept alerts left without an outcome: audited once, then told to every console (the
    escalation duty)."""
    after_s = app[keys.SETTINGS].console.escalate_after_s

    async def run() -> None:
        for frame in await escalate_once(app):
            log.warning(
                "alert %s at %s escalated: no outcome after %.0f s",
                frame["alert_id"],
                frame["checkpoint"],
                after_s,
            )

    await _duty_every("escalation check", escalation.check_interval(after_s), run)


async def escalate_once(app: web.Application, now: float | None = None) -> list[dict[str, object]]:
    """One escalation pass: audit what is due (one writer transaction, fenced on the escalation duty, so
    two hubs never escalate one alert), then publish the frames."""
    after_s = app[keys.SETTINGS].console.escalate_after_s
    store, keeper = app[keys.STORE], app[keys.DUTIES]

    def job(tx: Tx) -> list[dict[str, object]]:
        keeper.store.fence(tx, duties.ESCALATION)
        return store.escalate_due(tx, after_s, now)

    frames = await store.run(job)
    for frame in frames:
        app[keys.DISPATCHER].give({"type": "escalation", "escalation": frame})
        if app[keys.DISPATCHER].webhooks is not None:
            app[keys.DISPATCHER].webhooks.offer_escalation(frame)
    return frames


async def _close_sockets(app: web.Application) -> None:
    await close_sockets(app[keys.SOCKETS])
