"""Intelligence on the record: a plate's route across the ring and the vehicles that travel with it.

Both read the record of plain passages, so they follow its rules (the same as ``GET /api/v1/reads``):
searchers only, a ``reason`` on every query that goes into the audit trail with who asked, and data
older than ``OLD_DATA_DAYS`` only for the roles in ``OLD_DATA_ROLES``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from aiohttp import web

from central.people.users import SEARCHERS
from central.record.platepattern import PatternError
from central.web import guards, keys
from runtime.web import Rule, json_error, principal_of

log = logging.getLogger(__name__)

POLICY: dict[str, Rule] = {
    "intel_route": SEARCHERS,
    "intel_companions": SEARCHERS,
}
MAX_WINDOW_S = 1800.0
MAX_SHARED = 50


def _number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    text = request.query.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise json_error(web.HTTPBadRequest, f"{name} must be a number") from None
    if not low <= value <= high:
        raise json_error(web.HTTPBadRequest, f"{name} must be between {low:g} and {high:g}")
    return value


async def _guarded(request: web.Request, action: str, detail: dict[str, Any]) -> tuple[str, float, float]:
    """Plate, since, until of a record query that may run: reason given, range and age allowed, audited."""
    q, app = request.query, request.app
    plate = q.get("plate", "").strip().upper()
    if not plate:
        raise json_error(web.HTTPBadRequest, "plate is required")
    reason = q.get("reason", "").strip()
    if not reason:
        raise json_error(
            web.HTTPBadRequest, "reason is required: every query of the record is logged with it"
        )
    if len(reason) > guards.MAX_REASON_CHARS:
        raise json_error(web.HTTPBadRequest, f"reason is longer than {guards.MAX_REASON_CHARS} characters")
    until = guards.moment_param(q.get("to") or q.get("until"), "to", time.time())
    since = guards.moment_param(q.get("from") or q.get("since"), "from", until - 7 * 86400)
    if since > until:
        raise json_error(web.HTTPBadRequest, "from is after to")
    max_days = app[keys.SETTINGS].record.search_max_days
    if until - since > max_days * 86400:
        raise json_error(web.HTTPBadRequest, f"a query spans at most {max_days} days")
    principal = principal_of(request)
    if since < time.time() - guards.OLD_DATA_DAYS * 86400 and (
        principal is None or principal.role not in guards.OLD_DATA_ROLES
    ):
        raise json_error(
            web.HTTPForbidden,
            f"records older than {guards.OLD_DATA_DAYS} days need a commander's role",
            allowed=sorted(guards.OLD_DATA_ROLES),
        )
    actor, role = (principal.name, principal.role) if principal else ("?", "")
    await app[keys.STORE].run(
        lambda tx: request.app[keys.STORE].audit.append(
            tx,
            actor,
            role,
            action,
            target=plate,
            reason=reason,
            detail={**detail, "since": round(since), "until": round(until)},
        )
    )
    log.info(
        "%s by %s: plate=%r since=%s until=%s reason=%r",
        action,
        actor,
        plate,
        round(since),
        round(until),
        reason,
    )
    return plate, since, until


async def intel_route(request: web.Request) -> web.Response:
    """A plate's passages over a period, oldest first (``plate``, ``from``, ``to``, ``reason``)."""
    plate, since, until = await _guarded(request, "intel.route", {})
    try:
        found = await asyncio.to_thread(request.app[keys.STORE].record.route, plate, since, until)
    except PatternError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    return guards.json_response(
        {
            "plate": plate,
            "passages": found.reads,
            "truncated": found.truncated,
            "days_searched": found.days,
            "since": since,
            "until": until,
        }
    )


async def intel_companions(request: web.Request) -> web.Response:
    """Vehicles that passed the same checkpoints within ``window_s`` of ``plate`` on at least
    ``min_shared`` of its passages (``from``, ``to``, ``reason`` as for the route)."""
    window = _number(request, "window_s", 120.0, 1.0, MAX_WINDOW_S)
    min_shared = int(_number(request, "min_shared", 3.0, 1.0, MAX_SHARED))
    limit = int(_number(request, "limit", 20.0, 1.0, 200.0))
    plate, since, until = await _guarded(
        request, "intel.companions", {"window_s": window, "min_shared": min_shared}
    )
    try:
        found = await asyncio.to_thread(
            request.app[keys.STORE].record.companions, plate, since, until, window, min_shared, limit
        )
    except PatternError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    return guards.json_response(
        {
            "plate": plate,
            "route": found.route,
            "companions": msgspec.to_builtins(found.found),
            "candidates": found.candidates,
            "window_s": window,
            "min_shared": min_shared,
            "since": since,
            "until": until,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/intel/route", intel_route, name="intel_route")
    app.router.add_get("/api/v1/intel/companions", intel_companions, name="intel_companions")
