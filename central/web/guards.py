"""What every route of the hub shares: JSON answers, query parameters, and who may see covert alerts.

The roles behind each rule are in ``central.people.users``; each route's rule is in ``central.web.policy``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from central.people import visibility
from central.web import keys
from protocols.messages import Alert
from protocols.times import TimeError, parse_time
from runtime.web import json_error, principal_of

MAX_REASON_CHARS = 200


#: Reads older than this many days are searched only by these roles (UK ANPR practice), with a reason.
OLD_DATA_DAYS = 90


OLD_DATA_ROLES = frozenset({"commander", "admin"})


#: Roles whose consoles get the shift commander's notice of an escalation.
COMMANDER_ROLES = frozenset({"commander"})


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def limit_param(request: web.Request, default: int = 100) -> int:
    try:
        value = int(request.query.get("limit", default))
    except ValueError:
        raise json_error(web.HTTPBadRequest, "limit must be a whole number") from None
    return max(1, min(value, 1000))


def time_param(request: web.Request, name: str) -> float | None:
    """The query parameter ``name`` as a time (protocols/times.py), None when absent; 400 when not a time."""
    text = request.query.get(name)
    return _time(text, name) if text else None


def moment_param(text: str | None, name: str, default: float) -> float:
    """Unix seconds or ISO 8601 with an offset (protocols/times.py); ``default`` when empty."""
    return _time(text, name) if text else default


def _time(text: str, name: str) -> float:
    try:
        return parse_time(text)
    except TimeError as exc:
        raise json_error(web.HTTPBadRequest, f"{name} must be a time: {exc}") from None


def role_of(request: web.Request) -> str | None:
    principal = principal_of(request)
    return principal.role if principal is not None else None


def sees_covert(request: web.Request) -> bool:
    """The requester sees covert and restricted lists' alerts (central/people/visibility.py)."""
    return visibility.sees_privileged(role_of(request))


def restricted(app: web.Application) -> visibility.Restricted:
    """Whether a list of the hub's is restricted, asked when it matters."""
    return visibility.restricted_in(lambda: app[keys.WATCHLISTS].lists)


def privileged_only(app: web.Application, alert: Alert) -> bool:
    """A covert or restricted list's alert (central/people/visibility.py)."""
    return visibility.alert_privileged(alert, restricted(app))
