"""Typed application keys of the edge app, declared in one place."""

from __future__ import annotations

from aiohttp import web

from runtime.deadletters import DeadLetterStore

from .accounts import OfficerDirectory
from .evidence import EvidenceStore
from .feedsync import FeedSync
from .kits.state import KitsState
from .mirror import Mirror
from .outbox import OutboxStore
from .service import EdgeService
from .settings import EdgeSettings
from .sources.gate import CameraGate
from .sources.hikvision import HikvisionSource
from .sources.json_push import JsonPushSource
from .sources.viid import ViidSource
from .uplink import EdgeUplink

SETTINGS = web.AppKey("settings", EdgeSettings)
OUTBOX = web.AppKey("outbox", OutboxStore)
DEAD = web.AppKey("dead", DeadLetterStore)
SERVICE = web.AppKey("service", EdgeService)
UPLINK = web.AppKey("uplink", EdgeUplink)
JSON_SOURCE = web.AppKey("json_source", JsonPushSource)
HIKVISION_SOURCE = web.AppKey("hikvision_source", HikvisionSource)
GATE = web.AppKey("camera_gate", CameraGate)
VIID_SOURCE = web.AppKey("viid_source", ViidSource)
EVIDENCE = web.AppKey("evidence", EvidenceStore)
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])
MIRROR = web.AppKey("mirror", Mirror)
FEED = web.AppKey("feed", FeedSync)
OFFICERS = web.AppKey("officers", OfficerDirectory)
KITS = web.AppKey("kits", KitsState)
