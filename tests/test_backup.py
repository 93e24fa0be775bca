"""Backups of the hub's record (central/record/backups.py, HubStore.backup): one consistent cut of hub.db and
the day files while the writer commits, a manifest that catches damage, restore into an empty folder only,
and rotation that never keeps a read past the retention."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from central.record import backups
from central.record.days import day_of, parse_offset
from central.record.sqlite import audit
from central.record.sqlite.dayfiles import file_name
from central.record.sqlite.store import HubStore
from central.settings import RecordSettings
from cordon.audit_cli import verify
from protocols.messages import PlateRead

TZ = parse_offset("+08:00")
NOW = 1_780_000_000.0  # a fixed "now" for rotation


def plate_read(seq: int, at: float) -> PlateRead:
    return PlateRead(
        seq=seq, camera_id="cam", captured_at=at, plate="鲁B12345", plate_raw="鲁B12345", plate_valid=True
    )


def write_read_and_audit(store: HubStore, seq: int, at: float) -> None:
    """One transaction that writes a day file (the read) and hub.db (an audit record naming it)."""

    def job(db):
        out = store.insert_event(db, "SD-DZ-001", 1, plate_read(seq, at), at, at)
        assert out.inserted
        audit.append(db, "test", "system", "test.read", target=f"read {seq}", at=at)

    store.submit(job).result()


@pytest.fixture
def store(tmp_path):
    s = HubStore(tmp_path / "hub" / "hub.db")
    s.start()
    yield s
    s.stop()


def cut_is_consistent(folder) -> tuple[int, int]:
    """(reads in the day files, audit records naming a read) of a backup folder."""
    reads = 0
    for path in (folder / "record").glob("reads-*.db"):
        with sqlite3.connect(path) as conn:
            reads += conn.execute("SELECT count(*) FROM reads").fetchone()[0]
    with sqlite3.connect(folder / "hub.db") as conn:
        named = conn.execute("SELECT count(*) FROM audit WHERE action = 'test.read'").fetchone()[0]
    return reads, named


def test_a_backup_taken_while_the_writer_commits_is_one_cut_of_hub_db_and_the_day_files(store, tmp_path):
    # Each commit writes a read into a day file (three days in turn) and an audit record into hub.db. A
    # copy of hub.db taken at another moment than the day files would count one more or one fewer.
    base = time.time() - 2 * 86400
    for seq in range(1, 301):
        write_read_and_audit(store, seq, base + (seq % 3) * 86400)
    stop = threading.Event()
    written = [300]

    def writer():
        seq = 300
        while not stop.is_set():
            seq += 1
            write_read_and_audit(store, seq, base + (seq % 3) * 86400)
            written[0] = seq

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        cuts = []
        deadline = time.monotonic() + 120
        # At least 8 backups, and until the writer has committed 50 more while they were taken.
        while len(cuts) < 8 or written[0] < 350:
            assert time.monotonic() < deadline, f"the writer committed {written[0] - 300} in 120 s"
            folder = tmp_path / f"b{len(cuts)}"
            cut = store.backup(folder)
            reads, named = cut_is_consistent(folder)
            assert reads == named == cut.reads, f"backup {len(cuts)}: {reads} reads, {named} audit records"
            cuts.append(cut)
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert cuts[-1].reads > cuts[0].reads >= 300  # the writer went on during the backups
    assert len(cuts[0].files) == 4  # hub.db and three day files
    assert all(c.paused_s < 5 for c in cuts)
    assert cuts[0].audit_head == f"{cuts[0].audit_records}:" + cuts[0].audit_head.split(":")[1]


def test_take_writes_a_manifest_and_restore_checks_it_into_an_empty_folder_only(store, tmp_path):
    for seq in range(1, 51):
        write_read_and_audit(store, seq, time.time())
    record = RecordSettings()
    taken = backups.take(store, tmp_path / "backups", record, keep=3, version="test")
    m = taken.manifest
    assert m["counts"]["reads"] == 50 and m["counts"]["audit_records"] == 50
    assert (taken.folder / "audit-head.txt").read_text().strip() == m["audit_head"]
    assert set(m["files"]) == {"hub.db", f"record/{file_name(day_of(time.time(), TZ))}"}

    done = backups.restore(taken.folder, tmp_path / "restored")
    ok, line = verify(tmp_path / "restored" / "hub.db", tuple_head(done.audit_head))
    assert ok, line
    with pytest.raises(backups.BackupError, match="not empty"):
        backups.restore(taken.folder, tmp_path / "restored")

    day = next((taken.folder / "record").glob("*.db"))
    with day.open("r+b") as f:  # one byte changed in the copy
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(backups.BackupError, match="does not match the manifest"):
        backups.restore(taken.folder, tmp_path / "elsewhere")


def tuple_head(text: str) -> tuple[int, str]:
    i, h = text.split(":")
    return int(i), h


def test_rotation_keeps_the_newest_and_never_keeps_a_day_past_the_retention(store, tmp_path):
    record = RecordSettings(retention_days=3, hits_retention_days=2)
    today = day_of(NOW, TZ)
    days = [today - dt.timedelta(days=n) for n in range(3)]  # the three days the live record keeps
    for seq, day in enumerate(days, start=1):
        noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=TZ).timestamp()
        write_read_and_audit(store, seq, noon)
    store.submit(
        lambda db: db.conn.execute(
            "INSERT INTO dead_letters (received_at, source, reason, raw, raw_bytes) VALUES (?, 't', 'old', x'00', 1)",
            (NOW - 1.5 * 86400,),  # within the 2 days now, past them by tomorrow
        )
    ).result()
    directory = tmp_path / "backups"
    for i in range(4):
        backups.take(store, directory, record, keep=2, now=NOW + i)
    held = backups.backups(directory)
    assert len(held) == 2  # the newest two
    for folder in held:
        manifest = backups.check(folder)  # the manifest follows the pruning
        names = {f for f in manifest["files"] if f.startswith("record/")}
        # By tomorrow the live record drops days[2]: no backup holds it from now on.
        assert names == {f"record/{file_name(days[0])}", f"record/{file_name(days[1])}"}
        with sqlite3.connect(folder / "hub.db") as conn:
            assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 3  # never pruned
        ok, line = verify(folder / "hub.db", tuple_head(manifest["audit_head"]))
        assert ok, line
        assert manifest["pruned"]


def test_rotation_removes_a_backup_that_died_half_way(tmp_path, store):
    directory = tmp_path / "backups"
    (directory / "hub-20260101T000000Z.partial").mkdir(parents=True)
    backups.take(store, directory, RecordSettings(), keep=1)
    assert [p.name.endswith(".partial") for p in directory.iterdir()] == [False]


def cordon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cordon", *args], capture_output=True, text=True, timeout=120
    )


def test_cordon_backup_and_restore_commands(store, tmp_path):
    from cordon.testing import write_toml

    for seq in range(1, 11):
        write_read_and_audit(store, seq, time.time())
    conf = write_toml(
        tmp_path / "hub.toml",
        {"data_dir": str(store.path.parent), "backup": {"dir": str(tmp_path / "bk"), "keep": 2}},
    )
    done = cordon("backup", "--config", str(conf))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["reads"] == 10 and summary["writer_paused_ms"] >= 0
    done = cordon("restore", summary["backup"], "--data", str(tmp_path / "new"))
    assert done.returncode == 0, done.stderr
    restored = json.loads(done.stdout)
    assert restored["audit"]["ok"] and restored["audit"]["records"] == 10
    done = cordon("restore", summary["backup"], "--data", str(tmp_path / "new"))
    assert done.returncode == 1 and "not empty" in done.stderr
