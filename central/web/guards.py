"""What every route of the hub shares: JSON answers, query parameters, who may see covert alerts (asked of
central/people/visibility.py), and the one guard of audited searches of the record.

The roles behind each rule are in ``central.people.users``; each route's rule is in ``central.web.policy``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from central.people import visibility
from central.web import keys
from protocols.messages import Alert
from protocols.times import TimeError, parse_time
from runtime.web import json_error, principal_of

log = logging.getLogger(__name__)

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


# Audited searches of the record. Least data (DESIGN.md): every look into the record names its reason,
# stays within the allowed span, reaches old data only with a commander's role, and is in the audit trail
# with who asked before it runs. Every route that looks into the record goes through these.


@dataclass(frozen=True, slots=True)
class Window:
    """The time range of an audited search, the reason it was given, and who asked."""

    since: float
    until: float
    reason: str
    actor: str
    role: str


def required_reason(request: web.Request, logged: str) -> str:
    """The ``reason`` parameter: required (every ``logged`` is logged with it) and at most MAX_REASON_CHARS."""
    reason = request.query.get("reason", "").strip()
    if not reason:
        raise json_error(web.HTTPBadRequest, f"reason is required: every {logged} is logged with it")
    if len(reason) > MAX_REASON_CHARS:
        raise json_error(web.HTTPBadRequest, f"reason is longer than {MAX_REASON_CHARS} characters")
    return reason


def search_window(
    request: web.Request, since: tuple[str, ...], until: tuple[str, ...], default_s: float, noun: str
) -> tuple[float, float]:
    """``since``..``until`` from the first of each parameter name given (default: ``default_s`` before now
    to now): in order, and at most ``record.search_max_days`` long."""
    q = request.query
    until_at = moment_param(next((q[n] for n in until if q.get(n)), None), until[0], time.time())
    since_at = moment_param(next((q[n] for n in since if q.get(n)), None), since[0], until_at - default_s)
    if since_at > until_at:
        raise json_error(web.HTTPBadRequest, f"{since[0]} is after {until[0]}")
    max_days = request.app[keys.SETTINGS].record.search_max_days
    if until_at - since_at > max_days * 86400:
        raise json_error(web.HTTPBadRequest, f"a {noun} spans at most {max_days} days")
    return since_at, until_at


def old_data_allowed(request: web.Request, since: float) -> None:
    """Records older than OLD_DATA_DAYS only for OLD_DATA_ROLES (403 otherwise)."""
    if since < time.time() - OLD_DATA_DAYS * 86400 and role_of(request) not in OLD_DATA_ROLES:
        raise json_error(
            web.HTTPForbidden,
            f"records older than {OLD_DATA_DAYS} days need a commander's role",
            allowed=sorted(OLD_DATA_ROLES),
        )


async def write_audit(
    request: web.Request, action: str, reason: str, target: str = "", detail: dict[str, Any] | None = None
) -> tuple[str, str]:
    """The audit record of a look into the record (committed before the look runs), and a log line;
    returns who asked (name and role)."""
    principal = principal_of(request)
    actor, role = (principal.name, principal.role) if principal else ("?", "")
    await request.app[keys.STORE].run(
        lambda tx: request.app[keys.STORE].audit.append(
            tx, actor, role, action, target=target, reason=reason, detail=detail
        )
    )
    log.info("%s by %s: %r %s reason=%r", action, actor, target, detail or {}, reason)
    return actor, role


async def audited_search(
    request: web.Request,
    action: str,
    target: str,
    detail: dict[str, Any],
    *,
    noun: str = "search",
    since: tuple[str, ...] = ("since",),
    until: tuple[str, ...] = ("until",),
    default_s: float = 86400.0,
) -> Window:
    """The one guard of a search of the record: reason given, range allowed, old data only for a commander,
    audited (``detail`` with the range) before it runs. Raises the HTTP error that says what is wrong."""
    reason = required_reason(request, f"{noun} of the record")
    since_at, until_at = search_window(request, since, until, default_s, noun)
    old_data_allowed(request, since_at)
    detail = {**detail, "since": round(since_at), "until": round(until_at)}
    actor, role = await write_audit(request, action, reason, target, detail)
    return Window(since_at, until_at, reason, actor, role)
