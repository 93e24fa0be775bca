"""GET /api/v1/evidence/{checkpoint}/{epoch}/{seq}/{kind}: a read's full picture, fetched from its edge.

Who may see it: the picture of a read that raised alerts follows the alerts (a covert or restricted
list's hit only for the privileged roles, as /api/v1/alerts); a read without an alert only for the
roles that may search reads. A refused look says "not found", so it does not tell that a covert hit exists.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from central.alerts.evidence import KINDS
from central.people import visibility
from central.people.users import SEARCHERS, STAFF
from central.web import guards, keys
from protocols import topics
from runtime.web import json_error, principal_of

POLICY = {"evidence": STAFF}


async def evidence(request: web.Request) -> web.Response:
    app = request.app
    info = request.match_info
    checkpoint, kind = info["checkpoint"], info["kind"]
    try:
        epoch, seq = int(info["epoch"]), int(info["seq"])
    except ValueError:
        raise json_error(web.HTTPBadRequest, "epoch and seq are whole numbers") from None
    if kind not in KINDS or not topics.valid_checkpoint_id(checkpoint) or epoch < 1 or seq < 1:
        raise json_error(web.HTTPBadRequest, f"no such evidence: kind is one of {', '.join(KINDS)}")
    principal = principal_of(request)
    role = principal.role if principal is not None else ""
    found = await asyncio.to_thread(
        app[keys.STORE].read, lambda tx: app[keys.STORE].alerts_naming(tx, checkpoint, epoch, seq)
    )
    if found:
        restricted = guards.restricted(app)
        allowed = any(visibility.may_see(role, a.hit.action, a.hit.list_id, restricted) for a in found)
    else:
        allowed = role in SEARCHERS
    if not allowed:
        raise json_error(web.HTTPNotFound, "no such evidence")
    online = bool(app[keys.CHECKPOINTS].get(checkpoint, {}).get("online"))
    outcome = await app[keys.EVIDENCE].fetch((checkpoint, epoch, seq, kind), online)
    if outcome.data is not None:
        return web.Response(
            body=outcome.data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
        )
    if outcome.pending:
        status = web.HTTPGatewayTimeout if online else web.HTTPConflict
        raise json_error(status, outcome.error or "requested", pending=True)
    raise json_error(web.HTTPNotFound, f"the checkpoint answered: {outcome.error}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/evidence/{checkpoint}/{epoch}/{seq}/{kind}", evidence, name="evidence")
