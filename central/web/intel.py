"""Intelligence on the record: a plate's route across the ring and the vehicles that travel with it.

Both read the record of plain passages, so they follow its rules (the same as ``GET /api/v1/reads``):
searchers only, a ``reason`` on every query that goes into the audit trail with who asked, and data
older than ``OLD_DATA_DAYS`` only for the roles in ``OLD_DATA_ROLES``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from aiohttp import web

from central.people.users import SEARCHERS
from central.record.platepattern import PatternError
from central.web import guards, keys
from runtime.web import Rule, json_error

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
    plate = request.query.get("plate", "").strip().upper()
    if not plate:
        raise json_error(web.HTTPBadRequest, "plate is required")
    window = await guards.audited_search(
        request,
        action,
        plate,
        detail,
        noun="query",
        since=("from", "since"),
        until=("to", "until"),
        default_s=7 * 86400,
    )
    return plate, window.since, window.until


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
