"""``cordon bench e2e``: its record lookup, and a small run end to end with real processes."""

from __future__ import annotations

import time

import msgspec

from central.ingest.listener import Recorder
from central.ingest.pipeline import Ingest
from central.record.sqlite.store import HubStore
from central.watchlists.index import HubWatchlists
from cordon.bench import e2e, e2e_load
from protocols.messages import SCHEMA_VERSION, EventBatch, encode


def test_record_lookup_finds_lost_and_duplicated_ids(tmp_path):
    store = HubStore(tmp_path / "hub.db")
    store.start()
    ingest = Ingest(store, HubWatchlists(), publish=lambda t, p: None, listener=Recorder())
    reads = e2e_load.plate_reads("sim:SD-T-001:", ["鲁B12345", "鲁B12346", "鲁B12347"])
    # A camera that sent one read twice (two sequence numbers, one camera event id) is a duplicate.
    reads.append(msgspec.structs.replace(reads[2], seq=4))
    batch = EventBatch(v=SCHEMA_VERSION, checkpoint="SD-T-001", epoch=7, sent_at=time.time(), events=reads)
    ingest.handle("cordon/v1/cp/SD-T-001/events", encode(batch), time.time()).result(10)
    ingest.handle("cordon/v1/cp/SD-T-001/events", encode(batch), time.time()).result(10)  # a resend
    store.stop()

    stored = e2e_load.stored_camera_event_ids(tmp_path, ["sim:"])
    assert stored == {"sim:SD-T-001:1": 1, "sim:SD-T-001:2": 1, "sim:SD-T-001:3": 2}
    lost, duplicated, examples = e2e_load.lost_and_duplicated(
        stored, [f"sim:SD-T-001:{s}" for s in range(1, 6)]
    )
    assert (lost, duplicated, examples) == (2, 1, ["sim:SD-T-001:4", "sim:SD-T-001:5"])


def test_small_run_accounts_for_every_event(tmp_path):
    result = e2e.run(reads=1600, hits=5, backlog=400, entries=2000, keep=str(tmp_path / "run"))
    assert result["errors"] == []
    assert result["raw_messages_received"] == result["raw_messages_sent"] == 8
    assert result["ingest_reads"] == 1600 and result["ingest_resent_batches"] == 0
    assert result["alert_latency_ms"]["count"] == 5 and result["alerts_missing"] == 0
    assert result["background_ok"] == result["background_sent"] > 0
    assert result["replay_depth_at_first_status"] >= 400
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert result["bars"]["lost_and_duplicated_0"] is True
    assert set(result["bars"]) == {
        "ingest_ratio_ge_0.7",
        "alert_p99_ms_le_100",
        "replay_per_s_ge_5000",
        "lost_and_duplicated_0",
    }
