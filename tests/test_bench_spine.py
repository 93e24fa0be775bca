"""``cordon bench spine``: a small run with real processes, so the command keeps working and accounts for
every read it pushes. The latency to reach is measured by the command, not here."""

from __future__ import annotations

import pytest

from cordon.bench import spine

pytestmark = pytest.mark.system


def test_a_small_run_times_every_read_to_its_console_alert(tmp_path):
    result = spine.run(3, entries=10, keep=str(tmp_path / "run"))
    assert result["errors"] == []
    assert result["alert_latency_ms"]["count"] == 3 and result["alerts_missing"] == 0
    assert result["alerts_on_another_list"] == 0
    assert result["bars"]["every_hit_alerted"] is True
    assert set(result["bars"]) == {"alert_p99_ms_le_100", "every_hit_alerted"}
    assert result["pass"] == all(result["bars"].values())
