"""What the watchlist store takes and gives, whatever holds it: its errors, what applying a change gives
back, and the hub's index as the store drives it (the index itself is ``central.watchlists.index``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from protocols.errors import CordonError
from protocols.feed import FeedDelta
from protocols.matching import Entry, PermitRule, Watchlist

#: A change larger than this is not sent as a delta (an MQTT message must stay small): edges see
#: the new retained version, no delta arrives, and they fetch a snapshot.
MAX_DELTA_CHANGES = 1000


class ListError(CordonError, ValueError):
    """A change that cannot be applied (unknown list, entry of another list...)."""


class NotFound(ListError):
    pass


@dataclass(slots=True)
class Applied:
    version: int
    changes: int
    delta: FeedDelta | None = None
    index_ops: list[Callable[[], None]] = field(default_factory=list)


class EntryIndex(Protocol):
    def upsert(self, entry: Entry) -> None: ...

    def remove(self, entry_id: str) -> None: ...


class ListIndex(Protocol):
    """The hub's live matching index as a change to the lists moves it (after the commit, by ``index_ops``)."""

    @property
    def index(self) -> EntryIndex: ...

    def set_list(self, wl: Watchlist) -> None: ...

    def drop_list(self, list_id: str, entry_ids: list[str]) -> None: ...

    def set_permit_rules(self, rules: list[PermitRule]) -> None: ...

    def set_feed_version(self, version: int) -> None: ...
