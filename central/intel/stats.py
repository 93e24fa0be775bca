"""The numbers the command center needs: reads, hits, outcomes, quick tests and camera uptime.

Reads, passages and no-plate reads are counted per (record day, checkpoint) as each batch is ingested
(:class:`Tally`, added by the stats store in the writer's transaction, only for events newly stored), so a query never scans
the record. Camera uptime is sampled from each live status (the stats store's ``sample_status``). Alerts, outcomes and
quick tests are few; they are read from their own tables at query time.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from central.record.days import day_of
from central.record.stats import ALL_CAMERAS, FEW_OUTCOMES, GROUPS, Hidden
from protocols.messages import Passage, PlateRead


class Tally:
    """Counts of one batch, written once at its end by the stats store's ``add_daily_counts`` (a job run
    again after a day file is attached starts a new tally, so nothing is counted twice)."""

    def __init__(self, tz: dt.timezone) -> None:
        self.tz = tz
        self.counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])

    def add(self, checkpoint: str, event: object) -> None:
        if isinstance(event, PlateRead):
            c = self.counts[(day_of(event.captured_at, self.tz).isoformat(), checkpoint)]
            c[0] += 1
            c[2] += 1 if event.no_plate else 0
        elif isinstance(event, Passage):
            self.counts[(day_of(event.first_seen, self.tz).isoformat(), checkpoint)][1] += 1


def parse_day(text: str | None, name: str, default: dt.date) -> dt.date:
    if not text:
        return default
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} must be a day as YYYY-MM-DD") from None


CSV_COLUMNS = (
    "key",
    "reads",
    "passages",
    "no_plate",
    "alerts",
    "intercepted",
    "not_found",
    "misread",
    "released",
    "ack_median_s",
    "ack_p90_s",
    "tests",
    "positives",
    "camera_uptime",
    "hits_by_list",
    "hits_by_kind",
    "positives_by_drug",
)


def csv_rows(found: dict[str, Any]) -> list[list[str]]:
    """The summary as CSV rows (header first), every cell safe to open in a spreadsheet."""
    out = [list(CSV_COLUMNS)]
    for r in found["rows"]:
        cells = {**r, **r["outcomes"]}
        for name in ("hits_by_list", "hits_by_kind", "positives_by_drug"):
            cells[name] = ";".join(f"{k}={v}" for k, v in sorted(r[name].items()))
        out.append([safe_cell(cells[c]) for c in CSV_COLUMNS])
    return out


def safe_cell(value: object) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


__all__ = [
    "ALL_CAMERAS",
    "CSV_COLUMNS",
    "FEW_OUTCOMES",
    "GROUPS",
    "Hidden",
    "Tally",
    "csv_rows",
    "parse_day",
    "safe_cell",
]
