"""The audit trail: appended with what it audits, chained, and any edit or removal is found."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from central.record.sqlite import audit
from central.record.sqlite.store import HubStore
from central.record.sqlite.watchlists import apply_changes
from central.watchlists.index import HubWatchlists, changes_for, parse_csv
from central.watchlists.lists import ListService


@pytest.fixture
def store(tmp_path):
    s = HubStore(tmp_path / "hub.db")
    s.start()
    yield s
    s.stop()


def append(store, n):
    for i in range(n):
        store.submit(
            lambda db, i=i: audit.append(
                db,
                f"user{i}",
                "analyst",
                "search",
                target="鲁A*23?5",
                reason="案件 2026-113",
                detail={"hits": i},
            )
        ).result(5)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "cordon.cli", "audit", *args], capture_output=True, text=True, timeout=60
    )


def test_a_clean_chain_verifies_and_the_table_refuses_edits(store):
    append(store, 5)
    verdict = store.read(audit.verify)
    assert verdict.ok and verdict.records == 5 and verdict.head_id == 5
    with pytest.raises(Exception, match="append-only"):
        store.submit(lambda db: db.conn.execute("UPDATE audit SET reason='x' WHERE id=2")).result(5)
    with pytest.raises(Exception, match="append-only"):
        store.submit(lambda db: db.conn.execute("DELETE FROM audit WHERE id=2")).result(5)


def tamper(path, *statements):
    with sqlite3.connect(path) as db:  # someone with the file: drops the triggers first
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        for sql in statements:
            db.execute(sql)


def test_an_edited_record_is_found(store, tmp_path):
    append(store, 5)
    store.stop()
    tamper(tmp_path / "hub.db", "UPDATE audit SET reason='nothing to see' WHERE id=3")
    result = cli("verify", "--db", str(tmp_path / "hub.db"))
    assert result.returncode == 1 and "record 3 was changed" in result.stdout


def test_a_removed_record_is_found(store, tmp_path):
    append(store, 5)
    store.stop()
    tamper(tmp_path / "hub.db", "DELETE FROM audit WHERE id=2")
    result = cli("verify", "--db", str(tmp_path / "hub.db"))
    assert result.returncode == 1 and "record 2 is missing" in result.stdout


def test_a_cut_off_end_is_found_only_against_a_head_written_down(store, tmp_path):
    append(store, 5)
    store.stop()
    head = cli("head", "--db", str(tmp_path / "hub.db")).stdout.strip()
    assert head.startswith("5:")
    tamper(tmp_path / "hub.db", "DELETE FROM audit WHERE id >= 4")
    assert cli("verify", "--db", str(tmp_path / "hub.db")).returncode == 0, "a shorter chain is still a chain"
    result = cli("verify", "--db", str(tmp_path / "hub.db"), "--head", head)
    assert result.returncode == 1 and "record 5 was written down" in result.stdout


def test_a_watchlist_change_is_audited_in_its_own_transaction(store):
    watchlists = HubWatchlists()
    ListService(store, watchlists, lambda *a, **k: None).load()
    rows = parse_csv("plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n")
    store.submit(
        lambda db: apply_changes(
            db, changes_for(rows, {}), watchlists, "wang", role="manager", reason="新线索"
        )
    ).result(5)
    (rec,) = store.read(lambda db: audit.records(db, action="watchlist.change"))
    assert rec.actor == "wang" and rec.role == "manager" and rec.reason == "新线索"
    assert "涉毒" in rec.target and '"EntryUpsert":1' in rec.detail
