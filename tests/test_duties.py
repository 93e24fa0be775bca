"""Work that runs once (issue 23): duties held by one hub at a time, taken over when the holder dies.

The keeper's rules first, over a store a test can stall; then PostgreSQL's session locks: two holders on
one database, the holder's session ended (a crash) or its line cut (a partition), and the fence that keeps
a late job of a hub that lost its duty from running beside the new holder's."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Iterable

import psycopg
import pytest

from central.intel.clones import LEARN_S, learns_from_others
from central.record.duties import DutyKeeper, DutyLost, SoleDuties
from tests.support import UplinkCut

DUTIES = ("retention", "escalation", "webhooks", "feed", "upstream:police")


class Runs:
    """What duty tasks did: who ran which when, and the most that ever ran one duty at once."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, float, float | None]] = []  # (hub, duty, started, ended)
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}

    def work(self, hub: str, duty: str):  # noqa: ANN201
        async def run() -> None:
            self.running[duty] = self.running.get(duty, 0) + 1
            self.most[duty] = max(self.most.get(duty, 0), self.running[duty])
            i = len(self.log)
            self.log.append((hub, duty, time.monotonic(), None))
            try:
                await asyncio.Event().wait()
            finally:
                self.running[duty] -= 1
                self.log[i] = (*self.log[i][:3], time.monotonic())

        return run

    def holders(self, duty: str) -> list[str]:
        return [h for h, d, _, end in self.log if d == duty and end is None]

    def first_start(self, hub: str, duty: str) -> float:
        return min(start for h, d, start, _ in self.log if h == hub and d == duty)

    def last_end(self, hub: str, duty: str) -> float:
        ends = [end for h, d, _, end in self.log if h == hub and d == duty]
        assert None not in ends, f"{hub} still runs {duty}"
        return max(e for e in ends if e is not None)


def keeper_for(store, runs: Runs, beat_s: float, duties: Iterable[str] = DUTIES) -> DutyKeeper:
    keeper = DutyKeeper(store, beat_s)
    for duty in duties:
        keeper.add(duty, runs.work(store.hub, duty))
    return keeper


async def until(predicate, timeout: float = 10.0, what: str = "") -> float:
    """Wait until ``predicate()``; the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- the keeper ------------------------------------------------------------------------------------


class StallingStore:
    """A ``DutyStore`` whose claims can be made to hang (a dead line) or fail (the database refused)."""

    shared = True

    def __init__(self, hub: str, lease_s: float) -> None:
        self.hub = hub
        self.lease_s = lease_s
        self.line = threading.Event()
        self.line.set()
        self.refuse = False
        self.released = False

    def claim(self, duties):  # noqa: ANN001, ANN201
        self.line.wait()
        if self.refuse:
            raise OSError("connection refused")
        return frozenset(duties)

    def fence(self, tx, duty):  # noqa: ANN001, ANN201
        pass

    def release(self):  # noqa: ANN201
        self.released = True


async def test_alone_on_sqlite_the_hub_holds_every_duty_for_good():
    store = SoleDuties("hub-a")
    assert store.lease_s == math.inf and not store.shared
    runs = Runs()
    keeper = keeper_for(store, runs, beat_s=0.05)
    task = asyncio.create_task(keeper.run())
    try:
        await until(lambda: keeper.held() == sorted(DUTIES), what="every duty taken")
        await asyncio.sleep(0.3)
        assert keeper.held() == sorted(DUTIES) and len(runs.log) == len(DUTIES), "never stopped nor restarted"
        store.fence(None, "escalation")  # nothing to wait for, never refused
    finally:
        await stop(task)
    assert all(end is not None for *_, end in runs.log), "every duty task ends with the keeper"


async def test_a_duty_stops_when_no_beat_proves_it_within_the_lease_and_comes_back_with_the_next():
    store = StallingStore("hub-a", lease_s=0.4)
    runs = Runs()
    keeper = keeper_for(store, runs, beat_s=0.1)
    task = asyncio.create_task(keeper.run())
    try:
        await until(lambda: keeper.held() == sorted(DUTIES))
        store.line.clear()  # the next beat hangs, as on a line that died without a word
        cut = time.monotonic()
        await until(lambda: not any(runs.holders(d) for d in DUTIES), timeout=2, what="duties stopped")
        stopped = time.monotonic() - cut
        # the last beat that answered left at most one beat before the cut: the lease runs out by then
        assert stopped <= store.lease_s + 0.15, stopped
        assert keeper.held() == []
        store.line.set()
        await until(lambda: keeper.held() == sorted(DUTIES), what="taken again once a beat answers")
        store.refuse = True  # a beat that fails stops them at once, lease or not
        await until(lambda: keeper.held() == [], timeout=0.5, what="stopped on a failed beat")
        assert keeper.last_error and "refused" in keeper.last_error
        store.refuse = False
        await until(lambda: keeper.held() == sorted(DUTIES))
        assert keeper.last_error is None
    finally:
        await stop(task)
    assert store.released, "a keeper that stops gives its duties back"
    assert max(runs.most.values()) == 1


async def test_a_duty_that_fails_is_started_again():
    store = SoleDuties("hub-a")
    calls = []

    async def flaky() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    keeper = DutyKeeper(store, beat_s=0.05)
    keeper.add("retention", flaky)
    task = asyncio.create_task(keeper.run())
    try:
        await until(lambda: len(calls) == 2 and keeper.holds("retention"))
    finally:
        await stop(task)


# -- PostgreSQL ------------------------------------------------------------------------------------


def pg_duties(dsn: str, hub: str, lease_s: float = 4.0):
    from central.record.postgresql.duties import PgDuties

    return PgDuties(dsn, hub, lease_s=lease_s)


def test_both_duty_stores_have_every_member_of_the_protocol():
    from central.record.postgresql.duties import PgDuties
    from central.record.stores import DutyStore

    wanted = {m for m in vars(DutyStore) if not m.startswith("_")} | set(DutyStore.__annotations__)
    pg = PgDuties("postgresql://unused", "hub-a", lease_s=4.0)  # nothing connects before a claim
    for store in (SoleDuties("hub-a"), pg):
        assert not sorted(m for m in wanted if not hasattr(store, m)), type(store).__name__


def test_one_session_holds_each_duty_and_another_takes_it_when_that_session_ends(pg_dsn):
    a, b = pg_duties(pg_dsn, "hub-a"), pg_duties(pg_dsn, "hub-b")
    try:
        assert a.claim(DUTIES) == frozenset(DUTIES)
        assert b.claim(DUTIES) == frozenset(), "held by hub-a"
        assert a.claim(DUTIES) == frozenset(DUTIES), "a beat keeps what it holds"
        assert b.claim(["retention", "viid"]) == {"viid"}, "a duty nobody holds is free to take"
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            holders = dict(
                conn.execute(
                    "SELECT l.objid::bigint, a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objsubid = 2"
                ).fetchall()
            )
        assert sorted(holders.values()) == ["cordon-hub hub-a duties"] * len(DUTIES) + [
            "cordon-hub hub-b duties"
        ], "the database shows who holds what"
        a._conn.close()  # hub-a's process is gone: its kernel closes the socket, the server ends the session
        taken = time.monotonic()
        while b.claim(DUTIES) != frozenset(DUTIES):
            assert time.monotonic() - taken < 5, "the server did not free hub-a's duties"
            time.sleep(0.01)
        assert a.claim(DUTIES) == frozenset(), "hub-a, back, finds them taken"
    finally:
        a.release()
        b.release()


def test_a_hub_knows_at_each_beat_whether_another_hub_is_alive_on_the_store(pg_dsn):
    """What only several hubs need (the clone check learning the reads the others took, with its plate
    locks) runs while another hub's duty session is alive, and not for a hub alone on its store; once a hub
    had company, the check goes on learning for ``LEARN_S`` (what the other committed stays in the store)."""
    a = pg_duties(pg_dsn, "hub-a")
    assert a.others, "before its first beat a hub assumes company"
    b = pg_duties(pg_dsn, "hub-b")
    try:
        a.claim(DUTIES)
        assert not a.others, "alone"
        assert not learns_from_others(a.others, a.company_at, time.monotonic()), "alone from the start"
        b.claim(["viid"])
        assert b.others
        a.claim(DUTIES)
        assert a.others, "hub-b's session is alive"
        b.release()
        a.claim(DUTIES)
        assert not a.others, "alone again"
        now = time.monotonic()
        assert learns_from_others(a.others, a.company_at, now), "hub-b's reads are still in the look-back"
        assert not learns_from_others(a.others, a.company_at, now + LEARN_S), "a day later they are not"
    finally:
        a.release()
        b.release()


def test_a_duty_session_is_set_to_end_when_its_hub_falls_silent(pg_dsn):
    a = pg_duties(pg_dsn, "hub-a", lease_s=2.0)
    try:
        a.claim(["retention"])
        (timeout,) = a._conn.execute("SHOW idle_session_timeout").fetchone()
        assert timeout == "3s" and a.session_timeout_s == 3.0, "1.5 leases: the hub stops first"
    finally:
        a.release()


@pytest.mark.timeout(30)
def test_fenced_jobs_of_one_duty_take_turns_and_a_hub_without_the_duty_is_refused(pg_dsn):
    a, b = pg_duties(pg_dsn, "hub-a"), pg_duties(pg_dsn, "hub-b")
    try:
        a.claim(["escalation"])
        b.claim(["escalation"])
        with psycopg.connect(pg_dsn) as writer_a, psycopg.connect(pg_dsn) as writer_b:
            a.fence(writer_a, "escalation")  # hub-a's job, inside its transaction (not yet committed)
            refused: list[BaseException] = []

            def b_job() -> None:
                try:
                    b.fence(writer_b, "escalation")
                except BaseException as exc:  # noqa: BLE001
                    refused.append(exc)
                finally:
                    writer_b.rollback()

            thread = threading.Thread(target=b_job)
            thread.start()
            with psycopg.connect(pg_dsn, autocommit=True) as watcher:
                deadline = time.monotonic() + 5
                while not watcher.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()[0]:
                    assert time.monotonic() < deadline, "hub-b's job should wait for hub-a's to end"
                    time.sleep(0.01)
            assert thread.is_alive() and not refused
            writer_a.commit()
            thread.join(5)
            assert len(refused) == 1 and isinstance(refused[0], DutyLost), refused
            # hub-a's duty session ends and hub-b takes the duty: a job hub-a still runs is refused
            a._conn.close()
            deadline = time.monotonic() + 5
            while b.claim(["escalation"]) != {"escalation"}:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with pytest.raises(DutyLost):
                a.fence(writer_a, "escalation")
            writer_a.rollback()  # the refused job is rolled back, its fence with it
            b.fence(writer_b, "escalation")
    finally:
        a.release()
        b.release()


async def test_a_dead_holders_duties_are_taken_over_within_a_beat_and_never_run_twice(pg_dsn):
    beat_s = 0.25
    runs = Runs()
    a = keeper_for(pg_duties(pg_dsn, "hub-a", lease_s=1.0), runs, beat_s)
    b = keeper_for(pg_duties(pg_dsn, "hub-b", lease_s=1.0), runs, beat_s)
    task_a = asyncio.create_task(a.run())
    await until(lambda: a.held() == sorted(DUTIES), what="hub-a takes every duty")
    task_b = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(4 * beat_s)
        assert b.held() == [] and a.held() == sorted(DUTIES), "one holder for each duty"
        # hub-a dies: its tasks end with it and its session with its socket (no release)
        a.store.release = a.store._drop
        await stop(task_a)
        died = time.monotonic()
        await until(lambda: b.held() == sorted(DUTIES), timeout=5, what="hub-b takes over")
        takeover = max(runs.first_start("hub-b", d) for d in DUTIES) - died
        assert takeover <= 2 * beat_s + 0.5, f"taken over {takeover:.2f} s after the holder died"
        print(f"takeover after the holder's session ended: {takeover:.3f} s")
    finally:
        await stop(task_b)
        with contextlib.suppress(asyncio.CancelledError):
            await stop(task_a)
    assert runs.most == dict.fromkeys(DUTIES, 1), "no duty ever ran on two hubs at once"


async def test_a_holder_cut_off_stops_before_the_database_frees_its_duties(pg_dsn):
    """The slow case: the holder's line goes dead without a word. It stops its duties when the lease runs
    out; the server ends its session after 1.5 leases of silence; the other hub takes over then."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    lease_s, beat_s = 1.0, 0.25
    params = conninfo_to_dict(pg_dsn)
    line = await UplinkCut(int(params.get("port", 5432))).start()
    through_line = make_conninfo(pg_dsn, host="127.0.0.1", port=str(line.port))
    runs = Runs()
    a = keeper_for(pg_duties(through_line, "hub-a", lease_s=lease_s), runs, beat_s)
    b = keeper_for(pg_duties(pg_dsn, "hub-b", lease_s=lease_s), runs, beat_s)
    task_a = asyncio.create_task(a.run())
    await until(lambda: a.held() == sorted(DUTIES), what="hub-a takes every duty")
    task_b = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(2 * beat_s)
        line.cut()
        cut = time.monotonic()
        await until(lambda: b.held() == sorted(DUTIES), timeout=10, what="hub-b takes over")
        for duty in DUTIES:
            stopped, taken = runs.last_end("hub-a", duty) - cut, runs.first_start("hub-b", duty) - cut
            assert stopped <= lease_s + 0.2, f"{duty}: hub-a ran on {stopped:.2f} s after its line died"
            assert stopped < taken, f"{duty}: hub-b started it at {taken:.2f} s, before hub-a stopped"
            assert taken <= 1.5 * lease_s + 2 * beat_s + 0.5, f"{duty} taken over {taken:.2f} s after the cut"
        print(f"cut off: hub-a stopped after {stopped:.3f} s, hub-b took over after {taken:.3f} s")
        line.restore()
        await asyncio.sleep(4 * beat_s)
        assert a.held() == [] and b.held() == sorted(DUTIES), "hub-a, back on line, finds them taken"
    finally:
        await stop(task_b)
        await stop(task_a)
        await line.close()
    assert runs.most == dict.fromkeys(DUTIES, 1)


# -- the hub ---------------------------------------------------------------------------------------


async def test_alone_the_hub_runs_every_duty_and_says_so(aiohttp_client, tmp_path, dead_broker_url):
    from central.app import create_app
    from central.settings import (
        ClusterSettings,
        HubSettings,
        MetricsSettings,
        MqttSettings,
        UpstreamSettings,
        WebhookSettings,
    )
    from central.web import keys

    police = tmp_path / "police.csv"
    police.write_text("plate,reason\n鲁Q8K2L1,线索\n", encoding="utf-8")
    settings = HubSettings(
        data_dir=str(tmp_path / "hub"),
        mqtt=MqttSettings(url=dead_broker_url),
        metrics=MetricsSettings(token="scrape"),
        cluster=ClusterSettings(name="hub-a"),
        upstream=[UpstreamSettings(name="police", list_id="police", path=str(police))],
        webhooks=[WebhookSettings(name="sms", url="http://127.0.0.1:1/hook")],
    )
    client = await aiohttp_client(create_app(settings))
    expected = ["escalation", "evidence", "feed", "retention", "upstream:police", "webhooks"]
    await until(lambda: client.app[keys.DUTIES].held() == expected, what="every duty held")
    body = await (await client.get("/api/v1/health")).json()
    assert body["hub"] == "hub-a" and body["duties"] == expected and body["status"] == "degraded"
    assert body["reasons"] == [r for r in body["reasons"] if r.startswith("broker")], "the duties are fine"
    text = await (await client.get("/metrics", headers={"Authorization": "Bearer scrape"})).text()
    for duty in expected:
        assert f'cordon_hub_duty{{duty="{duty}"}} 1' in text
    # the upstream source's duty ran: its list was applied
    await until(lambda: len(client.app[keys.WATCHLISTS]) == 1, what="the upstream list applied")


def test_a_hub_is_named_by_its_host_and_port_unless_named():
    import socket

    from central.settings import ClusterSettings, HubSettings, load_settings
    from runtime.config import SettingsError

    assert HubSettings().hub_name == f"{socket.gethostname()}:8080"
    assert HubSettings(cluster=ClusterSettings(name="hub-7")).hub_name == "hub-7"
    with pytest.raises(SettingsError, match="duty_lease_s"):
        load_settings(None, {"CORDON_HUB_CLUSTER__DUTY_LEASE_S": "1", "CORDON_HUB_CLUSTER__DUTY_BEAT_S": "1"})


async def test_the_feed_holder_publishes_every_hubs_versions_in_order(tmp_path):
    """Versions another hub commits (here: a second service on the same store, not publishing) reach the
    broker from the holder, from the feed's log, in version order with its own."""
    from central.record.sqlite.store import HubStore
    from central.watchlists.index import HubWatchlists
    from central.watchlists.lists import ListService
    from protocols import topics
    from protocols.feed import EntryUpsert, FeedDelta, FeedVersion, ListUpsert
    from protocols.matching import Entry, Watchlist
    from protocols.messages import decode

    store = HubStore(tmp_path / "hub.db")
    store.start()
    published: list[tuple[str, int]] = []

    def publish(topic: str, payload: bytes, **kw) -> None:  # noqa: ANN003
        kind = FeedDelta if topic == topics.feed_delta() else FeedVersion
        published.append(("delta" if kind is FeedDelta else "version", decode(kind, payload).version))

    ours = ListService(store, HubWatchlists(), publish, feed_duty=True)
    theirs = ListService(
        store, HubWatchlists(), lambda *a, **k: pytest.fail("not the holder"), feed_duty=True
    )
    ours.load()
    theirs.load()

    def change(n: int) -> list:
        entry = Entry(entry_id=f"drugs:{n}", list_id="drugs", plate=f"鲁A1234{n}")
        return [ListUpsert(watchlist=Watchlist(list_id="drugs", name="涉毒")), EntryUpsert(entry=entry)]

    duty = asyncio.create_task(ours.feed.run(poll_s=0.05))
    try:
        await until(lambda: published == [("version", 0)], what="the store's version announced")
        await theirs.apply(change(1), "t")
        await theirs.apply(change(2), "t")
        await until(lambda: ("version", 2) in published, what="their versions published")
        await ours.apply(change(3), "t")  # the next version: out at once
        assert published[-2:] == [("delta", 3), ("version", 3)]
        await theirs.apply(change(4), "t")
        await ours.apply(change(5), "t")  # 4 not yet published: 5 waits for it
        await until(lambda: ("version", 5) in published, what="4 and 5 published")
    finally:
        await stop(duty)
        store.stop()
    deltas = [v for kind, v in published if kind == "delta"]
    assert deltas == [1, 2, 3, 4, 5], published
    versions = [v for kind, v in published if kind == "version"]
    assert versions == sorted(versions), f"the retained version went back: {published}"
    assert not ours.feed.holding and ours.feed.published is None, "the duty's end stops publication"
