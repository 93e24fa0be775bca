"""Rule 3 of the wire protocol ("the hub serves edges one release behind", docs/protocol.md) with real
processes on a real Mosquitto: the previous release's edges against this checkout's hub, and this
checkout's edges against the previous release's hub.

The previous release is the last line of RELEASES; cordon.testing.previous_release_python runs it from its own environment,
built from the clone's history (the test fails, not skips, when the commit is missing). Each run has
two checkpoints, SD-DZ-001 and SD-LY-001 downstream of it, both of one release, and goes through what
crosses the wire: snapshot and deltas of the watchlist feed, officer accounts, reads and hits up,
acknowledgements, alerts (one routed from the other checkpoint), outcomes and audit events up, statuses,
a read's picture fetched by the hub from the edge (evidence request and reply).
"""

from __future__ import annotations

import asyncio
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import (
    Service,
    edge_service,
    get_health,
    get_json,
    hub_service,
    login,
    next_frame,
    running,
    session,
    stored_camera_event_ids,
    until,
    write_toml,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

WATCHLIST = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品\n鲁A0K88B,秘密布控,covert,70,专案\n"
ROUTING = """
[[routing.downstream]]
from = "SD-DZ-001"
direction = "in"
to = ["SD-LY-001"]
"""
FEED_TOKEN = "feed-secret"
PASSWORD = "checkpoint night 02"
LY, DZ = "SD-LY-001", "SD-DZ-001"
NEW_PLATE = "冀F7M395"
HIK = Path(__file__).parent / "fixtures" / "cameras" / "hikvision"
BOUNDARY = "---------------------------7e13971310878"
LISTED = "鲁Q8K2L1"


async def test_the_previous_releases_edges_work_with_this_hub(tmp_path, mosquitto, previous_python):
    await exercise(tmp_path, mosquitto, hub_python=sys.executable, edge_python=previous_python)


async def test_this_releases_edges_work_with_the_previous_releases_hub(tmp_path, mosquitto, previous_python):
    await exercise(tmp_path, mosquitto, hub_python=previous_python, edge_python=sys.executable)


async def exercise(tmp_path: Path, mosquitto, *, hub_python: str, edge_python: str) -> None:
    csv = tmp_path / "watchlist.csv"
    csv.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(
        tmp_path / "hub",
        mosquitto.url,
        watchlist_csv=csv,
        # A window other than the default (a key both releases know): this release's hub announces it on
        # a topic of its own, since an r1 edge refuses a hub status with a field it does not know.
        extra={"feed": {"token": FEED_TOKEN}, "alerts": {"fold_window_s": 0}},
        python=hub_python,
    )
    conf = hub.workdir / "hub.toml"
    conf.write_text(conf.read_text(encoding="utf-8") + ROUTING, encoding="utf-8")
    feed = {"hub": {"url": hub.base, "token": FEED_TOKEN}}
    ly = edge_service(
        tmp_path / "ly",
        LY,
        mosquitto.url,
        cameras={"cam1": "t1", "hik1": "t4"},
        extra=feed,
        python=edge_python,
    )
    config = tomllib.loads((ly.workdir / "edge.toml").read_text(encoding="utf-8"))
    config["cameras"][1]["kind"] = "hikvision"  # a camera that sends pictures: evidence on request
    write_toml(ly.workdir / "edge.toml", config)
    dz = edge_service(
        tmp_path / "dz", DZ, mosquitto.url, cameras={"cam1": "t2"}, extra=feed, python=edge_python
    )
    with running(hub, ly, dz):
        for service in (hub, ly, dz):
            service.start()
        try:
            await _exercise(hub, ly, dz, hub_is_this_release=hub_python == sys.executable)
        except BaseException:
            for service in (hub, ly, dz):
                print(f"--- {service.name} ({service.python}) log:\n{service.log()}")
            raise


async def _exercise(hub: Service, ly: Service, dz: Service, *, hub_is_this_release: bool) -> None:
    # One session per service signed in to (cookies are per host, not per port), and none for cameras.
    async with (
        session() as console,
        session() as tablet,
        session() as dz_tablet,
        session() as officer,
        session() as cameras,
    ):
        await login(console, hub.base, "console-code")
        await login(tablet, ly.base, "tablet-code")
        await login(dz_tablet, dz.base, "tablet-code")

        async def status(edge: Service) -> dict:
            return await get_json(tablet if edge is ly else dz_tablet, f"{edge.base}/api/v1/status")

        # The feed: the retained version and a snapshot over HTTP, then a delta.
        for edge in (ly, dz):
            await until(lambda e=edge: _feed_at(status, e, 1), timeout=60, what=f"{edge.name}'s snapshot")
        async with console.post(
            f"{hub.base}/api/v1/watchlists/涉毒嫌疑车辆/entries",
            json={"plate": NEW_PLATE, "reason": "新线索"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            version = (await resp.json())["feed_version"]
        after_delta = await until(lambda: _feed_at(status, ly, version), timeout=30, what="the delta at LY")
        assert after_delta["feed"]["snapshots"] == 1 and after_delta["feed"]["deltas"] >= 1

        # Officer accounts: created at the hub, the officer signs in at the tablet.
        async with console.post(
            f"{hub.base}/api/v1/users",
            json={"username": "chen.officer", "role": "officer", "checkpoint": LY, "password": PASSWORD},
        ) as resp:
            assert resp.status == 201, await resp.text()

        async def signed_in() -> bool:
            body = {"username": "chen.officer", "password": PASSWORD}
            async with officer.post(f"{ly.base}/login", json=body) as resp:
                return resp.status == 200

        await until(signed_in, timeout=40, what="the officer's account at LY")

        # Reads up: plain ones at both checkpoints, a hit at LY (the delta's plate, matched by the edge
        # itself), and a listed plate at DZ heading in, which the hub routes to LY's tablet.
        ws = await tablet.ws_connect(f"{ly.base}/api/v1/ws")
        await next_frame(ws, "hello")
        pushed: set[str] = set()

        async def push(edge: Service, token: str, plate: str, event_id: str, **extra: object) -> None:
            body = {"plate": plate, "event_id": event_id, "confidence": 95, **extra}
            async with cameras.post(
                f"{edge.base}/api/v1/cameras/cam1/reads", json=body, headers={"X-Camera-Token": token}
            ) as resp:
                assert resp.status == 200, await resp.text()
            pushed.add(event_id)

        await asyncio.gather(
            *(push(ly, "t1", f"鲁B{i:05d}", f"ly-{i}") for i in range(40)),
            *(push(dz, "t2", f"鲁C{i:05d}", f"dz-{i}") for i in range(40)),
        )
        await push(ly, "t1", NEW_PLATE, "ly-hit")
        local = (await next_frame(ws, "alert", timeout=30, where=_plate(NEW_PLATE)))["alert"]
        assert local["checkpoint"] == LY and local["hit"]["reason"] == "新线索"
        await push(dz, "t2", LISTED, "dz-hit", direction="in")
        routed = (await next_frame(ws, "alert", timeout=60, where=_plate(LISTED)))["alert"]
        assert routed["checkpoint"] == DZ, "the hub's alert for a read at DZ, routed down the road"
        assert {"checkpoint": LY, "why": "downstream"} in routed["routed_to"]
        await ws.close()

        # Evidence: the hub asks the edge for a read's picture over MQTT and serves the edge's bytes.
        async with cameras.post(
            f"{ly.base}/api/v1/cameras/hik1/reads?token=t4",
            data=(HIK / "cn_v20.multipart").read_bytes(),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            pictured = await resp.json()
        async with tablet.get(f"{ly.base}/api/v1/evidence/{pictured['seq']}/snapshot") as resp:
            assert resp.status == 200
            kept = await resp.read()
        evidence = f"{hub.base}/api/v1/evidence/{LY}/{pictured['epoch']}/{pictured['seq']}/scene"
        async with console.get(evidence) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"] == "image/jpeg" and await resp.read() == kept

        # The officer's outcome goes up as an event, like the reads.
        async with officer.post(
            f"{ly.base}/api/v1/alerts/{local['alert_id']}/outcome",
            json={"outcome": "intercepted", "note": "查获"},
        ) as resp:
            assert resp.status == 200, await resp.text()

        # Acknowledged: every outbox empties, nothing is left in flight.
        for edge in (ly, dz):
            await until(lambda e=edge: _drained(status, e), timeout=60, what=f"{edge.name}'s outbox to drain")

        # Stored once each, the edge's hit and the hub's match one alert, the outcome and the login kept.
        health = await get_health(console, f"{hub.base}/api/v1/health")
        assert health["reads_total"] == len(pushed) + 1, health  # and the Hikvision camera's
        if hub_is_this_release:
            counts = stored_camera_event_ids(hub.workdir / "data")
            assert pushed <= set(counts) and set(counts.values()) == {1}
        alerts = await until(
            lambda: _alerts_with_outcome(console, hub, local["alert_id"]), timeout=30, what="the outcome"
        )
        by_plate = {a["plate_read"]: a for a in alerts["alerts"]}
        assert set(by_plate) == {NEW_PLATE, LISTED} and health["alerts_total"] == 2
        assert by_plate[NEW_PLATE]["alert_id"] == local["alert_id"]
        assert by_plate[LISTED]["alert_id"] == routed["alert_id"]
        assert [o["outcome"] for o in alerts["outcomes"][local["alert_id"]]] == ["intercepted"]
        await until(
            lambda: _audited_login(console, hub), timeout=30, what="LY's login in the hub's audit trail"
        )

        # Statuses reach the hub; nothing was refused on either side.
        checkpoints = (await get_json(console, f"{hub.base}/api/v1/checkpoints"))["checkpoints"]
        assert {c["checkpoint"]: c["online"] for c in checkpoints} == {LY: True, DZ: True}
        assert (await get_json(console, f"{hub.base}/api/v1/dead-letters"))["dead_letters"] == []
        for edge in (ly, dz):
            assert (await status(edge))["dead_letters"] == 0
            refused = [
                line
                for line in edge.log_path.read_text(errors="replace").splitlines()
                if "from the hub" in line
            ]
            assert not refused, f"{edge.name} refused messages from the hub: {refused[:3]}"


def _plate(plate: str):
    return lambda frame: frame["alert"]["plate_read"] == plate


async def _feed_at(status, edge: Service, version: int) -> dict | None:
    found = await status(edge)
    return found if found["feed"]["version"] >= version else None


async def _drained(status, edge: Service) -> bool:
    found = await status(edge)
    return found["outbox"]["depth"] == 0 and found["uplink"]["inflight"] == 0


async def _alerts_with_outcome(console, hub: Service, alert_id: str) -> dict | None:
    found = await get_json(console, f"{hub.base}/api/v1/alerts")
    return found if found["outcomes"].get(alert_id) else None


async def _audited_login(console, hub: Service) -> bool:
    records = (await get_json(console, f"{hub.base}/api/v1/audit?limit=1000"))["records"]
    return any(
        r["action"] == "login" and r["actor"] == "chen.officer" and f'"checkpoint":"{LY}"' in r["detail"]
        for r in records
    )
