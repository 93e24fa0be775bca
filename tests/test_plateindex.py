"""The fast watchlist index equals the reference (match_one over every entry), deltas included."""

from __future__ import annotations

import math
import random

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.matching import (
    ALL_KINDS,
    Entry,
    ListAction,
    ListKind,
    MatchKind,
    PermitRule,
    Watchlist,
)
from protocols.permits import check_permit
from protocols.plateindex import PlateIndex, fits_base
from protocols.reference import ReferenceIndex

NOW = 1_700_000_000.0
SERIAL = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789" + "0OD8B2Z5S"  # look-alikes over-represented
PROVINCES = "鲁鲁鲁鲁晋京苏"
LOOKALIKE = {
    "0": "ODQ",
    "O": "0DQ",
    "D": "0OQ",
    "Q": "0OD",
    "1": "I",
    "2": "Z",
    "Z": "2",
    "5": "S",
    "S": "5",
    "6": "G",
    "G": "6",
    "8": "B",
    "B": "8",
}


def rand_plate(rng: random.Random) -> str:
    n = 6 if rng.random() < 0.15 else 5
    head = rng.choice(PROVINCES) if rng.random() < 0.97 else ""
    return head + rng.choice("ABCDEFG") + "".join(rng.choice(SERIAL) for _ in range(n))


def rand_pattern(rng: random.Random) -> str:
    p = list(rand_plate(rng))
    for _ in range(rng.randint(1, 2)):
        p[rng.randrange(1, len(p))] = "?"
    if rng.random() < 0.5:
        i = rng.randrange(1, len(p) - 1)
        p[i : i + rng.randint(0, 3)] = ["*"]
    if rng.random() < 0.1:
        p = ["*"] + p[2:]
    return "".join(p)


def misread(plate: str, rng: random.Random) -> str:
    if rng.random() < 0.25:  # two errors: e.g. a province error and a look-alike swap
        plate = _misread_once(plate, rng)
    return _misread_once(plate, rng)


def _misread_once(plate: str, rng: random.Random) -> str:
    p = list(plate)
    what = rng.randrange(7)
    i = rng.randrange(len(p)) if p else 0
    if what == 0 and p:  # look-alike swaps
        for j in rng.sample(range(len(p)), min(len(p), rng.randint(1, 3))):
            if p[j] in LOOKALIKE:
                p[j] = rng.choice(LOOKALIKE[p[j]])
    elif what == 1 and p:
        p[i] = rng.choice(SERIAL)
    elif what == 2:
        p.insert(i, rng.choice(SERIAL))
    elif what == 3 and p:
        del p[i]
    elif what == 4 and p:
        p[0] = rng.choice("晋京苏浙X")
    elif what == 5 and p:
        del p[0]
    return "".join(p)


def make_feed(rng: random.Random, n: int) -> tuple[list[Watchlist], list[Entry]]:
    lists = [
        Watchlist(list_id="hot", name="hot", priority=90, alert_kinds=ALL_KINDS),
        Watchlist(list_id="warm", name="warm", priority=50, max_swaps=1, action=ListAction.COVERT),
        Watchlist(
            list_id="cold",
            name="cold",
            priority=10,
            max_swaps=3,
            alert_kinds=frozenset({MatchKind.EXACT, MatchKind.EDIT, MatchKind.WILDCARD}),
        ),
        Watchlist(list_id="old", name="old", valid_until=NOW - 1, alert_kinds=ALL_KINDS),
        Watchlist(list_id="permit", name="permit", kind=ListKind.PERMIT, alert_kinds=ALL_KINDS),
    ]
    entries = []
    for i in range(n):
        lid = rng.choice(["hot", "hot", "warm", "cold", "old", "permit", "ghost"])
        plate = rand_pattern(rng) if rng.random() < 0.03 else rand_plate(rng)
        kw: dict = {}
        r = rng.random()
        if r < 0.05:
            kw["valid_until"] = NOW - 5
        elif r < 0.1:
            kw["valid_from"] = NOW + 5
        elif r < 0.15:
            kw["valid_from"], kw["valid_until"] = NOW - 5, NOW + 5
        if rng.random() < 0.1:
            kw["colour"] = rng.choice(["blue", "yellow"])
        if rng.random() < 0.05:
            kw["vehicle_type"] = rng.choice(["car", "hazmat"])
        entries.append(Entry(entry_id=f"e{i:05d}", list_id=lid, plate=plate, **kw))
    # duplicates of a plate across lists
    for i, e in enumerate(rng.sample(entries, 20)):
        entries.append(Entry(entry_id=f"dup{i}", list_id="hot", plate=e.plate))
    return lists, entries


def fill(pattern: str, rng: random.Random) -> str:
    """A read the pattern matches, sometimes with look-alike literals."""
    out = []
    for c in pattern:
        if c == "?":
            out.append(rng.choice(SERIAL))
        elif c == "*":
            out.append("".join(rng.choice(SERIAL) for _ in range(rng.randint(0, 2))))
        elif c in LOOKALIKE and rng.random() < 0.3:
            out.append(rng.choice(LOOKALIKE[c]))
        else:
            out.append(c)
    return "".join(out)


def make_reads(rng: random.Random, entries: list[Entry], n: int) -> list[str]:
    plain = [e.plate for e in entries if "*" not in e.plate and "?" not in e.plate]
    patterns = [e.plate for e in entries if "*" in e.plate or "?" in e.plate] or ["鲁A*"]
    reads = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            reads.append(rng.choice(plain))
        elif r < 0.25:
            reads.append(fill(rng.choice(patterns), rng))
        elif r < 0.75:
            reads.append(misread(rng.choice(plain), rng))
        elif r < 0.95:
            reads.append(rand_plate(rng))
        else:
            reads.append("".join(rng.choice("鲁A1?*0 \x00IB") for _ in range(rng.randint(0, 10))))
    return reads


def both(lists, entries, **kw):
    fast, ref = PlateIndex(**kw), ReferenceIndex(**kw)
    fast.build(lists, entries, feed_version=7)
    ref.build(lists, entries, feed_version=7)
    return fast, ref


def assert_same(fast, ref, reads, rng, alerting_only=True) -> None:
    """Single reads and one batch (random read attributes) both equal the brute-force oracle."""
    colours = [rng.choice([None, None, "blue", "yellow"]) for _ in reads]
    vts = [rng.choice([None, None, "car", "hazmat"]) for _ in reads]
    wants = []
    for read, colour, vt in zip(reads, colours, vts, strict=True):
        got = fast.match(read, now=NOW, colour=colour, vehicle_type=vt, alerting_only=alerting_only)
        want = ref.match(read, now=NOW, colour=colour, vehicle_type=vt, alerting_only=alerting_only)
        assert got == want, read
        wants.append(want)
    got_batch = fast.match_batch(
        reads, now=NOW, alerting_only=alerting_only, colours=colours, vehicle_types=vts
    )
    assert got_batch == wants


@pytest.mark.parametrize(
    ("alerting_only", "kinds"),
    [
        (True, None),
        (False, None),
        # no list alerts on EDIT: the index makes only the probes these kinds need
        (True, {MatchKind.EXACT, MatchKind.EQUIVALENT, MatchKind.PROVINCE}),
        (True, {MatchKind.PROVINCE}),
        (True, {MatchKind.EDIT, MatchKind.WILDCARD}),
    ],
)
def test_index_equals_oracle(alerting_only: bool, kinds: set[MatchKind] | None) -> None:
    rng = random.Random(11)
    lists, entries = make_feed(rng, 3000)
    if kinds is not None:
        lists = [msgspec.structs.replace(w, alert_kinds=frozenset(kinds)) for w in lists]
    fast, ref = both(lists, entries)
    assert len(fast) == len(ref)
    reads = make_reads(rng, entries, 400)
    assert_same(fast, ref, reads, rng, alerting_only)


def test_index_equals_oracle_after_deltas() -> None:
    rng = random.Random(12)
    lists, entries = make_feed(rng, 2000)
    fast, ref = both(lists, entries)
    extra_lists, extra = make_feed(random.Random(99), 300)
    for step in range(600):
        r = rng.random()
        if r < 0.4:
            e = rng.choice(extra)
            e = Entry(entry_id=f"n{step}", list_id=e.list_id, plate=e.plate, colour=e.colour)
        elif r < 0.6:  # replace an existing entry's plate
            old = rng.choice(entries)
            e = Entry(entry_id=old.entry_id, list_id=old.list_id, plate=rand_plate(rng))
        elif r < 0.65:
            w = rng.choice(lists)
            w2 = Watchlist(
                list_id=w.list_id,
                name=w.name,
                kind=w.kind,
                priority=rng.randint(0, 100),
                max_swaps=rng.randint(0, 3),
                alert_kinds=ALL_KINDS,
            )
            fast.set_watchlist(w2)
            ref.set_watchlist(w2)
            continue
        else:
            victim = rng.choice(entries).entry_id if rng.random() < 0.8 else f"n{rng.randrange(step + 1)}"
            fast.remove(victim)
            ref.remove(victim)
            continue
        fast.upsert(e)
        ref.upsert(e)
    assert len(fast) == len(ref)
    reads = make_reads(rng, entries + extra, 300)
    assert_same(fast, ref, reads, rng, alerting_only=False)
    assert_same(fast, ref, reads, rng, alerting_only=True)


def test_custom_classes_index() -> None:
    rng = random.Random(13)
    lists, entries = make_feed(rng, 1000)
    fast, ref = both(lists, entries, classes=("0O", "OQ", "8B3", "AX"))
    assert_same(fast, ref, make_reads(rng, entries, 200), rng, alerting_only=False)


def test_build_again_replaces_everything_and_feed_version() -> None:
    lists = [Watchlist(list_id="L", name="L")]
    idx = PlateIndex()
    idx.build(lists, [Entry(entry_id="a", list_id="L", plate="鲁A12345")], feed_version=1)
    idx.build(lists, [Entry(entry_id="b", list_id="L", plate="鲁B12345")], feed_version=2)
    assert len(idx) == 1
    assert idx.match("鲁A12345", now=NOW) == []
    [h] = idx.match("鲁B12345", now=NOW)
    assert (h.entry_id, h.feed_version) == ("b", 2)
    idx.feed_version = 3
    assert idx.match("鲁B12345", now=NOW)[0].feed_version == 3


def test_repeated_ids_last_wins() -> None:
    lists = [Watchlist(list_id="L", name="L")]
    idx = PlateIndex()
    idx.build(
        lists,
        [
            Entry(entry_id="a", list_id="L", plate="鲁A12345"),
            Entry(entry_id="a", list_id="L", plate="鲁A99999"),
        ],
    )
    assert len(idx) == 1
    assert idx.match("鲁A12345", now=NOW) == []
    assert len(idx.match("鲁A99999", now=NOW)) == 1


def test_on_list_and_permit_check() -> None:
    lists = [Watchlist(list_id="P", name="P", kind=ListKind.PERMIT)]
    idx = PlateIndex()
    idx.build(lists, [Entry(entry_id="p", list_id="P", plate="鲁A12345")])
    assert idx.on_list("鲁A12345", "P", now=NOW)
    assert idx.on_list("鲁A1Z345", "P", now=NOW)
    assert not idx.on_list("鲁A1234", "P", now=NOW)
    assert not idx.on_list("鲁A12345", "other", now=NOW)
    assert idx.match("鲁A12345", now=NOW, alerting_only=False) == []  # permit lists never hit
    rule = PermitRule(rule_id="r", list_id="P", colours=frozenset({"yellow"}))
    assert idx.check_permit("鲁A12345", "yellow", None, [rule], now=NOW) == []
    assert check_permit("鲁A99999", "yellow", None, [rule], idx, NOW)[0].entry_id == "r"
    idx.remove("p")
    assert not idx.on_list("鲁A12345", "P", now=NOW)


def test_long_and_odd_entries() -> None:
    lists = [Watchlist(list_id="L", name="L", alert_kinds=ALL_KINDS)]
    entries = [
        Entry(entry_id="long", list_id="L", plate="鲁A" + "1" * 20),
        Entry(entry_id="nul", list_id="L", plate="鲁A1234\x00"),
        Entry(entry_id="astral", list_id="L", plate="鲁A12\U0001f600"),
        Entry(entry_id="empty", list_id="L", plate=""),
        Entry(entry_id="one", list_id="L", plate="鲁"),
        Entry(entry_id="star", list_id="L", plate="*"),
    ]
    fast, ref = both(lists, entries)
    rng = random.Random(1)
    reads = [
        "鲁A" + "1" * 20,
        "鲁A" + "1" * 19,
        "鲁A1234",
        "鲁A1234\x00",
        "鲁A12\U0001f600",
        "鲁A12",
        "X",
        "鲁",
        "A",
        "\x00",
        "鲁A12345",
    ]
    assert_same(fast, ref, reads, rng, alerting_only=False)


@settings(max_examples=200, deadline=None)
@given(reads=st.lists(st.text(max_size=20) | st.text(alphabet="鲁晋AB8O0*?\x00", max_size=10), max_size=8))
def test_never_raises_on_junk(reads: list[str]) -> None:
    fast, ref = _JUNK_PAIR
    assert fast.match_batch(reads, now=NOW, alerting_only=False) == ref.match_batch(
        reads, now=NOW, alerting_only=False
    )
    for r in reads:
        assert fast.match(r, now=NOW, alerting_only=False) == ref.match(r, now=NOW, alerting_only=False)


def _junk_pair():
    rng = random.Random(5)
    lists, entries = make_feed(rng, 300)
    entries += [
        Entry(entry_id="a", list_id="hot", plate="鲁A"),
        Entry(entry_id="b", list_id="hot", plate="鲁*"),
        Entry(entry_id="c", list_id="hot", plate="A"),
        Entry(entry_id="d", list_id="hot", plate="B8"),
    ]
    return both(lists, entries)


_JUNK_PAIR = _junk_pair()


# ---------------------------------------------------------------------------------------------
# internals whose failure would silently lose hits


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet="鲁晋AB8O0DQZ2\x00\U0001f600xyz", min_size=1, max_size=12), min_size=1, max_size=6
    )
)
def test_python_and_numpy_probes_agree(reads: list[str]) -> None:
    from protocols import platekeys as pk

    idx = PlateIndex()
    for length in {len(r) for r in reads}:
        group = [r for r in reads if len(r) == length]
        codes = np.array(group, dtype=f"U{length}").view(np.uint32).reshape(-1, length)
        rep = idx._rep_codes(codes)
        for flags in [(True, True, True), (True, False, False), (False, True, False), (False, False, True)]:
            got = pk.np_read_probes(pk.np_hashes(rep), pk.np_hashes(codes), *flags)
            for row, r in zip(got.tolist(), group, strict=True):
                assert row == pk.read_probes(r, r.translate(idx._rep), *flags)
        # Entry keys too: the index builds its base with numpy, its overlay with plain Python.
        parts, dels = pk.np_entry_keys(rep, codes)
        keys = np.hstack([np.stack(parts, axis=1), dels])
        pk.mix(keys)
        for row, r in zip(keys.tolist(), group, strict=True):
            assert row == pk.entry_keys(r, r.translate(idx._rep))


def test_entry_keys_meet_read_probes_for_every_kind() -> None:
    from protocols import platekeys as pk

    idx = PlateIndex()
    rep = idx._rep
    cases = [
        ("鲁A88123", "鲁A8B123"),
        ("鲁A12345", "晋A1Z345"),
        ("鲁A12345", "A12345"),
        ("鲁A88123", "鲁A8123"),
        ("鲁A88123", "鲁A881234"),
        ("鲁A88123", "鲁A8X123"),
        ("AB", "A"),
        ("A", "B"),
    ]
    for plate, read in cases:
        keys = set(pk.entry_keys(plate, plate.translate(rep)))
        assert keys & set(pk.read_probes(read, read.translate(rep), True, True, True)), (plate, read)


def test_raw_prefilter_keeps_every_plain_match() -> None:
    from protocols.matching import class_tables, classify_plain

    rng = random.Random(3)
    alpha = "鲁晋AB80OD2Z5SX1I"
    idx = PlateIndex()
    reads, plates = [], []
    for _ in range(20000):
        e = "".join(rng.choice(alpha) for _ in range(rng.randint(1, 6)))
        r = list(e)
        for _ in range(rng.randint(0, 3)):
            op, i = rng.randrange(3), rng.randrange(len(r) + 1)
            if op == 0 and i < len(r):
                r[i] = rng.choice(alpha + "\x00")
            elif op == 1:
                r.insert(i, rng.choice(alpha + "\x00"))
            elif op == 2 and i < len(r):
                del r[i]
        reads.append("".join(r) or "A")
        plates.append(e)
    width = max(map(len, reads))
    a = np.zeros((len(reads), width), dtype=np.uint32)
    for i, r in enumerate(reads):
        a[i, : len(r)] = [ord(c) for c in r]
    e = np.array(plates, dtype="U6").view(np.uint32).reshape(len(plates), 6)
    keep = idx._could_match(a, np.array([len(r) for r in reads]), e)
    tables = class_tables()
    matched = [classify_plain(r, p, 16, tables) is not None for r, p in zip(reads, plates, strict=True)]
    assert sum(matched) > 5000
    assert all(keep[i] for i, m in enumerate(matched) if m)
    assert keep.sum() < len(reads)  # and it does drop something


def test_compaction_keeps_results(monkeypatch: pytest.MonkeyPatch) -> None:
    from protocols import plateindex as pi

    monkeypatch.setattr(pi, "COMPACT_FLOOR", 50)
    rng = random.Random(21)
    lists, entries = make_feed(rng, 400)
    fast, ref = both(lists, entries)
    for i in range(300):
        e = Entry(entry_id=f"x{i}", list_id="hot", plate=rand_plate(rng) if i % 10 else rand_pattern(rng))
        fast.upsert(e)
        ref.upsert(e)
        if i % 7 == 0:
            victim = rng.choice(entries).entry_id
            fast.remove(victim)
            ref.remove(victim)
    assert len(fast._ov) < 100  # compacted along the way
    assert len(fast) == len(ref)
    assert sorted(e.entry_id for e in fast.entries()) == sorted(ref.entries)
    assert_same(fast, ref, make_reads(rng, list(ref.entries.values()), 200), rng, alerting_only=False)


def test_fast_paths_for_default_alert_kinds() -> None:
    # production lists alert on EXACT/EQUIVALENT only: a one-edit read is no alerting hit
    lists = [Watchlist(list_id="L", name="L")]
    idx = PlateIndex()
    idx.build(lists, [Entry(entry_id="a", list_id="L", plate="鲁A88123")])
    assert idx.match("鲁A8123", now=NOW) == []
    assert [h.kind for h in idx.match("鲁A8123", now=NOW, alerting_only=False)] == [MatchKind.EDIT]
    assert [h.kind for h in idx.match("鲁A8B123", now=NOW)] == [MatchKind.EQUIVALENT]
    assert [h.kind for h in idx.match_batch(["鲁A8B123", "鲁A8123"], now=NOW)[0]] == [MatchKind.EQUIVALENT]


def test_surrogates_nan_clock_and_infinite_windows() -> None:
    lists = [Watchlist(list_id="L", name="L", alert_kinds=ALL_KINDS)]
    entries = [
        Entry(entry_id="a", list_id="L", plate="鲁A1\ud800", valid_from=-math.inf),
        Entry(entry_id="b\udcff", list_id="L", plate="鲁A12"),
        Entry(entry_id="c", list_id="L", plate="鲁A13", valid_until=math.nan),
        Entry(entry_id="d", list_id="L", plate="鲁A14", valid_from=NOW - 1, valid_until=NOW + 1),
    ]
    fast, ref = both(lists, entries)
    for now in (NOW, math.nan, math.inf):
        for read in ["鲁A1\ud800", "\ud800", "鲁A12", "鲁A1\udcff2", "鲁A13", "鲁A14"]:
            want = ref.match(read, now=now, alerting_only=False)
            assert fast.match(read, now=now, alerting_only=False) == want
            assert fast.match_batch([read], now=now, alerting_only=False) == [want]


def test_a_bulk_merge_in_place_equals_a_fresh_build_and_reads_see_the_old_state_until_commit() -> None:
    """A merge (removals, replaced plates, new entries of every shape, longer plates that widen the
    base, enough new rows to need more row bits) gives the answers of an index built afresh with
    the result; between prepare and commit, reads still get the old answers."""
    rng = random.Random(31)
    lists, entries = make_feed(rng, 1500)
    fast, ref = both(lists, entries)
    before = ReferenceIndex()
    before.build(lists, entries, feed_version=7)
    for i in range(40):  # an overlay and tombstones from deltas, folded in by the merge
        e = Entry(entry_id=f"d{i}", list_id=lists[0].list_id, plate=rand_plate(rng))
        for ix in (fast, ref, before):
            ix.upsert(e)
        victim = entries[i].entry_id
        for ix in (fast, ref, before):
            ix.remove(victim)
    _, extra = make_feed(random.Random(77), 1800)
    m = fast.merge()
    for e in entries[40:500]:
        m.remove(e.entry_id)
        ref.remove(e.entry_id)
    for i, e in enumerate(entries[500:700]):  # replaced: another plate, sometimes an odd one
        plate = (
            "鲁A" + "7" * 14
            if i % 50 == 0
            else ("*" + rand_plate(rng)[2:] if i % 40 == 0 else rand_plate(rng))
        )
        new = Entry(
            entry_id=e.entry_id, list_id=e.list_id, plate=plate, valid_until=NOW + 5 if i % 3 else None
        )
        m.upsert(new)
        ref.upsert(new)
    for i, e in enumerate(extra):
        new = Entry(
            entry_id=f"x{i}" if i % 5 else f"odd id {i}",
            list_id=e.list_id,
            plate=e.plate if i % 97 else "鲁A" + "1" * 20,
            colour=e.colour,
        )
        m.upsert(new)
        ref.upsert(new)
    m.upsert(Entry(entry_id="d3", list_id=lists[0].list_id, plate="晋B12345"))  # an overlay entry replaced
    ref.upsert(Entry(entry_id="d3", list_id=lists[0].list_id, plate="晋B12345"))
    reads = make_reads(rng, entries + extra, 250) + ["晋B12345", "鲁A" + "7" * 14]
    m.prepare()
    assert len(fast) == len(before)
    assert_same(fast, before, reads, random.Random(1), alerting_only=False)
    m.commit()
    assert len(fast) == len(ref)
    assert fast._ov and not any(fits_base(e) for e in fast._ov.values())  # the rest folded into the base
    assert sorted(e.entry_id for e in fast.entries()) == sorted(ref.entries)
    assert_same(fast, ref, reads, random.Random(2), alerting_only=False)
    assert_same(fast, ref, reads, random.Random(3), alerting_only=True)
    # deltas and another merge on top (free slots reused)
    fast.remove("x3")
    ref.remove("x3")
    m = fast.merge()
    for i in range(600):
        new = Entry(entry_id=f"y{i}", list_id=lists[1].list_id, plate=rand_plate(rng))
        m.upsert(new)
        ref.upsert(new)
    n = fast._n
    m.prepare()
    m.commit()
    assert fast._n < n + 600
    keys = fast._words >> np.uint64(fast._rowbits)
    assert (keys[1:] >= keys[:-1]).all()  # the words in key order, as the directory needs
    assert_same(fast, ref, reads + make_reads(rng, list(ref.entries.values()), 100), random.Random(4))
