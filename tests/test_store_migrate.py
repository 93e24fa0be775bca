"""``cordon store migrate`` (central/record/migrate.py): a stopped SQLite hub's data moved into an empty
PostgreSQL store. The same changes made through the stores' Protocols on a SQLite hub and, beside it, on
a PostgreSQL store from the start: the migrated store must hold exactly what that one holds, table by
table and row by row. Interrupted (an exception between two chunks, a SIGKILL in the middle of one) and
run again, it goes on and ends the same; it refuses a store holding other data, a hub still running, and
bad input with one line. ``cordon user`` and ``cordon audit`` work on a PostgreSQL hub."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import types
from pathlib import Path

import msgspec
import psycopg
import pytest

from central.record import migrate as migration
from central.record.evidencefiles import EvidenceFiles
from central.record.postgresql import load
from central.record.postgresql.store import PgStores
from central.record.sqlite.source import Part, SourceError, SqliteSource
from central.record.sqlite.store import HubStore
from cordon.cli import main
from cordon.store_cli import Bar
from protocols.feed import EntryUpsert, ListUpsert, PermitRules
from protocols.matching import Entry, PermitRule, Watchlist
from protocols.messages import (
    SCHEMA_VERSION,
    AlertOutcome,
    AlertReceipt,
    AuditEvent,
    CheckpointStatus,
    EdgeHit,
    Gap,
    Passage,
    PlateRead,
)
from tests.test_store_contract import CP, DAY, T0, TZ, Index, alert, kit_event

ROOT = Path(__file__).resolve().parent.parent
CP2 = "SD-DZ-002"
FIXED = types.SimpleNamespace(time=lambda: T0 + 5000.0, monotonic=time.monotonic, sleep=time.sleep)


@pytest.fixture
def fixed_clock(monkeypatch):
    """The few store methods that read the clock (an account's change, an alert's dispatch) and make a
    token, made to give the same answer on both backends."""
    import central.record.postgresql.store as pg_store
    import central.record.postgresql.users as pg_users
    import central.record.sqlite.store as sqlite_store
    import central.record.sqlite.users as sqlite_users

    for module in (pg_users, sqlite_users, pg_store, sqlite_store):
        monkeypatch.setattr(module, "time", FIXED)
    for module in (pg_users, sqlite_users):
        monkeypatch.setattr(module, "new_token_value", lambda: "cdt_" + "7" * 40)


@pytest.fixture
def second_dsn(pg_cluster):
    name = f"migrated_{os.getpid()}_{time.monotonic_ns()}"
    yield pg_cluster.create_database(name)
    pg_cluster.drop_database(name)


# -- the same changes, on either store --------------------------------------------------------------
def read(seq, plate, at, **kw):
    return PlateRead(
        seq=seq, camera_id="cam\0A", captured_at=at, plate=plate, plate_raw=plate, plate_valid=True, **kw
    )


def nul_alert(n, **kw):
    """An alert whose id holds a NUL (kept exactly in its body, as U+FFFD in PostgreSQL's key)."""
    return msgspec.structs.replace(alert(n, **kw), alert_id=f"A{n}\0x")


def fill(store, evidence, days=3, reads_a_day=40):
    """Rows in every table of the store, all through its Protocols, every time given."""

    def write(job):
        return store.submit(job).result(60)

    # the record: reads (a NUL in a plate, attributes, no plate) and passages over several days
    events = []
    for d in range(days):
        base = T0 + d * 86400
        for i in range(reads_a_day):
            seq = d * 1000 + i + 1
            plate = "鲁A\0" + f"{i:03d}" if i == 5 else f"鲁B{i % 17:05d}"
            events.append(
                read(seq, plate, base + i, vehicle_colour="白" if i % 3 else None, has_evidence=i == 2)
            )
        events.append(read(d * 1000 + 500, "", base + 7, no_plate=True, plate_problem="none\0", lane=2))
        events.append(
            Passage(
                seq=d * 1000 + 600,
                plate="鲁B00001",
                first_seen=base,
                last_seen=base + 3,
                best_seq=d * 1000 + 1,
                read_seqs=[d * 1000 + 1, d * 1000 + 18],
                cameras=["cam\0A", "摄像机"],
                colour="blue",
            )
        )
    hits = [
        EdgeHit(
            seq=9001,
            read_seq=1,
            alert_id="E1",
            entry_id="stolen:鲁B00001",
            list_id="stolen",
            kind="exact",
            score=1.0,
            explanation="说明\0",
            feed_version=1,
            matcher_version="m1",
            raised_at=T0,
            thumbnail="/9j/AA==",
        ),
        Gap(
            seq=9002,
            ranges=[(10, 12), (20, 20)],
            count=4,
            reason="disk\0quota",
            dropped_at=T0,
            dropped_total=4,
        ),
        AlertOutcome(
            seq=9003,
            alert_id="A1",
            outcome="intercepted",
            officer="李",
            acknowledged_at=T0 + 60,
            alert_raised_at=T0 + 1,
            note="备注\0",
        ),
        AlertOutcome(
            seq=9004,
            alert_id="A3\0x",
            outcome="misread",
            officer="li",
            acknowledged_at=T0 + 60,
            alert_raised_at=T0 + 3,
        ),
        AuditEvent(seq=9005, action="officer.login", actor="chen", at=T0),
        kit_event(9006, officer="王\0", hits=["p:1", "p:2"]),
        kit_event(9007, officer="王\0"),
    ]
    for lo in range(0, len(events), 25):
        write(
            lambda tx, chunk=events[lo : lo + 25]: [
                store.insert_event(tx, CP, 1, e, T0, T0 + 1) for e in chunk
            ]
        )
    write(lambda tx: store.insert_event(tx, CP2, 4, read(1, "鲁C12345", T0 + 9), T0, T0 + 9))
    # alerts: stored, folded, pictured, dispatched, received, delivered, escalated
    write(lambda tx: [store.insert_alert(tx, a) for a in (alert(1), alert(2, action="covert"), nul_alert(3))])
    write(lambda tx: store.fold(tx, alert(4, entry=1, checkpoint=CP2), 600))
    write(lambda tx: store.add_thumbnail(tx, "A2", "/9j/BB=="))
    write(
        lambda tx: [store.insert_event(tx, CP, 1, e, T0, T0 + 2) for e in hits]
    )  # A1 answered: open no more
    write(lambda tx: store.insert_alert(tx, alert(5, at=T0 + 100)))
    import asyncio

    asyncio.run(store.mark_dispatched(["A1", "A3\0x"]))
    receipt = AlertReceipt(
        v=SCHEMA_VERSION,
        checkpoint=CP2,
        alert_id="A4",
        sent_at=T0,
        shown_at=T0 + 20,
        shown_by="wang",
        acknowledged_at=T0 + 40,
        outcome="intercepted",
        officer="王\0",
    )
    write(lambda tx: store.insert_receipt(tx, receipt, T0 + 41))
    write(lambda tx: store.webhooks.record_delivery(tx, "duty", "A1", "delivered", "", T0 + 10))
    write(lambda tx: store.webhooks.record_delivery(tx, "duty", "A3\0x", "gave_up", "HTTP 503\0", T0 + 11))
    write(lambda tx: store.escalate_due(tx, 300, now=T0 + 406))  # A5, unanswered
    write(
        lambda tx: store.update_checkpoint(
            tx,
            CP,
            online=True,
            status='{"v":1,"checkpoint":"SD-DZ-001"}',
            epoch=1,
            last_seen=T0,
            clock_offset_s=0.5,
            feed_version=1,
        )
    )
    for i in range(3):
        write(lambda tx, i=i: store.dead_letter(tx, "mqtt", f"bad {i}\0", b"\x00\xff" + bytes(i), CP, T0 + i))
    # watchlists, permit rules, accounts, the audit trail, statistics
    changes = [
        ListUpsert(watchlist=Watchlist(list_id="stolen", name="被盗\0车辆")),
        EntryUpsert(
            entry=Entry(entry_id="stolen:鲁B00001", list_id="stolen", plate="鲁B00001", reason="案件\0")
        ),
        EntryUpsert(entry=Entry(entry_id="stolen:鲁B00002", list_id="stolen", plate="鲁B00002")),
        PermitRules(rules=[PermitRule(rule_id="r1", list_id="permits", colours=frozenset({"yellow"}))]),
    ]
    write(
        lambda tx: store.watchlists.apply_changes(
            tx, changes, Index(), "wang", now=T0, role="admin", reason="导入"
        )
    )
    write(lambda tx: store.users.add(tx, "admin", "admin", "HASH1", display_name="管理\0员", now=T0))
    write(lambda tx: store.users.add(tx, "li", "officer", "HASH2", checkpoint=CP, now=T0 + 1))
    write(lambda tx: store.users.new_token(tx, "admin"))
    write(lambda tx: store.users.set_disabled(tx, "li", True))
    for i in range(5):
        write(
            lambda tx, i=i: store.audit.append(
                tx,
                "admin",
                "admin",
                "search",
                target=f"鲁B{i}",
                reason="案\0件",
                detail={"n": i, "text": "\0"},
                at=T0 + 30 + i,
            )
        )
    write(
        lambda tx: store.stats.add_daily_counts(
            tx, {(DAY.isoformat(), CP): [10, 4, 1], (DAY.isoformat(), CP2): [3, 1, 0]}
        )
    )
    status = CheckpointStatus(
        v=SCHEMA_VERSION, checkpoint=CP, online=True, sent_at=T0, stale_cameras=["lane\0 2"]
    )
    write(lambda tx: store.stats.sample_status(tx, status, T0, TZ))
    evidence.keep((CP, 1, 2, "scene"), b"\xff\xd8\xff scene")
    evidence.keep((CP, 1, 2, "plate"), b"\xff\xd8\xff plate")


def sqlite_hub(folder: Path, **kw) -> Path:
    store = HubStore(folder / "hub.db")
    store.start()
    try:
        fill(store, EvidenceFiles(folder / "evidence", 10_000), **kw)
    finally:
        store.stop()
    return folder


def postgresql_hub(dsn: str, **kw) -> None:
    store = PgStores(dsn, evidence_max_bytes=10_000)
    store.start()
    try:
        fill(store, store.evidence, **kw)
    finally:
        store.stop()


def dump(dsn: str) -> dict[str, list]:
    """Every row of every table the hub's stores keep (not the migrations' own records), in one order."""
    out = {}
    with psycopg.connect(dsn) as conn:
        for table in (*load.DATA_TABLES,):
            cur = conn.execute(f"SELECT * FROM {table}")  # noqa: S608 - the project's own table names
            names = [c.name for c in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            if table == "evidence":
                for row in rows:
                    row.pop("kept_at")  # when it was kept (the file's time, or the moment of keeping)
            out[table] = sorted(rows, key=repr)
        out["partitions"] = sorted(
            conn.execute(
                "SELECT relname FROM pg_class WHERE relname ~ '^(reads|passages|plates)_[0-9]{8}$'"
            ).fetchall()
        )
    return out


# -- what the migration makes ----------------------------------------------------------------------
def test_hub_tables_are_every_table_and_column_of_both_schemas(tmp_path, pg_dsn):
    """Each table of hub.db and of the PostgreSQL schema is copied, column for column, or named as left
    alone: a migration added to either schema and not here fails this."""
    store = HubStore(tmp_path / "hub.db")
    store.start()
    store.submit(lambda tx: store.insert_event(tx, CP, 1, read(1, "鲁B12345", T0), T0, T0)).result()
    store.stop()
    source = SqliteSource(tmp_path)
    with sqlite3.connect(tmp_path / "record" / "reads-2026-11-28.db") as conn:
        for part in (Part("reads", "reads", DAY), Part("passages", "passages", DAY)):
            held = {row[1] for row in conn.execute(f"PRAGMA table_info({part.table})")} - {"id"}
            read_as = {
                "plate_id" if c == "plate" and part.table == "reads" else c for c in source.columns(part)
            }
            assert read_as == held, part  # every column of a day file is read
            assert set(source.columns(part)) == {"plate", *load.DAY_TABLES[part.table]}  # and written
    with sqlite3.connect(tmp_path / "hub.db") as conn:
        sqlite_tables = {
            name: {row[1] for row in conn.execute(f"PRAGMA table_info({name})")}
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name <> 'schema_migrations'"
            )
        }
    assert {t: set(spec.columns) for t, spec in load.HUB_TABLES.items()} == sqlite_tables
    store = PgStores(pg_dsn)
    store.start()
    store.stop()
    with psycopg.connect(pg_dsn) as conn:
        pg_tables = {
            t: {
                c
                for (c,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (t,)
                )
            }
            for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename !~ '_[0-9]{8}$'"
            )
        }
    assert set(pg_tables) == {*load.DATA_TABLES, *load.NOT_COPIED}
    for table, spec in load.HUB_TABLES.items():
        assert pg_tables[table] == {*spec.columns, *([spec.rowid_as] if spec.rowid_as else [])}, table
    for table in ("reads", "passages"):
        assert pg_tables[table] == set(load.day_columns(table)), table
    assert pg_tables["evidence"] == set(load.EVIDENCE_COLUMNS)


def test_the_migrated_store_holds_what_postgresql_would_have_held_from_the_start(
    tmp_path, pg_dsn, second_dsn, fixed_clock
):
    folder = sqlite_hub(tmp_path / "hub")
    postgresql_hub(pg_dsn)  # the same changes on PostgreSQL from the start
    steps = []
    summary = migration.migrate(folder, second_dsn, batch=50, progress=steps.append)
    assert summary.ok, summary.problems
    assert dump(second_dsn) == dump(pg_dsn)

    report = summary.as_dict()
    assert report["counts"]["reads 2026-11-28"] == [42, 42] and report["counts"]["passages 2026-11-30"] == [
        1,
        1,
    ]
    assert report["counts"]["audit"][0] == 7 and report["counts"]["evidence"] == [2, 2]
    assert all(report["counts"][t][0] for t in load.HUB_TABLES)  # every table had rows to copy
    assert report["copied"] == report["rows"] == sum(v[0] for v in report["counts"].values())
    assert report["audit"]["ok"] and report["audit"]["head"] == report["audit"]["sqlite_head"]
    assert report["audit"]["head"].startswith("7:")
    assert steps[-1].index == steps[-1].parts == len(report["counts"])
    assert [s.copied for s in steps if s.part == "reads 2026-11-28"] == [42]  # one chunk of at most 50

    # The PostgreSQL hub goes on from there: ids and positions after the largest copied, the trail verifies.
    store = PgStores(second_dsn)
    store.start()
    try:
        assert store.submit(lambda tx: store.dead_letter(tx, "mqtt", "late", b"x", CP, T0)).result() == 4
        assert store.submit(lambda tx: store.insert_alert(tx, alert(7))).result()
        assert [p for p, a in store.alerts_after(3)] == [4, 5]  # A4 was folded: A5 took the fourth
        store.submit(
            lambda tx: store.insert_event(
                tx,
                CP,
                1,
                AlertOutcome(
                    seq=9100,
                    alert_id="A7",
                    outcome="released",
                    officer="li",
                    acknowledged_at=T0 + 60,
                    alert_raised_at=T0,
                ),
                T0,
                T0,
            )
        ).result()
        assert [o["alert_id"] for o in store.outcomes(["A1", "A7"])["A7"]] == ["A7"]
        assert store.submit(lambda tx: store.audit.append(tx, "x", "admin", "late")).result().id == 8
        assert store.read(store.audit.verify).ok
        assert (
            store.record.search_pattern("鲁A?005", T0 - 86400, T0 + 3 * 86400).reads[0].plate == "鲁A\x00005"
        )
    finally:
        store.stop()
    again = migration.migrate(folder, second_dsn)  # done already: nothing copied, the counts checked
    assert (
        again.copied == 0
        and not again.ok
        and "dead_letters: 3 rows in SQLite, 4 on PostgreSQL" in again.problems
    )


def test_an_interrupted_migration_goes_on_where_it_stopped(tmp_path, pg_dsn, second_dsn):
    folder = sqlite_hub(tmp_path / "hub", days=2, reads_a_day=120)
    steps = []

    def stop_after_six(step):
        steps.append(step)
        if len(steps) == 6:
            raise KeyboardInterrupt  # Ctrl-C between two chunks

    with pytest.raises(KeyboardInterrupt):
        migration.migrate(folder, pg_dsn, batch=7, progress=stop_after_six)
    with psycopg.connect(pg_dsn) as conn:
        copied_first = conn.execute("SELECT sum(copied) FROM store_migration").fetchone()[0]
        assert (
            0 < copied_first
            and conn.execute("SELECT count(*) FROM store_migration WHERE NOT done").fetchone()[0] <= 1
        )
    summary = migration.migrate(folder, pg_dsn, batch=7)
    assert summary.ok, summary.problems
    assert summary.copied + copied_first == summary.as_dict()["rows"]  # nothing copied twice
    straight = migration.migrate(folder, second_dsn)
    assert straight.ok and dump(pg_dsn) == dump(second_dsn)


def test_a_migration_killed_while_it_copies_goes_on_when_run_again(tmp_path, pg_cluster, pg_dsn):
    folder = sqlite_hub(tmp_path / "hub", days=1, reads_a_day=400)
    password = tmp_path / "db-password"
    password.write_text(pg_cluster.password + "\n")
    dsn = pg_dsn.replace(f"password={pg_cluster.password} ", "")
    argv = [
        sys.executable,
        "-m",
        "cordon",
        "store",
        "migrate",
        "--data",
        str(folder),
        "--dsn",
        dsn,
        "--password-file",
        str(password),
        "--batch",
        "3",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # until the day's reads are being copied (a chunk of 3 a transaction)
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            with psycopg.connect(pg_dsn) as conn:
                made = conn.execute("SELECT to_regclass('store_migration')").fetchone()[0]
                if (
                    made
                    and conn.execute(
                        "SELECT 1 FROM store_migration WHERE part = 'reads 2026-11-28'"
                    ).fetchone()
                ):
                    break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=30)
    with psycopg.connect(pg_dsn) as conn:
        (copied,) = conn.execute(
            "SELECT copied FROM store_migration WHERE part = 'reads 2026-11-28'"
        ).fetchone()
        assert 0 < copied < 402 and conn.execute("SELECT count(*) FROM reads").fetchone()[0] == copied
    done = subprocess.run(argv, capture_output=True, env=env, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] and summary["counts"]["reads 2026-11-28"] == [402, 402]
    assert summary["copied"] < summary["rows"]  # went on, did not start over
    assert "[" in done.stderr and "rows" in done.stderr  # the progress, as plain lines on stderr


# -- what it refuses ----------------------------------------------------------------------------------
def test_a_store_holding_other_data_is_refused_and_left_alone(tmp_path, pg_dsn):
    folder = sqlite_hub(tmp_path / "hub", days=1, reads_a_day=3)
    store = PgStores(pg_dsn)
    store.start()
    store.submit(lambda tx: store.users.add(tx, "other", "admin", "HASH")).result()
    store.stop()
    with pytest.raises(load.TargetError, match=r"already holds data \(users\)"):
        migration.migrate(folder, pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM store_migration").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 0


def test_a_store_holding_another_folders_migration_is_refused(tmp_path, pg_dsn):
    first = sqlite_hub(tmp_path / "one", days=1, reads_a_day=3)
    other = tmp_path / "two"
    other.mkdir()
    (other / "hub.db").write_bytes((first / "hub.db").read_bytes())
    assert migration.migrate(first, pg_dsn).ok
    with pytest.raises(load.TargetError, match="holds a migration from .*one, not from .*two"):
        migration.migrate(other, pg_dsn)


def test_a_running_hub_is_refused(tmp_path, pg_dsn, monkeypatch):
    from central.record.sqlite import source as sqlite_source

    monkeypatch.setattr(sqlite_source, "LOCK_WAIT_S", 0.1)
    folder = sqlite_hub(tmp_path / "hub", days=1, reads_a_day=3)
    running = HubStore(folder / "hub.db")
    running.start()
    try:
        with pytest.raises(SourceError, match="in use by another process: stop the hub"):
            migration.migrate(folder, pg_dsn)
    finally:
        running.stop()
    source = SqliteSource(folder)
    source.open()  # alone on hub.db, a hub cannot start meanwhile
    try:
        late = HubStore(folder / "hub.db", busy_timeout_s=0.2)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            late.start()
        late.stop()
    finally:
        source.close()


def test_a_hub_db_of_another_release_is_refused(tmp_path):
    folder = sqlite_hub(tmp_path / "hub", days=1, reads_a_day=1)
    conn = sqlite3.connect(folder / "hub.db", isolation_level=None)
    (last,) = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    conn.execute("DELETE FROM schema_migrations WHERE version = ?", (last,))
    conn.close()  # open, it would be a process holding hub.db: refused as a running hub
    with pytest.raises(
        SourceError, match=rf"older release \(migrations \[{last}\] not applied\): start the hub"
    ):
        SqliteSource(folder).open()
    conn = sqlite3.connect(folder / "hub.db", isolation_level=None)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 0), (?, 0)", (last, last + 1))
    conn.close()
    with pytest.raises(SourceError, match=rf"newer release of Cordon \(migrations \[{last + 1}\]\)"):
        SqliteSource(folder).open()


def test_bad_input_gets_one_line_and_no_traceback(tmp_path, pg_cluster, pg_dsn, capfd):
    folder = sqlite_hub(tmp_path / "hub", days=1, reads_a_day=3)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    dsn = pg_dsn.replace(f"password={pg_cluster.password} ", "")
    cases = [
        (["--data", str(tmp_path / "nowhere"), "--dsn", dsn], "no hub data folder at"),
        (["--data", str(tmp_path), "--dsn", dsn], "no hub database at"),
        (["--data", str(folder)], "say where to"),
        (
            ["--data", str(folder), "--dsn", dsn, "--password-file", str(wrong)],
            "password authentication failed",
        ),
        (
            [
                "--data",
                str(folder),
                "--dsn",
                dsn.replace("dbname=", "dbname=none"),
                "--password-file",
                str(wrong),
            ],
            "cannot connect to PostgreSQL",
        ),
        (["--data", str(folder), "--dsn", "nonsense=1"], "cannot connect to PostgreSQL"),
        (["--data", str(folder), "--dsn", dsn, "--password-file", str(tmp_path / "absent")], "cannot read"),
        (["--config", str(tmp_path / "absent.toml")], "settings file not found"),
    ]
    for args, message in cases:
        code = main(["store", "migrate", *args])
        err = capfd.readouterr().err
        assert code in (1, 2) and message in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and "not-the-password" not in err


def test_the_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    import io

    out = io.StringIO()
    bar = Bar(out, tty=True, width=10)
    bar(migration.Step("reads 2026-11-28", 5, 10, 3, 40))
    bar(migration.Step("reads 2026-11-28", 10, 10, 3, 40))
    text = out.getvalue()
    assert "\r[3/40] reads 2026-11-28     #####-----           5/10 rows" in text
    assert text.endswith("##########          10/10 rows\x1b[K\n")
    out = io.StringIO()
    bar = Bar(out, tty=False, every_s=3600)
    bar(migration.Step("alerts", 0, 2, 1, 2))
    bar(migration.Step("alerts", 1, 2, 1, 2))  # within the interval: nothing
    bar(migration.Step("alerts", 2, 2, 1, 2))
    assert out.getvalue().splitlines() == [
        "[1/2] alerts                         0/2 rows ...",
        "[1/2] alerts                         2/2 rows",
    ]
