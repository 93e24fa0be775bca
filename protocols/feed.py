"""The watchlist feed: versioned changes the hub sends to every edge's mirror.

Every change to the *field feed* (every list that is neither covert nor restricted, and its entries)
gets the next feed version. The hub publishes each change as a ``FeedDelta`` and keeps the current
``FeedVersion`` retained; an edge applies deltas strictly in order and fetches a full snapshot over
HTTP when it sees a gap or starts empty. Covert and restricted lists never enter the feed.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from .matching import Entry, ListAction, PermitRule, Watchlist

_WIRE = {"kw_only": True}
"""Wire messages: a field this release does not know is ignored (the rule in protocols/messages.py)."""

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class ListUpsert(msgspec.Struct, tag="list_upsert", **_WIRE):
    watchlist: Watchlist


class ListDelete(msgspec.Struct, tag="list_delete", **_WIRE):
    """The list and all its entries leave the feed."""

    list_id: Id


class EntryUpsert(msgspec.Struct, tag="entry_upsert", **_WIRE):
    entry: Entry


class EntryDelete(msgspec.Struct, tag="entry_delete", **_WIRE):
    entry_id: Id


class PermitRules(msgspec.Struct, tag="permit_rules", **_WIRE):
    """The whole set of permit rules (which vehicle classes must be on which permit list)."""

    rules: list[PermitRule]


FeedChange = ListUpsert | ListDelete | EntryUpsert | EntryDelete | PermitRules


class FeedDelta(msgspec.Struct, **_WIRE):
    """The changes that turn feed version ``version - 1`` into ``version``."""

    v: int
    version: Annotated[int, msgspec.Meta(ge=1)]
    changes: list[FeedChange]
    sent_at: float = 0.0


class FeedVersion(msgspec.Struct, **_WIRE):
    """The hub's current field-feed version (retained), so an edge knows whether it is behind."""

    v: int
    version: Annotated[int, msgspec.Meta(ge=0)]
    entries: int = 0
    sent_at: float = 0.0


class FeedSnapshot(msgspec.Struct, **_WIRE):
    """The whole field feed at ``version`` (served over HTTP to an edge that is behind)."""

    version: int
    watchlists: list[Watchlist]
    entries: list[Entry]
    permit_rules: list[PermitRule] = []


def in_field_feed(watchlist: Watchlist) -> bool:
    """Covert and restricted lists stay on the hub: a stolen edge leaks nothing of them."""
    return watchlist.action is not ListAction.COVERT and not watchlist.restricted
