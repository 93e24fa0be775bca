"""A 视图库 (GA/T 1400 video image platform) as an upstream of reads: the hub subscribes to a platform's
motor vehicle records for the ring's checkpoints and takes its notifications through the same ingest
as the edges' reads.

``ViidSubscriber`` keeps one platform's link: it registers (HTTP digest, ``/VIID/System/Register``),
subscribes (``POST /VIID/Subscribes``, ``SubscribeDetail`` 13, ``ResourceURI`` the configured devices,
``ReceiveAddr`` the hub's ``/VIID/SubscribeNotifications``), keeps alive, renews the subscription
(``PUT /VIID/Subscribes`` with a later ``EndTime``) ``renew_before_s`` before it ends, and starts
over (register, subscribe) whenever the platform answers 401 or refuses the renewal: a platform that
restarted has forgotten both. A hub that restarts subscribes anew at start.

``parse_notifications`` turns a ``SubscribeNotificationListObject`` into reads (central/web/viid.py
serves the door). Each record's identity is
derived from the platform's code and its ``MotorVehicleID`` (protocols.viid.read_identity), so a
notification sent twice, or by an old subscription next to a new one, is stored once by the ingest's
own idempotency. A record of a device the settings do not map to a checkpoint, or one that does not
parse, is a dead letter; the notification is still answered taken, or the platform would resend it
for ever. Hits on records of a platform with ``report_hits`` go back to it as disposition
notifications (布控告警), never a covert or restricted list's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from central.settings import ViidPlatformSettings
from protocols import viid
from protocols.errors import CordonError
from protocols.messages import CameraRead, PlateRead
from protocols.reads import plate_read
from runtime.web import address_allowed

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 20.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
MAX_NOTIFICATION_BYTES = 32 * 1024**2
MAX_QUEUED_REPORTS = 1000
CONTENT_TYPE = "application/VIID+JSON;charset=UTF-8"


def _secret(value: str, path: str, what: str) -> str:
    if not path:
        return value
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


class ViidRefused(CordonError, RuntimeError):
    """The platform answered with an error: ``status`` its HTTP status."""

    def __init__(self, what: str, status: int) -> None:
        super().__init__(f"{what}: HTTP {status}")
        self.status = status


@dataclass(slots=True)
class ViidState:
    """What the console and the logs see of one platform's link."""

    name: str
    registered: bool = False
    subscribe_id: str | None = None
    subscribed_until: float | None = None
    last_keepalive_at: float | None = None
    last_error: str | None = None
    registrations: int = 0
    subscriptions: int = 0
    renewals: int = 0
    notifications: int = 0
    records: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    reports: int = 0
    report_failures: int = 0


@dataclass(slots=True)
class HitReport:
    record: dict[str, Any]
    title: str
    alert_id: str


class ViidPlatform:
    """One configured platform: its settings with the secrets read, its identity, its link state."""

    def __init__(self, settings: ViidPlatformSettings) -> None:
        self.settings = settings
        self.password = _secret(settings.password, settings.password_file, f"viid platform {settings.name!r}")
        self.notify_token = _secret(
            settings.notify_token, settings.notify_token_file, f"viid platform {settings.name!r}"
        )
        self.offset_s = viid.parse_offset(settings.utc_offset)
        self.epoch = viid.read_identity(settings.platform_id, "")[0]
        self.nets = [ipaddress.ip_network(n, strict=False) for n in settings.allow_from]
        self.state = ViidState(settings.name)
        self.reports: asyncio.Queue[HitReport] = asyncio.Queue(MAX_QUEUED_REPORTS)

    @property
    def receive_addr(self) -> str:
        url = self.settings.receive_url
        if not self.notify_token:
            return url
        return f"{url}{'&' if '?' in url else '?'}token={self.notify_token}"

    def address_allowed(self, remote: str | None) -> bool:
        return address_allowed(remote, self.nets)

    def checkpoint_of(self, record: viid.VehicleRecord) -> str | None:
        mapping = self.settings.checkpoints
        return mapping.get(record.device_id) or (
            mapping.get(record.tollgate_id or "") if record.tollgate_id else None
        )


class ViidSubscriber:
    """Keeps one platform's registration and subscription alive, and sends it the hits it should hear."""

    def __init__(self, platform: ViidPlatform, clock: Callable[[], float] = time.time) -> None:
        self.platform = platform
        self._clock = clock
        self._serial = itertools.count(1)

    def _session(self) -> aiohttp.ClientSession:
        s = self.platform.settings
        return aiohttp.ClientSession(
            base_url=s.url.rstrip("/") + "/",
            middlewares=(aiohttp.DigestAuthMiddleware(s.username or s.hub_id, self.platform.password),),
            headers={"User-Identify": s.hub_id, "Content-Type": CONTENT_TYPE},
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        )

    async def run(self) -> None:
        """Until cancelled: register, subscribe, keep alive, renew; start over after any refusal."""
        state, s = self.platform.state, self.platform.settings
        delay = RETRY_MIN_S
        async with self._session() as session:
            reporter = asyncio.create_task(self._report_hits(session), name=f"viid-report-{s.name}")
            try:
                while True:
                    try:
                        await self._step(session)
                        delay = RETRY_MIN_S
                        await asyncio.sleep(s.keepalive_s)
                    except (ViidRefused, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                        state.last_error = f"{type(exc).__name__}: {exc}"[:500]
                        log.warning("viid %s: %s; again in %.0f s", s.name, state.last_error, delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, RETRY_MAX_S)
            finally:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter

    async def _step(self, session: aiohttp.ClientSession) -> None:
        state = self.platform.state
        now = self._clock()
        if not state.registered:
            await self._register(session)
        elif not await self._keepalive(session):
            state.registered, state.subscribe_id = False, None  # the platform forgot us: it restarted
            log.warning(
                "viid %s: the platform no longer knows the hub; registering again",
                self.platform.settings.name,
            )
            await self._register(session)
        if state.subscribe_id is None:
            await self._subscribe(session)
        elif (state.subscribed_until or 0) - now <= self.platform.settings.renew_before_s:
            await self._renew(session)
        state.last_error = None

    async def _post(self, session: aiohttp.ClientSession, method: str, path: str, body: object) -> Any:
        async with session.request(method, path.lstrip("/"), json=body) as resp:
            if resp.status != 200:
                raise ViidRefused(f"{method} {path}", resp.status)
            try:
                return await resp.json(content_type=None)
            except ValueError:
                raise ViidRefused(f"{method} {path}: answer is not JSON", resp.status) from None

    async def _register(self, session: aiohttp.ClientSession) -> None:
        s = self.platform.settings
        await self._post(session, "POST", "/VIID/System/Register", {"RegisterObject": {"DeviceID": s.hub_id}})
        self.platform.state.registered = True
        self.platform.state.registrations += 1
        log.info("viid %s: registered as %s", s.name, s.hub_id)

    async def _keepalive(self, session: aiohttp.ClientSession) -> bool:
        body = {"KeepaliveObject": {"DeviceID": self.platform.settings.hub_id}}
        try:
            await self._post(session, "POST", "/VIID/System/Keepalive", body)
        except ViidRefused as exc:
            if exc.status == 401:
                return False
            raise
        self.platform.state.last_keepalive_at = self._clock()
        return True

    def _subscription(self, subscribe_id: str, now: float) -> dict:
        p, s = self.platform, self.platform.settings
        return viid.subscribe_object(
            subscribe_id=subscribe_id,
            resource_uri=",".join(sorted(s.checkpoints)),
            receive_addr=p.receive_addr,
            begin=now,
            end=now + s.subscribe_ttl_s,
            offset_s=p.offset_s,
            applicant=s.hub_id,
            org=s.hub_id[:12],
        )

    @staticmethod
    def _accepted(answer: object, subscribe_id: str) -> bool:
        try:
            statuses = viid.list_objects(answer, "ResponseStatusListObject", "ResponseStatusObject")
        except viid.RecordError:
            single = answer.get("ResponseStatusObject") if isinstance(answer, dict) else None
            statuses = [single] if isinstance(single, dict) else []
        return any(
            isinstance(st, dict)
            and str(st.get("StatusCode")) == "0"
            and st.get("Id", subscribe_id) == subscribe_id
            for st in statuses
        )

    async def _subscribe(self, session: aiohttp.ClientSession) -> None:
        p, state = self.platform, self.platform.state
        now = self._clock()
        subscribe_id = viid.new_subscribe_id(p.settings.hub_id[:12], now, next(self._serial), p.offset_s)
        body = {"SubscribeListObject": {"SubscribeObject": [self._subscription(subscribe_id, now)]}}
        answer = await self._post(session, "POST", "/VIID/Subscribes", body)
        if not self._accepted(answer, subscribe_id):
            raise ViidRefused("POST /VIID/Subscribes: subscription not accepted", 200)
        state.subscribe_id, state.subscribed_until = subscribe_id, now + p.settings.subscribe_ttl_s
        state.subscriptions += 1
        log.info(
            "viid %s: subscribed (%s) to %d devices",
            p.settings.name,
            subscribe_id,
            len(p.settings.checkpoints),
        )

    async def _renew(self, session: aiohttp.ClientSession) -> None:
        p, state = self.platform, self.platform.state
        now = self._clock()
        assert state.subscribe_id is not None
        body = {"SubscribeListObject": {"SubscribeObject": [self._subscription(state.subscribe_id, now)]}}
        try:
            answer = await self._post(session, "PUT", "/VIID/Subscribes", body)
            renewed = self._accepted(answer, state.subscribe_id)
        except ViidRefused:
            renewed = False
        if not renewed:  # the platform lost it, or renews no subscription: subscribe anew
            log.warning(
                "viid %s: renewal of %s refused; subscribing anew", p.settings.name, state.subscribe_id
            )
            state.subscribe_id = None
            await self._subscribe(session)
            return
        state.subscribed_until = now + p.settings.subscribe_ttl_s
        state.renewals += 1

    async def _report_hits(self, session: aiohttp.ClientSession) -> None:
        p = self.platform
        while True:
            report = await p.reports.get()
            body = viid.disposition_notification(
                notification_id=f"{p.settings.hub_id}{next(self._serial):012d}",
                disposition_id=p.settings.disposition_id,
                title=report.title,
                record=report.record,
                now=self._clock(),
                offset_s=p.offset_s,
            )
            try:
                await self._post(session, "POST", "/VIID/DispositionNotifications", body)
                p.state.reports += 1
            except (ViidRefused, aiohttp.ClientError, TimeoutError) as exc:
                p.state.report_failures += 1
                log.warning("viid %s: hit %s not reported: %s", p.settings.name, report.alert_id, exc)


@dataclass(slots=True)
class Parsed:
    """A notification list made into reads, per checkpoint, with what could not be taken."""

    reads: dict[str, list[PlateRead]] = field(default_factory=dict)
    records: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    """(checkpoint, seq) -> the record as sent (without its pictures), for reporting a hit back."""
    dead: list[tuple[str, bytes]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)


def parse_notifications(platform: ViidPlatform, doc: object, url: str, now: float) -> Parsed:
    """Reads from a ``SubscribeNotificationListObject``; raises RecordError when it is none."""
    out = Parsed()
    for obj in viid.notification_objects(doc):
        try:
            note = viid.parse_notification(obj)
        except viid.RecordError as exc:
            out.dead.append((f"notification: {exc}", msgspec.json.encode(obj)))
            out.statuses.append(
                viid.response_status(
                    url, viid.Status.INVALID_JSON_CONTENT, exc.record_id, now, platform.offset_s, str(exc)
                )
            )
            continue
        for raw in note.records:
            try:
                record = viid.parse_record(raw, platform.offset_s)
            except viid.RecordError as exc:
                out.dead.append((f"record {exc.record_id!r}: {exc}", msgspec.json.encode(raw)))
                continue
            checkpoint = platform.checkpoint_of(record)
            if checkpoint is None:
                out.dead.append(
                    (
                        f"record {record.record_id}: device {record.device_id} is not mapped to a checkpoint",
                        msgspec.json.encode(raw),
                    )
                )
                continue
            _, seq = viid.read_identity(platform.settings.platform_id, record.record_id)
            camera = CameraRead(
                plate=record.plate[:32],
                colour=(record.plate_colour or "")[:32] or None,
                lane=record.lane,
                vehicle_type=record.vehicle_class,
                event_id=record.record_id[:128],
                vehicle_colour=(record.vehicle_colour or "")[:32] or None,
                vehicle_brand=record.vehicle_brand if record.vehicle_brand not in (None, "0") else None,
            )
            read = plate_read(
                camera, f"viid:{record.device_id}", record.pass_time if record.pass_time is not None else now
            )
            out.reads.setdefault(checkpoint, []).append(msgspec.structs.replace(read, seq=seq))
            if isinstance(raw, dict):
                out.records[(checkpoint, seq)] = {k: v for k, v in raw.items() if k != "SubImageList"}
        out.statuses.append(
            viid.response_status(url, viid.Status.OK, note.notification_id, now, platform.offset_s)
        )
    return out
