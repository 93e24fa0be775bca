"""The SQLite writer thread: a lock held by another process fails a commit after the busy timeout,
every caller of that commit hears it, and the writer goes on once the lock is gone."""

from __future__ import annotations

import sqlite3

import pytest

from runtime.sqlwriter import SqlWriter


def _setup(db):
    db.conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")


async def test_a_foreign_write_lock_fails_the_commit_then_the_writer_goes_on(tmp_path):
    path = tmp_path / "w.db"
    writer = SqlWriter(path, name="t", setup=_setup, busy_timeout_s=0.2)
    writer.start()
    try:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await writer.run(lambda db: db.conn.execute("INSERT INTO t VALUES (1)"))
        assert writer.last_error and "locked" in writer.last_error
        other.execute("ROLLBACK")
        other.close()
        await writer.run(lambda db: db.conn.execute("INSERT INTO t VALUES (2)"))
        assert writer.last_error is None
        rows = await writer.run(lambda db: db.conn.execute("SELECT x FROM t").fetchall())
        assert rows == [(2,)], "the failed commit wrote nothing"
    finally:
        writer.stop()
