"""Quick-test results at the hub: ingested once into kit_results, audited, on the console's feed,
and served by GET /api/v1/kit-results with its filters (no broker listens: the link stays down)."""

import datetime as dt
import sqlite3
import time

import pytest

from central import keys
from central.app import create_app
from central.settings import ConsoleSettings, HubSettings, MqttSettings
from protocols.kits import KitResult, MachineReading, PanelResult, Subject
from protocols.messages import SCHEMA_VERSION, EventBatch, KitResultEvent, encode

HASH = "scrypt$n=32768,r=8,p=1$" + "ab" * 32


@pytest.fixture
async def client(aiohttp_client, tmp_path, dead_broker_url):
    settings = HubSettings(data_dir=str(tmp_path / "hub"), mqtt=MqttSettings(url=dead_broker_url),
                           console=ConsoleSettings(token="246810"))
    c = await aiohttp_client(create_app(settings))
    return c


def kit_event(seq, call="negative", sampled_at=None):
    t = sampled_at or time.time() - 60
    result = KitResult(result_id=f"SD-DZ-001-{seq}", subject=Subject(id_hash=HASH, id_last4="002X"),
                       kit_model="SD-SAL6", lot="L1", expiry=dt.date(2099, 1, 1), sample_type="saliva",
                       panels=[PanelResult(drug="MET", officer_call=call,
                                           machine=MachineReading(call="uncertain", confidence=0.4)),
                               PanelResult(drug="KET", officer_call="negative")],
                       sampled_at=t, read_at=t + 600, officers=["chen", "002"], source="manual")
    return KitResultEvent(seq=seq, checkpoint_officer="chen", recorded_at=t + 601, result=result)


def ingest(app, events, checkpoint="SD-DZ-001"):
    batch = EventBatch(v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=1, sent_at=time.time(), events=events)
    return app[keys.INGEST].handle(f"cordon/v1/cp/{checkpoint}/events", encode(batch), time.time()).result(5)


async def test_kit_results_are_stored_once_and_served_with_filters(client):
    app = client.server.app
    first = ingest(app, [kit_event(1, "positive", sampled_at=1_800_000_000.0), kit_event(2)])
    assert first.committed == [1, 2] and len(first.kits) == 2
    again = ingest(app, [kit_event(1, "positive", sampled_at=1_800_000_000.0)])
    assert again.duplicates == 1 and again.kits == []
    ingest(app, [kit_event(1, "invalid")], checkpoint="SD-DZ-002")
    with sqlite3.connect(app[keys.STORE].path) as db:
        assert db.execute("SELECT count(*) FROM kit_results").fetchone()[0] == 3
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'kit.result'").fetchone()[0] == 3

    assert (await client.get("/api/v1/kit-results")).status in (401, 403)
    assert (await client.post("/login", json={"code": "246810"})).status == 200
    everything = (await (await client.get("/api/v1/kit-results")).json())["kit_results"]
    assert len(everything) == 3
    positives = (await (await client.get("/api/v1/kit-results?result=positive")).json())["kit_results"]
    assert [(r["checkpoint"], r["result_id"], r["result"]) for r in positives] == [
        ("SD-DZ-001", "SD-DZ-001-1", "positive")]
    p = positives[0]
    assert p["subject"] == {"id_hash": HASH, "id_last4": "002X", "id_problem": None, "name": None}
    assert p["panels"][0]["machine"]["call"] == "uncertain" and p["panels"][0]["officer_call"] == "positive"
    two = (await (await client.get("/api/v1/kit-results?checkpoint=SD-DZ-002")).json())["kit_results"]
    assert [r["result"] for r in two] == ["invalid"]
    later = (await (await client.get("/api/v1/kit-results?since=2027-01-01T00:00:00%2B00:00")).json())["kit_results"]
    assert [r["result_id"] for r in later] == ["SD-DZ-001-1"]
    earlier = (await (await client.get("/api/v1/kit-results?until=1800000000")).json())["kit_results"]
    assert len(earlier) == 2 and all(r["result_id"] != "SD-DZ-001-1" or r["checkpoint"] == "SD-DZ-002" for r in earlier)
    assert (await client.get("/api/v1/kit-results?result=maybe")).status == 400
    assert (await client.get("/api/v1/kit-results?since=yesterday")).status == 400
