"""GA/T 1400 (视图库) devices pushing to the edge: the edge is their receiving platform.

A device (a checkpoint camera, or a platform pushing for cameras behind it) registers at
``POST /VIID/System/Register`` with HTTP digest (runtime/digest.py), keeps the registration alive
with ``/VIID/System/Keepalive`` (any accepted request does too), may ask ``GET /VIID/System/Time``
and leaves with ``/VIID/System/UnRegister``. Between, it names itself in the ``User-Identify``
header, from the address it registered from; an unknown, unregistered or lapsed device gets 401 (the
standard's cue to register again), and every refusal is logged and counted.

``POST /VIID/MotorVehicles`` carries a ``MotorVehicleListObject``. Each record becomes a read exactly
like a Hikvision push (committed to the outbox before the answer, its base64 pictures kept as evidence)
and gets its own entry in the ``ResponseStatusListObject`` answer: a bad record its error code and a dead
letter, the others taken. A record the edge already took from that device (a device that resends after
a lost answer) is answered as taken again, not recorded twice. Persons, faces, non-motor vehicles,
things and scenes are answered "invalid operation: not supported" per object and counted.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from protocols import viid
from protocols.messages import CameraRead
from runtime.deadletters import DeadLetterStore
from runtime.digest import DigestError, DigestGuard
from runtime.sqlwriter import WriterClosed
from runtime.web import address_allowed

from ..service import ReadRejected
from ..settings import CameraSettings, ViidSettings
from .intake import Intake, Pictures

log = logging.getLogger(__name__)

#: Register, Keepalive and the other small objects.
MAX_SMALL_BODY = 64 * 1024
CHUNK = 64 * 1024
#: (device, MotorVehicleID) pairs remembered to answer a resent record without recording it twice.
RECENT_RECORDS = 20_000
CONTENT_TYPE = "application/json"
UNSUPPORTED = {
    "Persons": ("PersonListObject", "PersonObject", "PersonID"),
    "Faces": ("FaceListObject", "FaceObject", "FaceID"),
    "NonMotorVehicles": ("NonMotorVehicleListObject", "NonMotorVehicleObject", "NonMotorVehicleID"),
    "Things": ("ThingListObject", "ThingObject", "ThingID"),
    "Scenes": ("SceneListObject", "SceneObject", "SceneID"),
}


class Refused(Exception):
    """A request the edge does not take; ``response`` is the answer it gets."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(slots=True)
class Sender:
    """Whoever registers: a camera pushing its own records, or a platform pushing for cameras (``via``)."""

    device_id: str
    username: str
    password: str
    own: CameraSettings | None
    cameras: dict[str, CameraSettings] = field(default_factory=dict)
    """The cameras whose records this sender may push, by their device_id."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)

    @property
    def health_id(self) -> str:
        return self.own.id if self.own is not None else f"viid:{self.device_id}"


@dataclass(slots=True)
class Registration:
    remote: str
    expires_at: float


class ViidSource:
    def __init__(
        self,
        settings: ViidSettings,
        cameras: list[CameraSettings],
        intake: Intake,
        dead: DeadLetterStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.intake = intake
        self.dead = dead
        self._clock = clock
        self.offset_s = viid.parse_offset(settings.utc_offset)
        self.server_id = settings.server_id or "0" * 20
        self.guard = DigestGuard(settings.realm, nonce_ttl_s=settings.nonce_ttl_s)
        self.senders: dict[str, Sender] = {}
        for cam in cameras:
            if cam.kind != "viid":
                continue
            sender_id = cam.via or cam.device_id
            sender = self.senders.get(sender_id)
            if sender is None:
                sender = self.senders[sender_id] = Sender(
                    sender_id,
                    username=cam.username or settings.username or sender_id,
                    password=cam.password or settings.password,
                    own=None,
                )
            if not cam.via:
                sender.own = cam
                sender.username = cam.username or settings.username or sender_id
                sender.password = cam.password or settings.password
            sender.cameras[cam.device_id] = cam
            sender.nets += [ipaddress.ip_network(n, strict=False) for n in cam.allow_from]
        self.registered: dict[str, Registration] = {}
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.unsupported = 0
        self.refused = 0

    # -- answers ---------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._clock()

    def _status(
        self,
        request: web.Request,
        code: viid.Status,
        object_id: str = "",
        text: str = "",
        http: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        body = {
            "ResponseStatusObject": viid.response_status(
                request.path, code, object_id, self._now(), self.offset_s, text
            )
        }
        return web.Response(
            status=http,
            text=json.dumps(body, ensure_ascii=False),
            content_type=CONTENT_TYPE,
            charset="utf-8",
            headers=headers,
        )

    def _refuse(
        self, request: web.Request, health_id: str, reason: str, *, http: int = 401, challenge: bool = False
    ) -> Refused:
        self.refused += 1
        self.intake.service.camera(health_id).refused += 1
        ident = request.headers.get("User-Identify", "")[:40]
        log.warning(
            "viid: refused %s %s from %s (%r): %s",
            request.method,
            request.path,
            request.remote,
            ident,
            reason,
        )
        headers = {"WWW-Authenticate": self.guard.challenge()} if challenge else None
        code = viid.Status.INVALID_OPERATION
        return Refused(self._status(request, code, ident, reason, http=http, headers=headers))

    # -- who is asking -----------------------------------------------------------------------------
    def authenticate(self, request: web.Request, *, registering: str | None = None) -> Sender:
        """The registered sender of this request, or Refused with the answer it gets.

        ``registering``: the DeviceID of a Register body; the digest is then required and the sender
        need not be registered yet."""
        ident = registering or request.headers.get("User-Identify", "").strip()
        sender = self.senders.get(ident)
        if sender is None:
            shown = ident[:40] or "(no User-Identify)"
            raise self._refuse(request, "(unknown)", f"device {shown} is not configured at this checkpoint")
        if not address_allowed(request.remote, sender.nets):
            raise self._refuse(
                request, sender.health_id, f"source address {request.remote} is not allowed", http=403
            )
        header = request.headers.get("Authorization", "")
        if header:
            try:
                self.guard.verify(
                    request.method,
                    request.raw_path,
                    header,
                    lambda name: sender.password if name == sender.username else None,
                )
            except DigestError as exc:
                if exc.stale:  # an old or forgotten nonce: the protocol, not an intrusion
                    headers = {"WWW-Authenticate": self.guard.challenge(stale=True)}
                    raise Refused(
                        self._status(
                            request, viid.Status.INVALID_OPERATION, ident, str(exc), http=401, headers=headers
                        )
                    ) from None
                raise self._refuse(request, sender.health_id, f"digest: {exc}", challenge=True) from None
        elif registering is not None or self.settings.require_digest:
            # The first request of the digest exchange: answered with a challenge, not counted.
            headers = {"WWW-Authenticate": self.guard.challenge()}
            raise Refused(
                self._status(
                    request,
                    viid.Status.INVALID_OPERATION,
                    ident,
                    "digest required",
                    http=401,
                    headers=headers,
                )
            )
        now = self._now()
        if registering is None:
            reg = self.registered.get(sender.device_id)
            if reg is None or reg.expires_at < now:
                self.registered.pop(sender.device_id, None)
                raise self._refuse(request, sender.health_id, f"device {ident} is not registered")
            if reg.remote != request.remote:
                raise self._refuse(
                    request,
                    sender.health_id,
                    f"device {ident} registered from {reg.remote}, not {request.remote}",
                )
        self.registered[sender.device_id] = Registration(
            str(request.remote), now + self.settings.register_ttl_s
        )
        for cam in sender.cameras.values():
            self.intake.service.camera(cam.id).last_seen_at = now
        return sender

    async def _small_body(self, request: web.Request, envelope: str) -> tuple[bytes, object]:
        raw = await _read_limited(request, MAX_SMALL_BODY)
        if raw is None:
            raise Refused(
                self._status(request, viid.Status.INVALID_JSON_CONTENT, "", "body too large", http=413)
            )
        if not raw.strip():
            return raw, {}  # nothing to say who is asking: refused as unknown, 401
        try:
            return raw, json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            await self.dead.record("viid", f"{request.path}: not JSON", raw)
            raise Refused(
                self._status(
                    request, viid.Status.INVALID_JSON_FORMAT, "", f"{envelope} is not JSON", http=400
                )
            ) from None

    # -- System ------------------------------------------------------------------------------------
    async def register(self, request: web.Request) -> web.Response:
        try:
            _, doc = await self._small_body(request, "RegisterObject")
            device = viid.device_id_of(doc, "RegisterObject")
            if device is None:
                raise self._refuse(request, "(unknown)", "RegisterObject has no 20-digit DeviceID")
            ident = request.headers.get("User-Identify")
            if ident and ident.strip() != device:
                raise self._refuse(
                    request, "(unknown)", f"User-Identify {ident[:40]!r} is not {device}", http=400
                )
            sender = self.authenticate(request, registering=device)
        except Refused as exc:
            return exc.response
        log.info("viid: device %s registered from %s", sender.device_id, request.remote)
        return self._status(request, viid.Status.OK, sender.device_id)

    async def unregister(self, request: web.Request) -> web.Response:
        try:
            _, doc = await self._small_body(request, "UnRegisterObject")
            sender = self.authenticate(request)
        except Refused as exc:
            return exc.response
        device = viid.device_id_of(doc, "UnRegisterObject") or sender.device_id
        self.registered.pop(sender.device_id, None)
        log.info("viid: device %s unregistered", sender.device_id)
        return self._status(request, viid.Status.OK, device)

    async def keepalive(self, request: web.Request) -> web.Response:
        try:
            _, doc = await self._small_body(request, "KeepaliveObject")
            sender = self.authenticate(request)
        except Refused as exc:
            return exc.response
        return self._status(
            request, viid.Status.OK, viid.device_id_of(doc, "KeepaliveObject") or sender.device_id
        )

    async def system_time(self, request: web.Request) -> web.Response:
        try:
            self.authenticate(request)
        except Refused as exc:
            return exc.response
        offset = self.offset_s
        zone = f"{'+' if offset >= 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
        body = {
            "SystemTimeObject": {
                "VIIDServerID": self.server_id,
                "TimeMode": "1",
                "LocalTime": viid.format_time(self._now(), offset),
                "TimeZone": zone,
            }
        }
        return web.Response(text=json.dumps(body), content_type=CONTENT_TYPE, charset="utf-8")

    # -- records -------------------------------------------------------------------------------------
    async def _body(self, request: web.Request, sender: Sender) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            reason = f"body of {request.content_length} bytes is over the limit of {limit}"
            await self.dead.record(f"viid:{sender.device_id}", reason, b"")
            raise Refused(self._status(request, viid.Status.INVALID_JSON_CONTENT, "", reason, http=413))
        data = bytearray()
        raw = await _read_limited(request, limit, data)
        if raw is None:
            reason = f"body is over the limit of {limit} bytes"
            await self.dead.record(f"viid:{sender.device_id}", reason, bytes(data))
            raise Refused(self._status(request, viid.Status.INVALID_JSON_CONTENT, "", reason, http=413))
        return raw

    def _camera_for(self, sender: Sender, record: viid.VehicleRecord) -> CameraSettings | None:
        cam = sender.cameras.get(record.device_id)
        if cam is not None:
            return cam
        return sender.own  # a camera's own records (a channel code in DeviceID falls back to it too)

    async def motor_vehicles(self, request: web.Request) -> web.Response:
        try:
            sender = self.authenticate(request)
            raw = await self._body(request, sender)
        except Refused as exc:
            return exc.response
        health = self.intake.service.camera(sender.health_id)
        source = f"viid:{sender.device_id}"
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            health.errors += 1
            health.last_error = f"MotorVehicles: not JSON: {exc}"[:300]
            await self.dead.record(source, "MotorVehicles: not JSON", raw)
            log.warning("viid: %s sent a body that is not JSON", sender.device_id)
            return self._status(request, viid.Status.INVALID_JSON_FORMAT, "", "not JSON", http=400)
        try:
            objects = viid.motor_vehicle_objects(doc)
        except viid.RecordError as exc:
            health.errors += 1
            health.last_error = f"MotorVehicles: {exc}"[:300]
            await self.dead.record(source, f"MotorVehicles: {exc}", raw)
            return self._status(request, viid.Status.INVALID_JSON_CONTENT, "", str(exc), http=400)
        statuses = []
        taken = 0
        busy = False
        for obj in objects:
            status = await self._take(request, sender, obj, busy)
            busy = busy or status["StatusCode"] == viid.Status.DEVICE_BUSY
            taken += status["StatusCode"] == viid.Status.OK
            statuses.append(status)
        if busy and not taken:
            # Nothing committed: the device must not think it delivered; it sends the list again.
            return self._status(request, viid.Status.DEVICE_BUSY, "", "outbox unavailable; retry", http=503)
        return web.Response(
            text=json.dumps(viid.response_list(statuses), ensure_ascii=False),
            content_type=CONTENT_TYPE,
            charset="utf-8",
        )

    async def _take(self, request: web.Request, sender: Sender, obj: object, busy: bool) -> dict:
        """Commit one MotorVehicleObject; its entry of the answer's status list."""
        now, url, source = self._now(), request.path, f"viid:{sender.device_id}"

        def status(code: viid.Status, record_id: str, text: str = "") -> dict:
            return viid.response_status(url, code, record_id, now, self.offset_s, text)

        try:
            record = viid.parse_record(obj, self.offset_s)
        except viid.RecordError as exc:
            health = self.intake.service.camera(sender.health_id)
            health.errors += 1
            health.last_error = str(exc)[:300]
            await self.dead.record(source, f"MotorVehicleObject: {exc}", _raw(obj))
            log.warning("viid: %s: record %r refused: %s", sender.device_id, exc.record_id, exc)
            return status(viid.Status.INVALID_JSON_CONTENT, exc.record_id, str(exc))
        camera = self._camera_for(sender, record)
        if camera is None:
            reason = (
                f"DeviceID {record.device_id} is not a camera of this checkpoint behind {sender.device_id}"
            )
            await self.dead.record(source, reason, _raw(obj))
            log.warning("viid: %s", reason)
            return status(viid.Status.INVALID_OPERATION, record.record_id, reason)
        key = (camera.device_id, record.record_id)
        if key in self._recent:
            return status(viid.Status.OK, record.record_id, "正常 (already taken)")
        if busy:
            return status(viid.Status.DEVICE_BUSY, record.record_id, "outbox unavailable; retry")
        scene = record.picture(*viid.IMAGE_SCENES)
        plate = record.picture(viid.IMAGE_PLATE)
        if scene is None:  # a picture of a type not named: better than none
            scene = next((i for i in record.images if i.data is not None and i is not plate), None)
        read = CameraRead(
            plate=record.plate[:32],
            colour=(record.plate_colour or "")[:32] or None,
            captured_at=record.pass_time,
            lane=record.lane,
            vehicle_type=record.vehicle_class,
            event_id=record.record_id[:128],
            vehicle_colour=(record.vehicle_colour or "")[:32] or None,
            vehicle_brand=record.vehicle_brand if record.vehicle_brand not in (None, "0") else None,
        )
        pictures = Pictures(snapshot=scene.data if scene else None, plate=plate.data if plate else None)
        try:
            taken = await self.intake.take(read, camera, pictures)
        except ReadRejected as exc:
            await self.dead.record(source, str(exc), _raw(obj))
            return status(viid.Status.INVALID_JSON_CONTENT, record.record_id, str(exc))
        except (sqlite3.Error, WriterClosed) as exc:
            log.error("viid: outbox write failed: %s", exc)
            return status(viid.Status.DEVICE_BUSY, record.record_id, "outbox unavailable; retry")
        self._recent[key] = None
        while len(self._recent) > RECENT_RECORDS:
            self._recent.popitem(last=False)
        problems = (
            record.image_errors + record.notes + ([taken.evidence_error] if taken.evidence_error else [])
        )
        if record.image_errors:
            health = self.intake.service.camera(camera.id)
            health.errors += 1
            health.last_error = "; ".join(record.image_errors)[:300]
            log.warning("viid: record %s kept without: %s", record.record_id, "; ".join(record.image_errors))
        text = "正常" + (f" ({'; '.join(problems)})" if problems else "")
        return status(viid.Status.OK, record.record_id, text)

    async def not_supported(self, request: web.Request) -> web.Response:
        """Persons, faces, non-motor vehicles, things, scenes: answered per object, counted, logged."""
        try:
            sender = self.authenticate(request)
            raw = await self._body(request, sender)
        except Refused as exc:
            return exc.response
        kind = request.match_info["kind"]
        outer, inner, id_key = UNSUPPORTED[kind]
        self.unsupported += 1
        log.warning(
            "viid: %s sent %s, which this checkpoint does not take (motor vehicles only)",
            sender.device_id,
            kind,
        )
        text = f"不支持 not supported: this checkpoint takes MotorVehicles only, not {kind}"
        try:
            objects = viid.list_objects(json.loads(raw.decode("utf-8")), outer, inner)
        except (UnicodeDecodeError, ValueError):  # RecordError included: a ValueError too
            return self._status(request, viid.Status.INVALID_OPERATION, "", text)
        ids = [str(o.get(id_key, ""))[:64] if isinstance(o, dict) else "" for o in objects]
        now = self._now()
        statuses = [
            viid.response_status(request.path, viid.Status.INVALID_OPERATION, i, now, self.offset_s, text)
            for i in ids
        ]
        return web.Response(
            text=json.dumps(viid.response_list(statuses), ensure_ascii=False),
            content_type=CONTENT_TYPE,
            charset="utf-8",
        )


async def _read_limited(request: web.Request, limit: int, into: bytearray | None = None) -> bytes | None:
    """The whole body, or None past ``limit`` bytes (``into`` then holds what was read)."""
    data = into if into is not None else bytearray()
    while chunk := await request.content.read(CHUNK):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


def _raw(obj: object) -> bytes:
    """A record as bytes for its dead letter (its pictures included, the store keeps the first 64 KiB)."""
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError):
        return repr(obj).encode("utf-8", "replace")
