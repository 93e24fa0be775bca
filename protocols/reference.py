"""The brute-force matcher: ``match_one`` over every entry, the oracle any index must equal.

``ReferenceIndex`` has the API of ``protocols.plateindex.PlateIndex`` and answers in O(entries)
per read: the tests compare the fast index with it, and it serves feeds small enough not to care.

Pure: standard library and msgspec only, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from protocols.matching import (
    DEFAULT_CLASSES,
    Entry,
    Hit,
    ListKind,
    PermitRule,
    Watchlist,
    match_one,
    sort_hits,
)
from protocols.permits import PERMIT_KINDS, check_permit

__all__ = ["ReferenceIndex", "reference_match"]


def reference_match(
    read_plate: str,
    entries: Iterable[Entry],
    watchlists: dict[str, Watchlist],
    *,
    now: float,
    colour: str | None = None,
    vehicle_type: str | None = None,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    alerting_only: bool = True,
    feed_version: int = 0,
) -> list[Hit]:
    """``match_one`` over every entry: the oracle any index must equal.

    Entries whose list is unknown, or a permit list, are skipped.
    """
    hits = []
    for entry in entries:
        wl = watchlists.get(entry.list_id)
        if wl is None or wl.kind == ListKind.PERMIT:
            continue
        hit = match_one(
            read_plate,
            entry,
            wl,
            now=now,
            colour=colour,
            vehicle_type=vehicle_type,
            classes=classes,
            feed_version=feed_version,
        )
        if hit is not None and (not alerting_only or hit.kind in wl.alert_kinds):
            hits.append(hit)
    return sort_hits(hits)


class ReferenceIndex:
    """Same API as ``PlateIndex``, answering by ``match_one`` over every entry. O(entries) per read."""

    def __init__(self, classes: tuple[str, ...] = DEFAULT_CLASSES) -> None:
        self.classes = tuple(classes)
        self.feed_version = 0
        self.watchlists: dict[str, Watchlist] = {}
        self.entries: dict[str, Entry] = {}

    def build(
        self, watchlists: Iterable[Watchlist], entries: Iterable[Entry], *, feed_version: int = 0
    ) -> None:
        self.watchlists = {wl.list_id: wl for wl in watchlists}
        self.entries = {}
        for e in entries:
            self.entries.pop(e.entry_id, None)  # a repeated id: the last one wins
            self.entries[e.entry_id] = e
        self.feed_version = feed_version

    def upsert(self, entry: Entry) -> None:
        self.entries.pop(entry.entry_id, None)
        self.entries[entry.entry_id] = entry

    def remove(self, entry_id: str) -> None:
        self.entries.pop(entry_id, None)

    def set_watchlist(self, wl: Watchlist) -> None:
        self.watchlists[wl.list_id] = wl

    def __len__(self) -> int:
        return len(self.entries)

    def match(
        self,
        plate: str,
        *,
        now: float,
        colour: str | None = None,
        vehicle_type: str | None = None,
        alerting_only: bool = True,
    ) -> list[Hit]:
        return reference_match(
            plate,
            self.entries.values(),
            self.watchlists,
            now=now,
            colour=colour,
            vehicle_type=vehicle_type,
            classes=self.classes,
            alerting_only=alerting_only,
            feed_version=self.feed_version,
        )

    def match_batch(
        self,
        plates: Sequence[str],
        *,
        now: float,
        alerting_only: bool = True,
        colours: Sequence[str | None] | None = None,
        vehicle_types: Sequence[str | None] | None = None,
    ) -> list[list[Hit]]:
        return [
            self.match(
                p,
                now=now,
                alerting_only=alerting_only,
                colour=colours[i] if colours is not None else None,
                vehicle_type=vehicle_types[i] if vehicle_types is not None else None,
            )
            for i, p in enumerate(plates)
        ]

    def on_list(
        self,
        plate: str,
        list_id: str,
        *,
        now: float,
        colour: str | None = None,
        vehicle_type: str | None = None,
    ) -> bool:
        wl = self.watchlists.get(list_id)
        if wl is None:
            return False
        for e in self.entries.values():
            if e.list_id != list_id:
                continue
            hit = match_one(
                plate, e, wl, now=now, colour=colour, vehicle_type=vehicle_type, classes=self.classes
            )
            if hit is not None and hit.kind in PERMIT_KINDS:
                return True
        return False

    def check_permit(
        self,
        plate: str,
        colour: str | None,
        vehicle_type: str | None,
        rules: Iterable[PermitRule],
        *,
        now: float,
    ) -> list[Hit]:
        return check_permit(plate, colour, vehicle_type, rules, self, now, feed_version=self.feed_version)
