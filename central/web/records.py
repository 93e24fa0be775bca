"""The record over HTTP: alerts, searches of plain reads, gaps, dead letters, kit results, webhook status."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from central.people.users import OPERATIONS, SEARCHERS, STAFF
from central.record.platepattern import PatternError
from central.web import keys
from central.web.guards import (
    audited_search,
    json_response,
    limit_param,
    privileged_only,
    sees_covert,
    time_param,
)
from runtime.web import Rule, json_error, principal_of

log = logging.getLogger(__name__)

POLICY: dict[str, Rule] = {
    "alerts": STAFF,
    "dead_letters": OPERATIONS,
    "gaps": STAFF,
    "kit_results": SEARCHERS,
    "webhooks": OPERATIONS,
    "reads": SEARCHERS,
}


async def alerts(request: web.Request) -> web.Response:
    """Recent alerts; covert and restricted lists' hits only for the roles allowed to see them."""
    store, app = request.app[keys.STORE], request.app
    covert = sees_covert(request)
    found = await asyncio.to_thread(store.recent_alerts, limit_param(request), covert)
    if not covert:
        found = [a for a in found if not privileged_only(app, a)]
    outcomes = await asyncio.to_thread(store.outcomes, [a.alert_id for a in found])
    return json_response({"alerts": found, "outcomes": outcomes})


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
    limit = limit_param(request, 500)
    checkpoint = q.get("checkpoint", "").strip() or None
    if checkpoint is not None and len(checkpoint) > 128:
        raise json_error(web.HTTPBadRequest, "checkpoint is longer than 128 characters")
    window = await audited_search(
        request,
        "record.search",
        plate or pattern,
        {"kind": "plate" if plate else "pattern", "checkpoint": checkpoint},
    )
    since, until = window.since, window.until
    record = app[keys.STORE].record
    try:
        if plate:
            found = await asyncio.to_thread(record.search_exact, plate, since, until, limit, checkpoint)
        else:
            found = await asyncio.to_thread(record.search_pattern, pattern, since, until, limit, checkpoint)
    except PatternError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    return json_response(
        {
            "reads": found.reads,
            "truncated": found.truncated,
            "days_searched": found.days,
            "since": since,
            "until": until,
        }
    )


async def gaps(request: web.Request) -> web.Response:
    """Plain reads edges dropped at their outbox quota, by sequence range (the record's known holes)."""
    checkpoint = request.query.get("checkpoint") or None
    return json_response(
        {"gaps": await asyncio.to_thread(request.app[keys.STORE].gaps, checkpoint, limit_param(request))}
    )


async def dead_letters(request: web.Request) -> web.Response:
    store = request.app[keys.STORE]
    before = request.query.get("before_id")
    try:
        before_id = int(before) if before else None
    except ValueError:
        raise json_error(web.HTTPBadRequest, "before_id must be a whole number") from None
    return json_response(
        {"dead_letters": await asyncio.to_thread(store.dead_letters, limit_param(request), before_id)}
    )


async def kit_results(request: web.Request) -> web.Response:
    """Drug quick-test results from the tablets, newest first (?checkpoint=, ?since=, ?until=,
    ?result=positive|negative|invalid, ?limit=); the subject only as hash and last four."""
    result = request.query.get("result") or None
    if result not in (None, "positive", "negative", "invalid"):
        raise json_error(web.HTTPBadRequest, "result is positive, negative or invalid")
    store, principal = request.app[keys.STORE], principal_of(request)
    checkpoint, since, until = (
        request.query.get("checkpoint") or None,
        time_param(request, "since"),
        time_param(request, "until"),
    )
    rows = await asyncio.to_thread(store.kit_results, checkpoint, since, until, result, limit_param(request))
    # Test results are health data: who looked at which of them is on the record.
    await store.run(
        lambda tx: request.app[keys.STORE].audit.append(
            tx,
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
    return json_response({"kit_results": rows})


async def webhooks(request: web.Request) -> web.Response:
    """Each webhook's delivery figures (queued, delivered, failed, retries, last error)."""
    sender = request.app[keys.DISPATCHER].webhooks
    return json_response({"webhooks": sender.status() if sender is not None else []})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/alerts", alerts, name="alerts")
    app.router.add_get("/api/v1/reads", reads, name="reads")
    app.router.add_get("/api/v1/gaps", gaps, name="gaps")
    app.router.add_get("/api/v1/dead-letters", dead_letters, name="dead_letters")
    app.router.add_get("/api/v1/kit-results", kit_results, name="kit_results")
    app.router.add_get("/api/v1/webhooks", webhooks, name="webhooks")
