"""``cordon bench cluster``: a small run (short windows, one kill, a small list), so the command keeps
working and counts what it does. The figures are the command's to measure, not asserted here."""

from __future__ import annotations

import pytest

from cordon.bench import cluster

pytestmark = [pytest.mark.system, pytest.mark.timeout(400)]


def test_a_small_cluster_run_measures_both_sizes_kills_a_hub_and_loses_nothing():
    # Pools of 200 plates, so that each simulated edge reads its plates again and again in each phase.
    result = cluster.run(entries=1000, warmup_s=2, window_s=3, kills=1, hits=10, plates_per_edge=200)
    assert result["errors"] == [], result["errors"]
    assert result["broker_limits"] == {"max_queued_messages": 1000, "max_inflight_messages": 100}, (
        "not deploy's"
    )
    assert result["one_hub_reads_per_s"] > 0 and result["two_hubs_reads_per_s"] > 0
    assert len(result["two_hubs_shares"]) == 2 and sum(result["two_hubs_shares"]) == pytest.approx(
        1, abs=0.01
    )
    assert set(result["cpu_us_per_read"]["one_hub"]) == {"hub", "postgresql", "broker"}
    assert set(result["cpu_us_per_read"]["two_hubs"]) == {"hub-1", "hub-2", "postgresql", "broker"}
    kills = result["phases"]["kills"]
    assert kills["kills"] + kills["faults_missed"] == 1
    assert kills["kill_reads_accepted"] > 0 and result["alerts_expected"] > 0
    # What the benchmark exists to count: a hub's SIGKILL loses and doubles nothing, every alert shows once.
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["alerts_shown_once"] == result["alerts_expected"]
    assert result["alerts_shown_twice"] == 0
    assert result["alert_latency_ms"]["count"] == 10
    # Clone pairs around the kill (ten a kill): each found once, none the record does not back.
    clones = result["clone_findings"]
    assert clones["expected"] == 10 and clones["found"] == 10, kills["clone_findings"]
    assert clones["twice"] == 0 and clones["false"] == 0, kills["clone_findings"]
    # No phase's load reads another phase's plates: a plate read at the one-hub phase's end and at the
    # two-hub phase's start, by checkpoints of other names, is a clone by the rule, and its alerts would
    # load the two hubs' measure.
    assert clones["elsewhere"] == 0, kills["clone_findings"]
    assert set(result["bars"]) == {
        "hub_shares_35_to_65",
        "lost_and_duplicated_0",
        "no_alert_shown_twice",
        "every_alert_shown",
        "resume_s_le_10",
        "alert_p99_ms_le_100",
        "clone_findings_all_present",
    }
    assert result["pass"] == all(result["bars"].values())
