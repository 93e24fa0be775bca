"""The one parser of "unix seconds or ISO 8601" times, used by every door a time comes in through.

A time is either unix seconds (a number, or its decimal text) or ISO 8601 text with a UTC offset
(``2026-12-01T08:00:00+08:00``, ``...Z``). Not a time: NaN and infinities (they compare false with
everything, so a window bounded by one would match nothing, or everything), and text that is neither.

Naive ISO 8601 (no offset) is ambiguous: on the hub it would take the hub machine's zone, which need not
be the checkpoint's. So it is refused unless the caller says what it means with ``naive``:

- ``"reject"`` (the default): a ``TimeError`` asking for an offset. Every hub door (API, list files,
  kit results) does this.
- ``"local"``: the zone of the machine parsing it. Only an edge uses this, for its own cameras, which
  stand beside it in its zone and often send local clock times (docs/cameras.md).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Literal

from .errors import CordonError

Naive = Literal["reject", "local"]

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NOT_FINITE = ("nan", "inf", "infinity")  # what float() takes: named, so they are refused as such
_SHOWN = 40  # characters of a bad value repeated in the message


class TimeError(CordonError, ValueError):
    """A value that is not a usable time; the message says what is wrong with it (and quotes it)."""


def parse_time(value: str | float | int, naive: Naive = "reject") -> float:
    """Unix seconds from unix seconds (a number or its text) or ISO 8601 text; raises TimeError."""
    if isinstance(value, bool):
        raise TimeError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        seconds = float(value)
        shown = repr(value)
    else:
        text = value.strip()
        shown = repr(text[:_SHOWN])
        if _NUMBER.fullmatch(text) or text.lower().lstrip("+-") in _NOT_FINITE:
            seconds = float(text)
        else:
            seconds = _iso(text, shown, naive)
    if not math.isfinite(seconds):
        raise TimeError(f"{shown} is not a finite time")
    return seconds


def _iso(text: str, shown: str, naive: Naive) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TimeError(
            f"{shown} is neither unix seconds nor ISO 8601 (not ISO 8601 with a UTC offset such as "
            "2026-12-01T08:00:00+08:00)"
        ) from None
    if moment.tzinfo is None and naive == "reject":
        raise TimeError(f"{shown} has no UTC offset (add Z or +08:00)")
    try:
        return moment.timestamp()  # a naive moment here is in this machine's zone (naive == "local")
    except (OverflowError, OSError, ValueError):
        raise TimeError(f"{shown} is out of range") from None
