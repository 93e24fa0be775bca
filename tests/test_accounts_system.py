"""Officer accounts reach their checkpoint's edge: an officer signs in at the tablet, also with the
uplink down; disabling the account at the hub reaches the edge with the next sync and ends the session."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.support import Mosquitto, Ring, edge_service, hub_service, login, running, session, until

pytestmark = pytest.mark.system
PASSWORD = "checkpoint night 02"


async def sign_in(http, base, username, password=PASSWORD) -> int:
    async with http.post(f"{base}/login", json={"username": username, "password": password}) as resp:
        return resp.status


async def tablet_status(http, base) -> int:
    async with http.get(f"{base}/api/v1/status") as resp:
        return resp.status


@pytest.fixture(params=["test-broker", "production-config"])
def broker(request, tmp_path):
    """The plain test broker, and Mosquitto on the production config (deploy/mosquitto: TLS, client
    certificates, the ACL that lets a checkpoint read only its own accounts topic)."""
    ring = (
        Ring.create(tmp_path / "pki", ["SD-DZ-001", "SD-LC-002"])
        if request.param == "production-config"
        else None
    )
    mosquitto = Mosquitto(tmp_path / "mosquitto", tls=ring.broker() if ring else None).start()
    yield mosquitto, ring
    mosquitto.stop()


async def test_officers_sign_in_at_their_edge_offline_and_disabling_reaches_it(tmp_path, broker):
    mosquitto, ring = broker

    def identity(name: str) -> dict:
        return {"mqtt": ring.mqtt(name)} if ring else {}

    hub = hub_service(tmp_path / "hub", mosquitto.url, extra=identity("cordon-hub"))
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam": "t"},
        extra={"evidence": {"purge_interval_s": 1.0}, **identity("SD-DZ-001")},
    )
    other = edge_service(
        tmp_path / "other", "SD-LC-002", mosquitto.url, cameras={"cam": "t"}, extra=identity("SD-LC-002")
    )
    for service in (hub, edge, other):
        service.start()
    with running(hub, edge, other):
        async with session() as admin, session() as officer:
            await login(admin, hub.base, "console-code")
            for name, cp in (("chen.officer", "SD-DZ-001"), ("liu.officer", "SD-LC-002")):
                async with admin.post(
                    f"{hub.base}/api/v1/users",
                    json={"username": name, "role": "officer", "checkpoint": cp, "password": PASSWORD},
                ) as resp:
                    assert resp.status == 201, await resp.text()

            async def signed_in() -> bool:
                return await sign_in(officer, edge.base, "chen.officer") == 200

            await until(signed_in, timeout=30, what="the officer account at the edge")
            assert await tablet_status(officer, edge.base) == 200
            assert await sign_in(officer, edge.base, "liu.officer") == 401, "another checkpoint's officer"
            assert await sign_in(officer, edge.base, "chen.officer", "wrong password!") == 401

            mosquitto.stop()  # the uplink is down: the edge checks passwords itself
            assert await sign_in(officer, edge.base, "chen.officer") == 200
            assert await tablet_status(officer, edge.base) == 200
            mosquitto.start()

            # disabled with the command line on the hub's own store, as an admin at the hub would
            result = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "cordon.cli",
                    "user",
                    "disable",
                    "chen.officer",
                    "--data",
                    str(tmp_path / "hub" / "data"),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr

            async def session_over() -> bool:
                return await tablet_status(officer, edge.base) == 401

            await until(session_over, timeout=40, what="the disabled account's tablet session to end")
            assert await sign_in(officer, edge.base, "chen.officer") == 401

            # the tablet's logins, good and bad (the one with the uplink down too), and the edge's
            # retention runs are in the hub's audit trail, named with their checkpoint
            async def edge_audit() -> list | None:
                async with admin.get(f"{hub.base}/api/v1/audit", params={"limit": "1000"}) as resp:
                    records = (await resp.json())["records"]
                from_edge = [r for r in records if '"checkpoint":"SD-DZ-001"' in r["detail"]]
                actions = [(r["action"], r["actor"]) for r in from_edge]
                wanted = {
                    ("login", "chen.officer"),
                    ("login.failed", "chen.officer"),
                    ("retention.purge", "retention"),
                }
                return actions if wanted <= set(actions) else None

            actions = await until(edge_audit, timeout=40, what="the edge's audit events at the hub")
            assert actions.count(("login", "chen.officer")) == 2, "each login once, the one made offline too"
