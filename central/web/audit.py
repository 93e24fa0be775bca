"""The audit trail over HTTP (auditors only): read it, export it as CSV, and every login written to it."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

from aiohttp import web

from central.people import audit
from central.people.users import AUDITORS
from central.web import keys
from central.web.guards import json_response, limit_param
from runtime.web import Principal, Rule, json_error, principal_of

POLICY: dict[str, Rule] = {
    "audit": AUDITORS,
    "audit_export": AUDITORS,
}


async def audit_login(request: web.Request, account: str, principal: Principal | None) -> None:
    """Every login attempt goes into the audit trail, failures too."""
    store = request.app[keys.STORE]
    remote = str(request.remote)
    if principal is None:
        await store.run(
            lambda tx: request.app[keys.STORE].audit.append(
                tx, account, "", "login.failed", detail={"remote": remote}
            )
        )
    else:
        await store.run(
            lambda tx: request.app[keys.STORE].audit.append(
                tx, principal.name, principal.role, "login", detail={"remote": remote}
            )
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
    filters, limit = _audit_filters(request), limit_param(request)
    found = await asyncio.to_thread(
        request.app[keys.STORE].read,
        lambda tx: request.app[keys.STORE].audit.records(tx, limit=limit, **filters),
    )
    return json_response({"records": [r.as_dict() for r in found]})


async def audit_export(request: web.Request) -> web.Response:
    """The audit trail as CSV (the same filters, no limit); the export is itself audited."""
    filters = _audit_filters(request)
    principal = principal_of(request)
    store = request.app[keys.STORE]
    await store.run(
        lambda tx: request.app[keys.STORE].audit.append(
            tx,
            principal.name if principal else "?",
            principal.role if principal else "",
            "audit.export",
            detail={k: v for k, v in filters.items() if v is not None},
        )
    )
    found = await asyncio.to_thread(
        store.read, lambda tx: request.app[keys.STORE].audit.records(tx, **filters)
    )
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/audit", audit_trail, name="audit")
    app.router.add_get("/api/v1/audit/export", audit_export, name="audit_export")
