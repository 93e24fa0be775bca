"""Backups of a hub on PostgreSQL (central/record/postgresql/backup.py, through central/record/backups.py and
``cordon backup``/``cordon restore``): WAL archived by deploy/postgresql/archive-wal.sh, a base backup taken
while a writer commits, restored into empty folders and started (to the backup's end with and without the
archive, to a time, and to the archive's end), rotation that deletes a base backup before a read in it outlives the
backups' window, and the WAL archive cleaned with it."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from central.record import backups
from central.record.days import day_of, parse_offset
from central.record.postgresql.audit import PgAuditStore
from central.record.postgresql.store import PgStores
from central.settings import BackupSettings, RecordSettings
from cordon.testing import PG_BIN, PG_RUN_AS, PostgresCluster, free_port, write_toml
from protocols.messages import PlateRead

ROOT = Path(__file__).resolve().parent.parent
TZ = parse_offset("+08:00")
NOW = 1_780_000_000.0  # a fixed "now" for rotation


def plate_read(seq: int, at: float) -> PlateRead:
    return PlateRead(
        seq=seq, camera_id="cam", captured_at=at, plate="鲁B12345", plate_raw="鲁B12345", plate_valid=True
    )


def write_read_and_audit(store: PgStores, seq: int, at: float) -> None:
    """One transaction: a read, and an audit record naming it."""

    def job(tx):
        assert store.insert_event(tx, "SD-DZ-001", 1, plate_read(seq, at), at, at).inserted
        store.audit.append(tx, "test", "system", "test.read", target=f"read {seq}", at=at)

    store.submit(job).result()


def server_folder(prefix: str) -> Path:
    """A new folder under /tmp that the server's user owns (the tests' folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(PG_RUN_AS)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    return folder


def give_to_server(folder: Path) -> None:
    if os.geteuid() == 0:
        owner = pwd.getpwnam(PG_RUN_AS)
        for path in [folder, *folder.rglob("*")]:
            os.lchown(path, owner.pw_uid, owner.pw_gid)


@pytest.fixture(scope="module")
def archived():
    """A cluster that archives its WAL with deploy/postgresql/archive-wal.sh into a folder: (cluster, archive)."""
    tools = server_folder("cordon-archive-tool-")
    script = tools / "archive-wal.sh"  # a copy the server's user can reach whatever the checkout's modes
    shutil.copy(ROOT / "deploy" / "postgresql" / "archive-wal.sh", script)
    script.chmod(0o755)
    archive = server_folder("cordon-wal-")
    cluster = PostgresCluster(
        settings={"archive_mode": "on", "archive_command": f'\'{script} "%p" "%f" {archive}\''}
    ).start()
    yield cluster, archive
    cluster.destroy()
    shutil.rmtree(archive, ignore_errors=True)
    shutil.rmtree(tools, ignore_errors=True)


def run_cordon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cordon", *args], capture_output=True, text=True, timeout=120, check=False
    )


def cordon(*args: str) -> dict:
    done = run_cordon(*args)
    assert done.returncode == 0, f"cordon {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout)


def cordon_refuses(*args: str) -> str:
    done = run_cordon(*args)
    assert done.returncode == 1 and done.stdout == "", (done.stdout, done.stderr)
    return done.stderr


def start_restored(folder: Path, password: str) -> PostgresCluster:
    """Start the server on a restored data folder (``folder/data``), on a port of its own, and wait for its
    recovery to end (pg_ctl returns once it takes read-only connections, which can be before that)."""
    port = free_port()
    with (folder / "data" / "postgresql.auto.conf").open("a", encoding="utf-8") as f:
        f.write(f"port = {port}\n")  # the live cluster's port is in the copied postgresql.conf
    give_to_server(folder)
    cluster = PostgresCluster(port=port, password=password, folder=folder).start()
    deadline = time.monotonic() + 60
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        while conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,):
            assert time.monotonic() < deadline, (
                "the restored server is still in recovery" + cluster.log_tail()
            )
            time.sleep(0.1)
    return cluster


def held(dsn: str) -> tuple[list[int], int]:
    """(the reads' sequence numbers, audit records naming a read) in a database."""
    with psycopg.connect(dsn) as conn:
        seqs = [s for (s,) in conn.execute("SELECT seq FROM reads ORDER BY seq")]
        named = conn.execute("SELECT count(*) FROM audit WHERE action = 'test.read'::bytea").fetchone()[0]
    return seqs, named


def audit_verdict(dsn: str, head: str):
    head_id, head_hash = head.split(":")
    with psycopg.connect(dsn) as conn, conn.transaction():
        return PgAuditStore.verify(conn, (int(head_id), head_hash))


def test_the_archive_script_copies_once_and_never_overwrites(tmp_path):
    script = ROOT / "deploy" / "postgresql" / "archive-wal.sh"
    archive = tmp_path / "archive"
    archive.mkdir()
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(b"wal" * 1000)

    def archive_it() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(script), str(segment), segment.name, str(archive)], capture_output=True, text=True
        )

    assert archive_it().returncode == 0
    assert (archive / segment.name).read_bytes() == segment.read_bytes()
    assert archive_it().returncode == 0  # the same bytes again (a retry after a crash): success
    segment.write_bytes(b"other")
    done = archive_it()
    assert done.returncode == 1 and "refusing to overwrite" in done.stderr
    assert (archive / segment.name).read_bytes() == b"wal" * 1000
    assert sorted(p.name for p in archive.iterdir()) == [segment.name]  # no temporary left


def test_a_base_backup_of_a_hub_under_load_restores_elsewhere_with_each_committed_read_once(
    archived, tmp_path
):
    cluster, archive = archived
    dsn = cluster.create_database("hub")
    store = PgStores(dsn)
    store.start()
    base = time.time() - 2 * 86400
    for seq in range(1, 301):  # three days of reads, each with its audit record
        write_read_and_audit(store, seq, base + (seq % 3) * 86400)
    stop = threading.Event()
    written = [300]
    commits: list[tuple[float, float]] = []  # (start, seconds) of each commit
    wall: dict[int, tuple[float, float]] = {}  # each read's commit: (asked at, returned at), wall clock

    def writer():
        seq = 300
        while not stop.is_set():
            seq += 1
            began, asked = time.monotonic(), time.time()
            write_read_and_audit(store, seq, base + (seq % 3) * 86400)
            commits.append((began, time.monotonic() - began))
            wall[seq] = (asked, time.time())
            written[0] = seq

    secret = tmp_path / "db-password"
    secret.write_text(cluster.password + "\n", encoding="utf-8")
    conf = write_toml(
        tmp_path / "hub.toml",
        {
            "data_dir": str(tmp_path / "hub"),
            "store": {
                "backend": "postgresql",
                "dsn": cluster.dsn("hub").replace(f" password={cluster.password}", ""),
                "password_file": str(secret),
            },
            "record": {"retention_days": 3},
            # two nightly base backups fit: a read is kept at most 5 days, backups included
            "backup": {
                "dir": str(tmp_path / "bk"),
                "keep": 2,
                "retention_days": 5,
                "wal_archive": str(archive),
                "pg_bin": str(PG_BIN),
            },
        },
    )
    thread = threading.Thread(target=writer)
    thread.start()

    def commits_after(n: int) -> None:
        """Until the writer has committed ``n`` more reads (not a fixed wait: a loaded host commits slower)."""
        goal, deadline = written[0] + n, time.monotonic() + 60
        while written[0] < goal:
            assert thread.is_alive() and time.monotonic() < deadline, "the writer stopped committing"
            time.sleep(0.01)

    try:
        commits_after(20)
        before = written[0]  # committed before the backup began
        began = time.monotonic()
        summary = cordon("backup", "--config", str(conf))
        ended = time.monotonic()
        after = written[0]
        commits_after(10)  # more commits, which only the WAL archive holds
        until = time.time()  # a point in time to restore to
        commits_after(10)
    finally:
        stop.set()
        thread.join()
        store.stop()
    total = written[0]
    assert summary["store"] == "postgresql" and summary["writer_paused_ms"] == 0
    m = summary["postgresql"]
    assert before <= summary["counts"]["reads"] <= after and m["counts_at"] == "start"
    folder = Path(summary["backup"])
    assert (folder / "audit-head.txt").read_text().strip() == summary["audit_head"]
    assert m["oldest_day"] == day_of(base, TZ).isoformat() and m["start_wal_file"]
    assert summary["rotation"]["wal_archive"]["kept_from"] == m["start_wal_file"]

    # What the backup cost the writer: its commits while the backup ran, against those before.
    during = sorted(s for at, s in commits if began <= at <= ended)
    earlier = sorted(s for at, s in commits if at < began)
    measured = {
        "backup_s": round(ended - began, 2),
        "pg_basebackup_s": m["seconds"],
        "backup_mb": round(summary["bytes"] / 1e6, 1),
        "commits_during": len(during),
        "p50_ms_before": round(earlier[len(earlier) // 2] * 1000, 1),
        "p50_ms_during": round(during[len(during) // 2] * 1000, 1),
        "max_ms_before": round(earlier[-1] * 1000, 1),
        "max_ms_during": round(during[-1] * 1000, 1),
    }
    print("base backup under load:", json.dumps(measured))
    assert len(during) >= 5 and during[-1] < 5, measured  # ingest went on; nothing held it

    # Everything written has been archived once the current segment is switched out.
    with psycopg.connect(cluster.dsn("hub"), autocommit=True) as conn:
        last = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        deadline = time.monotonic() + 30
        while (conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0] or "") < last:
            assert time.monotonic() < deadline, "the archiver is behind"
            time.sleep(0.1)

    restored: dict[str, tuple[list[int], int]] = {}
    for name, args in {
        "own WAL": [],  # no archive: the copy's own WAL takes it to the backup's end
        "archive to the backup's end": ["--wal-archive", str(archive), "--until", "backup"],
        "archive to a time": [
            "--config",
            str(conf),
            "--until",
            dt.datetime.fromtimestamp(until, TZ).isoformat(),
        ],
        "archive to its end": ["--config", str(conf)],  # backup.wal_archive, all of it
    }.items():
        target = server_folder("cordon-restored-")
        try:
            done = cordon("restore", str(folder), "--data", str(target / "data"), *args)
            assert done["store"] == "postgresql" and "successfully verified" in done["recovery"]["verified"]
            server = start_restored(target, cluster.password)
            try:
                seqs, named = held(server.dsn("hub"))
                verdict = audit_verdict(server.dsn("hub"), done["audit_head"])
                assert verdict.ok, (name, verdict)
            finally:
                server.destroy()
        finally:
            shutil.rmtree(target, ignore_errors=True)
        # One cut: every read from the first up to some point, each once, each with its audit record.
        assert seqs == list(range(1, len(seqs) + 1)) and named == len(seqs), name
        restored[name] = (seqs, named)
    at_end = restored["archive to the backup's end"][0]
    own = restored["own WAL"][0]
    print(
        "reads committed: before the backup",
        before,
        "at its start (manifest)",
        summary["counts"]["reads"],
        "at its end (restored)",
        len(at_end),
        "with all its own WAL",
        len(own),
        "when it returned",
        after,
        "in all",
        total,
    )
    assert before <= summary["counts"]["reads"] <= len(at_end) <= after
    # Without the archive the copy replays all the WAL it streamed, which can run a little past the
    # backup's end point (pg_basebackup receives it in chunks): another cut, never an earlier one.
    assert len(at_end) <= len(own) <= after
    assert restored["archive to its end"][0] == list(range(1, total + 1))  # all committed, none twice
    # To a time: every commit that had returned by then, none asked for after it.
    to_time = len(restored["archive to a time"][0])
    assert after <= to_time <= total and wall[to_time][0] <= until
    assert to_time == total or wall[to_time + 1][1] > until

    # What restore refuses: no folder named, a folder in use, a time without the archive, a damaged file.
    assert "--data" in cordon_refuses("restore", str(folder), "--config", str(conf))
    assert "not empty" in cordon_refuses("restore", str(folder), "--data", str(tmp_path))
    assert "WAL archive" in cordon_refuses(
        "restore", str(folder), "--data", str(tmp_path / "x"), "--until", "2026-12-01T08:00:00+08:00"
    )
    table = max((folder / "pgdata" / "base").rglob("*"), key=lambda p: p.stat().st_size)
    with table.open("r+b") as f:  # one byte changed in the biggest table file
        byte = f.read(1)
        f.seek(0)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert "pg_verifybackup failed" in cordon_refuses("restore", str(folder), "--data", str(tmp_path / "y"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_base_backup_the_rotation_would_delete_at_once_is_refused(pg_dsn, tmp_path):
    record = RecordSettings(retention_days=3)
    store = PgStores(pg_dsn)
    store.start()
    try:
        write_read_and_audit(store, 1, time.time() - 2 * 86400)  # the oldest day the live record keeps
        directory = tmp_path / "bk"
        # backup.retention_days left at record.retention_days: by tomorrow's run that day is past it
        with pytest.raises(backups.BackupError, match="backup.retention_days"):
            backups.take(store, directory, record, keep=2, backup=BackupSettings(pg_bin=str(PG_BIN)))
        assert list(directory.iterdir()) == []
    finally:
        store.stop()


def fake_base_backup(directory: Path, taken: dt.date, oldest: dt.date, start_wal: str) -> str:
    name = f"hub-{taken:%Y%m%d}T023000Z"
    (directory / name / "pgdata").mkdir(parents=True)
    manifest = {
        "store": "postgresql",
        "files": {},
        "audit_head": "0:x",
        "postgresql": {"oldest_day": oldest.isoformat(), "start_wal_file": start_wal, "server_major": 15},
    }
    (directory / name / "manifest.json").write_text(json.dumps(manifest))
    return name


def test_rotation_deletes_a_base_backup_before_a_read_in_it_outlives_the_window_and_the_wal_only_it_needed(
    tmp_path,
):
    record = RecordSettings(retention_days=3)
    wal = tmp_path / "wal"
    backup = BackupSettings(retention_days=5, wal_archive=str(wal), pg_bin=str(PG_BIN))
    today = day_of(NOW, TZ)
    directory = tmp_path / "bk"
    segments = [f"0000000100000000000000{i:02X}" for i in range(1, 11)]
    # Four nightly backups (today's first), each holding the three days the live record kept that night
    # and starting at WAL segments 08, 06, 04 and 02.
    names = [
        fake_base_backup(
            directory, today - dt.timedelta(days=n), today - dt.timedelta(days=n + 2), segments[7 - 2 * n]
        )
        for n in range(4)
    ]
    wal.mkdir()
    others = ["000000010000000000000004.00000028.backup", "00000002.history", ".00000001000000000000000B.tmp"]
    for name in segments + others:
        (wal / name).write_bytes(b"x")

    done = backups.rotate(directory, record, keep=7, now=NOW, backup=backup)

    # By tomorrow's run a read may be held from today - 3 on (5 days, today included): the backups of
    # two and three nights ago hold today - 4 and today - 5, so they go whole; two nightly backups stay.
    assert done["days_before"] == (today - dt.timedelta(days=3)).isoformat()
    assert sorted(done["expired"]) == sorted(names[2:]) and sorted(done["kept"]) == sorted(names[:2])
    assert sorted(p.name for p in directory.iterdir()) == sorted(names[:2])
    # The oldest kept backup began at segment 06: the WAL before it is gone; the rest stays, and so do
    # the timeline's history, a copy in progress and the backup history file (a few hundred bytes of
    # labels and positions: PostgreSQL 15's pg_archivecleanup keeps them).
    assert done["wal_archive"] == {"archive": str(wal), "kept_from": segments[5], "removed": 5}
    assert sorted(p.name for p in wal.iterdir()) == sorted([*segments[5:], *others])
