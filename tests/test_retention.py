"""Retention with a clock the test controls: reads go after 30 days, hits and alerts after 365, the
audit trail stays, and every run is audited."""

from __future__ import annotations

import time

from central.ingest.listener import Recorder
from central.record import retention
from central.record.sqlite import audit
from central.record.sqlite.store import HubStore
from central.settings import RecordSettings
from protocols.messages import SCHEMA_VERSION, Alert, AlertHit, EventBatch, PlateRead, encode

DAY = 86400.0


def read(seq: int, at: float) -> PlateRead:
    return PlateRead(
        seq=seq, camera_id="c", captured_at=at, plate="鲁A12345", plate_raw="鲁A12345", plate_valid=True
    )


def alert(aid: str, at: float) -> Alert:
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=aid,
        checkpoint="SD-DZ-001",
        epoch=1,
        seq=1,
        raised_at=at,
        captured_at=at,
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


def test_reads_then_hits_expire_and_every_run_is_audited(tmp_path):
    from central.ingest.pipeline import Ingest
    from central.watchlists.index import HubWatchlists

    now = time.time()
    store = HubStore(tmp_path / "hub.db")
    store.start()
    try:
        ingest = Ingest(
            store,
            HubWatchlists(),
            publish=lambda t, p: None,
            listener=Recorder(),
        )
        old, recent = now - 40 * DAY, now - 2 * DAY
        batch = EventBatch(
            v=SCHEMA_VERSION,
            checkpoint="SD-DZ-001",
            epoch=1,
            sent_at=now,
            events=[read(1, old), read(2, recent)],
        )
        ingest.handle("cordon/v1/cp/SD-DZ-001/events", encode(batch), now).result(5)
        store.submit(
            lambda db: [
                store.insert_alert(db, a) for a in (alert("A-old", now - 400 * DAY), alert("A-young", old))
            ]
        ).result(5)
        assert store.counts().reads == 2
        settings = RecordSettings()  # 30 days of reads, 365 of hits

        report = retention.purge(store, settings, now)
        assert len(report.days) == 1 and store.counts().reads == 1, "the 40-day-old read's day is gone"
        assert report.hit_rows["alerts"] == 1
        left = {a.alert_id for a in store.recent_alerts()}
        assert left == {"A-young"}, "an alert older than 365 days goes, a 40-day-old one stays"

        later = now + 400 * DAY  # the clock moves on: everything is past its time now
        retention.purge(store, settings, later)
        assert store.counts().reads == 0 and not store.recent_alerts()
        runs = store.read(lambda db: audit.records(db, action="retention.purge"))
        assert len(runs) == 2 and runs[0].at == later, "each run is in the audit trail, at the clock's time"
        assert store.read(audit.verify).ok, "the trail itself is never purged, and its chain holds"
    finally:
        store.stop()
