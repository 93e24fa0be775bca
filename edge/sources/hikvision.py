"""Hikvision ISAPI ANPR push ("HTTP listening" / alarm host): a camera POSTs each plate it reads.

The body is ``multipart/form-data``: an ``anpr.xml`` part (an ISAPI ``EventNotificationAlert`` with
``eventType`` ANPR) and JPEG parts named in its ``pictureInfoList`` (``licensePlatePicture.jpg``, the
plate close-up; ``detectionPicture.jpg``, the scene, with ``plateRect`` in thousandths of its size).
Other events (the ``videoloss`` heartbeat, motion) arrive the same way or as a bare XML body; they are
answered 200 and ignored. The firmware's element names are read as sent, misspellings and all
(``vehicelRect``, ``vehileSubLogoRecog``), matched by local name, case-insensitively, namespace ignored.

Every limit is hard: part count, part size, total size; the XML goes through defusedxml with DTDs
forbidden, so entity bombs and external entities are a 400, never an expansion. The charset is the
XML prolog's, else the part header's, else UTF-8; Chinese firmware that declares UTF-8 but sends GBK
is read as GB18030 (GBK's superset) and logged. The camera gets its 200 after the read is committed.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
from aiohttp import BodyPartReader, web

from protocols.errors import CordonError
from protocols.messages import CameraRead
from runtime.deadletters import DeadLetterStore
from runtime.web import json_error

from ..evidence import PlateRect
from ..settings import CameraSettings
from .intake import Intake, Pictures
from .json_push import take_or_answer

log = logging.getLogger(__name__)

MAX_PARTS = 8
MAX_XML_BYTES = 256 * 1024
MAX_PART_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024
CHUNK = 64 * 1024

#: Hikvision's direction of travel relative to the camera; "forward" is a vehicle driving towards it.
DIRECTIONS = {"forward": "in", "reverse": "out"}

_PROLOG = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]{1,40})[\"']")
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._-]{1,40})", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


class TooLarge(web.HTTPClientError):
    """413 with our own JSON reason (aiohttp's own class insists on its wording)."""

    status_code = 413


class HikvisionError(CordonError, ValueError):
    """A push that is not a usable ISAPI event; ``status`` is the HTTP answer it gets."""

    def __init__(self, reason: str, status: type[web.HTTPException] = web.HTTPBadRequest) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(slots=True)
class Part:
    name: str
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class PictureInfo:
    file_name: str
    type: str
    plate_rect: PlateRect | None = None


@dataclass(slots=True)
class AnprEvent:
    """What an EventNotificationAlert says, as far as a checkpoint cares."""

    event_type: str
    event_state: str | None = None
    date_time: str | None = None
    uuid: str | None = None
    plate: str = ""
    plate_colour: str | None = None
    confidence: float | None = None
    lane: int | None = None
    direction: str | None = None
    vehicle_type: str | None = None
    vehicle_colour: str | None = None
    vehicle_brand: str | None = None
    pictures: list[PictureInfo] = field(default_factory=list)
    charset: str = "utf-8"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _child(elem: Element | None, name: str) -> Element | None:
    if elem is None:
        return None
    name = name.lower()
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _text(elem: Element | None, name: str) -> str | None:
    c = _child(elem, name)
    if c is None or c.text is None:
        return None
    value = c.text.strip()
    return value or None


def _number(text: str | None, lo: float, hi: float) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and lo <= value <= hi else None


def decode_xml(data: bytes, header_charset: str | None = None) -> tuple[str, str]:
    """The XML as text and the charset it was read in; HikvisionError when no charset fits."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "strict"), "utf-8"
    m = _PROLOG.match(data)
    declared = m[1].decode("ascii").lower() if m else None
    tried: list[str] = []
    for charset in dict.fromkeys(c for c in (declared, header_charset, "utf-8") if c):
        tried.append(charset)
        try:
            return data.decode(charset), charset
        except (LookupError, UnicodeDecodeError):
            continue
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise HikvisionError(f"anpr.xml is neither {' nor '.join(tried)} nor GB18030 text") from None
    log.warning("anpr.xml declared %s but is GBK/GB18030; read as GB18030", "/".join(tried))
    return text, "gb18030"


def parse_event(data: bytes, header_charset: str | None = None) -> AnprEvent:
    """Parse an EventNotificationAlert safely; HikvisionError says what is wrong with it."""
    if len(data) > MAX_XML_BYTES:
        raise HikvisionError(f"anpr.xml is {len(data)} bytes, more than {MAX_XML_BYTES}", TooLarge)
    text, charset = decode_xml(data, header_charset)
    # The text is decoded already; the prolog's encoding would only mislead the parser.
    text = _XML_DECL.sub("", text, count=1)
    try:
        root = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise HikvisionError(
            f"anpr.xml refused: {type(exc).__name__} (DTDs and entities are not accepted)"
        ) from None
    except ParseError as exc:
        raise HikvisionError(f"anpr.xml is not well-formed XML: {exc}") from None
    if _local(root.tag) != "eventnotificationalert":
        raise HikvisionError(
            f"anpr.xml: root element is <{_local(root.tag)[:40]}>, not EventNotificationAlert"
        )
    event = AnprEvent(
        event_type=(_text(root, "eventType") or "").strip()[:40],
        charset=charset,
        event_state=_text(root, "eventState"),
        date_time=_text(root, "dateTime"),
        uuid=_text(root, "UUID"),
    )
    anpr = _child(root, "ANPR")
    if event.event_type.upper() != "ANPR" or anpr is None:
        return event
    event.plate = _text(anpr, "licensePlate") or ""
    event.plate_colour = _text(anpr, "plateColor")
    event.confidence = _number(_text(anpr, "confidenceLevel"), 0, 100)
    lane = _number(_text(anpr, "line") or _text(anpr, "laneNo"), 0, 99)
    event.lane = int(lane) if lane is not None else None
    event.direction = DIRECTIONS.get((_text(anpr, "direction") or "").lower())
    event.vehicle_type = _text(anpr, "vehicleType")
    info = _child(anpr, "vehicleInfo")
    event.vehicle_colour = _text(info, "color")
    event.vehicle_brand = _text(info, "vehicleLogoRecog")
    if event.vehicle_brand == "0":
        event.vehicle_brand = None  # 0 is "not recognised"
    for pic in _child(anpr, "pictureInfoList") or []:
        if _local(pic.tag) != "pictureinfo":
            continue
        rect = _child(pic, "plateRect")
        plate_rect = None
        if rect is not None:
            nums = [_number(_text(rect, k), 0, 1000) for k in ("X", "Y", "width", "height")]
            if all(n is not None for n in nums):
                plate_rect = PlateRect(*(int(n) for n in nums))  # type: ignore[arg-type]
        event.pictures.append(PictureInfo(_text(pic, "fileName") or "", _text(pic, "type") or "", plate_rect))
    return event


def camera_read(event: AnprEvent) -> CameraRead:
    """The generic read of an ANPR event (text cut to the wire's limits: the camera is untrusted)."""
    return CameraRead(
        plate=event.plate[:32],
        colour=(event.plate_colour or None) and event.plate_colour[:32],
        captured_at=event.date_time,
        confidence=event.confidence,
        lane=event.lane,
        direction=event.direction,  # type: ignore[arg-type]
        vehicle_type=(event.vehicle_type or None) and event.vehicle_type[:32],
        event_id=(event.uuid or None) and event.uuid[:128],
        vehicle_colour=(event.vehicle_colour or None) and event.vehicle_colour[:32],
        vehicle_brand=(event.vehicle_brand or None) and event.vehicle_brand[:32],
    )


def match_pictures(event: AnprEvent, images: list[Part]) -> Pictures:
    """Which JPEG part is the scene and which the plate: by the pictureInfoList's file names and types,
    else by the part's own name."""
    by_name = {}
    for img in images:
        for key in (img.filename, img.name):
            if key:
                by_name.setdefault(key.lower(), img)
    pictures = Pictures()
    for info in event.pictures:
        part = by_name.get(info.file_name.lower()) or by_name.get(f"{info.type.lower()}.jpg")
        kind = info.type.lower()
        if "plate" in kind:
            pictures.plate = part.data if part else pictures.plate
        elif kind in ("detectionpicture", "vehiclepicture", "scenepicture") or info.plate_rect is not None:
            if part is not None:
                pictures.snapshot = part.data
            pictures.plate_rect = info.plate_rect or pictures.plate_rect
    for img in images:  # parts the list did not name
        key = f"{img.filename} {img.name}".lower()
        if pictures.plate is None and "plate" in key:
            pictures.plate = img.data
        elif pictures.snapshot is None and "plate" not in key:
            pictures.snapshot = img.data
    return pictures


async def read_parts(
    request: web.Request,
    *,
    max_parts: int = MAX_PARTS,
    max_part: int = MAX_PART_BYTES,
    max_total: int = MAX_TOTAL_BYTES,
) -> list[Part]:
    """Every part of a multipart body, within hard limits; HikvisionError otherwise."""
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:
        raise HikvisionError(f"not a multipart body: {exc}") from None
    parts: list[Part] = []
    total = 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise HikvisionError("nested multipart is not accepted")
            if len(parts) >= max_parts:
                raise HikvisionError(f"more than {max_parts} parts", TooLarge)
            data = bytearray()
            while chunk := await part.read_chunk(CHUNK):
                data += chunk
                total += len(chunk)
                if len(data) > max_part:
                    raise HikvisionError(f"part {part.name!r} larger than {max_part} bytes", TooLarge)
                if total > max_total:
                    raise HikvisionError(f"body larger than {max_total} bytes", TooLarge)
            parts.append(
                Part(part.name or "", part.filename or "", part.headers.get("Content-Type", ""), bytes(data))
            )
    except HikvisionError:
        raise
    except (ValueError, AssertionError, RuntimeError, UnicodeDecodeError) as exc:
        raise HikvisionError(
            f"truncated or malformed multipart body after {len(parts)} parts: "
            f"{str(exc)[:200] or type(exc).__name__}"
        ) from None
    return parts


def _is_xml(part: Part) -> bool:
    names = f"{part.name} {part.filename}".lower()
    return (
        ".xml" in names
        or "xml" in part.content_type.lower()
        or names.strip() in ("anpr", "eventnotificationalert")
    )


class HikvisionSource:
    def __init__(self, intake: Intake, dead: DeadLetterStore) -> None:
        self.intake = intake
        self.dead = dead
        self.heartbeats = 0

    async def handle(self, request: web.Request, camera: CameraSettings) -> web.Response:
        health = self.intake.service.camera(camera.id)
        raw_xml = b""
        try:
            if request.content_type.startswith("multipart/"):
                parts = await read_parts(request)
            else:  # heartbeats and picture-less firmware send the bare XML
                body = await request.content.read(MAX_XML_BYTES + 1)
                parts = [Part("anpr.xml", "", request.headers.get("Content-Type", ""), body)]
            xml_parts = [p for p in parts if _is_xml(p)]
            if not xml_parts:
                raise HikvisionError(
                    f"no XML part among {len(parts)} parts "
                    f"({', '.join(p.name or p.filename or '?' for p in parts)[:200]})"
                )
            xml = xml_parts[0]
            raw_xml = xml.data
            m = _CHARSET.search(xml.content_type)
            event = parse_event(xml.data, m[1].lower() if m else None)
        except HikvisionError as exc:
            health.errors += 1
            health.last_error = str(exc)
            await self.dead.record(f"camera:{camera.id}", str(exc), raw_xml)
            log.warning("camera %s: push refused: %s", camera.id, exc)
            raise json_error(exc.status, str(exc)) from None
        if event.event_type.upper() != "ANPR":
            self.heartbeats += 1
            health.last_seen_at = self.intake.service.now()
            return web.json_response({"ignored": event.event_type or "(no eventType)"})
        images = [p for p in parts if p is not xml]
        pictures = match_pictures(event, images)
        taken = await take_or_answer(self.intake, self.dead, camera_read(event), camera, raw_xml, pictures)
        answer: dict[str, Any] = taken.answer()
        if event.vehicle_colour or event.vehicle_brand:
            answer["vehicle"] = {"colour": event.vehicle_colour, "brand": event.vehicle_brand}
        return web.json_response(answer)
