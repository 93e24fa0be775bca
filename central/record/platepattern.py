"""Plates and partial plates an analyst searches for, checked before they come near SQL.

A search plate is upper-cased and must hold plate characters only; a pattern (``鲁A*23?5``: ``*`` any
run, ``?`` one character) may hold those, ``*`` and ``?``, needs a few known characters, and becomes
a GLOB over a day file's distinct plates, narrowed by an index range on its literal head or tail,
whichever looks more selective. ``%``, ``_``, ``[``, quotes and the like are refused with a clear
reason, and the text is always bound as a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protocols.errors import CordonError

MAX_PATTERN_CHARS = 16
MIN_PATTERN_LITERALS = 2


class PatternError(CordonError, ValueError):
    """A search plate or pattern that cannot be used; the message says why."""


def _allowed(ch: str) -> bool:
    # What canonical plates are made of: ASCII capitals and digits, CJK ideographs (provinces, 警, 学, 挂...).
    return ("A" <= ch <= "Z") or ("0" <= ch <= "9") or ("\u4e00" <= ch <= "\u9fff")


def clean_plate(text: str) -> str:
    """Validate an exact search plate: upper-cased, plate characters only."""
    plate = text.strip().upper()
    if not plate:
        raise PatternError("plate is empty")
    if len(plate) > MAX_PATTERN_CHARS:
        raise PatternError(f"plate is longer than {MAX_PATTERN_CHARS} characters")
    bad = sorted({c for c in plate if not _allowed(c)})
    if bad:
        raise PatternError(f"plate has characters a plate cannot have: {' '.join(repr(c) for c in bad)}")
    return plate


@dataclass(frozen=True, slots=True)
class Pattern:
    """A validated partial plate: the GLOB text (safe: only plate characters, * and ?) and its literal ends."""

    glob: str
    prefix: str
    suffix: str

    @property
    def exact(self) -> bool:
        return "*" not in self.glob and "?" not in self.glob


def parse_pattern(text: str) -> Pattern:
    """``鲁A*23?5`` -> Pattern; refuses anything but plate characters, ``*`` and ``?``."""
    pattern = re.sub(r"\*+", "*", text.strip().upper())
    if not pattern:
        raise PatternError("pattern is empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"pattern is longer than {MAX_PATTERN_CHARS} characters")
    bad = sorted({c for c in pattern if c not in "*?" and not _allowed(c)})
    if bad:
        raise PatternError(
            "pattern may hold plate characters, * (any run) and ? (one character) only; "
            f"not {' '.join(repr(c) for c in bad)}"
        )
    literals = sum(1 for c in pattern if c not in "*?")
    if literals < MIN_PATTERN_LITERALS:
        raise PatternError(f"pattern needs at least {MIN_PATTERN_LITERALS} known characters")
    prefix = re.match(r"[^*?]*", pattern).group(0)  # type: ignore[union-attr]
    suffix = re.search(r"[^*?]*$", pattern).group(0)  # type: ignore[union-attr]
    return Pattern(pattern, prefix, suffix)


def _selectivity(literal: str, head: bool) -> float:
    """Rough share of plates a literal head (or tail) keeps: provinces barely narrow, serial characters do."""
    share = 1.0
    for i, ch in enumerate(literal):
        share *= 0.6 if (head and i == 0 and ch >= "\u4e00") else 1 / 12 if (head and i == 1) else 1 / 30
    return share


def _upper_bound(prefix: str) -> str:
    """The smallest text greater than every text starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True, slots=True)
class Narrowing:
    """How to find a pattern's plates among a day's distinct plates, whatever the database: an index range
    ``[low, high)`` on ``column`` (``plate``, or ``rplate``, the plate reversed), then ``glob`` (``*`` any
    run, ``?`` one character) on that same column; no range (``column`` None) scans every plate."""

    column: str | None
    low: str
    high: str
    glob: str


def narrowing(p: Pattern) -> Narrowing:
    """The literal head or tail of a pattern, whichever is estimated more selective, as an index range."""
    head = _selectivity(p.prefix, True) if p.prefix else 1.0
    tail = _selectivity(p.suffix, False) if p.suffix else 1.0
    if p.prefix and head <= tail:
        return Narrowing("plate", p.prefix, _upper_bound(p.prefix), p.glob)
    if p.suffix:
        r = p.suffix[::-1]
        return Narrowing("rplate", r, _upper_bound(r), p.glob[::-1])
    return Narrowing(None, "", "", p.glob)


def candidate_query(p: Pattern) -> tuple[str, tuple[str, ...]]:
    """SQL (constant text) and parameters selecting the plate_ids a pattern matches in one day file."""
    if p.exact:
        return "SELECT plate_id FROM plates WHERE plate = ?", (p.glob,)
    n = narrowing(p)
    # GLOB is applied to the indexed column itself (the reversed pattern to the reversed plate), so
    # the candidates are found in the index alone, without fetching a row per plate looked at.
    if n.column == "plate":
        return "SELECT plate_id FROM plates WHERE plate >= ? AND plate < ? AND plate GLOB ?", (
            n.low,
            n.high,
            n.glob,
        )
    if n.column == "rplate":
        return (
            "SELECT plate_id FROM plates WHERE rplate >= ? AND rplate < ? AND rplate GLOB ?",
            (n.low, n.high, n.glob),
        )
    return "SELECT plate_id FROM plates INDEXED BY plates_plate WHERE plate GLOB ?", (p.glob,)
