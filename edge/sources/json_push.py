"""The generic JSON push source: a camera (or integration) POSTs one read per request.

``POST /api/v1/cameras/{camera_id}/reads`` (the camera authenticated by the CameraGate);
body: protocols.messages.CameraRead as JSON. The 200 answer is sent only after the read is committed
to the outbox.
"""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web

from protocols.messages import CameraRead, DecodeError, decode
from runtime.deadletters import DeadLetterStore
from runtime.sqlwriter import WriterClosed
from runtime.web import json_error

from ..service import ReadRejected
from ..settings import CameraSettings
from .intake import Intake, Pictures, Taken

log = logging.getLogger(__name__)


class JsonPushSource:
    def __init__(self, intake: Intake, dead: DeadLetterStore) -> None:
        self.intake = intake
        self.dead = dead

    async def handle(self, request: web.Request, camera: CameraSettings) -> web.Response:
        raw = await request.read()
        try:
            read = decode(CameraRead, raw)
        except DecodeError as exc:
            self.intake.service.camera(camera.id).errors += 1
            await self.dead.record(f"camera:{camera.id}", exc.reason, raw)
            raise json_error(web.HTTPBadRequest, exc.reason) from None
        taken = await take_or_answer(self.intake, self.dead, read, camera, raw)
        return web.json_response(taken.answer())


async def take_or_answer(
    intake: Intake,
    dead: DeadLetterStore,
    read: CameraRead,
    camera: CameraSettings,
    raw: bytes,
    pictures: Pictures | None = None,
) -> Taken:
    """Commit through the intake, turning its refusals into the HTTP answers a pushing camera gets."""
    try:
        return await intake.take(read, camera, pictures)
    except ReadRejected as exc:
        await dead.record(f"camera:{camera.id}", str(exc), raw)
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    except (sqlite3.Error, WriterClosed) as exc:
        # Not committed: the camera must not get a 200, and should retry.
        log.error("outbox write failed: %s", exc)
        raise json_error(web.HTTPServiceUnavailable, "outbox unavailable; retry") from None
