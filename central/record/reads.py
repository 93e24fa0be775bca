"""What the hub's record of plain reads and passages is, whatever holds it: the interface and its results.

``ReadStore`` is what the hub needs of the record; ``central.record.sqlite.dayfiles.SqliteReadStore`` (one SQLite
file per day) is the one this hub runs, and a PostgreSQL store (declarative partitions by day,
pg_trgm for partial plates) can implement it too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import msgspec

from central.record.tx import Tx
from protocols.messages import Passage, PlateRead

MAX_LIMIT = 5000


class StoredRead(msgspec.Struct, kw_only=True):
    """One read as a search returns it."""

    checkpoint: str
    epoch: int
    seq: int
    camera_id: str
    captured_at: float
    plate: str
    plate_raw: str
    plate_valid: bool
    no_plate: bool
    colour: str | None
    vehicle_type: str | None
    confidence: float | None
    lane: int | None
    direction: str | None
    camera_event_id: str | None
    received_at: float
    vehicle_colour: str | None = None
    vehicle_brand: str | None = None
    has_evidence: bool = False
    """The edge kept a picture of this read (ask for it: ``GET /api/v1/evidence/...``)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """What happened to one read or passage at insert."""

    inserted: bool
    """New in the record."""
    seen_before: bool = False
    """Already there with the same content (a resend): matching runs again (see the module docstring)."""
    conflict: str | None = None
    """The identity is taken by other content: a dead letter."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    reads: list[StoredRead]
    truncated: bool
    days: int


class Companion(msgspec.Struct, kw_only=True):
    """A vehicle seen near another: its plate, how many of that vehicle's passages it shared, the
    mean gap in seconds, and the shared passages (each with ``gap_s``: + after, - before)."""

    plate: str
    shared: int
    mean_gap_s: float
    passages: list[dict[str, object]]


@dataclass(frozen=True, slots=True)
class Companions:
    route: list[dict[str, object]]
    """The asked-about plate's passages in the period."""
    found: list[Companion]
    candidates: int
    """Vehicles that met ``min_shared`` (``found`` holds the first ``limit`` of them)."""


@dataclass(frozen=True, slots=True)
class RecordCounts:
    reads: int
    passages: int
    days: int


class ReadStore(Protocol):
    """What the hub needs of the record of plain reads and passages (SQLite day files now; PostgreSQL later).

    ``insert`` and ``lookup_read`` run inside the hub store's writer job (``db`` is the write
    connection); the rest run on their own connections, from any thread.
    """

    tz: dt.timezone
    """The fixed UTC offset the record's days are cut in (``record.utc_offset``)."""

    def insert(
        self,
        db: Tx,
        checkpoint: str,
        epoch: int,
        event: PlateRead | Passage,
        edge_sent_at: float,
        received_at: float,
    ) -> Stored: ...

    def lookup_read(
        self, db: Tx, checkpoint: str, epoch: int, seq: int, near: float
    ) -> StoredRead | None: ...

    def identity_taken(self, db: Tx, checkpoint: str, epoch: int, seq: int, near: float) -> bool: ...

    def search_exact(
        self, plate: str, since: float, until: float, limit: int = 500, checkpoint: str | None = None
    ) -> SearchResult: ...

    def search_pattern(
        self, pattern: str, since: float, until: float, limit: int = 500, checkpoint: str | None = None
    ) -> SearchResult: ...

    # -- intelligence: routes and companions ---------------------------------------------------------
    def route(self, plate: str, since: float, until: float, limit: int = MAX_LIMIT) -> SearchResult: ...

    def companions(
        self,
        plate: str,
        since: float,
        until: float,
        window_s: float = 120.0,
        min_shared: int = 3,
        limit: int = 20,
    ) -> Companions: ...

    def counts(self) -> RecordCounts: ...

    def days(self) -> list[dt.date]: ...

    def purge_before(self, cutoff: dt.date) -> list[dt.date]: ...


def rank_companions(
    target: list[dict[str, object]],
    shared: dict[str, dict[int, tuple[float, dict[str, object]]]],
    min_shared: int,
    limit: int,
) -> Companions:
    """Rank the vehicles met near ``target``'s passages, whatever store found them.

    ``shared`` maps each other plate to, for each of the target's passages it shared (by index), its
    closest passage and the gap; plates with at least ``min_shared`` come first by most shared
    passages, then by the smallest mean gap."""
    ranked = []
    for other_plate, by_passage in shared.items():
        if len(by_passage) < min_shared:
            continue
        gaps = [g for g, _ in by_passage.values()]
        ranked.append(
            Companion(
                plate=other_plate,
                shared=len(by_passage),
                mean_gap_s=round(sum(gaps) / len(gaps), 1),
                passages=[
                    {
                        **p,
                        "gap_s": round(float(p["first_seen"]) - float(target[i]["first_seen"]), 1),  # type: ignore[arg-type]
                        "with_seq": target[i]["seq"],
                    }
                    for i, (_, p) in sorted(by_passage.items())
                ],
            )
        )
    ranked.sort(key=lambda c: (-c.shared, c.mean_gap_s, c.plate))
    return Companions(target, ranked[: max(1, limit)], len(ranked))


class SightingSource(Protocol):
    """The record's reads with the vehicle's colour and make, day by day, for the clone index to learn
    after a restart (the SQLite day files give it; the PostgreSQL record does not yet)."""

    tz: dt.timezone

    def days(self) -> list[dt.date]: ...

    def iter_sightings(self, day: dt.date) -> Iterator[tuple[StoredRead, str | None, str | None]]: ...
