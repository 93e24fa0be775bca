"""The watchlist matching rules: what counts as a hit, how good it is, and how it is explained.

Both the edge and the hub match with this module (through ``protocols.plateindex``), so a hit at
a checkpoint and a hit at the hub mean the same thing. ``match_one`` is the reference: it decides
one read against one entry. The fast index must return exactly what ``match_one`` over every
entry returns; ``protocols.reference.ReferenceIndex`` is that brute force, kept as the oracle for
tests. Transport-permit rules are in ``protocols.permits``.

Rules, best first (each read/entry pair yields at most one hit, the best-scoring kind that applies):

- EXACT (1.0): equal strings.
- EQUIVALENT (0.95 - 0.05 per extra swap): same length, every differing position is a look-alike
  pair (same class, e.g. ``8``/``B``), at most ``watchlist.max_swaps`` of them.
- PROVINCE (0.85): the entry starts with a province character (any non-ASCII first character) and
  the read has a different first character, or lacks it, with the rest exact or equivalent.
- EDIT (0.75): Levenshtein distance exactly 1 on the raw strings.
- WILDCARD (0.8 exact literals, 0.7 with look-alikes): only for entries containing ``*`` (any run,
  possibly empty) or ``?`` (one character); look-alike literals count against ``max_swaps`` too.

Entries and lists outside their validity window (``valid_from <= now < valid_until``, ``None`` =
open) never match; colour and vehicle type must agree when both sides give one. Empty reads and
reads longer than ``MAX_READ_CHARS`` never match. Whether a hit may alert is separate:
``alerts(hit, watchlist)``.

Pure: standard library and msgspec only, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

import msgspec

__all__ = [
    "ALL_KINDS",
    "DEFAULT_ALERT_KINDS",
    "DEFAULT_CLASSES",
    "MATCHER_VERSION",
    "MAX_READ_CHARS",
    "ClassTables",
    "Entry",
    "Hit",
    "ListAction",
    "ListKind",
    "MatchKind",
    "PermitRule",
    "Verdict",
    "Watchlist",
    "admissible",
    "alerts",
    "class_tables",
    "classify_pattern",
    "classify_plain",
    "hit_order",
    "is_active",
    "is_pattern",
    "make_hit",
    "match_one",
    "readable",
    "sort_hits",
    "verdict",
]

# Bump whenever a rule, a score or an explanation changes: hits carry it so edge and hub hits
# made under different rules can be told apart.
MATCHER_VERSION: str = "1.0"

# Look-alike classes: characters within one string are confused by plate readers.
DEFAULT_CLASSES: tuple[str, ...] = ("0ODQ", "1I", "2Z", "5S", "6G", "8B")

# Canonical plates are at most 16 characters; anything much longer is junk, and bounding it keeps
# the wildcard check's cost bounded.
MAX_READ_CHARS: int = 32

WILDCARDS = frozenset("*?")


class MatchKind(StrEnum):
    EXACT = "exact"
    EQUIVALENT = "equivalent"
    EDIT = "edit"
    PROVINCE = "province"
    WILDCARD = "wildcard"


ALL_KINDS: frozenset[MatchKind] = frozenset(MatchKind)
#: What a list alerts on unless told otherwise: exact and look-alike reads of its plates, and the reads its
#: patterns match (WILDCARD hits come only from pattern entries such as ``鲁A*23?5``, which someone wrote
#: to be alerted on). EDIT and PROVINCE, the loosest, only when a list asks for them.
DEFAULT_ALERT_KINDS: frozenset[MatchKind] = frozenset(
    {MatchKind.EXACT, MatchKind.EQUIVALENT, MatchKind.WILDCARD}
)
# Tie-break between kinds of equal score: the stricter kind wins.
_KIND_RANK = {
    MatchKind.EXACT: 0,
    MatchKind.EQUIVALENT: 1,
    MatchKind.PROVINCE: 2,
    MatchKind.EDIT: 3,
    MatchKind.WILDCARD: 4,
}


class ListAction(StrEnum):
    INTERCEPT = "intercept"
    COVERT = "covert"
    NOTIFY = "notify"


class ListKind(StrEnum):
    VEHICLE = "vehicle"
    PERSON = "person"
    PERMIT = "permit"


class Watchlist(msgspec.Struct, frozen=True, kw_only=True):
    """A named list; its settings govern how its entries match and alert.

    Lists of kind ``PERMIT`` are allow-lists: they never produce hits of their own, they answer
    ``PermitRule`` checks.
    """

    list_id: str
    name: str
    kind: ListKind = ListKind.VEHICLE
    action: ListAction = ListAction.INTERCEPT
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50
    restricted: bool = False
    alert_kinds: frozenset[MatchKind] = DEFAULT_ALERT_KINDS
    max_swaps: Annotated[int, msgspec.Meta(ge=0, le=16)] = 2
    valid_from: float | None = None
    valid_until: float | None = None
    source: str = ""
    owner: str = ""


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One listed plate, or a pattern with ``*`` (any run, possibly empty) and ``?`` (one char)."""

    entry_id: str
    list_id: str
    plate: str
    colour: str | None = None
    vehicle_type: str | None = None
    reason: str = ""
    case_ref: str = ""
    valid_from: float | None = None
    valid_until: float | None = None
    created_by: str = ""


class Hit(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: str
    list_id: str
    kind: MatchKind
    score: float
    explanation: str
    read_plate: str
    entry_plate: str
    action: ListAction
    priority: int
    feed_version: int
    matcher_version: str


class PermitRule(msgspec.Struct, frozen=True, kw_only=True):
    """Vehicles of a watched class (colour and/or vehicle type) must be on the permit list.

    A rule watches a read when every non-empty set contains the read's value; a rule with both
    sets empty watches nothing (a typo must not flag every vehicle on the road).
    """

    rule_id: str
    list_id: str
    colours: frozenset[str] = frozenset()
    vehicle_types: frozenset[str] = frozenset()
    permit_name: str = "permit"
    action: ListAction = ListAction.INTERCEPT
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50


# ---------------------------------------------------------------------------------------------
# look-alike classes


@dataclass(frozen=True, slots=True)
class ClassTables:
    """Look-alike lookups derived from a classes tuple.

    ``pairs`` holds every ordered pair of distinct characters sharing a class (the rule);
    ``rep`` maps each character to one representative of its connected component, for
    ``str.translate`` (indexes use it: equal representatives is a superset of the rule even when
    classes overlap); ``members`` gives, per character, the characters it may stand for.
    """

    classes: tuple[str, ...]
    pairs: frozenset[tuple[str, str]]
    rep: dict[int, int]
    members: dict[str, frozenset[str]]


@lru_cache(maxsize=64)
def class_tables(classes: tuple[str, ...] = DEFAULT_CLASSES) -> ClassTables:
    """Build (and cache) the look-alike tables for ``classes``."""
    pairs: set[tuple[str, str]] = set()
    members: dict[str, set[str]] = {}
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    for cls in classes:
        chars = list(dict.fromkeys(cls))
        for a in chars:
            members.setdefault(a, {a}).update(chars)
            for b in chars:
                if a != b:
                    pairs.add((a, b))
        for a in chars[1:]:
            ra, rb = find(a), find(chars[0])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    rep = {ord(c): ord(find(c)) for c in parent if find(c) != c}
    return ClassTables(
        classes=classes,
        pairs=frozenset(pairs),
        rep=rep,
        members={c: frozenset(m) for c, m in members.items()},
    )


# ---------------------------------------------------------------------------------------------
# the rules


def is_pattern(plate: str) -> bool:
    """True when an entry plate is a wildcard pattern."""
    return "*" in plate or "?" in plate


def is_active(valid_from: float | None, valid_until: float | None, now: float) -> bool:
    """``valid_from <= now < valid_until``; ``None`` leaves that side open."""
    if valid_from is not None and not now >= valid_from:
        return False
    if valid_until is not None and not now < valid_until:
        return False
    return True


def _attrs_agree(entry_value: str | None, read_value: str | None) -> bool:
    # Empty strings count as "not given", like None.
    return not (entry_value and read_value and entry_value != read_value)


def _lookalike_diffs(a: str, b: str, pairs: frozenset[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """Differing positions of equal-length ``a`` and ``b`` if all are look-alike pairs, else None."""
    diffs: list[tuple[str, str]] = []
    for x, y in zip(a, b, strict=True):
        if x != y:
            if (x, y) not in pairs:
                return None
            diffs.append((x, y))
    return diffs


def _swaps_text(diffs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{x}↔{y}" for x, y in diffs)


def _edit1(read: str, plate: str) -> str | None:
    """How ``read`` differs from ``plate`` if their Levenshtein distance is exactly 1."""
    n, m = len(read), len(plate)
    if abs(n - m) > 1:
        return None
    p = 0
    limit = min(n, m)
    while p < limit and read[p] == plate[p]:
        p += 1
    # Positions in explanations are 1-based, as officers count them.
    if n == m:
        if p < n and read[p + 1 :] == plate[p + 1 :]:
            return f"{read[p]} for {plate[p]} at {p + 1}"
        return None
    if n < m:
        if read[p:] == plate[p + 1 :]:
            return f"missing {plate[p]} at {p + 1}"
        return None
    if read[p + 1 :] == plate[p:]:
        return f"extra {read[p]} at {p + 1}"
    return None


Verdict = tuple[MatchKind, float, str]


def _better(a: Verdict | None, b: Verdict | None) -> Verdict | None:
    if a is None:
        return b
    if b is None:
        return a
    if (b[1], -_KIND_RANK[b[0]]) > (a[1], -_KIND_RANK[a[0]]):
        return b
    return a


def classify_plain(read: str, plate: str, max_swaps: int, tables: ClassTables) -> Verdict | None:
    """The best kind (with score and explanation) for a read against a plain entry plate."""
    if read == plate:
        return (MatchKind.EXACT, 1.0, f"read {read} = entry {plate}")
    if not read or not plate:
        return None
    pairs = tables.pairs
    n, m = len(read), len(plate)
    best: Verdict | None = None
    if n == m:
        diffs = _lookalike_diffs(read, plate, pairs)
        if diffs is not None and 1 <= len(diffs) <= max_swaps:
            score = round(0.95 - 0.05 * (len(diffs) - 1), 4)
            best = (MatchKind.EQUIVALENT, score, f"read {read} ≈ entry {plate}: {_swaps_text(diffs)}")
    if not plate[0].isascii():
        prov: Verdict | None = None
        if n == m and read[0] != plate[0]:
            diffs = _lookalike_diffs(read[1:], plate[1:], pairs)
            if diffs is not None and len(diffs) <= max_swaps:
                extra = f", {_swaps_text(diffs)}" if diffs else ""
                prov = (
                    MatchKind.PROVINCE,
                    0.85,
                    f"read {read} ≈ entry {plate}: province {read[0]}↔{plate[0]}{extra}",
                )
        elif n == m - 1:
            diffs = _lookalike_diffs(read, plate[1:], pairs)
            if diffs is not None and len(diffs) <= max_swaps:
                extra = f", {_swaps_text(diffs)}" if diffs else ""
                prov = (
                    MatchKind.PROVINCE,
                    0.85,
                    f"read {read} ≈ entry {plate}: province {plate[0]} missing{extra}",
                )
        best = _better(best, prov)
    if best is None or best[1] < 0.75:
        how = _edit1(read, plate)
        if how is not None:
            best = _better(best, (MatchKind.EDIT, 0.75, f"read {read} ≈ entry {plate}: {how}"))
    return best


def _glob(read: str, pattern: str, ok: Callable[[str, str], bool]) -> bool:
    """Wildcard match with a per-character predicate; linear-ish, no regex backtracking blow-up."""
    i = j = 0
    star = -1
    mark = 0
    n, m = len(read), len(pattern)
    while i < n:
        if j < m and pattern[j] == "*":
            star, mark = j, i
            j += 1
        elif j < m and (pattern[j] == "?" or ok(read[i], pattern[j])):
            i += 1
            j += 1
        elif star >= 0:
            mark += 1
            i, j = mark, star + 1
        else:
            return False
    while j < m and pattern[j] == "*":
        j += 1
    return j == m


def _min_swaps_alignment(
    read: str, pattern: str, pairs: frozenset[tuple[str, str]]
) -> list[tuple[str, str]] | None:
    """The look-alike pairs of an alignment of ``read`` to ``pattern`` using the fewest of them."""
    n = len(read)
    inf = 1 << 30
    rows = [[0] + [inf] * n]
    for c in pattern:
        prev = rows[-1]
        cur = [inf] * (n + 1)
        if c == "*":
            cur[0] = prev[0]
            for j in range(1, n + 1):
                cur[j] = min(prev[j], cur[j - 1])
        elif c == "?":
            for j in range(1, n + 1):
                cur[j] = prev[j - 1]
        else:
            for j in range(1, n + 1):
                x = read[j - 1]
                if x == c:
                    cur[j] = prev[j - 1]
                elif (x, c) in pairs:
                    cur[j] = prev[j - 1] + 1
        rows.append(cur)
    if rows[-1][n] >= inf:
        return None
    diffs: list[tuple[str, str]] = []
    i, j = len(pattern), n
    while i > 0:
        c = pattern[i - 1]
        if c == "*":
            if rows[i - 1][j] == rows[i][j]:
                i -= 1
            else:
                j -= 1
        else:
            if c != "?" and read[j - 1] != c:
                diffs.append((read[j - 1], c))
            i -= 1
            j -= 1
    diffs.reverse()
    return diffs


def _eq(a: str, b: str) -> bool:
    return a == b


def classify_pattern(read: str, pattern: str, max_swaps: int, tables: ClassTables) -> Verdict | None:
    """WILDCARD verdict for a read against a pattern entry, or None."""
    if not read:
        return None
    if _glob(read, pattern, _eq):
        return (MatchKind.WILDCARD, 0.8, f"read {read} matches pattern {pattern}")
    if max_swaps < 1:
        return None
    pairs = tables.pairs
    if not _glob(read, pattern, lambda x, c: x == c or (x, c) in pairs):
        return None
    diffs = _min_swaps_alignment(read, pattern, pairs)
    if diffs is None or len(diffs) > max_swaps:
        return None
    return (MatchKind.WILDCARD, 0.7, f"read {read} matches pattern {pattern}: {_swaps_text(diffs)}")


def admissible(
    entry_valid_from: float | None,
    entry_valid_until: float | None,
    entry_colour: str | None,
    entry_vehicle_type: str | None,
    watchlist: Watchlist,
    now: float,
    colour: str | None,
    vehicle_type: str | None,
) -> bool:
    """Whether an entry may match at all at ``now`` for a read with these attributes."""
    return (
        is_active(entry_valid_from, entry_valid_until, now)
        and is_active(watchlist.valid_from, watchlist.valid_until, now)
        and _attrs_agree(entry_colour, colour)
        and _attrs_agree(entry_vehicle_type, vehicle_type)
    )


def verdict(read: str, plate: str, max_swaps: int, tables: ClassTables) -> Verdict | None:
    """The best kind, score and explanation of a (non-empty, bounded) read against an entry plate."""
    if not plate:
        return None
    if is_pattern(plate):
        return classify_pattern(read, plate, max_swaps, tables)
    return classify_plain(read, plate, max_swaps, tables)


def make_hit(
    read: str,
    entry_id: str,
    list_id: str,
    plate: str,
    watchlist: Watchlist,
    found: Verdict,
    feed_version: int,
) -> Hit:
    kind, score, explanation = found
    return Hit(
        entry_id=entry_id,
        list_id=list_id,
        kind=kind,
        score=score,
        explanation=explanation,
        read_plate=read,
        entry_plate=plate,
        action=watchlist.action,
        priority=watchlist.priority,
        feed_version=feed_version,
        matcher_version=MATCHER_VERSION,
    )


def readable(read_plate: object) -> bool:
    """Whether a read can match anything: a non-empty string of at most ``MAX_READ_CHARS``."""
    return isinstance(read_plate, str) and 0 < len(read_plate) <= MAX_READ_CHARS


def match_one(
    read_plate: str,
    entry: Entry,
    watchlist: Watchlist,
    *,
    now: float,
    colour: str | None = None,
    vehicle_type: str | None = None,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    feed_version: int = 0,
) -> Hit | None:
    """The reference rule: the best hit of one read against one entry of ``watchlist``, or None.

    Indexes run the same steps (``readable``, ``admissible``, ``verdict``, ``make_hit``) on
    entries they store in pieces.
    """
    if not readable(read_plate) or entry.list_id != watchlist.list_id:
        return None
    if not admissible(
        entry.valid_from,
        entry.valid_until,
        entry.colour,
        entry.vehicle_type,
        watchlist,
        now,
        colour,
        vehicle_type,
    ):
        return None
    found = verdict(read_plate, entry.plate, watchlist.max_swaps, class_tables(tuple(classes)))
    if found is None:
        return None
    return make_hit(read_plate, entry.entry_id, entry.list_id, entry.plate, watchlist, found, feed_version)


def alerts(hit: Hit, watchlist: Watchlist) -> bool:
    """Whether ``hit`` may raise an alert on ``watchlist`` (its kind is one the list alerts on)."""
    return hit.kind in watchlist.alert_kinds


def hit_order(hit: Hit) -> tuple[float, int, str]:
    """Sort key: score desc, then priority desc, then entry_id asc."""
    return (-hit.score, -hit.priority, hit.entry_id)


def sort_hits(hits: Iterable[Hit]) -> list[Hit]:
    return sorted(hits, key=hit_order)
