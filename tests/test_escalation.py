"""Console: an intercept alert nobody answers is escalated exactly once (audited and told to the consoles);
the ring's geography is served for the map, and a bad checkpoints file stops start-up, naming the line."""

from __future__ import annotations

import time

import pytest

from central.alerts import escalation
from central.app import create_app
from central.intel.ring import SHIPPED, RingError, load_ring
from central.lifecycle import escalate_once
from central.record.sqlite import audit
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from central.web import keys
from protocols.messages import SCHEMA_VERSION, Alert, AlertHit, AlertOutcome

AFTER_S = 60.0
#: The tests escalate at moments of their own, an hour ahead, so the app's own escalation timer (on the
#: real clock) never finds these alerts due first.
AHEAD_S = 3600.0


def alert(aid: str, raised_at: float, action: str = "intercept") -> Alert:
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=aid,
        checkpoint="SD-DZ-001",
        epoch=1,
        seq=int(raised_at) % 100000,
        raised_at=raised_at,
        captured_at=raised_at,
        camera_id="c",
        plate_read="鲁Q8K2L1",
        hit=AlertHit(
            entry_id="e",
            entry_plate="鲁Q8K2L1",
            list_id="l",
            list_name="涉毒",
            action=action,
            priority=90,
            kind="exact",
            score=1.0,
            explanation="完全比中",
        ),
    )


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        console=ConsoleSettings(token="246810", escalate_after_s=AFTER_S),
    )
    return await aiohttp_client(create_app(settings))


def escalations(app):
    return app[keys.STORE].read(lambda db: audit.records(db, action=escalation.ACTION))


async def test_an_unanswered_intercept_alert_is_escalated_once(client):
    app, now = client.app, time.time() + AHEAD_S
    store = app[keys.STORE]
    for a in (
        alert("due", now - 2 * AFTER_S),
        alert("answered", now - 2 * AFTER_S),
        alert("young", now - AFTER_S / 2),
        alert("notify", now - 2 * AFTER_S, "notify"),
        alert("covert", now - 2 * AFTER_S, "covert"),
        alert("ancient", now - escalation.LOOKBACK_S - 2 * AFTER_S),
    ):
        await store.run(lambda db, a=a: store.insert_alert(db, a))
    answer = AlertOutcome(
        seq=1, alert_id="answered", outcome="not_found", officer="li", acknowledged_at=now - AFTER_S
    )
    await store.run(lambda db: store.insert_event(db, "SD-DZ-001", 1, answer, now, now))

    first = await escalate_once(app, now)
    assert [f["alert_id"] for f in first] == ["due"]
    assert await escalate_once(app, now + 1) == [], "never twice"
    records = escalations(app)
    assert [(r.target, r.actor) for r in records] == [("due", escalation.ACTOR)]
    assert "鲁Q8K2L1" in records[0].detail and "SD-DZ-001" in records[0].detail
    assert app[keys.STORE].read(audit.verify).ok, "the escalation is a link of the hash chain"

    # time goes on: the young one falls due, the answered one never does
    later = await escalate_once(app, now + AFTER_S)
    assert [f["alert_id"] for f in later] == ["young"]
    assert sorted(r.target for r in escalations(app)) == ["due", "young"]


async def test_consoles_are_told_live_and_get_the_escalations_again_when_they_reconnect(client):
    app, now = client.app, time.time() + AHEAD_S
    store = app[keys.STORE]
    await store.run(lambda db: store.insert_alert(db, alert("due", now - 2 * AFTER_S)))
    await client.post("/login", json={"code": "246810"})
    ws = await client.ws_connect("/api/v1/ws")
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello" and hello["escalate_after_s"] == AFTER_S
    assert (await ws.receive_json(timeout=10))["type"] == "alert"
    await escalate_once(app, now)
    live = await ws.receive_json(timeout=10)
    await ws.close()
    assert live["type"] == "escalation" and live["escalation"]["alert_id"] == "due"
    assert live["escalation"]["checkpoint"] == "SD-DZ-001" and live["escalation"]["after_s"] == AFTER_S

    ws = await client.ws_connect("/api/v1/ws")
    frames = [await ws.receive_json(timeout=10) for _ in range(3)]
    await ws.close()
    assert [f["type"] for f in frames] == ["hello", "alert", "escalation"]
    # replayed to a console that connects later, the escalation names its alert as the live one did
    # (it used to carry only the id and time: the notice read "拦截预警超时未处置 · ·")
    assert frames[2]["escalation"] == {**live["escalation"], "escalated_at": now}
    assert live["escalation"]["plate_read"] and live["escalation"]["list_name"]


async def test_the_ring_is_served_to_staff(client):
    assert (await client.get("/api/v1/ring")).status == 401
    await client.post("/login", json={"code": "246810"})
    ring = (await (await client.get("/api/v1/ring")).json())["checkpoints"]
    assert len(ring) == len(SHIPPED.read_text(encoding="utf-8").strip().splitlines()) - 1
    dz = next(c for c in ring if c["checkpoint"] == "SD-DZ-001")
    assert (
        dz["lat"] == 37.47 and dz["lon"] == 116.33 and dz["city"] == "德州" and dz["name"].startswith("德州")
    )


def test_a_bad_checkpoints_file_is_refused_naming_the_line(tmp_path):
    bad = tmp_path / "ring.csv"
    bad.write_text("id,lat,lon\nSD-A-001,36.1,117.0\nSD-A-002,north,117.1\n", encoding="utf-8")
    with pytest.raises(RingError, match="line 3: lat and lon must be numbers"):
        load_ring(bad)
    bad.write_text("id,lat,lon\nSD-A-001,36.1,117.0\nSD-A-001,36.2,117.1\n", encoding="utf-8")
    with pytest.raises(RingError, match="line 3: checkpoint id empty or repeated"):
        load_ring(bad)
    bad.write_text("id,name\nSD-A-001,x\n", encoding="utf-8")
    with pytest.raises(RingError, match="missing column"):
        load_ring(bad)
    with pytest.raises(RingError, match="cannot read"):
        load_ring(tmp_path / "nowhere.csv")
