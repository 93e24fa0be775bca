"""The edge shows each alert once, across restarts too."""

from __future__ import annotations

import time

from edge.alertlog import REMEMBER_S, AlertLog
from protocols.messages import SCHEMA_VERSION, Alert, AlertHit


def alert(aid: str) -> Alert:
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=aid,
        checkpoint="SD-DZ-001",
        epoch=1,
        seq=1,
        raised_at=time.time(),
        captured_at=time.time(),
        camera_id="c",
        plate_read="鲁Q8K2L1",
        hit=AlertHit(
            entry_id="e",
            entry_plate="鲁Q8K2L1",
            list_id="l",
            list_name="涉毒",
            action="intercept",
            priority=90,
            kind="exact",
            score=1.0,
            explanation="x",
        ),
    )


async def test_an_alert_id_is_claimed_once_even_after_a_restart(tmp_path):
    log = AlertLog(tmp_path / "alerts.db", recent=2)
    log.start()
    try:
        assert log.claim(alert("A1")) and not log.claim(alert("A1"))
        await log.save(alert("A1"))
        for aid in ("A2", "A3"):
            assert log.claim(alert(aid))
            await log.save(alert(aid))
        assert [a.alert_id for a in log.recent] == ["A2", "A3"]
    finally:
        log.stop()
    again = AlertLog(tmp_path / "alerts.db", recent=2)
    again.start()
    try:
        assert not again.claim(alert("A1")), "an alert shown before the restart is not shown again"
        assert [a.alert_id for a in again.recent] == ["A2", "A3"], "the tablet still sees the latest alerts"
        assert again.claim(alert("A4"))
    finally:
        again.stop()


async def test_ids_are_forgotten_after_the_remembering_period(tmp_path):
    now = [1_000_000_000.0]
    log = AlertLog(tmp_path / "alerts.db", clock=lambda: now[0])
    log.start()
    log.claim(alert("A1"))
    await log.save(alert("A1"))
    log.stop()
    now[0] += REMEMBER_S + 1
    later = AlertLog(tmp_path / "alerts.db", clock=lambda: now[0])
    later.start()
    try:
        assert "A1" not in later and len(later) == 0
    finally:
        later.stop()
