"""GA/T 1400 (视图库, "VIID") as far as Cordon speaks it: the JSON shapes, codes and times. No I/O.

GA/T 1400.4 exchanges JSON objects under ``/VIID/`` over HTTP. Every object is wrapped in a named
envelope (``{"RegisterObject": {...}}``, ``{"MotorVehicleListObject": {"MotorVehicleObject": [...]}}``)
and every answer is a ``ResponseStatusObject`` (or a ``ResponseStatusListObject`` of them, one per
object of a list). Times are ``yyyyMMddHHmmss`` in the platform's local time, without a zone: the
reader supplies the offset. The field lists and code tables here are those of the public material
on GA/T 1400.3 and .4; docs/cameras.md lists which fields Cordon reads and what it assumed where
that material is thin.

Everything here parses untrusted JSON defensively: a record that does not fit raises
:class:`RecordError` with a reason, never anything else, so one bad record costs only itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum
from typing import Any

from .errors import CordonError

__all__ = [
    "IMAGE_PLATE",
    "IMAGE_SCENES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGES",
    "MAX_RECORDS",
    "Status",
    "RecordError",
    "SubImage",
    "VehicleRecord",
    "device_id_of",
    "format_time",
    "list_objects",
    "disposition_notification",
    "motor_vehicle_objects",
    "new_subscribe_id",
    "notification_objects",
    "parse_notification",
    "read_identity",
    "subscribe_object",
    "Notification",
    "parse_offset",
    "parse_record",
    "parse_time",
    "response_list",
    "response_status",
    "valid_device_id",
]

#: Records in one ``MotorVehicleListObject`` (or one notification); more is refused whole.
MAX_RECORDS = 100
#: Sub-images read from one record; further ones are ignored (and said so).
MAX_IMAGES = 8
#: Largest decoded picture; a bigger one is refused, the record kept.
MAX_IMAGE_BYTES = 8 * 1024 * 1024

_DEVICE_ID = re.compile(r"[0-9]{20}")
_TIME = re.compile(r"([0-9]{14})([0-9]{0,3})")
_OFFSET = re.compile(r"([+-])([0-9]{2}):?([0-9]{2})")


class Status(IntEnum):
    """``StatusCode`` of a ResponseStatusObject (GA/T 1400.4's table of status codes)."""

    OK = 0
    OTHER_ERROR = 1
    DEVICE_BUSY = 2
    DEVICE_ERROR = 3
    INVALID_OPERATION = 4
    INVALID_XML_FORMAT = 5
    INVALID_XML_CONTENT = 6
    INVALID_JSON_FORMAT = 7
    INVALID_JSON_CONTENT = 8
    REBOOT = 9


STATUS_STRINGS = {
    Status.OK: "正常",
    Status.OTHER_ERROR: "其他未知错误",
    Status.DEVICE_BUSY: "设备忙",
    Status.DEVICE_ERROR: "设备出错",
    Status.INVALID_OPERATION: "无效操作",
    Status.INVALID_XML_FORMAT: "XML格式不对",
    Status.INVALID_XML_CONTENT: "XML内容不对",
    Status.INVALID_JSON_FORMAT: "JSON格式不对",
    Status.INVALID_JSON_CONTENT: "JSON内容不对",
    Status.REBOOT: "系统重启中",
}

#: GA/T 1400.3 colour codes (``PlateColor``, ``VehicleColor``) as the names protocols.plates reads.
COLOURS = {
    "1": "black",
    "2": "white",
    "3": "grey",
    "4": "red",
    "5": "blue",
    "6": "yellow",
    "7": "orange",
    "8": "brown",
    "9": "green",
    "10": "purple",
    "11": "cyan",
    "12": "pink",
    "13": "transparent",
    "99": "other",
}

#: ``SubImageInfoObject.Type`` codes Cordon keeps: the plate crop, and the scene in order of preference
#: (vehicle picture, scene picture, vehicle close-up, composite of the passage).
IMAGE_PLATE = "02"
IMAGE_SCENES = ("01", "14", "09", "08")


class RecordError(CordonError, ValueError):
    """One object that does not fit; ``record_id`` is its id when it had a readable one."""

    def __init__(self, reason: str, record_id: str = "") -> None:
        super().__init__(reason)
        self.record_id = record_id


@dataclass(slots=True)
class SubImage:
    type: str
    data: bytes | None
    """The decoded picture; None when it could not be decoded (``error`` says why)."""
    error: str | None = None


@dataclass(slots=True)
class VehicleRecord:
    """One ``MotorVehicleObject``, as far as a checkpoint cares."""

    record_id: str
    device_id: str
    plate: str
    """``PlateNo`` as sent; ``无车牌`` when the record says no plate was found."""
    has_plate: bool
    plate_colour: str | None = None
    vehicle_class: str | None = None
    vehicle_colour: str | None = None
    vehicle_brand: str | None = None
    pass_time: float | None = None
    lane: int | None = None
    tollgate_id: str | None = None
    images: list[SubImage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was ignored of the record (extra images), for the answer and the log."""

    def picture(self, *types: str) -> SubImage | None:
        """The first decodable image of the first of ``types`` present."""
        for wanted in types:
            for image in self.images:
                if image.type == wanted and image.data is not None:
                    return image
        return None

    @property
    def image_errors(self) -> list[str]:
        return [image.error for image in self.images if image.error]


def valid_device_id(value: object) -> bool:
    """A GA/T 1400 device or platform code: 20 digits."""
    return isinstance(value, str) and _DEVICE_ID.fullmatch(value) is not None


def parse_offset(text: str) -> int:
    """``+08:00`` as seconds east of UTC; ValueError otherwise."""
    m = _OFFSET.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"utc offset {text!r} is not of the form +08:00")
    seconds = int(m[2]) * 3600 + int(m[3]) * 60
    if seconds > 14 * 3600 or int(m[3]) >= 60:
        raise ValueError(f"utc offset {text!r} is out of range")
    return -seconds if m[1] == "-" else seconds


def parse_time(value: object, offset_s: int) -> float:
    """``yyyyMMddHHmmss`` (optionally with milliseconds) in local time at ``offset_s`` -> unix seconds."""
    if not isinstance(value, str | int):
        raise ValueError(f"time {str(value)[:40]!r} is not yyyyMMddHHmmss")
    m = _TIME.fullmatch(str(value).strip())
    if m is None:
        raise ValueError(f"time {str(value)[:40]!r} is not yyyyMMddHHmmss")
    try:
        local = datetime.strptime(m[1], "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"time {m[1]!r} is not a real date and time") from None
    millis = int(m[2].ljust(3, "0")) if m[2] else 0
    return local.replace(tzinfo=timezone(timedelta(seconds=offset_s))).timestamp() + millis / 1000


def format_time(unix: float, offset_s: int) -> str:
    """Unix seconds as ``yyyyMMddHHmmss`` at ``offset_s``."""
    return (
        datetime.fromtimestamp(unix, UTC)
        .astimezone(timezone(timedelta(seconds=offset_s)))
        .strftime("%Y%m%d%H%M%S")
    )


def response_status(
    url: str, code: Status, object_id: str, now: float, offset_s: int, text: str = ""
) -> dict:
    """One ``ResponseStatusObject`` (without its envelope)."""
    return {
        "RequestURL": url,
        "StatusCode": int(code),
        "StatusString": (text or STATUS_STRINGS[code])[:256],
        "Id": object_id[:64],
        "LocalTime": format_time(now, offset_s),
    }


def response_list(statuses: list[dict]) -> dict:
    """The ``ResponseStatusListObject`` answer to a list of objects."""
    return {"ResponseStatusListObject": {"ResponseStatusObject": statuses}}


def list_objects(doc: object, outer: str, inner: str) -> list[Any]:
    """``{outer: {inner: [...]}}`` -> the list; a single object in place of the list is taken too."""
    if not isinstance(doc, dict) or outer not in doc:
        found = ", ".join(str(k)[:40] for k in doc) if isinstance(doc, dict) else type(doc).__name__
        raise RecordError(f"expected a {outer}, got {found[:200] or 'an empty object'}")
    body = doc[outer]
    if not isinstance(body, dict):
        raise RecordError(f"{outer} is not an object")
    items = body.get(inner)
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise RecordError(f"{outer} has no {inner} list")
    if len(items) > MAX_RECORDS:
        raise RecordError(f"{outer} holds {len(items)} objects, more than {MAX_RECORDS}")
    return items


def motor_vehicle_objects(doc: object) -> list[Any]:
    """The ``MotorVehicleObject`` list of a ``MotorVehicleListObject`` (RecordError for another shape)."""
    return list_objects(doc, "MotorVehicleListObject", "MotorVehicleObject")


def device_id_of(doc: object, envelope: str) -> str | None:
    """``DeviceID`` of ``{envelope: {"DeviceID": ...}}`` (Register, UnRegister, Keepalive) when valid."""
    body = doc.get(envelope) if isinstance(doc, dict) else None
    value = body.get("DeviceID") if isinstance(body, dict) else None
    return value if valid_device_id(value) else None


def notification_objects(doc: object) -> list[Any]:
    """The ``SubscribeNotificationObject`` list of a ``SubscribeNotificationListObject``."""
    return list_objects(doc, "SubscribeNotificationListObject", "SubscribeNotificationObject")


def _text(obj: dict, key: str, limit: int = 128) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        raise RecordError(f"{key} is not text", str(obj.get("MotorVehicleID") or "")[:64])
    value = value.strip()
    return value[:limit] or None


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    return None


def _images(obj: dict, record_id: str, notes: list[str]) -> list[SubImage]:
    holder = obj.get("SubImageList")
    if holder is None:
        return []
    items = holder.get("SubImageInfoObject") if isinstance(holder, dict) else None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise RecordError("SubImageList has no SubImageInfoObject list", record_id)
    if len(items) > MAX_IMAGES:
        notes.append(f"{len(items) - MAX_IMAGES} sub-images past the first {MAX_IMAGES} ignored")
    images = []
    for i, item in enumerate(items[:MAX_IMAGES]):
        if not isinstance(item, dict):
            images.append(SubImage("", None, f"sub-image {i + 1} is not an object"))
            continue
        kind = _text(item, "Type", 8) or ""
        label = f"sub-image {i + 1} (Type {kind or '?'})"
        data = item.get("Data")
        if not isinstance(data, str) or not data:
            # A record may point at a picture by StoragePath instead; Cordon does not fetch those.
            images.append(SubImage(kind, None, f"{label} carries no Data"))
            continue
        if len(data) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            images.append(SubImage(kind, None, f"{label} is larger than {MAX_IMAGE_BYTES} bytes"))
            continue
        try:
            raw = base64.b64decode(re.sub(r"\s+", "", data), validate=True)
        except (binascii.Error, ValueError):
            images.append(SubImage(kind, None, f"{label}: Data is not base64"))
            continue
        images.append(SubImage(kind, raw))
    return images


def parse_record(obj: object, offset_s: int) -> VehicleRecord:
    """One ``MotorVehicleObject`` -> VehicleRecord; RecordError says what is wrong with it."""
    if not isinstance(obj, dict):
        raise RecordError("a MotorVehicleObject is not an object")
    record_id = _text(obj, "MotorVehicleID", 64) or ""
    if not record_id:
        raise RecordError("MotorVehicleID is missing")
    device_id = _text(obj, "DeviceID", 32) or ""
    if device_id and not valid_device_id(device_id):
        raise RecordError(f"DeviceID {device_id!r} is not a 20-digit code", record_id)
    has_plate = _flag(obj.get("HasPlate"))
    plate = _text(obj, "PlateNo", 32) or ""
    if has_plate is False or not plate or plate == "-":
        plate, has_plate = "无车牌", False
    when = obj.get("PassTime") or obj.get("MarkTime") or obj.get("AppearTime")
    pass_time = None
    if when:
        try:
            pass_time = parse_time(when, offset_s)
        except ValueError as exc:
            raise RecordError(f"PassTime: {exc}", record_id) from None
    lane = None
    lane_text = _text(obj, "LaneNo", 8)
    if lane_text is not None:
        if (
            not (lane_text.isascii() and lane_text.isdigit()) or not 0 <= int(lane_text) <= 99
        ):  # "¹" is a digit to isdigit, not to int
            raise RecordError(f"LaneNo {lane_text!r} is not a lane number (0-99)", record_id)
        lane = int(lane_text)
    plate_colour = _text(obj, "PlateColor", 16)
    vehicle_colour = _text(obj, "VehicleColor", 16)
    notes: list[str] = []
    return VehicleRecord(
        record_id=record_id,
        device_id=device_id,
        plate=plate,
        has_plate=bool(has_plate) if has_plate is not None else True,
        plate_colour=COLOURS.get(plate_colour or "", plate_colour),
        vehicle_class=_text(obj, "VehicleClass", 32),
        vehicle_colour=COLOURS.get(vehicle_colour or "", vehicle_colour),
        vehicle_brand=_text(obj, "VehicleBrand", 32),
        pass_time=pass_time,
        lane=lane,
        tollgate_id=_text(obj, "TollgateID", 32),
        images=_images(obj, record_id, notes),
        notes=notes,
    )


# -- subscriptions (the hub as the subscribing, "upper" platform) --------------------------------------

#: ``SubscribeDetail`` code of motor vehicle records (GA/T 1400.4; 12 is faces, 7 checkpoint directory).
SUBSCRIBE_MOTOR_VEHICLES = "13"


def read_identity(platform_id: str, record_id: str) -> tuple[int, int]:
    """The (epoch, seq) a record of a 视图库 gets at the hub: the same for the same record however often
    it is notified. The epoch is the platform's (below 2**32, so never an edge's: those are milliseconds
    times 1000); the seq 62 bits of a hash of the platform and the record's ``MotorVehicleID``."""
    epoch = 1 + int.from_bytes(hashlib.sha256(f"viid-epoch:{platform_id}".encode()).digest()[:4], "big")
    digest = hashlib.sha256(f"viid:{platform_id}/{record_id}".encode()).digest()
    return epoch, 1 + (int.from_bytes(digest[:8], "big") >> 2)


def subscribe_object(
    *,
    subscribe_id: str,
    resource_uri: str,
    receive_addr: str,
    begin: float,
    end: float,
    offset_s: int,
    applicant: str = "cordon",
    org: str = "cordon",
    title: str = "Cordon ring: motor vehicle records",
) -> dict:
    """One ``SubscribeObject`` for motor vehicle records of the devices in ``resource_uri``."""
    return {
        "SubscribeID": subscribe_id,
        "Title": title,
        "SubscribeDetail": SUBSCRIBE_MOTOR_VEHICLES,
        "ResourceURI": resource_uri,
        "ApplicantName": applicant,
        "ApplicantOrg": org,
        "BeginTime": format_time(begin, offset_s),
        "EndTime": format_time(end, offset_s),
        "ReceiveAddr": receive_addr,
        "OperateType": 0,
        "Reason": "环省查缉防控圈 checkpoint watchlist matching",
    }


def new_subscribe_id(org_code: str, now: float, serial: int, offset_s: int) -> str:
    """A ``SubscribeID``: the applicant's 12-digit organisation code, ``03`` (subscription), the time
    and a 5-digit serial, as GA/T 1400.4 composes it."""
    org = (re.sub(r"[^0-9]", "", org_code) + "0" * 12)[:12]
    return f"{org}03{format_time(now, offset_s)}{serial % 100000:05d}"


@dataclass(slots=True)
class Notification:
    """One ``SubscribeNotificationObject`` with its motor vehicle records (still unparsed)."""

    notification_id: str
    subscribe_id: str
    records: list[Any]


def parse_notification(obj: object) -> Notification:
    """RecordError when the object is not a notification; a notification of other objects has no records."""
    if not isinstance(obj, dict):
        raise RecordError("a SubscribeNotificationObject is not an object")
    notification_id = _text(obj, "NotificationID", 64) or ""
    subscribe_id = _text(obj, "SubscribeID", 64) or ""
    holder = obj.get("MotorVehicleObjectList")
    records: list[Any] = []
    if holder is not None:
        items = holder.get("MotorVehicleObject") if isinstance(holder, dict) else None
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            raise RecordError("MotorVehicleObjectList has no MotorVehicleObject list", notification_id)
        if len(items) > MAX_RECORDS:
            raise RecordError(
                f"a notification holds {len(items)} records, more than {MAX_RECORDS}", notification_id
            )
        records = items
    return Notification(notification_id, subscribe_id, records)


def disposition_notification(
    *,
    notification_id: str,
    disposition_id: str,
    title: str,
    record: dict,
    now: float,
    offset_s: int,
) -> dict:
    """A ``DispositionNotificationListObject`` (布控告警) telling the platform one of its records hit."""
    return {
        "DispositionNotificationListObject": {
            "DispositionNotificationObject": [
                {
                    "NotificationID": notification_id,
                    "DispositionID": disposition_id,
                    "Title": title[:128],
                    "TriggerTime": format_time(now, offset_s),
                    "CntObjectID": str(record.get("MotorVehicleID", ""))[:64],
                    "MotorVehicleObject": record,
                }
            ]
        }
    }
