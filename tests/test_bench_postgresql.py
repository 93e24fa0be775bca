"""``cordon bench pgdriver``, ``cordon bench pgwriter`` and ``cordon bench store --backend postgresql``: small runs on clusters of
their own, so the commands keep working and count what they do. The figures are the commands' to
measure, not asserted here."""

from __future__ import annotations

import pytest

from cordon.bench import pgdriver, pgwriter, store_pg

pytestmark = pytest.mark.system


def test_a_small_driver_run_inserts_every_new_read_with_each_driver():
    result = pgdriver.run(batches=4, batch=50, lookups=5, rounds=1)
    workload = pgdriver.Workload(4, 50, 5, 5)  # the run's own (same seed): some reads are resends
    new_reads = len({seq for batch in workload.batches for seq in batch[3]})
    assert new_reads < 4 * 50
    assert set(result["insert"]) == {"psycopg_thread", "asyncpg_from_thread", "asyncpg_loop"}
    for way, figures in result["insert"].items():
        assert [run["new_reads_returned"] for run in figures["runs"]] == [new_reads], way
        assert figures["batch_p99_ms"] >= figures["batch_p50_ms"] > 0, way
    assert set(result["lookup"]) == {
        "psycopg_thread",
        "psycopg_to_thread",
        "asyncpg_from_thread",
        "asyncpg_loop",
    }


def test_a_small_writer_run_commits_every_read_and_alerts_on_the_listed_ones():
    result = pgwriter.run(messages=24, reads_per_message=3, bursts=(1, 4), warmup=5)
    assert result["reads_committed"] == (5 + 2 * 24) * 3
    # One listed read in 25 messages, counted from message 1 in the warm-up and from 0 in each burst size.
    assert result["alerts"] == 0 + 1 + 1
    for burst in ("burst_1", "burst_4"):
        figures = result[burst]
        assert figures["hub_cpu_us_per_message"] >= figures["writer_cpu_us_per_message"] > 0, burst
        assert figures["postgresql_cpu_us_per_message"] > 0 and figures["wall_ms_per_message"] > 0, burst


def test_a_small_store_run_fills_searches_and_purges_a_day_under_load():
    result = store_pg.run(reads=7000, days=2, queries=5, workers=1)
    assert result["backend"] == "postgresql" and result["reads"] == 7000
    assert result["purged_day"] == result["fill_days"][0]["day"]
    assert result["ingest_errors"] == 0 and result["errors"] == []
    assert result["ingest_commits_during_purge"] >= 1 and result["companions_runs"] >= 1
    assert set(result["pass"]) == set(store_pg.BARS)
    assert result["all_pass"] == all(result["pass"].values())
