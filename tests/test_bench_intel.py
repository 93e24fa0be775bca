"""``cordon bench intel``: a small run of the real thing (the simulation, ingest with the check off and on,
the scoring and the companion query), so the command keeps working and its scoring keeps meaning what
it says. The figures to reach are measured by the command, not here."""

from __future__ import annotations

from cordon.bench import intel


def test_a_small_run_finds_the_injected_clones_and_scores_them():
    result = intel.run(20_000, seed=8, repeats=1, companion_passages=50_000)
    assert set(intel.BARS) <= set(result) and set(result["pass"]) == set(intel.BARS)
    assert result["clones_injected"] == 20 and result["passages"] > 19_000
    # Clones are found and counted as found only from alerts naming a clone's read and the original's.
    assert result["clones_found"] >= 18 and result["clone_alerts"] >= result["clones_found"]
    assert result["clone_recall"] == round(result["clones_found"] / 20, 4)
    assert result["clone_recall_first_passage"] <= result["clone_recall"]
    assert result["false_clone_alerts_misread"] == 0 and result["false_clone_alerts_same_vehicle"] == 0
    # The noise model really makes confident misreads (what the false-alert figure is about).
    assert result["misreads_at_or_above_threshold"] > 50
    assert len(result["ingest_off_s"]) == len(result["ingest_on_s"]) == 1
    # One run each way: the medians are those runs, and a single run has no spread.
    assert result["ingest_cost_increase_median"] == result["ingest_cost_increase"]
    assert result["ingest_off_spread"] == 0.0
    assert result["companion_recall_top5"] >= 0.9 and result["companion_pairs"] > 0


def test_the_week_run_keeps_one_index_across_days_and_scores_the_days_after_the_first():
    result = intel.week(10_000, days=3, seed=8)
    assert result["days_measured"] == 2 and [d["clones_injected"] for d in result["per_day"]] == [0, 10, 10]
    assert result["clones_injected"] == 20 and result["clones_found"] >= 18
    # One index all week: the plates of the first day are still there on the last.
    assert (
        result["per_day"][0]["index_plates"] < result["per_day"][2]["index_plates"] == result["index_plates"]
    )
    assert result["false_clone_alerts_misread"] == 0
