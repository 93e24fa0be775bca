"""The command console: its page, its live feed, the ring map's checkpoints, health, metrics, OpenAPI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from central.alerts import escalation
from central.people import visibility
from central.people.users import ACCESS_CODE_PRINCIPAL, STAFF, Directory
from central.record.tx import StoreUnavailable
from central.web import guards, keys
from central.web.guards import COMMANDER_ROLES, json_response, privileged_only, role_of, sees_covert
from runtime.metrics import CONTENT_TYPE, Metric, certificate_metrics, render
from runtime.web import Access, Principal, Roles, Rule, principal_of, token_matches, websocket_feed

log = logging.getLogger(__name__)

#: The most alerts a reconnecting console is given after its last position (``GET /api/v1/ws?after=``).
CATCH_UP = 200

#: The console's page and scripts (package data of ``central``).
STATIC = Path(__file__).resolve().parent.parent / "static"
OPENAPI = Path(__file__).resolve().parent.parent / "openapi.json"

POLICY: dict[str, Rule] = {
    "console": STAFF,
    "static": Access.PUBLIC,
    "health": Access.PUBLIC,
    "checkpoints": STAFF,
    "ring": STAFF,
    "live": STAFF,
    "metrics": Access.METRICS,
    "openapi": Access.PUBLIC,
    "me": Access.SESSION,
}

#: What a console may offer, each decided by the access rule of the route that does it, so the page
#: and the policy cannot disagree (``GET /api/v1/me``). Two are not routes: who sees covert lists'
#: alerts, and whose console gets the shift commander's notice of an escalation.
CAPABILITY_ROUTES: dict[str, str] = {
    "alerts": "alerts",
    "record.search": "reads",
    "intel": "intel_route",
    "stats": "stats",
    "stats.export": "stats_export",
    "kits": "kit_results",
    "watchlists": "watchlists",
    "watchlists.write": "watchlist_save",
    "watchlists.import": "watchlist_import",
    "watchlists.export": "watchlist_export",
    "feed": "feed_status",
    "upstream": "upstream_status",
    "gaps": "gaps",
    "dead_letters": "dead_letters",
    "webhooks": "webhooks",
    "audit": "audit",
    "users": "users",
}


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


def capabilities(policy: Mapping[str, Rule], role: str) -> list[str]:
    """The capabilities (``CAPABILITY_ROUTES`` and the two role sets) a role has under ``policy``."""

    def may(rule: Rule | None) -> bool:
        return rule is Access.SESSION or rule is Access.PUBLIC or (isinstance(rule, Roles) and role in rule)

    found = [name for name, route in CAPABILITY_ROUTES.items() if may(policy.get(route))]
    if visibility.sees_privileged(role):
        found.append("alerts.covert")
    if role in COMMANDER_ROLES:
        found.append("escalation.notice")
    return sorted(found)


async def me(request: web.Request) -> web.Response:
    """Who is signed in, their role, what the console may offer them, and the hub's time zone: the console
    asks once and shows only what the role may do (it never probes routes to find out)."""
    principal = principal_of(request)
    assert principal is not None  # Access.SESSION
    app = request.app
    return json_response(
        {
            "user": principal.name,
            "display_name": app[keys.DIRECTORY].display_name(principal.name),
            "role": principal.role,
            "capabilities": capabilities(app[keys.POLICY], principal.role),
            "time_zone": app[keys.SETTINGS].time_zone,
        }
    )


async def console(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "console.html")


def checkpoints_online(app: web.Application) -> int:
    return sum(1 for c in app[keys.CHECKPOINTS].values() if c.get("online"))


def degraded_reasons(app: web.Application) -> list[str]:
    """Why the hub is degraded (empty: it is not): its health route and its metrics say the same."""
    link, store = app[keys.LINK], app[keys.STORE]
    reasons = []
    if not link.connected:
        reasons.append(
            f"broker link {link.state.value}" + (f": {link.last_error}" if link.last_error else "")
        )
    if store.writer_error:
        reasons.append(f"store writer: {store.writer_error}")
    if app[keys.DUTIES].last_error:
        reasons.append(f"duties: {app[keys.DUTIES].last_error}")
    return reasons


async def health(request: web.Request) -> web.Response:
    """ok (200) or degraded (503, the same body, with the reasons): a front door's health check takes a
    degraded hub out of its rotation by the status code alone (deploy/haproxy/cordon.cfg)."""
    app = request.app
    ingest = app[keys.INGEST]
    reasons = degraded_reasons(app)
    base = app[keys.BASE_COUNTS]
    return json_response(
        {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "checkpoints_online": checkpoints_online(app),
            "reads_total": base.reads + ingest.metrics.reads,
            "alerts_total": base.alerts + ingest.metrics.alerts,
            "dead_letters_total": base.dead_letters + ingest.metrics.dead_letters,
            "events_unacknowledged": ingest.unacknowledged,
            "events_received_total": ingest.metrics.events_received,
            "taking_events": app[keys.LINK].connected and app[keys.LINK].taking_events,
            "watchlist_entries": len(app[keys.WATCHLISTS]),
            "hub": app[keys.DUTIES].hub,
            "duties": app[keys.DUTIES].held(),
        },
        status=503 if reasons else 200,
    )


async def checkpoints(request: web.Request) -> web.Response:
    return json_response({"checkpoints": await asyncio.to_thread(request.app[keys.STORE].checkpoints)})


async def ring(request: web.Request) -> web.Response:
    """Where the checkpoints stand (``console.checkpoints_csv``), for the console's map."""
    return json_response({"checkpoints": request.app[keys.RING]})


async def live(request: web.Request) -> web.WebSocketResponse:
    """The console's live feed: recent alerts first, then alerts and checkpoint status as they come.
    Covert alerts reach only the roles allowed to see them.

    ``?after=N``: a console that was connected before (to this hub or another on the same store) gets the
    alerts after position N too, so none raised while it was away is missing (the last ``CATCH_UP`` of
    them at most; the record has the rest). The hello frame says the position the feed starts from;
    alert frames and ``position`` frames carry the positions after it."""
    app = request.app
    covert = sees_covert(request)
    try:
        after = max(0, int(request.query["after"])) if "after" in request.query else None
    except ValueError:
        raise guards.json_error(web.HTTPBadRequest, "after must be a whole number") from None
    store, console = app[keys.STORE], app[keys.SETTINGS].console

    async def first_frames() -> list[Any]:
        # Read once this client is subscribed: an alert committed meanwhile comes live, none is missed.
        position = await asyncio.to_thread(store.alert_position)
        recent = await asyncio.to_thread(store.recent_alerts, console.recent_alerts, covert)
        missed: list[tuple[int, Any]] = []
        if after is not None and after < position:
            missed = await asyncio.to_thread(store.alerts_after, after, CATCH_UP)
        shown = {a.alert_id for a in recent}
        missed = [(pos, a) for pos, a in missed if a.alert_id not in shown]
        frames: list[Any] = [
            {
                "type": "hello",
                "checkpoints": list(app[keys.CHECKPOINTS].values()),
                "escalate_after_s": console.escalate_after_s,
                "position": position,
            }
        ]
        if not covert:
            recent = [a for a in recent if not privileged_only(app, a)]
            missed = [(pos, a) for pos, a in missed if not privileged_only(app, a)]
        frames += [{"type": "alert", "alert": a, "position": pos} for pos, a in missed]
        frames += [{"type": "alert", "alert": a} for a in reversed(recent)]
        ids = [a.alert_id for a in recent] + [a.alert_id for _, a in missed]
        outcomes = await asyncio.to_thread(store.outcomes, ids)
        frames += [{"type": "outcome", "outcome": o} for history in outcomes.values() for o in history]
        after_s = console.escalate_after_s
        escalated = await asyncio.to_thread(store.read, lambda tx: store.escalated_among(tx, ids, after_s))
        frames += [{"type": "escalation", "escalation": e} for e in escalated]
        receipts = await asyncio.to_thread(store.receipts, ids)
        frames += [{"type": "receipt", "receipt": r} for rows in receipts.values() for r in rows]
        first.update(id(f) for f in frames if f["type"] == "alert")
        return frames

    # The alerts the first frames gave (``first``: those frames), so that the same alert published while
    # they were read, and queued behind them, is not given twice.
    first: set[int] = set()
    given: dict[str, Any] = {}

    principal = principal_of(request)
    commander = principal is not None and principal.role in COMMANDER_ROLES

    role, restricted = role_of(request), guards.restricted(app)

    def may_see(frame: dict[str, Any]) -> bool:
        kind = frame.get("type")
        if kind in ("alert", "alert_folded"):
            hit = frame["alert"].hit
            return visibility.may_see(role, hit.action, hit.list_id, restricted)
        if kind == "escalation":
            return visibility.may_see(
                role, escalation.ACTION_OF_ESCALATED, frame["escalation"]["list_id"], restricted
            )
        if kind == "receipt":
            receipt = frame["receipt"]
            return visibility.may_see(
                role, receipt.get("action") or "", receipt.get("list_id") or "", restricted
            )
        return True

    def encode(frame: dict[str, Any]) -> str | None:
        if not may_see(frame):
            return None
        if frame.get("type") == "alert" and (first or given):
            alert = frame["alert"]
            if id(frame) in first:
                first.discard(id(frame))
                given[alert.alert_id] = alert
            elif given.pop(alert.alert_id, None) == alert:
                return None  # published while the first frames were read, and given with them
        if commander and frame.get("type") == "escalation":
            # The shift commander's console: the same escalation, flagged for a notice of its own.
            frame = {"type": "escalation", "escalation": {**frame["escalation"], "commander_notice": True}}
        return msgspec.json.encode(frame).decode()

    return await websocket_feed(request, app[keys.CONSOLE], first_frames, encode, app[keys.SOCKETS])


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    m, link, store, wl = app[keys.INGEST].metrics, app[keys.LINK], app[keys.STORE], app[keys.WATCHLISTS]
    by_kind = Metric("cordon_hub_alerts_total", "counter", "alerts raised since start, by match kind")
    for kind, count in sorted(m.alerts_by_kind.items()):
        by_kind.add(count, kind=kind)
    online = Metric("cordon_hub_checkpoint_online", "gauge", "1 while a checkpoint's status is online")
    for checkpoint, entry in sorted(app[keys.CHECKPOINTS].items()):
        online.add(int(bool(entry.get("online"))), checkpoint=checkpoint)
    s = app[keys.SETTINGS]
    tls_files = {
        "http.cert_file": s.http.cert_file,
        "http.ca_file": s.http.ca_file,
        "http.crl_file": s.http.crl_file,
        "mqtt.cert_file": s.mqtt.cert_file,
        "mqtt.ca_file": s.mqtt.ca_file,
    }
    try:
        days: int | None = len(await asyncio.to_thread(store.record.days))
    except StoreUnavailable:  # the database is away (PostgreSQL): left out, the other samples still say so
        days = None
    text = render(
        [
            Metric("cordon_hub_mqtt_messages_total", "counter", "MQTT messages received since start").add(
                m.messages
            ),
            Metric(
                "cordon_hub_events_received_total",
                "counter",
                "edge events in the batches this hub was given since start (resends again), committed or not",
            ).add(m.events_received),
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
            Metric(
                "cordon_hub_events_unacknowledged",
                "gauge",
                "edge events received and not yet acknowledged (an edge resends them if this hub dies)",
            ).add(app[keys.INGEST].unacknowledged),
            Metric("cordon_hub_dead_letters_total", "counter", "payloads dead-lettered since start").add(
                m.dead_letters
            ),
            *_webhook_metrics(app),
            _duty_metric(app),
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
            Metric(
                "cordon_hub_alerts_taken_over_total",
                "counter",
                "alerts a hub that is gone left undispatched, dispatched by this one, since start",
            ).add(app[keys.DISPATCHER].taken_over),
            Metric("cordon_hub_connected_edges", "gauge", "checkpoints whose status is online").add(
                checkpoints_online(app)
            ),
            online,
            Metric(
                "cordon_hub_degraded",
                "gauge",
                "1 while GET /api/v1/health says degraded (broker link, store)",
            ).add(int(bool(degraded_reasons(app)))),
            *certificate_metrics(tls_files),
            Metric("cordon_hub_broker_connected", "gauge", "1 when the broker link is up").add(
                int(link.connected)
            ),
            Metric(
                "cordon_hub_taking_events",
                "gauge",
                "1 while this hub takes the edges' events (one of several leaves them while its store fails)",
            ).add(int(link.connected and link.taking_events)),
            Metric("cordon_hub_store_writer_ok", "gauge", "1 when the last commit succeeded").add(
                int(store.writer_error is None)
            ),
            Metric("cordon_hub_watchlist_version", "gauge", "field feed version").add(wl.index.feed_version),
            Metric("cordon_hub_watchlist_entries", "gauge", "entries in the hub's index").add(len(wl)),
            Metric("cordon_hub_record_days", "gauge", "days of plain reads held (one file each)").add(days),
            Metric(
                "cordon_hub_record_days_purged_total", "counter", "days of plain reads purged since start"
            ).add(len(app[keys.PURGED_DAYS])),
        ]
    )
    return web.Response(text=text, content_type=CONTENT_TYPE, charset="utf-8")


def _duty_metric(app: web.Application) -> Metric:
    duty = Metric(
        "cordon_hub_duty", "gauge", "1 while this hub holds the duty (work that runs on one hub at a time)"
    )
    keeper = app[keys.DUTIES]
    for name in keeper.duties:
        duty.add(int(keeper.holds(name)), duty=name)
    return duty


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
    return web.FileResponse(OPENAPI, headers={"Content-Type": "application/json"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", console, name="console")
    app.router.add_static("/static/", STATIC, name="static")
    app.router.add_get("/api/v1/health", health, name="health")
    app.router.add_get("/api/v1/checkpoints", checkpoints, name="checkpoints")
    app.router.add_get("/api/v1/ring", ring, name="ring")
    app.router.add_get("/api/v1/ws", live, name="live")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_get("/api/v1/openapi.json", openapi, name="openapi")
    app.router.add_get("/api/v1/me", me, name="me")
