"""The watchlist matching rules (protocols.matching): each kind, its score and its explanation."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.matching import (
    ALL_KINDS,
    DEFAULT_CLASSES,
    MATCHER_VERSION,
    Entry,
    Hit,
    ListAction,
    ListKind,
    MatchKind,
    PermitRule,
    Watchlist,
    alerts,
    class_tables,
    match_one,
    sort_hits,
)
from protocols.permits import check_permit
from protocols.reference import ReferenceIndex, reference_match

K = MatchKind
NOW = 1_700_000_000.0


def wl(list_id: str = "L", **kw) -> Watchlist:
    kw.setdefault("alert_kinds", ALL_KINDS)
    return Watchlist(list_id=list_id, name=list_id, **kw)


def entry(plate: str, entry_id: str = "e1", list_id: str = "L", **kw) -> Entry:
    return Entry(entry_id=entry_id, list_id=list_id, plate=plate, **kw)


def one(read: str, plate: str, **kw) -> Hit | None:
    wl_kw = {k: kw.pop(k) for k in list(kw) if k in ("max_swaps", "valid_from_list", "valid_until_list")}
    w = wl(max_swaps=wl_kw.get("max_swaps", 2))
    return match_one(read, entry(plate), w, now=NOW, **kw)


# ---------------------------------------------------------------------------------------------
# kinds, one by one


def test_exact() -> None:
    h = one("鲁A88123", "鲁A88123")
    assert h is not None
    assert (h.kind, h.score) == (K.EXACT, 1.0)
    assert h.explanation == "read 鲁A88123 = entry 鲁A88123"
    assert h.read_plate == h.entry_plate == "鲁A88123"
    assert h.matcher_version == MATCHER_VERSION


def test_equivalent_one_swap() -> None:
    h = one("鲁A8B123", "鲁A88123")
    assert h is not None
    assert (h.kind, h.score) == (K.EQUIVALENT, 0.95)
    assert h.explanation == "read 鲁A8B123 ≈ entry 鲁A88123: B↔8"


def test_equivalent_two_swaps_scores_lower() -> None:
    h = one("鲁AO8B23", "鲁A08823")
    assert h is not None
    assert (h.kind, h.score) == (K.EQUIVALENT, 0.9)
    assert h.explanation == "read 鲁AO8B23 ≈ entry 鲁A08823: O↔0, B↔8"


def test_equivalent_respects_max_swaps() -> None:
    # three swaps: beyond the default of 2, and not an edit either
    assert one("鲁AOB5Z3", "鲁A08523") is None
    assert one("鲁AOBSZ3", "鲁A08523") is None
    h = one("鲁AOBSZ3", "鲁A08523", max_swaps=4)
    assert h is not None and h.kind == K.EQUIVALENT and h.score == 0.8
    # max_swaps=0: a single look-alike swap is only an edit
    h = one("鲁A8B123", "鲁A88123", max_swaps=0)
    assert h is not None and h.kind == K.EDIT
    assert h.explanation == "read 鲁A8B123 ≈ entry 鲁A88123: B for 8 at 4"


def test_not_lookalike_is_not_equivalent() -> None:
    h = one("鲁A8X123", "鲁A88123")
    assert h is not None and h.kind == K.EDIT  # one substitution, but X and 8 do not look alike


def test_province_substituted() -> None:
    h = one("晋A12345", "鲁A12345")
    assert h is not None
    assert (h.kind, h.score) == (K.PROVINCE, 0.85)
    assert h.explanation == "read 晋A12345 ≈ entry 鲁A12345: province 晋↔鲁"


def test_province_substituted_with_swaps() -> None:
    h = one("晋A1Z345", "鲁A12345")
    assert h is not None and h.kind == K.PROVINCE
    assert h.explanation == "read 晋A1Z345 ≈ entry 鲁A12345: province 晋↔鲁, Z↔2"
    assert one("晋AIZ3S5", "鲁A12345") is None  # three swaps in the rest


def test_province_missing() -> None:
    h = one("A12345", "鲁A12345")
    assert h is not None
    assert (h.kind, h.score) == (K.PROVINCE, 0.85)
    assert h.explanation == "read A12345 ≈ entry 鲁A12345: province 鲁 missing"
    h = one("A1Z345", "鲁A12345")
    assert h is not None and h.kind == K.PROVINCE
    assert h.explanation == "read A1Z345 ≈ entry 鲁A12345: province 鲁 missing, Z↔2"


def test_province_needs_a_province_led_entry() -> None:
    # an ASCII-led entry: a first-character change is only an edit
    h = one("XA12345", "WA12345")
    assert h is not None and h.kind == K.EDIT


@pytest.mark.parametrize(
    ("read", "plate", "how"),
    [
        ("鲁A8123", "鲁A88123", "missing 8 at 4"),
        ("鲁A88124", "鲁A88123", "4 for 3 at 7"),
        ("鲁A881234", "鲁A88123", "extra 4 at 8"),
        ("鲁XA88123", "鲁A88123", "extra X at 2"),
        ("鲁A8812", "鲁A88123", "missing 3 at 7"),
    ],
)
def test_edit(read: str, plate: str, how: str) -> None:
    h = one(read, plate)
    assert h is not None
    assert (h.kind, h.score) == (K.EDIT, 0.75)
    assert h.explanation == f"read {read} ≈ entry {plate}: {how}"


def test_edit_distance_two_is_nothing() -> None:
    assert one("鲁A8812X9", "鲁A88123") is None
    assert one("鲁A81", "鲁A88123") is None


def test_wildcard_star_and_question() -> None:
    h = one("鲁A82345", "鲁A*23?5")
    assert h is not None
    assert (h.kind, h.score) == (K.WILDCARD, 0.8)
    assert h.explanation == "read 鲁A82345 matches pattern 鲁A*23?5"
    assert one("鲁A2305", "鲁A*23?5") is not None  # * may be empty
    assert one("鲁A2315X", "鲁A*23?5") is None
    assert one("鲁A235", "鲁A*23?5") is None  # ? needs one character


def test_wildcard_lookalike_literals() -> None:
    h = one("鲁A8Z3X5", "鲁A*23?5")
    assert h is not None
    assert (h.kind, h.score) == (K.WILDCARD, 0.7)
    assert h.explanation == "read 鲁A8Z3X5 matches pattern 鲁A*23?5: Z↔2"
    # the alignment with fewest look-alikes is chosen: here an exact one exists
    h = one("鲁AZ23X5", "鲁A*23?5")
    assert h is not None and h.score == 0.8
    # look-alikes count against max_swaps
    assert one("鲁AZS8", "鲁A255", max_swaps=3) is None  # no wildcard: not a pattern at all
    assert one("鲁A8ZSX5", "鲁A*25?5", max_swaps=1) is None
    assert one("鲁A8ZSX5", "鲁A*25?5", max_swaps=2) is not None


def test_pattern_entries_match_only_as_wildcard() -> None:
    assert one("鲁A*23?5", "鲁A*23?5").kind == K.WILDCARD  # type: ignore[union-attr]
    assert one("鲁A2?", "鲁A2?5") is None  # would be an edit of the raw string; patterns never edit


def test_best_kind_wins_and_one_hit_per_pair() -> None:
    # a province substitution is also one edit: province scores higher
    h = one("晋A12345", "鲁A12345")
    assert h is not None and h.kind == K.PROVINCE
    # missing province is also a deletion
    h = one("A12345", "鲁A12345")
    assert h is not None and h.kind == K.PROVINCE


# ---------------------------------------------------------------------------------------------
# constraints


def test_attribute_constraints() -> None:
    w = wl()
    e = entry("鲁A12345", colour="yellow", vehicle_type="hazmat")
    assert match_one("鲁A12345", e, w, now=NOW) is not None
    assert match_one("鲁A12345", e, w, now=NOW, colour="yellow", vehicle_type="hazmat") is not None
    assert match_one("鲁A12345", e, w, now=NOW, colour="blue") is None
    assert match_one("鲁A12345", e, w, now=NOW, vehicle_type="car") is None
    # no constraint on the entry: any read attributes
    assert match_one("鲁A12345", entry("鲁A12345"), w, now=NOW, colour="blue", vehicle_type="car") is not None


def test_entry_validity_window() -> None:
    w = wl()
    e = entry("鲁A12345", valid_from=NOW - 10, valid_until=NOW + 10)
    assert match_one("鲁A12345", e, w, now=NOW) is not None
    assert match_one("鲁A12345", e, w, now=NOW - 10) is not None  # from is inclusive
    assert match_one("鲁A12345", e, w, now=NOW + 10) is None  # until is exclusive
    assert match_one("鲁A12345", e, w, now=NOW - 11) is None


def test_list_validity_window() -> None:
    e = entry("鲁A12345")
    assert match_one("鲁A12345", e, wl(valid_until=NOW), now=NOW) is None
    assert match_one("鲁A12345", e, wl(valid_from=NOW + 1), now=NOW) is None
    assert match_one("鲁A12345", e, wl(valid_from=NOW, valid_until=NOW + 1), now=NOW) is not None


def test_entry_of_another_list_never_matches() -> None:
    assert match_one("鲁A12345", entry("鲁A12345", list_id="X"), wl("L"), now=NOW) is None


def test_hit_carries_list_settings_and_versions() -> None:
    w = wl(action=ListAction.COVERT, priority=90)
    h = match_one("鲁A12345", entry("鲁A12345"), w, now=NOW, feed_version=42)
    assert h is not None
    assert (h.action, h.priority, h.feed_version, h.list_id, h.entry_id) == (
        ListAction.COVERT,
        90,
        42,
        "L",
        "e1",
    )


def test_alerts_follows_alert_kinds() -> None:
    w = Watchlist(list_id="L", name="L")  # default: exact and equivalent only
    exact = match_one("鲁A12345", entry("鲁A12345"), w, now=NOW)
    edit = match_one("鲁A1234", entry("鲁A12345"), w, now=NOW)
    assert exact is not None and edit is not None  # hits are returned regardless
    assert alerts(exact, w) and not alerts(edit, w)


def test_custom_classes() -> None:
    w = wl()
    h = match_one("鲁AX2345", entry("鲁AY2345"), w, now=NOW, classes=("XY",))
    assert h is not None and h.kind == K.EQUIVALENT
    h = match_one("鲁A8B123", entry("鲁A88123"), w, now=NOW, classes=("XY",))
    assert h is not None and h.kind == K.EDIT


def test_class_tables_representatives_cover_overlapping_classes() -> None:
    t = class_tables(("0O", "OQ"))
    assert "0".translate(t.rep) == "O".translate(t.rep) == "Q".translate(t.rep)
    assert ("0", "Q") not in t.pairs  # the rule stays per class
    assert class_tables(DEFAULT_CLASSES).pairs >= {("B", "8"), ("8", "B"), ("O", "D")}


# ---------------------------------------------------------------------------------------------
# ordering, oracle


def test_ordering_score_then_priority_then_entry_id() -> None:
    lists = {
        "hi": wl("hi", priority=90),
        "lo": wl("lo", priority=10),
    }
    entries = [
        entry("鲁A12345", "b", "lo"),
        entry("鲁A12345", "a", "lo"),
        entry("鲁A12345", "z", "hi"),
        entry("鲁A1234", "edit", "hi"),
        entry("鲁A1Z345", "equiv", "lo"),
    ]
    hits = reference_match("鲁A12345", entries, lists, now=NOW)
    assert [h.entry_id for h in hits] == ["z", "a", "b", "equiv", "edit"]
    assert sort_hits(reversed(hits)) == hits


def test_reference_match_alerting_only_and_permit_lists_skipped() -> None:
    lists = {"L": Watchlist(list_id="L", name="L"), "P": wl("P", kind=ListKind.PERMIT)}
    entries = [entry("鲁A12345", "e", "L"), entry("鲁A1234", "d", "L"), entry("鲁A12345", "p", "P")]
    assert [h.entry_id for h in reference_match("鲁A12345", entries, lists, now=NOW)] == ["e"]
    got = reference_match("鲁A1234", entries, lists, now=NOW, alerting_only=False)
    assert [(h.entry_id, h.kind) for h in got] == [("d", K.EXACT), ("e", K.EDIT)]


# ---------------------------------------------------------------------------------------------
# permits

HAZMAT = PermitRule(
    rule_id="hazmat-permit",
    list_id="P",
    colours=frozenset({"yellow"}),
    vehicle_types=frozenset({"hazmat"}),
    permit_name="precursor transport permit",
    priority=70,
)


def permit_index() -> ReferenceIndex:
    idx = ReferenceIndex()
    idx.build(
        [wl("P", kind=ListKind.PERMIT)],
        [entry("鲁A12345", "p1", "P"), entry("鲁B55555", "p2", "P", valid_until=NOW)],
    )
    return idx


def test_permit_on_list_is_no_hit() -> None:
    idx = permit_index()
    assert check_permit("鲁A12345", "yellow", "hazmat", [HAZMAT], idx, NOW) == []
    assert check_permit("鲁A1Z345", "yellow", "hazmat", [HAZMAT], idx, NOW) == []  # equivalent counts


def test_permit_missing_is_a_hit() -> None:
    idx = permit_index()
    hits = check_permit("鲁A99999", "yellow", "hazmat", [HAZMAT], idx, NOW, feed_version=3)
    assert len(hits) == 1
    h = hits[0]
    assert (h.kind, h.score, h.entry_id, h.list_id, h.priority, h.feed_version) == (
        K.EXACT,
        1.0,
        "hazmat-permit",
        "P",
        70,
        3,
    )
    assert h.explanation == "hazmat yellow plate 鲁A99999 has no precursor transport permit"
    # an edit of a permit plate is not on the list
    assert len(check_permit("鲁A1234", "yellow", "hazmat", [HAZMAT], idx, NOW)) == 1
    # an expired permit is no permit
    assert len(check_permit("鲁B55555", "yellow", "hazmat", [HAZMAT], idx, NOW)) == 1
    [again] = idx.check_permit("鲁A99999", "yellow", "hazmat", [HAZMAT], now=NOW)
    assert again.explanation == h.explanation


def test_permit_not_watched_class_is_no_hit() -> None:
    idx = permit_index()
    assert check_permit("鲁A99999", "blue", "hazmat", [HAZMAT], idx, NOW) == []
    assert check_permit("鲁A99999", "yellow", "car", [HAZMAT], idx, NOW) == []
    assert check_permit("鲁A99999", None, None, [HAZMAT], idx, NOW) == []
    empty = PermitRule(rule_id="r", list_id="P")
    assert check_permit("鲁A99999", "yellow", "hazmat", [empty], idx, NOW) == []
    colour_only = PermitRule(rule_id="r", list_id="P", colours=frozenset({"yellow"}))
    assert len(check_permit("鲁A99999", "yellow", None, [colour_only], idx, NOW)) == 1


# ---------------------------------------------------------------------------------------------
# junk


def test_model_round_trips_through_msgpack() -> None:
    w = wl(priority=5)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(w), type=Watchlist) == w
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"list_id":"x","name":"x","priority":101}', type=Watchlist)


JUNK = st.text(max_size=40) | st.text(alphabet="鲁晋A*?0OB8Z2", max_size=12)


@settings(max_examples=300, deadline=None)
@given(read=JUNK, plate=JUNK, swaps=st.integers(0, 5))
def test_never_raises_on_junk(read: str, plate: str, swaps: int) -> None:
    w = wl(max_swaps=swaps)
    h = match_one(read, entry(plate), w, now=NOW)
    if h is not None:
        assert 0.0 < h.score <= 1.0
        assert h.read_plate == read
    check_permit(read, "yellow", "hazmat", [HAZMAT], permit_index(), NOW)


def test_empty_and_overlong_reads_never_match() -> None:
    assert one("", "鲁A12345") is None
    assert one("", "*") is None
    assert one("A" * 40, "A*") is None
    assert one(None, "鲁A12345") is None  # type: ignore[arg-type]
