"""Who may push reads as a camera: its token or basic credentials, from an allowed address.

Every refusal is logged and counted on the camera (CameraHealth.refused) and answered with a reason:
401 for missing or wrong credentials, 403 for a source address outside the camera's ``allow_from``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging

from aiohttp import web

from runtime.web import address_allowed, bearer, json_error, token_matches

from ..service import EdgeService
from ..settings import CameraSettings

log = logging.getLogger(__name__)

PUSH_KINDS = ("json", "hikvision")
REALM = "cordon-edge"


class CameraGate:
    def __init__(self, cameras: list[CameraSettings], service: EdgeService) -> None:
        self.cameras = {c.id: c for c in cameras if c.kind in PUSH_KINDS}
        self.service = service
        self._nets = {c.id: [ipaddress.ip_network(n, strict=False) for n in c.allow_from] for c in cameras}

    def authenticate(self, request: web.Request) -> CameraSettings:
        """The camera this request speaks for, or an HTTP error (the refusal is counted and logged)."""
        camera_id = request.match_info["camera_id"]
        camera = self.cameras.get(camera_id)
        if camera is None:
            raise self._refuse(request, "(unknown)", camera_id, web.HTTPUnauthorized, "unknown camera")
        if not self._address_allowed(camera, request.remote):
            raise self._refuse(
                request,
                camera.id,
                camera_id,
                web.HTTPForbidden,
                f"source address {request.remote} is not in this camera's allow_from",
            )
        token = request.headers.get("X-Camera-Token") or bearer(request) or request.query.get("token")
        if camera.token and token_matches(token, camera.token):
            return camera
        header = request.headers.get("Authorization", "")
        if camera.username and header.startswith("Basic "):
            user, password = _basic(header)
            if token_matches(user, camera.username) & token_matches(password, camera.password):
                return camera
        if camera.username and not header and token is None:
            # A basic-auth camera asks without credentials first and retries after the challenge:
            # that is the protocol, not an intrusion, so it is not counted.
            raise _challenge()
        raise self._refuse(
            request,
            camera.id,
            camera_id,
            web.HTTPUnauthorized,
            "wrong camera credentials",
            challenge=bool(camera.username),
        )

    def _address_allowed(self, camera: CameraSettings, remote: str | None) -> bool:
        return address_allowed(remote, self._nets.get(camera.id, []))

    def _refuse(
        self,
        request: web.Request,
        health_id: str,
        camera_id: str,
        status: type[web.HTTPException],
        reason: str,
        challenge: bool = False,
    ) -> web.HTTPException:
        self.service.camera(health_id).refused += 1
        log.warning("refused push for camera %r from %s: %s", camera_id[:64], request.remote, reason)
        if challenge:
            return _challenge(reason)
        return json_error(status, reason)


def _challenge(reason: str = "credentials required") -> web.HTTPException:
    exc = json_error(web.HTTPUnauthorized, reason)
    exc.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return exc


def _basic(header: str) -> tuple[str | None, str | None]:
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password
