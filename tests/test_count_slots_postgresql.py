"""The ingest's counts on PostgreSQL, one row per hub (issue 23, migration 16): the day's reads and passages
(``record_day_counts``) and the statistics' (day, checkpoint) rows (``daily_slot_counts``) are split by the
hub's slot, so two hubs' ingest transactions never update one row and neither waits for the other's commit;
every reader sums the slots and what ``record_days`` and ``daily_counts`` hold (the counts of before the
migration, and those a hub of an older release still adds there during a rolling upgrade)."""

from __future__ import annotations

import datetime as dt
import time

import psycopg
import pytest

from central.record.days import day_of
from central.record.postgresql import schema
from central.record.postgresql.backup import _facts
from central.record.postgresql.load import PgLoader
from central.record.postgresql.reads import PgReadStore
from central.record.postgresql.schema import MIGRATIONS, hub_slot, migrate
from central.record.postgresql.store import PgStores
from protocols.messages import Passage, PlateRead

CP = "SD-DZ-001"
TZ = dt.timezone(dt.timedelta(hours=8))
T0 = time.time() - 3600
DAY = day_of(T0, TZ)

#: What a hub of the release before migration 16 runs to count (central/record/postgresql/reads.py and
#: stats.py of that release), with its parameters.
OLDER_DAY_COUNT = "UPDATE record_days d SET reads = d.reads + %s WHERE d.day = %s"
OLDER_DAILY_COUNTS = (
    "INSERT INTO daily_counts (day, checkpoint, reads, passages, no_plate) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (day, checkpoint) DO UPDATE SET reads = daily_counts.reads + excluded.reads, "
    "passages = daily_counts.passages + excluded.passages, no_plate = daily_counts.no_plate + excluded.no_plate"
)


def read(seq, plate="鲁A12345"):
    return PlateRead(seq=seq, camera_id="cam", captured_at=T0, plate=plate, plate_raw=plate, plate_valid=True)


def passage(seq, plate="鲁A12345"):
    return Passage(
        seq=seq,
        plate=plate,
        first_seen=T0,
        last_seen=T0 + 1,
        best_seq=seq - 1,
        read_seqs=[seq - 1],
        cameras=["cam"],
    )


def ingest(stores: PgStores, tx: psycopg.Connection, epoch: int, reads: int) -> None:
    """One batch as the ingest stores it: reads and a passage of one checkpoint, and their statistics."""
    # Other vehicles in each batch: a plate new to the day at two hubs at once is one row of ``plates``.
    items = [(CP, epoch, read(i, f"鲁A{epoch}{i:04d}"), T0, T0) for i in range(1, reads + 1)]
    stores.record.insert_many(tx, [*items, (CP, epoch, passage(reads + 1, f"鲁A{epoch}0001"), T0, T0)])
    stores.stats.add_daily_counts(tx, {(DAY.isoformat(), CP): [reads, 1, 0]})


@pytest.fixture
def hubs(pg_dsn):
    made = [PgStores(pg_dsn, hub="hub-a"), PgStores(pg_dsn, hub="hub-b")]
    for stores in made:
        stores.start()
        stores.record.prepare([DAY])
    yield made
    for stores in made:
        stores.stop()


def summed(stores: PgStores) -> tuple[int, int, int, int]:
    """The record's reads and passages, and the day's statistics for the checkpoint (reads, passages)."""
    counts = stores.record.counts()
    (row,) = stores.read(lambda tx: stores.stats.summary(tx, "checkpoint", DAY, DAY, TZ))["rows"]
    return counts.reads, counts.passages, row["reads"], row["passages"]


def test_a_hub_slot_is_a_stable_hash_of_its_name():
    assert hub_slot("") == 0  # a store of no name (tests, cordon store migrate)
    assert hub_slot("hub-a") == hub_slot("hub-a") == 1_649_250_128  # the same in every process
    assert hub_slot("hub-a") != hub_slot("hub-b")


def test_two_hubs_counting_one_day_and_checkpoint_never_wait_for_each_other(hubs, pg_dsn):
    """Each hub's ingest transaction open on the same day and checkpoint: the second stores its batch and
    commits while the first still holds its rows (before, it queued on the day's row, here within the
    second's lock_timeout of 1 s), and no session waited for a lock meanwhile."""
    a, b = hubs
    with psycopg.connect(pg_dsn) as x, psycopg.connect(pg_dsn) as y, psycopg.connect(pg_dsn) as look:
        y.execute("SET lock_timeout = '1s'")
        ingest(a, x, 1, 3)  # hub A's transaction stays open
        ingest(b, y, 2, 2)
        waiting = look.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()
        y.commit()
        assert waiting == (0,)
        x.commit()
    assert summed(a) == summed(b) == (5, 2, 5, 2)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM record_day_counts").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM daily_slot_counts").fetchone() == (2,)


def test_every_reader_sums_the_slots_and_what_older_hubs_counted(hubs, pg_dsn):
    a, b = hubs
    a.submit(lambda tx: ingest(a, tx, 1, 4)).result()
    b.submit(lambda tx: ingest(b, tx, 2, 2)).result()
    a.submit(lambda tx: ingest(a, tx, 3, 1)).result()
    with psycopg.connect(pg_dsn) as conn:  # a hub of the release before migration 16 counts as it did
        conn.execute(OLDER_DAY_COUNT, (10, DAY))
        conn.execute(OLDER_DAILY_COUNTS, (DAY, CP, 10, 0, 3))
    assert summed(a) == (17, 3, 17, 3)
    assert a.record.counts().days == 1
    with psycopg.connect(pg_dsn) as conn:
        facts = _facts(conn)
        assert (facts["reads"], facts["passages"]) == (17, 3)
    loader = PgLoader(pg_dsn)
    loader.open()
    try:
        assert loader.record_days() == {DAY: (17, 3)}  # what cordon store migrate checks its copy by
    finally:
        loader.close()


def test_a_purged_day_takes_every_hubs_counts_with_it(hubs, pg_dsn):
    a, b = hubs
    a.submit(lambda tx: ingest(a, tx, 1, 2)).result()
    b.submit(lambda tx: ingest(b, tx, 2, 2)).result()
    assert a.record.purge_before(DAY + dt.timedelta(days=1)) == [DAY]
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM record_day_counts").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM record_days").fetchone() == (0,)
    counts = a.record.counts()
    assert (counts.reads, counts.passages, counts.days) == (0, 0, 0)


def test_migration_16_leaves_what_older_hubs_run_working(pg_dsn, monkeypatch):
    """A database of the release before (migrations 1 to 15) with counts, then migration 16 run by the
    first upgraded hub while an older one goes on counting its way: nothing is moved or lost, the older
    statements still run, and the upgraded hub reads every count."""
    monkeypatch.setattr(schema, "MIGRATIONS", MIGRATIONS[:15])
    with psycopg.connect(pg_dsn) as conn:
        assert migrate(conn) == list(range(1, 16))
    older = PgReadStore(pg_dsn)
    older.start()
    older.prepare([DAY])  # the day's partitions and its row
    older.stop()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(OLDER_DAY_COUNT.replace("reads + %s", "reads + %s, passages = d.passages + 2"), (7, DAY))
        conn.execute(OLDER_DAILY_COUNTS, (DAY, CP, 7, 2, 1))
    monkeypatch.undo()
    upgraded = PgStores(pg_dsn, hub="hub-a")
    upgraded.start()  # runs migration 16
    try:
        with psycopg.connect(pg_dsn) as conn:
            assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (16,)
            assert conn.execute("SELECT reads, passages FROM record_days").fetchone() == (7, 2)
            conn.execute(OLDER_DAY_COUNT, (3, DAY))  # the older hub, still running
            conn.execute(OLDER_DAILY_COUNTS, (DAY, CP, 3, 0, 0))
        upgraded.submit(lambda tx: ingest(upgraded, tx, 1, 2)).result()
        assert summed(upgraded) == (12, 3, 12, 3)
    finally:
        upgraded.stop()
