"""Every route of the hub and its access rule, gathered from the areas: a route missing here is refused
(tests/test_routes_policy.py), so a new area is added to ``AREAS`` or it serves nothing."""

from __future__ import annotations

from types import ModuleType

from aiohttp import web

from central.web import audit, console, evidence, intel, lists, records, stats, users, viid
from runtime.web import LOGIN_POLICY, Rule

AREAS: tuple[ModuleType, ...] = (console, records, audit, lists, intel, evidence, stats, users, viid)

POLICY: dict[str, Rule] = {**LOGIN_POLICY}
for _area in AREAS:
    POLICY.update(_area.POLICY)


def add_routes(app: web.Application) -> None:
    """Every area's routes."""
    for area in AREAS:
        area.add_routes(app)
