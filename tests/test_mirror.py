"""The edge's watchlist mirror: in-order deltas, stale and gap detection, snapshot replacement, restart."""

import time

import pytest

from edge.mirror import Applied, Mirror
from protocols.feed import EntryDelete, EntryUpsert, FeedDelta, FeedSnapshot, ListDelete, ListUpsert
from protocols.matching import Entry, Watchlist

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
