"""One contract for the hub's stores beside the record, run against both backends: SQLite (hub.db, and
what a hub keeps in memory or on its disk today) and PostgreSQL (a real cluster of the tests' own, a fresh
database per test). Accounts, failed logins, the audit trail, webhook deliveries, import jobs and cached
evidence must behave the same on both; text with a NUL in it comes back exactly."""

from __future__ import annotations

import threading
import time

import pytest

from central.alerts.evidence import EvidenceCache
from central.people.users import User, UserError, token_hash
from central.record.escalation import ACTION, ACTOR
from central.record.sqlite.store import HubStore
from runtime.web import LoginLimiter


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp_path, clock, evidence_max_bytes):
        self.hub = HubStore(tmp_path / "hub.db")
        self.hub.start()
        self.users, self.audit, self.webhooks = self.hub.users, self.hub.audit, self.hub.webhooks
        self.login_limits = LoginLimiter(per_account=3, per_address=5, window_s=600, clock=clock)
        self.import_jobs: dict = {}
        self.evidence = EvidenceCache(tmp_path / "evidence", evidence_max_bytes, publish=None)
        self.evidence.root.mkdir(parents=True)

    def write(self, job):
        return self.hub.submit(job).result(30)

    def read(self, fn):
        return self.hub.read(fn)

    def sql(self, statement):
        return self.write(lambda tx: tx.conn.execute(statement))

    def stop(self):
        self.hub.stop()


class PostgresBackend:
    name = "postgresql"

    def __init__(self, dsn, clock, evidence_max_bytes):
        from central.record.postgresql.shared import PgLoginLimitStore
        from central.record.postgresql.store import PgStores

        self.stores = PgStores(dsn, evidence_max_bytes=evidence_max_bytes)
        self.stores.start()
        s = self.stores
        self.users, self.audit, self.webhooks = s.users, s.audit, s.webhooks
        self.login_limits = PgLoginLimitStore(
            s._pool, per_account=3, per_address=5, window_s=600, clock=clock
        )
        self.import_jobs, self.evidence = s.import_jobs, s.evidence

    def write(self, job):
        return self.stores.submit(job).result(30)

    def read(self, fn):
        return self.stores.read(fn)

    def sql(self, statement):
        return self.write(lambda tx: tx.execute(statement))

    def stop(self):
        self.stores.stop()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path, clock):
    if request.param == "sqlite":
        b = SqliteBackend(tmp_path, clock, 1000)
    else:
        b = PostgresBackend(request.getfixturevalue("pg_dsn"), clock, 1000)
    yield b
    b.stop()


# -- accounts -------------------------------------------------------------------------------------
def test_accounts_are_added_changed_and_listed_alike(backend):
    u = backend.users
    added = backend.write(
        lambda tx: u.add(
            tx, "wang.li", "officer", "HASH1", display_name="王力\0号", checkpoint="SD-DZ-001", now=100.0
        )
    )
    assert added == User("wang.li", "王力\0号", "officer", "SD-DZ-001", False, 0, 100.0, 100.0, False)
    backend.write(lambda tx: u.add(tx, "zhao", "analyst", "HASH2", now=101.0))
    backend.write(lambda tx: u.add(tx, "Admin", "admin", "HASH3", now=102.0))
    with pytest.raises(UserError, match="exists already"):
        backend.write(lambda tx: u.add(tx, "zhao", "analyst", "HASH9"))
    with pytest.raises(UserError, match="bound to a checkpoint"):
        backend.write(lambda tx: u.add(tx, "li", "officer", "HASH9"))
    with pytest.raises(UserError, match="no user"):
        backend.read(lambda tx: u.get(tx, "nobody"))
    assert [x.username for x in backend.read(u.all_users)] == ["Admin", "wang.li", "zhao"]
    assert backend.read(lambda tx: u.get(tx, "zhao")).display_name == "zhao"

    before = backend.read(u.signature)
    assert before[0] == 3 and before[2] == 0
    off = backend.write(lambda tx: u.set_disabled(tx, "wang.li", True))
    assert off.disabled and off.generation == 1 and off.updated_at > 100.0
    again = backend.write(lambda tx: u.set_password(tx, "wang.li", "HASH4"))
    assert again.generation == 2 and again.disabled
    assert backend.read(u.signature)[2] == 2 and backend.read(u.signature) != before
    with pytest.raises(UserError, match="no user"):
        backend.write(lambda tx: u.set_disabled(tx, "nobody", True))

    token = backend.write(lambda tx: u.new_token(tx, "zhao"))
    assert token.startswith("cdt_") and backend.read(lambda tx: u.get(tx, "zhao")).has_token
    second = backend.write(lambda tx: u.new_token(tx, "zhao"))
    directory = {user.username: (user, hashes) for user, hashes in backend.read(u.directory)}
    assert directory["zhao"][1] == ("HASH2", token_hash(second))
    assert directory["wang.li"][1] == ("HASH4", None)
    assert directory["wang.li"][0].display_name == "王力\0号"


def test_officers_are_given_to_their_checkpoint(backend):
    u = backend.users
    for name, cp in (("b.officer", "SD-DZ-002"), ("a.officer", "SD-DZ-002"), ("c.officer", "SD-DZ-001")):
        backend.write(lambda tx, name=name, cp=cp: u.add(tx, name, "officer", f"H-{name}", checkpoint=cp))
    backend.write(lambda tx: u.add(tx, "boss", "commander", "H"))
    backend.write(lambda tx: u.set_disabled(tx, "b.officer", True))
    assert backend.read(u.officer_checkpoints) == ["SD-DZ-001", "SD-DZ-002"]
    accounts = backend.read(lambda tx: u.officer_accounts(tx, "SD-DZ-002"))
    assert accounts.checkpoint == "SD-DZ-002"
    assert [(a.username, a.password_hash, a.disabled, a.generation) for a in accounts.accounts] == [
        ("a.officer", "H-a.officer", False, 0),
        ("b.officer", "H-b.officer", True, 1),
    ]
    assert backend.read(lambda tx: u.officer_accounts(tx, "SD-XX-999")).accounts == []


def test_a_failed_job_adds_no_account(backend):
    u = backend.users

    def job(tx):
        u.add(tx, "ghost", "analyst", "H")
        raise RuntimeError("the job fails after the insert")

    with pytest.raises(RuntimeError):
        backend.write(job)
    with pytest.raises(UserError):
        backend.read(lambda tx: u.get(tx, "ghost"))


# -- failed logins ---------------------------------------------------------------------------------
def test_failed_logins_are_limited_per_account_and_address_in_a_window(backend, clock):
    limits = backend.login_limits
    assert limits.retry_after("wang", "10.0.0.1") is None
    for _ in range(3):
        limits.failed("wang", "10.0.0.1")
        clock.now += 10
    # 3 failures for the account (its limit): the first of them leaves the window 600 s after it came.
    assert limits.retry_after("wang", "10.0.0.2") == pytest.approx(570.0)
    assert limits.retry_after("zhao", "10.0.0.1") is None  # the address has 3 of 5
    limits.succeeded("wang")
    assert limits.retry_after("wang", "10.0.0.1") is None
    for name in ("a", "b"):
        limits.failed(name, "10.0.0.1")
    assert limits.retry_after("zhao", "10.0.0.1") == pytest.approx(600.0 - 30.0)
    clock.now += 571
    assert limits.retry_after("zhao", "10.0.0.1") is None  # the oldest has left the window
    limits.failed("na\0me", "10.0.0.3")  # a NUL typed at the form is counted, not refused
    assert limits.retry_after("na\0me", "10.0.0.3") is None


# -- the audit trail -------------------------------------------------------------------------------
def test_the_audit_chain_is_kept_alike(backend):
    a = backend.audit
    assert backend.read(a.head) is None
    written = [
        backend.write(
            lambda tx, i=i: a.append(
                tx,
                f"user{i % 2}",
                "analyst",
                "search",
                target="鲁A*23?5",
                reason=f"案件\0{i}",
                detail={"hits": i},
                at=1000.0 + i,
            )
        )
        for i in range(5)
    ]
    assert [r.id for r in written] == [1, 2, 3, 4, 5]
    assert written[1].prev_hash == written[0].hash
    assert backend.read(a.head) == (5, written[-1].hash)
    assert backend.read(lambda tx: a.records(tx)) == written[::-1]
    assert [r.id for r in backend.read(lambda tx: a.records(tx, actor="user1"))] == [4, 2]
    assert [r.id for r in backend.read(lambda tx: a.records(tx, since=1001.0, until=1003.0))] == [3, 2]
    assert [r.id for r in backend.read(lambda tx: a.records(tx, limit=2, before_id=4))] == [3, 2]
    assert backend.read(lambda tx: a.records(tx, action="login")) == []
    assert backend.read(lambda tx: a.records(tx, limit=1))[0].reason == "案件\x004"
    verdict = backend.read(a.verify)
    assert (
        verdict.ok and verdict.records == 5 and (verdict.head_id, verdict.head_hash) == (5, written[-1].hash)
    )
    assert backend.read(lambda tx: a.verify(tx, (3, written[2].hash))).ok
    bad = backend.read(lambda tx: a.verify(tx, (3, written[3].hash)))
    assert not bad.ok and "not the head" in bad.problem
    short = backend.read(lambda tx: a.verify(tx, (7, "x")))
    assert not short.ok and "ends at record 5" in short.problem


def test_the_audit_trail_refuses_edits_and_a_failed_job_leaves_no_record(backend):
    a = backend.audit
    backend.write(lambda tx: a.append(tx, "wang", "admin", "user.add", target="zhao"))
    for statement in ("UPDATE audit SET reason = reason WHERE id = 1", "DELETE FROM audit WHERE id = 1"):
        with pytest.raises(Exception, match="append-only"):
            backend.sql(statement)

    def job(tx):
        a.append(tx, "wang", "admin", "user.add", target="ghost")
        raise RuntimeError("fails after its audit record")

    with pytest.raises(RuntimeError):
        backend.write(job)
    record = backend.write(lambda tx: a.append(tx, "wang", "admin", "user.add", target="li"))
    assert record.id == 2 and backend.read(a.verify).ok


# -- webhook deliveries ----------------------------------------------------------------------------
def test_escalations_a_hook_was_not_given_are_sent_after_a_restart(backend):
    a, w = backend.audit, backend.webhooks
    for alert in ("A1", "A2", "A3"):
        backend.write(
            lambda tx, alert=alert: a.append(
                tx, ACTOR, "system", ACTION, target=alert, detail={"level": 1}, at=2000.0
            )
        )
    backend.write(lambda tx: a.append(tx, "wang", "admin", "user.add", target="A9", at=2000.0))
    backend.write(lambda tx: w.record_delivery(tx, "duty", "esc:A1", "failed", "HTTP 500", 2001.0))
    backend.write(lambda tx: w.record_delivery(tx, "duty", "esc:A1", "delivered", "", 2002.0))
    backend.write(lambda tx: w.record_delivery(tx, "other", "esc:A2", "delivered", "", 2002.0))
    frames = backend.read(lambda tx: w.unsent_escalations(tx, "duty", 1999.0))
    assert sorted(f["alert_id"] for f in frames) == ["A2", "A3"]
    assert all(f["level"] == 1 and f["escalated_at"] == 2000.0 for f in frames)
    assert backend.read(lambda tx: w.unsent_escalations(tx, "duty", 2000.5)) == []


# -- import jobs -----------------------------------------------------------------------------------
class Job:
    def __init__(self, job_id: str, state: str = "running", rows_done: int = 0) -> None:
        self.job_id, self.state, self.rows_done = job_id, state, rows_done

    def status(self):
        return {
            "job": self.job_id,
            "state": self.state,
            "rows_done": self.rows_done,
            "problems": [{"line": 3, "reason": "无效\0"}],
        }


def test_import_jobs_are_kept_by_id(backend):
    jobs = backend.import_jobs
    assert len(jobs) == 0 and jobs.get("1-1") is None
    job = Job("1-1")
    jobs["1-1"] = job
    jobs["1-2"] = Job("1-2", "done", 7)
    assert len(jobs) == 2
    assert jobs.get("1-2").status() == Job("1-2", "done", 7).status()
    job.state, job.rows_done = "applying", 40
    jobs["1-1"] = job  # saved again as it moves on
    assert jobs.get("1-1").status()["state"] == "applying" and jobs.get("1-1").status()["rows_done"] == 40


# -- cached evidence -------------------------------------------------------------------------------
def test_evidence_is_kept_by_key_within_its_size(backend):
    ev = backend.evidence
    key = ("SD-DZ-001", 3, 41, "plate")
    assert ev.cached(key) is None
    ev.keep(key, b"\xff\xd8" + b"\0" * 398)
    assert ev.cached(key) == b"\xff\xd8" + b"\0" * 398
    assert ev.cached(("SD-DZ-001", 3, 41, "scene")) is None
    with pytest.raises(ValueError):
        ev.keep(("../etc", 1, 1, "plate"), b"x")
    with pytest.raises(ValueError):
        ev.keep(("SD-DZ-001", 1, 1, "face"), b"x")
    # 1000 bytes at most: the oldest picture goes first.
    for seq in (42, 43):
        time.sleep(0.01)  # distinct times of keeping, not a wait for anything
        ev.keep(("SD-DZ-001", 3, seq, "scene"), bytes(400))
    assert ev.cached(key) is None
    assert ev.cached(("SD-DZ-001", 3, 42, "scene")) == bytes(400)
    assert ev.cached(("SD-DZ-001", 3, 43, "scene")) == bytes(400)


# -- PostgreSQL only: audit positions in commit order ---------------------------------------------
def test_audit_positions_follow_commits_so_a_reader_paging_by_id_skips_none(pg_dsn):
    """Two transactions append; the first stays open while the second tries to commit first. The second's
    append waits for the first's commit (the audit lock), so it cannot take a later id and commit before
    an earlier one: a reader that pages "after the last id it saw" sees both, in order."""
    import psycopg

    from central.record.postgresql.audit import AUDIT_LOCK, PgAuditStore
    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    try:
        first = psycopg.connect(pg_dsn)
        second = psycopg.connect(pg_dsn)
        PgAuditStore.append(first, "t1", "admin", "x", at=1.0)  # open: id 1 taken, not committed
        done = threading.Event()
        result = {}

        def late():
            result["rec"] = PgAuditStore.append(second, "t2", "admin", "x", at=2.0)
            second.commit()
            done.set()

        thread = threading.Thread(target=late)
        thread.start()
        # Wait until the second is queued on the audit lock (an event in the server, not a fixed time).
        with psycopg.connect(pg_dsn, autocommit=True) as watcher:
            deadline = time.monotonic() + 20
            while not watcher.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = %s)",
                (AUDIT_LOCK & 0xFFFFFFFF,),
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the second append never queued on the audit lock"
                time.sleep(0.02)
        seen = [r.id for r in stores.read(lambda tx: PgAuditStore.records(tx))]
        assert seen == [] and not done.is_set()  # nothing committed, the second still waits
        first.commit()
        thread.join(20)
        assert done.is_set() and result["rec"].id == 2 and result["rec"].prev_hash != "0" * 64
        assert [r.id for r in stores.read(lambda tx: PgAuditStore.records(tx))] == [2, 1]
        assert stores.read(PgAuditStore.verify).ok
        first.close()
        second.close()
    finally:
        stores.stop()


def test_concurrent_appends_are_read_in_id_order_with_none_skipped(pg_dsn):
    """Eight writers append with their commits delayed by different amounts while a reader pages "after
    the last id"; it collects every record exactly once, and the chain verifies."""
    import random

    import psycopg

    from central.record.postgresql.audit import PgAuditStore
    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    total, writers = 80, 8
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            with psycopg.connect(pg_dsn) as conn:
                for i in range(total // writers):
                    PgAuditStore.append(conn, f"w{n}", "admin", "x", target=str(i))
                    if rng.random() < 0.5:
                        time.sleep(rng.random() * 0.005)  # commit late: the trail must not be read past it
                    conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    collected: list[int] = []

    def reader() -> None:
        last = 0
        while True:
            finished = stop.is_set()
            page = stores.read(lambda tx: PgAuditStore.records(tx))
            new = sorted(r.id for r in page if r.id > last)
            collected.extend(new)
            last = max([last, *new])
            if finished:
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    watcher.join(60)
    try:
        assert not errors
        assert collected == list(range(1, total + 1))
        verdict = stores.read(PgAuditStore.verify)
        assert verdict.ok and verdict.records == total
    finally:
        stores.stop()
