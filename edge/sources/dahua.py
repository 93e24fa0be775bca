"""Dahua ITC traffic cameras: the edge attaches to the camera's event stream (the camera never calls us).

``GET {url}/cgi-bin/eventManager.cgi?action=attach&codes=[TrafficJunction]&heartbeat=N`` with digest
(or basic) login answers ``multipart/x-mixed-replace; boundary=…`` and never ends: every part is a
short text, either ``Heartbeat`` or ``Code=TrafficJunction;action=Pulse;index=0;data={…JSON…}``. The
JSON's ``TrafficCar`` carries ``PlateNumber``, ``PlateColor``, ``VehicleColor``, ``Lane``; ``UTC`` is
the capture time. After committing the read the edge fetches ``/cgi-bin/snapshot.cgi?channel=N`` as its
evidence picture. Parts are split on the boundary line, not on ``Content-Length`` (firmware gets it
wrong), so a torn part costs that part only. A silent, dropped or refused stream is reconnected with
exponential backoff; every failure is counted on the camera and its reason kept in ``last_error``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

from protocols.errors import CordonError
from protocols.messages import CameraRead
from runtime.sqlwriter import WriterClosed

from ..service import ReadRejected
from ..settings import CameraSettings
from .intake import Intake, PictureError, Pictures

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 60.0
HEARTBEAT_S = 5
"""The camera sends a heartbeat this often; three missed ones mean the stream is dead."""
CONNECT_TIMEOUT_S = 10.0
SNAPSHOT_TIMEOUT_S = 5.0
MAX_PART_BYTES = 256 * 1024
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024
CODES = "TrafficJunction"
DIRECTIONS = {"obverse": "in", "reverse": "out"}

_BOUNDARY = re.compile(r"boundary=\"?([^\";]+)\"?", re.I)


class StreamError(CordonError, RuntimeError):
    """The event stream broke or was refused; the message says how."""


class AuthFailed(StreamError):
    """The camera refused the edge's login."""


async def stream_parts(
    content: aiohttp.StreamReader, boundary: bytes, max_part: int = MAX_PART_BYTES
) -> AsyncIterator[bytes]:
    """The bodies of a multipart/x-mixed-replace stream.

    A part with a ``Content-Length`` is yielded as soon as that many bytes are in, so an event is not held
    back until the next part's boundary. A part whose body runs into the next boundary (the firmware
    sent fewer bytes than it announced: a torn part) is cut there and yielded as it is, torn, and the
    stream goes on from that boundary; a part without a length ends at the next boundary.
    """
    delim = b"--" + boundary.strip(b"-")
    buf = bytearray()
    eof = False

    async def more() -> None:
        nonlocal eof
        chunk = await content.readany()
        if not chunk:
            eof = True
        buf.extend(chunk)
        if len(buf) > 2 * max_part:
            raise StreamError(f"no part boundary within {2 * max_part} bytes")

    while True:
        start = buf.find(delim)
        while start < 0 or buf.find(b"\r\n\r\n", start) < 0 and buf.find(b"\n\n", start) < 0:
            if eof:
                if buf.strip() and not buf.strip().endswith(delim + b"--"):
                    raise StreamError("stream ended inside a part")
                return
            await more()
            start = buf.find(delim)
        if buf.startswith(delim + b"--", start):
            return  # the closing boundary
        crlf = buf.find(b"\r\n\r\n", start)
        head_end = crlf + 4 if crlf >= 0 else buf.find(b"\n\n", start) + 2
        headers = bytes(buf[start:head_end]).lower()
        m = re.search(rb"content-length:\s*(\d{1,9})", headers)
        length = int(m[1]) if m else None
        if length is not None and length > max_part:
            raise StreamError(f"part of {length} bytes announced, more than {max_part}")
        while True:
            next_delim = buf.find(delim, head_end)
            if (
                length is not None
                and len(buf) - head_end >= length
                and (next_delim < 0 or next_delim >= head_end + length)
            ):
                body_end = head_end + length
                break
            if next_delim >= 0:
                body_end = next_delim  # no length, or a torn part: it ends where the next one starts
                break
            if eof:
                raise StreamError("stream ended inside a part")
            if len(buf) - head_end > max_part:
                raise StreamError(f"part larger than {max_part} bytes")
            await more()
        body = bytes(buf[head_end:body_end]).strip()
        del buf[:body_end]
        yield body


def parse_event(body: bytes) -> tuple[str, dict[str, Any] | None]:
    """(code, data) of one part: ("Heartbeat", None), or e.g. ("TrafficJunction", {...}).
    Raises ValueError for a part that is neither."""
    text = body.decode("utf-8", "replace").strip()
    if text.lower() == "heartbeat":
        return "Heartbeat", None
    head, sep, data_text = text.partition("data=")
    fields = dict(kv.split("=", 1) for kv in head.strip(";").split(";") if "=" in kv)
    code = fields.get("Code", "")
    if not code:
        raise ValueError(f"not an event part: {text[:80]!r}")
    if not sep:
        return code, {}
    try:
        data = json.loads(data_text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{code} event with torn data ({exc.msg} at {exc.pos} of {len(data_text)})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{code} event data is not an object")
    return code, data


def camera_read(data: dict[str, Any], action: str = "Pulse") -> CameraRead:
    """The generic read of a TrafficJunction event (text cut to the wire's limits)."""
    car = data.get("TrafficCar") if isinstance(data.get("TrafficCar"), dict) else {}
    obj = data.get("Object") if isinstance(data.get("Object"), dict) else {}
    plate = str(car.get("PlateNumber") or obj.get("Text") or "")
    lane = car.get("Lane", data.get("Lane"))
    utc = data.get("UTC")
    colour = car.get("PlateColor")
    vehicle = data.get("Vehicle")
    vehicle_type = car.get("VehicleType") or (vehicle.get("Category") if isinstance(vehicle, dict) else None)
    event_id = data.get("EventID") or data.get("GroupID")
    vehicle_colour = car.get("VehicleColor")
    brand = car.get("VehicleSign") or (vehicle.get("Text") if isinstance(vehicle, dict) else None)
    return CameraRead(
        plate=plate[:32],
        colour=str(colour)[:32] if colour else None,
        captured_at=float(utc) if isinstance(utc, int | float) and utc > 0 else None,
        lane=lane if isinstance(lane, int) and 0 <= lane <= 99 else None,
        direction=DIRECTIONS.get(str(data.get("JunctionDirection", "")).lower()),  # type: ignore[arg-type]
        vehicle_type=str(vehicle_type)[:32] if vehicle_type else None,
        event_id=f"dahua:{event_id}"[:128] if event_id is not None else None,
        vehicle_colour=str(vehicle_colour)[:32] if vehicle_colour and vehicle_colour != "Unknown" else None,
        vehicle_brand=str(brand)[:32] if brand and brand != "Unknown" else None,
    )


class DahuaSource:
    def __init__(self, camera: CameraSettings, intake: Intake) -> None:
        self.camera = camera
        self.intake = intake
        self.base = camera.url.rstrip("/")
        self.connects = 0
        self.heartbeats = 0
        self.connected = False

    def _session(self) -> aiohttp.ClientSession:
        if self.camera.auth == "digest" and self.camera.username:
            return aiohttp.ClientSession(
                middlewares=(aiohttp.DigestAuthMiddleware(self.camera.username, self.camera.password),)
            )
        headers = {}
        if self.camera.username:
            headers["Authorization"] = aiohttp.BasicAuth(self.camera.username, self.camera.password).encode()
        return aiohttp.ClientSession(headers=headers)

    async def run(self) -> None:
        """Stay attached until cancelled: reconnect with backoff after every failure."""
        health = self.intake.service.camera(self.camera.id)
        delay = RECONNECT_MIN_S
        async with self._session() as http:
            while True:
                got_parts = False
                try:
                    async for _ in self._attach(http):
                        got_parts = True
                    raise StreamError("camera closed the event stream")
                except (StreamError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    reason = str(exc) or type(exc).__name__
                    health.errors += 1
                    health.last_error = reason[:300]
                    log.warning("dahua camera %s: %s; reconnecting in %.1f s", self.camera.id, reason, delay)
                finally:
                    self.connected = False
                if got_parts:
                    delay = RECONNECT_MIN_S  # it worked for a while: start the backoff over
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _attach(self, http: aiohttp.ClientSession) -> AsyncIterator[None]:
        url = URL(
            f"{self.base}/cgi-bin/eventManager.cgi?action=attach&codes=[{CODES}]&heartbeat={HEARTBEAT_S}",
            encoded=True,
        )  # the camera wants the brackets as they are
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=HEARTBEAT_S * 3)
        async with http.get(url, timeout=timeout) as resp:
            if resp.status == 401:
                raise AuthFailed("camera refused the login (401): check username and password")
            if resp.status != 200:
                raise StreamError(f"event stream answered HTTP {resp.status}")
            m = _BOUNDARY.search(resp.headers.get("Content-Type", ""))
            if m is None:
                raise StreamError(
                    f"event stream is not multipart: {resp.headers.get('Content-Type', '')[:80]}"
                )
            self.connects += 1
            self.connected = True
            log.info("dahua camera %s: attached to %s", self.camera.id, self.base)
            async for body in stream_parts(resp.content, m[1].encode()):
                await self._on_part(http, body)
                yield

    async def _on_part(self, http: aiohttp.ClientSession, body: bytes) -> None:
        service = self.intake.service
        health = service.camera(self.camera.id)
        health.last_seen_at = service.now()
        try:
            code, data = parse_event(body)
        except ValueError as exc:
            health.errors += 1
            health.last_error = str(exc)
            log.warning("dahua camera %s: %s", self.camera.id, exc)
            return
        if code == "Heartbeat":
            self.heartbeats += 1
            return
        if code != CODES or data is None or "TrafficCar" not in data:
            return  # another event the camera was not asked for, or one without a vehicle
        read = camera_read(data)
        try:
            await self.intake.take(read, self.camera, lambda: self._snapshot(http))
        except ReadRejected as exc:
            health.last_error = str(exc)
            log.warning("dahua camera %s: read refused: %s", self.camera.id, exc)
        except (sqlite3.Error, WriterClosed) as exc:
            # The camera will not resend; say loudly that this read is lost.
            health.errors += 1
            health.last_error = f"outbox write failed: {exc}"
            log.error(
                "dahua camera %s: read %r NOT recorded, outbox write failed: %s",
                self.camera.id,
                read.plate,
                exc,
            )

    async def _snapshot(self, http: aiohttp.ClientSession) -> Pictures:
        url = f"{self.base}/cgi-bin/snapshot.cgi?channel={self.camera.channel}"
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=SNAPSHOT_TIMEOUT_S)) as resp:
                if resp.status != 200:
                    raise PictureError(f"snapshot answered HTTP {resp.status}")
                data = await resp.content.read(MAX_SNAPSHOT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PictureError(f"snapshot failed: {str(exc) or type(exc).__name__}") from None
        if len(data) > MAX_SNAPSHOT_BYTES:
            raise PictureError(f"snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
        return Pictures(snapshot=data)
