"""A small simulated 视图库 (GA/T 1400 platform) for the hub's subscriber tests: a real aiohttp app.

It takes registrations with HTTP digest, keepalives, subscriptions (``POST``/``PUT /VIID/Subscribes``)
and disposition notifications (布控告警), and sends ``SubscribeNotifications`` to a subscription's
``ReceiveAddr`` when a test asks it to. ``restart()`` forgets everything, as a rebooted platform does.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from protocols import viid
from runtime.digest import DigestError, DigestGuard

PLATFORM_ID = "37142800005030000001"
USER, PASSWORD = "37140000002000000001", "platform-pw"


class SimulatedPlatform:
    def __init__(self) -> None:
        self.guard = DigestGuard("viid-sim")
        self.registered: set[str] = set()
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.dispositions: list[dict[str, Any]] = []
        self.registrations = 0
        self.keepalives = 0
        self.subscribes = 0
        self.renewals = 0
        self.restarts = 0

    def restart(self) -> None:
        """The platform rebooted: registrations, subscriptions and nonces are gone."""
        self.guard = DigestGuard("viid-sim")
        self.registered.clear()
        self.subscriptions.clear()
        self.restarts += 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/VIID/System/Register", self._register)
        app.router.add_post("/VIID/System/Keepalive", self._keepalive)
        app.router.add_post("/VIID/Subscribes", self._subscribe)
        app.router.add_put("/VIID/Subscribes", self._renew)
        app.router.add_post("/VIID/DispositionNotifications", self._disposition)
        return app

    @staticmethod
    def _answer(request: web.Request, code: int = 0, status: int = 200, **headers: str) -> web.Response:
        body = {
            "ResponseStatusObject": {
                "RequestURL": request.path,
                "StatusCode": code,
                "StatusString": "",
                "Id": "",
            }
        }
        return web.json_response(body, status=status, headers=headers or None)

    async def _register(self, request: web.Request) -> web.Response:
        await request.read()
        header = request.headers.get("Authorization")
        if not header:
            return self._answer(request, 4, 401, **{"WWW-Authenticate": self.guard.challenge()})
        try:
            self.guard.verify(
                request.method, request.raw_path, header, lambda u: PASSWORD if u == USER else None
            )
        except DigestError as exc:
            return self._answer(
                request, 4, 401, **{"WWW-Authenticate": self.guard.challenge(stale=exc.stale)}
            )
        self.registered.add(request.headers.get("User-Identify", ""))
        self.registrations += 1
        return self._answer(request)

    def _known(self, request: web.Request) -> bool:
        return request.headers.get("User-Identify", "") in self.registered

    async def _keepalive(self, request: web.Request) -> web.Response:
        await request.read()
        if not self._known(request):
            return self._answer(request, 4, 401)
        self.keepalives += 1
        return self._answer(request)

    async def _subscribe(self, request: web.Request) -> web.Response:
        if not self._known(request):
            return self._answer(request, 4, 401)
        doc = json.loads(await request.read())
        objects = viid.list_objects(doc, "SubscribeListObject", "SubscribeObject")
        statuses = []
        for obj in objects:
            self.subscriptions[obj["SubscribeID"]] = obj
            self.subscribes += 1
            statuses.append({"RequestURL": request.path, "StatusCode": 0, "Id": obj["SubscribeID"]})
        return web.json_response(viid.response_list(statuses))

    async def _renew(self, request: web.Request) -> web.Response:
        if not self._known(request):
            return self._answer(request, 4, 401)
        doc = json.loads(await request.read())
        statuses = []
        for obj in viid.list_objects(doc, "SubscribeListObject", "SubscribeObject"):
            known = obj["SubscribeID"] in self.subscriptions
            if known:
                self.subscriptions[obj["SubscribeID"]].update(obj)
                self.renewals += 1
            statuses.append(
                {"RequestURL": request.path, "StatusCode": 0 if known else 4, "Id": obj["SubscribeID"]}
            )
        return web.json_response(viid.response_list(statuses))

    async def _disposition(self, request: web.Request) -> web.Response:
        if not self._known(request):
            return self._answer(request, 4, 401)
        doc = json.loads(await request.read())
        self.dispositions += viid.list_objects(
            doc, "DispositionNotificationListObject", "DispositionNotificationObject"
        )
        return self._answer(request)

    async def notify(
        self, records: list[dict[str, Any]], notification_id: str, subscribe_id: str | None = None
    ) -> tuple[int, Any]:
        """Send one SubscribeNotifications to the subscription's ReceiveAddr, as the platform would."""
        sub = self.subscriptions[subscribe_id] if subscribe_id else next(iter(self.subscriptions.values()))
        body = {
            "SubscribeNotificationListObject": {
                "SubscribeNotificationObject": [
                    {
                        "NotificationID": notification_id,
                        "SubscribeID": sub["SubscribeID"],
                        "Title": sub.get("Title", ""),
                        "TriggerTime": "20261128101502",
                        "InfoIDs": ",".join(r["MotorVehicleID"] for r in records),
                        "MotorVehicleObjectList": {"MotorVehicleObject": records},
                    }
                ]
            }
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(
                sub["ReceiveAddr"],
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers={"User-Identify": PLATFORM_ID, "Content-Type": "application/VIID+JSON"},
            ) as resp:
                return resp.status, await resp.json(content_type=None)
