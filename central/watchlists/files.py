"""Watchlist entries from and to CSV and JSON files: parse, check, export, and diff.

Pure functions over bytes (no database, no network), so the command line, the web API and the
upstream poller import a file the same way. Import is atomic by default: any bad row rejects the
whole file with every problem and its line number; ``skip_invalid`` keeps the good rows instead.
Problems with the file itself (not UTF-8, bad header, malformed JSON array, CSV syntax error) reject
it even then: when a file cannot be read to its end, no row of it is trusted, and a half-read list
applied as a sync would delete the entries that were never read.

Columns (CSV header names, JSON keys): ``plate`` (required), ``colour``, ``vehicle_type``,
``reason``, ``case_ref``, ``valid_from``, ``valid_until`` (ISO 8601 with an offset, unix seconds,
or empty) and ``entry_id`` (empty: ``entry_id_for``, stable across re-imports of the same file).
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import msgspec

from protocols import plates
from protocols.errors import CordonError
from protocols.feed import EntryDelete, EntryUpsert, FeedChange
from protocols.matching import Entry, ListAction, Watchlist
from protocols.times import TimeError, parse_time

__all__ = [
    "COLUMNS",
    "Format",
    "ImportRejected",
    "ImportResult",
    "Problem",
    "diff_entries",
    "entry_id_for",
    "export_entries",
    "parse_entries",
]

Format = Literal["csv", "json"]

COLUMNS: tuple[str, ...] = (
    "plate",
    "colour",
    "vehicle_type",
    "reason",
    "case_ref",
    "valid_from",
    "valid_until",
    "entry_id",
)
MAX_PLATE_CHARS = plates.MAX_PLATE_CHARS  # 16: normalize cuts there
MAX_ENTRY_ID_CHARS = 128  # the feed's id limit (protocols.feed.Id)
MAX_TEXT_CHARS = 1000  # reason, case_ref, vehicle_type: far beyond any real value
PROGRESS_EVERY = 10_000
MAX_LISTED_PROBLEMS = 50  # in the exception's message; ``problems`` keeps them all
# Times outside 1970..9999 are typos (milliseconds for seconds, a lost digit), not validity windows.
MIN_TIME = 0.0
MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z

_WILDCARDS = "*?"
_WIDE_WILDCARDS = {ord("＊"): "*", ord("？"): "?"}
_BYTE_AT = re.compile(r"byte (\d+)")


class Problem(msgspec.Struct, frozen=True):
    """One bad row (or header, or file): ``line`` as the user sees it, 0 for the file as a whole."""

    line: int
    reason: str


class ImportRejected(CordonError, ValueError):
    """A file that was not imported; ``problems`` lists every problem with its line number."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "; ".join(f"line {p.line}: {p.reason}" for p in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"; and {more} more" if more > 0 else ""
        super().__init__(f"import rejected, {len(problems)} problem(s): {shown}{tail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


class ImportResult(msgspec.Struct):
    entries: list[Entry]
    problems: list[Problem]
    rows: int  # data rows read (blank lines not counted), good and bad


def entry_id_for(list_id: str, plate: str, colour: str | None, vehicle_type: str | None) -> str:
    """The default, stable id of an entry, from its canonical list, plate, colour and vehicle type.

    ``list:plate``, then ``:colour`` when given, then ``:vehicle_type`` when given (after an empty
    colour slot when there is no colour, so a type never reads as a colour).
    """
    entry_id = f"{list_id}:{plate}"
    if colour:
        entry_id += f":{colour}"
    if vehicle_type:
        entry_id += f":{vehicle_type}" if colour else f"::{vehicle_type}"
    return entry_id


# ---------------------------------------------------------------------------------------------
# Field rules


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text or "＊" in text or "？" in text


def _wildcard_count(text: str) -> int:
    text = text.translate(_WIDE_WILDCARDS)
    return text.count("*") + text.count("?")


@lru_cache(maxsize=4096)
def _significant(ch: str) -> bool:
    """Whether ``normalize`` keeps the character (anything it drops is a separator or space)."""
    # Behind a letter, so no colour word or no-plate word can form around it.
    return plates.normalize("Z" + ch).plate != "Z"


def _too_long(raw: str, plate: str) -> bool:
    """Whether the plate is over the limit, which ``normalize`` enforces by cutting silently."""
    if len(plate) != MAX_PLATE_CHARS:
        return len(plate) > MAX_PLATE_CHARS
    # Drop the last character normalize keeps: the plate was cut iff what is left still fills it.
    end = len(raw)
    while end and not _significant(raw[end - 1]):
        end -= 1
    return len(plates.normalize(raw[: end - 1]).plate) >= MAX_PLATE_CHARS


def _pattern_by_parts(raw: str) -> tuple[str, plates.PlateColour | None]:
    """Normalize the literal parts of a pattern around its wildcards (if normalize drops them)."""
    parts = re.split(r"([*?])", raw.translate(_WIDE_WILDCARDS))
    out: list[str] = []
    colour: plates.PlateColour | None = None
    for part in parts:
        if part in ("*", "?"):
            out.append(part)
        elif part:
            norm = plates.normalize(part)
            colour = colour or norm.colour
            out.append(norm.plate)
    return "".join(out), colour


def _plate(raw: str, problems: list[str]) -> tuple[str, plates.PlateColour | None]:
    """The canonical entry plate (patterns keep ``*`` and ``?``) and any colour word it carried."""
    norm = plates.normalize(raw)
    if norm.no_plate or not norm.plate:
        problems.append("empty plate" if not raw.strip() else f"no plate in {raw.strip()[:40]!r}")
        return "", None
    plate, colour = norm.plate, norm.colour
    if _has_wildcard(raw) and _wildcard_count(plate) < _wildcard_count(raw) and not _too_long(raw, plate):
        plate, colour = _pattern_by_parts(raw)
    if _too_long(raw, plate):
        problems.append(f"plate is longer than {MAX_PLATE_CHARS} characters")
        return "", None
    if _has_wildcard(plate) and not plate.strip(_WILDCARDS):
        problems.append(f"pattern {plate!r} has no literal character: it would match every plate")
        return "", None
    return plate, colour


@lru_cache(maxsize=1024)  # files repeat the same few validity dates on row after row
def _time_text(text: str) -> float | str:
    """Seconds from ISO 8601 text with an offset, or from unix seconds; a str is the problem."""
    try:
        return parse_time(text)
    except TimeError as exc:
        return str(exc)


def _parse_time(value: str | float | None, what: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        when = _time_text(text)
        if isinstance(when, str):
            problems.append(f"{what} {when}")
            return None
    else:
        when = float(value)
    if not (math.isfinite(when) and MIN_TIME <= when <= MAX_TIME):
        problems.append(f"{what} {value!r} is out of range (1970 to 9999)")
        return None
    return when


def _text(value: str | None, what: str, problems: list[str], *, strip: bool) -> str:
    if not value:
        return ""
    if strip:
        value = value.strip()
    if len(value) > MAX_TEXT_CHARS:
        problems.append(f"{what} is longer than {MAX_TEXT_CHARS} characters")
    return value


class _Builder:
    """Checks one row's fields and makes its Entry; remembers ids to catch duplicates."""

    def __init__(self, list_id: str, created_by: str) -> None:
        self.list_id = list_id
        self.created_by = created_by
        self.seen: dict[str, int] = {}
        self.colours: dict[str, plates.PlateColour | None] = {}

    def colour(self, value: str, problems: list[str]) -> plates.PlateColour | None:
        if value not in self.colours:
            self.colours[value] = plates.parse_colour(value)
        colour = self.colours[value]
        if colour is None:
            problems.append(f"unknown plate colour {value[:40]!r}")
        return colour

    def build(
        self,
        line: int,
        plate_raw: str,
        colour_raw: str | None,
        vehicle_type_raw: str | None,
        reason_raw: str | None,
        case_ref_raw: str | None,
        valid_from_raw: str | float | None,
        valid_until_raw: str | float | None,
        entry_id_raw: str | None,
    ) -> Entry | list[str]:
        problems: list[str] = []
        plate, plate_colour = _plate(plate_raw, problems)
        colour_text = colour_raw.strip() if colour_raw else ""
        colour = self.colour(colour_text, problems) if colour_text else plate_colour
        if colour_text and colour and plate_colour and colour is not plate_colour:
            problems.append(f"colour {colour} disagrees with the colour word {plate_colour} in the plate")
        vehicle_type = _text(vehicle_type_raw, "vehicle_type", problems, strip=True) or None
        reason = _text(reason_raw, "reason", problems, strip=False)
        case_ref = _text(case_ref_raw, "case_ref", problems, strip=False)
        valid_from = _parse_time(valid_from_raw, "valid_from", problems)
        valid_until = _parse_time(valid_until_raw, "valid_until", problems)
        if valid_from is not None and valid_until is not None and valid_from > valid_until:
            problems.append("valid_from is after valid_until")
        entry_id = entry_id_raw.strip() if entry_id_raw else ""
        if not entry_id and plate:
            entry_id = entry_id_for(self.list_id, plate, colour.value if colour else None, vehicle_type)
        if len(entry_id) > MAX_ENTRY_ID_CHARS:
            problems.append(f"entry_id is longer than {MAX_ENTRY_ID_CHARS} characters")
        if problems:
            return problems
        first = self.seen.setdefault(entry_id, line)
        if first != line:
            return [f"duplicate entry_id {entry_id!r} (first on line {first})"]
        return Entry(
            entry_id=entry_id,
            list_id=self.list_id,
            plate=plate,
            colour=colour.value if colour else None,
            vehicle_type=vehicle_type,
            reason=reason,
            case_ref=case_ref,
            valid_from=valid_from,
            valid_until=valid_until,
            created_by=self.created_by,
        )


class _Collector:
    """Gathers entries and problems, and reports progress."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.entries: list[Entry] = []
        self.problems: list[Problem] = []
        self.rows = 0
        self.progress = progress

    def add(self, line: int, built: Entry | list[str]) -> None:
        if isinstance(built, Entry):
            self.entries.append(built)
        else:
            self.problems.extend(Problem(line, reason) for reason in built)
        self.rows += 1
        if self.progress is not None and self.rows % PROGRESS_EVERY == 0:
            self.progress(self.rows)


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_entries(
    data: bytes,
    fmt: Format,
    list_id: str,
    *,
    created_by: str,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """The entries of a CSV or JSON (array or JSON Lines) file for list ``list_id``.

    Raises ``ImportRejected`` with every problem when any row is bad, unless ``skip_invalid``
    (then the good entries come back with the problems). ``progress(rows_done)`` is called every
    ``PROGRESS_EVERY`` rows.
    """
    if fmt not in ("csv", "json"):
        raise ValueError(f"unknown import format {fmt!r}: use csv or json")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    text = _utf8(data)
    builder = _Builder(list_id, created_by)
    out = _Collector(progress)
    if fmt == "csv":
        _parse_csv(text, builder, out)
    else:
        _parse_json(data, text, builder, out)
    if out.problems and not skip_invalid:
        raise ImportRejected(out.problems)
    return ImportResult(entries=out.entries, problems=out.problems, rows=out.rows)


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportRejected(
            [
                Problem(
                    line,
                    f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                    "save it as UTF-8",
                )
            ]
        ) from None


#: A list file names each row's list and the list's settings, beside an entry's columns (``COLUMNS``).
LIST_COLUMNS: tuple[str, ...] = ("list", "action", "priority")


@dataclass(slots=True)
class ListFile:
    """What a list file holds: its lists (by id) and their entries."""

    lists: dict[str, Watchlist] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)


def parse_list_file(data: bytes, source: str, known: Mapping[str, Watchlist] | None = None) -> ListFile:
    """The lists and entries of a list file (CSV; the hub's ``watchlists.csv``): each row has an entry's
    columns, read and checked exactly as an import into its list reads them (so a row gets the same entry
    id either way: ``entry_id_for``), and ``list`` (the list's id and name), ``action`` and ``priority``,
    which must agree across the rows of a list and with ``known`` (lists of files read before).
    All or nothing: any bad row raises ``ImportRejected`` with every problem and its line."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    reader = csv.reader(io.StringIO(_utf8(data), newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise ImportRejected([Problem(1, "the file is empty: a header row is required")]) from None
    except csv.Error as exc:
        raise ImportRejected([Problem(1, f"CSV syntax error in the header: {exc}")]) from None
    known_columns = LIST_COLUMNS + COLUMNS
    problems = [
        Problem(1, reason)
        for reason in (
            f"header has unknown column(s) {', '.join(n for n in header if n not in known_columns)}"
            if any(n not in known_columns for n in header)
            else "",
            f"header lacks column(s) {', '.join(c for c in ('plate', 'list') if c not in header)}"
            if "plate" not in header or "list" not in header
            else "",
            f"column(s) given twice: {', '.join(sorted({n for n in header if header.count(n) > 1}))}"
            if len(set(header)) < len(header)
            else "",
        )
        if reason
    ]
    if problems:
        raise ImportRejected(problems)
    width = len(header)
    pick = operator.itemgetter(*(header.index(c) if c in header else width for c in COLUMNS))
    out, builders = ListFile(), {}
    known = known or {}
    last = reader.line_num
    try:
        for row in reader:
            line, last = last + 1, reader.line_num
            if not any(row):
                continue
            if len(row) != width:
                problems.append(Problem(line, f"{len(row)} field(s), the header has {width}"))
                continue
            row.append("")
            cell = dict(zip(header, row, strict=False))
            wrong = _list_of_row(cell, out.lists, known, source)
            if isinstance(wrong, str):
                problems.append(Problem(line, wrong))
                continue
            builder = builders.setdefault(wrong.list_id, _Builder(wrong.list_id, source))
            built = builder.build(line, *pick(row))
            if isinstance(built, Entry):
                out.entries.append(built)
            else:
                problems.extend(Problem(line, reason) for reason in built)
    except csv.Error as exc:
        raise ImportRejected([*problems, Problem(last + 1, f"CSV syntax error: {exc}")]) from None
    if problems:
        raise ImportRejected(problems)
    return out


def _list_of_row(
    cell: Mapping[str, str], found: dict[str, Watchlist], known: Mapping[str, Watchlist], source: str
) -> Watchlist | str:
    """The list a row of a list file names (made on its first row), or the problem with it."""
    name = cell.get("list", "").strip()
    if not name:
        return "empty list name"
    try:
        action = ListAction((cell.get("action") or "intercept").strip())
    except ValueError:
        return "action must be intercept, covert or notify"
    try:
        priority = int((cell.get("priority") or "50").strip())
    except ValueError:
        priority = -1
    if not 0 <= priority <= 100:
        return "priority must be a whole number from 0 to 100"
    wl = known.get(name) or found.get(name)
    if wl is None:
        wl = found[name] = Watchlist(list_id=name, name=name, action=action, priority=priority, source=source)
    elif wl.action != action or wl.priority != priority:
        return f"list {name!r} already has action {wl.action} priority {wl.priority}"
    return wl


def _parse_csv(text: str, builder: _Builder, out: _Collector) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected([Problem(1, "the file is empty: a header row is required")]) from None
    except csv.Error as exc:
        raise ImportRejected([Problem(1, f"CSV syntax error in the header: {exc}")]) from None
    names = [name.strip().lower() for name in header]
    problems: list[Problem] = []
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        problems.append(
            Problem(1, f"unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(COLUMNS)}")
        )
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        problems.append(Problem(1, f"column(s) given twice: {', '.join(doubled)}"))
    if "plate" not in names:
        problems.append(Problem(1, "the header has no plate column"))
    if problems:
        raise ImportRejected(problems)

    width = len(names)
    # Missing optional columns read from one extra empty field appended to each row.
    pick = operator.itemgetter(*(names.index(c) if c in names else width for c in COLUMNS))
    build, add = builder.build, out.add
    last = reader.line_num
    try:
        for row in reader:
            line, last = last + 1, reader.line_num
            if not any(row):
                continue  # blank line, or a spreadsheet's row of empty cells
            if len(row) != width:
                add(line, [f"{len(row)} field(s), the header has {width}"])
                continue
            row.append("")
            add(line, build(line, *pick(row)))
    except csv.Error as exc:
        raise ImportRejected([*out.problems, Problem(last + 1, f"CSV syntax error: {exc}")]) from None


_JSON_TEXT_KEYS = ("colour", "vehicle_type", "reason", "case_ref", "entry_id")


def _json_item(line: int, item: object, builder: _Builder) -> Entry | list[str]:
    if not isinstance(item, dict):
        return [f"expected an object, got {type(item).__name__}"]
    problems: list[str] = []
    unknown = [key for key in item if key not in COLUMNS]
    if unknown:
        problems.append(f"unknown key(s) {', '.join(map(repr, unknown))}")
    plate = item.get("plate")
    if not isinstance(plate, str):
        problems.append("no plate" if plate is None else "plate must be a string")
        plate = ""
    for key in _JSON_TEXT_KEYS:
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{key} must be a string or null")
    for key in ("valid_from", "valid_until"):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            problems.append(f"{key} must be ISO 8601 text, unix seconds or null")
    if problems:
        return problems
    return builder.build(
        line,
        plate,
        item.get("colour"),
        item.get("vehicle_type"),
        item.get("reason"),
        item.get("case_ref"),
        item.get("valid_from"),
        item.get("valid_until"),
        item.get("entry_id"),
    )


def _decode_error(exc: msgspec.DecodeError, text: str) -> str:
    """The decoder's message, with the text line of the byte it names."""
    found = _BYTE_AT.search(str(exc))
    if found is None:
        return str(exc)
    offset = int(found.group(1))
    line = text.encode()[:offset].count(b"\n") + 1
    return f"{exc} (text line {line})"


def _parse_json(data: bytes, text: str, builder: _Builder, out: _Collector) -> None:
    start = text.lstrip()[:1]
    if not start:
        raise ImportRejected([Problem(0, "the file is empty (an empty list is written [])")])
    if start == "[":
        try:
            items = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise ImportRejected([Problem(0, _decode_error(exc, text))]) from None
        for number, item in enumerate(items, start=1):
            out.add(number, _json_item(number, item, builder))
        return
    # JSON Lines: one object per line; a bad line is a bad row, the others still count.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            item = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            out.add(number, [f"malformed JSON: {exc}"])
            continue
        out.add(number, _json_item(number, item, builder))


# ---------------------------------------------------------------------------------------------
# Export and diff


def _format_time(when: float | None) -> str | float | None:
    """ISO 8601 in UTC for whole seconds (readable), else the exact number (round-trips)."""
    if when is None:
        return None
    if when == int(when):
        try:
            return datetime.fromtimestamp(when, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            pass
    return when


def _export_row(entry: Entry) -> tuple[str | float | None, ...]:
    # A default id is left out, so importing the file into another list gives that list's ids
    # instead of colliding with this one's; re-importing into this list recreates it.
    default_id = entry_id_for(entry.list_id, entry.plate, entry.colour, entry.vehicle_type)
    return (
        entry.plate,
        entry.colour,
        entry.vehicle_type,
        entry.reason,
        entry.case_ref,
        _format_time(entry.valid_from),
        _format_time(entry.valid_until),
        None if entry.entry_id == default_id else entry.entry_id,
    )


def export_entries(entries: Iterable[Entry], fmt: Format) -> bytes:
    """Entries as a CSV (header ``COLUMNS``) or JSON array file that ``parse_entries`` reads back."""
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(
            ["" if value is None else repr(value) if isinstance(value, float) else value for value in row]
            for row in map(_export_row, entries)
        )
        return buf.getvalue().encode("utf-8")
    if fmt == "json":
        return msgspec.json.encode([dict(zip(COLUMNS, _export_row(entry), strict=True)) for entry in entries])
    raise ValueError(f"unknown export format {fmt!r}: use csv or json")


def _same_content(old: Entry, new: Entry) -> bool:
    # Who imported it is provenance, not content: re-importing an unchanged file is no change.
    if old.created_by != new.created_by:
        new = msgspec.structs.replace(new, created_by=old.created_by)
    return old == new


def diff_entries(old: Mapping[str, Entry], new: Iterable[Entry]) -> list[FeedChange]:
    """The changes that turn ``old`` (entry_id -> entry) into exactly ``new``.

    Deletes for ids no longer present, then upserts for new or changed entries, each sorted by
    entry_id. ``created_by`` alone differing is not a change.
    """
    wanted = {entry.entry_id: entry for entry in new}
    changes: list[FeedChange] = [EntryDelete(entry_id=entry_id) for entry_id in sorted(old.keys() - wanted)]
    for entry_id in sorted(wanted):
        entry = wanted[entry_id]
        before = old.get(entry_id)
        if before is None or not _same_content(before, entry):
            changes.append(EntryUpsert(entry=entry))
    return changes
