"""Routes and companion vehicles on the record: the query, and the access, age and audit rules."""

from __future__ import annotations

import time

import pytest

from central.app import create_app
from central.record.sqlite.store import HubStore
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.web import keys
from protocols.messages import Passage
from tests.support import login

PASSWORD = "correct horse battery"
TARGET = "鲁Q8K2L1"
SCOUT = "鲁A55K01"  # a real companion: 2 minutes ahead of the load at 5 of its 6 checkpoints
CHANCE = "鲁B77321"  # the same motorway for two checkpoints, by chance
CROWD = "鲁C90000"  # passes every checkpoint, but hours away from the load
CPS = ["SD-DZ-001", "SD-JN-001", "SD-ZZ-001", "SD-LY-001", "SD-LY-002", "SD-HZ-001"]


def passage(seq: int, plate: str, at: float) -> Passage:
    return Passage(
        seq=seq,
        plate=plate,
        first_seen=at,
        last_seen=at + 2,
        best_seq=seq,
        read_seqs=[seq],
        cameras=["lane1"],
        no_plate=not plate,
    )


def fill(store: HubStore, start: float) -> None:
    """The load passes six checkpoints an hour apart; others pass near it or not."""
    seqs: dict[str, int] = {}

    def put(cp: str, plate: str, at: float) -> None:
        seqs[cp] = seqs.get(cp, 0) + 1
        p = passage(seqs[cp], plate, at)
        store.submit(lambda db: store.insert_event(db, cp, 1, p, 0.0, time.time())).result(10)

    for i, cp in enumerate(CPS):
        at = start + i * 3600
        put(cp, TARGET, at)
        if i != 3:
            put(cp, SCOUT, at - 120 + i)  # 2 minutes ahead (the scout missed one checkpoint's camera)
        if i in (1, 2):
            put(cp, CHANCE, at + 30)
        put(cp, CROWD, at + 3 * 3600)
        put(cp, "鲁D00001", at + 200)  # outside the window
        put(cp, "", at + 5)  # a no-plate vehicle takes no part


@pytest.fixture
def store(tmp_path):
    s = HubStore(tmp_path / "hub.db")
    s.start()
    yield s
    s.stop()


def test_route_is_the_plates_passages_in_time_order(store):
    start = time.time() - 10 * 3600
    fill(store, start)
    found = store.record.route(TARGET, start - 60, start + 6 * 3600)
    assert [p["checkpoint"] for p in found.reads] == CPS and found.truncated is False
    assert (
        store.record.route(TARGET, start + 1.5 * 3600, start + 3.5 * 3600).reads[0]["checkpoint"]
        == "SD-ZZ-001"
    )


def test_companions_are_ranked_by_shared_passages_then_closeness(store):
    start = time.time() - 10 * 3600
    fill(store, start)
    found = store.record.companions(TARGET, start - 60, start + 6 * 3600, window_s=180, min_shared=3)
    assert [c.plate for c in found.found] == [SCOUT], "a chance convoy on two checkpoints is not a companion"
    scout = found.found[0]
    assert scout.shared == 5 and [p["checkpoint"] for p in scout.passages] == [
        c for i, c in enumerate(CPS) if i != 3
    ]
    assert all(-120 <= p["gap_s"] <= -115 for p in scout.passages), "the scout is ahead: negative gaps"
    loose = store.record.companions(TARGET, start - 60, start + 6 * 3600, window_s=180, min_shared=2)
    assert [c.plate for c in loose.found] == [SCOUT, CHANCE]
    wide = store.record.companions(TARGET, start - 60, start + 6 * 3600, window_s=300, min_shared=3)
    assert [(c.plate, c.shared) for c in wide.found] == [("鲁D00001", 6), (SCOUT, 5)], (
        "more shared passages rank first, even when further away"
    )
    assert store.record.companions("鲁Z99999", start - 60, start + 6 * 3600).found == []


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="246810"),
    )
    return await aiohttp_client(create_app(settings))


async def make(client, username, role):
    await login(client.session, str(client.make_url("")), "246810")
    resp = await client.post("/api/v1/users", json={"username": username, "role": role, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    client.session.cookie_jar.clear()


async def sign_in(client, username):
    assert (await client.post("/login", json={"username": username, "password": PASSWORD})).status == 200


@pytest.mark.parametrize("path", ["/api/v1/intel/route", "/api/v1/intel/companions"])
async def test_intel_queries_need_a_searcher_and_a_reason_and_are_audited(client, path):
    start = time.time() - 10 * 3600
    fill(client.app[keys.STORE], start)
    params = {"plate": TARGET, "from": str(start - 60), "to": str(start + 6 * 3600), "window_s": "180"}
    assert (await client.get(path, params={**params, "reason": "r"})).status == 401
    await make(client, "wang.lists", "watchlist_manager")
    await make(client, "li.analyst", "analyst")
    await sign_in(client, "wang.lists")
    assert (await client.get(path, params={**params, "reason": "r"})).status == 403
    client.session.cookie_jar.clear()
    await sign_in(client, "li.analyst")
    missing = await client.get(path, params=params)
    assert missing.status == 400 and "reason" in (await missing.json())["error"]
    old = await client.get(
        path,
        params={
            **params,
            "from": str(time.time() - 100 * 86400),
            "to": str(time.time() - 95 * 86400),
            "reason": "r",
        },
    )
    assert old.status == 403 and "90 days" in (await old.json())["error"]
    resp = await client.get(path, params={**params, "reason": "案件 2026-118"})
    assert resp.status == 200
    body = await resp.json()
    if path.endswith("route"):
        assert [p["checkpoint"] for p in body["passages"]] == CPS
    else:
        assert [c["plate"] for c in body["companions"]] == [SCOUT] and body["companions"][0]["shared"] == 5
        assert [p["checkpoint"] for p in body["route"]] == CPS
    client.session.cookie_jar.clear()
    await login(client.session, str(client.make_url("")), "246810")  # admin reads the audit trail
    action = "intel.route" if path.endswith("route") else "intel.companions"
    trail = (await (await client.get("/api/v1/audit", params={"action": action})).json())["records"]
    assert [(r["actor"], r["reason"], r["target"]) for r in trail] == [
        ("li.analyst", "案件 2026-118", TARGET)
    ], "each query that ran is audited once, with who, why and which plate"
    # A commander may look at old data (nothing there, but allowed).
    resp = await client.get(
        path,
        params={
            **params,
            "from": str(time.time() - 100 * 86400),
            "to": str(time.time() - 95 * 86400),
            "reason": "旧案",
        },
    )
    assert resp.status == 200


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"plate": ""}, "plate is required"),
        ({"plate": "鲁A%1"}, "characters a plate cannot have"),
        ({"plate": TARGET, "window_s": "0"}, "window_s must be between"),
        ({"plate": TARGET, "window_s": "x"}, "window_s must be a number"),
        ({"plate": TARGET, "min_shared": "100"}, "min_shared must be between"),
        ({"plate": TARGET, "from": "2000000000", "to": "1000000000"}, "from is after to"),
        ({"plate": TARGET, "from": "0", "to": "1000000000"}, "at most 31 days"),
    ],
)
async def test_companion_query_refuses_bad_input_with_a_reason(client, params, needle):
    await login(client.session, str(client.make_url("")), "246810")
    resp = await client.get("/api/v1/intel/companions", params={"reason": "r", **params})
    assert resp.status == 400
    assert needle in (await resp.json())["error"]


def test_companion_benchmark_finds_the_injected_scouts(tmp_path):
    from cordon.bench import companions

    result = companions.run(passages=50_000, days=3, pairs=20, workers=1, data=str(tmp_path))
    assert result["companion_pairs"] == 20 and result["companion_queries"] == 40
    assert result["companion_passages"] > 50_000 and len(list((tmp_path / "record").glob("reads-*.db"))) == 3
    assert result["companion_recall_top5"] >= 0.9
    assert set(result) >= {"companion_query_p99_s", "companion_fill_s", "companion_rank_counts"}
