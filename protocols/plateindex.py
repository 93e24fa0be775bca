"""The fast watchlist index: ``match_one`` over every entry, answered in microseconds at 1M entries.

How it stays exact: the index only *proposes* candidates, a superset of the entries that can
match, and every candidate is decided by ``protocols.matching.match_one`` itself, so results are
identical to the brute-force oracle by construction. What makes the superset complete:

Every non-pattern kind (EXACT, EQUIVALENT, PROVINCE, EDIT) implies that the read and the entry,
with each character replaced by its look-alike class representative, are within Levenshtein
distance 1 (look-alike swaps vanish under the mapping; a province error is a substitution or a
deletion at position 0). Distance <= 1 is found with the symmetric-deletion trick, with the
deletion position folded into the key so that only true distance-1 neighbours are proposed:

    entry keys:  F(e) = H(e)                  D(e, j) = H(del_j e) ^ TAG[j]    for every j
    read probes: F(r)          -> F(e)        equal under the mapping (exact, equivalent)
                 H(r) ^ TAG[j] -> D(e, j)     the read lacks the entry's character j (j=0: province)
                 H(del_i r)    -> F(e)        the read has one extra character
                 D(r, i)       -> D(e, i)     one substitution at i (i=0: province)

H is a polynomial hash mod 2**64 (odd base), chosen because a deletion's hash follows from prefix
sums in O(1), both in numpy (batch) and in plain Python (single read), and the two give equal
values. A hash collision only adds a candidate that ``match_one`` rejects; it can never lose one.

Why this layout (memory bar: <= 400 bytes per entry at 1M):
- keys: one sorted ``uint64`` array plus a parallel ``int32`` row array, ~(1 + plate length) keys
  per entry, ~100 bytes; looked up with ``np.searchsorted`` (a batch sorts its probes first,
  which makes the binary searches cache-friendly).
- rows: plates in one fixed-width numpy unicode array (reused as the code matrix for hashing),
  entry ids as one UTF-8 buffer with offsets, list/colour/type as small int codes, validity as
  float arrays (``-inf``/``+inf`` for open ends): no per-entry Python objects.
- deltas: ``remove`` tombstones a base row; ``upsert`` puts the entry in a small overlay (a dict of
  the same keys), merged into the base by ``compact()`` (automatically once the overlay is large).
- wildcard patterns (~0.1% of entries) are kept as ``Entry`` objects, bucketed by up to three
  anchored literal characters (positions fixed from the start or the end of the plate); a read
  looks up one key per bucket shape. Patterns without anchors are tried on every read.

Entries the base array cannot hold (longer than ``BASE_MAX_CHARS``, containing NUL) live in the
overlay for good; empty plates never match and are only counted.

Pure: numpy and the standard library, no I/O.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from protocols.matching import (
    ALL_KINDS,
    DEFAULT_CLASSES,
    MAX_READ_CHARS,
    Entry,
    Hit,
    ListKind,
    MatchKind,
    PermitRule,
    Watchlist,
    check_permit,
    class_tables,
    hit_order,
    is_pattern,
    match_one,
)

__all__ = ["BASE_MAX_CHARS", "PlateIndex"]

BASE_MAX_CHARS = 16
# Overlay size that triggers compaction: max(floor, fraction of the base).
COMPACT_FLOOR = 50_000
COMPACT_FRACTION = 0.25
_BUILD_CHUNK = 1 << 17

_M = (1 << 64) - 1
_B = 0x9E3779B97F4A7C15 | 1  # odd, so invertible mod 2**64
_BINV = pow(_B, -1, 1 << 64)
_NPOS = MAX_READ_CHARS + 2
_BP = [pow(_B, k, 1 << 64) for k in range(_NPOS + 1)]


def _splitmix(seed: int, n: int) -> list[int]:
    out = []
    x = seed
    for _ in range(n):
        x = (x + 0x9E3779B97F4A7C15) & _M
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
        out.append(z ^ (z >> 31))
    return out


_TAG = _splitmix(0xC0DD0, _NPOS + 1)
_BP_NP = np.array(_BP, dtype=np.uint64)
_TAG_NP = np.array(_TAG, dtype=np.uint64)
_BINV_NP = np.uint64(_BINV)
_PLAIN = frozenset({MatchKind.EXACT, MatchKind.EQUIVALENT})
_PERMIT_KINDS = _PLAIN


def _py_hashes(t: str) -> tuple[int, list[int]]:
    """H(t) and H(del_i t) for every i, in plain Python; equal to ``_np_hashes``."""
    bp = _BP
    pre = []
    h = 0
    vals = [ord(c) + 1 for c in t]
    for k, v in enumerate(vals):
        pre.append(h)
        h = (h + v * bp[k]) & _M
    n = len(vals)
    dels = [0] * n
    s = 0
    for i in range(n - 1, -1, -1):
        dels[i] = (pre[i] + s) & _M
        if i:
            s = (s + vals[i] * bp[i - 1]) & _M
    return h, dels


def _np_hashes(rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise H and deletion hashes of an (n, L) matrix of representative code points."""
    n, length = rep.shape
    v = rep.astype(np.uint64)
    v += np.uint64(1)
    t = v * _BP_NP[:length]
    c = np.cumsum(t, axis=1, dtype=np.uint64)
    h = c[:, -1].copy()
    d = (c - t) + _BINV_NP * (h[:, None] - c)
    return h, d


def _entry_keys(t: str) -> list[int]:
    h, dels = _py_hashes(t)
    return [h] + [d ^ _TAG[j] for j, d in enumerate(dels)]


def _read_probes(t: str, exact: bool, province: bool, edit: bool) -> list[int]:
    h, dels = _py_hashes(t)
    out = [h] if exact or edit else []
    if edit:
        tag = _TAG
        out += [h ^ tag[j] for j in range(len(t) + 1)]
        out += dels
        out += [d ^ tag[i] for i, d in enumerate(dels)]
    elif province:
        out += [h ^ _TAG[0], dels[0] ^ _TAG[0]]
    return out


def _opt(x: float) -> float | None:
    return None if math.isinf(x) else x


@dataclass(slots=True)
class _Shape:
    """One bucket shape of the wildcard index: which positions are anchored."""

    length: int  # exact read length for ?-only patterns, -1 for patterns with *
    anchors: tuple[int, ...]  # >= 0 from the start, < 0 from the end
    table: dict[int, list[str]] = field(default_factory=dict)
    keys: np.ndarray | None = None
    ids: list[str] = field(default_factory=list)


def _anchor_key(chars: Iterable[int]) -> int:
    key = 0
    for i, c in enumerate(chars):
        key |= c << (21 * i)
    return key


class _Wildcards:
    """Pattern entries bucketed by anchored literal characters (representative form)."""

    def __init__(self, patterns: dict[str, Entry], rep: dict[int, int]) -> None:
        self.fixed: dict[int, list[_Shape]] = {}
        self.star: list[_Shape] = []
        shapes: dict[tuple[int, tuple[int, ...]], _Shape] = {}
        for e in patterns.values():
            q = e.plate.translate(rep)
            if "*" not in q:
                length = len(q)
                cands = [k for k, c in enumerate(q) if c != "?"]
                # Serial positions are the selective ones: prefer them, last first.
                cands.sort(key=lambda k: (0 if k >= 2 else 3 - k, -k))
            else:
                length = -1
                head = q[: q.index("*")]
                tail = q[q.rindex("*") + 1 :]
                cands = [k for k, c in enumerate(head) if c != "?"]
                cands += [k - len(tail) for k, c in enumerate(tail) if c != "?"]
                cands.sort(key=lambda a: (0 if (a < 0 or a >= 2) else 3 - a, -a if a < 0 else a))
            anchors = tuple(sorted(cands[:3]))
            shape = shapes.get((length, anchors))
            if shape is None:
                shape = shapes[(length, anchors)] = _Shape(length, anchors)
                (self.star if length < 0 else self.fixed.setdefault(length, [])).append(shape)
            key = _anchor_key(ord(q[a]) for a in anchors)
            shape.table.setdefault(key, []).append(e.entry_id)
        for shape in shapes.values():
            pairs = sorted((k, eid) for k, ids in shape.table.items() for eid in ids)
            shape.keys = np.array([k for k, _ in pairs], dtype=np.uint64)
            shape.ids = [eid for _, eid in pairs]

    def candidates(self, t: str) -> list[str]:
        n = len(t)
        out: list[str] = []
        for shapes in (self.fixed.get(n, ()), self.star):
            for shape in shapes:
                key = 0
                for i, a in enumerate(shape.anchors):
                    if a >= n or a < -n:
                        break
                    key |= ord(t[a]) << (21 * i)
                else:
                    ids = shape.table.get(key)
                    if ids:
                        out += ids
        return out

    def candidates_batch(self, rep: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, list[str]] | None:
        """(owner, pattern id) pairs for a group of reads of one length: ``rep`` is (n, L)."""
        n, length = rep.shape
        got_o: list[np.ndarray] = []
        got_i: list[np.ndarray] = []
        ids: list[str] = []
        for shapes in (self.fixed.get(length, ()), self.star):
            for shape in shapes:
                if any(a >= length or a < -length for a in shape.anchors):
                    continue
                key = np.zeros(n, dtype=np.uint64)
                for i, a in enumerate(shape.anchors):
                    key |= rep[:, a].astype(np.uint64) << np.uint64(21 * i)
                assert shape.keys is not None
                lo = np.searchsorted(shape.keys, key, "left")
                hi = np.searchsorted(shape.keys, key, "right")
                cnt = hi - lo
                sel = np.flatnonzero(cnt)
                if not len(sel):
                    continue
                o, r = _expand(owners[sel], lo[sel], cnt[sel])
                got_o.append(o)
                got_i.append(r + len(ids))
                ids += shape.ids
        if not got_o:
            return None
        return np.stack([np.concatenate(got_o), np.concatenate(got_i)]), ids


def _expand(owners: np.ndarray, lo: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn ranges [lo, lo+cnt) tagged with owners into flat (owner, position) arrays."""
    total = int(cnt.sum())
    starts = np.cumsum(cnt) - cnt
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, cnt)
    return np.repeat(owners, cnt), pos


class PlateIndex:
    """Watchlist index with the semantics of ``match_one`` over every entry (see module doc)."""

    def __init__(self, classes: tuple[str, ...] = DEFAULT_CLASSES) -> None:
        self.classes = tuple(classes)
        tables = class_tables(self.classes)
        self._rep = tables.rep
        size = max(self._rep, default=0) + 1
        lut = np.arange(size, dtype=np.uint32)
        for a, b in self._rep.items():
            lut[a] = b
        self._lut = lut
        self.feed_version = 0
        self.watchlists: dict[str, Watchlist] = {}
        self._reset()

    # -- state ------------------------------------------------------------------------------

    def _reset(self) -> None:
        self._list_codes: dict[str, int] = {}
        self._list_names: list[str] = []
        self._attr_codes: dict[str, int] = {"": 0}
        self._attr_names: list[str | None] = [None]
        # base (immutable after build, but for tombstones)
        self._n = 0
        self._width = 1
        self._plates = np.zeros(0, dtype="U1")
        self._codes = np.zeros((0, 1), dtype=np.uint32)
        self._list = array("i")
        self._colour = array("i")
        self._vtype = array("i")
        self._vfrom = array("d")
        self._vuntil = array("d")
        self._ids = b""
        self._id_off = array("q", [0])
        self._id_hash = np.zeros(0, dtype=np.int64)
        self._id_rows = np.zeros(0, dtype=np.int32)
        self._alive = bytearray()
        self._n_dead = 0
        self._keys = np.zeros(0, dtype=np.uint64)
        self._rows = np.zeros(0, dtype=np.int32)
        # overlay and patterns
        self._ov: dict[str, Entry] = {}
        self._ov_keys: dict[int, list[str]] = {}
        self._ov_arrays: tuple[np.ndarray, list[str]] | None = None
        self._pat: dict[str, Entry] = {}
        self._wild: _Wildcards | None = None
        self._refresh_lists()

    def _code(self, list_id: str) -> int:
        code = self._list_codes.get(list_id)
        if code is None:
            code = self._list_codes[list_id] = len(self._list_names)
            self._list_names.append(list_id)
        return code

    def _attr(self, value: str | None) -> int:
        if not value:
            return 0
        code = self._attr_codes.get(value)
        if code is None:
            code = self._attr_codes[value] = len(self._attr_names)
            self._attr_names.append(value)
        return code

    def _refresh_lists(self) -> None:
        """Per-list-code lookups; permit lists and unknown lists never produce hits."""
        for lid in self.watchlists:
            self._code(lid)
        self._wl_by_code: list[Watchlist | None] = [
            wl if (wl := self.watchlists.get(lid)) is not None and wl.kind != ListKind.PERMIT else None
            for lid in self._list_names
        ]
        self._usable_np = np.array([w is not None for w in self._wl_by_code] + [False], dtype=bool)
        kinds: set[MatchKind] = set()
        for w in self._wl_by_code:
            if w is not None:
                kinds |= w.alert_kinds
        self._alert_kinds = frozenset(kinds)

    # -- building ---------------------------------------------------------------------------

    def build(self, watchlists: Iterable[Watchlist], entries: Iterable[Entry], *, feed_version: int = 0) -> None:
        """Replace everything with these lists and entries (a repeated entry_id: the last one wins)."""
        self.watchlists = {wl.list_id: wl for wl in watchlists}
        self.feed_version = feed_version
        self._reset()
        uniq: dict[str, Entry] = {}
        for e in entries:
            uniq[e.entry_id] = e
        base: list[Entry] = []
        for e in uniq.values():
            p = e.plate
            if is_pattern(p):
                self._pat[e.entry_id] = e
            elif 0 < len(p) <= BASE_MAX_CHARS and "\x00" not in p:
                base.append(e)
            else:
                self._ov_add(e)
        del uniq
        self._build_base(base)
        self._refresh_lists()

    def _build_base(self, base: list[Entry]) -> None:
        n = self._n = len(base)
        plates = [e.plate for e in base]
        width = self._width = max(map(len, plates), default=1)
        self._plates = np.array(plates, dtype=f"U{width}")
        self._codes = self._plates.view(np.uint32).reshape(n, width)
        code, attr = self._code, self._attr
        self._list = array("i", [code(e.list_id) for e in base])
        self._colour = array("i", [attr(e.colour) for e in base])
        self._vtype = array("i", [attr(e.vehicle_type) for e in base])
        ninf, inf = -math.inf, math.inf
        self._vfrom = array("d", [ninf if e.valid_from is None else e.valid_from for e in base])
        self._vuntil = array("d", [inf if e.valid_until is None else e.valid_until for e in base])
        encoded = [e.entry_id.encode("utf-8", "surrogatepass") for e in base]
        self._ids = b"".join(encoded)
        off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=off[1:])
        self._id_off = array("q", off.tobytes())
        del encoded, off
        hashes = np.fromiter((hash(e.entry_id) for e in base), dtype=np.int64, count=n)
        order = np.argsort(hashes, kind="stable")
        self._id_hash = hashes[order]
        self._id_rows = order.astype(np.int32)
        del hashes, order
        self._alive = bytearray(b"\x01") * n
        self._n_dead = 0

        lengths = np.fromiter(map(len, plates), dtype=np.int64, count=n)
        del plates
        total = n + int(lengths.sum())
        keys = np.empty(total, dtype=np.uint64)
        rows = np.empty(total, dtype=np.int32)
        at = 0
        for length in np.unique(lengths).tolist():
            group = np.flatnonzero(lengths == length)
            tags = _TAG_NP[:length]
            for s in range(0, len(group), _BUILD_CHUNK):
                g = group[s : s + _BUILD_CHUNK]
                h, d = _np_hashes(self._rep_codes(self._codes[g, :length]))
                m = len(g)
                keys[at : at + m] = h
                rows[at : at + m] = g
                at += m
                d ^= tags
                keys[at : at + m * length] = d.ravel()
                rows[at : at + m * length] = np.repeat(g, length)
                at += m * length
        order = np.argsort(keys)
        self._keys = keys[order]
        del keys
        self._rows = rows[order]

    def _rep_codes(self, codes: np.ndarray) -> np.ndarray:
        lut = self._lut
        if len(lut) <= 1:
            return codes
        return np.where(codes < len(lut), lut[np.minimum(codes, len(lut) - 1)], codes)

    # -- deltas -----------------------------------------------------------------------------

    def _base_row(self, entry_id: str) -> int:
        h = hash(entry_id)
        lo = int(np.searchsorted(self._id_hash, h, "left"))
        hi = int(np.searchsorted(self._id_hash, h, "right"))
        for i in range(lo, hi):
            row = int(self._id_rows[i])
            if self._alive[row] and self._entry_id(row) == entry_id:
                return row
        return -1

    def _entry_id(self, row: int) -> str:
        return self._ids[self._id_off[row] : self._id_off[row + 1]].decode("utf-8", "surrogatepass")

    def _ov_add(self, e: Entry) -> None:
        self._ov[e.entry_id] = e
        if e.plate and len(e.plate) <= MAX_READ_CHARS + 1:
            for k in set(_entry_keys(e.plate.translate(self._rep))):
                self._ov_keys.setdefault(k, []).append(e.entry_id)
        self._ov_arrays = None

    def _ov_remove(self, entry_id: str) -> bool:
        e = self._ov.pop(entry_id, None)
        if e is None:
            return False
        if e.plate and len(e.plate) <= MAX_READ_CHARS + 1:
            for k in set(_entry_keys(e.plate.translate(self._rep))):
                ids = self._ov_keys[k]
                ids.remove(entry_id)
                if not ids:
                    del self._ov_keys[k]
        self._ov_arrays = None
        return True

    def remove(self, entry_id: str) -> None:
        """Forget an entry (no-op when unknown)."""
        if self._ov_remove(entry_id):
            return
        if self._pat.pop(entry_id, None) is not None:
            self._wild = None
            return
        row = self._base_row(entry_id)
        if row >= 0:
            self._alive[row] = 0
            self._n_dead += 1

    def upsert(self, entry: Entry) -> None:
        """Add or replace an entry (by entry_id)."""
        self.remove(entry.entry_id)
        self._code(entry.list_id)
        if is_pattern(entry.plate):
            self._pat[entry.entry_id] = entry
            self._wild = None
        else:
            self._ov_add(entry)
        self._refresh_lists()
        if len(self._ov) > max(COMPACT_FLOOR, COMPACT_FRACTION * self._n):
            self.compact()

    def set_watchlist(self, wl: Watchlist) -> None:
        """Add or replace a list's settings (entries keep pointing at it by list_id)."""
        self.watchlists[wl.list_id] = wl
        self._refresh_lists()

    def compact(self) -> None:
        """Merge the overlay into the base and drop tombstones (a full rebuild)."""
        self.build(self.watchlists.values(), list(self.entries()), feed_version=self.feed_version)

    def entries(self) -> Iterable[Entry]:
        """Every live entry (as matched: free-text fields of base entries are not kept)."""
        for row in range(self._n):
            if self._alive[row]:
                yield self._entry_at(row)
        yield from self._ov.values()
        yield from self._pat.values()

    def __len__(self) -> int:
        return self._n - self._n_dead + len(self._ov) + len(self._pat)

    # -- matching ---------------------------------------------------------------------------

    def _entry_at(self, row: int) -> Entry:
        names = self._attr_names
        return Entry(
            entry_id=self._entry_id(row),
            list_id=self._list_names[self._list[row]],
            plate=str(self._plates[row]),
            colour=names[self._colour[row]],
            vehicle_type=names[self._vtype[row]],
            valid_from=_opt(self._vfrom[row]),
            valid_until=_opt(self._vuntil[row]),
        )

    def _wildcards(self) -> _Wildcards:
        if self._wild is None:
            self._wild = _Wildcards(self._pat, self._rep)
        return self._wild

    def _kinds(self, alerting_only: bool) -> frozenset[MatchKind]:
        return self._alert_kinds if alerting_only else ALL_KINDS

    def _decide(
        self, read: str, e: Entry, wl: Watchlist, now: float, colour: str | None, vtype: str | None,
        alerting_only: bool, out: list[Hit],
    ) -> None:
        hit = match_one(read, e, wl, now=now, colour=colour, vehicle_type=vtype, classes=self.classes,
                        feed_version=self.feed_version)
        if hit is not None and (not alerting_only or hit.kind in wl.alert_kinds):
            out.append(hit)

    def match(
        self,
        plate: str,
        *,
        now: float,
        colour: str | None = None,
        vehicle_type: str | None = None,
        alerting_only: bool = True,
    ) -> list[Hit]:
        """Hits of one read, best first (score, then priority, then entry_id)."""
        if not isinstance(plate, str) or not plate or len(plate) > MAX_READ_CHARS:
            return []
        kinds = self._kinds(alerting_only)
        out: list[Hit] = []
        t = plate.translate(self._rep)
        exact = not _PLAIN.isdisjoint(kinds)
        province = MatchKind.PROVINCE in kinds
        edit = MatchKind.EDIT in kinds
        if exact or province or edit:
            probes = _read_probes(t, exact, province, edit)
            wl_by_code = self._wl_by_code
            if self._n and len(plate) <= self._width + 1:
                p = np.array(probes, dtype=np.uint64)
                lo = self._keys.searchsorted(p, "left").tolist()
                hi = self._keys.searchsorted(p, "right").tolist()
                seen: set[int] = set()
                rows = self._rows
                alive = self._alive
                lists = self._list
                for a, b in zip(lo, hi, strict=True):
                    if a == b:
                        continue
                    for row in rows[a:b].tolist():
                        if row in seen or not alive[row]:
                            continue
                        seen.add(row)
                        wl = wl_by_code[lists[row]]
                        if wl is not None:
                            self._decide(plate, self._entry_at(row), wl, now, colour, vehicle_type,
                                         alerting_only, out)
            if self._ov_keys:
                ids: set[str] = set()
                for k in probes:
                    got = self._ov_keys.get(k)
                    if got:
                        ids.update(got)
                for eid in sorted(ids):
                    e = self._ov[eid]
                    wl = wl_by_code[self._list_codes[e.list_id]]
                    if wl is not None:
                        self._decide(plate, e, wl, now, colour, vehicle_type, alerting_only, out)
        if self._pat and MatchKind.WILDCARD in kinds:
            for eid in self._wildcards().candidates(t):
                e = self._pat[eid]
                wl = self._wl_by_code[self._list_codes[e.list_id]]
                if wl is not None:
                    self._decide(plate, e, wl, now, colour, vehicle_type, alerting_only, out)
        if len(out) > 1:
            out.sort(key=hit_order)
        return out

    def _ov_sorted(self) -> tuple[np.ndarray, list[str]]:
        if self._ov_arrays is None:
            pairs = sorted((k, eid) for k, ids in self._ov_keys.items() for eid in ids)
            self._ov_arrays = (np.array([k for k, _ in pairs], dtype=np.uint64), [eid for _, eid in pairs])
        return self._ov_arrays

    def match_batch(
        self,
        plates: Sequence[str],
        *,
        now: float,
        alerting_only: bool = True,
        colours: Sequence[str | None] | None = None,
        vehicle_types: Sequence[str | None] | None = None,
    ) -> list[list[Hit]]:
        """``match`` for many reads at once (vectorized candidate generation); same results."""
        results: list[list[Hit]] = [[] for _ in range(len(plates))]
        kinds = self._kinds(alerting_only)
        exact = not _PLAIN.isdisjoint(kinds)
        province = MatchKind.PROVINCE in kinds
        edit = MatchKind.EDIT in kinds
        wild = bool(self._pat) and MatchKind.WILDCARD in kinds
        if not (exact or province or edit or wild):
            return results
        by_len: dict[int, list[int]] = {}
        for i, p in enumerate(plates):
            if isinstance(p, str) and 0 < len(p) <= MAX_READ_CHARS:
                by_len.setdefault(len(p), []).append(i)
        probe_parts: list[np.ndarray] = []
        owner_parts: list[np.ndarray] = []
        wild_pairs: list[tuple[np.ndarray, list[str]]] = []
        wildcards = self._wildcards() if wild else None
        for length, idx in by_len.items():
            owners = np.array(idx, dtype=np.int64)
            codes = np.array([plates[i] for i in idx], dtype=f"U{length}").view(np.uint32).reshape(-1, length)
            rep = self._rep_codes(codes)
            if wildcards is not None:
                got = wildcards.candidates_batch(rep, owners)
                if got is not None:
                    wild_pairs.append(got)
            if not (exact or province or edit):
                continue
            h, d = _np_hashes(rep)
            cols = []
            if exact or edit:
                cols.append(h[:, None])
            if edit:
                cols.append(h[:, None] ^ _TAG_NP[: length + 1])
                cols.append(d)
                cols.append(d ^ _TAG_NP[:length])
            elif province:
                cols.append((h ^ _TAG_NP[0])[:, None])
                cols.append((d[:, 0] ^ _TAG_NP[0])[:, None])
            probes = np.hstack(cols) if len(cols) > 1 else cols[0]
            probe_parts.append(probes.ravel())
            owner_parts.append(np.repeat(owners, probes.shape[1]))
        col_list = colours if colours is not None else None
        vt_list = vehicle_types if vehicle_types is not None else None
        touched: set[int] = set()
        if probe_parts:
            probes = np.concatenate(probe_parts)
            owners = np.concatenate(owner_parts)
            order = np.argsort(probes)
            probes = probes[order]
            owners = owners[order]
            if self._n:
                self._batch_base(plates, probes, owners, now, col_list, vt_list, alerting_only, results, touched)
            if self._ov_keys:
                okeys, oids = self._ov_sorted()
                lo = np.searchsorted(okeys, probes, "left")
                hi = np.searchsorted(okeys, probes, "right")
                cnt = hi - lo
                sel = np.flatnonzero(cnt)
                if len(sel):
                    o, pos = _expand(owners[sel], lo[sel], cnt[sel])
                    pairs = sorted({(oo, oids[pp]) for oo, pp in zip(o.tolist(), pos.tolist(), strict=True)})
                    for oo, eid in pairs:
                        e = self._ov[eid]
                        wl = self._wl_by_code[self._list_codes[e.list_id]]
                        if wl is not None:
                            self._decide(plates[oo], e, wl, now, _at(col_list, oo), _at(vt_list, oo),
                                         alerting_only, results[oo])
                            touched.add(oo)
        for arr, ids in wild_pairs:
            for oo, k in zip(arr[0].tolist(), arr[1].tolist(), strict=True):
                e = self._pat[ids[k]]
                wl = self._wl_by_code[self._list_codes[e.list_id]]
                if wl is not None:
                    self._decide(plates[oo], e, wl, now, _at(col_list, oo), _at(vt_list, oo),
                                 alerting_only, results[oo])
                    touched.add(oo)
        for oo in touched:
            if len(results[oo]) > 1:
                results[oo].sort(key=hit_order)
        return results

    def _batch_base(
        self, plates: Sequence[str], probes: np.ndarray, owners: np.ndarray, now: float,
        col_list: Sequence[str | None] | None, vt_list: Sequence[str | None] | None, alerting_only: bool,
        results: list[list[Hit]], touched: set[int],
    ) -> None:
        keys = self._keys
        lo = np.searchsorted(keys, probes, "left")
        found = keys[np.minimum(lo, len(keys) - 1)] == probes
        sel = np.flatnonzero(found)
        if not len(sel):
            return
        p = probes[sel]
        lo = lo[sel]
        hi = np.searchsorted(keys, p, "right")
        o, pos = _expand(owners[sel], lo, hi - lo)
        rows = self._rows[pos].astype(np.int64)
        pair = np.unique(o * (self._n + 1) + rows)
        o = pair // (self._n + 1)
        rows = pair % (self._n + 1)
        alive = np.frombuffer(self._alive, dtype=np.uint8).astype(bool)
        lists = np.frombuffer(self._list, dtype=np.int32)
        ok = alive[rows] & self._usable_np[lists[rows]]
        wl_by_code = self._wl_by_code
        for oo, row in zip(o[ok].tolist(), rows[ok].tolist(), strict=True):
            wl = wl_by_code[self._list[row]]
            assert wl is not None
            self._decide(plates[oo], self._entry_at(row), wl, now, _at(col_list, oo), _at(vt_list, oo),
                         alerting_only, results[oo])
            touched.add(oo)

    # -- permits ----------------------------------------------------------------------------

    def on_list(
        self, plate: str, list_id: str, *, now: float, colour: str | None = None, vehicle_type: str | None = None
    ) -> bool:
        """Whether the plate is on ``list_id`` by an active EXACT or EQUIVALENT match (permit checks)."""
        wl = self.watchlists.get(list_id)
        if wl is None or not isinstance(plate, str) or not plate or len(plate) > MAX_READ_CHARS:
            return False
        code = self._list_codes.get(list_id)
        t = plate.translate(self._rep)
        h, _ = _py_hashes(t)
        cands: list[Entry] = []
        if self._n:
            a = int(self._keys.searchsorted(np.uint64(h), "left"))
            b = int(self._keys.searchsorted(np.uint64(h), "right"))
            for row in self._rows[a:b].tolist():
                if self._alive[row] and self._list[row] == code:
                    cands.append(self._entry_at(row))
        for eid in self._ov_keys.get(h, ()):
            e = self._ov[eid]
            if e.list_id == list_id:
                cands.append(e)
        for e in cands:
            hit = match_one(plate, e, wl, now=now, colour=colour, vehicle_type=vehicle_type, classes=self.classes)
            if hit is not None and hit.kind in _PERMIT_KINDS:
                return True
        return False

    def check_permit(
        self, plate: str, colour: str | None, vehicle_type: str | None, rules: Iterable[PermitRule], *, now: float
    ) -> list[Hit]:
        """``matching.check_permit`` against this index, stamped with its feed version."""
        return check_permit(plate, colour, vehicle_type, rules, self, now, feed_version=self.feed_version)


def _at(values: Sequence[str | None] | None, i: int) -> str | None:
    return None if values is None else values[i]
