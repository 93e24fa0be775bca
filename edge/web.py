"""The edge's HTTP side: camera push, the officers' tablet page, its live feed and status."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from runtime.metrics import CONTENT_TYPE, Metric, certificate_metrics, render
from runtime.web import (
    LOGIN_POLICY,
    Access,
    Principal,
    Rule,
    json_error,
    principal_of,
    roles,
    token_matches,
    websocket_feed,
)

from . import keys
from .accounts import OfficerDirectory
from .evidence import KINDS
from .kits import api as kits_api

STATIC = Path(__file__).with_name("static")
mimetypes.add_type("application/manifest+json", ".webmanifest")

#: Every route's access rule; a route missing here is refused (tests/test_routes_policy.py).
#: Who works the tablet: this checkpoint's officers, and the commanders and admins who may stand in.
OFFICERS = roles("officer", "commander", "admin")

POLICY: dict[str, Rule] = {
    **LOGIN_POLICY,
    "tablet": OFFICERS,
    "static": Access.PUBLIC,
    "service_worker": Access.PUBLIC,
    "health": Access.PUBLIC,
    "status": OFFICERS,
    "alerts": OFFICERS,
    "alert_outcome": OFFICERS,
    "alert_shown": OFFICERS,
    "live": OFFICERS,
    "camera_reads": Access.CAMERA,
    "viid_register": Access.VIID,
    "viid_unregister": Access.VIID,
    "viid_keepalive": Access.VIID,
    "viid_time": Access.VIID,
    "viid_motor_vehicles": Access.VIID,
    "viid_not_supported": Access.VIID,
    "evidence": OFFICERS,
    "check": OFFICERS,
    "metrics": Access.METRICS,
    "openapi": Access.PUBLIC,
    "kits_catalogue": OFFICERS,
    "kits_read_photo": OFFICERS,
    "kits_read_analyzer": OFFICERS,
    "kits_results": OFFICERS,
}


def officer_login(expected_code: str, checkpoint: str, officers: OfficerDirectory):  # noqa: ANN201
    """Officers sign in with their own account (synced from the hub, checked here, uplink or not);
    the checkpoint's access code (``tablet.token``) is the fallback for a checkpoint without accounts."""

    def check(credentials: Mapping[str, str]) -> Principal | None:
        if credentials.get("username"):
            return officers.authenticate(credentials["username"], credentials.get("password", ""))
        if token_matches(credentials.get("code"), expected_code):
            return Principal(f"officer@{checkpoint}", "officer", checkpoint)
        return None

    return check


async def tablet(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "tablet.html")


async def service_worker(request: web.Request) -> web.FileResponse:
    """The tablet's service worker, from the root so its scope covers the page; browsers register it
    only in a secure context (the edge over HTTPS). Revalidated on every load so updates reach tablets."""
    return web.FileResponse(
        STATIC / "sw.js", headers={"Content-Type": "text/javascript", "Cache-Control": "no-cache"}
    )


async def health(request: web.Request) -> web.Response:
    status = await status_snapshot(request.app)
    reasons = []
    if status["uplink"]["state"] != "connected":
        reasons.append(f"uplink {status['uplink']['state']}")
    elif status["uplink"]["hub_online"] is False:
        reasons.append("hub offline")
    if status["outbox"]["writer_error"]:
        reasons.append(f"outbox: {status['outbox']['writer_error']}")
    box = status["outbox"]
    if box["max_bytes"] and box["bytes"] >= 0.9 * box["max_bytes"]:
        reasons.append(
            f"outbox at {box['bytes'] * 100 // box['max_bytes']}% of its quota; "
            f"{box['dropped_reads']} plain reads dropped so far"
        )
    return web.json_response(
        {"status": "degraded" if reasons else "ok", "reasons": reasons, "checkpoint": status["checkpoint"]}
    )


def viid_status(app: web.Application) -> dict[str, Any]:
    """GA/T 1400 devices: who is registered (until when), refusals, objects answered as not supported."""
    source = app[keys.VIID_SOURCE]
    return {
        "registered": {
            device: {"remote": reg.remote, "expires_at": reg.expires_at}
            for device, reg in source.registered.items()
        },
        "refused": source.refused,
        "not_supported": source.unsupported,
    }


async def status(request: web.Request) -> web.Response:
    return web.json_response(await status_snapshot(request.app))


async def status_snapshot(app: web.Application) -> dict[str, Any]:
    service, uplink, outbox = app[keys.SERVICE], app[keys.UPLINK], app[keys.OUTBOX]
    stats = await outbox.stats()
    now = time.time()
    return {
        "checkpoint": service.checkpoint,
        "name": app[keys.SETTINGS].name,
        "epoch": outbox.epoch,
        "uplink": {
            "state": uplink.state.value,
            "hub_online": uplink.hub_online,
            "hubs": dict(uplink.hubs),
            "last_error": uplink.last_error,
            "inflight": uplink.inflight,
            "queued": uplink.queued,
            "published": uplink.published_events,
            "resent": uplink.resent_events,
            "acked": uplink.acked_events,
            "connects": uplink.connects,
        },
        "outbox": {
            "depth": stats.depth,
            "oldest_unacked_s": None if stats.oldest_created_at is None else now - stats.oldest_created_at,
            "bytes": stats.bytes,
            "max_bytes": outbox.max_bytes,
            "dropped_reads": stats.dropped_total,
            "writer_error": outbox.writer_error,
        },
        "cameras": {cid: h.snapshot(now) for cid, h in service.cameras.items()},
        "evidence": {
            "reads": len(app[keys.EVIDENCE]),
            "bytes": app[keys.EVIDENCE].bytes,
            "max_bytes": app[keys.EVIDENCE].max_bytes,
            "rejected": app[keys.EVIDENCE].rejected,
            "deleted": app[keys.EVIDENCE].deleted,
        },
        "feed": {
            "version": app[keys.MIRROR].version,
            "hub_version": app[keys.FEED].hub_version,
            "entries": len(app[keys.MIRROR]),
            "snapshots": app[keys.FEED].snapshots,
            "deltas": app[keys.FEED].deltas,
            "last_error": app[keys.FEED].last_error,
        },
        "viid": viid_status(app),
        "local_hits": service.local_hits,
        "reads_total": service.reads_total,
        "passages_total": service.passages_total,
        "open_passages": len(service.passages),
        "alerts": len(service.alerts),
        "fold_window_s": service.alert_log.fold_window_s,
        "time_zone": app[keys.SETTINGS].time_zone,
        "dead_letters": app[keys.DEAD].count,
    }


async def alerts(request: web.Request) -> web.Response:
    service = request.app[keys.SERVICE]
    return web.Response(
        body=msgspec.json.encode(
            {
                "alerts": list(reversed(service.alerts)),
                "outcomes": service.alert_log.outcomes,
                "receipts": service.alert_log.receipts,
            }
        ),
        content_type="application/json",
    )


class OutcomeInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outcome: Literal["intercepted", "not_found", "misread", "released"]
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


async def alert_outcome(request: web.Request) -> web.Response:
    """Acknowledge an alert with what came of it (intercepted, not found, misread, released) and a note."""
    try:
        data = msgspec.json.decode(await request.read(), type=OutcomeInput)
    except msgspec.DecodeError as exc:
        raise json_error(web.HTTPBadRequest, f"invalid outcome: {exc}") from None
    principal = principal_of(request)
    officer = principal.name if principal else "?"
    try:
        frame = await request.app[keys.SERVICE].record_outcome(
            request.match_info["alert_id"], data.outcome, data.note, officer
        )
    except KeyError:
        raise json_error(web.HTTPNotFound, "no such recent alert at this checkpoint") from None
    return web.json_response({"outcome": frame})


async def alert_shown(request: web.Request) -> web.Response:
    """A tablet put this alert's alarm on screen: the receipt goes to the hub (the console shows when the
    alarm was shown here, and later when it was acknowledged)."""
    principal = principal_of(request)
    try:
        receipt = await request.app[keys.SERVICE].alarm_shown(
            request.match_info["alert_id"], principal.name if principal else "?"
        )
    except KeyError:
        raise json_error(web.HTTPNotFound, "no such recent alert at this checkpoint") from None
    return web.Response(body=msgspec.json.encode({"receipt": receipt}), content_type="application/json")


async def live(request: web.Request) -> web.WebSocketResponse:
    service = request.app[keys.SERVICE]
    first: list[Any] = [{"type": "hello", "checkpoint": service.checkpoint}]
    first += [{"type": "alert", "alert": a} for a in service.alerts]
    first += [{"type": "outcome", "outcome": o} for o in service.alert_log.outcomes.values()]
    first += [{"type": "read", "read": r} for r in service.recent_reads]
    # Which recent alerts' and reads' pictures are kept here: the tablet asks only for pictures that exist.
    store, epoch = request.app[keys.EVIDENCE], request.app[keys.OUTBOX].epoch
    shown = {(a.epoch, a.seq) for a in service.alerts if a.checkpoint == service.checkpoint}
    shown |= {(epoch, int(r["seq"])) for r in service.recent_reads}  # type: ignore[call-overload]
    first += [
        {"type": "evidence", "epoch": e, "seq": seq, "kinds": kinds}
        for e, seq in sorted(shown)
        if (kinds := store.kinds(e, seq))
    ]
    return await websocket_feed(
        request, service.live, first, lambda f: msgspec.json.encode(f).decode(), request.app[keys.SOCKETS]
    )


async def check(request: web.Request) -> web.Response:
    """Manual plate check against the local mirror (works with the uplink down)."""
    from protocols import plates

    raw = request.query.get("plate", "")
    if not raw.strip() or len(raw) > 32:
        raise json_error(web.HTTPBadRequest, "plate: 1 to 32 characters")
    norm = plates.normalize(raw)
    mirror = request.app[keys.MIRROR]
    hits = mirror.match(
        norm.plate,
        now=time.time(),
        colour=request.query.get("colour") or None,
        vehicle_type=request.query.get("vehicle_type") or None,
    )
    checked = plates.check(norm.plate) if norm.plate else None
    return web.Response(
        body=msgspec.json.encode(
            {
                "plate": norm.plate,
                "plate_valid": bool(checked and checked.valid) and norm.problem is None,
                "plate_problem": norm.problem or (checked.problem if checked else "no readable plate"),
                "feed_version": mirror.version,
                "hits": [
                    {
                        "entry_id": h.entry_id,
                        "entry_plate": h.entry_plate,
                        "list_id": h.list_id,
                        "list_name": mirror.lists[h.list_id].name if h.list_id in mirror.lists else h.list_id,
                        "action": h.action.value,
                        "kind": h.kind.value,
                        "score": h.score,
                        "explanation": h.explanation,
                    }
                    for h in hits
                ],
            }
        ),
        content_type="application/json",
    )


async def camera_reads(request: web.Request) -> web.Response:
    """Every pushing camera posts here; the camera's configured kind says how its body is read."""
    camera = request.app[keys.GATE].authenticate(request)
    if camera.kind == "hikvision":
        return await request.app[keys.HIKVISION_SOURCE].handle(request, camera)
    return await request.app[keys.JSON_SOURCE].handle(request, camera)


async def evidence(request: web.Request) -> web.FileResponse:
    """A read's picture; the path comes from two integers and a fixed kind, never from the request's text."""
    try:
        seq = int(request.match_info["seq"])
        epoch = int(request.query.get("epoch", request.app[keys.OUTBOX].epoch))
    except ValueError:
        raise json_error(web.HTTPBadRequest, "seq and epoch are numbers") from None
    kind = request.match_info["kind"]
    if kind not in KINDS:
        raise json_error(web.HTTPNotFound, f"kind is one of {', '.join(KINDS)}")
    path = request.app[keys.EVIDENCE].path(epoch, seq, kind)
    if path is None or not path.exists():
        raise json_error(web.HTTPNotFound, f"no {kind} kept for read {epoch}-{seq}")
    return web.FileResponse(
        path, headers={"Content-Type": "image/jpeg", "Cache-Control": "private, max-age=3600"}
    )


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    service, uplink, mirror = app[keys.SERVICE], app[keys.UPLINK], app[keys.MIRROR]
    stats = await app[keys.OUTBOX].stats()
    oldest = None if stats.oldest_created_at is None else time.time() - stats.oldest_created_at
    cams = [
        Metric("cordon_edge_camera_reads_total", "counter", "reads recorded, by camera"),
        Metric("cordon_edge_camera_errors_total", "counter", "pushes refused as malformed, by camera"),
        Metric("cordon_edge_camera_refused_total", "counter", "pushes refused for credentials, by camera"),
        Metric(
            "cordon_edge_camera_stale",
            "gauge",
            "1 while a configured camera is silent past its stale_after_s",
        ),
    ]
    now = time.time()
    for cid, h in sorted(service.cameras.items()):
        cams[0].add(h.reads, camera=cid)
        cams[1].add(h.errors, camera=cid)
        cams[2].add(h.refused, camera=cid)
        cams[3].add(int(h.stale(now)), camera=cid)
    s = app[keys.SETTINGS]
    tls_files = {
        "http.cert_file": s.http.cert_file,
        "mqtt.cert_file": s.mqtt.cert_file,
        "mqtt.ca_file": s.mqtt.ca_file,
        "hub.cert_file": s.hub.cert_file,
    }
    text = render(
        [
            Metric("cordon_edge_reads_total", "counter", "reads committed to the outbox since start").add(
                service.reads_total
            ),
            Metric("cordon_edge_passages_total", "counter", "passages closed since start").add(
                service.passages_total
            ),
            Metric("cordon_edge_local_hits_total", "counter", "hits against the local mirror").add(
                service.local_hits
            ),
            Metric("cordon_edge_outbox_depth", "gauge", "events not yet acknowledged by the hub").add(
                stats.depth
            ),
            Metric(
                "cordon_edge_outbox_oldest_seconds", "gauge", "age of the oldest unacknowledged event"
            ).add(oldest),
            Metric(
                "cordon_edge_outbox_bytes", "gauge", "bytes of unacknowledged events (what the quota counts)"
            ).add(stats.bytes),
            Metric(
                "cordon_edge_outbox_dropped_reads_total",
                "counter",
                "plain reads dropped from the outbox at its quota, since it was created",
            ).add(stats.dropped_total),
            Metric("cordon_edge_published_events_total", "counter", "events published").add(
                uplink.published_events
            ),
            Metric("cordon_edge_replayed_events_total", "counter", "events sent again").add(
                uplink.resent_events
            ),
            Metric("cordon_edge_acked_events_total", "counter", "events the hub acknowledged").add(
                uplink.acked_events
            ),
            Metric("cordon_edge_uplink_connected", "gauge", "1 when the broker link is up").add(
                int(uplink.state.value == "connected")
            ),
            Metric(
                "cordon_edge_bad_signatures_total",
                "counter",
                "messages from the hub dropped for a missing or wrong signature",
            ).add(uplink.bad_signatures),
            Metric("cordon_edge_watchlist_version", "gauge", "version of the local watchlist mirror").add(
                mirror.version
            ),
            Metric(
                "cordon_edge_dead_letters_total",
                "counter",
                "camera pushes and hub messages dead-lettered since start",
            ).add(app[keys.DEAD].count),
            *cams,
            *certificate_metrics(tls_files),
        ]
    )
    return web.Response(text=text, content_type=CONTENT_TYPE, charset="utf-8")


async def openapi(request: web.Request) -> web.FileResponse:
    """This API described in OpenAPI 3 (kept true by tests/test_openapi.py)."""
    return web.FileResponse(
        Path(__file__).with_name("openapi.json"), headers={"Content-Type": "application/json"}
    )


def add_viid_routes(app: web.Application) -> None:
    """GA/T 1400 devices' routes (edge/sources/viid.py); the paths are the standard's."""
    source = app[keys.VIID_SOURCE]
    app.router.add_post("/VIID/System/Register", source.register, name="viid_register")
    app.router.add_post("/VIID/System/UnRegister", source.unregister, name="viid_unregister")
    app.router.add_post("/VIID/System/Keepalive", source.keepalive, name="viid_keepalive")
    app.router.add_get("/VIID/System/Time", source.system_time, name="viid_time")
    app.router.add_post("/VIID/MotorVehicles", source.motor_vehicles, name="viid_motor_vehicles")
    app.router.add_post(
        "/VIID/{kind:Persons|Faces|NonMotorVehicles|Things|Scenes}",
        source.not_supported,
        name="viid_not_supported",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", tablet, name="tablet")
    app.router.add_static("/static/", STATIC, name="static")
    app.router.add_get("/sw.js", service_worker, name="service_worker")
    app.router.add_get("/api/v1/health", health, name="health")
    app.router.add_get("/api/v1/status", status, name="status")
    app.router.add_get("/api/v1/alerts", alerts, name="alerts")
    app.router.add_post("/api/v1/alerts/{alert_id}/outcome", alert_outcome, name="alert_outcome")
    app.router.add_post("/api/v1/alerts/{alert_id}/shown", alert_shown, name="alert_shown")
    app.router.add_get("/api/v1/ws", live, name="live")
    app.router.add_post("/api/v1/cameras/{camera_id}/reads", camera_reads, name="camera_reads")
    app.router.add_get("/api/v1/check", check, name="check")
    add_viid_routes(app)
    app.router.add_get("/api/v1/evidence/{seq}/{kind}", evidence, name="evidence")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_get("/api/v1/openapi.json", openapi, name="openapi")
    app.router.add_get("/api/v1/kits", kits_api.catalogue, name="kits_catalogue")
    app.router.add_post("/api/v1/kits/read", kits_api.read_cassette, name="kits_read_photo")
    app.router.add_post("/api/v1/kits/analyzer", kits_api.read_analyzer, name="kits_read_analyzer")
    app.router.add_post("/api/v1/kits/results", kits_api.save_result, name="kits_results")
