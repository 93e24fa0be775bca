"""The canonical plate form and the Chinese plate rules (GA 36-2018).

Plates arrive as untrusted camera text. ``normalize`` turns whatever a camera sent into the one
canonical form every other module compares (and says when the text itself came damaged); ``check``
says whether that form fits a plate the standard allows. A plate that fails ``check`` is still a read: misreads are exactly what the
watchlist matcher exists for, so validity is a flag, never a reason to drop anything.

Pure: standard library only, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "NO_PLATE_WORDS",
    "PROVINCES",
    "Normalized",
    "PlateCheck",
    "PlateColour",
    "PlateKind",
    "check",
    "expected_colours",
    "normalize",
    "parse_colour",
]

PROVINCES: str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

# Authority letters and serial characters: I and O are left out because they read as 1 and 0.
AUTHORITY_LETTERS: str = "ABCDEFGHJKLMNPQRSTUVWXYZ"
SERIAL_CHARS: str = AUTHORITY_LETTERS + "0123456789"
DIGITS: str = "0123456789"
NEW_ENERGY_MARKS: str = "DF"  # D = pure electric, F = other new energy (hybrid, fuel cell)

MAX_PLATE_CHARS = 16
# Only so a megabyte of junk costs nothing; far beyond anything a camera sends for one plate.
_MAX_RAW_CHARS = 1024


class PlateColour(StrEnum):
    BLUE = "blue"
    YELLOW = "yellow"
    GREEN = "green"
    YELLOW_GREEN = "yellow_green"
    WHITE = "white"
    BLACK = "black"


class PlateKind(StrEnum):
    REGULAR = "regular"
    NEW_ENERGY_SMALL = "new_energy_small"
    NEW_ENERGY_LARGE = "new_energy_large"
    TRAILER = "trailer"  # 挂
    COACH = "coach"  # 学
    POLICE = "police"  # 警
    HONG_KONG = "hong_kong"  # 港
    MACAO = "macao"  # 澳
    EMBASSY = "embassy"  # 使
    CONSULATE = "consulate"  # 领


NO_PLATE_WORDS: frozenset[str] = frozenset(
    {
        "",
        "无车牌",
        "无牌",
        "无牌车",
        "无号牌",
        "车牌",
        "未识别",
        "无法识别",
        "未知",
        "无",
        "unknown",
        "noplate",
        "no plate",
        "none",
        "null",
        "n/a",
    }
)

_EXPECTED_COLOURS: dict[PlateKind, frozenset[PlateColour]] = {
    PlateKind.REGULAR: frozenset({PlateColour.BLUE, PlateColour.YELLOW}),
    PlateKind.NEW_ENERGY_SMALL: frozenset({PlateColour.GREEN}),
    PlateKind.NEW_ENERGY_LARGE: frozenset({PlateColour.YELLOW_GREEN}),
    PlateKind.TRAILER: frozenset({PlateColour.YELLOW}),
    PlateKind.COACH: frozenset({PlateColour.YELLOW}),
    PlateKind.POLICE: frozenset({PlateColour.WHITE}),
    PlateKind.HONG_KONG: frozenset({PlateColour.BLACK}),
    PlateKind.MACAO: frozenset({PlateColour.BLACK}),
    PlateKind.EMBASSY: frozenset({PlateColour.BLACK}),
    PlateKind.CONSULATE: frozenset({PlateColour.BLACK}),
}

# The character that ends a 7-character suffix plate, and the kind it makes.
_SUFFIX_KINDS: dict[str, PlateKind] = {
    "挂": PlateKind.TRAILER,
    "学": PlateKind.COACH,
    "警": PlateKind.POLICE,
    "港": PlateKind.HONG_KONG,
    "澳": PlateKind.MACAO,
    "领": PlateKind.CONSULATE,
}

# ---------------------------------------------------------------------------------------------
# Text cleaning

_SEPARATORS = frozenset(
    "·•.-_ "  # the ASCII and common ones cameras put between plate groups
    "\u3000"  # ideographic (full-width) space
    "\u2027\u2219\u22c5\u30fb\uff65"  # hyphenation point, bullet operator, dot operator, katakana dots
    "\u2010\u2011\u2012\u2013\u2014\u2212"  # hyphens and dashes
    "\u3002"  # ideographic full stop
)

# Full-width ASCII (U+FF01..U+FF5E) maps to ASCII by a fixed offset; lower-case ASCII to upper.
# Done by table rather than NFKC or str.upper() so cleaning is predictable and idempotent: only
# ASCII changes, every other character passes through untouched.
_CLEAN_TABLE: dict[int, int] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_CLEAN_TABLE.update({cp: cp - 0xFEE0 - 32 for cp in range(0xFF41, 0xFF5B)})  # full-width a-z → A-Z
_CLEAN_TABLE.update({cp: cp - 32 for cp in range(ord("a"), ord("z") + 1)})
_CLEAN_TABLE[0x3000] = 0x20


# Control characters (C0 but the tab and line ends that wrap text, DEL, C1) are no part of any plate
# text: a camera that sends one is broken, so cleaning them away must not make a clean read.
_DAMAGE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _clean(text: str) -> str:
    """Half-width, upper-case ASCII; no whitespace, separators, control or format characters."""
    text = text[:_MAX_RAW_CHARS].translate(_CLEAN_TABLE)
    return "".join(
        ch
        for ch in text
        if ch not in _SEPARATORS
        and not ch.isspace()
        # Cc control, Cf format (zero-width space, BOM, bidi marks), Cs lone surrogates
        and unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )


_NO_PLATE_KEYS: frozenset[str] = frozenset(_clean(word) for word in NO_PLATE_WORDS)

# Colour words some cameras prepend to the plate, longest first so 黄绿 wins over 黄.
_COLOUR_WORDS: tuple[tuple[str, PlateColour], ...] = (
    ("渐变绿", PlateColour.GREEN),
    ("黄绿", PlateColour.YELLOW_GREEN),
    ("蓝", PlateColour.BLUE),
    ("黄", PlateColour.YELLOW),
    ("绿", PlateColour.GREEN),
    ("白", PlateColour.WHITE),
    ("黑", PlateColour.BLACK),
)
_COLOUR_PREFIXES: tuple[tuple[str, PlateColour], ...] = tuple(
    sorted(
        ((word + tail, colour) for word, colour in _COLOUR_WORDS for tail in ("牌", "色", "")),
        key=lambda item: -len(item[0]),
    )
)
_PLATE_STARTS = PROVINCES + "使"


def _strip_colour_prefix(text: str) -> tuple[str, PlateColour | None] | None:
    """Remove one leading colour word; None when there is none to remove."""
    for prefix, colour in _COLOUR_PREFIXES:
        if not text.startswith(prefix):
            continue
        rest = text[len(prefix) :]
        # A bare 黑 is also Heilongjiang's province character: 黑A12345 is a plate, not a colour.
        # Only read it as a colour when another plate start follows (黑黑A12345, 黑粤Z1234港).
        if prefix == "黑" and not (rest and rest[0] in _PLATE_STARTS):
            return None
        return rest, colour
    return None


@dataclass(frozen=True, slots=True)
class Normalized:
    plate: str
    colour: PlateColour | None
    no_plate: bool
    problem: str | None = None
    """Set when the camera's text came damaged: the plate is still matched, the read is not valid."""


_NO_PLATE = Normalized("", None, True)


def normalize(raw: str) -> Normalized:
    """Canonical plate text from untrusted camera text; never raises."""
    if not isinstance(raw, str):
        return _NO_PLATE
    text = _clean(raw)
    if text in _NO_PLATE_KEYS:
        return _NO_PLATE
    colour: PlateColour | None = None
    # Strip until nothing strippable is left, so normalizing the output changes nothing.
    while (stripped := _strip_colour_prefix(text)) is not None:
        text, found = stripped
        colour = colour or found
        if text in _NO_PLATE_KEYS:  # 蓝牌 alone, 黄无牌: a colour but no plate
            return _NO_PLATE
    damage = _DAMAGE.search(raw, 0, _MAX_RAW_CHARS)
    problem = f"control character {damage[0]!r} in the plate text" if damage else None
    return Normalized(text[:MAX_PLATE_CHARS], colour, False, problem)


# ---------------------------------------------------------------------------------------------
# Colours

_COLOUR_NAMES: dict[str, PlateColour] = {
    "blue": PlateColour.BLUE,
    "yellow": PlateColour.YELLOW,
    "green": PlateColour.GREEN,
    "white": PlateColour.WHITE,
    "black": PlateColour.BLACK,
    "yellowgreen": PlateColour.YELLOW_GREEN,  # Dahua "YellowGreen"; also yellow_green, yellow-green
    "蓝": PlateColour.BLUE,
    "蓝色": PlateColour.BLUE,
    "蓝牌": PlateColour.BLUE,
    "黄": PlateColour.YELLOW,
    "黄色": PlateColour.YELLOW,
    "黄牌": PlateColour.YELLOW,
    "绿": PlateColour.GREEN,
    "绿色": PlateColour.GREEN,
    "绿牌": PlateColour.GREEN,
    "渐变绿": PlateColour.GREEN,
    "黄绿": PlateColour.YELLOW_GREEN,
    "黄绿色": PlateColour.YELLOW_GREEN,
    "黄绿牌": PlateColour.YELLOW_GREEN,
    "黄绿双拼": PlateColour.YELLOW_GREEN,
    "白": PlateColour.WHITE,
    "白色": PlateColour.WHITE,
    "白牌": PlateColour.WHITE,
    "黑": PlateColour.BLACK,
    "黑色": PlateColour.BLACK,
    "黑牌": PlateColour.BLACK,
}


def parse_colour(value: str | None) -> PlateColour | None:
    """A PlateColour from an English, Chinese or vendor colour name; None when unknown."""
    if not isinstance(value, str):
        return None
    # _clean drops "_", "-" and spaces, so yellow_green, yellow-green and yellowGreen meet.
    return _COLOUR_NAMES.get(_clean(value).lower())


def expected_colours(kind: PlateKind) -> frozenset[PlateColour]:
    """The plate colours the standard allows for a kind of plate."""
    return _EXPECTED_COLOURS[kind]


# ---------------------------------------------------------------------------------------------
# Plate rules


@dataclass(frozen=True, slots=True)
class PlateCheck:
    valid: bool
    kind: PlateKind | None
    problem: str | None


def _invalid(problem: str, kind: PlateKind | None = None) -> PlateCheck:
    return PlateCheck(False, kind, problem)


def _serial_problem(serial: str) -> str | None:
    for ch in serial:
        if ch in "IO":
            return "serial contains I or O"
        if ch not in SERIAL_CHARS:
            return f"serial character {ch!r} is not a letter or digit"
    return None


def _digits_problem(part: str, what: str) -> str | None:
    if all(ch in DIGITS for ch in part):
        return None
    return f"{what} must be digits, got {part!r}"


def _structure(plate: str) -> PlateCheck:
    """Kind and problem from the characters alone, before any colour is considered."""
    first = plate[0]
    if first == "使":
        if len(plate) != 7:
            return _invalid(f"length {len(plate)}, expected 7 for a 使 plate", PlateKind.EMBASSY)
        problem = _digits_problem(plate[1:], "the six characters after 使")
        return _invalid(problem, PlateKind.EMBASSY) if problem else PlateCheck(True, PlateKind.EMBASSY, None)

    if first not in PROVINCES:
        return _invalid(f"unknown province character {first!r}")
    if len(plate) not in (7, 8):
        return _invalid(f"length {len(plate)}, expected 7 or 8")
    letter = plate[1]
    if letter in "IO":
        return _invalid(f"authority letter {letter!r} is not used (I and O are left out)")
    if letter not in AUTHORITY_LETTERS:
        return _invalid(f"authority character {letter!r} is not a letter A-Z")

    if len(plate) == 8:
        return _new_energy(plate)

    last = plate[6]
    kind = _SUFFIX_KINDS.get(last)
    if kind is None:
        if last not in SERIAL_CHARS and last not in "IO":
            return _invalid(f"unknown last character {last!r}")
        problem = _serial_problem(plate[2:7])
        return _invalid(problem, PlateKind.REGULAR) if problem else PlateCheck(True, PlateKind.REGULAR, None)

    serial = plate[2:6]
    if kind is PlateKind.CONSULATE:
        problem = _digits_problem(serial, "the four characters before 领")
    else:
        problem = _serial_problem(serial)
    if problem is None and kind in (PlateKind.HONG_KONG, PlateKind.MACAO) and plate[:2] != "粤Z":
        problem = f"{last} plates start with 粤Z, got {plate[:2]!r}"
    return _invalid(problem, kind) if problem else PlateCheck(True, kind, None)


def _new_energy(plate: str) -> PlateCheck:
    """Small new-energy: D/F, one serial character, 4 digits; large: 5 digits, then D/F."""
    body = plate[2:]
    if body[-1] in NEW_ENERGY_MARKS and body[0] not in NEW_ENERGY_MARKS:
        problem = _digits_problem(body[:5], "a large new-energy serial")
        kind = PlateKind.NEW_ENERGY_LARGE
    elif body[0] in NEW_ENERGY_MARKS:
        problem = _serial_problem(body[1]) or _digits_problem(body[2:], "the last four characters")
        kind = PlateKind.NEW_ENERGY_SMALL
    else:
        return _invalid("8-character plate without the new-energy D or F")
    return _invalid(problem, kind) if problem else PlateCheck(True, kind, None)


def check(plate: str, colour: PlateColour | None = None) -> PlateCheck:
    """Whether a normalized plate (and its colour, if known) fits GA 36-2018; never raises."""
    if not isinstance(plate, str) or not plate:
        return _invalid("empty plate")
    result = _structure(plate)
    if not result.valid or colour is None or result.kind is None:
        return result
    if colour not in expected_colours(result.kind):
        return _invalid(f"colour {colour} does not fit a {result.kind} plate", result.kind)
    return result
