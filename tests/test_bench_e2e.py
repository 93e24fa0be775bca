"""``cordon bench e2e``: its record lookup on either store, and small runs end to end with real processes
(on SQLite, and on PostgreSQL after its SQLite reference). The figures are the command's to measure, not
asserted here."""

from __future__ import annotations

import time

import msgspec
import pytest

from central.ingest.listener import Recorder
from central.ingest.pipeline import Ingest
from central.watchlists.index import HubWatchlists
from cordon.bench import e2e, e2e_load
from protocols.messages import SCHEMA_VERSION, EventBatch, encode

SMALL = {"reads": 1600, "hits": 5, "backlog": 400, "entries": 2000}
#: A short saturated phase: a second of warm-up, a window of two, small pools of plates.
BRIEF = {"warmup_s": 1.0, "window_s": 2.0, "plates_per_edge": 500}


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_record_lookup_finds_lost_and_duplicated_ids(tmp_path, request, store):
    dsn = None
    if store == "sqlite":
        from central.record.sqlite.store import HubStore

        hub = HubStore(tmp_path / "hub.db")
    else:
        from central.record.postgresql.store import PgStores

        dsn = request.getfixturevalue("pg_dsn")
        hub = PgStores(dsn)
    hub.start()
    ingest = Ingest(hub, HubWatchlists(), publish=lambda t, p: None, listener=Recorder())
    reads = e2e_load.plate_reads("sim:SD-T-001:", ["鲁B12345", "鲁B12346", "鲁B12347"])
    # A camera that sent one read twice (two sequence numbers, one camera event id) is a duplicate.
    reads.append(msgspec.structs.replace(reads[2], seq=4))
    batch = EventBatch(v=SCHEMA_VERSION, checkpoint="SD-T-001", epoch=7, sent_at=time.time(), events=reads)
    ingest.handle("cordon/v1/cp/SD-T-001/events", encode(batch), time.time()).result(10)
    ingest.handle("cordon/v1/cp/SD-T-001/events", encode(batch), time.time()).result(10)  # a resend
    hub.stop()

    stored = e2e_load.stored_camera_event_ids(tmp_path, ["sim:"], dsn)
    assert stored == {"sim:SD-T-001:1": 1, "sim:SD-T-001:2": 1, "sim:SD-T-001:3": 2}
    lost, duplicated, examples = e2e_load.lost_and_duplicated(
        stored, [f"sim:SD-T-001:{s}" for s in range(1, 6)]
    )
    assert (lost, duplicated, examples) == (2, 1, ["sim:SD-T-001:4", "sim:SD-T-001:5"])


def _accounts_for_every_event(result):
    assert result["errors"] == []
    if result["parameters"]["reads"]:
        assert result["raw_messages_received"] == result["raw_messages_sent"] == 8
        assert result["ingest_reads"] == 1600 and result["ingest_resent_batches"] == 0
    assert result["saturated_committed_in_window"] > 0 and result["saturated_reads_per_s"] > 0
    assert result["saturated_sent"] >= result["saturated_committed_in_window"]
    assert result["cpu_us_per_read"]["hub"] > 0
    assert result["alert_latency_ms"]["count"] == 5 and result["alerts_missing"] == 0
    assert result["background_ok"] == result["background_sent"] > 0
    assert result["latency_cpu_us_per_read"]["hub"] > 0 and result["latency_reads_per_message"] >= 1
    assert result["replay_depth_at_first_status"] >= 400
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert result["saturated_lost"] == result["saturated_duplicated"] == 0
    assert result["bars"]["lost_and_duplicated_0"] is True


def test_phases_are_named_and_checked():
    assert e2e.parse_phases("latency") == ["latency"]
    assert e2e.parse_phases(" saturated, latency ") == ["saturated", "latency"]
    for wrong in ("", "latency,warmup"):
        with pytest.raises(ValueError, match="ingest, saturated, latency, replay"):
            e2e.parse_phases(wrong)
    with pytest.raises(ValueError, match="no phase warmup"):
        e2e.run(phases=["warmup"])


def test_small_run_accounts_for_every_event(tmp_path):
    result = e2e.run(**SMALL, **BRIEF, keep=str(tmp_path / "run"))
    _accounts_for_every_event(result)
    assert result["store"] == "sqlite" and result["cpu_us_per_read"]["postgresql"] is None
    assert set(result["bars"]) == {
        "ingest_ratio_ge_0.7",
        "alert_p99_ms_le_100",
        "replay_per_s_ge_5000",
        "lost_and_duplicated_0",
    }


@pytest.mark.system
def test_small_run_on_postgresql_reads_its_record_there_beside_a_sqlite_reference(tmp_path):
    # Without the fixed-load phase (the SQLite run covers it), to stay short: lost and duplicated are still
    # counted in PostgreSQL's tables for the saturated, latency and replay phases.
    result = e2e.run(**{**SMALL, "reads": 0}, **BRIEF, store="postgresql", keep=str(tmp_path / "run"))
    _accounts_for_every_event(result)
    assert not (tmp_path / "run" / "hub" / "data" / "record").exists()  # the record is in the database
    reference = result["sqlite_reference"]
    assert reference["errors"] == [] and reference["saturated_lost"] == reference["saturated_duplicated"] == 0
    assert result["sqlite_saturated_reads_per_s"] == reference["saturated_reads_per_s"] > 0
    assert result["ingest_ratio_pg_to_sqlite"] == round(
        result["saturated_reads_per_s"] / reference["saturated_reads_per_s"], 3
    )
    assert result["cpu_us_per_read"]["postgresql"] > 0 and reference["cpu_us_per_read"]["postgresql"] is None
    assert result["postgresql"]["fsync"] == result["postgresql"]["synchronous_commit"] == "on"
    assert "ingest_ratio_pg_to_sqlite_ge_0.7" in result["bars"]
