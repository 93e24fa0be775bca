"""Hub ingest against a real SQLite store: idempotency, dead letters, matching, acknowledgements."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from central.ingest import listener as ingest_listener
from central.ingest.pipeline import Ingest
from central.record.sqlite.store import HubStore
from central.record.sqlite.watchlists import apply_changes
from central.watchlists.index import HubWatchlists, WatchlistFileError, changes_for, parse_csv
from central.watchlists.lists import ListService
from protocols.messages import (
    SCHEMA_VERSION,
    Ack,
    CheckpointStatus,
    EdgeHit,
    EventBatch,
    Gap,
    Passage,
    PlateRead,
    decode,
    derive_alert_id,
    encode,
    seq_ranges,
)

CSV = "plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n鲁A0K88B,秘密,covert,70,专案\n"


class Recorder:
    def __init__(self):
        self.published: list[tuple[str, bytes]] = []
        self.alerts = []
        self.statuses = []


@pytest.fixture
def hub(tmp_path):
    store = HubStore(tmp_path / "hub.db")
    store.start()
    rec = Recorder()
    watchlists = HubWatchlists()
    ListService(store, watchlists, lambda *a, **k: None).load()
    loaded = parse_csv(CSV)
    store.submit(
        lambda db: [op() for op in apply_changes(db, changes_for(loaded, {}), watchlists, "test").index_ops]
    ).result(5)
    ingest = Ingest(
        store,
        watchlists,
        publish=lambda t, p: rec.published.append((t, p)),
        listener=ingest_listener.Recorder(alerts=rec.alerts, statuses=rec.statuses),
    )
    yield ingest, store, rec
    store.stop()


def read(seq, plate="鲁B12345", **kw):
    return PlateRead(
        seq=seq,
        camera_id="cam",
        captured_at=time.time(),
        plate=plate,
        plate_raw=plate,
        plate_valid=True,
        **kw,
    )


def payload(events, checkpoint="SD-DZ-001", epoch=42, **kw):
    return encode(
        EventBatch(
            v=SCHEMA_VERSION, checkpoint=checkpoint, epoch=epoch, sent_at=time.time(), events=events, **kw
        )
    )


TOPIC = "cordon/v1/cp/SD-DZ-001/events"


def rows(store, sql):
    with sqlite3.connect(store.path) as db:
        return db.execute(sql).fetchall()


def record(store):
    """Every read in the record's day files (through the read store's interface)."""
    return [r for day in store.record.days() for r in store.record.iter_reads(day)]


def test_ranges():
    assert seq_ranges([5, 1, 2, 3, 7, 8, 2]) == [(1, 3), (5, 5), (7, 8)]
    assert seq_ranges([]) == []


def test_batch_is_stored_then_acknowledged_by_ranges(hub):
    ingest, store, rec = hub
    result = ingest.handle(TOPIC, payload([read(1), read(2), read(4)]), time.time()).result(5)
    assert result.reads == 3
    assert len(record(store)) == 3
    ((topic, body),) = rec.published
    assert topic == "cordon/v1/cp/SD-DZ-001/ack"
    ack = decode(Ack, body)
    assert ack.epoch == 42 and ack.ranges == [(1, 2), (4, 4)]


def test_resend_is_idempotent_and_acknowledged_again(hub):
    ingest, store, rec = hub
    batch = payload([read(1), read(2)])
    ingest.handle(TOPIC, batch, time.time()).result(5)
    again = ingest.handle(TOPIC, batch, time.time()).result(5)
    assert again.duplicates == 2 and again.reads == 0
    assert len(record(store)) == 2
    assert len(rec.published) == 2, "a resend is acknowledged again, or the edge would resend forever"


def test_same_identity_other_content_is_a_dead_letter_not_an_overwrite(hub):
    ingest, store, _ = hub
    ingest.handle(TOPIC, payload([read(1, "鲁B11111")]), time.time()).result(5)
    result = ingest.handle(TOPIC, payload([read(1, "鲁B22222")]), time.time()).result(5)
    assert result.dead_letters == 1
    assert [r.plate for r in record(store)] == ["鲁B11111"]
    ((reason,),) = rows(store, "SELECT reason FROM dead_letters")
    assert "already stored with different content" in reason


def test_same_seq_in_another_epoch_is_another_event(hub):
    ingest, store, _ = hub
    ingest.handle(TOPIC, payload([read(1)], epoch=1), time.time()).result(5)
    ingest.handle(TOPIC, payload([read(1)], epoch=2), time.time()).result(5)
    assert len(record(store)) == 2


@pytest.mark.parametrize(
    "topic, body, needle",
    [
        (TOPIC, b"garbage", "not valid JSON"),
        (TOPIC, b'{"v": 7}', "unsupported schema version 7"),
        ("cordon/v1/cp/SD-XX-000/events", None, "differs from the topic"),
        ("cordon/v1/cp/SD-DZ-001/nonsense", b"{}", "not a Cordon topic"),
    ],
)
def test_bad_messages_become_dead_letters_with_raw_bytes(hub, topic, body, needle):
    ingest, store, rec = hub
    body = body if body is not None else payload([read(1)])
    result = ingest.handle(topic, body, time.time()).result(5)
    assert result.dead_letters == 1
    ((reason, raw),) = rows(store, "SELECT reason, raw FROM dead_letters")
    assert needle in reason and raw == body
    assert rec.published == []
    # ingest goes on
    ingest.handle(TOPIC, payload([read(9)]), time.time()).result(5)
    assert len(record(store)) == 1


def test_status_naming_another_checkpoint_is_a_dead_letter_and_changes_nothing(hub):
    """An edge may publish only on its own status topic (the ACL); one that claims another checkpoint
    in the payload there is dead-lettered, and neither checkpoint's record changes."""
    ingest, store, rec = hub
    forged = encode(
        CheckpointStatus(
            v=SCHEMA_VERSION, checkpoint="SD-DZ-001", online=False, sent_at=time.time(), epoch=42
        )
    )
    result = ingest.handle("cordon/v1/cp/SD-LY-001/status", forged, time.time()).result(5)
    assert result.dead_letters == 1 and result.status is None
    ((reason, raw, checkpoint),) = rows(store, "SELECT reason, raw, checkpoint FROM dead_letters")
    assert "differs from the topic" in reason and raw == forged and checkpoint == "SD-LY-001"
    assert rows(store, "SELECT checkpoint FROM checkpoints") == []
    assert rec.statuses == []
    honest = encode(
        CheckpointStatus(v=SCHEMA_VERSION, checkpoint="SD-LY-001", online=True, sent_at=time.time(), epoch=42)
    )
    assert ingest.handle("cordon/v1/cp/SD-LY-001/status", honest, time.time()).result(5).status is not None
    assert rows(store, "SELECT checkpoint, online FROM checkpoints") == [("SD-LY-001", 1)]


def test_watchlisted_read_raises_one_alert_with_derived_id(hub):
    ingest, store, rec = hub
    ingest.handle(TOPIC, payload([read(1, "鲁Q8K2LI"), read(2, "鲁B12345")]), time.time()).result(5)
    (alert,) = rec.alerts
    assert alert.alert_id == derive_alert_id("SD-DZ-001", 42, 1, alert.hit.entry_id)
    assert alert.hit.kind == "equivalent" and alert.hit.entry_plate == "鲁Q8K2L1"
    assert alert.hit.reason == "线索" and alert.hit.list_name == "涉毒"
    # a resend of the same read does not raise it again
    ingest.handle(TOPIC, payload([read(1, "鲁Q8K2LI")]), time.time()).result(5)
    assert len(rec.alerts) == 1
    assert rows(store, "SELECT count(*) FROM alerts WHERE dispatched_at IS NULL") == [(1,)]


def test_ingest_never_scans_a_whole_table(hub):
    """Every statement ingest runs for a read, a hit or a passage is an index lookup or an insert: one full
    scan per event makes ingest slow down as the record grows (it once scanned reads for every read)."""
    ingest, store, _ = hub
    ingest.handle(TOPIC, payload([read(s) for s in range(1, 50)]), time.time()).result(5)
    statements: list[str] = []
    store.submit(lambda db: db.conn.set_trace_callback(statements.append)).result(5)
    hit = EdgeHit(
        seq=51,
        read_seq=52,
        alert_id=derive_alert_id("SD-DZ-001", 42, 52, "涉毒:鲁Q8K2L1"),
        entry_id="涉毒:鲁Q8K2L1",
        list_id="涉毒",
        kind="exact",
        score=1.0,
        explanation="exact",
        feed_version=1,
        matcher_version="m1",
        raised_at=time.time(),
    )
    p = Passage(
        seq=53,
        plate="鲁Q8K2L1",
        first_seen=time.time(),
        last_seen=time.time(),
        best_seq=52,
        read_seqs=[52],
        cameras=["cam"],
    )
    ingest.handle(TOPIC, payload([hit, read(52, "鲁Q8K2L1"), p]), time.time()).result(5)
    store.submit(lambda db: db.conn.set_trace_callback(None)).result(5)
    # the lookups this test is about did run: the read by its identity in its day file, the edge hits
    assert any(".reads" in sql and "seq" in sql for sql in statements), statements
    assert any("FROM edge_hits" in sql for sql in statements)
    queries = [sql for sql in statements if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))]

    def plans(db):  # in the writer's own connection, where the day files are attached
        return [(sql, row[3]) for sql in queries for row in db.conn.execute("EXPLAIN QUERY PLAN " + sql)]

    scans = [(sql, detail) for sql, detail in store.submit(plans).result(5) if detail.startswith("SCAN")]
    assert not scans


def test_passages_are_stored(hub):
    ingest, store, _ = hub
    p = Passage(
        seq=3,
        plate="鲁B12345",
        first_seen=1.0,
        last_seen=2.0,
        best_seq=1,
        read_seqs=[1, 2],
        cameras=["a", "b"],
    )
    ingest.handle(TOPIC, payload([read(1), read(2), p]), time.time()).result(5)
    (stored,) = [q for day in store.record.days() for q in store.record.passages_of(day)]
    assert json.loads(stored["read_seqs"]) == [1, 2] and json.loads(stored["cameras"]) == ["a", "b"]


def test_commit_failure_acknowledges_nothing(hub):
    ingest, store, rec = hub
    # Wait only briefly for locks, so the failure comes fast (production waits 30 s).
    store.submit(lambda db: db.conn.execute("PRAGMA busy_timeout=100")).result(5)
    # Another process holds an exclusive lock on the database: no commit can happen.
    blocker = sqlite3.connect(store.path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        future = ingest.handle(TOPIC, payload([read(1)]), time.time())
        with pytest.raises(sqlite3.OperationalError):
            future.result(30)
        assert rec.published == [], "nothing is acknowledged that was not committed"
        assert store.writer_error and "locked" in store.writer_error
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    ingest.handle(TOPIC, payload([read(1)]), time.time()).result(5)
    assert len(rec.published) == 1 and store.writer_error is None


def test_watchlist_csv_is_all_or_nothing_with_line_numbers():
    bad = "plate,list,action,priority\n鲁A12345,x,intercept,50\n,x,intercept,50\n鲁A1,x,stop,50\n鲁A2,y,notify,500\n"
    with pytest.raises(WatchlistFileError) as err:
        parse_csv(bad)
    problems = err.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5"]
    with pytest.raises(WatchlistFileError, match="unknown column"):
        parse_csv("plate,list,colour_of_car\n鲁A12345,x,red\n")


def test_gap_is_recorded_acknowledged_once_and_counted(hub):
    ingest, store, rec = hub
    gap = Gap(
        seq=9,
        ranges=[(1, 3), (5, 7)],
        count=6,
        reason="outbox disk quota reached",
        dropped_at=time.time(),
        dropped_total=6,
    )
    batch = payload([read(4), gap])
    result = ingest.handle(TOPIC, batch, time.time()).result(5)
    assert result.gap_reads == 6 and ingest.metrics.gap_reads == 6
    assert decode(Ack, rec.published[-1][1]).ranges == [(4, 4), (9, 9)]
    ingest.handle(TOPIC, batch, time.time()).result(5)  # a resend counts nothing twice
    assert rows(store, "SELECT lo, hi, count FROM gaps ORDER BY lo") == [(1, 3, 3), (5, 7, 3)]
    (cp,) = store.checkpoints()
    assert cp["checkpoint"] == "SD-DZ-001" and cp["dropped_reads"] == 6
    assert [g["lo"] for g in store.gaps("SD-DZ-001")] == [5, 1]


THUMB = "/9j/4AAQSkZJRgABAQ=="


def hit(seq, read_seq, alert_id, entry_id, thumbnail=THUMB):
    return EdgeHit(
        seq=seq,
        read_seq=read_seq,
        alert_id=alert_id,
        entry_id=entry_id,
        list_id="涉毒",
        kind="exact",
        score=1.0,
        explanation="exact",
        feed_version=1,
        matcher_version="m",
        raised_at=time.time(),
        thumbnail=thumbnail,
    )


def stored_thumbnail(store, alert_id):
    (body,) = rows(store, f"SELECT body FROM alerts WHERE alert_id='{alert_id}'")[0]
    return json.loads(body).get("thumbnail")


def listed_entry(store):
    (entry_id,) = rows(store, "SELECT entry_id FROM wl_entries WHERE plate='鲁Q8K2L1'")[0]
    return entry_id


def test_edge_hit_thumbnail_rides_on_the_alert_in_the_same_batch(hub):
    ingest, store, rec = hub
    entry = listed_entry(store)
    aid = derive_alert_id("SD-DZ-001", 42, 1, entry)
    ingest.handle(
        TOPIC, payload([read(1, "鲁Q8K2L1", has_evidence=True), hit(2, 1, aid, entry)]), time.time()
    ).result(5)
    (alert,) = rec.alerts
    assert alert.alert_id == aid and alert.thumbnail == THUMB
    assert stored_thumbnail(store, aid) == THUMB


def test_edge_hit_before_its_read_still_gives_the_alert_its_thumbnail(hub):
    ingest, store, rec = hub
    entry = listed_entry(store)
    aid = derive_alert_id("SD-DZ-001", 42, 5, entry)
    ingest.handle(TOPIC, payload([hit(6, 5, aid, entry)]), time.time()).result(5)
    assert rec.alerts == []  # the read is not there yet
    ingest.handle(TOPIC, payload([read(5, "鲁Q8K2L1")]), time.time()).result(5)
    (alert,) = rec.alerts
    assert alert.thumbnail == THUMB and stored_thumbnail(store, aid) == THUMB


def test_edge_hit_after_its_alert_puts_the_thumbnail_on_the_stored_alert(hub):
    ingest, store, rec = hub
    entry = listed_entry(store)
    aid = derive_alert_id("SD-DZ-001", 42, 7, entry)
    ingest.handle(TOPIC, payload([read(7, "鲁Q8K2L1")]), time.time()).result(5)
    (alert,) = rec.alerts
    assert alert.thumbnail is None and stored_thumbnail(store, aid) is None
    result = ingest.handle(TOPIC, payload([hit(8, 7, aid, entry)]), time.time()).result(5)
    assert len(rec.alerts) == 1  # not raised twice
    assert stored_thumbnail(store, aid) == THUMB
    (again,) = result.pictures  # for the consoles
    assert again.alert_id == aid and again.thumbnail == THUMB
    # a later hit without a picture, or another picture, does not replace it
    ingest.handle(TOPIC, payload([hit(9, 7, aid, entry, "QUJD")]), time.time()).result(5)
    assert stored_thumbnail(store, aid) == THUMB


def test_a_thumbnail_that_is_not_base64_or_too_long_is_a_dead_letter(hub):
    ingest, store, rec = hub
    for bad in ("<script>", "A" * 20_000):
        raw = json.loads(payload([hit(2, 1, "A1", "e", None)]))
        raw["events"][0]["thumbnail"] = bad
        ingest.handle(TOPIC, json.dumps(raw).encode(), time.time()).result(5)
    assert rows(store, "SELECT count(*) FROM dead_letters") == [(2,)]
    assert rows(store, "SELECT count(*) FROM edge_hits") == [(0,)]


def test_a_batch_with_fields_this_hub_does_not_know_is_stored_matched_and_acknowledged(hub):
    """The compatibility rule at the hub (docs/protocol.md): a newer edge's optional fields are ignored,
    in the batch and in every event, and do not make a resend of the same events look different."""
    ingest, store, rec = hub
    plain = payload([read(1), read(2, "鲁Q8K2L1")])
    newer = json.loads(plain)
    newer["route_hint"] = "G20"
    for event in newer["events"]:
        event["tyre_colour"] = {"front": "black"}
    result = ingest.handle(TOPIC, json.dumps(newer).encode(), time.time()).result(5)
    assert (result.reads, result.dead_letters) == (2, 0)
    assert [a.plate_read for a in rec.alerts] == ["鲁Q8K2L1"]
    ((_, body),) = rec.published
    assert decode(Ack, body).ranges == [(1, 2)]
    again = ingest.handle(TOPIC, plain, time.time()).result(5)
    assert (again.duplicates, again.dead_letters) == (2, 0)
    assert rows(store, "SELECT count(*) FROM dead_letters") == [(0,)]


def test_a_batch_of_a_major_version_this_hub_does_not_read_is_a_dead_letter_and_not_acknowledged(hub):
    """Not acknowledged, so the events stay in the edge's outbox until a hub that reads them runs."""
    ingest, store, rec = hub
    body = json.dumps({**json.loads(payload([read(1)])), "v": 2}).encode()
    result = ingest.handle(TOPIC, body, time.time()).result(5)
    assert result.dead_letters == 1 and rec.published == [] and record(store) == []
    ((reason, raw),) = rows(store, "SELECT reason, raw FROM dead_letters")
    assert reason.startswith("unsupported schema version 2 of EventBatch: this side reads major version 1")
    assert raw == body
