"""The tablet's quick-test API: the kit catalogue, a cassette photo or an analyzer export read by
machine, and the result the officers confirm, committed to the outbox as a ``KitResultEvent``.

The ID number arrives in the result's body, is hashed here with the deployment secret
(``kits.id_secret_file``) and is dropped: it is never stored, logged or sent on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from protocols.alerting import kit_alert, person_alert
from protocols.kits import (
    DrugCode,
    KitError,
    KitResult,
    MachineReading,
    PanelCall,
    PanelResult,
    SampleType,
    check_result,
    overall_call,
    raises_alert,
    subject_from_id,
)
from protocols.messages import KitResultEvent
from runtime.web import json_error, principal_of

from .. import keys
from ..outbox import PRIORITY_HIT
from .analyzers import MAX_EXPORT_BYTES, parse_export
from .reader import read_photo
from .state import KitsState


class TooLarge(web.HTTPClientError):
    status_code = 413


log = logging.getLogger(__name__)

Text64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


def _state(request: web.Request) -> KitsState:
    return request.app[keys.KITS]


async def catalogue(request: web.Request) -> web.Response:
    return web.Response(body=msgspec.json.encode(_state(request).catalogue), content_type="application/json")


async def _upload(request: web.Request, field: str, limit: int) -> bytes:
    """The named part of a multipart upload (or the raw body), within ``limit`` bytes; 400/413 otherwise."""
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise json_error(TooLarge, f"upload over {limit} bytes")
    if not request.content_type.startswith("multipart/"):
        data = await request.content.read(limit + 1)
    else:
        try:
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and getattr(part, "name", None) != field:
                part = await reader.next()
        except (ValueError, AssertionError) as exc:
            raise json_error(web.HTTPBadRequest, f"malformed multipart upload: {exc}") from None
        if part is None:
            raise json_error(web.HTTPBadRequest, f"no {field!r} part in the upload")
        data = await part.read_chunk(limit + 1)  # type: ignore[union-attr]
        while len(data) <= limit:
            more = await part.read_chunk(limit + 1 - len(data))  # type: ignore[union-attr]
            if not more:
                break
            data += more
    if len(data) > limit:
        raise json_error(TooLarge, f"upload over {limit} bytes")
    if not data:
        raise json_error(web.HTTPBadRequest, f"empty {field}")
    return data


def _reading_json(drug: str, reading: MachineReading) -> dict[str, object]:
    return {
        "drug": drug,
        "call": reading.call,
        "confidence": reading.confidence,
        "reason": reading.reason,
        "uncertain": reading.call == "uncertain",
        "machine": reading,
    }


async def read_cassette(request: web.Request) -> web.Response:
    """A cassette photo on the card -> the machine reading of each panel; a bad photo is a clear 400."""
    state = _state(request)
    try:
        kit = state.catalogue.get(request.query.get("kit", ""))
    except KitError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    data = await _upload(request, "photo", state.max_upload_bytes)
    reading = await asyncio.to_thread(read_photo, data, kit)
    if not reading.ok:
        raise json_error(web.HTTPBadRequest, f"photo not read: {reading.error}")
    sha = await asyncio.to_thread(state.keep_photo, data)
    return web.Response(
        body=msgspec.json.encode(
            {
                "kit_model": kit.model,
                "photo_sha256": sha,
                "px_per_mm": reading.px_per_mm,
                "panels": [_reading_json(p.drug, p.reading) for p in reading.panels],
            }
        ),
        content_type="application/json",
    )


async def read_analyzer(request: web.Request) -> web.Response:
    """An analyzer's CSV or JSON export -> each test's machine reading per panel (and the rows refused)."""
    fmt = request.query.get("format", "csv")
    data = await _upload(request, "export", MAX_EXPORT_BYTES)
    try:
        parsed = await asyncio.to_thread(parse_export, data, fmt, _state(request).catalogue)
    except KitError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    return web.Response(
        body=msgspec.json.encode(
            {
                "tests": [
                    {
                        "test_id": t.test_id,
                        "device_serial": t.device_serial,
                        "read_at": t.read_at,
                        "kit_model": t.kit_model,
                        "lot": t.lot,
                        "expiry": t.expiry,
                        "sample_type": t.sample_type,
                        "panels": [_reading_json(d, r) for d, r in t.panels],
                    }
                    for t in parsed.tests
                ],
                "problems": parsed.problems,
            }
        ),
        content_type="application/json",
    )


class MachineInput(MachineReading, forbid_unknown_fields=True):
    """A machine reading as the tablet sends it back: HTTP input, so an unknown field is an error here,
    while the same record on the wire to the hub tolerates one (protocols/messages.py)."""


class PanelInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    drug: DrugCode
    officer_call: PanelCall
    machine: MachineInput | None = None


class ResultInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id_number: Annotated[str, msgspec.Meta(min_length=4, max_length=32)]
    name: Annotated[str, msgspec.Meta(max_length=64)] = ""
    kit_model: Text64
    lot: Text64
    expiry: dt.date
    sample_type: SampleType
    panels: Annotated[list[PanelInput], msgspec.Meta(min_length=1, max_length=16)]
    sampled_at: float
    read_at: float
    second_officer: Text64
    source: Literal["manual", "analyzer", "photo"] = "manual"
    photo_sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    needs_lab: bool = False
    sample_a: Annotated[str, msgspec.Meta(max_length=64)] = ""
    sample_b: Annotated[str, msgspec.Meta(max_length=64)] = ""
    notes: Annotated[str, msgspec.Meta(max_length=200)] = ""


def _machine(reading: MachineInput | None) -> MachineReading | None:
    return None if reading is None else MachineReading(**msgspec.structs.asdict(reading))


async def save_result(request: web.Request) -> web.Response:
    """The officers' result: checked against its kit, flagged (expired kit, read outside the window),
    the subject hashed, committed to the outbox before answering; a positive or invalid one alerts."""
    state, service = _state(request), request.app[keys.SERVICE]
    if state.secret is None:
        raise json_error(web.HTTPServiceUnavailable, "quick tests need kits.id_secret_file configured")
    try:
        data = msgspec.json.decode(await request.read(), type=ResultInput)
    except msgspec.DecodeError as exc:
        # msgspec names the field, never echoes its value: the ID number cannot leak into this message.
        raise json_error(web.HTTPBadRequest, f"invalid result: {exc}") from None
    if data.photo_sha256 and not state.has_photo(data.photo_sha256):
        raise json_error(web.HTTPBadRequest, "photo_sha256: no such photo was uploaded here")
    principal = principal_of(request)
    officer = principal.name if principal else "?"
    try:
        subject = await asyncio.to_thread(subject_from_id, data.id_number, state.secret, data.name or None)
        result = KitResult(
            result_id=f"{service.checkpoint}-{uuid.uuid4().hex[:16]}",
            subject=subject,
            kit_model=data.kit_model,
            lot=data.lot,
            expiry=data.expiry,
            sample_type=data.sample_type,
            panels=[
                PanelResult(drug=p.drug, officer_call=p.officer_call, machine=_machine(p.machine))
                for p in data.panels
            ],
            sampled_at=data.sampled_at,
            read_at=data.read_at,
            officers=[officer[:64], data.second_officer],
            source=data.source,
            photo_sha256=data.photo_sha256,
            needs_lab=data.needs_lab,
            sample_a=data.sample_a or None,
            sample_b=data.sample_b or None,
            notes=data.notes,
        )
        result = check_result(result, state.catalogue)
    except (KitError, msgspec.ValidationError) as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    # Offline, against the mirror's person lists: the edge knows at once, uplink or not.
    hits = await request.app[keys.MIRROR].match_person(subject.id_hash, now=time.time())
    event = KitResultEvent(
        seq=1,
        checkpoint_officer=officer[:128],
        recorded_at=time.time(),
        result=result,
        person_hits=[h.entry_id for h in hits],
    )
    (committed,) = await service._commit([event], [PRIORITY_HIT])  # noqa: SLF001
    call = overall_call(result.panels)
    log.info("kit result %s: %s (%s)", result.result_id, call, result.kit_model)
    mirror, epoch, now = request.app[keys.MIRROR], request.app[keys.OUTBOX].epoch, time.time()
    # Into the edge's alert log and onto every tablet, as any alert; the hub raises the same ids on ingest.
    alerts = (
        [kit_alert(service.checkpoint, epoch, committed.seq, result, raised_at=now)]
        if raises_alert(result)
        else []
    )
    alerts += [
        person_alert(
            service.checkpoint, epoch, committed.seq, result, h, mirror.lists[h.list_id], raised_at=now
        )
        for h in hits
        if h.list_id in mirror.lists
    ]
    for alert in alerts:
        await service.on_alert(alert)
    frame = {
        "result_id": result.result_id,
        "result": call,
        "kit_model": result.kit_model,
        "id_last4": subject.id_last4,
        "kit_expired": result.kit_expired,
        "outside_read_window": result.outside_read_window,
        "id_problem": subject.id_problem,
        "person_hits": event.person_hits,
        "person_lists": [mirror.lists[h.list_id].name for h in hits if h.list_id in mirror.lists],
        "alert": bool(alerts),
        "alert_ids": [a.alert_id for a in alerts],
    }
    return web.Response(body=msgspec.json.encode(frame), content_type="application/json")
