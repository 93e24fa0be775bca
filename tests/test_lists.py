"""Hub watchlist changes: storage, feed versions, and what the field feed may carry."""

import pytest

from central.record.sqlite.store import HubStore
from central.record.sqlite.watchlists import apply_changes, versioned_snapshot
from central.watchlists import lists as lists_mod
from central.watchlists.index import HubWatchlists
from central.watchlists.lists import ListService, NotFound
from protocols import topics
from protocols.feed import EntryDelete, EntryUpsert, FeedDelta, FeedVersion, ListDelete, ListUpsert
from protocols.matching import Entry, ListAction, Watchlist
from protocols.messages import decode

DRUGS = Watchlist(list_id="drugs", name="涉毒", action=ListAction.INTERCEPT)
COVERT = Watchlist(list_id="case", name="专案", action=ListAction.COVERT)


def entry(plate, list_id="drugs"):
    return Entry(entry_id=f"{list_id}:{plate}", list_id=list_id, plate=plate)


@pytest.fixture
def service(tmp_path):
    store = HubStore(tmp_path / "hub.db")
    store.start()
    published = []
    svc = ListService(
        store, HubWatchlists(), lambda topic, payload, **kw: published.append((topic, payload, kw))
    )
    svc.load()
    yield svc, published
    store.stop()


def deltas(published):
    return [decode(FeedDelta, p) for t, p, _ in published if t == topics.feed_delta()]


async def test_field_changes_get_versions_and_are_published(service):
    svc, published = service
    applied = await svc.apply([ListUpsert(watchlist=DRUGS), EntryUpsert(entry=entry("鲁A12345"))], "t")
    assert applied.version == 1
    (d,) = deltas(published)
    assert d.version == 1 and len(d.changes) == 2
    (topic, payload, kw) = published[-1]
    assert topic == topics.feed_version() and kw["retain"] is True
    assert decode(FeedVersion, payload).version == 1
    assert [h.entry_id for h in svc.watchlists.match("鲁A1234S", now=0, colour=None, vehicle_type=None)] == [
        "drugs:鲁A12345"
    ]


async def test_covert_lists_never_enter_the_feed(service):
    svc, published = service
    applied = await svc.apply(
        [ListUpsert(watchlist=COVERT), EntryUpsert(entry=entry("鲁A0K88B", "case"))], "t"
    )
    assert applied.version == 0 and deltas(published) == []
    assert svc.watchlists.match("鲁A0K88B", now=0, colour=None, vehicle_type=None), "the hub still matches it"
    snapshot = svc.store.read(versioned_snapshot)[1]
    assert b"case" not in snapshot


async def test_a_list_leaving_or_joining_the_feed(service):
    svc, published = service
    await svc.apply([ListUpsert(watchlist=DRUGS), EntryUpsert(entry=entry("鲁A12345"))], "t")
    covert_now = Watchlist(list_id="drugs", name="涉毒", action=ListAction.COVERT)
    await svc.apply([ListUpsert(watchlist=covert_now)], "t")
    assert isinstance(deltas(published)[-1].changes[0], ListDelete)
    await svc.apply([ListUpsert(watchlist=DRUGS)], "t")
    back = deltas(published)[-1].changes
    assert isinstance(back[0], ListUpsert) and [c.entry.plate for c in back[1:]] == ["鲁A12345"]


async def test_unknown_list_or_entry_is_refused_and_nothing_changes(service):
    svc, published = service
    with pytest.raises(NotFound):
        await svc.apply([EntryUpsert(entry=entry("鲁A12345", "nope"))], "t")
    with pytest.raises(NotFound):
        await svc.apply([EntryDelete(entry_id="x")], "t")
    assert published == [] and len(svc.watchlists) == 0


async def test_bulk_change_goes_out_as_a_version_only(service, monkeypatch):
    svc, published = service
    monkeypatch.setattr(lists_mod, "MAX_DELTA_CHANGES", 3)
    monkeypatch.setattr(lists_mod, "REBUILD_ABOVE", 3)
    changes = [ListUpsert(watchlist=DRUGS)] + [EntryUpsert(entry=entry(f"鲁A1234{i}")) for i in range(5)]
    applied = await svc.apply(changes, "t")
    assert deltas(published) == [], "too big for one MQTT message: edges take a snapshot instead"
    assert decode(FeedVersion, published[-1][1]).version == applied.version == 1
    assert len(svc.watchlists) == 5


def test_apply_changes_is_all_or_nothing_in_a_transaction(tmp_path):
    store = HubStore(tmp_path / "hub.db")
    store.start()
    try:
        wl = HubWatchlists()
        fut = store.submit(
            lambda db: apply_changes(
                db, [ListUpsert(watchlist=DRUGS), EntryUpsert(entry=entry("鲁A1", "missing"))], wl, "t"
            )
        )
        with pytest.raises(NotFound):
            fut.result(5)
        assert store.read(lambda db: db.conn.execute("SELECT count(*) FROM wl_lists").fetchone()[0]) == 0
    finally:
        store.stop()


async def test_permit_rules_flag_watched_vehicles_without_a_permit(service):
    from protocols.feed import PermitRules
    from protocols.matching import ListKind, PermitRule

    svc, published = service
    permits = Watchlist(list_id="precursor-permits", name="易制毒运输许可", kind=ListKind.PERMIT)
    rule = PermitRule(
        rule_id="hazmat-yellow",
        list_id="precursor-permits",
        colours=frozenset({"yellow"}),
        vehicle_types=frozenset({"hazmat"}),
        permit_name="易制毒化学品运输许可证",
    )
    await svc.apply(
        [
            ListUpsert(watchlist=permits),
            EntryUpsert(entry=entry("鲁H12345", "precursor-permits")),
            PermitRules(rules=[rule]),
        ],
        "t",
    )
    match = svc.watchlists.match
    (hit,) = match("鲁H99999", now=0, colour="yellow", vehicle_type="hazmat")
    assert hit.entry_id == "hazmat-yellow" and "鲁H99999" in hit.explanation
    assert match("鲁H12345", now=0, colour="yellow", vehicle_type="hazmat") == [], "licensed vehicle"
    assert match("鲁H99999", now=0, colour="blue", vehicle_type="car") == [], "not a watched class"
    assert isinstance(deltas(published)[-1].changes[-1], PermitRules), "edges get the rules too"
    assert b"hazmat-yellow" in svc.store.read(versioned_snapshot)[1]


async def test_a_hub_follows_the_list_changes_another_hub_made_in_order(tmp_path, monkeypatch):
    """Two hubs' indexes over one store (two ListServices on one hub.db stand for two hubs on one
    database): each follows the other's changes from the log, covert lists included, and a change of
    its own made before it had followed an earlier one of the other's ends where the store does."""
    from central.watchlists.follow import ListFollower

    store = HubStore(tmp_path / "hub.db")
    store.start()
    try:
        a = ListService(store, HubWatchlists(), lambda *args, **kw: None)
        b = ListService(store, HubWatchlists(), lambda *args, **kw: None)
        a.load()
        b.load()
        versions: list[int] = []
        follow_b = ListFollower(store, b.watchlists, on_version=versions.append)
        follow_a = ListFollower(store, a.watchlists)

        def hits(svc, plate):
            return [h.entry_id for h in svc.watchlists.match(plate, now=0, colour=None, vehicle_type=None)]

        await a.apply([ListUpsert(watchlist=COVERT), EntryUpsert(entry=entry("鲁A0K88B", "case"))], "a")
        assert hits(b, "鲁A0K88B") == [] and b.watchlists.position == 0
        assert await follow_b.catch_up() is False  # all read: nothing more
        assert hits(b, "鲁A0K88B") == ["case:鲁A0K88B"] and b.watchlists.position == 1
        assert versions == []  # a covert list moves no feed version
        # Hub a changes an entry (position 2); hub b, not having followed it, changes the same entry
        # back (position 3): applied out of order, b's own change is applied again after a's.
        moved = Entry(entry_id="case:鲁A0K88B", list_id="case", plate="鲁B77777")
        await a.apply([EntryUpsert(entry=moved), EntryUpsert(entry=entry("鲁C12121", "case"))], "a")
        await b.apply([EntryUpsert(entry=entry("鲁A0K88B", "case"))], "b")
        assert b.watchlists.position == 1  # its own change is not next to what it holds
        await follow_b.catch_up()
        await follow_a.catch_up()
        assert b.watchlists.position == a.watchlists.position == 3
        for svc in (a, b):  # both as the store: the entry as b left it last
            assert hits(svc, "鲁A0K88B") == ["case:鲁A0K88B"] and hits(svc, "鲁B77777") == []
            assert hits(svc, "鲁C12121") == ["case:鲁C12121"]  # the rest of a's change
        await a.apply([ListUpsert(watchlist=DRUGS), EntryUpsert(entry=entry("鲁A12345"))], "a")
        await follow_b.catch_up()
        assert versions == [1] and b.watchlists.index.feed_version == 1  # the feed file is told
        # Too far behind the log (it keeps LOG_KEEP changes): hub b loads its index anew.
        await a.apply([EntryDelete(entry_id="drugs:鲁A12345")], "a")
        await a.apply([EntryUpsert(entry=entry("鲁A54321"))], "a")
        store.submit(lambda db: db.conn.execute("DELETE FROM list_changes WHERE position <= 5")).result()
        await follow_b.catch_up()
        assert follow_b.reloads == 1 and b.watchlists.position == 6
        assert hits(b, "鲁A12345") == [] and hits(b, "鲁A54321") == ["drugs:鲁A54321"]
    finally:
        store.stop()


async def test_a_hub_follows_a_list_change_that_was_not_logged(tmp_path):
    """A hub of a release before the log of list changes (a rolling upgrade) changes the lists without
    logging them: the feed version moves with nothing in the log, and a follower loads its index anew,
    once."""
    from central.watchlists.follow import ListFollower

    store = HubStore(tmp_path / "hub.db")
    store.start()
    try:
        a = ListService(store, HubWatchlists(), lambda *args, **kw: None)
        b = ListService(store, HubWatchlists(), lambda *args, **kw: None)
        a.load()
        b.load()
        follow_b = ListFollower(store, b.watchlists)
        await a.apply([ListUpsert(watchlist=DRUGS), EntryUpsert(entry=entry("鲁A12345"))], "a")

        def unlog(db) -> None:  # what the older release leaves: the change, its feed version, no log
            db.conn.execute("DELETE FROM list_changes")
            db.conn.execute("UPDATE hub_meta SET value = '0' WHERE key = 'list_change_position'")

        store.submit(unlog).result()
        assert b.watchlists.index.feed_version == 0
        assert await follow_b.catch_up() is False
        assert follow_b.reloads == 1 and b.watchlists.index.feed_version == 1
        assert [
            h.entry_id for h in b.watchlists.match("鲁A12345", now=0, colour=None, vehicle_type=None)
        ] == ["drugs:鲁A12345"]
        await follow_b.catch_up()
        assert follow_b.reloads == 1  # caught up: not again
    finally:
        store.stop()
