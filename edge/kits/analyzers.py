"""Adapters for test results exported by a reading analyzer (CSV and JSON), one per format.

The formats are an *example* of what an analyzer exports (no vendor's real format is copied);
an adapter for a real device maps its export to the same ``AnalyzerTest``. See docs/kits.md.

CSV, one row per panel, header required::

    time,device_serial,test_id,kit_model,lot,expiry,sample_type,panel,result
    2025-03-01T10:15:00+08:00,AX2-00123,T0045,SD-SAL6,L2409A,2026-09-30,saliva,MET,positive

JSON, one object per test::

    {"device_serial": "AX2-00123", "tests": [{"test_id": "T0045", "time": "2025-03-01T10:15:00+08:00",
      "kit_model": "SD-SAL6", "lot": "L2409A", "expiry": "2026-09-30", "sample_type": "saliva",
      "panels": {"MET": "positive", "MOR/OPI": "negative", ...}}]}

``time`` is ISO 8601 with its UTC offset (or unix seconds); ``result`` is positive / negative /
invalid (also POS, NEG, INV, +, -). Every test must report every panel of its kit exactly once.
Bad rows never stop an import: the good tests come back with every problem, by line or position.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from typing import Any

import msgspec

from protocols.kits import Catalogue, KitError, MachineReading, PanelCall
from protocols.times import TimeError, parse_time

MAX_EXPORT_BYTES = 10 * 1024 * 1024
CSV_COLUMNS = (
    "time",
    "device_serial",
    "test_id",
    "kit_model",
    "lot",
    "expiry",
    "sample_type",
    "panel",
    "result",
)
_RESULTS: dict[str, PanelCall] = {
    "positive": "positive",
    "pos": "positive",
    "+": "positive",
    "negative": "negative",
    "neg": "negative",
    "-": "negative",
    "invalid": "invalid",
    "inv": "invalid",
}


class AnalyzerTest(msgspec.Struct, kw_only=True):
    """One test as an analyzer read it: the machine reading of each panel, in the kit's order."""

    test_id: str
    device_serial: str
    read_at: float
    kit_model: str
    lot: str
    expiry: dt.date
    sample_type: str
    panels: list[tuple[str, MachineReading]]


class Problem(msgspec.Struct, kw_only=True):
    where: str
    """``line 7`` (CSV) or ``tests[2]`` (JSON)."""
    reason: str


class AnalyzerImport(msgspec.Struct, kw_only=True):
    tests: list[AnalyzerTest]
    problems: list[Problem]


def _time(value: Any) -> float:
    if value is None or value == "":
        raise KitError("time is missing")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    try:
        return parse_time(value if number else str(value))
    except TimeError as exc:
        raise KitError(f"time {exc}") from None


def _date(value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise KitError(f"expiry {value!r} is not a date (YYYY-MM-DD)") from exc


def _result(value: Any) -> PanelCall:
    call = _RESULTS.get(str(value).strip().lower())
    if call is None:
        raise KitError(f"result {value!r} is not positive, negative or invalid")
    return call


def _text(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None or not str(value).strip():
        raise KitError(f"{key} is missing")
    text = str(value).strip()
    if len(text) > 64:
        raise KitError(f"{key} is longer than 64 characters")
    return text


def _build(head: dict[str, Any], calls: dict[str, PanelCall], catalogue: Catalogue) -> AnalyzerTest:
    """One test from its common fields and its panel calls; ``KitError`` says what is wrong."""
    kit = catalogue.get(_text(head, "kit_model"))
    sample_type = _text(head, "sample_type").lower()
    if sample_type != kit.sample_type:
        raise KitError(f"kit {kit.model} takes {kit.sample_type}, the export says {sample_type}")
    missing = [d for d in kit.panel_codes() if d not in calls]
    extra = [d for d in calls if d not in kit.panel_codes()]
    if missing or extra:
        raise KitError(f"panels do not match kit {kit.model}: missing {missing}, not on the kit {extra}")
    device = _text(head, "device_serial")
    return AnalyzerTest(
        test_id=_text(head, "test_id"),
        device_serial=device,
        read_at=_time(head.get("time")),
        kit_model=kit.model,
        lot=_text(head, "lot"),
        expiry=_date(head.get("expiry")),
        sample_type=sample_type,
        panels=[
            (d, MachineReading(call=calls[d], confidence=1.0, reason=f"analyzer {device}"))
            for d in kit.panel_codes()
        ],
    )


def parse_csv(data: bytes, catalogue: Catalogue) -> AnalyzerImport:
    """The example CSV export: rows grouped into tests by (device_serial, test_id)."""
    if len(data) > MAX_EXPORT_BYTES:
        return AnalyzerImport(
            tests=[], problems=[Problem(where="file", reason=f"larger than {MAX_EXPORT_BYTES} bytes")]
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return AnalyzerImport(
            tests=[], problems=[Problem(where="file", reason=f"not UTF-8 text: {exc.reason}")]
        )
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    absent = [c for c in CSV_COLUMNS if c not in header]
    if absent:
        return AnalyzerImport(
            tests=[], problems=[Problem(where="line 1", reason=f"header lacks columns {absent}")]
        )
    reader.fieldnames = header
    problems: list[Problem] = []
    groups: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = defaultdict(list)
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            problems.append(Problem(where=f"line {line}", reason="wrong number of fields"))
            continue
        device, test_id = (row.get("device_serial") or "").strip(), (row.get("test_id") or "").strip()
        if not device or not test_id:
            problems.append(Problem(where=f"line {line}", reason="device_serial and test_id are required"))
            continue
        groups[(device, test_id)].append((line, row))
    tests = []
    for (device, test_id), rows in groups.items():
        lines = ", ".join(str(n) for n, _ in rows)
        where = f"line {lines}" if len(rows) == 1 else f"lines {lines}"
        try:
            head = rows[0][1]
            for n, row in rows[1:]:
                for key in ("time", "kit_model", "lot", "expiry", "sample_type"):
                    if row[key].strip() != head[key].strip():
                        raise KitError(f"line {n}: {key} differs from line {rows[0][0]} of the same test")
            calls: dict[str, PanelCall] = {}
            for n, row in rows:
                drug = row["panel"].strip().upper()
                if drug in calls:
                    raise KitError(f"line {n}: panel {drug} reported twice")
                try:
                    calls[drug] = _result(row["result"])
                except KitError as exc:
                    raise KitError(f"line {n}: {exc}") from exc
            tests.append(_build(head, calls, catalogue))
        except KitError as exc:
            problems.append(Problem(where=where, reason=f"test {device}/{test_id}: {exc}"))
    return AnalyzerImport(tests=tests, problems=problems)


def parse_json(data: bytes, catalogue: Catalogue) -> AnalyzerImport:
    """The example JSON export: ``{"device_serial": ..., "tests": [...]}``."""
    if len(data) > MAX_EXPORT_BYTES:
        return AnalyzerImport(
            tests=[], problems=[Problem(where="file", reason=f"larger than {MAX_EXPORT_BYTES} bytes")]
        )
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        return AnalyzerImport(tests=[], problems=[Problem(where="file", reason=f"not JSON: {exc}")])
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        return AnalyzerImport(
            tests=[],
            problems=[Problem(where="file", reason='expected {"device_serial": ..., "tests": [...]}')],
        )
    tests, problems = [], []
    for i, item in enumerate(doc["tests"]):
        where = f"tests[{i}]"
        try:
            if not isinstance(item, dict):
                raise KitError("a test must be an object")
            panels = item.get("panels")
            if not isinstance(panels, dict) or not panels:
                raise KitError('"panels" must be an object such as {"MET": "negative"}')
            calls = {str(drug).strip().upper(): _result(value) for drug, value in panels.items()}
            head = dict(item, device_serial=item.get("device_serial", doc.get("device_serial")))
            tests.append(_build(head, calls, catalogue))
        except KitError as exc:
            problems.append(Problem(where=where, reason=str(exc)))
    return AnalyzerImport(tests=tests, problems=problems)


def parse_export(data: bytes, fmt: str, catalogue: Catalogue) -> AnalyzerImport:
    """Dispatch by format name (``csv`` or ``json``)."""
    adapters = {"csv": parse_csv, "json": parse_json}
    if fmt not in adapters:
        raise KitError(f"unknown analyzer export format {fmt!r}; known: {sorted(adapters)}")
    return adapters[fmt](data, catalogue)
