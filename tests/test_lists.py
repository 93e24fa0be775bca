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
