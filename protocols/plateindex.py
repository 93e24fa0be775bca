"""The fast watchlist index: ``match_one`` over every entry, answered in microseconds at 1M entries.

How it stays exact: the index only *proposes* candidates, a superset of the entries that can
match, and every candidate is decided by the rule code of ``protocols.matching`` (the same
``readable`` / ``admissible`` / ``verdict`` / ``make_hit`` steps ``match_one`` runs), so results
are identical to the brute-force oracle by construction. What makes the superset complete: every
entry has a few hash keys and every read a few hash probes, one key equal to one probe for each
relation a match kind implies (``protocols.platekeys``). A hash collision only adds a candidate
the rules reject; it can never lose one. In batch mode a vectorized test (``_could_match``) drops
impossible pairs before Python decides the rest.

Layout (memory bar: <= 400 bytes per entry at 1M):
- keys: one ``uint64`` word per key (the key with its lowest bits replaced by its row number,
  sorted in place while building, so no second array or argsort is needed), grouped by
  the key's top bits, and a directory of ``uint32`` offsets per top-bits bucket (about one key
  per bucket), so a probe costs two memory reads instead of a 23-step binary search. ~10 keys
  per entry: ~80 bytes, plus ~32 for the directory.
- rows: plates in one fixed-width numpy unicode array (also the code matrix for hashing), entry
  ids as one UTF-8 buffer with offsets (an id of the usual form ``list_id:plate`` stored empty and
  made on demand), list/colour/type as small int codes, validity as float
  arrays (``-inf``/``+inf`` for open ends): no per-entry Python objects.
- deltas: ``remove`` tombstones a base row; ``upsert`` puts the entry in a small overlay (a dict of
  the same keys), folded into the base by ``compact()`` (automatically once the overlay is large).
- bulk changes (a feed file over a full mirror, a list that became a person list): ``merge()``
  changes the base in place while reads go on, at the cost of one new key-word array (``Merge``).
- wildcard patterns (~0.1% of entries) are kept as ``Entry`` objects, bucketed by anchored
  literal characters (``protocols.platewild``).

Entries the base cannot hold (longer than ``BASE_MAX_CHARS``, containing NUL, a non-finite
validity bound) live in the overlay for good; empty plates never match and are only counted.

Not thread-safe: mutate (build, upsert, remove, set_watchlist) from the thread that matches, or
lock around both.

Pure: numpy and the standard library, no I/O.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence

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
    admissible,
    class_tables,
    hit_order,
    is_pattern,
    make_hit,
    readable,
    verdict,
)
from protocols.permits import PERMIT_KINDS, check_permit
from protocols.platekeys import entry_keys, mix, np_entry_keys, np_hashes, np_read_probes, read_probes
from protocols.platewild import Wildcards, expand

__all__ = ["BASE_MAX_CHARS", "SMALL_CHANGE", "Merge", "PlateIndex", "RowsBuilder", "fits_base"]

BASE_MAX_CHARS = 16
# Overlay size that triggers compaction: max(floor, fraction of the base).
COMPACT_FLOOR = 50_000
COMPACT_FRACTION = 0.25
_BUILD_CHUNK = 1 << 17
#: Key words (and directory buckets) handled at a time: each temporary a slice of this many
#: 8-byte values (a merge holds several at once; see ``Merge.prepare``).
_MERGE_STEP = 1 << 18
#: Entries a ``Merge`` may change and still be made through the overlay (``Merge.apply``).
SMALL_CHANGE = 1_000

_PLAIN = frozenset({MatchKind.EXACT, MatchKind.EQUIVALENT})


def _opt(x: float) -> float | None:
    return None if math.isinf(x) else x


def _plain_window(e: Entry) -> bool:
    """Whether the base's -inf/+inf encoding of open windows can hold this entry's window."""
    return (e.valid_from is None or math.isfinite(e.valid_from)) and (
        e.valid_until is None or math.isfinite(e.valid_until)
    )


def fits_base(e: Entry) -> bool:
    """Whether the base's arrays can hold this entry (else the overlay or the patterns do)."""
    p = e.plate
    return not is_pattern(p) and 0 < len(p) <= BASE_MAX_CHARS and "\x00" not in p and _plain_window(e)


def _directory(words: np.ndarray) -> tuple[int, np.ndarray]:
    """(shift, directory) over packed key words in key order: see ``PlateIndex._set_keys`` (after a
    ``Merge`` the row bits of equal keys may be out of order; only the key bits must be sorted)."""
    nkeys = len(words)
    bits = max(4, nkeys.bit_length() - 1)
    directory = np.empty((1 << bits) + 1, dtype=np.uint32 if nkeys < 2**32 else np.uint64)
    # the words are sorted, so a bucket starts where its first possible word would go; found a
    # slice of buckets at a time (a whole-array temporary would cost two more copies of the keys)
    shift = np.uint64(64 - bits)
    step = _MERGE_STEP
    for b in range(0, (1 << bits) + 1, step):
        starts = np.arange(b, min(b + step, (1 << bits) + 1), dtype=np.uint64)
        last = starts == (1 << bits)
        starts[last] = 0
        starts <<= shift
        found = np.searchsorted(words, starts, side="left")
        found[last] = nkeys
        directory[b : b + len(starts)] = found
        del starts, found
    return 64 - bits, directory


class RowsBuilder:
    """Gathers entries one at a time into the arrays the base is made of (``PlateIndex.build_rows``).

    Only what matching needs is kept (plate, entry id, list, colour, type, validity); entries the
    base cannot hold are kept whole in ``extra``. Filled from a file or a database cursor one entry
    at a time, a big feed never exists as a list of Python objects.
    """

    def __init__(self, capacity: int = 1024) -> None:
        capacity = max(capacity, 16)
        self.n = 0
        self.width = 1
        # 8 characters hold nearly every plate; a longer one widens the column (see add)
        self.plates = np.empty(capacity, dtype="U8")
        self.list_code = np.empty(capacity, dtype=np.int32)
        self.colour = np.empty(capacity, dtype=np.int32)
        self.vtype = np.empty(capacity, dtype=np.int32)
        self.vfrom = np.empty(capacity, dtype=np.float64)
        self.vuntil = np.empty(capacity, dtype=np.float64)
        self.ids = bytearray()
        self.id_off = array("q", [0])
        """Entry ids in UTF-8 and their offsets; an id of the usual form ``list_id:plate`` is stored
        empty (the index makes it on demand)."""
        self.skipped = 0
        """Entries a caller chose not to add (counted for it, e.g. the edge's person entries)."""
        self.extra: list[Entry] = []
        self.list_names: list[str] = []
        self._lists: dict[str, int] = {}
        self.attr_names: list[str | None] = [None]
        self._attrs: dict[str, int] = {}

    def _grow(self) -> None:
        size = 2 * len(self.plates)
        for name in ("plates", "list_code", "colour", "vtype", "vfrom", "vuntil"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _list(self, list_id: str) -> int:
        code = self._lists.get(list_id)
        if code is None:
            code = self._lists[list_id] = len(self.list_names)
            self.list_names.append(list_id)
        return code

    def _attr(self, value: str | None) -> int:
        if value is None:
            return 0
        code = self._attrs.get(value)
        if code is None:
            code = self._attrs[value] = len(self.attr_names)
            self.attr_names.append(value)
        return code

    def add(self, e: Entry) -> None:
        if not fits_base(e) or not e.entry_id:
            self.extra.append(e)  # (an empty id could not be told from the usual form)
            return
        if self.n == len(self.plates):
            self._grow()
        i = self.n
        if len(e.plate) > self.plates.dtype.itemsize // 4:
            self.plates = self.plates.astype(f"U{BASE_MAX_CHARS}")
        self.plates[i] = e.plate
        self.width = max(self.width, len(e.plate))
        self.list_code[i] = self._list(e.list_id)
        self.colour[i] = self._attr(e.colour)
        self.vtype[i] = self._attr(e.vehicle_type)
        self.vfrom[i] = -math.inf if e.valid_from is None else e.valid_from
        self.vuntil[i] = math.inf if e.valid_until is None else e.valid_until
        if e.entry_id != f"{e.list_id}:{e.plate}":
            self.ids += e.entry_id.encode("utf-8", "surrogatepass")
        self.id_off.append(len(self.ids))
        self.n = i + 1


# ---------------------------------------------------------------------------------------------
# the index


class PlateIndex:
    """Watchlist index with the semantics of ``match_one`` over every entry (see module doc)."""

    def __init__(self, classes: tuple[str, ...] = DEFAULT_CLASSES) -> None:
        self.classes = tuple(classes)
        self._tables = class_tables(self.classes)
        self._rep = self._tables.rep
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
        self._attr_codes: dict[str, int] = {}
        self._attr_names: list[str | None] = [None]
        # base: immutable after build, but for tombstones
        self._n = 0
        self._width = 1
        self._plates = np.zeros(0, dtype="U1")
        self._list = array("i")
        self._colour = array("i")
        self._vtype = array("i")
        self._vfrom = array("d")
        self._vuntil = array("d")
        # entry ids as one UTF-8 buffer with offsets; ``list_id:plate`` (the usual form) is stored
        # empty and made on demand
        self._ids = b""
        self._id_off = array("q", [0])
        self._id_hash = np.zeros(0, dtype=np.int64)
        self._id_rows = np.zeros(0, dtype=np.int32)
        self._alive = bytearray()
        self._n_dead = 0
        self._set_rowbits()
        self._set_keys(np.zeros(0, dtype=np.uint64))
        # overlay and patterns
        self._ov: dict[str, Entry] = {}
        self._ov_keys: dict[int, list[str]] = {}
        self._ov_arrays: tuple[np.ndarray, list[str]] | None = None
        self._pat: dict[str, Entry] = {}
        self._wild: Wildcards | None = None
        self._refresh_lists()

    def _set_keys(self, words: np.ndarray) -> None:
        """Install the packed key words (sorted): the top-bits directory over them.

        A word is a key with its low ``rowbits`` bits replaced by the row number, so sorting the
        words in place sorts the keys (by everything but those low bits) without a second array or
        an argsort: one 8-byte word per key, one memory read per probe. A probe compares the word's
        upper ``64 - rowbits`` bits with its own; the dropped low bits can only make two keys look
        equal, which adds a candidate the rules reject and never loses one. The directory maps a
        key's top ``bits`` bits (``bits`` >= ``rowbits``, so they are never the dropped ones) to
        its run of words.
        """
        self._install_keys(words, *_directory(words))

    def _install_keys(self, words: np.ndarray, shift: int, directory: np.ndarray) -> None:
        self._shift = shift
        self._words, self._dir = words, directory
        # memoryviews: scalar reads from Python are several times cheaper than numpy indexing
        self._words_mv = words.data
        self._dir_mv = directory.data

    def _set_rowbits(self) -> None:
        rowbits = max(1, max(self._n - 1, 1).bit_length())
        self._rowbits = rowbits
        self._rowmask = (1 << rowbits) - 1

    def _code(self, list_id: str) -> int:
        code = self._list_codes.get(list_id)
        if code is None:
            code = self._list_codes[list_id] = len(self._list_names)
            self._list_names.append(list_id)
        return code

    def _attr(self, value: str | None) -> int:
        if value is None:
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

    def build(
        self, watchlists: Iterable[Watchlist], entries: Iterable[Entry], *, feed_version: int = 0
    ) -> None:
        """Replace everything with these lists and entries (a repeated entry_id: the last one wins)."""
        uniq: dict[str, Entry] = {}
        for e in entries:
            uniq[e.entry_id] = e
        rows = RowsBuilder(len(uniq))
        for e in uniq.values():
            rows.add(e)
        del uniq
        self.build_rows(watchlists, rows, feed_version=feed_version)

    def build_rows(
        self, watchlists: Iterable[Watchlist], rows: RowsBuilder, *, feed_version: int = 0
    ) -> None:
        """Replace everything with these lists and the entries gathered in ``rows`` (entry ids must be
        unique). With rows filled one entry at a time, a million entries are never all Python objects."""
        self.watchlists = {wl.list_id: wl for wl in watchlists}
        self.feed_version = feed_version
        self._reset()
        for e in rows.extra:
            if is_pattern(e.plate):
                self._pat[e.entry_id] = e
            else:
                self._ov_add(e)
        rows.extra = []
        self._build_base(rows)
        self._refresh_lists()

    def _build_base(self, built: RowsBuilder) -> None:
        n = self._n = built.n
        self._width = built.width
        self._plates = built.plates[:n].astype(f"U{built.width}")
        built.plates = np.zeros(0, dtype="U1")
        codes = self._plates.view(np.uint32).reshape(n, self._width)
        list_lut = np.array([self._code(name) for name in built.list_names] or [0], dtype=np.int32)
        attr_lut = np.array([self._attr(name) for name in built.attr_names], dtype=np.int32)
        self._list = array("i", list_lut[built.list_code[:n]].tobytes())
        self._colour = array("i", attr_lut[built.colour[:n]].tobytes())
        self._vtype = array("i", attr_lut[built.vtype[:n]].tobytes())
        self._vfrom = array("d", built.vfrom[:n].tobytes())
        self._vuntil = array("d", built.vuntil[:n].tobytes())
        self._ids = bytes(built.ids)
        self._id_off = built.id_off
        built.ids, built.id_off = bytearray(), array("q", [0])
        hashes = np.fromiter((hash(self._entry_id(row)) for row in range(n)), dtype=np.int64, count=n)
        order = np.argsort(hashes, kind="stable")
        self._id_hash = hashes[order]
        self._id_rows = order.astype(np.int32)
        del hashes, order
        self._alive = bytearray(b"\x01") * n
        self._n_dead = 0
        self._set_rowbits()

        words = self._key_words(codes, None, self._rowbits)
        words.sort()
        self._set_keys(words)

    def _key_words(self, codes: np.ndarray, slots: np.ndarray | None, rowbits: int) -> np.ndarray:
        """The packed key words (unsorted) of the plates ``codes`` (a uint32 matrix, 0-padded) that
        live in base rows ``slots`` (None: rows 0, 1, 2, ...), with ``rowbits`` low bits for the row."""
        n = len(codes)
        lengths = np.count_nonzero(codes, axis=1) if n else np.zeros(0, dtype=np.int64)
        total = 3 * n + int(lengths.sum())
        words = np.empty(total, dtype=np.uint64)
        shift = np.uint64(rowbits)
        at = 0
        for length in np.unique(lengths).tolist():
            group = np.flatnonzero(lengths == length)
            for s in range(0, len(group), _BUILD_CHUNK):
                g = group[s : s + _BUILD_CHUNK]
                m = len(g)
                raw = codes[g, :length]
                parts, d = np_entry_keys(self._rep_codes(raw), raw)
                begin = at
                for part in parts:
                    words[at : at + m] = part
                    at += m
                words[at : at + m * length] = d.ravel()
                at += m * length
                del parts, d, raw
                # each key's low bits give way to its row number (see _set_keys)
                chunk = words[begin:at]
                mix(chunk)
                chunk >>= shift
                chunk <<= shift
                gu = (g if slots is None else slots[g]).astype(np.uint64)
                for j in range(3):
                    chunk[j * m : (j + 1) * m] |= gu
                chunk[3 * m :] |= np.repeat(gu, length)
        return words

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
        a, b = self._id_off[row], self._id_off[row + 1]
        if a == b:
            return f"{self._list_names[self._list[row]]}:{self._plates.item(row)}"
        return self._ids[a:b].decode("utf-8", "surrogatepass")

    def _ov_keys_of(self, e: Entry) -> set[int]:
        if not e.plate or len(e.plate) > MAX_READ_CHARS + 1:
            return set()  # nothing this long is within one edit of a read
        return set(entry_keys(e.plate, e.plate.translate(self._rep)))

    def _ov_add(self, e: Entry) -> None:
        self._ov[e.entry_id] = e
        for k in self._ov_keys_of(e):
            self._ov_keys.setdefault(k, []).append(e.entry_id)
        self._ov_arrays = None

    def _ov_remove(self, entry_id: str) -> bool:
        e = self._ov.pop(entry_id, None)
        if e is None:
            return False
        for k in self._ov_keys_of(e):
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
        new_list = entry.list_id not in self._list_codes
        self._code(entry.list_id)
        if is_pattern(entry.plate):
            self._pat[entry.entry_id] = entry
            self._wild = None
        else:
            self._ov_add(entry)
        if new_list:
            self._refresh_lists()
        if len(self._ov) > max(COMPACT_FLOOR, COMPACT_FRACTION * self._n):
            self.compact()

    def set_watchlist(self, wl: Watchlist) -> None:
        """Add or replace a list's settings (entries keep pointing at it by list_id)."""
        self.watchlists[wl.list_id] = wl
        self._refresh_lists()

    def compact(self) -> None:
        """Fold the overlay into the base and drop the removed rows' keys (in place, see ``Merge``)."""
        m = self.merge()
        m.prepare()
        m.commit()

    def merge(self) -> Merge:
        """Start a bulk change made in place while reads go on (see ``Merge``)."""
        return Merge(self)

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
            plate=self._plates.item(row),
            colour=names[self._colour[row]],
            vehicle_type=names[self._vtype[row]],
            valid_from=_opt(self._vfrom[row]),
            valid_until=_opt(self._vuntil[row]),
        )

    def _decide_row(
        self,
        read: str,
        row: int,
        now: float,
        colour: str | None,
        vtype: str | None,
        alerting_only: bool,
        out: list[Hit],
    ) -> None:
        """``match_one`` on a base row, run on the stored pieces (no Entry is built)."""
        wl = self._wl_by_code[self._list[row]]
        if wl is None:
            return
        # The plate test first: it rejects most candidates, and both tests must pass anyway.
        plate = self._plates.item(row)
        found = verdict(read, plate, wl.max_swaps, self._tables)
        if found is None or (alerting_only and found[0] not in wl.alert_kinds):
            return
        names = self._attr_names
        if not admissible(
            _opt(self._vfrom[row]),
            _opt(self._vuntil[row]),
            names[self._colour[row]],
            names[self._vtype[row]],
            wl,
            now,
            colour,
            vtype,
        ):
            return
        out.append(make_hit(read, self._entry_id(row), wl.list_id, plate, wl, found, self.feed_version))

    def _decide_entry(
        self,
        read: str,
        e: Entry,
        now: float,
        colour: str | None,
        vtype: str | None,
        alerting_only: bool,
        out: list[Hit],
    ) -> None:
        wl = self._wl_by_code[self._list_codes[e.list_id]]
        if wl is None:
            return
        if not admissible(e.valid_from, e.valid_until, e.colour, e.vehicle_type, wl, now, colour, vtype):
            return
        found = verdict(read, e.plate, wl.max_swaps, self._tables)
        if found is None or (alerting_only and found[0] not in wl.alert_kinds):
            return
        out.append(make_hit(read, e.entry_id, e.list_id, e.plate, wl, found, self.feed_version))

    def _wildcards(self) -> Wildcards:
        if self._wild is None:
            self._wild = Wildcards(self._pat, self._rep)
        return self._wild

    def _flags(self, alerting_only: bool) -> tuple[bool, bool, bool, bool]:
        kinds = self._alert_kinds if alerting_only else ALL_KINDS
        return (
            not _PLAIN.isdisjoint(kinds),
            MatchKind.PROVINCE in kinds,
            MatchKind.EDIT in kinds,
            bool(self._pat) and MatchKind.WILDCARD in kinds,
        )

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
        if not readable(plate):
            return []
        exact, province, edit, wild = self._flags(alerting_only)
        out: list[Hit] = []
        t = plate.translate(self._rep)
        if exact or province or edit:
            probes = read_probes(plate, t, exact, province, edit)
            if self._n and len(plate) <= self._width + 1:
                words, dir_, shift = self._words_mv, self._dir_mv, self._shift
                rowbits, rowmask = self._rowbits, self._rowmask
                alive = self._alive
                found: set[int] = set()
                for p in probes:
                    b = p >> shift
                    i, end = dir_[b], dir_[b + 1]
                    low = p >> rowbits
                    while i < end:
                        w = words[i]
                        if w >> rowbits == low and alive[w & rowmask]:
                            found.add(w & rowmask)
                        i += 1
                for row in found:
                    self._decide_row(plate, row, now, colour, vehicle_type, alerting_only, out)
            if self._ov_keys:
                ids: set[str] = set()
                for k in probes:
                    got = self._ov_keys.get(k)
                    if got:
                        ids.update(got)
                for eid in ids:
                    self._decide_entry(plate, self._ov[eid], now, colour, vehicle_type, alerting_only, out)
        if wild:
            pat = self._pat
            for eid in self._wildcards().candidates(t):
                self._decide_entry(plate, pat[eid], now, colour, vehicle_type, alerting_only, out)
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
        exact, province, edit, wild = self._flags(alerting_only)
        keyed = exact or province or edit
        if not (keyed or wild):
            return results
        by_len: dict[int, list[int]] = {}
        for i, p in enumerate(plates):
            if readable(p):
                by_len.setdefault(len(p), []).append(i)
        probe_parts: list[np.ndarray] = []
        owner_parts: list[np.ndarray] = []
        wild_pairs: list[tuple[int, str]] = []
        wildcards = self._wildcards() if wild else None
        widest = max(by_len, default=0)
        raw = np.zeros((len(plates), widest), dtype=np.uint32) if keyed and self._n else None
        for length, idx in by_len.items():
            owners = np.array(idx, dtype=np.int64)
            codes = np.array([plates[i] for i in idx], dtype=f"U{length}").view(np.uint32).reshape(-1, length)
            if raw is not None:
                raw[owners, :length] = codes
            rep = self._rep_codes(codes)
            if wildcards is not None:
                wild_pairs += wildcards.candidates_batch(rep, owners)
            if keyed:
                probes = np_read_probes(
                    np_hashes(rep), np_hashes(codes) if edit else None, exact, province, edit
                )
                probe_parts.append(probes.ravel())
                owner_parts.append(np.repeat(owners, probes.shape[1]))

        def attrs(i: int) -> tuple[str | None, str | None]:
            return (
                colours[i] if colours is not None else None,
                vehicle_types[i] if vehicle_types is not None else None,
            )

        touched: set[int] = set()
        if probe_parts:
            probes = np.concatenate(probe_parts)
            owners = np.concatenate(owner_parts)
            if raw is not None:
                raw_len = np.array([len(p) if readable(p) else 0 for p in plates], dtype=np.int64)
                for oo, row in self._batch_base_pairs(probes, owners, raw, raw_len):
                    self._decide_row(plates[oo], row, now, *attrs(oo), alerting_only, results[oo])
                    touched.add(oo)
            if self._ov_keys:
                okeys, oids = self._ov_sorted()
                lo = np.searchsorted(okeys, probes, "left")
                hi = np.searchsorted(okeys, probes, "right")
                cnt = hi - lo
                sel = np.flatnonzero(cnt)
                if len(sel):
                    o, pos = expand(owners[sel], lo[sel], cnt[sel])
                    for oo, eid in sorted(
                        {(a, oids[b]) for a, b in zip(o.tolist(), pos.tolist(), strict=True)}
                    ):
                        self._decide_entry(
                            plates[oo], self._ov[eid], now, *attrs(oo), alerting_only, results[oo]
                        )
                        touched.add(oo)
        for oo, eid in wild_pairs:
            self._decide_entry(plates[oo], self._pat[eid], now, *attrs(oo), alerting_only, results[oo])
            touched.add(oo)
        for oo in touched:
            if len(results[oo]) > 1:
                results[oo].sort(key=hit_order)
        return results

    def _batch_base_pairs(
        self, probes: np.ndarray, owners: np.ndarray, raw: np.ndarray, raw_len: np.ndarray
    ) -> list[tuple[int, int]]:
        """Distinct (read position, live usable base row) pairs whose keys equal a probe and that
        pass ``_could_match``."""
        bucket = (probes >> np.uint64(self._shift)).astype(np.intp)
        lo = self._dir[bucket].astype(np.int64)
        cnt = self._dir[bucket + 1].astype(np.int64) - lo
        sel = np.flatnonzero(cnt)
        if not len(sel):
            return []
        which, pos = expand(sel, lo[sel], cnt[sel])
        words = self._words[pos]
        eq = (words >> np.uint64(self._rowbits)) == (probes[which] >> np.uint64(self._rowbits))
        o = owners[which[eq]]
        rows = (words[eq] & np.uint64(self._rowmask)).astype(np.int64)
        if not len(rows):
            return []
        alive = np.frombuffer(self._alive, dtype=np.uint8).view(bool)
        lists = np.frombuffer(self._list, dtype=np.int32)
        ok = alive[rows] & self._usable_np[lists[rows]]
        pair = np.unique(o[ok] * (self._n + 1) + rows[ok])
        o, rows = np.divmod(pair, self._n + 1)
        plates = self._plates  # (its width may run ahead of _width while a merge is staged)
        keep = self._could_match(
            raw[o], raw_len[o], plates[rows].view(np.uint32).reshape(len(rows), plates.dtype.itemsize // 4)
        )
        return list(zip(o[keep].tolist(), rows[keep].tolist(), strict=True))

    def _could_match(self, a: np.ndarray, la: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Vectorized necessary condition for a plain-kind match of read rows ``a`` (lengths ``la``)
        and base plate rows ``e``.

        Candidates are within distance 1 under the look-alike mapping; this drops the pairs that
        are not within one raw edit and also fail the look-alike and province conditions (about
        two thirds of them on dense feeds), so Python only decides plausible pairs. Codes are
        shifted by one so 0 is padding only (reads may contain NUL; base plates never do), and
        every test keeps at least every pair the rules could accept.
        """
        k = len(a)
        width = max(a.shape[1], e.shape[1]) + 1
        aa = np.zeros((k, width), dtype=np.uint32)
        ee = np.zeros((k, width), dtype=np.uint32)
        ra = np.zeros((k, width), dtype=np.uint32)
        re_ = np.zeros((k, width), dtype=np.uint32)
        live_a = np.arange(a.shape[1]) < la[:, None]
        aa[:, : a.shape[1]] = np.where(live_a, a + 1, 0)
        ra[:, : a.shape[1]] = np.where(live_a, self._rep_codes(a) + 1, 0)
        live_e = e != 0
        ee[:, : e.shape[1]] = np.where(live_e, e + 1, 0)
        re_[:, : e.shape[1]] = np.where(live_e, self._rep_codes(e) + 1, 0)
        le = np.count_nonzero(live_e, axis=1)
        cols = np.arange(width - 1)
        same_raw = aa == ee
        # one raw edit: the unequal positions after the common prefix line up once shifted
        pre = np.where(same_raw.all(axis=1), width, same_raw.argmin(axis=1))
        keep = np.zeros(k, dtype=bool)
        # same length: look-alikes only (rep equal from position 1; position 0 may be a province
        # error), or one raw substitution
        s = la == le
        if s.any():
            tail_rep_equal = (ra[s, 1:] == re_[s, 1:]).all(axis=1)
            keep[s] = tail_rep_equal | (np.count_nonzero(~same_raw[s], axis=1) <= 1)
        # the read lacks one character: one raw deletion, or the province missing (look-alikes allowed)
        m = la + 1 == le
        if m.any():
            shifted_bad = (aa[m, :-1] != ee[m, 1:]) & (cols < la[m, None])
            last_bad = np.where(shifted_bad.any(axis=1), width - 2 - shifted_bad[:, ::-1].argmax(axis=1), -1)
            rep_tail = ((ra[m, :-1] == re_[m, 1:]) | (cols >= la[m, None])).all(axis=1)
            keep[m] = (last_bad < pre[m]) | rep_tail
        # the read has one extra character
        x = la == le + 1
        if x.any():
            shifted_bad = (aa[x, 1:] != ee[x, :-1]) & (cols < le[x, None])
            last_bad = np.where(shifted_bad.any(axis=1), width - 2 - shifted_bad[:, ::-1].argmax(axis=1), -1)
            keep[x] = last_bad < pre[x]
        return keep

    # -- permits ----------------------------------------------------------------------------

    def on_list(
        self,
        plate: str,
        list_id: str,
        *,
        now: float,
        colour: str | None = None,
        vehicle_type: str | None = None,
    ) -> bool:
        """Whether the plate is on ``list_id`` by an active EXACT or EQUIVALENT match (permit checks)."""
        wl = self.watchlists.get(list_id)
        if wl is None or not readable(plate):
            return False
        code = self._list_codes.get(list_id)
        [p] = read_probes(plate, plate.translate(self._rep), True, False, False)
        out: list[Hit] = []
        if self._n:
            b = p >> self._shift
            for i in range(self._dir_mv[b], self._dir_mv[b + 1]):
                w = self._words_mv[i]
                row = w & self._rowmask
                if w >> self._rowbits == p >> self._rowbits and self._alive[row] and self._list[row] == code:
                    e = self._entry_at(row)
                    self._decide_any(plate, e, wl, now, colour, vehicle_type, out)
        for eid in self._ov_keys.get(p, ()):
            e = self._ov[eid]
            if e.list_id == list_id:
                self._decide_any(plate, e, wl, now, colour, vehicle_type, out)
        return any(h.kind in PERMIT_KINDS for h in out)

    def _decide_any(
        self,
        read: str,
        e: Entry,
        wl: Watchlist,
        now: float,
        colour: str | None,
        vtype: str | None,
        out: list[Hit],
    ) -> None:
        # permit lists are not in _wl_by_code (they never hit), so this takes the list directly
        if admissible(e.valid_from, e.valid_until, e.colour, e.vehicle_type, wl, now, colour, vtype):
            found = verdict(read, e.plate, wl.max_swaps, self._tables)
            if found is not None:
                out.append(make_hit(read, e.entry_id, e.list_id, e.plate, wl, found, self.feed_version))

    def check_permit(
        self,
        plate: str,
        colour: str | None,
        vehicle_type: str | None,
        rules: Iterable[PermitRule],
        *,
        now: float,
    ) -> list[Hit]:
        """``permits.check_permit`` against this index, stamped with its feed version."""
        return check_permit(plate, colour, vehicle_type, rules, self, now, feed_version=self.feed_version)


# ---------------------------------------------------------------------------------------------
# bulk changes in place


def _ids_after(
    old: bytes,
    old_off: array,  # type: ignore[type-arg]
    keep_row: np.ndarray,
    staged: bytearray,
    staged_off: array,  # type: ignore[type-arg]
    slots: np.ndarray,
    n_new: int,
) -> tuple[bytes, array]:  # type: ignore[type-arg]
    """The entry-id buffer and offsets after a merge: the ids of the rows that stay, the staged
    rows' ids in their slots, nothing for dead rows (their stale ids are dropped on the way).
    Copied a slice of rows at a time, so the index arrays are the only per-byte temporaries."""
    n = len(old_off) - 1
    if not old and not staged:  # every id of the usual form (the common case): offsets all 0
        return b"", array("q", bytes(8 * (n_new + 1)))
    lengths = np.zeros(n_new, dtype=np.int64)
    o = np.frombuffer(old_off, dtype=np.int64)
    lengths[:n] = np.where(keep_row, np.diff(o), 0)
    so = np.frombuffer(staged_off, dtype=np.int64)
    lengths[slots] = np.diff(so)
    off = np.zeros(n_new + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    out = np.empty(int(off[-1]), dtype=np.uint8)

    def copy(src: np.ndarray, src_at: np.ndarray, dst_at: np.ndarray, size: np.ndarray) -> None:
        for s in range(0, len(size), 1 << 16):
            m = size[s : s + (1 << 16)]
            total = int(m.sum())
            if total:
                within = np.arange(total) - np.repeat(np.cumsum(m) - m, m)
                out[np.repeat(dst_at[s : s + (1 << 16)], m) + within] = src[
                    np.repeat(src_at[s : s + (1 << 16)], m) + within
                ]

    kept = np.flatnonzero(lengths[:n] * keep_row)
    if len(kept):
        copy(np.frombuffer(old, dtype=np.uint8), o[kept], off[kept], lengths[kept])
    if len(slots) and so[-1]:
        copy(np.frombuffer(staged, dtype=np.uint8), so[:-1], off[slots], np.diff(so))
    offsets = array("q")
    offsets.frombytes(memoryview(off).cast("B"))
    return out.tobytes(), offsets


class Merge:
    """A bulk change to a :class:`PlateIndex`, made in place while the index keeps answering reads.

    ``PlateIndex.merge()`` starts one; then three steps:

    - stage: ``remove`` and ``upsert`` (each entry id at most once), in as many batches as the
      caller likes, from one thread at a time. Only the change is kept, in the compact form the
      base is made of (a ``RowsBuilder`` of the rows to add, the base rows to drop); the index
      itself does not change.
    - ``prepare`` (the heavy part, in a worker thread): rows to add go into free slots of the base
      (rows dropped by earlier changes) or after its last row, the arrays grown once for what is
      added; the key words of the rows that stay and of the new rows are merged into one sorted
      array, with a new directory and entry-id hash table. The overlay is folded into the base on
      the way (so this is also how the index compacts). Nothing a read looks at changes: new rows
      are in slots no key word of the current index leads to, or that it sees as removed.
    - ``commit`` (on the thread that matches): a few references swapped and the removed rows marked
      at once, so a read sees the whole old state or the whole new one, never a mix.

    What it costs over the index itself: the new key words array (the old one answers reads until
    the commit), its directory, and the rows staged; never a second index or the entries as objects.

    A change of at most ``SMALL_CHANGE`` entries is also kept as it came (``small``): ``apply`` then
    makes it as deltas do, through the overlay, with no copy of the key words.
    """

    def __init__(self, index: PlateIndex) -> None:
        self._index = index
        self._rows = RowsBuilder()
        self._hashes = array("q")  # hash() of each staged row's entry id
        self._kill = array("q")  # base rows the change removes
        self._gone: set[str] = set()  # overlay and pattern entries it removes
        self._extra: dict[str, Entry] = {}  # entries for the overlay or the patterns
        self._ready: dict[str, object] | None = None
        self._small: list[tuple[str, Entry | None]] | None = []  # the change as it came, while small

    def __len__(self) -> int:
        """Changes staged (removals and entries to add)."""
        return len(self._kill) + len(self._gone) + self._rows.n + len(self._extra)

    @property
    def small(self) -> bool:
        """Whether the change is small enough for ``apply`` (at most ``SMALL_CHANGE`` entries)."""
        return self._small is not None

    def _keep(self, entry_id: str, entry: Entry | None) -> None:
        if self._small is not None:
            self._small.append((entry_id, entry))
            if len(self._small) > SMALL_CHANGE:
                self._small = None

    def apply(self, watchlists: Iterable[Watchlist] | None = None) -> None:
        """Make a small change (see ``small``) as deltas do, instead of ``prepare`` and ``commit``: on
        the thread that matches, in one go (a few milliseconds), so reads see all of it or none."""
        if self._small is None:
            raise RuntimeError("a change this large is made with prepare() and commit()")
        ix = self._index
        if watchlists is not None:
            ix.watchlists = {wl.list_id: wl for wl in watchlists}
            ix._refresh_lists()
        for entry_id, entry in self._small:
            if entry is None:
                ix.remove(entry_id)
            else:
                ix.upsert(entry)
        self._small = None

    def remove(self, entry_id: str) -> None:
        """Stage the removal of an entry (nothing when the index does not hold it)."""
        self._keep(entry_id, None)
        self._remove(entry_id)

    def _remove(self, entry_id: str) -> None:
        ix = self._index
        if entry_id in ix._ov or entry_id in ix._pat:
            self._gone.add(entry_id)
            return
        row = ix._base_row(entry_id)
        if row >= 0:
            self._kill.append(row)

    def upsert(self, entry: Entry) -> None:
        """Stage an entry that adds to or replaces (by entry_id) what the index holds."""
        self._keep(entry.entry_id, entry)
        self._remove(entry.entry_id)
        if fits_base(entry) and entry.entry_id:
            self._rows.add(entry)
            self._hashes.append(hash(entry.entry_id))
        else:
            self._extra[entry.entry_id] = entry

    def prepare(self) -> None:
        """Build the index's next state next to it (call once, from a worker thread if the index
        is matching meanwhile; only ``commit`` changes what reads see)."""
        ix, rows = self._index, self._rows
        n = ix._n
        # an earlier prepare that never committed may have left rows past the end: cut them off
        for col in (ix._list, ix._colour, ix._vtype, ix._vfrom, ix._vuntil):
            del col[n:]
        # the overlay folds into the base: what fits the base becomes rows, the rest stays
        ov: dict[str, Entry] = {}
        for eid, e in list(ix._ov.items()):
            if eid in self._gone:
                continue
            if fits_base(e) and eid:
                rows.add(e)
                self._hashes.append(hash(eid))
            else:
                ov[eid] = e
        pat = {eid: e for eid, e in ix._pat.items() if eid not in self._gone}
        for eid, e in self._extra.items():
            (pat if is_pattern(e.plate) else ov)[eid] = e
        ov_keys: dict[int, list[str]] = {}
        for eid, e in ov.items():
            for k in ix._ov_keys_of(e):
                ov_keys.setdefault(k, []).append(eid)

        # slots: rows dead before this change take staged rows; the rest go after the end
        k = rows.n
        alive = np.frombuffer(ix._alive, dtype=np.uint8) if n else np.zeros(0, dtype=np.uint8)
        free = np.flatnonzero(alive == 0)
        reuse = np.arange(min(k, len(free)))
        slots = np.empty(k, dtype=np.int64)
        slots[reuse] = free[: len(reuse)]
        appended_idx = np.arange(len(reuse), k)
        n_new = n + len(appended_idx)
        slots[appended_idx] = np.arange(n, n_new, dtype=np.int64)
        # rows that stay: alive now and not removed by this change
        keep_row = alive.astype(bool)
        kill = np.frombuffer(self._kill, dtype=np.int64) if len(self._kill) else np.zeros(0, dtype=np.int64)
        keep_row[kill] = False
        del alive

        # the rows' columns: grown once, new rows written where no read can reach them yet
        width = max(ix._width, rows.width)
        plates = ix._plates
        if len(plates) < n_new or plates.dtype.itemsize // 4 < width:
            plates = np.zeros(n_new + n_new // 8 + 16, dtype=f"U{width}")
            plates[:n] = ix._plates[:n]
            # reads take the grown copy now (the same plates in every live row), so the old one
            # is freed before the key words below take their share, not at the commit
            ix._plates = plates
        staged = rows.plates[:k].astype(f"U{width}")
        plates[slots] = staged
        list_lut = np.array([ix._code(name) for name in rows.list_names] or [0], dtype=np.int32)
        attr_lut = np.array([ix._attr(name) for name in rows.attr_names], dtype=np.int32)
        for col, values in (
            (ix._list, list_lut[rows.list_code[:k]]),
            (ix._colour, attr_lut[rows.colour[:k]]),
            (ix._vtype, attr_lut[rows.vtype[:k]]),
            (ix._vfrom, rows.vfrom[:k]),
            (ix._vuntil, rows.vuntil[:k]),
        ):
            col.extend(array(col.typecode, values[appended_idx].astype(values.dtype).tobytes()))
            view = np.frombuffer(col, dtype=values.dtype)
            view[slots[reuse]] = values[reuse]
            del view
        ids, id_off = _ids_after(ix._ids, ix._id_off, keep_row, rows.ids, rows.id_off, slots, n_new)
        # what is staged is in the index's columns now (the plates in ``staged``, for their keys)
        self._rows = rows = RowsBuilder(16)

        # entry-id hashes: those of the rows that stay (in hash order) with the new ones put in
        # their places (a merge, as the key words below)
        keep = keep_row[ix._id_rows]
        kept_hash, kept_rows = ix._id_hash[keep], ix._id_rows[keep]
        del keep
        new_hash = np.frombuffer(self._hashes, dtype=np.int64)
        order = np.argsort(new_hash)
        new_hash, new_rows = new_hash[order], slots[order]
        at_new = np.arange(len(new_hash)) + np.searchsorted(kept_hash, new_hash, "right")
        old_place = np.ones(len(kept_hash) + len(new_hash), dtype=bool)
        old_place[at_new] = False
        id_hash = np.empty(len(old_place), dtype=np.int64)
        id_rows = np.empty(len(old_place), dtype=np.int32)
        id_hash[at_new], id_rows[at_new] = new_hash, new_rows
        id_hash[old_place], id_rows[old_place] = kept_hash, kept_rows
        del kept_hash, kept_rows, new_hash, new_rows, order, at_new, old_place
        self._hashes = array("q")

        # key words: those of the rows that stay, then the new rows' keys, sorted as one array
        rowbits = max(1, max(n_new - 1, 1).bit_length())
        new_words = ix._key_words(staged.view(np.uint32).reshape(k, width), slots, rowbits)
        new_words.sort()
        del staged
        old, old_mask = ix._words, np.uint64(ix._rowmask)
        step = _MERGE_STEP
        kept = sum(
            int(np.count_nonzero(keep_row[(old[s : s + step] & old_mask).astype(np.intp)]))
            for s in range(0, len(old), step)
        )
        # merged straight into their places (no sort, no second copy of the old words): both
        # sides are in key order (the old words stay so with more row bits: only the equal keys'
        # rows lose their order, and the scan of a key's run reads each word anyway)
        words = np.empty(kept + len(new_words), dtype=np.uint64)
        wider = rowbits != ix._rowbits
        shift = np.uint64(rowbits)
        new_keys = new_words >> shift
        old_before = np.zeros(len(new_words), dtype=np.int64)  # old words each new word follows
        at = 0
        for s in range(0, len(old), step):
            chunk = old[s : s + step]
            chunk = chunk[keep_row[(chunk & old_mask).astype(np.intp)]]
            if not len(chunk):
                continue
            if wider:  # the row number takes more low bits now
                chunk = ((chunk >> shift) << shift) | (chunk & old_mask)
            keys = chunk >> shift
            words[at + np.arange(len(chunk)) + np.searchsorted(new_keys, keys, "left")] = chunk
            lo = int(np.searchsorted(new_keys, keys[0], "left"))
            hi = int(np.searchsorted(new_keys, keys[-1], "right"))
            old_before[lo:hi] += np.searchsorted(keys, new_keys[lo:hi], "right")
            old_before[hi:] += len(chunk)
            at += len(chunk)
            del chunk, keys
        words[np.arange(len(new_words)) + old_before] = new_words
        del new_words, new_keys, old_before, keep_row
        self._ready = {
            "n": n_new,
            "width": width,
            "plates": plates,
            "ids": ids,
            "id_off": id_off,
            "id_hash": id_hash,
            "id_rows": id_rows,
            "words": words,
            "keys": _directory(words),
            "slots": slots,
            "kill": kill,
            "ov": ov,
            "ov_keys": ov_keys,
            "pat": pat,
        }

    def commit(self, watchlists: Iterable[Watchlist] | None = None) -> None:
        """Publish the prepared state (on the thread that matches; quick: references swapped),
        with these lists when given (as ``set_watchlist`` for each, lists not given dropped)."""
        if self._ready is None:
            raise RuntimeError("a merge is committed after prepare()")
        ix, r = self._index, self._ready
        self._ready = None
        n_new = r["n"]
        assert isinstance(n_new, int)
        ix._alive += bytes(n_new - ix._n)
        alive = np.frombuffer(ix._alive, dtype=np.uint8)
        alive[r["kill"]] = 0
        alive[r["slots"]] = 1
        ix._n_dead = n_new - int(np.count_nonzero(alive))
        del alive
        ix._n, ix._width, ix._plates = n_new, r["width"], r["plates"]  # type: ignore[assignment]
        ix._ids, ix._id_off = r["ids"], r["id_off"]  # type: ignore[assignment]
        ix._set_rowbits()
        ix._install_keys(r["words"], *r["keys"])  # type: ignore[arg-type,misc]
        ix._id_hash, ix._id_rows = r["id_hash"], r["id_rows"]  # type: ignore[assignment]
        ix._ov, ix._ov_keys, ix._ov_arrays = r["ov"], r["ov_keys"], None  # type: ignore[assignment]
        ix._pat, ix._wild = r["pat"], None  # type: ignore[assignment]
        if watchlists is not None:
            ix.watchlists = {wl.list_id: wl for wl in watchlists}
        ix._refresh_lists()
