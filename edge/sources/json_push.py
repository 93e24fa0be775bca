"""The generic JSON push source: a camera (or integration) POSTs one read per request.

``POST /api/v1/cameras/{camera_id}/reads`` with the camera's token in ``X-Camera-Token``,
``Authorization: Bearer`` or ``?token=``; body: protocols.messages.CameraRead as JSON.
The 200 answer is sent only after the read is committed to the outbox.
"""

from __future__ import annotations

import logging
import sqlite3

from aiohttp import web

from protocols.messages import CameraRead, DecodeError, decode
from runtime.deadletters import DeadLetterStore
from runtime.sqlwriter import WriterClosed
from runtime.web import bearer, json_error, token_matches

from ..service import EdgeService, ReadRejected
from ..settings import CameraSettings

log = logging.getLogger(__name__)


class JsonPushSource:
    def __init__(self, cameras: list[CameraSettings], service: EdgeService, dead: DeadLetterStore) -> None:
        self.cameras = {c.id: c for c in cameras if c.kind == "json"}
        self.service = service
        self.dead = dead

    def authenticate(self, request: web.Request) -> CameraSettings:
        camera_id = request.match_info["camera_id"]
        camera = self.cameras.get(camera_id)
        given = request.headers.get("X-Camera-Token") or bearer(request) or request.query.get("token")
        if camera is None or not token_matches(given, camera.token):
            health = self.service.camera(camera_id if camera else "(unknown)")
            health.refused += 1
            log.warning("refused push for camera %r from %s", camera_id[:64], request.remote)
            raise json_error(web.HTTPUnauthorized, "unknown camera or wrong camera token")
        return camera

    async def handle(self, request: web.Request) -> web.Response:
        camera = self.authenticate(request)
        raw = await request.read()
        try:
            read = decode(CameraRead, raw)
        except DecodeError as exc:
            self.service.camera(camera.id).errors += 1
            await self.dead.record(f"camera:{camera.id}", exc.reason, raw)
            raise json_error(web.HTTPBadRequest, exc.reason) from None
        try:
            recorded = await self.service.record(read, camera.id, camera.lane)
        except ReadRejected as exc:
            await self.dead.record(f"camera:{camera.id}", str(exc), raw)
            raise json_error(web.HTTPBadRequest, str(exc)) from None
        except (sqlite3.Error, WriterClosed) as exc:
            # Not committed: the camera must not get a 200, and should retry.
            log.error("outbox write failed: %s", exc)
            raise json_error(web.HTTPServiceUnavailable, "outbox unavailable; retry") from None
        return web.json_response({
            "seq": recorded.seq, "epoch": self.service.outbox.epoch, "plate": recorded.plate,
            "plate_valid": recorded.plate_valid, "plate_problem": recorded.plate_problem,
        })
