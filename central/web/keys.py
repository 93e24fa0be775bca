"""Typed application keys of the hub app, declared in one place."""

from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web

from central.alerts.dispatch import AlertDispatcher
from central.alerts.evidence import EvidenceBroker
from central.ingest.pipeline import Ingest
from central.ingest.viid import ViidPlatform
from central.mqtt import HubLink
from central.people.users import Directory
from central.record.duties import DutyKeeper
from central.record.stores import Counts, HubStores, ImportJobStore, LoginLimitStore
from central.settings import HubSettings
from central.watchlists.feedfiles import FeedFiles
from central.watchlists.index import HubWatchlists
from central.watchlists.lists import ListService
from central.watchlists.upstream import UpstreamSource
from runtime.fanout import Fanout
from runtime.web import Rule

SETTINGS = web.AppKey("settings", HubSettings)
STORE = web.AppKey("store", HubStores)
WATCHLISTS = web.AppKey("watchlists", HubWatchlists)
INGEST = web.AppKey("ingest", Ingest)
LINK = web.AppKey("link", HubLink)
EVIDENCE = web.AppKey("evidence", EvidenceBroker)
LOGIN_LIMITS = web.AppKey("login_limits", LoginLimitStore)
IMPORT_JOBS = web.AppKey("import_jobs", ImportJobStore)
"""Watchlist imports by job id (``central.web.lists.ImportJob``)."""
DISPATCHER = web.AppKey("dispatcher", AlertDispatcher)
CONSOLE = web.AppKey("console", Fanout)
CHECKPOINTS = web.AppKey("checkpoints", dict[str, dict[str, object]])
SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])
BASE_COUNTS = web.AppKey("base_counts", Counts)
LOOP = web.AppKey("loop", asyncio.AbstractEventLoop)
LISTS = web.AppKey("lists", ListService)
FEED_FILES = web.AppKey("feed_files", FeedFiles)
UPSTREAM = web.AppKey("upstream", list[UpstreamSource])
VIID_PLATFORMS = web.AppKey("viid_platforms", list[ViidPlatform])
DIRECTORY = web.AppKey("directory", Directory)
PURGED_DAYS = web.AppKey("purged_days", list[dt.date])
RING = web.AppKey("ring", list[dict[str, object]])
DUTIES = web.AppKey("duties", DutyKeeper)
"""The work this hub runs only while it holds it (central/record/duties.py)."""
POLICY = web.AppKey("policy", dict[str, Rule])
"""Every route's access rule (``central.web.policy.POLICY``), for ``GET /api/v1/me``."""
