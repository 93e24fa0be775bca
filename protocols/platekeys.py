"""Hash keys of watchlist plates and hash probes of reads: what makes ``PlateIndex``'s candidates complete.

Each non-pattern kind implies a simple relation, and each relation is one kind of hash-key
equality (``~`` maps every character to its look-alike class representative):

    kind                relation                         entry key            read probe
    EXACT, EQUIVALENT   ~r == ~e                         H(~e)                H(~r)
    PROVINCE (missing)  ~r == ~e[1:]                     H(~e[1:]) ^ T0       H(~r) ^ T0
    PROVINCE (other)    ~r[1:] == ~e[1:]                 (same key)           H(~r[1:]) ^ T0
    EDIT (read lacks)   r == del_j e       for some j    H(del_j e) ^ R[j]    H(r) ^ R[j], every j
    EDIT (read extra)   del_i r == e       for some i    H(e) ^ R             H(del_i r) ^ R, every i
    EDIT (substitution) del_i r == del_i e for some i    H(del_i e) ^ R[i]    H(del_i r) ^ R[i]

So an entry has (3 + its length) keys and a read makes up to (3 * its length + 4) probes; the
tags (T0, R, R[j]: fixed random 64-bit values) keep the families apart. Edits are keyed on the
raw strings, not the class form: class-form keys would also propose every pair one edit apart
*after* mapping, which on a dense national feed is several non-matching candidates per read.
When no list alerts on EDIT (production's default) and ``alerting_only`` is set, only the probes
the alerting kinds need are made: one for EXACT/EQUIVALENT, two more for PROVINCE.

H is a polynomial hash mod 2**64 (odd base), chosen because a deletion's hash follows from prefix
sums in O(1), in numpy (batch) and in plain Python (single read) alike, with equal values; keys
are then multiplied by an odd constant (a bijection) so their top bits are well mixed. A hash
collision only adds a candidate the rules reject; it can never lose one.

Pure: numpy and the standard library, no I/O.
"""

from __future__ import annotations

import numpy as np

from protocols.matching import MAX_READ_CHARS

__all__ = ["entry_keys", "mix", "np_entry_keys", "np_hashes", "np_read_probes", "py_hashes", "read_probes"]

_M = (1 << 64) - 1
_B = 0x9E3779B97F4A7C15  # odd, so invertible mod 2**64
_BINV = pow(_B, -1, 1 << 64)
_MIX = 0xD6E8FEB86659FD93  # odd: key -> key * _MIX is a bijection that spreads into the top bits
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
_RAW = _splitmix(0x5A5A, 1)[0]  # raw-string keys live apart from class-form keys
_TAG_RAW = [x ^ _RAW for x in _TAG]
_BP_NP = np.array(_BP, dtype=np.uint64)
_TAG_NP = np.array(_TAG, dtype=np.uint64)
_RAW_NP = np.uint64(_RAW)
_TAG_RAW_NP = np.array(_TAG_RAW, dtype=np.uint64)
_BINV_NP = np.uint64(_BINV)
_MIX_NP = np.uint64(_MIX)


def py_hashes(t: str) -> tuple[int, list[int]]:
    """H(t) and H(del_i t) for every i, in plain Python; equal to ``np_hashes``."""
    bp = _BP
    pre = [0]
    h = 0
    for k, c in enumerate(t):
        h += (ord(c) + 1) * bp[k]  # masked once below: Python ints do not overflow
        pre.append(h)
    binv = _BINV
    return h & _M, [(pre[i] + binv * (h - pre[i + 1])) & _M for i in range(len(t))]


def np_hashes(rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise H and deletion hashes of an (n, L) matrix of representative code points."""
    length = rep.shape[1]
    v = rep.astype(np.uint64)
    v += np.uint64(1)
    t = v * _BP_NP[:length]
    c = np.cumsum(t, axis=1, dtype=np.uint64)
    h = c[:, -1].copy()
    d = (c - t) + _BINV_NP * (h[:, None] - c)
    return h, d


def entry_keys(plate: str, t: str) -> list[int]:
    """Keys of an entry plate (``t``: its representative form); see the module doc."""
    hr, dr = py_hashes(t)
    h, dels = py_hashes(plate) if t != plate else (hr, dr)
    raw = [hr, dr[0] ^ _TAG[0], h ^ _RAW]
    raw += [d ^ x for d, x in zip(dels, _TAG_RAW, strict=False)]
    return [(x * _MIX) & _M for x in raw]


def read_probes(plate: str, t: str, exact: bool, province: bool, edit: bool) -> list[int]:
    """Probes of a read (``t``: its representative form), for the kinds that may alert.

    Equal to the ``py_hashes`` formulas, written out once: this is the single-read hot path.
    """
    bp = _BP
    pre = [0]
    h = 0
    for k, c in enumerate(plate):
        h += (ord(c) + 1) * bp[k]  # masked when used: Python ints do not overflow
        pre.append(h)
    raw: list[int] = []
    if exact or province:
        # the class form differs from the raw read only where look-alikes were mapped
        hr = h
        if t != plate:
            for k, (a, b) in enumerate(zip(t, plate, strict=True)):
                if a != b:
                    hr += (ord(a) - ord(b)) * bp[k]
        hr &= _M
        if exact:
            raw.append(hr)
        if province:
            raw.append(hr ^ _TAG[0])
            raw.append(((_BINV * (hr - ord(t[0]) - 1)) & _M) ^ _TAG[0])
    if edit:
        binv = _BINV
        dels = [(pre[i] + binv * (h - pre[i + 1])) & _M for i in range(len(plate))]
        h &= _M
        tr = _TAG_RAW
        raw += [h ^ tr[j] for j in range(len(plate) + 1)]
        raw += [d ^ _RAW for d in dels]
        raw += [d ^ x for d, x in zip(dels, tr, strict=False)]
    return [(x * _MIX) & _M for x in raw]


def np_read_probes(
    rep: tuple[np.ndarray, np.ndarray],
    raw: tuple[np.ndarray, np.ndarray] | None,
    exact: bool,
    province: bool,
    edit: bool,
) -> np.ndarray:
    """(n, probes) matrix, same probes and order as ``read_probes``."""
    hr, dr = rep
    cols = []
    if exact:
        cols.append(hr[:, None])
    if province:
        cols.append((hr ^ _TAG_NP[0])[:, None])
        cols.append((dr[:, 0] ^ _TAG_NP[0])[:, None])
    if edit:
        assert raw is not None
        h, d = raw
        length = d.shape[1]
        cols.append(h[:, None] ^ _TAG_RAW_NP[: length + 1])
        cols.append(d ^ _RAW_NP)
        cols.append(d ^ _TAG_RAW_NP[:length])
    out = np.hstack(cols) if len(cols) > 1 else cols[0].copy()
    out *= _MIX_NP
    return out


def np_entry_keys(rep: np.ndarray, raw: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unmixed keys of n entry plates of one length, as ``entry_keys`` makes them one by one.

    ``rep`` and ``raw`` are (n, L) code matrices of the representative and raw forms; the result is
    the three class-form/whole-plate keys (each of n) and the (n, L) deletion keys. Pass the lot
    through ``mix`` once collected.
    """
    hr, dr = np_hashes(rep)
    h, d = np_hashes(raw)
    d ^= _TAG_RAW_NP[: raw.shape[1]]
    return [hr, dr[:, 0] ^ _TAG_NP[0], h ^ _RAW_NP], d


def mix(keys: np.ndarray) -> None:
    """Spread keys into their top bits, in place (the last step of every key and probe)."""
    keys *= _MIX_NP
