import sqlite3
import time
from unittest import mock

import pytest

from edge.outbox import PRIORITY_HIT, PRIORITY_PASSAGE, PRIORITY_READ, OutboxStats, OutboxStore, decode_event
from protocols.messages import EdgeHit, Gap, Passage, PlateRead
from tests.support import until


def read(plate="鲁A12345"):
    return PlateRead(
        seq=1, camera_id="c", captured_at=time.time(), plate=plate, plate_raw=plate, plate_valid=True
    )


@pytest.fixture
def outbox(tmp_path):
    box = OutboxStore(tmp_path / "outbox.db")
    box.start()
    yield box
    box.stop()


async def test_append_numbers_and_persists(outbox, tmp_path):
    events = (
        await outbox.append([read("鲁A11111"), read("鲁A22222")], [PRIORITY_READ, PRIORITY_READ])
    ).events
    assert [e.seq for e in events] == [1, 2]
    bodies = await outbox.load([1, 2])
    assert decode_event(bodies[2]).plate == "鲁A22222"
    epoch = outbox.epoch
    outbox.stop()
    again = OutboxStore(tmp_path / "outbox.db")
    again.start()
    try:
        assert again.epoch == epoch
        assert [p.seq for p in again.take_initial_pending()] == [1, 2]
        (third,) = (await again.append([read()], [PRIORITY_READ])).events
        assert third.seq == 3
    finally:
        again.stop()


async def test_ack_deletes_ranges_and_sequence_never_goes_back(outbox, tmp_path):
    await outbox.append([read() for _ in range(5)], [PRIORITY_READ] * 5)
    assert await outbox.acknowledge([(1, 2), (4, 5)]) == 4
    assert (await outbox.stats()).depth == 1
    assert await outbox.acknowledge([(1, 5)]) == 1
    outbox.stop()
    again = OutboxStore(tmp_path / "outbox.db")
    again.start()
    try:
        (e,) = (await again.append([read()], [PRIORITY_READ])).events
        assert e.seq == 6, "a sequence number is never reused, even after everything was acknowledged"
    finally:
        again.stop()


async def test_initial_pending_puts_hits_first(outbox, tmp_path):
    await outbox.append([read(), read(), read()], [PRIORITY_READ, PRIORITY_HIT, PRIORITY_READ])
    outbox.stop()
    again = OutboxStore(tmp_path / "outbox.db")
    again.start()
    try:
        assert [p.seq for p in again.take_initial_pending()] == [2, 1, 3]
    finally:
        again.stop()


async def test_new_disk_new_epoch(tmp_path):
    a, b = OutboxStore(tmp_path / "a.db"), OutboxStore(tmp_path / "b.db")
    a.start(), b.start()
    try:
        assert a.epoch != b.epoch and a.epoch > 0
    finally:
        a.stop(), b.stop()


async def test_a_cancelled_caller_does_not_stop_the_writer(outbox):
    import asyncio
    import threading

    started = threading.Event()

    def hold(db):  # keep the writer busy while the next job waits in the queue
        started.set()
        time.sleep(0.3)

    busy = outbox._writer.submit(hold)
    assert started.wait(5)
    first = asyncio.ensure_future(outbox.append([read("鲁A11111")], [PRIORITY_READ]))
    await until(lambda: outbox._writer._jobs.qsize() == 1, timeout=5, what="its job queued")
    first.cancel()  # the camera hung up
    await asyncio.wrap_future(busy)
    (later,) = (await asyncio.wait_for(outbox.append([read("鲁A22222")], [PRIORITY_READ]), 5)).events
    assert later.seq == 1, "the cancelled read was never written"
    assert (await outbox.stats()).depth == 1


def hit(read_seq: int) -> EdgeHit:
    return EdgeHit(
        seq=1,
        read_seq=read_seq,
        alert_id="A1",
        entry_id="e",
        list_id="l",
        kind="exact",
        score=1.0,
        explanation="x",
        feed_version=1,
        matcher_version="m",
        raised_at=time.time(),
    )


async def test_quota_drops_oldest_plain_reads_only_and_reports_the_gap(tmp_path):
    box = OutboxStore(tmp_path / "outbox.db")
    box.start()
    try:
        size = len((await box.load([(await box.append([read()], [PRIORITY_READ])).events[0].seq]))[1])
        box.max_bytes = size * 10  # room for about ten reads
        # seq 2: a read that hit (committed at hit priority), seq 3 its hit; seq 4: a passage; then plain reads
        await box.append([read("鲁Q8K2L1")], [PRIORITY_HIT])
        await box.append([hit(2)], [PRIORITY_HIT])
        passage = Passage(
            seq=1, plate="鲁A12345", first_seen=1.0, last_seen=2.0, best_seq=1, read_seqs=[1], cameras=["c"]
        )
        await box.append([passage], [PRIORITY_PASSAGE])
        gaps: list[Gap] = []
        for _ in range(12):
            gaps += (await box.append([read()], [PRIORITY_READ])).gaps
        stats = await box.stats()
        assert stats.bytes <= box.max_bytes + 400, "the quota holds (give or take the gap record itself)"
        assert gaps and box.dropped_total == sum(g.count for g in gaps)
        dropped = {s for g in gaps for lo, hi in g.ranges for s in range(lo, hi + 1)}
        assert 1 in dropped, "the oldest plain read goes first"
        assert not dropped & {2, 3, 4}, "a read that hit, the hit and the passage are never dropped"
        left = await box.load(list(range(1, 40)))
        assert {2, 3, 4} <= left.keys() and not dropped & left.keys()
        for g in gaps:  # each gap is itself in the outbox, at hit priority, waiting for the hub
            assert isinstance(decode_event(left[g.seq]), Gap)
        assert stats.dropped_total == box.dropped_total
    finally:
        box.stop()
    again = OutboxStore(tmp_path / "outbox.db", max_bytes=size * 10)
    again.start()
    try:
        assert again.dropped_total == box.dropped_total, "the count survives a restart"
        pending = again.take_initial_pending()
        first = [p.seq for p in pending[: len(gaps) + 2]]
        assert set(first) == {2, 3} | {g.seq for g in gaps}, "hits, their reads and gaps replay first"
    finally:
        again.stop()


async def test_without_quota_nothing_is_dropped(outbox):
    for _ in range(50):
        assert not (await outbox.append([read()], [PRIORITY_READ])).gaps
    assert (await outbox.stats()).depth == 50 and outbox.dropped_total == 0


# SQLite refuses a commit: a full disk in the field; here a deferred constraint that every insert into
# the outbox breaks (checked only at COMMIT), or a trigger that fails the insert itself.
FAILURES = {
    "commit": """
        CREATE TABLE IF NOT EXISTS doomed (seq INTEGER REFERENCES nowhere (seq) DEFERRABLE INITIALLY DEFERRED);
        CREATE TABLE IF NOT EXISTS nowhere (seq INTEGER PRIMARY KEY);
        CREATE TRIGGER disk_full AFTER INSERT ON outbox BEGIN INSERT INTO doomed VALUES (NEW.seq); END;
    """,
    "insert": """
        CREATE TRIGGER disk_full BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END;
    """,
}


@pytest.mark.parametrize("failing", sorted(FAILURES))
async def test_a_failed_commit_leaves_the_counters_as_the_database_has_them(tmp_path, caplog, failing):
    path = tmp_path / "outbox.db"
    box = OutboxStore(path)
    box.start()
    other = sqlite3.connect(path, isolation_level=None)

    async def disk_full(appends: int) -> None:
        other.executescript(FAILURES[failing])
        for _ in range(appends):
            with pytest.raises(sqlite3.Error):
                await box.append([read()], [PRIORITY_READ])
        other.execute("DROP TRIGGER disk_full")

    async def counters_match_the_database(reads: int) -> None:
        depth, size_in_db, top = other.execute(
            "SELECT count(*), sum(length(body)), max(seq) FROM outbox"
        ).fetchone()
        assert (depth, top) == (reads, reads), "the failed appends wrote nothing"
        assert await box.stats() == OutboxStats(reads, mock.ANY, size_in_db, 0)
        assert box.dropped_total == 0, "nothing was dropped: the drops were rolled back with the commit"
        assert not [r for r in caplog.records if r.name == "edge.outbox"], "no drop was logged: none happened"

    try:
        size = len((await box.load([(await box.append([read()], [PRIORITY_READ])).events[0].seq]))[1])
        box.max_bytes = size * 10 + size // 2  # room for ten reads
        for _ in range(4):
            await box.append([read()], [PRIORITY_READ])
        await disk_full(10)  # five reads held, ten more refused
        await counters_match_the_database(5)
        appended = [await box.append([read()], [PRIORITY_READ]) for _ in range(5)]  # the disk has room again
        assert [e.seq for a in appended for e in a.events] == [6, 7, 8, 9, 10], (
            "no number lost to the failures"
        )
        assert not [a.gaps for a in appended if a.gaps], "ten reads fit the quota: none dropped"
        await disk_full(3)  # full now: each of these would have dropped a read
        await counters_match_the_database(10)
        appended = [await box.append([read()], [PRIORITY_READ])]
        assert [e.seq for a in appended for e in a.events] == [11]
        assert [g.ranges for a in appended for g in a.gaps] == [[(1, 1)]], "one read out for one read in"
        assert box.dropped_total == (await box.stats()).dropped_total == 1
    finally:
        other.close()
        box.stop()


async def test_appends_sharing_one_commit_each_see_the_others_numbers(tmp_path):
    import asyncio
    import threading

    box = OutboxStore(tmp_path / "outbox.db", max_bytes=10**6)
    box.start()
    try:
        release, started = threading.Event(), threading.Event()

        def hold(db):
            started.set()
            release.wait(5)

        busy = box._writer.submit(hold)  # the appends queue up behind it
        assert started.wait(5)
        appends = [asyncio.ensure_future(box.append([read()], [PRIORITY_READ])) for _ in range(5)]
        await until(lambda: box._writer._jobs.qsize() == 5, timeout=5, what="the five appends queued")
        commits = box._writer.commits
        release.set()
        await asyncio.wrap_future(busy)
        seqs = [e.seq for a in await asyncio.gather(*appends) for e in a.events]
        assert box._writer.commits <= commits + 2, "the five appends shared a commit"
        assert sorted(seqs) == [1, 2, 3, 4, 5]
    finally:
        box.stop()
