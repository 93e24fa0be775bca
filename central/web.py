"""The hub's HTTP side: health, the command console, its live feed, and the read APIs."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from runtime.metrics import CONTENT_TYPE, Metric, render
from runtime.web import (
    LOGIN_POLICY,
    Access,
    Principal,
    json_error,
    principal_of,
    token_matches,
    websocket_feed,
)

from . import keys, web_lists
from .readstore import PatternError

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 200

STATIC = Path(__file__).with_name("static")

#: Every route's access rule; a route missing here is refused (tests/test_routes_policy.py).
POLICY: dict[str, Access] = {
    **LOGIN_POLICY,
    "console": Access.SESSION,
    "static": Access.PUBLIC,
    "health": Access.PUBLIC,
    "alerts": Access.SESSION,
    "checkpoints": Access.SESSION,
    "dead_letters": Access.SESSION,
    "reads": Access.SESSION,
    "live": Access.SESSION,
    "metrics": Access.METRICS,
}
POLICY.update(web_lists.POLICY)


def console_login(expected_code: str):  # noqa: ANN201 - returns a checker
    def check(code: str) -> Principal | None:
        return Principal("console", "commander") if token_matches(code, expected_code) else None

    return check


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


async def console(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "console.html")


def checkpoints_online(app: web.Application) -> int:
    return sum(1 for c in app[keys.CHECKPOINTS].values() if c.get("online"))


async def health(request: web.Request) -> web.Response:
    app = request.app
    ingest, link, store = app[keys.INGEST], app[keys.LINK], app[keys.STORE]
    reasons = []
    if not link.connected:
        reasons.append(f"broker link {link.state.value}" + (f": {link.last_error}" if link.last_error else ""))
    if store.writer_error:
        reasons.append(f"store writer: {store.writer_error}")
    base = app[keys.BASE_COUNTS]
    return _json({
        "status": "degraded" if reasons else "ok",
        "reasons": reasons,
        "checkpoints_online": checkpoints_online(app),
        "reads_total": base.reads + ingest.metrics.reads,
        "alerts_total": base.alerts + ingest.metrics.alerts,
        "dead_letters_total": base.dead_letters + ingest.metrics.dead_letters,
        "watchlist_entries": len(app[keys.WATCHLISTS]),
    })


def _limit(request: web.Request, default: int = 100) -> int:
    try:
        value = int(request.query.get("limit", default))
    except ValueError:
        raise json_error(web.HTTPBadRequest, "limit must be a whole number") from None
    return max(1, min(value, 1000))


async def alerts(request: web.Request) -> web.Response:
    store = request.app[keys.STORE]
    return _json({"alerts": await asyncio.to_thread(store.recent_alerts, _limit(request))})


async def checkpoints(request: web.Request) -> web.Response:
    return _json({"checkpoints": await asyncio.to_thread(request.app[keys.STORE].checkpoints)})


async def dead_letters(request: web.Request) -> web.Response:
    store = request.app[keys.STORE]
    before = request.query.get("before_id")
    try:
        before_id = int(before) if before else None
    except ValueError:
        raise json_error(web.HTTPBadRequest, "before_id must be a whole number") from None
    return _json({"dead_letters": await asyncio.to_thread(store.dead_letters, _limit(request), before_id)})


def _moment(text: str | None, name: str, default: float) -> float:
    """Unix seconds or ISO 8601 with an offset."""
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise json_error(web.HTTPBadRequest, f"{name} must be unix seconds or ISO 8601 with an offset") from None
        if moment.tzinfo is None:
            raise json_error(web.HTTPBadRequest, f"{name} needs a UTC offset (e.g. +08:00)") from None
        value = moment.timestamp()
    if not math.isfinite(value):
        raise json_error(web.HTTPBadRequest, f"{name} must be a finite time")
    return value


async def reads(request: web.Request) -> web.Response:
    """Search the record: ``?plate=`` (exact) or ``?pattern=`` (``*`` any run, ``?`` one character),
    within ``since``..``until`` (default the last day), with a ``reason`` that is logged."""
    q, app = request.query, request.app
    plate, pattern = q.get("plate", "").strip(), q.get("pattern", "").strip()
    if bool(plate) == bool(pattern):
        raise json_error(web.HTTPBadRequest, "give exactly one of plate (exact) and pattern (partial, * and ?)")
    reason = q.get("reason", "").strip()
    if not reason:
        raise json_error(web.HTTPBadRequest, "reason is required: every search of the record is logged with it")
    if len(reason) > MAX_REASON_CHARS:
        raise json_error(web.HTTPBadRequest, f"reason is longer than {MAX_REASON_CHARS} characters")
    until = _moment(q.get("until"), "until", time.time())
    since = _moment(q.get("since"), "since", until - 86400)
    if since > until:
        raise json_error(web.HTTPBadRequest, "since is after until")
    max_days = app[keys.SETTINGS].record.search_max_days
    if until - since > max_days * 86400:
        raise json_error(web.HTTPBadRequest, f"a search spans at most {max_days} days")
    limit = _limit(request, 500)
    record = app[keys.STORE].record
    principal = principal_of(request)
    log.info("record search by %s: %s=%r since=%s until=%s reason=%r",
             principal.name if principal else "?", "plate" if plate else "pattern", plate or pattern,
             round(since), round(until), reason)
    try:
        if plate:
            found = await asyncio.to_thread(record.search_exact, plate, since, until, limit)
        else:
            found = await asyncio.to_thread(record.search_pattern, pattern, since, until, limit)
    except PatternError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    return _json({"reads": found.reads, "truncated": found.truncated, "days_searched": found.days,
                  "since": since, "until": until})


async def live(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    recent = await asyncio.to_thread(app[keys.STORE].recent_alerts, app[keys.SETTINGS].console.recent_alerts)
    first: list[Any] = [{"type": "hello", "checkpoints": list(app[keys.CHECKPOINTS].values())}]
    first += [{"type": "alert", "alert": a} for a in reversed(recent)]
    return await websocket_feed(request, app[keys.CONSOLE], first, lambda f: msgspec.json.encode(f).decode(),
                                app[keys.SOCKETS])


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    m, link, store, wl = app[keys.INGEST].metrics, app[keys.LINK], app[keys.STORE], app[keys.WATCHLISTS]
    by_kind = Metric("cordon_hub_alerts_total", "counter", "alerts raised since start, by match kind")
    for kind, count in sorted(m.alerts_by_kind.items()):
        by_kind.add(count, kind=kind)
    text = render([
        Metric("cordon_hub_mqtt_messages_total", "counter", "MQTT messages received since start").add(m.messages),
        Metric("cordon_hub_reads_ingested_total", "counter", "reads committed since start").add(m.reads),
        Metric("cordon_hub_duplicates_total", "counter", "resent events already stored").add(m.duplicates),
        Metric("cordon_hub_batches_committed_total", "counter", "messages committed").add(m.batches_committed),
        Metric("cordon_hub_commit_seconds_total", "counter", "time from receipt to commit, summed").add(
            m.commit_seconds_total),
        Metric("cordon_hub_commit_failures_total", "counter", "commits that failed").add(m.commit_failures),
        Metric("cordon_hub_dead_letters_total", "counter", "payloads dead-lettered since start").add(m.dead_letters),
        by_kind,
        Metric("cordon_hub_alerts_dispatched_total", "counter", "alerts handed to console and edges").add(
            app[keys.DISPATCHER].dispatched),
        Metric("cordon_hub_connected_edges", "gauge", "checkpoints whose status is online").add(
            checkpoints_online(app)),
        Metric("cordon_hub_broker_connected", "gauge", "1 when the broker link is up").add(int(link.connected)),
        Metric("cordon_hub_store_writer_ok", "gauge", "1 when the last commit succeeded").add(
            int(store.writer_error is None)),
        Metric("cordon_hub_watchlist_version", "gauge", "field feed version").add(wl.index.feed_version),
        Metric("cordon_hub_watchlist_entries", "gauge", "entries in the hub's index").add(len(wl)),
        Metric("cordon_hub_record_days", "gauge", "days of plain reads held (one file each)").add(
            len(await asyncio.to_thread(store.record.days))),
        Metric("cordon_hub_record_days_purged_total", "counter", "days of plain reads purged since start").add(
            len(app[keys.PURGED_DAYS])),
    ])
    return web.Response(text=text, content_type=CONTENT_TYPE, charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", console, name="console")
    app.router.add_static("/static/", STATIC, name="static")
    app.router.add_get("/api/v1/health", health, name="health")
    app.router.add_get("/api/v1/alerts", alerts, name="alerts")
    app.router.add_get("/api/v1/checkpoints", checkpoints, name="checkpoints")
    app.router.add_get("/api/v1/dead-letters", dead_letters, name="dead_letters")
    app.router.add_get("/api/v1/reads", reads, name="reads")
    app.router.add_get("/api/v1/ws", live, name="live")
    app.router.add_get("/metrics", metrics, name="metrics")
