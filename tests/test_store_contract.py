"""One contract for the hub's stores beside the record, run against both backends: SQLite (hub.db, and
what a hub keeps in memory or on its disk today) and PostgreSQL (a real cluster of the tests' own, a fresh
database per test). Accounts, failed logins, the audit trail, webhook deliveries, import jobs and cached
evidence must behave the same on both; text with a NUL in it comes back exactly."""

from __future__ import annotations

import datetime as dt
import threading
import time

import msgspec
import pytest

from central.people.users import User, UserError, token_hash
from central.record.escalation import ACTION, ACTOR
from central.record.evidencefiles import EvidenceFiles
from central.record.memory import MemoryImportJobs
from central.record.sqlite.store import HubStore
from protocols.kits import KitResult, MachineReading, PanelResult, Subject
from protocols.messages import (
    SCHEMA_VERSION,
    Alert,
    AlertHit,
    AlertOutcome,
    AlertReceipt,
    AuditEvent,
    CheckpointStatus,
    EdgeHit,
    Gap,
    KitResultEvent,
    PlateRead,
)
from runtime.web import LoginLimiter

TZ = dt.timezone(dt.timedelta(hours=8))
# 2026-11-28 10:00 in China
T0 = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC).timestamp()
DAY = dt.date(2026, 11, 28)
CP = "SD-DZ-001"


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
        self.import_jobs = MemoryImportJobs(max_jobs=3)
        self.evidence = EvidenceFiles(tmp_path / "evidence", evidence_max_bytes)
        self.events, self.stats, self.watchlists = self.hub, self.hub.stats, self.hub.watchlists

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
        from central.record.postgresql.shared import PgImportJobStore

        self.import_jobs, self.evidence = PgImportJobStore(s._pool, max_jobs=3), s.evidence
        self.events, self.stats, self.watchlists = s, s.stats, s.watchlists

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

    @property
    def finished(self) -> bool:
        return self.state not in ("running", "applying")

    def status(self):
        return {
            "job": self.job_id,
            "state": self.state,
            "rows_done": self.rows_done,
            "problems": [{"line": 3, "reason": "无效\0"}],
        }


def test_import_jobs_are_kept_by_id_and_the_oldest_finished_go_first(backend):
    jobs = backend.import_jobs
    assert len(jobs) == 0 and jobs.get("1-1") is None and jobs.jobs() == []
    first = Job("1-1")
    jobs.add("1-1", first)
    jobs.add("1-2", Job("1-2", "done", 7))
    jobs.add("1-3", Job("1-3", "failed"))
    assert len(jobs) == 3 and jobs.get("1-1") is first  # this hub's own job, live
    assert jobs.get("1-2").status() == Job("1-2", "done", 7).status()
    jobs.add("1-4", Job("1-4"))  # past 3: the oldest finished (1-2) goes, the running 1-1 stays
    assert [j.job_id for j in jobs.jobs()] == ["1-1", "1-3", "1-4"] and jobs.get("1-2") is None
    first.state, first.rows_done = "applying", 40
    assert jobs.get("1-1").status()["rows_done"] == 40


# -- cached evidence -------------------------------------------------------------------------------
def test_evidence_requests_are_known_deferred_and_taken_once(backend):
    ev = backend.evidence
    ev.ask("Rabc12345", CP, 1, 7)
    ev.ask("Rdef12345", CP, 1, 8, deferred=True)
    ev.defer("SD-DZ-002", 1, 3)  # asked of an offline checkpoint: never requested yet
    assert ev.request_of("Rabc12345") == (CP, 1, 7) and ev.request_of("Rnone1234") is None
    ev.defer(CP, 1, 7)  # no reply within the wait
    assert ev.take_deferred(["SD-DZ-009"]) == []
    assert ev.take_deferred([CP, "SD-DZ-009"]) == [(CP, 1, 7), (CP, 1, 8)]
    assert ev.take_deferred([CP]) == [], "taken once"
    ev.answered("SD-DZ-002", 1, 3)  # a reply came after all: no longer deferred
    assert ev.take_deferred(["SD-DZ-002"]) == []
    assert ev.request_of("Rabc12345") == (CP, 1, 7), "a reply's copies at other hubs are still known"


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


# -- events, alerts, quick tests, statistics ----------------------------------------------------------
def kit_event(seq, call="negative", at=T0, officer="chen", hits=()):
    result = KitResult(
        result_id=f"{CP}-{seq}",
        subject=Subject(id_hash="ab" * 32, id_last4="002X"),
        kit_model="SD-SAL6",
        lot="L1",
        expiry=dt.date(2099, 1, 1),
        sample_type="saliva",
        panels=[
            PanelResult(
                drug="MET", officer_call=call, machine=MachineReading(call="uncertain", confidence=0.4)
            ),
            PanelResult(drug="KET", officer_call="negative"),
        ],
        sampled_at=at,
        read_at=at + 600,
        officers=["chen", "002"],
        source="manual",
    )
    return KitResultEvent(
        seq=seq, checkpoint_officer=officer, recorded_at=at + 601, result=result, person_hits=list(hits)
    )


def alert(n, kind="exact", list_id="stolen", action="intercept", at=T0, checkpoint=CP, entry=None, **kw):
    entry = n if entry is None else entry
    hit = AlertHit(
        entry_id=f"{list_id}:鲁B{entry:05d}",
        entry_plate=f"鲁B{entry:05d}",
        list_id=list_id,
        list_name=list_id,
        action=action,
        priority=50,
        kind=kind,
        score=1.0,
        explanation="完全一致",
    )
    return Alert(
        v=SCHEMA_VERSION,
        alert_id=f"A{n}",
        checkpoint=checkpoint,
        epoch=1,
        seq=n,
        raised_at=at + n,
        captured_at=at + n - 1,
        camera_id="cam",
        plate_read=f"鲁B{entry:05d}",
        hit=hit,
        **kw,
    )


def outcome(seq, alert_id, what, after_s, officer="li", note=""):
    return AlertOutcome(
        seq=seq,
        alert_id=alert_id,
        outcome=what,
        officer=officer,
        acknowledged_at=T0 + 100 + after_s,
        alert_raised_at=T0 + 100,
        note=note,
    )


def insert(backend, *events, checkpoint=CP, epoch=1):
    return backend.write(
        lambda tx: [backend.events.insert_event(tx, checkpoint, epoch, e, T0, T0 + 1) for e in events]
    )


def test_events_are_stored_once_and_a_taken_identity_is_a_dead_letter(backend):
    hit = EdgeHit(
        seq=2,
        read_seq=1,
        alert_id="E1",
        entry_id="stolen:鲁B00001",
        list_id="stolen",
        kind="exact",
        score=1.0,
        explanation="说明\0",
        feed_version=3,
        matcher_version="m1",
        raised_at=T0,
    )
    events = [
        PlateRead(
            seq=1, camera_id="cam", captured_at=T0, plate="鲁B00001", plate_raw="鲁B00001", plate_valid=True
        ),
        hit,
        Gap(
            seq=3, ranges=[(10, 12), (20, 20)], count=4, reason="disk\0quota", dropped_at=T0, dropped_total=4
        ),
        outcome(4, "A1", "intercepted", 30, note="备注\0"),
        AuditEvent(seq=5, action="officer.login", actor="chen", at=T0),
        kit_event(6),
    ]
    first = insert(backend, *events)
    assert [(o.inserted, o.dead_letter) for o in first] == [(True, None)] * 6
    again = insert(backend, *events)  # an honest resend: nothing new, nothing refused
    assert [o.inserted for o in again] == [False] * 6 and all(o.dead_letter is None for o in again)
    assert again[0].seen_before
    other = insert(backend, msgspec.structs.replace(hit, score=0.5), outcome(1, "A1", "released", 5))
    assert [o.inserted for o in other] == [False, False]
    assert "already stored with different content" in other[0].dead_letter
    assert "already stored with different content" in other[1].dead_letter  # seq 1 is a read
    assert [o.inserted for o in insert(backend, hit, epoch=2)] == [True]  # a new epoch is a new identity
    assert backend.events.counts().reads == 1


def test_a_run_of_reads_is_stored_at_once_and_says_which_reads_edge_hits_name(backend):
    """``insert_reads``: outcomes as ``insert_event`` on each (new, a resend, a reused identity), and the reads
    of the run that edge hits name (so ingest reconciles only those)."""
    from protocols.messages import Passage

    def read(seq, plate="鲁B00001"):
        return PlateRead(
            seq=seq, camera_id="cam", captured_at=T0, plate=plate, plate_raw=plate, plate_valid=True
        )

    hit = EdgeHit(
        seq=9,
        read_seq=2,
        alert_id="E2",
        entry_id="stolen:鲁B00002",
        list_id="stolen",
        kind="exact",
        score=1.0,
        explanation="",
        feed_version=1,
        matcher_version="m1",
        raised_at=T0,
    )
    insert(backend, hit)
    passage = Passage(
        seq=4, plate="鲁B00001", first_seen=T0, last_seen=T0 + 1, best_seq=1, read_seqs=[1], cameras=["cam"]
    )
    run = [read(1), read(2, "鲁B00002"), read(3), passage]
    first = backend.write(lambda tx: backend.events.insert_reads(tx, CP, 1, run, T0, T0 + 1))
    assert [o.inserted for o in first.outcomes] == [True] * 4 and first.hit_reads == {2}
    again = backend.write(
        lambda tx: backend.events.insert_reads(tx, CP, 1, [read(3), read(1, "鲁B99999")], T0, T0)
    )
    assert [(o.inserted, o.seen_before) for o in again.outcomes] == [(False, True), (False, False)]
    assert again.outcomes[1].dead_letter and again.hit_reads == set()
    assert (
        backend.write(lambda tx: backend.events.insert_reads(tx, CP, 1, [passage], T0, T0)).hit_reads == set()
    )


def test_kit_results_are_served_newest_first_with_filters(backend):
    insert(
        backend,
        kit_event(1, at=T0),
        kit_event(2, "positive", at=T0 + 60, officer="王\0"),
        kit_event(3, at=T0 + 120, hits=["p:1", "p:2"]),
    )
    insert(backend, kit_event(1, "positive", at=T0 + 30), checkpoint="SD-DZ-002")
    found = backend.events.kit_results()
    assert [(r["checkpoint"], r["seq"]) for r in found] == [(CP, 3), (CP, 2), ("SD-DZ-002", 1), (CP, 1)]
    assert found[0]["person_hits"] == ["p:1", "p:2"] and found[1]["person_hits"] == []
    assert found[1]["recorded_by"] == "王\0" and found[1]["result"] == "positive"
    assert (found[0]["subject"]["id_hash"], found[0]["subject"]["id_last4"]) == ("ab" * 32, "002X") and found[
        0
    ]["received_at"] == T0 + 1
    assert [r["seq"] for r in backend.events.kit_results(checkpoint=CP, result="positive")] == [2]
    assert [r["seq"] for r in backend.events.kit_results(since=T0 + 30, until=T0 + 120)] == [2, 1]
    assert [r["seq"] for r in backend.events.kit_results(limit=1)] == [3]


def test_statistics_are_counted_and_summed_alike(backend):
    st = backend.stats
    backend.write(
        lambda tx: st.add_daily_counts(
            tx, {(DAY.isoformat(), CP): [10, 4, 1], (DAY.isoformat(), "SD-DZ-002"): [3, 1, 0]}
        )
    )
    backend.write(lambda tx: st.add_daily_counts(tx, {(DAY.isoformat(), CP): [5, 2, 1]}))
    for stale in ([], ["lane2"], [], []):
        status = CheckpointStatus(
            v=SCHEMA_VERSION, checkpoint=CP, online=True, sent_at=T0, stale_cameras=stale
        )
        backend.write(lambda tx, status=status: st.sample_status(tx, status, T0, TZ))
    alerts = [alert(1), alert(2), alert(3, kind="fuzzy"), alert(4, list_id="covert", action="covert")]
    assert backend.write(lambda tx: [backend.events.insert_alert(tx, a) for a in alerts]) == [True] * 4
    assert backend.write(lambda tx: backend.events.insert_alert(tx, alerts[0])) is False
    insert(
        backend,
        outcome(1, "A1", "intercepted", 30),
        outcome(2, "A3", "misread", 10),
        outcome(3, "A3", "intercepted", 500),  # a correction: the first outcome stands
        outcome(4, "A2", "not_found", 60),
        kit_event(5, "positive"),
        kit_event(6),
    )
    ring = [{"checkpoint": CP, "county": "德城区"}, {"checkpoint": "SD-DZ-002", "county": "德城区"}]
    found = backend.read(lambda tx: st.summary(tx, "checkpoint", DAY, DAY, TZ))
    rows = {r["key"]: r for r in found["rows"]}
    row = rows[CP]
    assert (row["reads"], row["passages"], row["no_plate"], row["alerts"]) == (15, 6, 2, 4)
    assert row["hits_by_kind"] == {"exact": 3, "fuzzy": 1} and row["hits_by_list"] == {
        "stolen": 3,
        "covert": 1,
    }
    assert row["outcomes"] == {"intercepted": 1, "not_found": 1, "misread": 1, "released": 0}
    assert (row["ack_median_s"], row["ack_p90_s"]) == (30, 60)
    assert (row["tests"], row["positives"], row["positives_by_drug"]) == (2, 1, {"MET": 1})
    assert (row["camera_samples"], row["camera_stale"], row["camera_uptime"]) == (4, 1, 0.75)
    assert rows["SD-DZ-002"]["reads"] == 3 and rows["SD-DZ-002"]["camera_uptime"] is None
    assert found["stale_cameras"] == [
        {"checkpoint": CP, "camera": "lane2", "samples": 4, "stale": 1, "uptime": 0.75}
    ]
    by_county = backend.read(
        lambda tx: st.summary(
            tx, "county", DAY, DAY, TZ, ring=ring, hidden=lambda a: a.hit.action == "covert"
        )
    )
    (county,) = by_county["rows"]
    assert county["key"] == "德城区" and county["reads"] == 18 and county["alerts"] == 3
    assert backend.read(lambda tx: st.summary(tx, "day", DAY, DAY, TZ))["rows"][0]["key"] == DAY.isoformat()
    assert (
        backend.read(
            lambda tx: st.summary(tx, "day", DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=1), TZ)
        )["rows"]
        == []
    )
    with pytest.raises(ValueError):
        backend.read(lambda tx: st.summary(tx, "lane", DAY, DAY, TZ))
    misreads = backend.read(lambda tx: st.misreads(tx, DAY, DAY, TZ))
    assert misreads["by_kind"] == [
        {"kind": "exact", "outcomes": 2, "misreads": 0, "rate": 0.0, "few": True},
        {"kind": "fuzzy", "outcomes": 1, "misreads": 1, "rate": 1.0, "few": True},
    ]
    assert misreads == backend.read(lambda tx: st.misreads(tx, DAY, DAY, TZ, hidden=lambda a: False))


def test_a_hook_is_given_the_alerts_it_has_no_delivery_of(backend):
    w = backend.webhooks
    backend.write(lambda tx: [backend.events.insert_alert(tx, alert(n)) for n in (1, 2, 3, 4)])
    backend.write(lambda tx: w.record_delivery(tx, "duty", "A2", "delivered", "", T0 + 10))
    backend.write(lambda tx: w.record_delivery(tx, "duty", "A3", "gave_up", "HTTP 503\0", T0 + 10))
    backend.write(lambda tx: w.record_delivery(tx, "other", "A1", "delivered", "", T0 + 10))
    bodies = backend.read(lambda tx: w.undelivered_alerts(tx, "duty", T0))
    assert [msgspec.json.decode(b, type=Alert).alert_id for b in bodies] == ["A1", "A4"]
    assert [msgspec.json.decode(b, type=Alert) for b in bodies] == [alert(1), alert(4)]
    assert [
        msgspec.json.decode(b, type=Alert).alert_id
        for b in backend.read(lambda tx: w.undelivered_alerts(tx, "duty", T0 + 2))
    ] == ["A4"]


# -- the rest of the alert store --------------------------------------------------------------------
def test_alerts_are_listed_dispatched_and_named_alike(backend):
    ev = backend.events
    clone = alert(9, kind="clone", list_id="rule:clone", entry=9)
    clone = msgspec.structs.replace(
        clone, hit=msgspec.structs.replace(clone.hit, entry_id=f"rule:clone:{CP}/1/3")
    )
    alerts = [alert(1), alert(2, action="covert"), alert(3, entry=3), clone]
    backend.write(lambda tx: [ev.insert_alert(tx, a) for a in alerts])
    assert [a.alert_id for a in ev.recent_alerts()] == ["A9", "A3", "A2", "A1"]
    assert [a.alert_id for a in ev.recent_alerts(limit=2, include_covert=False)] == ["A9", "A3"]
    assert [a.alert_id for a in ev.undispatched_alerts()] == ["A1", "A2", "A3", "A9"]
    import asyncio

    asyncio.run(ev.mark_dispatched(["A1", "A3"]))
    assert [a.alert_id for a in ev.undispatched_alerts()] == ["A2", "A9"]
    assert sorted(a.alert_id for a in backend.read(lambda tx: ev.alerts_naming(tx, CP, 1, 3))) == ["A3", "A9"]
    assert backend.read(lambda tx: ev.alerts_naming(tx, CP, 1, 5)) == []
    pictured = backend.write(lambda tx: ev.add_thumbnail(tx, "A1", "/9j/AA=="))
    assert pictured.thumbnail == "/9j/AA==" and ev.recent_alerts()[-1].thumbnail == "/9j/AA=="
    assert backend.write(lambda tx: ev.add_thumbnail(tx, "A1", "/9j/BB==")) is None  # it has one
    assert backend.write(lambda tx: ev.add_thumbnail(tx, "A404", "/9j/BB==")) is None
    backend.write(lambda tx: ev.dead_letter(tx, "mqtt", "bad\0json", b"\x00\xffraw", CP, T0))
    counts = ev.counts()
    assert (counts.alerts, counts.dead_letters, counts.reads) == (4, 1, 0)
    # Positions in the order the alerts were stored: a console (or a hub) pages after the last it saw.
    assert [(pos, a.alert_id) for pos, a in ev.alerts_after(0)] == [
        (1, "A1"),
        (2, "A2"),
        (3, "A3"),
        (4, "A9"),
    ]
    assert [(pos, a.alert_id) for pos, a in ev.alerts_after(2, limit=1)] == [(3, "A3")]
    assert ev.alerts_after(4) == [] and ev.alert_position() == 4
    assert ev.alerts_after(0)[0][1].thumbnail == "/9j/AA=="  # the alert as it is now
    backend.write(lambda tx: ev.insert_alert(tx, alert(1)))  # again: no new position
    assert ev.alert_position() == 4


def test_alerts_a_gone_hub_left_undispatched_are_taken_over_once(backend):
    """The hub that raised an alert dispatches it; one left undispatched by a hub that is gone (on
    PostgreSQL: its life lock is free; on SQLite: any other hub name, one hub keeps a hub.db) is taken
    over once, only after the grace, and becomes the taker's; a hub that lives keeps its own."""
    import asyncio

    from central.record.duties import life

    ev = backend.events
    ev.hub = "hub-a"
    backend.write(lambda tx: [ev.insert_alert(tx, alert(n)) for n in (1, 2, 3)])
    asyncio.run(ev.mark_dispatched(["A3"]))
    assert backend.write(lambda tx: ev.claim_orphans(tx, T0 + 10)) == [], "a hub never takes its own"
    assert [a.alert_id for a in ev.undispatched_alerts()] == ["A1", "A2"]
    if backend.name == "postgresql":
        from central.record.postgresql.duties import PgDuties

        living = PgDuties(backend.stores.dsn, "hub-a", lease_s=4)
        assert living.claim([life("hub-a")]) == {life("hub-a")}
        ev.hub = "hub-b"
        assert backend.write(lambda tx: ev.claim_orphans(tx, T0 + 10)) == [], "hub-a lives: its own"
        living.release()  # hub-a is gone (its session ended)
    ev.hub = "hub-b"
    assert ev.undispatched_alerts() == [], "hub-b resends only its own at start-up"
    taken = backend.write(lambda tx: ev.claim_orphans(tx, T0 + 1.5))  # A2 (raised at T0 + 2) is too young
    assert [a.alert_id for a in taken] == ["A1"] and taken[0] == alert(1)
    assert backend.write(lambda tx: ev.claim_orphans(tx, T0 + 10)) == [alert(2)]
    assert backend.write(lambda tx: ev.claim_orphans(tx, T0 + 10)) == [], "taken once"
    assert [a.alert_id for a in ev.undispatched_alerts()] == ["A1", "A2"], "hub-b's to dispatch now"
    asyncio.run(ev.mark_dispatched(["A1", "A2"]))
    ev.hub = "hub-c"
    assert backend.write(lambda tx: ev.claim_orphans(tx, T0 + 10)) == [], "dispatched: nobody's"


def test_repeated_hits_fold_into_the_open_alert_until_it_has_an_outcome(backend):
    ev = backend.events
    first = alert(1, entry=7)
    backend.write(lambda tx: ev.insert_alert(tx, first))
    again = alert(2, entry=7, checkpoint="SD-DZ-002")
    folded = backend.write(lambda tx: ev.fold(tx, again, 600))
    assert folded.alert_id == "A1" and folded.folded == 1 and folded.last_seen_checkpoint == "SD-DZ-002"
    assert ev.recent_alerts()[0].folded == 1
    assert backend.read(lambda tx: ev.folded_into(tx, "A2")) == "A1"
    assert backend.read(lambda tx: ev.folded_into(tx, "A1")) is None
    assert backend.read(lambda tx: ev.folded_or_raised(tx, "A2")) and backend.read(
        lambda tx: ev.folded_or_raised(tx, "A1")
    )
    assert not backend.read(lambda tx: ev.folded_or_raised(tx, "A3"))
    assert backend.write(lambda tx: ev.fold(tx, again, 600)) is None  # a replay folds nothing twice
    assert backend.write(lambda tx: ev.fold(tx, alert(3, entry=8), 600)) is None  # another entry
    assert (
        backend.write(lambda tx: ev.fold(tx, alert(4, entry=7, at=T0 + 5000), 600)) is None
    )  # past the window
    assert backend.write(lambda tx: ev.fold(tx, alert(5, entry=7), 0)) is None  # folding off
    # An outcome on the folded hit closes the open alert: the next repeat raises anew.
    insert(backend, outcome(1, "A2", "intercepted", 30, note="拦截\0", officer="李"))
    assert backend.write(lambda tx: ev.fold(tx, alert(6, entry=7), 600)) is None
    found = ev.outcomes(["A1"])
    assert [(o["alert_id"], o["outcome"], o["note"], o["officer"]) for o in found["A1"]] == [
        ("A1", "intercepted", "拦截\0", "李")
    ]
    assert ev.outcomes(["A404"]) == {}

    # Receipts: the earliest showing, the latest acknowledgement, under the open alert.
    def receipt(shown=None, acked=None, what=None, by="", officer=""):
        return AlertReceipt(
            v=SCHEMA_VERSION,
            checkpoint="SD-DZ-002",
            alert_id="A2",
            sent_at=T0,
            shown_at=shown,
            shown_by=by,
            acknowledged_at=acked,
            outcome=what,
            officer=officer,
        )

    got = backend.write(lambda tx: ev.insert_receipt(tx, receipt(shown=T0 + 20, by="wang"), T0 + 21))
    assert (
        got["alert_id"],
        got["folded_id"],
        got["list_id"],
        got["action"],
        got["shown_at"],
        got["shown_by"],
    ) == ("A1", "A2", "stolen", "intercept", T0 + 20, "wang")
    got = backend.write(
        lambda tx: ev.insert_receipt(
            tx, receipt(shown=T0 + 10, acked=T0 + 40, what="intercepted", by="zhao", officer="王\0"), T0 + 41
        )
    )
    assert (got["shown_at"], got["shown_by"], got["acknowledged_at"], got["outcome"], got["officer"]) == (
        T0 + 10,
        "wang",
        T0 + 40,
        "intercepted",
        "王\0",
    )
    got = backend.write(
        lambda tx: ev.insert_receipt(tx, receipt(acked=T0 + 30, what="released", officer="li"), T0 + 42)
    )
    assert (got["acknowledged_at"], got["outcome"], got["officer"], got["received_at"]) == (
        T0 + 40,
        "intercepted",
        "王\0",
        T0 + 42,
    )
    (kept,) = ev.receipts(["A1"])["A1"]
    assert {k: kept[k] for k in ("alert_id", "checkpoint", "shown_at", "outcome", "officer")} == {
        "alert_id": "A1",
        "checkpoint": "SD-DZ-002",
        "shown_at": T0 + 10,
        "outcome": "intercepted",
        "officer": "王\0",
    }
    # The news of an alert by when it was stored (a fold at T0 + 2, the outcome at T0 + 1, the receipts up
    # to T0 + 42): under the open alert, as it is now, for the consoles of every hub.
    assert [(at, a.alert_id, a.folded) for at, a in ev.touched_since(T0)] == [(T0 + 42, "A1", 1)]
    assert [a.alert_id for _, a in ev.touched_since(T0 + 2)] == ["A1"]
    assert ev.touched_since(T0 + 42.5) == []


def test_edge_hits_gaps_checkpoints_and_dead_letters_alike(backend):
    ev = backend.events

    def hit(seq, read_seq, alert_id, thumbnail=None):
        return EdgeHit(
            seq=seq,
            read_seq=read_seq,
            alert_id=alert_id,
            entry_id="stolen:鲁B00001",
            list_id="stolen",
            kind="exact",
            score=1.0,
            explanation="说明\0",
            feed_version=3,
            matcher_version="m1",
            raised_at=T0,
            thumbnail=thumbnail,
        )

    insert(backend, hit(2, 1, "E1", "/9j/AA=="), hit(3, 1, "E2"), hit(4, 1, "E3"), hit(5, 9, "E9"))
    backend.write(
        lambda tx: ev.insert_alert(
            tx, alert(1, alert_id="E2") if False else msgspec.structs.replace(alert(1), alert_id="E2")
        )
    )
    backend.write(lambda tx: ev.insert_alert(tx, msgspec.structs.replace(alert(1, entry=5), alert_id="E0")))
    backend.write(lambda tx: ev.fold(tx, msgspec.structs.replace(alert(2, entry=5), alert_id="E3"), 600))
    assert backend.read(lambda tx: ev.hit_thumbnail(tx, CP, 1, 1, "E1")) == "/9j/AA=="
    assert backend.read(lambda tx: ev.hit_thumbnail(tx, CP, 1, 1, "E2")) is None
    pending = backend.read(lambda tx: ev.unalerted_edge_hits(tx, CP, 1, 1))
    assert [(p.alert_id, p.explanation, p.feed_version, p.matcher_version) for p in pending] == [
        ("E1", "说明\0", 3, "m1")
    ]
    insert(
        backend,
        Gap(seq=10, ranges=[(10, 12), (20, 20)], count=4, reason="quota\0", dropped_at=T0, dropped_total=4),
    )
    insert(
        backend,
        Gap(seq=11, ranges=[(30, 31)], count=2, reason="quota", dropped_at=T0, dropped_total=6),
        checkpoint="SD-DZ-002",
    )
    gaps = ev.gaps()
    assert [(g["checkpoint"], g["lo"], g["hi"], g["count"]) for g in gaps] == [
        ("SD-DZ-002", 30, 31, 2),
        (CP, 20, 20, 1),
        (CP, 10, 12, 3),
    ]
    assert gaps[1]["reason"] == "quota\0" and [g["lo"] for g in ev.gaps(CP, limit=1)] == [20]
    status = '{"v":1,"checkpoint":"SD-DZ-001","online":true}'
    backend.write(
        lambda tx: ev.update_checkpoint(
            tx, CP, online=True, status=status, epoch=1, last_seen=T0, clock_offset_s=0.5
        )
    )
    backend.write(lambda tx: ev.update_checkpoint(tx, CP, last_seen=T0 + 9))
    cps = {c["checkpoint"]: c for c in ev.checkpoints()}
    assert cps[CP] == {
        "checkpoint": CP,
        "online": True,
        "epoch": 1,
        "status": {"v": 1, "checkpoint": CP, "online": True},
        "last_seen": T0 + 9,
        "clock_offset_s": 0.5,
        "dropped_reads": 4,
    }
    assert cps["SD-DZ-002"]["dropped_reads"] == 2 and cps["SD-DZ-002"]["online"] is False
    ids = [
        backend.write(
            lambda tx, i=i: ev.dead_letter(tx, "mqtt", f"bad {i}\0", b"\x00\xff" + bytes(70_000), CP, T0 + i)
        )
        for i in range(3)
    ]
    letters = ev.dead_letters(limit=2)
    assert (
        [d.id for d in letters] == ids[:0:-1]
        and letters[0].reason == "bad 2\0"
        and letters[0].raw_bytes == 70_002
    )
    assert (
        letters[0].raw_preview == b"\x00\xff".decode("utf-8", "replace") + "\0" * 1998
        and letters[0].checkpoint == CP
    )
    assert [d.id for d in ev.dead_letters(before_id=ids[1])] == [ids[0]]


def test_unanswered_intercepts_are_escalated_once(backend):
    ev = backend.events
    backend.write(
        lambda tx: [
            ev.insert_alert(tx, a)
            for a in (alert(1), alert(2), alert(3, action="notify"), alert(4, entry=9, at=T0 + 100))
        ]
    )
    insert(backend, outcome(1, "A2", "intercepted", 10))
    due = backend.write(lambda tx: ev.escalate_due(tx, 300, now=T0 + 400))
    assert [(f["alert_id"], f["escalated_at"], f["after_s"]) for f in due] == [("A1", T0 + 400, 300)]
    assert backend.write(lambda tx: ev.escalate_due(tx, 300, now=T0 + 403)) == []  # once
    later = backend.write(lambda tx: ev.escalate_due(tx, 300, now=T0 + 404.5))
    assert [f["alert_id"] for f in later] == ["A4"]
    known = backend.read(lambda tx: ev.escalated_among(tx, ["A1", "A2", "A4"], 300))
    assert sorted((f["alert_id"], f["escalated_at"]) for f in known) == [("A1", T0 + 400), ("A4", T0 + 404.5)]
    assert backend.read(backend.audit.verify).records == 2
    touched = [(at, a.alert_id) for at, a in ev.touched_since(T0 + 300)]
    assert touched == [(T0 + 400, "A1"), (T0 + 404.5, "A4")]  # escalations are news too
    # An outcome on a hit folded into the alert answers it as well.
    backend.write(lambda tx: ev.insert_alert(tx, alert(5, entry=11)))
    backend.write(lambda tx: ev.fold(tx, alert(6, entry=11), 600))
    insert(backend, outcome(2, "A6", "not_found", 10))
    assert backend.write(lambda tx: ev.escalate_due(tx, 300, now=T0 + 800)) == []


def test_the_hits_retention_removes_what_is_older(backend):
    ev = backend.events
    backend.write(lambda tx: [ev.insert_alert(tx, alert(n, at=at)) for n, at in ((1, T0 - 90_000), (2, T0))])
    insert(backend, outcome(1, "A1", "intercepted", -90_000), kit_event(2, at=T0))
    backend.write(lambda tx: ev.dead_letter(tx, "mqtt", "bad", b"x", CP, T0 - 90_000))
    removed = ev.purge_hits_before(T0 - 3600)
    assert removed["alerts"] == 1 and removed["alert_outcomes"] == 1 and removed["dead_letters"] == 1
    assert removed["kit_results"] == 0 and set(removed) >= {
        "alerts",
        "edge_hits",
        "events",
        "gaps",
        "alert_folds",
        "alert_receipts",
        "webhook_deliveries",
    }
    assert [a.alert_id for a in ev.recent_alerts()] == ["A2"] and len(ev.kit_results()) == 1


# -- watchlists ------------------------------------------------------------------------------------
class Index:
    """A ListIndex that records what the store tells it to do after the commit."""

    def __init__(self):
        self.done: list = []
        self.index = self

    def upsert(self, entry):
        self.done.append(("upsert", entry.entry_id))

    def remove(self, entry_id):
        self.done.append(("remove", entry_id))

    def set_list(self, wl):
        self.done.append(("list", wl.list_id))

    def drop_list(self, list_id, entry_ids):
        self.done.append(("drop", list_id, sorted(entry_ids)))

    def set_permit_rules(self, rules):
        self.done.append(("permits", len(rules)))

    def set_feed_version(self, version):
        self.done.append(("version", version))


def test_watchlist_changes_are_applied_versioned_and_audited_alike(backend):
    from protocols.feed import EntryDelete, EntryUpsert, ListDelete, ListUpsert, PermitRules
    from protocols.matching import Entry, ListAction, PermitRule, Watchlist

    wl = backend.watchlists
    stolen = Watchlist(list_id="stolen", name="被盗\0车辆")
    covert = Watchlist(list_id="covert", name="秘密", action=ListAction.COVERT)
    e1 = Entry(entry_id="stolen:鲁B12345", list_id="stolen", plate="鲁B12345", reason="案件\0")
    e2 = Entry(entry_id="stolen:鲁BAB345", list_id="stolen", plate="鲁BAB345")
    e3 = Entry(entry_id="covert:鲁C00001", list_id="covert", plate="鲁C00001")
    index = Index()

    def change(*changes, actor="wang"):
        applied = backend.write(
            lambda tx: wl.apply_changes(
                tx, list(changes), index, actor, now=T0, role="watchlist_manager", reason="导入"
            )
        )
        for op in applied.index_ops:
            op()
        return applied

    first = change(
        ListUpsert(watchlist=stolen),
        ListUpsert(watchlist=covert),
        EntryUpsert(entry=e1),
        EntryUpsert(entry=e2),
        EntryUpsert(entry=e3),
    )
    assert (first.version, first.changes, len(first.delta.changes)) == (
        1,
        5,
        3,
    )  # the covert list stays on the hub
    assert index.done[-1] == ("version", 1) and ("upsert", "covert:鲁C00001") in index.done
    same = change(ListUpsert(watchlist=stolen), EntryUpsert(entry=e1))  # nothing new: no new version
    assert (same.version, same.changes, same.delta) == (1, 0, None)
    hidden = change(EntryUpsert(entry=Entry(entry_id="covert:鲁C00002", list_id="covert", plate="鲁C00002")))
    assert (hidden.version, hidden.changes, hidden.delta) == (1, 1, None)
    from central.record.watchlists import ListError, NotFound

    with pytest.raises(NotFound):
        change(EntryUpsert(entry=Entry(entry_id="x:1", list_id="nolist", plate="鲁A1")))
    with pytest.raises(ListError):
        change(EntryUpsert(entry=Entry(entry_id="stolen:鲁B12345", list_id="covert", plate="鲁B12345")))
    with pytest.raises(NotFound):
        change(EntryDelete(entry_id="stolen:nothing"))
    assert backend.read(wl.feed_version) == 1  # the refused changes left nothing behind
    rules = [PermitRule(rule_id="r1", list_id="permits", colours=frozenset({"yellow"}))]
    second = change(EntryDelete(entry_id="stolen:鲁BAB345"), PermitRules(rules=rules))
    assert second.version == 2 and index.done[-3:] == [
        ("remove", "stolen:鲁BAB345"),
        ("permits", len(rules)),
        ("version", 2),
    ]
    assert backend.read(wl.permit_rules) == rules
    # The field feed (what the feed file is made of) and its log of deltas.
    assert backend.read(wl.field_feed) == (2, [stolen], [e1], rules)
    assert backend.read(lambda tx: wl.unfiled(tx, 0)) == (2, False, T0)
    assert backend.read(lambda tx: wl.unfiled(tx, 2)) == (0, False, None)
    version, deltas = backend.read(lambda tx: wl.deltas_since(tx, 0, 10))
    assert version == 2 and [msgspec.json.decode(d)["version"] for d in deltas] == [1, 2]
    assert backend.read(lambda tx: wl.deltas_since(tx, 1, 10))[1] == deltas[1:]
    assert backend.read(lambda tx: wl.deltas_since(tx, 2, 10)) == (2, [])
    assert backend.read(lambda tx: wl.deltas_since(tx, 0, 1)) is None  # more than the limit: take the file

    assert backend.read(lambda tx: wl.get_list(tx, "stolen")) == stolen
    assert backend.read(lambda tx: wl.get_entry(tx, "stolen:鲁B12345")) == e1
    assert backend.read(lambda tx: wl.get_entry(tx, "stolen:nothing")) is None
    assert backend.read(lambda tx: wl.list_entries(tx, "covert")) == [
        e3,
        Entry(entry_id="covert:鲁C00002", list_id="covert", plate="鲁C00002"),
    ]
    assert backend.read(lambda tx: wl.entries_with_plate(tx, "鲁B12345")) == [e1]
    assert [(w.list_id, n) for w, n in backend.read(wl.list_summaries)] == [("covert", 2), ("stolen", 1)]
    lists, entries, version, got_rules = backend.read(wl.load_all)
    assert (
        sorted(w.list_id for w in lists) == ["covert", "stolen"]
        and len(entries) == 3
        and version == 2
        and got_rules == rules
    )
    found, total = backend.read(lambda tx: wl.search_entries(tx, "covert", "C0000", 1, 1))
    assert [e.entry_id for e in found] == ["covert:鲁C00002"] and total == 2
    assert backend.read(lambda tx: wl.search_entries(tx, "stolen", "b12", 10, 0))[1] == 1  # ASCII in any case
    assert backend.read(lambda tx: wl.search_entries(tx, "stolen", "%", 10, 0))[1] == 1  # no wildcards
    version, snapshot = backend.read(wl.versioned_snapshot)
    body = msgspec.json.decode(snapshot)
    assert version == 2 and body["version"] == 2 and [w["list_id"] for w in body["watchlists"]] == ["stolen"]
    assert [e["entry_id"] for e in body["entries"]] == ["stolen:鲁B12345"]
    dropped = change(ListDelete(list_id="covert"))
    assert dropped.version == 2 and index.done[-2] == (
        "drop",
        "covert",
        ["covert:鲁C00001", "covert:鲁C00002"],
    )
    assert backend.read(lambda tx: wl.get_list(tx, "covert")) is None
    assert backend.read(lambda tx: wl.list_entries(tx, "covert")) == []
    gone = change(ListDelete(list_id="stolen"))
    assert gone.version == 3 and gone.delta.changes == [ListDelete(list_id="stolen")]
    trail = backend.read(lambda tx: backend.audit.records(tx, action="watchlist.change"))
    assert len(trail) == 5 and trail[-1].reason == "导入" and trail[-1].role == "watchlist_manager"
    assert backend.read(backend.audit.verify).ok
    # A bulk change is logged by its size only: never served as deltas, it calls for a new feed file.
    from central.record.watchlists import MAX_DELTA_CHANGES

    bulk = Watchlist(list_id="bulk", name="批量")
    change(
        ListUpsert(watchlist=bulk),
        *(
            EntryUpsert(entry=Entry(entry_id=f"bulk:鲁D{i:05d}", list_id="bulk", plate=f"鲁D{i:05d}"))
            for i in range(MAX_DELTA_CHANGES)
        ),
    )
    assert backend.read(lambda tx: wl.unfiled(tx, 3)) == (1, True, T0)
    assert backend.read(lambda tx: wl.deltas_since(tx, 3, 10)) is None


def test_every_list_change_is_logged_for_the_other_hubs_indexes_alike(backend, monkeypatch):
    """The log of list changes: every change (a covert list's too) at the next position, what it did to
    the index as data, replayed by ``index_ops`` to the same operations the applying hub ran."""
    from central.record import watchlists as rules
    from protocols.feed import EntryDelete, EntryUpsert, ListDelete, ListUpsert
    from protocols.matching import Entry, ListAction, Watchlist

    wl = backend.watchlists
    covert = Watchlist(list_id="covert", name="秘密", action=ListAction.COVERT)
    e1 = Entry(entry_id="covert:鲁C00001", list_id="covert", plate="鲁C00001")
    e2 = Entry(entry_id="covert:鲁C00002", list_id="covert", plate="鲁C00002")
    assert (
        backend.read(wl.change_position) == 0 and backend.read(lambda tx: wl.changes_after(tx, 0, 10)) == []
    )

    def change(*changes):
        index = Index()
        applied = backend.write(lambda tx: wl.apply_changes(tx, list(changes), index, "wang", now=T0))
        for op in applied.index_ops:
            op()
        return applied, index.done

    first, first_ops = change(ListUpsert(watchlist=covert), EntryUpsert(entry=e1), EntryUpsert(entry=e2))
    same, _ = change(EntryUpsert(entry=e1))  # nothing changed: nothing logged
    second, second_ops = change(EntryDelete(entry_id=e2.entry_id))
    third, third_ops = change(ListDelete(list_id="covert"))
    assert (first.position, same.position, second.position, third.position) == (1, None, 2, 3)
    assert (first.version, third.version) == (0, 0)  # a covert list: no feed version, logged all the same
    assert backend.read(wl.change_position) == 3
    logged = backend.read(lambda tx: wl.changes_after(tx, 0, 10))
    assert [pos for pos, _ in logged] == [1, 2, 3]
    for (_, change_), ops in zip(logged, (first_ops, second_ops, third_ops), strict=True):
        follower = Index()
        for op in rules.index_ops(change_, follower):
            op()
        assert follower.done == ops  # the other hubs' indexes do what the applying hub's did
    assert third_ops[0] == ("drop", "covert", [e1.entry_id])
    assert [pos for pos, _ in backend.read(lambda tx: wl.changes_after(tx, 1, 1))] == [2]
    assert backend.read(lambda tx: wl.changes_after(tx, 3, 10)) == []
    assert backend.read(lambda tx: wl.changes_after(tx, 9, 10)) is None  # past the log (a restored store)
    # The log keeps the newest LOG_KEEP; a hub further behind than that loads its index anew.
    from central.record.postgresql import watchlists as on_pg
    from central.record.sqlite import watchlists as on_sqlite

    for module in (on_pg, on_sqlite):
        monkeypatch.setattr(module, "LOG_KEEP", 2)
    fourth, _ = change(ListUpsert(watchlist=covert))
    assert fourth.position == 4
    assert backend.read(lambda tx: wl.changes_after(tx, 1, 10)) is None
    assert [pos for pos, _ in backend.read(lambda tx: wl.changes_after(tx, 2, 10))] == [3, 4]


def test_a_bulk_change_is_told_and_never_served_as_deltas(backend):
    """More than MAX_DELTA_CHANGES changes to the field feed at once: the log keeps it by its size, and the
    edges are sent to the feed file for it."""
    from central.record.watchlists import MAX_DELTA_CHANGES
    from protocols.feed import EntryUpsert, ListUpsert
    from protocols.matching import Entry, Watchlist

    wl = backend.watchlists
    index = Index()
    changes = [ListUpsert(watchlist=Watchlist(list_id="bulk", name="批量"))] + [
        EntryUpsert(entry=Entry(entry_id=f"bulk:{i}", list_id="bulk", plate=f"鲁B{i:05d}"))
        for i in range(MAX_DELTA_CHANGES)
    ]
    applied = backend.write(lambda tx: wl.apply_changes(tx, changes, index, "wang", now=T0))
    assert applied.version == 1
    assert backend.read(lambda tx: wl.unfiled(tx, 0)) == (1, True, T0)
    assert backend.read(lambda tx: wl.deltas_since(tx, 0, 10)) is None
    version, field, entries, _ = backend.read(wl.field_feed)
    assert (version, len(field), len(entries)) == (1, 1, MAX_DELTA_CHANGES)


def test_a_large_load_and_a_second_one_leave_the_same_rows_alike(backend, monkeypatch):
    """A watchlist file's load (thousands of entries) and a second load that removes, changes and adds some,
    as the hub's start-up diffs them: the same rows, versions, log and audit on both stores, though
    PostgreSQL writes long runs of entry changes set-based (``BulkRows``: a read and a COPY a run, here
    several runs a change). Text PostgreSQL refuses (NUL) is kept as on SQLite; a refused change, wherever
    it lies in a run, leaves nothing; an entry changed twice in one change ends as the later change left it."""
    from central.record import watchlists as rules
    from central.watchlists.files import diff_entries
    from protocols.feed import EntryDelete, EntryUpsert, ListUpsert
    from protocols.matching import Entry, ListAction, Watchlist

    monkeypatch.setattr(rules, "BULK_MAX", 700)
    wl = backend.watchlists
    big = Watchlist(list_id="big", name="大名单")
    hid = Watchlist(list_id="hid", name="秘密", action=ListAction.COVERT)

    def entry(list_id, i, reason="r", **kw):
        plate = f"鲁B{i:05d}" if i % 997 else f"鲁B\0{i:04d}"  # a NUL now and then, in the id too
        return Entry(entry_id=f"{list_id}:{plate}", list_id=list_id, plate=plate, reason=reason, **kw)

    first_big = [
        entry("big", i, "案件\0" if i % 13 == 0 else "r", valid_until=T0 + i if i % 7 == 0 else None)
        for i in range(3000)
    ]
    first_hid = [entry("hid", i) for i in range(200)]

    def change(changes):
        index = Index()
        applied = backend.write(lambda tx: wl.apply_changes(tx, changes, index, "wang", now=T0))
        for op in applied.index_ops:
            op()
        return applied, index.done

    def stored(list_id):  # by id as Python sorts it (PostgreSQL sorts a NUL as U+FFFD)
        return sorted(backend.read(lambda tx: wl.list_entries(tx, list_id)), key=lambda e: e.entry_id)

    loaded = [ListUpsert(watchlist=big), ListUpsert(watchlist=hid)]
    loaded += diff_entries({}, first_big) + diff_entries({}, first_hid)
    first, ops = change(loaded)
    assert (first.changes, first.version, first.position) == (3202, 1, 1)
    assert stored("big") == sorted(first_big, key=lambda e: e.entry_id)
    assert stored("hid") == sorted(first_hid, key=lambda e: e.entry_id)
    nul = entry(
        "big", 997, "案件\0" if 997 % 13 == 0 else "r", valid_until=T0 + 997 if 997 % 7 == 0 else None
    )
    assert backend.read(lambda tx: wl.get_entry(tx, nul.entry_id)) == nul
    assert backend.read(lambda tx: wl.entries_with_plate(tx, nul.plate)) == [nul]
    assert ops.count(("list", "big")) == 1 and len([o for o in ops if o[0] == "upsert"]) == 3200
    ((_, logged),) = backend.read(lambda tx: wl.changes_after(tx, 0, 10))
    assert logged.changes == loaded  # in order, the covert list's too

    # The second load: 40 removed, 40 changed (one only in its expiry), 40 added, the rest as they were.
    now_big = {e.entry_id: e for e in first_big}
    for e in first_big[100:140]:
        del now_big[e.entry_id]
    for e in first_big[1000:1039]:
        now_big[e.entry_id] = msgspec.structs.replace(e, reason="改")
    now_big[first_big[2002].entry_id] = msgspec.structs.replace(first_big[2002], valid_until=T0 + 5)
    for i in range(5000, 5040):
        now_big[entry("big", i).entry_id] = entry("big", i)
    again = diff_entries({e.entry_id: e for e in stored("big")}, now_big.values())
    assert len(again) == 120
    second, _ = change(again)
    assert (second.changes, second.version, second.position) == (120, 2, 2)
    assert second.delta.changes == again  # deletes, then upserts, each by id
    assert stored("big") == sorted(now_big.values(), key=lambda e: e.entry_id)
    assert backend.read(lambda tx: wl.deltas_since(tx, 1, 10))[0] == 2
    same, _ = change(diff_entries({}, now_big.values()))  # every entry as stored: no change at all
    assert (same.changes, same.version, same.position) == (0, 2, None)

    # Refused, wherever it lies in a run: nothing of the change stays.
    late = [EntryUpsert(entry=entry("big", i, "晚")) for i in range(6000, 6500)]
    for bad in (
        EntryDelete(entry_id="big:nothing"),
        EntryUpsert(entry=Entry(entry_id=first_hid[5].entry_id, list_id="big", plate=first_hid[5].plate)),
        EntryUpsert(entry=entry("nolist", 1)),
    ):
        for where in (0, 250, 500):
            with pytest.raises(rules.ListError):
                change([*late[:where], bad, *late[where:]])
    assert stored("big") == sorted(now_big.values(), key=lambda e: e.entry_id)
    assert backend.read(wl.feed_version) == 2 and backend.read(wl.change_position) == 2

    # One entry twice in a change (and one put then deleted): the later change wins.
    twice = [EntryUpsert(entry=entry("big", i, "一")) for i in range(7000, 7300)]
    twice += [EntryUpsert(entry=entry("big", 7100, "二")), EntryDelete(entry_id=entry("big", 7200).entry_id)]
    twice += [EntryUpsert(entry=entry("big", i, "三")) for i in range(7300, 7400)]
    third, _ = change(twice)
    assert (third.changes, third.version) == (402, 3)
    got = {e.entry_id: e for e in stored("big")}
    assert got[entry("big", 7100).entry_id].reason == "二" and entry("big", 7200).entry_id not in got
    assert got[entry("big", 7399).entry_id].reason == "三" and len(got) == len(now_big) + 399
    trail = backend.read(lambda tx: backend.audit.records(tx, action="watchlist.change"))
    details = [msgspec.json.decode(r.detail) for r in trail]
    assert [d["changes"] for d in details] == [402, 120, 3202]  # newest first
    assert details[2]["by_kind"] == {"ListUpsert": 2, "EntryUpsert": 3200}
    assert backend.read(backend.audit.verify).ok


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


def test_alert_positions_follow_commits_so_a_console_catching_up_skips_none(pg_dsn):
    """As the audit trail: an alert's position is taken under a lock held to the commit, so a second
    transaction cannot take a later position and commit before an earlier one."""
    import psycopg

    from central.record.postgresql.events import ALERT_LOCK, PgEvents
    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    try:
        first, second = psycopg.connect(pg_dsn), psycopg.connect(pg_dsn)
        assert PgEvents.insert_alert(first, alert(1))  # position 1 taken, not committed
        done = threading.Event()

        def late():
            PgEvents.insert_alert(second, alert(2))
            second.commit()
            done.set()

        thread = threading.Thread(target=late)
        thread.start()
        with psycopg.connect(pg_dsn, autocommit=True) as watcher:
            deadline = time.monotonic() + 20
            while not watcher.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s)",
                (ALERT_LOCK & 0xFFFFFFFF,),
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the second alert never queued on the alerts' lock"
                time.sleep(0.02)
        assert stores.alerts_after(0) == [] and not done.is_set()
        first.commit()
        thread.join(20)
        assert done.is_set()
        assert [(pos, a.alert_id) for pos, a in stores.alerts_after(0)] == [(1, "A1"), (2, "A2")]
        assert [a.alert_id for _, a in stores.alerts_after(1)] == ["A2"]
        first.close()
        second.close()
    finally:
        stores.stop()


def test_the_postgresql_stores_have_every_method_of_their_interfaces():
    from central.record import stores as seam
    from central.record.postgresql.store import PgStores

    def wanted(protocol):
        names: set[str] = set()
        for klass in protocol.__mro__:
            if getattr(klass, "_is_protocol", False) and klass.__module__ != "typing":
                names |= {m for m in vars(klass) if not m.startswith("_")} | set(
                    getattr(klass, "__annotations__", {})
                )
        return names

    pg = PgStores("postgresql://unused")  # nothing connects before start()
    parts = {
        seam.IngestStore: pg,
        seam.AlertStore: pg,
        seam.KitResultStore: pg,
        seam.UserStore: pg.users,
        seam.AuditStore: pg.audit,
        seam.WebhookStore: pg.webhooks,
        seam.StatsStore: pg.stats,
        seam.WatchlistStore: pg.watchlists,
        seam.ReadStore: pg.record,
        seam.LoginLimitStore: pg.login_limits,
        seam.ImportJobStore: pg.import_jobs,
        seam.EvidenceStore: pg.evidence,
    }
    assert {"retry_after", "failed", "succeeded"} <= wanted(seam.LoginLimitStore)  # inherited ones count
    missing = {p.__name__: sorted(m for m in wanted(p) if not hasattr(impl, m)) for p, impl in parts.items()}
    assert not any(missing.values()), missing
    assert hasattr(pg.import_jobs, "__len__")


def test_jobs_waiting_for_the_writer_share_one_commit_and_a_failed_one_is_rolled_back_alone(pg_dsn):
    """Group commit on PostgreSQL: the jobs queued while the writer is busy run in one transaction, each from
    a savepoint of its own; one that fails leaves nothing behind and the others commit; one that meets a
    day without partitions runs again once the day is made."""
    import psycopg

    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    try:
        gate = threading.Event()
        busy = stores.submit(lambda tx: gate.wait(10))

        def put(checkpoint):
            def job(tx):
                tx.execute("INSERT INTO checkpoints (checkpoint) VALUES (%s)", (checkpoint,))
                return tx.execute("SELECT txid_current()").fetchone()[0]

            return job

        def fails(tx):
            tx.execute("INSERT INTO checkpoints (checkpoint) VALUES ('SD-B')")
            tx.execute("SELECT 1 / 0")

        new_day = PlateRead(
            seq=1, camera_id="c", captured_at=T0, plate="鲁B12345", plate_raw="鲁B12345", plate_valid=True
        )
        a, b = stores.submit(put("SD-A")), stores.submit(fails)
        read = stores.submit(lambda tx: stores.insert_reads(tx, CP, 1, [new_day], T0, T0))
        c = stores.submit(put("SD-C"))
        gate.set()
        assert busy.result(10) is True
        assert a.result(10) == c.result(10)  # one transaction
        with pytest.raises(psycopg.errors.DivisionByZero):
            b.result(10)
        assert [o.inserted for o in read.result(10).outcomes] == [True]  # after its day was made
        assert [c["checkpoint"] for c in stores.checkpoints()] == ["SD-A", "SD-C"]
        assert stores.record.counts().reads == 1 and stores.writer_error is None
    finally:
        stores.stop()


def test_a_batch_whose_reads_the_database_refuses_is_rolled_back_alone_in_its_group(pg_dsn):
    """Three batches share one commit; the middle one's reads fail inside the batch statement (a sequence
    number past 64 bits, which only the database checks): it alone is rolled back, with none of its
    reads, plates or counts, and the others' reads commit."""
    import psycopg

    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    try:

        def reads(first, plate, n=3):
            return [
                PlateRead(
                    seq=first + k,
                    camera_id="c",
                    captured_at=T0 + k,
                    plate=f"{plate}{k}",
                    plate_raw="r",
                    plate_valid=True,
                )
                for k in range(n)
            ]

        stores.submit(lambda tx: stores.insert_reads(tx, CP, 1, reads(100, "鲁C"), T0, T0)).result(30)
        gate = threading.Event()
        busy = stores.submit(lambda tx: gate.wait(10))
        good = reads(1, "鲁A")
        bad = reads(10, "鲁X")
        bad[-1] = msgspec.structs.replace(bad[-1], seq=2**63)
        more = reads(20, "鲁B")
        a, b, c = (
            stores.submit(lambda tx, run=run: stores.insert_reads(tx, CP, 1, run, T0, T0))
            for run in (good, bad, more)
        )
        gate.set()
        assert busy.result(10) is True
        assert [o.inserted for o in a.result(10).outcomes] == [True] * 3
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            b.result(10)
        assert [o.inserted for o in c.result(10).outcomes] == [True] * 3
        assert stores.record.counts().reads == 9  # the group's six and the three before
        stored = {f"{p}{k}" for p in ("鲁A", "鲁B", "鲁C") for k in range(3)}
        assert {r.plate for day in stores.record.days() for r in stores.record.iter_reads(day)} == stored
        assert stores.record.search_pattern("鲁X*", T0 - 60, T0 + 60).reads == []
        assert {
            p for (p,) in stores.read(lambda tx: tx.execute("SELECT plate FROM plates").fetchall())
        } == stored
        assert stores.writer_error is None
    finally:
        stores.stop()


def test_the_writer_prepares_no_statement_on_a_partitioned_table(pg_dsn):
    """The writer lets PostgreSQL keep generic plans (``connections.connect``); a generic plan of a statement
    on ``reads``, ``passages`` or ``plates`` would lock every day's partition and queue behind a purge's
    detach. The real ingest pipeline runs reads, listed plates and edge hits (every writer statement on the
    record: the batch insert, an event's identity check, a read looked up to reconcile a hit) until each has
    run often enough to be prepared: none prepared names a partitioned table, and the batch insert, which
    names its day's partitions, runs on a generic plan."""
    import re

    from central.ingest.listener import Recorder
    from central.ingest.pipeline import Ingest
    from central.record.postgresql.store import PgStores
    from central.watchlists.index import HubWatchlists, changes_for, parse_csv
    from central.watchlists.lists import ListService
    from protocols.messages import EventBatch, encode

    stores = PgStores(pg_dsn)
    stores.start()
    try:
        watchlists = HubWatchlists()
        ListService(stores, watchlists, lambda *a, **k: None).load()
        loaded = parse_csv("plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n")
        stores.submit(
            lambda tx: [
                op()
                for op in stores.watchlists.apply_changes(
                    tx, changes_for(loaded, {}), watchlists, "t"
                ).index_ops
            ]
        ).result(30)
        heard = Recorder()
        ingest = Ingest(stores, watchlists, publish=lambda t, p: None, listener=heard)
        now = time.time()
        seq = 0
        for n in range(12):
            events = []
            for plate in ("鲁B12345", "鲁Q8K2L1"):
                seq += 1
                events.append(
                    PlateRead(
                        seq=seq,
                        camera_id="c",
                        captured_at=now,
                        plate=plate,
                        plate_raw=plate,
                        plate_valid=True,
                    )
                )
            seq += 1
            events.append(
                EdgeHit(
                    seq=seq,
                    read_seq=seq - 1,
                    alert_id=f"edge-{n}",
                    entry_id="涉毒:鲁Q8K2L1",
                    list_id="涉毒",
                    kind="exact",
                    score=1.0,
                    explanation="edge",
                    feed_version=1,
                    matcher_version="m1",
                    raised_at=now,
                )
            )
            payload = encode(EventBatch(v=SCHEMA_VERSION, checkpoint=CP, epoch=1, sent_at=now, events=events))
            assert ingest.handle(f"cordon/v1/cp/{CP}/events", payload, now).result(30).reads == 2
        # The hub's alert on each listed read, and the edge hit's under an id of its own (raised by
        # reconciling it: the writer looks the read up in the record).
        assert len(heard.alerts) == 24
        prepared = stores.submit(
            lambda tx: tx.execute(
                "SELECT statement, generic_plans FROM pg_prepared_statements", prepare=False
            ).fetchall()
        ).result(30)
        on_parent = re.compile(r"\b(FROM|JOIN|INTO|UPDATE)\s+(reads|passages|plates)\b(?!_)", re.IGNORECASE)
        assert len(prepared) > 5  # the writer's statements are prepared
        assert [q for q, _ in prepared if on_parent.search(q)] == []
        (insert,) = [(q, g) for q, g in prepared if re.search(r"INSERT INTO reads_\d{8} ", q)]
        assert insert[1] > 0, "the batch insert never ran on a generic plan"
    finally:
        stores.stop()


def test_feed_versions_follow_commits(pg_dsn):
    """Two changes to the lists at once: the second waits for the first's commit (the feed's lock), so it
    makes version 2 on top of version 1, never a second version 1, and version 1 commits first."""
    import psycopg

    from central.record.postgresql.store import PgStores
    from central.record.postgresql.watchlists import FEED_LOCK, PgWatchlistStore
    from protocols.feed import ListUpsert
    from protocols.matching import Watchlist

    stores = PgStores(pg_dsn)
    stores.start()
    try:
        first, second = psycopg.connect(pg_dsn), psycopg.connect(pg_dsn)
        one = PgWatchlistStore.apply_changes(
            first, [ListUpsert(watchlist=Watchlist(list_id="a", name="a"))], Index(), "wang"
        )
        got = {}

        def late():
            got["applied"] = PgWatchlistStore.apply_changes(
                second, [ListUpsert(watchlist=Watchlist(list_id="b", name="b"))], Index(), "li"
            )
            second.commit()

        thread = threading.Thread(target=late)
        thread.start()
        with psycopg.connect(pg_dsn, autocommit=True) as watcher:
            deadline = time.monotonic() + 20
            while not watcher.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s)",
                (FEED_LOCK & 0xFFFFFFFF,),
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the second change never queued on the feed's lock"
                time.sleep(0.02)
        assert stores.read(PgWatchlistStore.feed_version) == 0 and "applied" not in got
        first.commit()
        thread.join(20)
        assert (one.version, got["applied"].version) == (1, 2)
        assert stores.read(PgWatchlistStore.feed_version) == 2
        first.close()
        second.close()
    finally:
        stores.stop()


# -- the hub's ingest on either backend ---------------------------------------------------------------
def test_the_hubs_ingest_runs_alike_on_either_store(backend):
    """The real ingest pipeline over each store: a batch stored and acknowledged, a listed plate alerted
    (folded on repeat), a resend acknowledged again with nothing new, a reused identity dead-lettered."""
    from central.ingest.pipeline import Ingest
    from central.watchlists.index import HubWatchlists, changes_for, parse_csv
    from central.watchlists.lists import ListService
    from protocols.messages import Ack, EventBatch, decode, encode

    store = backend.hub if backend.name == "sqlite" else backend.stores
    watchlists = HubWatchlists()
    ListService(store, watchlists, lambda *a, **k: None).load()
    loaded = parse_csv("plate,list,action,priority,reason\n鲁Q8K2L1,涉毒,intercept,90,线索\n")
    backend.write(
        lambda tx: [
            op()
            for op in store.watchlists.apply_changes(tx, changes_for(loaded, {}), watchlists, "t").index_ops
        ]
    )
    from central.ingest.listener import Recorder

    published, heard = [], Recorder()
    alerts, folded = heard.alerts, heard.folded
    ingest = Ingest(
        store, watchlists, publish=lambda t, p: published.append((t, p)), listener=heard, fold_window_s=600
    )
    now = time.time()

    def batch(*events, epoch=42):
        return encode(
            EventBatch(v=SCHEMA_VERSION, checkpoint=CP, epoch=epoch, sent_at=now, events=list(events))
        )

    def read(seq, plate, at=now):
        return PlateRead(
            seq=seq, camera_id="cam", captured_at=at, plate=plate, plate_raw=plate, plate_valid=True
        )

    topic = f"cordon/v1/cp/{CP}/events"
    first = ingest.handle(
        topic, batch(read(1, "鲁B12345"), read(2, "鲁Q8K2L1"), read(4, "鲁Q8K2L1", now + 5)), now
    ).result(30)
    assert first.reads == 3 and first.dead_letters == 0
    assert [a.hit.entry_id for a in alerts] == ["涉毒:鲁Q8K2L1"] and [a.folded for a in folded] == [1]
    assert decode(Ack, published[-1][1]).ranges == [(1, 2), (4, 4)]
    again = ingest.handle(topic, batch(read(1, "鲁B12345"), read(2, "鲁Q8K2L1")), now).result(30)
    assert (again.reads, again.duplicates) == (0, 2) and decode(Ack, published[-1][1]).ranges == [(1, 2)]
    other = ingest.handle(topic, batch(read(1, "鲁B99999")), now).result(30)
    assert other.dead_letters == 1
    (stored,) = store.recent_alerts()
    assert stored.folded == 1 and store.counts().reads == 3 and store.counts().dead_letters == 1
    day = store.record.days()[-1]
    assert sorted(r.plate for r in store.record.iter_reads(day)) == ["鲁B12345", "鲁Q8K2L1", "鲁Q8K2L1"]


def test_a_message_that_fails_inside_the_store_costs_one_dead_letter(backend):
    """A statement the store refuses (a sequence number past 64 bits) inside a batch: the pipeline's
    guard dead-letters the message on either backend (on PostgreSQL after rolling the job back, since a
    failed statement aborts the transaction), and the next batch is taken as usual."""
    from central.ingest.listener import Recorder
    from central.ingest.pipeline import Ingest
    from central.watchlists.index import HubWatchlists
    from protocols.messages import EventBatch, encode

    store = backend.hub if backend.name == "sqlite" else backend.stores
    ingest = Ingest(store, HubWatchlists(), publish=lambda t, p: None, listener=Recorder())
    now = time.time()

    def batch(*seqs):
        reads = [
            PlateRead(
                seq=s,
                camera_id="cam",
                captured_at=now,
                plate="鲁B12345",
                plate_raw="鲁B12345",
                plate_valid=True,
            )
            for s in seqs
        ]
        return encode(EventBatch(v=SCHEMA_VERSION, checkpoint=CP, epoch=7, sent_at=now, events=reads))

    topic = f"cordon/v1/cp/{CP}/events"
    bad = ingest.handle(topic, batch(2**63 + 5), now).result(30)
    assert bad.dead_letters == 1 and bad.reads == 0
    (letter,) = store.dead_letters()
    assert letter.reason.startswith("internal error")
    good = ingest.handle(topic, batch(1, 2), now).result(30)
    assert good.reads == 2 and good.dead_letters == 0 and store.counts().reads == 2


def test_the_clone_index_warms_from_either_record(backend):
    """After a restart the clone index learns the record's recent reads (``SightingSource``) on both."""
    from central.intel.clones import recent_reads

    reads = [
        PlateRead(
            seq=s,
            camera_id="cam",
            captured_at=T0 + s * 60,
            plate=f"鲁B1234{s}",
            plate_raw=f"鲁B1234{s}",
            plate_valid=True,
            colour="blue",
        )
        for s in (1, 2, 3)
    ]
    insert(backend, *reads)
    store = backend.hub if backend.name == "sqlite" else backend.stores
    found = list(recent_reads(store.record, T0 + 90))
    assert [(r.seq, r.plate) for r, _, _ in found] == [(2, "鲁B12342"), (3, "鲁B12343")]


def test_failed_logins_past_the_window_are_forgotten_on_postgresql(pg_dsn):
    """A flood of made-up names does not grow the failures table for good: each new failure drops up to
    a hundred that left the window."""
    from central.record.postgresql.shared import FORGET_PER_FAILURE, PgLoginLimitStore
    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    clock = Clock()
    limits = PgLoginLimitStore(stores._pool, window_s=600, clock=clock)

    def rows():
        return stores.read(lambda tx: tx.execute("SELECT count(*) FROM login_failures").fetchone()[0])

    try:
        for i in range(150):
            limits.failed(f"name{i}", f"10.1.{i // 250}.{i % 250}")
        assert rows() == 300
        clock.now += 601
        for i in range(3):
            limits.failed(f"later{i}", "10.2.0.1")
        assert FORGET_PER_FAILURE == 100 and rows() == 6
        assert (
            limits.retry_after("later0", "10.9.9.9") is None and limits.retry_after("x", "10.2.0.1") is None
        )
    finally:
        stores.stop()


def test_another_hub_answers_for_an_import_job_on_postgresql(pg_dsn):
    from central.record.postgresql.shared import PgImportJobStore, StoredJob
    from central.record.postgresql.store import PgStores

    stores = PgStores(pg_dsn)
    stores.start()
    try:
        here, there = PgImportJobStore(stores._pool), PgImportJobStore(stores._pool)
        job = Job("7-1")
        here.add("7-1", job)
        seen = there.get("7-1")
        assert isinstance(seen, StoredJob) and seen.status() == job.status() and not seen.finished
        job.state, job.rows_done = "done", 12
        assert here.get("7-1") is job  # asked here: its status is saved again
        assert there.get("7-1").status()["rows_done"] == 12 and there.get("7-1").finished
        assert there.get("7-9") is None and len(there) == 0
    finally:
        stores.stop()
