"""The edge's watchlist mirror: in-order deltas, stale and gap detection, snapshot replacement, restart."""

import random
import sqlite3
import time
import zlib

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


# -- a new feed file over a mirror that holds a feed: only the difference is applied -------------


def _rows(path):
    conn = sqlite3.connect(path)
    try:
        return (
            sorted(conn.execute("SELECT entry_id, list_id, body FROM entries")),
            sorted(conn.execute("SELECT list_id, body FROM lists")),
            sorted(conn.execute("SELECT key, value FROM meta")),
        )
    finally:
        conn.close()


def _read_of(plate):
    """A read that a plate (or a wildcard pattern) answers: wildcards filled with a digit."""
    return plate.replace("*", "7").replace("?", "8")


def _all_hits(mirror, reads, now):
    import msgspec

    out = {}
    for read in reads:
        for colour, vtype in ((None, None), ("blue", "truck")):
            hs = mirror.match(read, now=now, colour=colour, vehicle_type=vtype)
            out[read, colour, vtype] = sorted(msgspec.json.encode(h) for h in hs)
    return out


async def _assert_same_as_fresh(a, b, a_path, b_path, reads, persons):
    now = 1_790_000_000.0 + 30 * 86_400
    assert _rows(a_path) == _rows(b_path)
    assert (a.version, len(a), a.lists, a.permit_rules) == (b.version, len(b), b.lists, b.permit_rules)
    assert len(a.index) == len(b.index)
    hits_a, hits_b = _all_hits(a, reads, now), _all_hits(b, reads, now)
    assert hits_a == hits_b
    assert sum(1 for h in hits_a.values() if h) > len(reads) // 4  # the sample does match things
    for id_hash in persons:
        assert await a.match_person(id_hash, now=now) == await b.match_person(id_hash, now=now)


def _feed_pair(seed=5):
    """Two versions of a realistic feed: the second removes, changes and adds entries (plates,
    wildcard patterns, person entries), changes a list and the permit rules."""
    import msgspec

    from cordon.testing import realistic_feed
    from protocols.matching import PermitRule

    lists, entries = realistic_feed(3000, seed=seed)
    entries.append(Entry(entry_id="odd-id-1", list_id="bench-notify", plate="鲁B12345", valid_from=1.5))
    rules1 = [PermitRule(rule_id="a", list_id="bench-notify", colours=frozenset({"yellow"}))]
    rng = random.Random(seed)
    kept = entries[:]
    rng.shuffle(kept)
    removed, changed, rest = kept[:120], kept[120:240], kept[240:]
    changed = [
        msgspec.structs.replace(e, reason="新的理由", colour=None if e.colour else "white", valid_until=None)
        for e in changed
    ]
    _, extra = realistic_feed(3400, seed=seed + 100)
    added = [e for e in extra if e.entry_id not in {x.entry_id for x in entries}][-300:]
    assert any("*" in e.plate or "?" in e.plate for e in added + changed)
    assert any(e.list_id == "bench-persons" for e in added + changed + removed)
    lists2 = [
        msgspec.structs.replace(wl, priority=wl.priority + 1) if wl.list_id == "bench-notify" else wl
        for wl in lists
    ]
    rules2 = [PermitRule(rule_id="a", list_id="bench-notify", vehicle_types=frozenset({"truck"}))]
    entries2 = rest + changed + added
    reads = sorted({_read_of(e.plate) for e in rng.sample(entries, 300) + removed + changed + added})
    reads = [r for r in reads if not r.startswith("scrypt")]
    persons = [e.plate for e in removed + changed + added if e.list_id == "bench-persons"]
    return (lists, entries, rules1), (lists2, entries2, rules2), reads, persons


async def _fresh(tmp_path, name, version, feed):
    from protocols import feedfile

    f = tmp_path / f"{name}.feed"
    f.write_bytes(feedfile.build(version, feed[0], feed[1], feed[2]))
    m = Mirror(tmp_path / f"{name}.db")
    m.start()
    assert (await m.replace_file(f))[0]
    return m


async def test_a_new_file_over_a_full_mirror_applies_the_difference_and_equals_a_fresh_load(tmp_path):
    from protocols import feedfile

    feed1, feed2, reads, persons = _feed_pair()
    a = await _fresh(tmp_path, "a", 5, feed1)
    # a delta on top (the file's version skips past it, as after a gap)
    assert (
        await a.apply_delta(delta(6, EntryUpsert(entry=entry("鲁A99999", "bench-notify")))) is Applied.APPLIED
    )
    b = await _fresh(tmp_path, "b", 9, feed2)
    try:
        index = a.index
        f2 = tmp_path / "new.feed"
        f2.write_bytes(feedfile.build(9, *feed2))
        installed, version, count = await a.replace_file(f2)
        assert (installed, version, count) == (True, 9, len(feed2[1]))
        assert a.index is index  # changed in place: the old and a new index never existed at once
        await _assert_same_as_fresh(a, b, tmp_path / "a.db", tmp_path / "b.db", reads + ["鲁A99999"], persons)
        # an older or the same file again changes nothing
        assert (await a.replace_file(f2))[0] is False
        # and the mirror file restarts into the same mirror
        a.stop()
        a = Mirror(tmp_path / "a.db")
        a.start()
        await _assert_same_as_fresh(a, b, tmp_path / "a.db", tmp_path / "b.db", reads, persons)
    finally:
        a.stop()
        b.stop()


async def test_a_file_that_fails_half_way_leaves_the_mirror_as_it_was(tmp_path):
    import msgspec

    from protocols import feedfile

    feed1, feed2, reads, persons = _feed_pair()
    a = await _fresh(tmp_path, "a", 5, feed1)
    b = await _fresh(tmp_path, "b", 5, feed1)
    try:
        cols = feedfile.columns(feedfile.build(9, *feed2))
        codes = bytearray(cols.list_code)
        codes[-4:] = (9999).to_bytes(4, "little")  # the last entry names no list: found only at the end
        cols.list_code = bytes(codes)
        bad = tmp_path / "bad.feed"
        bad.write_bytes(feedfile.MAGIC + zlib.compress(msgspec.msgpack.encode(cols)))
        with pytest.raises(feedfile.FeedFileError):
            await a.replace_file(bad)
        await _assert_same_as_fresh(a, b, tmp_path / "a.db", tmp_path / "b.db", reads, persons)
    finally:
        a.stop()
        b.stop()


def _big_difference(feed, seed=8):
    """The feed with most of its entries changed, removed or added (far past what deltas'
    overlay takes before compacting)."""
    import msgspec

    from cordon.testing import realistic_feed

    lists, entries, rules = feed
    rng = random.Random(seed)
    kept = [e for e in entries if rng.random() < 0.6]
    changed = [msgspec.structs.replace(e, reason="大改") if i % 2 else e for i, e in enumerate(kept)]
    _, extra = realistic_feed(2000, seed=seed + 300)
    ids = {e.entry_id for e in entries}
    return lists, changed + [e for e in extra if e.entry_id not in ids], rules


@pytest.mark.parametrize("small_change", [0, 100_000], ids=["merged", "through-the-overlay"])
@pytest.mark.parametrize("why", ["large", "person-flip", "person-unflip"])
async def test_a_large_difference_or_a_person_flip_changes_the_index_in_place(
    tmp_path, monkeypatch, why, small_change
):
    """Whatever the difference, the index takes it in place (no second index) and answers exactly
    as a mirror filled from the new file: entries of a list that became ``person`` leave the plate
    index, those of a list that stopped being one join it. Both ways a change is made: merged into
    the base, or (up to ``SMALL_CHANGE`` entries) through the overlay as deltas are."""
    monkeypatch.setattr("protocols.plateindex.SMALL_CHANGE", small_change)
    import msgspec

    from protocols import feedfile
    from protocols.matching import ListKind

    feed1, feed2, reads, persons = _feed_pair()

    def as_person(feed, list_id, kind):
        lists = [msgspec.structs.replace(wl, kind=kind) if wl.list_id == list_id else wl for wl in feed[0]]
        return (lists, feed[1], feed[2])

    if why == "large":
        feed2 = _big_difference(feed2)
        reads = reads + sorted({_read_of(e.plate) for e in feed2[1][::7] if e.list_id != "bench-persons"})
    elif why == "person-flip":
        feed2 = as_person(feed2, "bench-notify", ListKind.PERSON)
    else:
        feed2 = as_person(feed2, "bench-persons", ListKind.VEHICLE)
        reads = reads + [e.plate for e in feed2[1] if e.list_id == "bench-persons"][:50]
    a = await _fresh(tmp_path, "a", 5, feed1)
    b = await _fresh(tmp_path, "b", 9, feed2)
    try:
        index = a.index
        f2 = tmp_path / "new.feed"
        f2.write_bytes(feedfile.build(9, *feed2))
        assert (await a.replace_file(f2))[0]
        assert a.index is index
        await _assert_same_as_fresh(a, b, tmp_path / "a.db", tmp_path / "b.db", reads, persons)
    finally:
        a.stop()
        b.stop()


async def test_reads_during_a_large_replace_see_every_entry_the_two_feeds_share(tmp_path):
    """While a file with a large difference replaces the mirror, reads go on being matched, and
    every answer is the whole old state's or the whole new one's: an entry both feeds hold answers
    each of them."""
    import asyncio

    from protocols import feedfile

    feed1, _, _, _ = _feed_pair()
    feed2 = _big_difference(feed1, seed=11)
    a = await _fresh(tmp_path, "a", 5, feed1)
    b = await _fresh(tmp_path, "b", 9, feed2)
    now = 1_790_000_000.0 + 30 * 86_400

    def answer(m, read):
        return sorted(h.entry_id for h in m.match(read, now=now, colour=None, vehicle_type=None))

    try:
        before = {e.entry_id for e in feed1[1]}
        reads = sorted(
            {_read_of(e.plate) for e in feed2[1][::5] + feed1[1][::5] if e.list_id != "bench-persons"}
        )
        old = {r: answer(a, r) for r in reads}
        new = {r: answer(b, r) for r in reads}
        shared = [r for r in reads if set(old[r]) & set(new[r]) & before]
        assert len(shared) > 100 and sum(old[r] != new[r] for r in reads) > 100
        f2 = tmp_path / "new.feed"
        f2.write_bytes(feedfile.build(9, *feed2))
        replacing = asyncio.create_task(a.replace_file(f2))
        rounds = 0
        while not replacing.done():
            for r in reads:
                assert answer(a, r) in (old[r], new[r]), r
            rounds += 1
            await asyncio.sleep(0)
        assert (await replacing)[0]
        assert rounds > 3  # the reads did run while the index changed
        assert {r: answer(a, r) for r in reads} == new
    finally:
        a.stop()
        b.stop()
