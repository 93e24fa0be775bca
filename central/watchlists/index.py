"""The hub's watchlists: loaded from CSV files for now, matched with the shared index."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from central.record.stores import WatchlistStore
from central.record.tx import Tx
from central.watchlists.files import ImportRejected, diff_entries, parse_list_file
from protocols.errors import ConfigError
from protocols.feed import FeedChange, ListUpsert
from protocols.matching import Entry, Hit, ListKind, PermitRule, Watchlist
from protocols.plateindex import PlateIndex


class WatchlistFileError(ConfigError, ValueError):
    """A watchlist file with bad rows; ``problems`` lists every line number and reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: {len(problems)} bad row(s): " + "; ".join(problems[:20]))
        self.problems = problems


@dataclass(slots=True)
class LoadedLists:
    lists: dict[str, Watchlist] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)


def parse_csv(
    text: str, source: str = "csv", into: LoadedLists | None = None, list_source: str | None = None
) -> LoadedLists:
    """A list file (``watchlists.csv`` in hub.toml), read by the one parser of list files
    (``files.parse_list_file``); all-or-nothing: any bad row rejects the file with every reason.
    ``source`` names the file in errors; ``list_source`` (default ``source``) is what its lists say they
    came from, which the console shows."""
    out = into or LoadedLists()
    try:
        parsed = parse_list_file(text.encode("utf-8"), list_source or source, out.lists)
    except ImportRejected as exc:
        raise WatchlistFileError(source, [f"line {p.line}: {p.reason}" for p in exc.problems]) from None
    out.lists.update(parsed.lists)
    out.entries.extend(parsed.entries)
    return out


def load_files(paths: list[str]) -> LoadedLists:
    loaded = LoadedLists()
    for path in paths:
        # The console shows a list's source: the file's name, not where it lies on the hub's disk.
        text = Path(path).read_text(encoding="utf-8")
        parse_csv(text, source=str(path), into=loaded, list_source=Path(path).name)
    return loaded


class HubWatchlists:
    """The hub's lists and its index. Used only from the store's writer thread (matching and changes)."""

    def __init__(self) -> None:
        self.lists: dict[str, Watchlist] = {}
        self.index = PlateIndex()
        self.permit_rules: list[PermitRule] = []
        #: the position in the store's log of list changes this index holds every change up to
        #: (central/watchlists/follow.py applies the later ones, made by other hubs)
        self.position = 0

    def __len__(self) -> int:
        return len(self.index)

    def build(
        self,
        lists: list[Watchlist],
        entries: list[Entry],
        feed_version: int = 0,
        permit_rules: list[PermitRule] | None = None,
    ) -> None:
        self.lists = {wl.list_id: wl for wl in lists}
        self.permit_rules = list(permit_rules or [])
        index = PlateIndex()
        index.build(lists, entries, feed_version=feed_version)
        self.index = index

    def load(self, store: WatchlistStore, tx: Tx) -> int:
        """Build from the store (in a job of its writer); the number of entries. The log's position is
        read first: a change committed between the two reads is in the index and applied again by the
        follower, which leaves the index as the change left the store."""
        position = store.change_position(tx)
        self.build(*store.load_all(tx))
        self.position = position
        return len(self)

    def set_list(self, wl: Watchlist) -> None:
        self.lists[wl.list_id] = wl
        self.index.set_watchlist(wl)

    def drop_list(self, list_id: str, entry_ids: list[str]) -> None:
        for entry_id in entry_ids:
            self.index.remove(entry_id)
        self.lists.pop(list_id, None)

    def set_permit_rules(self, rules: list[PermitRule]) -> None:
        self.permit_rules = rules

    def set_feed_version(self, version: int) -> None:
        self.index.feed_version = version

    def match(self, plate: str, *, now: float, colour: str | None, vehicle_type: str | None) -> list[Hit]:
        if not plate:
            return []
        hits = self.index.match(plate, now=now, colour=colour, vehicle_type=vehicle_type)
        # A person list's entries hold keyed ID hashes, not plates: they never answer a plate read.
        hits = [h for h in hits if (wl := self.lists.get(h.list_id)) is None or wl.kind != ListKind.PERSON]
        if self.permit_rules:
            hits += self.index.check_permit(plate, colour, vehicle_type, self.permit_rules, now=now)
        return hits


def changes_for(loaded: LoadedLists, current: dict[str, dict[str, Entry]]) -> list[FeedChange]:
    """The changes that make each loaded list hold exactly the loaded entries (``current``: list -> entries)."""
    changes: list[FeedChange] = [ListUpsert(watchlist=wl) for wl in loaded.lists.values()]
    by_list: dict[str, dict[str, Entry]] = {lid: {} for lid in loaded.lists}
    for entry in loaded.entries:
        by_list[entry.list_id][entry.entry_id] = entry
    for list_id, wanted in by_list.items():
        changes += diff_entries(current.get(list_id, {}), wanted.values())
    return changes
