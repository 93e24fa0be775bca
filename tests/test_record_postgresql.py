"""What only the PostgreSQL record has: its schema and migrations, partitions made between transactions,
retention by ``DETACH PARTITION ... CONCURRENTLY`` under ``lock_timeout`` while ingest goes on, and the
purge a crash interrupted. The behaviour both stores share is in tests/test_record_contract.py."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest

from central.record.postgresql.reads import DaysNotReady, PgReadStore
from central.record.postgresql.schema import MIGRATIONS, migrate
from protocols.messages import Passage, PlateRead

DAY = 86400.0
CP = "SD-DZ-001"
TZ = dt.timezone(dt.timedelta(hours=8))


def read(seq, at, plate="鲁A12345"):
    return PlateRead(seq=seq, camera_id="cam", captured_at=at, plate=plate, plate_raw=plate, plate_valid=True)


def item(event):
    return (CP, 1, event, 0.0, time.time())


@pytest.fixture
def store(pg_dsn):
    s = PgReadStore(pg_dsn, lock_timeout_s=0.5)
    s.start()
    yield s
    s.stop()


def tables_named_like_partitions(dsn):
    with psycopg.connect(dsn) as conn:
        return sorted(
            name
            for (name,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^(reads|passages|plates)_[0-9]{8}$'"
            )
        )


def test_the_schema_is_partitioned_by_day_with_raw_text_as_bytes(store, pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == list(
            range(1, len(MIGRATIONS) + 1)
        )
        keys = conn.execute(
            "SELECT c.relname, p.partstrat, a.attname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] ORDER BY c.relname"
        ).fetchall()
        assert keys == [("passages", "r", "day"), ("plates", "r", "day"), ("reads", "r", "day")]
        identity = conn.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = 'reads'::regclass AND i.indisunique"
        ).fetchone()[0]
        assert "(checkpoint, epoch, seq, day)" in identity
        types = dict(
            conn.execute(
                "SELECT column_name, data_type || coalesce(' ' || collation_name, '') FROM information_schema.columns "
                "WHERE table_name = 'reads'"
            ).fetchall()
        )
        assert types["plate"] == "text C" and types["plate_raw"] == "bytea" and types["camera_id"] == "bytea"
    again = PgReadStore(pg_dsn)
    again.start()  # nothing left to migrate
    again.stop()


def test_hubs_starting_together_on_a_fresh_database_apply_each_migration_once(pg_dsn):
    # Four hubs start at the same instant: each migration runs in one of them, under the advisory lock,
    # and the others find it recorded (without the lock two run CREATE TABLE and one fails).
    hubs = 4
    barrier = threading.Barrier(hubs)
    applied: list[list[int]] = []
    errors: list[Exception] = []

    def start():
        with psycopg.connect(pg_dsn) as conn:
            barrier.wait()
            try:
                applied.append(migrate(conn))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(hubs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(v for done in applied for v in done) == list(range(1, len(MIGRATIONS) + 1))
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT version) FROM schema_migrations").fetchone() == (
            len(MIGRATIONS),
            len(MIGRATIONS),
        )


def test_hubs_meeting_a_new_day_together_make_its_partitions_once(pg_dsn):
    # Several hubs share the database (issue 23); each met the same new day in its batch at once. Without
    # the advisory lock two ran CREATE TABLE for the same partition and one's batch failed (seen with two
    # hub processes: "duplicate key value violates unique constraint pg_type_typname_nsp_index").
    hubs = 4
    stores = [PgReadStore(pg_dsn, lock_timeout_s=10) for _ in range(hubs)]
    for s in stores:
        s.start()
    day = dt.date(2031, 5, 17)
    barrier = threading.Barrier(hubs)
    errors: list[Exception] = []

    def prepare(s):
        barrier.wait()
        try:
            s.prepare([day])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=prepare, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert tables_named_like_partitions(pg_dsn) == [
            f"{t}_20310517" for t in ("passages", "plates", "reads")
        ]
    finally:
        for s in stores:
            s.stop()


def test_an_insert_inside_a_transaction_asks_for_a_new_day_first(store, pg_dsn):
    now = time.time()
    with psycopg.connect(pg_dsn) as conn:
        with pytest.raises(DaysNotReady) as raised, conn.transaction():
            conn.execute("SELECT 1")
            store.insert_many(conn, [item(read(1, now))])
        assert raised.value.days == [dt.datetime.fromtimestamp(now, TZ).date()]
        store.prepare(raised.value.days)
        with conn.transaction():
            assert store.insert_many(conn, [item(read(1, now))])[0].inserted
    assert store.counts().reads == 1


def test_ingest_goes_on_while_a_day_is_detached_behind_a_long_search(pg_dsn):
    """A search that holds its snapshot makes the detach wait; new reads are committed all the while."""
    store = PgReadStore(pg_dsn, lock_timeout_s=30)
    store.start()
    now = time.time()
    old = dt.datetime.fromtimestamp(now - 3 * DAY, TZ).date()
    try:
        store.write([item(read(1, now - 3 * DAY)), item(read(2, now))])
        search = psycopg.connect(pg_dsn)
        search.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert search.execute("SELECT count(*) FROM reads").fetchone()[0] == 2  # both days' partitions read
        purged: list = []
        purge = threading.Thread(target=lambda: purged.append(store.purge_before(old + dt.timedelta(days=1))))
        purge.start()
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as watch:
                deadline = time.monotonic() + 30
                while not watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE%%DETACH%%' AND wait_event_type = 'Lock'"
                ).fetchone()[0]:
                    assert time.monotonic() < deadline, "the detach never waited"
                    time.sleep(0.05)
            # Ingest while the detach waits, more often than the writer's batch insert takes to be planned
            # generically (after five custom plans): a generic plan of it names the day's partitions alone.
            for seq in range(3, 15):
                assert store.write([item(read(seq, now, plate=f"鲁B0000{seq}"))])[0].inserted
            assert purge.is_alive(), "the detach waited for the search"
            assert [r.plate for r in store.search_exact("鲁B00005", now - 60, now + 60).reads] == ["鲁B00005"]
        finally:
            search.rollback()
            search.close()
            purge.join(30)
        assert purged == [[old]]
        assert store.counts().reads == 13
        assert not any(name.endswith(f"{old:%Y%m%d}") for name in tables_named_like_partitions(pg_dsn))
    finally:
        store.stop()


def test_a_detach_that_times_out_is_finished_by_the_next_purge(store, pg_dsn):
    now = time.time()
    old = dt.datetime.fromtimestamp(now - 3 * DAY, TZ).date()
    store.write([item(read(1, now - 3 * DAY)), item(read(2, now))])
    holder = psycopg.connect(pg_dsn)
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    holder.execute("SELECT count(*) FROM reads").fetchone()
    try:
        assert store.purge_before(old + dt.timedelta(days=1)) == [], "lock_timeout (0.5 s) stopped it"
        assert old in store.days()
        assert store.write([item(read(3, now))])[0].inserted, "ingest is not held up"
    finally:
        holder.rollback()
        holder.close()
    assert store.purge_before(old + dt.timedelta(days=1)) == [old]
    assert store.days() == [dt.datetime.fromtimestamp(now, TZ).date()]
    assert not any(name.endswith(f"{old:%Y%m%d}") for name in tables_named_like_partitions(pg_dsn))
    assert store.counts().reads == 2


def test_a_purge_a_crash_interrupted_is_finished_at_start(store, pg_dsn):
    now = time.time()
    old = dt.datetime.fromtimestamp(now - 3 * DAY, TZ).date()
    store.write(
        [
            item(read(1, now - 3 * DAY)),
            item(
                Passage(
                    seq=2,
                    plate="鲁A1",
                    first_seen=now - 3 * DAY,
                    last_seen=now - 3 * DAY,
                    best_seq=1,
                    read_seqs=[1],
                    cameras=["c"],
                )
            ),
        ]
    )
    store.write([item(read(3, now))])
    store.stop()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # the crash: reads detached, nothing dropped
        conn.execute(f"ALTER TABLE reads DETACH PARTITION reads_{old:%Y%m%d}")
    again = PgReadStore(pg_dsn)
    again.start()
    try:
        assert again.days() == [dt.datetime.fromtimestamp(now, TZ).date()]
        assert not any(name.endswith(f"{old:%Y%m%d}") for name in tables_named_like_partitions(pg_dsn))
        assert again.write([item(read(1, now - 3 * DAY))])[0].inserted, (
            "the day is made again when a read comes"
        )
        assert again.counts().reads == 2
    finally:
        again.stop()


def test_the_tests_cluster_is_our_own_durable_and_unprivileged(pg_cluster, pg_dsn):
    import os

    with psycopg.connect(pg_dsn) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("fsync", "synchronous_commit", "full_page_writes", "listen_addresses", "port")
        }
    assert settings == {
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "listen_addresses": "127.0.0.1",
        "port": str(pg_cluster.port),
    }
    assert pg_cluster.port != 5432
    assert not str(pg_cluster.data).startswith("/tmp/pytest-of-"), "outside pytest's private folder"
    owner = os.stat(f"/proc/{pg_cluster.server_pids()[0]}").st_uid
    assert owner != 0, "the server never runs as root"


def test_two_hubs_saying_checkpoints_were_seen_in_opposite_orders_do_not_deadlock(pg_dsn):
    """Each hub's group commit says when its checkpoints were last seen and holds what it wrote to its
    end: two groups writing two checkpoints' rows in opposite orders waited on each other (a deadlock,
    one group aborted). A row another transaction is writing is now left to it, without waiting."""
    from central.record.postgresql.events import PgEvents

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        migrate(conn)
        for cp in ("SD-DZ-001", "SD-LY-001"):  # rows that exist: the everyday case
            PgEvents.checkpoint_seen(conn, cp, 1.0, 1)
    with psycopg.connect(pg_dsn) as x, psycopg.connect(pg_dsn) as y:
        for conn in (x, y):
            conn.execute("SET lock_timeout = '2s'")  # a wait would end the test here, not hang it
        PgEvents.checkpoint_seen(x, "SD-DZ-001", 10.0, 1)
        PgEvents.checkpoint_seen(y, "SD-LY-001", 11.0, 1)
        PgEvents.checkpoint_seen(x, "SD-LY-001", 12.0, 1)  # y holds it: left to y
        PgEvents.checkpoint_seen(y, "SD-DZ-001", 13.0, 1)  # x holds it: left to x
        x.commit()
        y.commit()
    with psycopg.connect(pg_dsn) as conn:
        seen = dict(conn.execute("SELECT checkpoint, last_seen FROM checkpoints ORDER BY 1").fetchall())
        assert seen == {"SD-DZ-001": 10.0, "SD-LY-001": 11.0}
        PgEvents.checkpoint_seen(conn, "SD-XX-009", 20.0, 2)  # a new checkpoint's row is made
        conn.commit()
        assert conn.execute(
            "SELECT last_seen, epoch FROM checkpoints WHERE checkpoint = 'SD-XX-009'"
        ).fetchone() == (
            20.0,
            2,
        )


def _until_waiting_for_a_lock(dsn: str, timeout_s: float = 30.0) -> None:
    """Until a session of this database waits for a lock another holds (``pg_stat_activity``)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            (waiting,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            ).fetchone()
            if waiting:
                return
            assert time.monotonic() < deadline, "no session ever waited for the lock"
            time.sleep(0.01)


def test_a_job_that_gives_way_in_a_deadlock_runs_again(pg_dsn):
    """A job of the store's writer and another hub's transaction each hold a lock the other wants: the
    job PostgreSQL picks to give way is rolled back to its savepoint, lets the other commit, and runs again
    in the next group, instead of failing (a hub's login once failed with a 500 that way)."""
    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    runs: list[int] = []
    try:
        with psycopg.connect(pg_dsn) as other:
            # The other side waits longer before it looks for a deadlock: the job is the one to give way.
            other.execute("SET deadlock_timeout = '10s'")
            other.execute("SELECT pg_advisory_xact_lock(1)")

            def job(tx):
                runs.append(1)
                tx.execute("SELECT pg_advisory_xact_lock(2)")
                tx.execute("SELECT pg_advisory_xact_lock(1)")  # the other holds it
                return len(runs)

            done = stores.submit(job)
            _until_waiting_for_a_lock(pg_dsn)  # the job holds 2 and waits for 1
            taken = threading.Thread(target=lambda: other.execute("SELECT pg_advisory_xact_lock(2)"))
            taken.start()  # and now the other waits for 2: a deadlock, found by the job's side in 1 s
            taken.join(30)
            assert not taken.is_alive()
            other.commit()
            assert done.result(timeout=30) == 2  # given way once, then through
    finally:
        stores.stop()


def test_two_hubs_storing_the_same_event_at_once_store_it_once(pg_dsn):
    """A resend that reaches a second hub while the first has not committed the same event yet: the second
    waits for that commit and finds the event stored (it failed on the unique key, a dead letter)."""
    from central.record.postgresql.store import PgStores
    from protocols.messages import Gap

    stores = PgStores(pg_dsn)
    stores.start()
    gap = Gap(seq=7, ranges=[(1, 3)], count=3, reason="quota", dropped_at=5.0, dropped_total=3)
    try:
        with psycopg.connect(pg_dsn) as x, psycopg.connect(pg_dsn) as y:
            assert stores.insert_event(x, "SD-DZ-001", 1, gap, 5.0, 6.0).inserted
            second: list = []
            waiting = threading.Thread(
                target=lambda: second.append(stores.insert_event(y, "SD-DZ-001", 1, gap, 5.0, 6.5))
            )
            waiting.start()
            _until_waiting_for_a_lock(pg_dsn)  # y waits on x's uncommitted row
            x.commit()
            waiting.join(30)
            y.commit()
            assert second and not second[0].inserted and not second[0].dead_letter, second
        with psycopg.connect(pg_dsn) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    finally:
        stores.stop()


def test_a_new_days_partitions_are_analyzed_as_soon_as_each_holds_rows(store, pg_dsn):
    """The writer keeps generic plans, made in a day's first seconds; with its partitions never analyzed the
    plan looked identities up in the other table by (checkpoint, first_seen) and scanned every passage of a
    checkpoint for each read (seconds of alert latency until autovacuum came). Each partition is analyzed
    once it holds ``ANALYZE_AT`` rows of its own, not before: the passages' one analyzed while still empty
    made the plan scan it whole."""
    from central.record.postgresql.partitions import ANALYZE_AT, partition_name

    now = time.time()
    day = dt.datetime.fromtimestamp(now, TZ).date()
    store.prepare([day])

    def analyzed() -> dict[str, object]:
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute(
                "SELECT relname, last_analyze FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                ([partition_name(t, day) for t in ("reads", "passages", "plates")],),
            ).fetchall()
        return {name.split("_")[0]: at for name, at in rows}

    def write(events):
        with psycopg.connect(pg_dsn) as conn, conn.transaction():
            store.insert_many(conn, [item(e) for e in events])

    write([read(i, now, plate=f"鲁A{i:05d}") for i in range(1, ANALYZE_AT + 1)])
    deadline = time.monotonic() + 20
    while analyzed().get("reads") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = analyzed()
    assert seen["reads"] is not None and seen["plates"] is not None, seen
    assert seen["passages"] is None, "the passages' partition holds nothing yet: analyzing it would mislead"
    passages = [
        Passage(seq=ANALYZE_AT + i, plate=f"鲁B{i:05d}", first_seen=now, last_seen=now, best_seq=1,
                read_seqs=[1], cameras=["cam"])
        for i in range(1, ANALYZE_AT + 1)
    ]  # fmt: skip
    write(passages)
    while analyzed().get("passages") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert analyzed()["passages"] is not None
    assert store.analyzed == [(day, "reads"), (day, "passages")]  # once each
    write([read(3 * ANALYZE_AT, now)])
    assert store.analyzed == [(day, "reads"), (day, "passages")]
