"""Composition root of the edge agent: everything is built here from one EdgeSettings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from aiohttp import web

from protocols.messages import CameraRead, OfficerAccounts
from runtime import signkeys
from runtime.background import background
from runtime.background import stop as stop_task
from runtime.deadletters import DeadLetterStore
from runtime.tls import client_context, mqtt_endpoint
from runtime.web import Principal, Sessions, add_login_routes, close_sockets, make_middlewares, token_matches

from . import keys
from . import web as edge_web
from .accounts import OfficerDirectory
from .alertlog import AlertLog
from .evidence import EvidenceStore
from .feedsync import FeedSync
from .kits.state import KitsState
from .mirror import Mirror
from .outbox import OutboxStore
from .passages import PassageBuilder
from .service import EdgeService
from .settings import CameraSettings, EdgeSettings
from .sources.dahua import DahuaSource
from .sources.folder import FolderLedger, FolderSource
from .sources.gate import CameraGate
from .sources.hikvision import HikvisionSource
from .sources.intake import Intake
from .sources.json_push import JsonPushSource
from .sources.viid import ViidSource
from .uplink import EdgeUplink, UplinkRefused

log = logging.getLogger(__name__)

PASSAGE_TICK_S = 1.0
CAMERA_WATCH_S = 5.0
INTAKE = web.AppKey("intake", Intake)
UPLINK_STOP_TIMEOUT_S = 10.0
SOFTWARE = "cordon-edge/0.1"


def create_app(settings: EdgeSettings) -> web.Application:
    """Build the edge web app; background work starts with the app and stops with it."""
    m, h = settings.mqtt, settings.hub
    # TLS files are read now, so a missing or bad one stops the edge at start-up naming the key.
    endpoint = mqtt_endpoint(m.url, m.ca_file, m.cert_file, m.key_file)
    hub_tls = (
        client_context(h.ca_file, h.cert_file, h.key_file, "hub")
        if h.url.startswith("https:") or h.ca_file or h.cert_file
        else None
    )
    data = settings.data_path
    outbox = OutboxStore(data / "outbox.db", max_bytes=settings.outbox.max_bytes or None)
    dead = DeadLetterStore(data / "deadletters.db")
    mirror = Mirror(data / "mirror.db")
    hub_key = (
        signkeys.public_key(settings.signing.hub_public_key_file)
        if settings.signing.hub_public_key_file
        else None
    )
    feed = FeedSync(
        mirror,
        h.url,
        h.token,
        ssl_context=hub_tls,
        download_dir=data,
        hub_key=hub_key,
        signature_required=settings.signing.required,
    )
    uplink_ref: list[EdgeUplink] = []
    alert_log = AlertLog(data / "alerts.db", recent=settings.tablet.recent_alerts)
    service = EdgeService(
        settings.checkpoint,
        outbox,
        PassageBuilder(settings.passages.window_s),
        enqueue=lambda items: uplink_ref[0].enqueue(items),
        alert_log=alert_log,
        mirror=mirror,
        no_plate_alert=settings.no_plate.alert,
        no_plate_priority=settings.no_plate.priority,
    )
    evidence = EvidenceStore(
        data / "evidence",
        max_bytes=settings.evidence.max_bytes,
        retention_days=settings.evidence.retention_days,
        thumb_max_px=settings.evidence.thumb_max_px,
    )
    intake = Intake(service, evidence)
    officers = OfficerDirectory(data / "accounts.json", settings.checkpoint)

    async def on_accounts(accounts: OfficerAccounts) -> None:
        await asyncio.to_thread(officers.replace, accounts)

    uplink = EdgeUplink(
        settings.checkpoint,
        settings.mqtt,
        outbox,
        on_alert=service.on_alert,
        status_extra=lambda: _status_extra(outbox, service),
        on_feed_delta=feed.on_delta,
        on_feed_version=feed.on_version,
        on_accounts=on_accounts,
        software=SOFTWARE,
        endpoint=endpoint,
        signing_key=signkeys.private_key(settings.signing.key_file) if settings.signing.key_file else None,
        hub_key=hub_key,
        hub_signature_required=settings.signing.required,
        evidence=evidence,
        dead=dead,
        on_connected=service.flush_receipts,
        on_fold_window=alert_log.set_fold_window,
        on_hub_online=service.replay_receipts,
    )
    uplink_ref.append(uplink)
    service.publish_receipt = uplink.publish_receipt

    sessions = Sessions(secrets.token_bytes(32))
    app = web.Application(
        client_max_size=settings.http.max_body_bytes,
        middlewares=make_middlewares(
            edge_web.POLICY, sessions, _machine_tokens(settings), still_valid=officers.still_valid
        ),
    )
    app[keys.SETTINGS] = settings
    app[keys.OUTBOX] = outbox
    app[keys.DEAD] = dead
    app[keys.MIRROR] = mirror
    app[keys.FEED] = feed
    app[keys.SERVICE] = service
    app[keys.UPLINK] = uplink
    app[keys.OFFICERS] = officers
    app[keys.EVIDENCE] = evidence
    app[keys.KITS] = KitsState.from_settings(settings)
    app[keys.GATE] = CameraGate(settings.cameras, service)
    app[keys.JSON_SOURCE] = JsonPushSource(intake, dead)
    app[keys.HIKVISION_SOURCE] = HikvisionSource(intake, dead)
    app[keys.VIID_SOURCE] = ViidSource(settings.viid, settings.cameras, intake, dead)
    app[INTAKE] = intake
    app[keys.SOCKETS] = set()
    add_login_routes(
        app,
        sessions,
        edge_web.officer_login(settings.tablet.token, settings.checkpoint, officers),
        on_login=_audit_login,
    )
    edge_web.add_routes(app)
    app.cleanup_ctx.extend(
        [
            _stores,
            background("feed-sync", lambda app: app[keys.FEED].run()),
            _uplink,
            _passage_ticker,
            _cameras,
            background("retention", _retention_loop),
            _simulator,
        ]
    )
    app.on_shutdown.append(_close_sockets)
    return app


async def _audit_login(request: web.Request, account: str, principal: Principal | None) -> None:
    """Every tablet login attempt reaches the hub's audit trail (as an event: also after an outage)."""
    service = request.app[keys.SERVICE]
    detail = {"remote": str(request.remote)}
    if principal is None:
        await service.audit("login.failed", account, detail=detail)
    else:
        await service.audit("login", principal.name, role=principal.role, detail=detail)


async def _retention_loop(app: web.Application) -> None:
    """The edge's retention on schedule: pictures past their time or the quota, alert ids past 30 days.
    Every run is sent to the hub's audit trail."""
    settings, service, evidence = app[keys.SETTINGS], app[keys.SERVICE], app[keys.EVIDENCE]
    while True:
        await asyncio.sleep(settings.evidence.purge_interval_s)  # the store prunes at start-up by itself
        try:
            pictures = await asyncio.to_thread(evidence.prune)
            alerts = await service.alert_log.forget_old()
            await service.audit(
                "retention.purge",
                "retention",
                role="system",
                detail={
                    "evidence_reads_deleted": pictures,
                    "alerts_forgotten": alerts,
                    "evidence_retention_days": settings.evidence.retention_days,
                },
            )
        except Exception:
            log.exception("edge retention run failed; trying again later")


def _machine_tokens(settings: EdgeSettings):  # noqa: ANN202 - returns the token checker
    def check(token: str) -> Principal | None:
        return Principal("metrics", "metrics") if token_matches(token, settings.metrics.token) else None

    return check


async def _status_extra(outbox: OutboxStore, service: EdgeService) -> dict[str, object]:
    import time

    stats = await outbox.stats()
    oldest = None if stats.oldest_created_at is None else time.time() - stats.oldest_created_at
    return {
        "outbox_depth": stats.depth,
        "oldest_unacked_s": oldest,
        "dropped_reads": stats.dropped_total,
        "feed_version": service.mirror.version if service.mirror is not None else None,
        "stale_cameras": sorted(cid for cid, health in service.cameras.items() if health.stale(time.time())),
    }


async def _stores(app: web.Application) -> AsyncIterator[None]:
    app[keys.SETTINGS].data_path.mkdir(parents=True, exist_ok=True)
    app[keys.OUTBOX].start()
    app[keys.DEAD].start()
    app[keys.SERVICE].alert_log.start()
    await asyncio.to_thread(app[keys.MIRROR].start)
    await asyncio.to_thread(app[keys.OFFICERS].load)
    await asyncio.to_thread(app[keys.EVIDENCE].start)
    log.info("edge %s: outbox epoch %d", app[keys.SETTINGS].checkpoint, app[keys.OUTBOX].epoch)
    yield
    # Joining the writer threads off the loop: several edges may share one process (demo, benchmarks).
    for store in (app[keys.MIRROR], app[keys.DEAD], app[keys.SERVICE].alert_log, app[keys.OUTBOX]):
        await asyncio.to_thread(store.stop)


async def _uplink(app: web.Application) -> AsyncIterator[None]:
    uplink = app[keys.UPLINK]
    task = asyncio.create_task(uplink.run(), name="uplink")
    yield
    await uplink.say_goodbye()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=UPLINK_STOP_TIMEOUT_S)
    if not done:
        log.error("uplink did not stop within %.0f s; leaving it behind", UPLINK_STOP_TIMEOUT_S)
    elif (
        not task.cancelled()
        and isinstance(task.exception(), Exception)
        and not isinstance(task.exception(), UplinkRefused)
    ):
        log.error("uplink ended with %r", task.exception())


async def _passage_ticker(app: web.Application) -> AsyncIterator[None]:
    service = app[keys.SERVICE]

    async def tick() -> None:
        while True:
            await asyncio.sleep(PASSAGE_TICK_S)
            try:
                await service.expire_passages()
            except Exception:  # a failed commit is retried on the next tick
                log.exception("closing passages failed")

    task = asyncio.create_task(tick(), name="passages")
    yield
    await stop_task(task)
    with contextlib.suppress(Exception):
        await service.flush_passages()


async def _cameras(app: web.Application) -> AsyncIterator[None]:
    """The attached cameras (Dahua) and watched folders run as tasks; every configured camera is watched
    for silence, and a lane that goes quiet is warned about once (and again after it recovers)."""
    settings, service, intake = app[keys.SETTINGS], app[keys.SERVICE], app[INTAKE]
    now = service.now()
    for cam in settings.cameras:
        health = service.camera(cam.id)
        health.watched_since, health.stale_after_s = now, cam.stale_after_s
    tasks = []
    ledger = None
    if any(cam.kind == "folder" for cam in settings.cameras):
        ledger = FolderLedger(settings.data_path / "folder-ledger.db")
        await asyncio.to_thread(ledger.start)
    for cam in settings.cameras:
        if cam.kind == "dahua":
            tasks.append(asyncio.create_task(DahuaSource(cam, intake).run(), name=f"dahua-{cam.id}"))
        elif cam.kind == "folder" and ledger is not None:
            tasks.append(
                asyncio.create_task(FolderSource(cam, intake, ledger).run(), name=f"folder-{cam.id}")
            )

    async def watch() -> None:
        while True:
            await asyncio.sleep(CAMERA_WATCH_S)
            warn_stale(service)

    tasks.append(asyncio.create_task(watch(), name="camera-watch"))
    yield
    for task in tasks:
        await stop_task(task)
    if ledger is not None:
        await asyncio.to_thread(ledger.stop)


def warn_stale(service: EdgeService) -> list[str]:
    """Log a warning for each camera that has just gone silent; return their ids."""
    now, gone = service.now(), []
    for cid, health in service.cameras.items():
        stale = health.stale(now)
        if stale and not health.stale_warned:
            since = health.last_seen_at or health.watched_since or now
            log.warning("camera %s is stale: nothing from it for %.0f s", cid, now - since)
            gone.append(cid)
        elif not stale and health.stale_warned:
            log.info("camera %s is back", cid)
        health.stale_warned = stale
    return gone


async def _simulator(app: web.Application) -> AsyncIterator[None]:
    """Simulated traffic (the demo): each read comes with the pictures a plate camera sends (a drawn scene
    and plate close-up), through the same intake as a real camera's push, so evidence works as in the field.
    A simulated camera configured in ``cameras`` is that camera (its lane, its silence watched)."""
    settings = app[keys.SETTINGS]
    sim_settings = settings.simulator
    if not sim_settings.enabled:
        yield
        return
    from .sources.intake import Pictures
    from .sources.simulator import SimulatedRead, TrafficSimulator, run_simulator, scene_pictures

    intake = app[INTAKE]
    configured = {cam.id: cam for cam in settings.cameras}
    sim = TrafficSimulator(
        settings.checkpoint,
        sim_settings.cameras,
        neighbour=sim_settings.neighbour,
        seed=sim_settings.seed,
        watchlisted=sim_settings.watchlisted,
        watchlisted_share=sim_settings.watchlisted_share,
        misread_rate=sim_settings.misread_rate,
    )

    async def emit(read: SimulatedRead) -> None:
        camera_read = CameraRead(
            plate=read.plate_read,
            colour=read.colour,
            captured_at=read.captured_at,
            confidence=read.confidence,
            lane=read.lane,
            direction=read.direction,  # type: ignore[arg-type]
            vehicle_type=read.vehicle_type,
        )
        camera = configured.get(read.camera_id) or CameraSettings(id=read.camera_id, token="simulator")
        try:
            drawn = await asyncio.to_thread(scene_pictures, read, settings.checkpoint)
            await intake.take(camera_read, camera, Pictures(snapshot=drawn.scene, plate=drawn.plate))
        except Exception:
            log.exception("simulated read not recorded")

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_simulator(sim, emit, vehicles_per_minute=sim_settings.vehicles_per_minute, stop=stop),
        name="simulator",
    )
    yield
    stop.set()
    await stop_task(task)


async def _close_sockets(app: web.Application) -> None:
    await close_sockets(app[keys.SOCKETS])
