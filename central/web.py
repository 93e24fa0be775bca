"""The hub's HTTP side: health, the command console, its live feed, and the read APIs."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from protocols.messages import Alert
from runtime.metrics import CONTENT_TYPE, Metric, render
from runtime.web import (
    LOGIN_POLICY,
    Access,
    Principal,
    Rule,
    json_error,
    principal_of,
    token_matches,
    websocket_feed,
)

from . import audit, escalation, keys, web_evidence, web_intel, web_lists, web_stats
from .platepattern import PatternError
from .users import (
    ACCESS_CODE_PRINCIPAL,
    ADMINS,
    AUDITORS,
    COVERT_ROLES,
    OPERATIONS,
    SEARCHERS,
    STAFF,
    Directory,
)

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 200
#: Reads older than this many days are searched only by these roles (UK ANPR practice), with a reason.
OLD_DATA_DAYS = 90
OLD_DATA_ROLES = frozenset({"commander", "admin"})

STATIC = Path(__file__).with_name("static")

#: Every route's access rule; a route missing here is refused (tests/test_routes_policy.py).
POLICY: dict[str, Rule] = {
    **LOGIN_POLICY,
    "console": STAFF,
    "static": Access.PUBLIC,
    "health": Access.PUBLIC,
    "alerts": STAFF,
    "checkpoints": STAFF,
    "ring": STAFF,
    "dead_letters": OPERATIONS,
    "gaps": STAFF,
    "kit_results": SEARCHERS,
    "webhooks": OPERATIONS,
    "audit": AUDITORS,
    "audit_export": AUDITORS,
    "users": ADMINS,
    "user_add": ADMINS,
    "user_change": ADMINS,
    "reads": SEARCHERS,
    "live": STAFF,
    "metrics": Access.METRICS,
    "openapi": Access.PUBLIC,
}
POLICY.update(web_lists.POLICY)
POLICY.update(web_intel.POLICY)
POLICY.update(web_evidence.POLICY)
POLICY.update(web_stats.POLICY)


def console_login(expected_code: str, directory: Directory):  # noqa: ANN201 - returns a checker
    """Accounts sign in with user name and password; the shared access code (``console.token``, for
    the demo and the first start, before any account exists) signs in as an admin session."""

    def check(credentials: Mapping[str, str]) -> Principal | None:
        if credentials.get("username"):
            return directory.authenticate(credentials["username"], credentials.get("password", ""))
        if token_matches(credentials.get("code"), expected_code):
            return Principal(ACCESS_CODE_PRINCIPAL, "admin")
        return None

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
        reasons.append(
            f"broker link {link.state.value}" + (f": {link.last_error}" if link.last_error else "")
        )
    if store.writer_error:
        reasons.append(f"store writer: {store.writer_error}")
    base = app[keys.BASE_COUNTS]
    return _json(
        {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "checkpoints_online": checkpoints_online(app),
            "reads_total": base.reads + ingest.metrics.reads,
            "alerts_total": base.alerts + ingest.metrics.alerts,
            "dead_letters_total": base.dead_letters + ingest.metrics.dead_letters,
            "watchlist_entries": len(app[keys.WATCHLISTS]),
        }
    )


def _limit(request: web.Request, default: int = 100) -> int:
    try:
        value = int(request.query.get("limit", default))
    except ValueError:
        raise json_error(web.HTTPBadRequest, "limit must be a whole number") from None
    return max(1, min(value, 1000))


#: Roles whose consoles get the shift commander's notice of an escalation.
COMMANDER_ROLES = frozenset({"commander"})


def sees_covert(request: web.Request) -> bool:
    principal = principal_of(request)
    return principal is not None and principal.role in COVERT_ROLES


def _restricted_list(app: web.Application, list_id: str) -> bool:
    watchlist = app[keys.WATCHLISTS].lists.get(list_id)
    return watchlist is not None and watchlist.restricted


def _privileged_only(app: web.Application, alert: Alert) -> bool:
    return alert.hit.action == "covert" or _restricted_list(app, alert.hit.list_id)


async def alerts(request: web.Request) -> web.Response:
    """Recent alerts; covert and restricted lists' hits only for the roles allowed to see them."""
    store, app = request.app[keys.STORE], request.app
    covert = sees_covert(request)
    found = await asyncio.to_thread(store.recent_alerts, _limit(request), covert)
    if not covert:
        found = [a for a in found if not _privileged_only(app, a)]
    outcomes = await asyncio.to_thread(store.outcomes, [a.alert_id for a in found])
    return _json({"alerts": found, "outcomes": outcomes})


async def checkpoints(request: web.Request) -> web.Response:
    return _json({"checkpoints": await asyncio.to_thread(request.app[keys.STORE].checkpoints)})


async def ring(request: web.Request) -> web.Response:
    """Where the checkpoints stand (``console.checkpoints_csv``), for the console's map."""
    return _json({"checkpoints": request.app[keys.RING]})


async def dead_letters(request: web.Request) -> web.Response:
    store = request.app[keys.STORE]
    before = request.query.get("before_id")
    try:
        before_id = int(before) if before else None
    except ValueError:
        raise json_error(web.HTTPBadRequest, "before_id must be a whole number") from None
    return _json({"dead_letters": await asyncio.to_thread(store.dead_letters, _limit(request), before_id)})


def _time_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(raw).timestamp()
    except ValueError:
        raise json_error(web.HTTPBadRequest, f"{name}: unix seconds or ISO 8601") from None


async def kit_results(request: web.Request) -> web.Response:
    """Drug quick-test results from the tablets, newest first (?checkpoint=, ?since=, ?until=,
    ?result=positive|negative|invalid, ?limit=); the subject only as hash and last four."""
    result = request.query.get("result") or None
    if result not in (None, "positive", "negative", "invalid"):
        raise json_error(web.HTTPBadRequest, "result is positive, negative or invalid")
    store, principal = request.app[keys.STORE], principal_of(request)
    checkpoint, since, until = (
        request.query.get("checkpoint") or None,
        _time_param(request, "since"),
        _time_param(request, "until"),
    )
    rows = await asyncio.to_thread(store.kit_results, checkpoint, since, until, result, _limit(request))
    # Test results are health data: who looked at which of them is on the record.
    await store.run(
        lambda db: audit.append(
            db,
            principal.name if principal else "?",
            principal.role if principal else "",
            "kit_results.read",
            detail={
                "checkpoint": checkpoint,
                "since": since,
                "until": until,
                "result": result,
                "rows": len(rows),
            },
        )
    )
    return _json({"kit_results": rows})


async def gaps(request: web.Request) -> web.Response:
    """Plain reads edges dropped at their outbox quota, by sequence range (the record's known holes)."""
    checkpoint = request.query.get("checkpoint") or None
    return _json({"gaps": await asyncio.to_thread(request.app[keys.STORE].gaps, checkpoint, _limit(request))})


async def webhooks(request: web.Request) -> web.Response:
    """Each webhook's delivery figures (queued, delivered, failed, retries, last error)."""
    sender = request.app[keys.DISPATCHER].webhooks
    return _json({"webhooks": sender.status() if sender is not None else []})


async def audit_login(request: web.Request, account: str, principal: Principal | None) -> None:
    """Every login attempt goes into the audit trail, failures too."""
    store = request.app[keys.STORE]
    remote = str(request.remote)
    if principal is None:
        await store.run(lambda db: audit.append(db, account, "", "login.failed", detail={"remote": remote}))
    else:
        await store.run(
            lambda db: audit.append(db, principal.name, principal.role, "login", detail={"remote": remote})
        )


def _audit_filters(request: web.Request) -> dict[str, Any]:
    q = request.query
    try:
        return {
            "since": float(q["since"]) if q.get("since") else None,
            "until": float(q["until"]) if q.get("until") else None,
            "before_id": int(q["before_id"]) if q.get("before_id") else None,
            "actor": q.get("actor") or None,
            "action": q.get("action") or None,
        }
    except ValueError:
        raise json_error(
            web.HTTPBadRequest, "since/until are unix seconds, before_id a whole number"
        ) from None


async def audit_trail(request: web.Request) -> web.Response:
    """The audit trail, newest first (``since``, ``until``, ``actor``, ``action``, ``before_id``, ``limit``)."""
    filters, limit = _audit_filters(request), _limit(request)
    found = await asyncio.to_thread(
        request.app[keys.STORE].read, lambda db: audit.records(db, limit=limit, **filters)
    )
    return _json({"records": [r.as_dict() for r in found]})


async def audit_export(request: web.Request) -> web.Response:
    """The audit trail as CSV (the same filters, no limit); the export is itself audited."""
    filters = _audit_filters(request)
    principal = principal_of(request)
    store = request.app[keys.STORE]
    await store.run(
        lambda db: audit.append(
            db,
            principal.name if principal else "?",
            principal.role if principal else "",
            "audit.export",
            detail={k: v for k, v in filters.items() if v is not None},
        )
    )
    found = await asyncio.to_thread(store.read, lambda db: audit.records(db, **filters))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(audit.COLUMNS)
    for r in reversed(found):
        writer.writerow([getattr(r, c) for c in audit.COLUMNS])
    return web.Response(
        body=out.getvalue().encode("utf-8-sig"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="cordon-audit.csv"'},
    )


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
            raise json_error(
                web.HTTPBadRequest, f"{name} must be unix seconds or ISO 8601 with an offset"
            ) from None
        if moment.tzinfo is None:
            raise json_error(web.HTTPBadRequest, f"{name} needs a UTC offset (e.g. +08:00)") from None
        value = moment.timestamp()
    if not math.isfinite(value):
        raise json_error(web.HTTPBadRequest, f"{name} must be a finite time")
    return value


async def reads(request: web.Request) -> web.Response:
    """Search the record: ``?plate=`` (exact) or ``?pattern=`` (``*`` any run, ``?`` one character),
    within ``since``..``until`` (default the last day), optionally at one ``checkpoint``, with a ``reason``
    that is logged."""
    q, app = request.query, request.app
    plate, pattern = q.get("plate", "").strip(), q.get("pattern", "").strip()
    if bool(plate) == bool(pattern):
        raise json_error(
            web.HTTPBadRequest, "give exactly one of plate (exact) and pattern (partial, * and ?)"
        )
    reason = q.get("reason", "").strip()
    if not reason:
        raise json_error(
            web.HTTPBadRequest, "reason is required: every search of the record is logged with it"
        )
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
    checkpoint = q.get("checkpoint", "").strip() or None
    if checkpoint is not None and len(checkpoint) > 128:
        raise json_error(web.HTTPBadRequest, "checkpoint is longer than 128 characters")
    record = app[keys.STORE].record
    principal = principal_of(request)
    if since < time.time() - OLD_DATA_DAYS * 86400 and (
        principal is None or principal.role not in OLD_DATA_ROLES
    ):
        raise json_error(
            web.HTTPForbidden,
            f"records older than {OLD_DATA_DAYS} days need a commander's role",
            allowed=sorted(OLD_DATA_ROLES),
        )
    actor, role = (principal.name, principal.role) if principal else ("?", "")
    await app[keys.STORE].run(
        lambda db: audit.append(
            db,
            actor,
            role,
            "record.search",
            target=plate or pattern,
            reason=reason,
            detail={
                "kind": "plate" if plate else "pattern",
                "since": round(since),
                "until": round(until),
                "checkpoint": checkpoint,
            },
        )
    )
    log.info(
        "record search by %s: %s=%r since=%s until=%s reason=%r",
        principal.name if principal else "?",
        "plate" if plate else "pattern",
        plate or pattern,
        round(since),
        round(until),
        reason,
    )
    try:
        if plate:
            found = await asyncio.to_thread(record.search_exact, plate, since, until, limit, checkpoint)
        else:
            found = await asyncio.to_thread(record.search_pattern, pattern, since, until, limit, checkpoint)
    except PatternError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    return _json(
        {
            "reads": found.reads,
            "truncated": found.truncated,
            "days_searched": found.days,
            "since": since,
            "until": until,
        }
    )


async def live(request: web.Request) -> web.WebSocketResponse:
    """The console's live feed: recent alerts first, then alerts and checkpoint status as they come.
    Covert alerts reach only the roles allowed to see them."""
    app = request.app
    covert = sees_covert(request)
    recent = await asyncio.to_thread(
        app[keys.STORE].recent_alerts, app[keys.SETTINGS].console.recent_alerts, covert
    )
    first: list[Any] = [
        {
            "type": "hello",
            "checkpoints": list(app[keys.CHECKPOINTS].values()),
            "escalate_after_s": app[keys.SETTINGS].console.escalate_after_s,
        }
    ]
    if not covert:
        recent = [a for a in recent if not _privileged_only(app, a)]
    first += [{"type": "alert", "alert": a} for a in reversed(recent)]
    ids = [a.alert_id for a in recent]
    outcomes = await asyncio.to_thread(app[keys.STORE].outcomes, ids)
    first += [{"type": "outcome", "outcome": o} for history in outcomes.values() for o in history]
    escalated = await asyncio.to_thread(app[keys.STORE].read, lambda db: escalation.escalated_among(db, ids))
    first += [{"type": "escalation", "escalation": e} for e in escalated]

    principal = principal_of(request)
    commander = principal is not None and principal.role in COMMANDER_ROLES

    def encode(frame: dict[str, Any]) -> str | None:
        if (
            not covert
            and frame.get("type") in ("alert", "alert_folded")
            and _privileged_only(app, frame["alert"])
        ):
            return None
        if (
            not covert
            and frame.get("type") == "escalation"
            and _restricted_list(app, frame["escalation"]["list_id"])
        ):
            return None
        if commander and frame.get("type") == "escalation":
            # The shift commander's console: the same escalation, flagged for a notice of its own.
            frame = {"type": "escalation", "escalation": {**frame["escalation"], "commander_notice": True}}
        return msgspec.json.encode(frame).decode()

    return await websocket_feed(request, app[keys.CONSOLE], first, encode, app[keys.SOCKETS])


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    m, link, store, wl = app[keys.INGEST].metrics, app[keys.LINK], app[keys.STORE], app[keys.WATCHLISTS]
    by_kind = Metric("cordon_hub_alerts_total", "counter", "alerts raised since start, by match kind")
    for kind, count in sorted(m.alerts_by_kind.items()):
        by_kind.add(count, kind=kind)
    text = render(
        [
            Metric("cordon_hub_mqtt_messages_total", "counter", "MQTT messages received since start").add(
                m.messages
            ),
            Metric("cordon_hub_reads_ingested_total", "counter", "reads committed since start").add(m.reads),
            Metric("cordon_hub_duplicates_total", "counter", "resent events already stored").add(
                m.duplicates
            ),
            Metric("cordon_hub_batches_committed_total", "counter", "messages committed").add(
                m.batches_committed
            ),
            Metric("cordon_hub_commit_seconds_total", "counter", "time from receipt to commit, summed").add(
                m.commit_seconds_total
            ),
            Metric("cordon_hub_commit_failures_total", "counter", "commits that failed").add(
                m.commit_failures
            ),
            Metric("cordon_hub_dead_letters_total", "counter", "payloads dead-lettered since start").add(
                m.dead_letters
            ),
            *_webhook_metrics(app),
            Metric(
                "cordon_hub_bad_signatures_total",
                "counter",
                "edge messages refused for a missing or wrong signature",
            ).add(m.bad_signatures),
            Metric(
                "cordon_hub_gap_reads_total",
                "counter",
                "plain reads edges reported dropped at their outbox quota, since start",
            ).add(m.gap_reads),
            by_kind,
            Metric("cordon_hub_alerts_dispatched_total", "counter", "alerts handed to console and edges").add(
                app[keys.DISPATCHER].dispatched
            ),
            Metric("cordon_hub_connected_edges", "gauge", "checkpoints whose status is online").add(
                checkpoints_online(app)
            ),
            Metric("cordon_hub_broker_connected", "gauge", "1 when the broker link is up").add(
                int(link.connected)
            ),
            Metric("cordon_hub_store_writer_ok", "gauge", "1 when the last commit succeeded").add(
                int(store.writer_error is None)
            ),
            Metric("cordon_hub_watchlist_version", "gauge", "field feed version").add(wl.index.feed_version),
            Metric("cordon_hub_watchlist_entries", "gauge", "entries in the hub's index").add(len(wl)),
            Metric("cordon_hub_record_days", "gauge", "days of plain reads held (one file each)").add(
                len(await asyncio.to_thread(store.record.days))
            ),
            Metric(
                "cordon_hub_record_days_purged_total", "counter", "days of plain reads purged since start"
            ).add(len(app[keys.PURGED_DAYS])),
        ]
    )
    return web.Response(text=text, content_type=CONTENT_TYPE, charset="utf-8")


def _webhook_metrics(app: web.Application) -> list[Metric]:
    delivered = Metric(
        "cordon_hub_webhook_delivered_total", "counter", "alerts a webhook took (2xx), since start"
    )
    failed = Metric(
        "cordon_hub_webhook_failed_total", "counter", "alerts a webhook refused or that were given up"
    )
    retries = Metric("cordon_hub_webhook_retries_total", "counter", "webhook attempts that will be retried")
    sender = app[keys.DISPATCHER].webhooks
    for s in sender.status() if sender is not None else []:
        delivered.add(s["delivered"], hook=s["name"])
        failed.add(s["failed"], hook=s["name"])
        retries.add(s["retries"], hook=s["name"])
    return [delivered, failed, retries]


async def openapi(request: web.Request) -> web.FileResponse:
    """This API described in OpenAPI 3 (kept true by tests/test_openapi.py)."""
    return web.FileResponse(
        Path(__file__).with_name("openapi.json"), headers={"Content-Type": "application/json"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", console, name="console")
    app.router.add_static("/static/", STATIC, name="static")
    app.router.add_get("/api/v1/health", health, name="health")
    app.router.add_get("/api/v1/alerts", alerts, name="alerts")
    app.router.add_get("/api/v1/checkpoints", checkpoints, name="checkpoints")
    app.router.add_get("/api/v1/ring", ring, name="ring")
    app.router.add_get("/api/v1/gaps", gaps, name="gaps")
    app.router.add_get("/api/v1/kit-results", kit_results, name="kit_results")
    app.router.add_get("/api/v1/webhooks", webhooks, name="webhooks")
    app.router.add_get("/api/v1/audit", audit_trail, name="audit")
    app.router.add_get("/api/v1/audit/export", audit_export, name="audit_export")
    app.router.add_get("/api/v1/dead-letters", dead_letters, name="dead_letters")
    app.router.add_get("/api/v1/reads", reads, name="reads")
    app.router.add_get("/api/v1/ws", live, name="live")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_get("/api/v1/openapi.json", openapi, name="openapi")
