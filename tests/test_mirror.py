"""The edge's watchlist mirror: in-order deltas, stale and gap detection, snapshot replacement, restart."""

import time

import pytest

from edge.mirror import Applied, Mirror
from protocols.feed import EntryDelete, EntryUpsert, FeedDelta, FeedSnapshot, ListDelete, ListUpsert
from protocols.matching import Entry, ListKind, Watchlist

WL = Watchlist(list_id="drugs", name="涉毒")


def entry(plate, list_id="drugs"):
    return Entry(entry_id=f"{list_id}:{plate}", list_id=list_id, plate=plate, reason="线索")


def delta(version, *changes):
    return FeedDelta(v=1, version=version, changes=list(changes))


def hits(mirror, plate):
    return [h.entry_id for h in mirror.match(plate, now=time.time(), colour=None, vehicle_type=None)]


@pytest.fixture
def mirror(tmp_path):
    m = Mirror(tmp_path / "mirror.db")
    m.start()
    yield m
    m.stop()


async def test_deltas_apply_in_order_stale_ignored_gap_reported(mirror):
    assert (
        await mirror.apply_delta(delta(1, ListUpsert(watchlist=WL), EntryUpsert(entry=entry("鲁A12345"))))
        is Applied.APPLIED
    )
    assert hits(mirror, "鲁A12345") == ["drugs:鲁A12345"]
    assert await mirror.apply_delta(delta(1, EntryDelete(entry_id="drugs:鲁A12345"))) is Applied.STALE
    assert hits(mirror, "鲁A12345") == ["drugs:鲁A12345"], "a stale delta changes nothing"
    assert await mirror.apply_delta(delta(3, EntryUpsert(entry=entry("鲁B22222")))) is Applied.GAP
    assert hits(mirror, "鲁B22222") == [] and mirror.version == 1
    assert await mirror.apply_delta(delta(2, EntryDelete(entry_id="drugs:鲁A12345"))) is Applied.APPLIED
    assert hits(mirror, "鲁A12345") == [] and mirror.version == 2
    assert (await mirror.entry("drugs:鲁A12345")) is None


async def test_list_delete_removes_its_entries(mirror):
    await mirror.apply_delta(delta(1, ListUpsert(watchlist=WL), EntryUpsert(entry=entry("鲁A12345"))))
    await mirror.apply_delta(delta(2, ListDelete(list_id="drugs")))
    assert hits(mirror, "鲁A12345") == [] and "drugs" not in mirror.lists


async def test_snapshot_replaces_everything_and_survives_a_restart(tmp_path):
    m = Mirror(tmp_path / "m.db")
    m.start()
    await m.apply_delta(delta(1, ListUpsert(watchlist=WL), EntryUpsert(entry=entry("鲁A12345"))))
    await m.replace(FeedSnapshot(version=9, watchlists=[WL], entries=[entry("鲁C33333")]))
    assert hits(m, "鲁A12345") == [] and hits(m, "鲁C33333") == ["drugs:鲁C33333"]
    m.stop()
    again = Mirror(tmp_path / "m.db")
    again.start()
    try:
        assert again.version == 9 and hits(again, "鲁C33333") == ["drugs:鲁C33333"]
        assert (await again.entry("drugs:鲁C33333")).reason == "线索"
    finally:
        again.stop()


async def test_permit_rules_reach_the_mirror_and_survive_a_restart(tmp_path):
    from protocols.feed import PermitRules
    from protocols.matching import ListKind, PermitRule

    m = Mirror(tmp_path / "m.db")
    m.start()
    rule = PermitRule(
        rule_id="hazmat",
        list_id="permits",
        colours=frozenset({"yellow"}),
        vehicle_types=frozenset({"hazmat"}),
    )
    await m.apply_delta(
        delta(
            1,
            ListUpsert(watchlist=Watchlist(list_id="permits", name="p", kind=ListKind.PERMIT)),
            EntryUpsert(entry=entry("鲁H12345", "permits")),
            PermitRules(rules=[rule]),
        )
    )
    m.stop()
    again = Mirror(tmp_path / "m.db")
    again.start()
    try:
        flagged = again.match("鲁H99999", now=time.time(), colour="yellow", vehicle_type="hazmat")
        assert [h.entry_id for h in flagged] == ["hazmat"]
        assert again.match("鲁H12345", now=time.time(), colour="yellow", vehicle_type="hazmat") == []
    finally:
        again.stop()


async def test_an_older_snapshot_never_moves_the_mirror_back(mirror):
    await mirror.apply_delta(delta(1, ListUpsert(watchlist=WL), EntryUpsert(entry=entry("鲁A12345"))))
    await mirror.apply_delta(delta(2, EntryDelete(entry_id="drugs:鲁A12345")))
    stale = FeedSnapshot(version=1, watchlists=[WL], entries=[entry("鲁A12345")])
    assert await mirror.replace(stale) is False
    assert mirror.version == 2 and hits(mirror, "鲁A12345") == [], "a deleted entry must not come back"


PERSONS = Watchlist(list_id="wanted", name="在逃", kind=ListKind.PERSON)
ID_HASH = "scrypt$n=32768,r=8,p=1$" + "ab" * 32


async def test_person_entries_are_counted_and_found_but_never_indexed_for_plates(tmp_path):
    """Person entries stay in the mirror's file (match_person reads them there), not in the plate
    index: the index is the edge's memory, and a person entry never answers a plate read anyway."""
    m = Mirror(tmp_path / "mirror.db")
    m.start()
    try:
        snapshot = FeedSnapshot(
            version=3, watchlists=[WL, PERSONS], entries=[entry("鲁A12345"), entry(ID_HASH, "wanted")]
        )
        assert await m.replace(snapshot)
        assert len(m) == 2 and len(m.index) == 1
        assert [e.entry_id for e in await m.match_person(ID_HASH, now=time.time())] == [f"wanted:{ID_HASH}"]
        assert hits(m, ID_HASH) == []
        other = "scrypt$n=32768,r=8,p=1$" + "cd" * 32
        assert await m.apply_delta(delta(4, EntryUpsert(entry=entry(other, "wanted")))) is Applied.APPLIED
        assert len(m) == 3 and len(m.index) == 1
        assert await m.apply_delta(delta(5, EntryDelete(entry_id=f"wanted:{ID_HASH}"))) is Applied.APPLIED
        assert len(m) == 2
        # a vehicle list that becomes a person list: its entries leave the plate index
        flipped = Watchlist(list_id="drugs", name="涉毒", kind=ListKind.PERSON)
        assert await m.apply_delta(delta(6, ListUpsert(watchlist=flipped))) is Applied.APPLIED
        assert hits(m, "鲁A12345") == [] and len(m.index) == 0 and len(m) == 2
        assert await m.apply_delta(delta(7, ListUpsert(watchlist=WL))) is Applied.APPLIED
        assert hits(m, "鲁A12345") == ["drugs:鲁A12345"] and len(m) == 2
    finally:
        m.stop()
    again = Mirror(tmp_path / "mirror.db")
    again.start()
    try:
        assert len(again) == 2 and len(again.index) == 1 and again.version == 7
    finally:
        again.stop()
