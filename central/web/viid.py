"""The hub's GA/T 1400 door: ``POST /VIID/SubscribeNotifications``, where a 视图库 the hub subscribed to
(central/ingest/viid.py) delivers motor vehicle records.

A notification is taken only from a configured platform: its code in ``User-Identify``, the
``notify_token`` the hub put in the subscription's ``ReceiveAddr`` (``?token=``), a source address in
its ``allow_from``. Anything else is a 401 (403 for the address), logged. The body is read to a limit;
what is not a notification list is a 400 with the standard's status and a dead letter. The records go
through the ingest (committed before the answer, stored once by their identity); the answer is a
``ResponseStatusListObject`` with one status per notification.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web

from central.ingest.viid import MAX_NOTIFICATION_BYTES, HitReport, ViidPlatform, parse_notifications
from central.web import keys
from protocols import viid
from protocols.messages import Alert
from runtime.web import Access, Rule, token_matches

log = logging.getLogger(__name__)
CHUNK = 64 * 1024

POLICY: dict[str, Rule] = {"viid_notifications": Access.VIID}


def _status(
    request: web.Request, code: viid.Status, text: str, http: int, offset_s: int = 8 * 3600
) -> web.Response:
    body = {"ResponseStatusObject": viid.response_status(request.path, code, "", time.time(), offset_s, text)}
    return web.Response(
        status=http,
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        charset="utf-8",
    )


def _platform(request: web.Request) -> ViidPlatform:
    """The configured platform this request comes from, or the HTTP error it gets (logged)."""
    ident = request.headers.get("User-Identify", "").strip()
    platform = next((p for p in request.app[keys.VIID_PLATFORMS] if p.settings.platform_id == ident), None)
    reason = None
    if platform is None:
        reason = f"platform {ident[:40] or '(no User-Identify)'} is not configured"
    elif platform.notify_token and not token_matches(request.query.get("token"), platform.notify_token):
        reason = "missing or wrong token"
    elif not platform.address_allowed(request.remote):
        log.warning("viid: notification from %s refused: address not allowed", request.remote)
        raise _Refused(_status(request, viid.Status.INVALID_OPERATION, "address not allowed", 403))
    if reason is not None:
        log.warning("viid: notification from %s refused: %s", request.remote, reason)
        raise _Refused(_status(request, viid.Status.INVALID_OPERATION, reason, 401))
    assert platform is not None
    return platform


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def _dead(request: web.Request, platform: ViidPlatform, reason: str, raw: bytes) -> None:
    platform.state.dead_letters += 1
    source = f"viid:{platform.settings.name}"

    store = request.app[keys.STORE]
    await asyncio.wrap_future(store.submit(lambda tx: store.dead_letter(tx, source, reason, raw)))
    log.warning("viid %s: dead letter: %s", platform.settings.name, reason)


async def notifications(request: web.Request) -> web.Response:
    try:
        platform = _platform(request)
    except _Refused as exc:
        return exc.response
    offset = platform.offset_s
    data = bytearray()
    while chunk := await request.content.read(CHUNK):
        data += chunk
        if len(data) > MAX_NOTIFICATION_BYTES:
            await _dead(request, platform, f"notification over {MAX_NOTIFICATION_BYTES} bytes", bytes(data))
            return _status(request, viid.Status.INVALID_JSON_CONTENT, "body too large", 413, offset)
    raw = bytes(data)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        await _dead(request, platform, "SubscribeNotifications: not JSON", raw)
        return _status(request, viid.Status.INVALID_JSON_FORMAT, "not JSON", 400, offset)
    now = time.time()
    try:
        parsed = parse_notifications(platform, doc, request.path, now)
    except viid.RecordError as exc:
        await _dead(request, platform, f"SubscribeNotifications: {exc}", raw)
        return _status(request, viid.Status.INVALID_JSON_CONTENT, str(exc), 400, offset)
    state = platform.state
    state.notifications += 1
    for reason, record in parsed.dead:
        await _dead(request, platform, reason, record)
    ingest = request.app[keys.INGEST]
    source = f"viid:{platform.settings.name}"
    for checkpoint, reads in parsed.reads.items():
        try:
            result = await asyncio.wrap_future(
                ingest.take_upstream(source, checkpoint, platform.epoch, reads, now)
            )
        except Exception as exc:  # not committed: the platform must send the notification again
            log.error("viid %s: records not committed: %s", platform.settings.name, exc)
            return _status(request, viid.Status.DEVICE_BUSY, "not stored; send again", 503, offset)
        state.records += result.reads
        state.duplicates += result.duplicates
        state.dead_letters += result.dead_letters
        if platform.settings.report_hits:
            _report(request, platform, result.alerts, parsed.records)
    return web.Response(
        text=json.dumps(viid.response_list(parsed.statuses), ensure_ascii=False),
        content_type="application/json",
        charset="utf-8",
    )


def _report(
    request: web.Request, platform: ViidPlatform, alerts: list[Alert], records: dict[tuple[str, int], dict]
) -> None:
    """Queue the hits on this platform's records for its disposition notifications; never a covert or
    restricted list's (they never leave the hub)."""
    router = request.app[keys.INGEST].router
    for alert in alerts:
        record = records.get((alert.checkpoint, alert.seq))
        if record is None or alert.epoch != platform.epoch or router.hidden(alert):
            continue
        title = f"{alert.hit.list_name}: {alert.plate_read} ({alert.hit.action})"
        try:
            platform.reports.put_nowait(HitReport(record, title, alert.alert_id))
        except asyncio.QueueFull:
            platform.state.report_failures += 1
            log.warning(
                "viid %s: report queue full; hit %s not reported", platform.settings.name, alert.alert_id
            )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/VIID/SubscribeNotifications", notifications, name="viid_notifications")
