"""``cordon doctor hub`` on a PostgreSQL hub checks what its backups stand on (cordon/doctor.py): the
backups' retention against the record's (a base backup cannot be pruned), the cluster's WAL archiving as
PostgreSQL reports it (``wal_level``, ``archive_mode``, ``archive_command``, ``pg_stat_archiver``) and the
archive folder as the hub's box sees it. Against real clusters: one archiving with
deploy/postgresql/archive-wal.sh, whose ``archive_command`` the test breaks and mends, and the session's,
which does not archive."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest

from central.settings import load_settings
from cordon.doctor import Doctor
from cordon.testing import PostgresCluster, write_toml
from tests.test_backup_postgresql import ROOT, server_folder

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def archiving():
    """(cluster, archive folder): a cluster archiving its WAL with the deployed script."""
    tools = server_folder("cordon-doctor-tool-")
    script = tools / "archive-wal.sh"
    shutil.copy(ROOT / "deploy" / "postgresql" / "archive-wal.sh", script)
    script.chmod(0o755)
    archive = server_folder("cordon-doctor-wal-")
    cluster = PostgresCluster(
        settings={"archive_mode": "on", "archive_command": f'\'{script} "%p" "%f" {archive}\''}
    ).start()
    yield cluster, archive
    cluster.destroy()
    shutil.rmtree(archive, ignore_errors=True)
    shutil.rmtree(tools, ignore_errors=True)


def hub_config(tmp_path: Path, dsn: str, **backup: object) -> Path:
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    (tmp_path / "db-password").write_text(str(parts.pop("password")) + "\n", encoding="utf-8")
    return write_toml(
        tmp_path / "hub.toml",
        {
            "data_dir": str(tmp_path / "data"),
            "record": {"retention_days": 28},
            "store": {
                "backend": "postgresql",
                "dsn": psycopg.conninfo.make_conninfo(**parts),
                "password_file": str(tmp_path / "db-password"),
            },
            "backup": {"keep": 2, "retention_days": 30, **backup},
        },
    )


def checks(conf: Path) -> dict[str, tuple[str, str]]:
    doctor = Doctor("hub", str(conf), timeout_s=5)
    doctor.backup(load_settings(str(conf)))
    return {c.what: (c.level, c.message) for c in doctor.checks}


def archiver(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT archived_count, failed_count FROM pg_stat_archiver").fetchone()
    assert row is not None
    return row[0], row[1]


def switch_until(dsn: str, done, what: str, timeout: float = 30.0) -> None:
    """Write, switch to a new WAL file, and wait until the archiver's counts satisfy ``done``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("SELECT pg_switch_wal()")
    deadline = time.monotonic() + timeout
    while not done(*archiver(dsn)):
        assert time.monotonic() < deadline, f"the archiver did not {what}: {archiver(dsn)}"
        time.sleep(0.2)


def set_archive_command(dsn: str, command: str | None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if command is None:
            conn.execute("ALTER SYSTEM RESET archive_command")
        else:
            conn.execute(f"ALTER SYSTEM SET archive_command = '{command}'")
        conn.execute("SELECT pg_reload_conf()")


def test_archiving_that_works_then_fails_then_works_again(tmp_path, archiving):
    cluster, archive = archiving
    dsn = cluster.dsn()
    archived, _ = archiver(dsn)
    switch_until(dsn, lambda a, f: a > archived, "archive a switched WAL file")
    conf = hub_config(tmp_path, dsn, wal_archive=str(archive))
    found = checks(conf)
    assert found["backup"][0] == "ok", found
    assert found["archiving"][0] == "ok" and "archive-wal.sh" in found["archiving"][1], found
    assert found["backup.wal_archive"][0] == "ok", found

    # The folder the hub names is not where the server archives: the newest WAL is not there.
    elsewhere = tmp_path / "not-the-archive"
    elsewhere.mkdir()
    found = checks(hub_config(tmp_path, dsn, wal_archive=str(elsewhere)))
    assert found["backup.wal_archive"][0] == "FAIL" and "somewhere else" in found["backup.wal_archive"][1]
    found = checks(hub_config(tmp_path, dsn, wal_archive=str(tmp_path / "missing")))
    assert found["backup.wal_archive"][0] == "FAIL" and "not a folder" in found["backup.wal_archive"][1]

    # A broken archive_command: PostgreSQL retries and counts failures; the doctor names the command.
    _, failed = archiver(dsn)
    set_archive_command(dsn, "/bin/false %p")
    try:
        switch_until(dsn, lambda a, f: f > failed, "fail")
        level, message = checks(conf)["archiving"]
        assert level == "FAIL" and "failing" in message and "/bin/false %p" in message, message
        done = subprocess.run(
            [sys.executable, "-m", "cordon", "doctor", "hub", "--config", str(conf), "--timeout", "3"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and "FAIL  archiving:" in done.stdout, done.stdout
    finally:
        set_archive_command(dsn, None)  # back to postgresql.conf's: the deployed script
    archived, _ = archiver(dsn)
    switch_until(dsn, lambda a, f: a > archived, "archive again once mended")
    assert checks(conf)["archiving"][0] == "ok"


def test_no_archiving_and_retention_the_rotation_cannot_keep(tmp_path, pg_cluster):
    dsn = pg_cluster.dsn()  # the session's cluster: archive_mode off
    found = checks(hub_config(tmp_path, dsn, wal_archive=str(tmp_path)))
    level, message = found["archiving"]
    assert level == "FAIL" and "archive_mode is off" in message and "loses everything" in message, message
    found = checks(hub_config(tmp_path, dsn))
    assert found["archiving"][0] == "warn" and "no WAL archiving" in found["archiving"][1]

    found = checks(hub_config(tmp_path, dsn, retention_days=0))  # the same as the record's: no room
    level, message = found["backup"]
    assert level == "FAIL" and "refuses every base backup" in message, message
    found = checks(hub_config(tmp_path, dsn, retention_days=29))  # room for one, two asked for
    level, message = found["backup"]
    assert level == "warn" and "only 1 nightly base backups" in message, message
