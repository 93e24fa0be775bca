"""Wildcard watchlist entries (``鲁A*23?5``), bucketed so a read looks at few of them.

Patterns (~0.1% of entries) are kept as ``Entry`` objects, bucketed by up to three anchored literal
characters (positions fixed from the start or the end of the plate, in representative form); a
read looks up one key per bucket shape. Patterns without anchors are tried on every read. The
bucket only proposes candidates: ``PlateIndex`` decides each with the rules of
``protocols.matching``.

Pure: numpy and the standard library, no I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from protocols.matching import Entry

__all__ = ["Wildcards", "expand"]


def expand(owners: np.ndarray, lo: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn ranges [lo, lo+cnt) tagged with owners into flat (owner, position) arrays."""
    total = int(cnt.sum())
    starts = np.cumsum(cnt) - cnt
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, cnt)
    return np.repeat(owners, cnt), pos


@dataclass(slots=True)
class _Shape:
    """One bucket shape of the wildcard index: which positions are anchored."""

    length: int  # exact read length for ?-only patterns, -1 for patterns with *
    anchors: tuple[int, ...]  # >= 0 from the start, < 0 from the end
    need: int  # shortest read the anchors fit in
    get: Callable[[str], object] | None
    table: dict[object, list[str]] = field(default_factory=dict)
    keys: np.ndarray | None = None
    ids: list[str] = field(default_factory=list)


def _anchor_int(chars: Iterable[int]) -> int:
    key = 0
    for i, c in enumerate(chars):
        key |= c << (21 * i)
    return key


class Wildcards:
    """Pattern entries bucketed by anchored literal characters (representative form)."""

    def __init__(self, patterns: dict[str, Entry], rep: dict[int, int]) -> None:
        self.fixed: dict[int, list[_Shape]] = {}
        self.star: list[_Shape] = []
        self.anywhere: list[str] = []  # patterns with no anchored literal: tried on every read
        self._by_len: dict[int, list[tuple[Callable[[str], object], dict[object, list[str]]]]] = {}
        shapes: dict[tuple[int, tuple[int, ...]], _Shape] = {}
        for e in patterns.values():
            q = e.plate.translate(rep)
            if "*" not in q:
                length = len(q)
                cands = [k for k, c in enumerate(q) if c != "?"]
            else:
                length = -1
                head = q[: q.index("*")]
                tail = q[q.rindex("*") + 1 :]
                cands = [k for k, c in enumerate(head) if c != "?"]
                cands += [k - len(tail) for k, c in enumerate(tail) if c != "?"]
            # Serial positions are the selective ones (the province and city letter are shared by
            # most plates): prefer the end, then the serial start.
            # Fixed-length patterns rank positions from the end; patterns with * rank the tail first,
            # then the head's serial positions: one consistent order keeps the number of shapes down.
            if length >= 0:
                cands.sort(key=lambda a: (0 if a >= 2 else 3 - a, -a))
            else:
                cands.sort(key=lambda a: (0, -a) if a < 0 else (1 if a >= 2 else 4 - a, a))
            anchors = tuple(sorted(cands[:3]))
            if not anchors:
                self.anywhere.append(e.entry_id)
                continue
            shape = shapes.get((length, anchors))
            if shape is None:
                need = max([a + 1 for a in anchors if a >= 0] + [-a for a in anchors if a < 0])
                shape = _Shape(length, anchors, need, operator.itemgetter(*anchors))
                shapes[(length, anchors)] = shape
                (self.star if length < 0 else self.fixed.setdefault(length, [])).append(shape)
            assert shape.get is not None
            shape.table.setdefault(shape.get(q), []).append(e.entry_id)
        for shape in shapes.values():
            pairs = sorted(
                (_anchor_int(ord(c) for c in (key if isinstance(key, tuple) else (key,))), eid)
                for key, ids in shape.table.items()
                for eid in ids
            )
            shape.keys = np.array([k for k, _ in pairs], dtype=np.uint64)
            shape.ids = [eid for _, eid in pairs]

    def candidates(self, t: str) -> list[str]:
        n = len(t)
        probes = self._by_len.get(n)
        if probes is None:
            probes = self._by_len[n] = [
                (shape.get, shape.table) for shape in (*self.fixed.get(n, ()), *self.star) if n >= shape.need
            ]
        out = list(self.anywhere)
        for get, table in probes:
            ids = table.get(get(t))
            if ids:
                out += ids
        return out

    def candidates_batch(self, rep: np.ndarray, owners: np.ndarray) -> list[tuple[int, str]]:
        """(owner, pattern id) pairs for a group of reads of one length: ``rep`` is (n, L)."""
        n, length = rep.shape
        out = [(o, eid) for o in owners.tolist() for eid in self.anywhere]
        for shapes in (self.fixed.get(length, ()), self.star):
            for shape in shapes:
                if length < shape.need:
                    continue
                key = np.zeros(n, dtype=np.uint64)
                for i, a in enumerate(shape.anchors):
                    key |= rep[:, a].astype(np.uint64) << np.uint64(21 * i)
                assert shape.keys is not None
                lo = np.searchsorted(shape.keys, key, "left")
                hi = np.searchsorted(shape.keys, key, "right")
                cnt = hi - lo
                sel = np.flatnonzero(cnt)
                if len(sel):
                    o, pos = expand(owners[sel], lo[sel], cnt[sel])
                    ids = shape.ids
                    out += [(oo, ids[p]) for oo, p in zip(o.tolist(), pos.tolist(), strict=True)]
        return out
