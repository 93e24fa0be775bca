"""Quick tests recorded with the uplink down reach the hub once it is back, exactly once, across an
edge restart in between (real Mosquitto, hub and edge processes)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.support import edge_service, get_json, hub_service, login, running, session, until

pytestmark = [pytest.mark.system]


def body(n: int, drugs: list[str]) -> dict[str, object]:
    now = time.time()
    return {
        "id_number": "11010519491231002X",
        "kit_model": "SD-SAL6",
        "lot": f"L{n}",
        "expiry": "2099-12-31",
        "sample_type": "saliva",
        "sampled_at": now - 600,
        "read_at": now,
        "second_officer": "002",
        "panels": [{"drug": d, "officer_call": "negative"} for d in drugs],
    }


async def test_results_saved_offline_sync_exactly_once(tmp_path, mosquitto):
    secret = tmp_path / "id-secret"
    secret.write_bytes(b"system-kits-secret-0123456789")
    hub = hub_service(tmp_path / "hub", mosquitto.url)
    edge = edge_service(
        tmp_path / "edge",
        "SD-DZ-001",
        mosquitto.url,
        cameras={"cam1": "t1"},
        extra={"kits": {"id_secret_file": str(secret)}},
    )
    mosquitto.stop()  # the uplink is down from the start
    edge.start()
    hub.start()
    with running(hub, edge):
        async with session() as http:
            await login(http, edge.base, "tablet-code")
            catalogue = await get_json(http, f"{edge.base}/api/v1/kits")
            drugs = [
                p["drug"] for p in next(k for k in catalogue["kits"] if k["model"] == "SD-SAL6")["panels"]
            ]
            ids = []
            for n in range(3):
                async with http.post(f"{edge.base}/api/v1/kits/results", json=body(n, drugs)) as resp:
                    assert resp.status == 200, await resp.text()
                    ids.append((await resp.json())["result_id"])
            status = await get_json(http, f"{edge.base}/api/v1/status")
            assert status["uplink"]["state"] != "connected" and status["outbox"]["depth"] >= 3
        edge.stop()
        edge.start()  # committed before answering: a restart loses nothing
        mosquitto.restart()
        async with session() as http:
            await login(http, hub.base, "console-code")

            async def synced():
                rows = (await get_json(http, f"{hub.base}/api/v1/kit-results"))["kit_results"]
                return rows if len(rows) >= 3 else None

            rows = await until(synced, timeout=60, what="the offline results at the hub")
            assert sorted(r["result_id"] for r in rows) == sorted(ids)
            await login(http, edge.base, "tablet-code")

            async def drained():
                return (await get_json(http, f"{edge.base}/api/v1/status"))["outbox"]["depth"] == 0

            await until(drained, timeout=60, what="the edge's outbox acknowledged")
    with sqlite3.connect(tmp_path / "hub" / "data" / "hub.db") as db:
        assert db.execute("SELECT count(*), count(DISTINCT result_id) FROM kit_results").fetchone() == (3, 3)
