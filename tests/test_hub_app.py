"""Component tests of the hub web app (no broker listens: the link stays down)."""

import time

import pytest

from central.app import create_app
from central.settings import ConsoleSettings, HubSettings, MqttSettings, WatchlistSettings
from central.web import keys
from protocols.messages import SCHEMA_VERSION, EventBatch, PlateRead, encode
from runtime.link import LinkState

CSV = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n"


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    wl = tmp_path / "wl.csv"
    wl.write_text(CSV, encoding="utf-8")
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        watchlists=WatchlistSettings(csv=[str(wl)]),
        console=ConsoleSettings(token="246810"),
    )
    return await aiohttp_client(create_app(settings))


def ingest(app, plate, seq):
    batch = EventBatch(
        v=SCHEMA_VERSION,
        checkpoint="SD-DZ-001",
        epoch=1,
        sent_at=time.time(),
        events=[
            PlateRead(
                seq=seq,
                camera_id="c",
                captured_at=time.time(),
                plate=plate,
                plate_raw=plate,
                plate_valid=True,
            )
        ],
    )
    return app[keys.INGEST].handle("cordon/v1/cp/SD-DZ-001/events", encode(batch), time.time()).result(5)


async def test_health_is_public_and_says_why_it_is_degraded(client):
    resp = await client.get("/api/v1/health")
    # 503 with the same body: a front door's check (HAProxy's httpchk) reads the code alone.
    assert resp.status == 503
    health = await resp.json()
    assert health["status"] == "degraded"
    assert any("broker link" in r for r in health["reasons"])
    assert {"checkpoints_online", "reads_total", "alerts_total"} <= set(health)
    assert health["watchlist_entries"] == 1
    # The broker link up (as the link says once connected): ok, 200. The real link is in test_front_door.
    link = client.app[keys.LINK]
    before, link.state = link.state, LinkState.CONNECTED
    try:
        resp = await client.get("/api/v1/health")
        assert resp.status == 200 and (await resp.json())["status"] == "ok"
    finally:
        link.state = before


async def test_console_and_apis_need_login(client):
    for path in ("/api/v1/alerts", "/api/v1/checkpoints", "/api/v1/dead-letters"):
        assert (await client.get(path)).status == 401
    resp = await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert resp.status == 302
    assert (await client.post("/login", json={"code": "nope"})).status == 401
    assert (await client.post("/login", json={"code": "246810"})).status == 200
    page = await client.get("/")
    assert page.status == 200 and "指挥中心" in await page.text()
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


async def test_form_login_redirects(client):
    resp = await client.post("/login", data={"code": "246810"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/"
    resp = await client.post("/login", data={"code": "bad"}, allow_redirects=False)
    assert resp.headers["Location"] == "/login?failed=1"


async def test_ingested_read_counts_and_alerts_api(client):
    await client.post("/login", json={"code": "246810"})
    ingest(client.app, "鲁Q8K2L1", 1)
    ingest(client.app, "鲁B00001", 2)
    health = await (await client.get("/api/v1/health")).json()
    assert health["reads_total"] == 2 and health["alerts_total"] == 1
    alerts = (await (await client.get("/api/v1/alerts?limit=10")).json())["alerts"]
    assert [a["plate_read"] for a in alerts] == ["鲁Q8K2L1"]
    assert (await client.get("/api/v1/alerts?limit=ten")).status == 400


async def test_live_feed_sends_recent_alerts_first(client):
    await client.post("/login", json={"code": "246810"})
    ingest(client.app, "鲁Q8K2L1", 1)
    async with client.ws_connect("/api/v1/ws") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "alert" and frame["alert"]["hit"]["list_name"] == "涉毒"


async def test_an_edge_whose_clock_is_off_is_flagged_only_from_live_status(client):
    from tests.support import login

    app = client.server.app
    topic = "cordon/v1/cp/SD-DZ-001/status"

    def status(sent_at, retained):
        from protocols.messages import CheckpointStatus

        body = encode(
            CheckpointStatus(
                v=SCHEMA_VERSION, checkpoint="SD-DZ-001", online=True, sent_at=sent_at, dropped_reads=7
            )
        )
        return app[keys.INGEST].handle(topic, body, time.time(), retained=retained).result(5)

    assert status(time.time() - 3600, retained=True).clock_offset_s is None, (
        "a retained status is old by nature"
    )
    await _until(lambda: "SD-DZ-001" in app[keys.CHECKPOINTS])
    assert app[keys.CHECKPOINTS]["SD-DZ-001"]["clock_suspect"] is False
    live = status(time.time() + 95, retained=False)
    assert 94 < live.clock_offset_s < 96
    await _until(lambda: app[keys.CHECKPOINTS]["SD-DZ-001"]["clock_suspect"])
    await login(client.session, str(client.make_url("")), "246810")
    (cp,) = (await (await client.get("/api/v1/checkpoints")).json())["checkpoints"]
    assert 94 < cp["clock_offset_s"] < 96
    assert app[keys.CHECKPOINTS]["SD-DZ-001"]["dropped_reads"] == 7
    status(time.time(), retained=False)
    await _until(lambda: not app[keys.CHECKPOINTS]["SD-DZ-001"]["clock_suspect"])


async def _until(predicate, timeout=5.0):
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_logins_and_exports_are_in_the_audit_trail(client):
    from tests.support import login

    resp = await client.post("/login", json={"code": "wrong"})
    assert resp.status == 401
    await login(client.session, str(client.make_url("")), "246810")
    records = (await (await client.get("/api/v1/audit")).json())["records"]
    logins = [r["action"] for r in records if r["action"].startswith("login")]
    assert logins[:2] == ["login", "login.failed"]
    resp = await client.get("/api/v1/audit/export")
    assert resp.status == 200
    text = (await resp.read()).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("id,at,actor,role,action")
    records = (await (await client.get("/api/v1/audit?action=audit.export")).json())["records"]
    assert len(records) == 1 and records[0]["actor"] == "access code" and records[0]["role"] == "admin"


async def test_a_restart_with_the_same_lists_keeps_the_feed_version(
    aiohttp_client, tmp_path, dead_broker_url
):
    """The configured list files and permit rules are applied at every start: unchanged, they are no change,
    so the edges are not sent a new feed version (and a snapshot) for nothing."""
    from central.settings import PermitSettings

    wl = tmp_path / "wl.csv"
    wl.write_text(CSV, encoding="utf-8")
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        watchlists=WatchlistSettings(csv=[str(wl)]),
        console=ConsoleSettings(token="246810"),
        permits=[PermitSettings(rule_id="hazmat", list_id="permits", colours=["yellow"])],
    )
    versions = []
    for _ in range(3):
        client = await aiohttp_client(create_app(settings))
        versions.append(client.app[keys.WATCHLISTS].index.feed_version)
        await client.close()
    assert versions[0] >= 1 and versions == [versions[0]] * 3, versions
    # a real change of the file is still a new version
    wl.write_text(CSV + "鲁A12345,涉毒,intercept,90,新线索\n", encoding="utf-8")
    client = await aiohttp_client(create_app(settings))
    assert client.app[keys.WATCHLISTS].index.feed_version == versions[0] + 1
    await client.close()


async def test_a_console_that_reconnects_gets_the_alerts_after_its_position(
    aiohttp_client, tmp_path, dead_broker_url
):
    """Positions are the store's, in commit order: the hello says where the feed starts, each alert the
    hub gives (its own ones by a ``position`` frame, from the relay) moves it on, and ``?after=`` brings
    back what a console missed even when the recent alerts it gets do not reach that far."""
    wl = tmp_path / "wl.csv"
    plates = ["鲁Q8K2L1", "鲁Q8K2L2", "鲁Q8K2L3", "鲁Q8K2L4"]
    wl.write_text(
        "plate,list,action,priority,reason\n" + "".join(f"{p},涉毒,intercept,90,线索\n" for p in plates),
        encoding="utf-8",
    )
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        watchlists=WatchlistSettings(csv=[str(wl)]),
        console=ConsoleSettings(token="246810", recent_alerts=1),
    )
    client = await aiohttp_client(create_app(settings))
    await client.post("/login", json={"code": "246810"})
    ingest(client.app, plates[0], 1)
    async with client.ws_connect("/api/v1/ws") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["position"] == 1
        assert (await ws.receive_json(timeout=5))["alert"]["plate_read"] == plates[0]
        ingest(client.app, plates[1], 2)
        frames = []
        while not any(f.get("position") == 2 for f in frames):
            frames.append(await ws.receive_json(timeout=5))
        # Raised here: the dispatcher gives it at once, the relay then only its position.
        assert [f["alert"]["plate_read"] for f in frames if f["type"] == "alert"] == [plates[1]]
        assert frames[-1] == {"type": "position", "position": 2}
    ingest(client.app, plates[2], 3)
    ingest(client.app, plates[3], 4)
    async with client.ws_connect("/api/v1/ws?after=2") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["position"] == 4
        got = [await ws.receive_json(timeout=5) for _ in range(2)]
        # The one it missed beyond the recent one (recent_alerts = 1), with its position; then the recent.
        assert [(f["alert"]["plate_read"], f.get("position")) for f in got] == [
            (plates[2], 3),
            (plates[3], None),
        ]
        later = []
        with pytest.raises(TimeoutError):
            while True:
                later.append(await ws.receive_json(timeout=0.8))
        # Each alert once: the relay gives the positions of the two raised here, not the alerts again.
        assert all(f["type"] == "position" for f in later), later
    assert (await client.get("/api/v1/ws?after=x")).status == 400


async def test_news_another_hub_stored_reaches_this_hubs_consoles(client):
    """An escalation written to the store by another hub (here: straight into the store, which this hub's
    own loop never saw) reaches the consoles through the relay, once."""
    app = client.app
    await client.post("/login", json={"code": "246810"})
    ingest(app, "鲁Q8K2L1", 1)
    async with client.ws_connect("/api/v1/ws") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        store, after_s = app[keys.STORE], app[keys.SETTINGS].console.escalate_after_s
        due = await store.run(lambda tx: store.escalate_due(tx, after_s, time.time() + after_s + 1))
        assert [f["alert_id"] for f in due]  # escalated by "the other hub"
        frames = []
        with pytest.raises(TimeoutError):
            while True:
                frames.append(await ws.receive_json(timeout=1.5))
        escalations = [f for f in frames if f["type"] == "escalation"]
        assert [e["escalation"]["alert_id"] for e in escalations] == [due[0]["alert_id"]]
