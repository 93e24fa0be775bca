"""Alert routing end to end with real processes: a read at one checkpoint reaches the tablet of the
checkpoint configured downstream of it (real Mosquitto, hub and two edges)."""

from __future__ import annotations

import pytest

from tests.support import edge_service, hub_service, login, next_frame, running, session

pytestmark = pytest.mark.system

WATCHLIST = """plate,list,action,priority,reason
鲁Q8K2L1,涉毒嫌疑车辆,intercept,90,涉嫌运输毒品
鲁A0K88B,秘密布控车辆,covert,70,专案秘密布控
"""

ROUTING = """
[[routing.downstream]]
from = "SD-DZ-001"
direction = "in"
to = ["SD-LY-001"]
"""


@pytest.fixture
def system(tmp_path, mosquitto):
    csv = tmp_path / "watchlist.csv"
    csv.write_text(WATCHLIST, encoding="utf-8")
    hub = hub_service(tmp_path / "hub", mosquitto.url, watchlist_csv=csv)
    conf = hub.workdir / "hub.toml"
    conf.write_text(conf.read_text(encoding="utf-8") + ROUTING, encoding="utf-8")
    e1 = edge_service(tmp_path / "e1", "SD-DZ-001", mosquitto.url, cameras={"cam1": "t1"})
    e2 = edge_service(tmp_path / "e2", "SD-LY-001", mosquitto.url, cameras={"cam1": "t2"})
    for service in (hub, e1, e2):
        service.start()
    with running(hub, e1, e2):
        yield hub, e1, e2


async def test_the_downstream_checkpoints_tablet_gets_the_alert_and_never_a_covert_one(system):
    hub, e1, e2 = system
    async with session() as console, session() as tablet, session() as cameras:
        await login(console, hub.base, "console-code")
        await login(tablet, e2.base, "tablet-code")
        console_ws = await console.ws_connect(f"{hub.base}/api/v1/ws")
        tablet_ws = await tablet.ws_connect(f"{e2.base}/api/v1/ws")
        await next_frame(console_ws, "hello")
        await next_frame(tablet_ws, "hello")

        for event_id, plate in (("hit-covert", "鲁A0K88B"), ("hit-in", "鲁Q8K2L1")):
            async with cameras.post(
                f"{e1.base}/api/v1/cameras/cam1/reads",
                json={"plate": plate, "event_id": event_id, "direction": "in"},
                headers={"X-Camera-Token": "t1"},
            ) as resp:
                assert resp.status == 200, await resp.text()

        seen = {}
        while len(seen) < 2:
            a = (await next_frame(console_ws, "alert", timeout=60))["alert"]
            seen[a["plate_read"]] = a
        assert seen["鲁A0K88B"]["routed_to"] == [], "a covert alert goes to no checkpoint"
        assert [(r["checkpoint"], r["why"]) for r in seen["鲁Q8K2L1"]["routed_to"]] == [
            ("SD-DZ-001", "read"),
            ("SD-LY-001", "downstream"),
        ]

        # The downstream tablet must never get the covert alert. The hub handles e1's reads in order,
        # the covert one first, and publishes each alert as it raises it: had the covert alert gone to
        # SD-LY-001, it would be the tablet's first alert, before the intercept one.
        got = (await next_frame(tablet_ws, "alert", timeout=60))["alert"]
        assert got["plate_read"] == "鲁Q8K2L1" and got["checkpoint"] == "SD-DZ-001"
        assert {"checkpoint": "SD-LY-001", "why": "downstream"} in got["routed_to"]
        await console_ws.close()
        await tablet_ws.close()
