"""The command center's numbers (central/intel/stats.py) over HTTP: as JSON for the console's charts and as an
audited CSV export."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from typing import Any

from aiohttp import web

from central.intel import stats
from central.people.users import STATISTICIANS
from central.web import guards, keys
from runtime.web import Rule, json_error

POLICY: dict[str, Rule] = {
    "stats": STATISTICIANS,
    "stats_misreads": STATISTICIANS,
    "stats_export": STATISTICIANS,
}
MAX_DAYS = 366


def _days(request: web.Request) -> tuple[dt.date, dt.date]:
    tz = request.app[keys.STORE].record.tz
    today = dt.datetime.now(tz).date()
    try:
        last = stats.parse_day(request.query.get("to"), "to", today)
        first = stats.parse_day(request.query.get("from"), "from", last - dt.timedelta(days=6))
    except ValueError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    if first > last:
        raise json_error(web.HTTPBadRequest, "from is after to")
    if (last - first).days >= MAX_DAYS:
        raise json_error(web.HTTPBadRequest, f"at most {MAX_DAYS} days at once")
    return first, last


def _group(request: web.Request) -> str:
    group = request.query.get("group", "checkpoint")
    if group not in stats.GROUPS:
        raise json_error(web.HTTPBadRequest, f"group must be one of {', '.join(stats.GROUPS)}")
    return group


def _hidden(request: web.Request) -> stats.Hidden:
    """Covert and restricted lists' hits are not counted for the roles that may not see them."""
    if guards.sees_covert(request):
        return None
    app = request.app
    return lambda alert: guards.privileged_only(app, alert)


async def _summary(request: web.Request) -> dict[str, Any]:
    group, (first, last), hidden = _group(request), _days(request), _hidden(request)
    store, ring = request.app[keys.STORE], request.app.get(keys.RING, [])
    return await asyncio.to_thread(
        store.read, lambda tx: store.stats.summary(tx, group, first, last, store.record.tz, ring, hidden)
    )


async def stats_summary(request: web.Request) -> web.Response:
    """Reads, hits, outcomes, quick tests and camera uptime per ``group`` over [``from``, ``to``]."""
    return guards.json_response(await _summary(request))


async def stats_misreads(request: web.Request) -> web.Response:
    """The misread rate per match kind and per list over [``from``, ``to``]."""
    (first, last), hidden = _days(request), _hidden(request)
    store = request.app[keys.STORE]
    return guards.json_response(
        await asyncio.to_thread(
            store.read, lambda tx: store.stats.misreads(tx, first, last, store.record.tz, hidden)
        )
    )


async def stats_export(request: web.Request) -> web.Response:
    """The summary as CSV; a ``reason`` is required and the export goes into the audit trail."""
    reason = guards.required_reason(request, "export")
    found = await _summary(request)
    detail = {"group": found["group"], "from": found["from"], "to": found["to"]}
    await guards.write_audit(request, "stats.export", reason, detail=detail)
    out = io.StringIO()
    csv.writer(out).writerows(stats.csv_rows(found))
    return web.Response(
        body=out.getvalue().encode("utf-8-sig"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="cordon-stats.csv"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/stats", stats_summary, name="stats")
    app.router.add_get("/api/v1/stats/misreads", stats_misreads, name="stats_misreads")
    app.router.add_get("/api/v1/stats/export.csv", stats_export, name="stats_export")
