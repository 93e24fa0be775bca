"""The feed file: the whole field feed at one version, compact and byte-identical wherever it is built.

An edge that is behind fetches this file (``GET /api/v1/feed/file``) instead of the JSON snapshot,
then the deltas since its version. Layout::

    MAGIC (12 bytes) | zlib stream (level 6) of one msgpack array: FeedColumns

``FeedColumns`` holds the lists and permit rules as they are, and the entries column by column,
sorted by ``entry_id``, each column one packed little-endian array: repeated strings (list ids,
colours, vehicle types, reasons, authors) are stored once in a table and referenced by number;
plates and case references as UTF-8 with their lengths; an ``entry_id`` other than
``"{list_id}:{plate}"`` (the usual form) and the validity bounds as sparse (row gap, value) columns.
Nothing in the file depends on the host, the time it was built or the order rows came from the
database, and msgpack is written with sets and maps in a deterministic order, so two hubs build
the same bytes for the same feed version. Its SHA-256 is the HTTP ETag; the hub signs the digest
with its Ed25519 key (the key that signs the deltas) as ``sign_digest`` describes.

Pure: standard library, msgspec and cryptography's Ed25519 types; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import CordonError
from .feed import FeedSnapshot
from .matching import Entry, PermitRule, Watchlist

__all__ = [
    "MAGIC",
    "FeedFileError",
    "build",
    "columns",
    "columns_from",
    "decode",
    "digest_of",
    "iter_entries",
    "sign_digest",
    "verify_digest",
]

MAGIC = b"CORDONFEED\x00\x01"
#: Fixed so every hub compresses the same way (a different level would give different bytes).
ZLIB_LEVEL = 6
#: What the signature covers: this prefix and the file's 32-byte SHA-256 (never a bare digest,
#: so a feed-file signature cannot be replayed as anything else the hub signs).
SIGNED_PREFIX = b"cordon-feed-file/1\x00"


class FeedFileError(CordonError, ValueError):
    """A feed file that is not one, is damaged, or whose signature does not verify."""


class FeedColumns(msgspec.Struct, array_like=True, kw_only=True):
    """The file's content. Columns are little-endian packed arrays, so a decoder holds a million
    entries as a few buffers, not as a million Python objects. Decoded, each column is a view into
    the one decompressed buffer (no copy of it, see ``columns``)."""

    version: int
    watchlists: list[Watchlist]
    permit_rules: list[PermitRule]
    count: int
    strings: list[str]
    """The table that ``list_code``, ``colour``, ``vehicle_type``, ``reason`` and ``created_by``
    point into; 0 is the empty string (None for colour and vehicle type)."""
    list_code: memoryview  # uint32 per entry
    plate_len: memoryview  # uint16 per entry: bytes of UTF-8 in ``plate``
    plate: memoryview
    colour: memoryview  # uint32
    vehicle_type: memoryview  # uint32
    reason: memoryview  # uint32
    created_by: memoryview  # uint32
    case_ref_len: memoryview  # uint16
    case_ref: memoryview
    id_rows: memoryview
    """Rows whose ``entry_id`` is not ``list_id:plate`` (uint32 gaps from the previous such row)."""
    ids: list[str]
    from_rows: memoryview  # uint32 gaps from the previous row with a ``valid_from``
    from_values: memoryview  # float64
    until_rows: memoryview
    until_values: memoryview


_enc = msgspec.msgpack.Encoder(order="deterministic")
_dec = msgspec.msgpack.Decoder(type=FeedColumns)
_BIG = sys.byteorder == "big"


def _packed(typecode: str, values: array) -> bytes:  # type: ignore[type-arg]
    if _BIG:
        values = array(typecode, values)
        values.byteswap()
    return values.tobytes()


def _unpacked(typecode: str, data: bytes | memoryview) -> Sequence[int] | Sequence[float]:
    """A packed column as numbers: on a little-endian host a view of the same bytes (no copy)."""
    values = array(typecode)
    if len(data) % values.itemsize:
        raise FeedFileError("damaged feed file: a column of the wrong size")
    if not _BIG:
        return memoryview(data).cast("B").cast(typecode)  # type: ignore[call-overload]
    values.frombytes(data)
    values.byteswap()
    return values


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def build(
    version: int,
    watchlists: Iterable[Watchlist],
    entries: Iterable[Entry],
    permit_rules: Iterable[PermitRule] = (),
) -> bytes:
    """The feed file for this content (the same bytes for the same content, in any input order)."""
    strings: dict[str, int] = {"": 0}

    def s(value: str | None) -> int:
        if not value:
            return 0
        code = strings.get(value)
        if code is None:
            code = strings[value] = len(strings)
        return code

    list_code, colour, vtype, reason, author = (array("I") for _ in range(5))
    plate_len, case_len = array("H"), array("H")
    plate, case_ref = bytearray(), bytearray()
    id_rows, from_rows, until_rows = array("I"), array("I"), array("I")
    from_values, until_values = array("d"), array("d")
    ids: list[str] = []
    last_id = last_from = last_until = -1
    count = 0
    for row, e in enumerate(sorted(entries, key=lambda e: e.entry_id)):
        count += 1
        if e.entry_id != f"{e.list_id}:{e.plate}":
            id_rows.append(row - last_id)
            ids.append(e.entry_id)
            last_id = row
        list_code.append(s(e.list_id))
        p = _utf8(e.plate)
        plate_len.append(len(p))
        plate += p
        colour.append(s(e.colour))
        vtype.append(s(e.vehicle_type))
        reason.append(s(e.reason))
        author.append(s(e.created_by))
        c = _utf8(e.case_ref)
        case_len.append(len(c))
        case_ref += c
        if e.valid_from is not None:
            from_rows.append(row - last_from)
            from_values.append(e.valid_from)
            last_from = row
        if e.valid_until is not None:
            until_rows.append(row - last_until)
            until_values.append(e.valid_until)
            last_until = row
    cols = FeedColumns(
        version=version,
        watchlists=sorted(watchlists, key=lambda wl: wl.list_id),
        permit_rules=sorted(permit_rules, key=lambda r: r.rule_id),
        count=count,
        strings=list(strings),
        list_code=memoryview(_packed("I", list_code)),
        plate_len=memoryview(_packed("H", plate_len)),
        plate=memoryview(bytes(plate)),
        colour=memoryview(_packed("I", colour)),
        vehicle_type=memoryview(_packed("I", vtype)),
        reason=memoryview(_packed("I", reason)),
        created_by=memoryview(_packed("I", author)),
        case_ref_len=memoryview(_packed("H", case_len)),
        case_ref=memoryview(bytes(case_ref)),
        id_rows=memoryview(_packed("I", id_rows)),
        ids=ids,
        from_rows=memoryview(_packed("I", from_rows)),
        from_values=memoryview(_packed("d", from_values)),
        until_rows=memoryview(_packed("I", until_rows)),
        until_values=memoryview(_packed("d", until_values)),
    )
    return MAGIC + zlib.compress(_enc.encode(cols), ZLIB_LEVEL)


def columns(data: bytes) -> FeedColumns:
    """The decoded content of a file (raises FeedFileError when it is damaged)."""
    if not data.startswith(MAGIC):
        raise FeedFileError("not a Cordon feed file")
    compressed = memoryview(data)[len(MAGIC) :]
    return _decoded(
        lambda: (compressed[at : at + _INFLATE_STEP] for at in range(0, len(compressed), _INFLATE_STEP))
    )


def columns_from(stream: BinaryIO) -> FeedColumns:
    """``columns`` of a file read from an open, seekable binary stream ``_READ_STEP`` bytes at a
    time: neither the file's bytes nor a second copy of the inflated ones are ever held whole
    (the edge reads a million-entry file this way; see ``_inflate``)."""
    if stream.read(len(MAGIC)) != MAGIC:
        raise FeedFileError("not a Cordon feed file")

    def chunks() -> Iterator[bytes]:
        stream.seek(len(MAGIC))
        while piece := stream.read(_READ_STEP):
            yield piece

    return _decoded(chunks)


def _decoded(chunks: Callable[[], Iterable[bytes | memoryview]]) -> FeedColumns:
    try:
        cols = _dec.decode(_inflate(chunks))
    except (zlib.error, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FeedFileError(f"damaged feed file: {exc}") from None
    _check(cols)
    return cols


#: Compressed bytes inflated at a time (see ``_inflate``).
_INFLATE_STEP = 1 << 16
#: Bytes read from a file at a time (see ``columns_from``).
_READ_STEP = 1 << 20


def _inflate(chunks: Callable[[], Iterable[bytes | memoryview]]) -> bytearray:
    """The zlib stream (``chunks()`` gives it from its start, each time it is called) inflated into
    one buffer of its exact size. A first pass only counts the bytes (inflating is cheap next to
    decoding), so the buffer is allocated once and filled in place: ``zlib.decompress`` and a
    growing buffer both hold a second copy for a moment. The decoded columns are views into this
    buffer, so the feed is held once."""
    size = 0
    for piece in _inflated(chunks()):
        size += len(piece)
    out = bytearray(size)
    at = 0
    for piece in _inflated(chunks()):
        if at + len(piece) > size:
            raise FeedFileError("damaged feed file: it changed while it was read")
        out[at : at + len(piece)] = piece
        at += len(piece)
    return out


def _inflated(chunks: Iterable[bytes | memoryview]) -> Iterator[bytes]:
    z = zlib.decompressobj()
    for chunk in chunks:
        # bounded output per step: a small chunk can inflate to a lot
        piece = z.decompress(chunk, _INFLATE_STEP * 16)
        yield piece
        while z.unconsumed_tail:
            yield z.decompress(z.unconsumed_tail, _INFLATE_STEP * 16)
    yield z.flush()
    if not z.eof or z.unused_data:
        raise FeedFileError("damaged feed file: the compressed stream is cut short or has bytes after it")


def _check(cols: FeedColumns) -> None:
    """Column sizes that agree with each other (checked before anything is written from them)."""
    n = cols.count
    fixed = (cols.list_code, cols.colour, cols.vehicle_type, cols.reason, cols.created_by)
    if any(len(c) != n * 4 for c in fixed) or len(cols.plate_len) != 2 * n:
        raise FeedFileError("damaged feed file: columns of different lengths")
    if len(cols.case_ref_len) != 2 * n:
        raise FeedFileError("damaged feed file: columns of different lengths")
    if sum(_unpacked("H", cols.plate_len)) != len(cols.plate):
        raise FeedFileError("damaged feed file: text columns of the wrong size")
    if sum(_unpacked("H", cols.case_ref_len)) != len(cols.case_ref):
        raise FeedFileError("damaged feed file: text columns of the wrong size")
    if len(cols.id_rows) != 4 * len(cols.ids) or 2 * len(cols.from_rows) != len(cols.from_values):
        raise FeedFileError("damaged feed file: sparse columns of different lengths")
    if 2 * len(cols.until_rows) != len(cols.until_values):
        raise FeedFileError("damaged feed file: sparse columns of different lengths")


def _sparse(rows: memoryview, values: Sequence[object]) -> Iterator[tuple[int, object]]:
    """(row, value) of a sparse column, in row order, one at a time (never a whole dict of them)."""
    gaps = _unpacked("I", rows)
    if len(gaps) != len(values):
        raise FeedFileError("damaged feed file: sparse columns of different lengths")
    at = -1
    for gap, value in zip(gaps, values, strict=True):
        at += int(gap)
        yield at, value


class _Sparse:
    """Walks a sparse column alongside the rows: ``at(row)`` is its value there, or None."""

    def __init__(self, rows: memoryview, values: Sequence[object]) -> None:
        self._it = _sparse(rows, values)
        self._row, self._value = next(self._it, (-1, None))

    def at(self, row: int) -> object:
        """Rows must be asked in ascending order; rows skipped between two calls are passed over."""
        while 0 <= self._row < row:
            self._row, self._value = next(self._it, (-1, None))
        value = None
        while self._row == row:  # (a repeated row in a damaged file: the last one wins)
            value = self._value
            self._row, self._value = next(self._it, (-1, None))
        return value


def iter_entries(cols: FeedColumns, wanted: Iterable[int] | None = None) -> Iterator[Entry]:
    """The entries of decoded columns, in ``entry_id`` order, one at a time; with ``wanted`` (row
    numbers, ascending), only those rows are decoded (the others cost a few additions each)."""
    n = cols.count
    strings = cols.strings
    list_code = _unpacked("I", cols.list_code)
    colour = _unpacked("I", cols.colour)
    vtype = _unpacked("I", cols.vehicle_type)
    reason = _unpacked("I", cols.reason)
    author = _unpacked("I", cols.created_by)
    plate_len = _unpacked("H", cols.plate_len)
    case_len = _unpacked("H", cols.case_ref_len)
    if any(len(c) != n for c in (list_code, colour, vtype, reason, author, plate_len, case_len)):
        raise FeedFileError("damaged feed file: columns of different lengths")
    if sum(plate_len) != len(cols.plate) or sum(case_len) != len(cols.case_ref):
        raise FeedFileError("damaged feed file: text columns of the wrong size")
    ids = _Sparse(cols.id_rows, cols.ids)
    vfrom = _Sparse(cols.from_rows, _unpacked("d", cols.from_values))
    vuntil = _Sparse(cols.until_rows, _unpacked("d", cols.until_values))
    plates, cases = memoryview(cols.plate), memoryview(cols.case_ref)
    p_at = c_at = 0
    want = iter(wanted) if wanted is not None else None
    next_row = next(want, n) if want is not None else 0
    try:
        for row in range(n):
            p_end, c_end = p_at + plate_len[row], c_at + case_len[row]
            if want is not None:
                if row < next_row:
                    if next_row >= n:
                        return
                    p_at, c_at = p_end, c_end
                    continue
                if row > next_row:
                    raise ValueError("wanted rows are asked for in ascending order")
                next_row = next(want, n)
            list_id = strings[list_code[row]]
            plate = str(plates[p_at:p_end], "utf-8", "surrogatepass")
            case_ref = str(cases[c_at:c_end], "utf-8", "surrogatepass") if c_end > c_at else ""
            p_at, c_at = p_end, c_end
            yield Entry(
                entry_id=ids.at(row) or f"{list_id}:{plate}",  # type: ignore[arg-type]
                list_id=list_id,
                plate=plate,
                colour=strings[colour[row]] or None,
                vehicle_type=strings[vtype[row]] or None,
                reason=strings[reason[row]],
                case_ref=case_ref,
                valid_from=vfrom.at(row),  # type: ignore[arg-type]
                valid_until=vuntil.at(row),  # type: ignore[arg-type]
                created_by=strings[author[row]],
            )
    except (IndexError, UnicodeDecodeError):
        raise FeedFileError("damaged feed file: a value out of range") from None


def decode(data: bytes) -> FeedSnapshot:
    """The feed a file holds, every entry as an object (tests and small feeds; see ``columns``)."""
    cols = columns(data)
    return FeedSnapshot(
        version=cols.version,
        watchlists=cols.watchlists,
        entries=list(iter_entries(cols)),
        permit_rules=cols.permit_rules,
    )


def digest_of(data: bytes) -> str:
    """The file's SHA-256 in hex (its ETag, without the quotes)."""
    return hashlib.sha256(data).hexdigest()


def sign_digest(digest_hex: str, key: Ed25519PrivateKey) -> str:
    """The hub's signature of a feed file with this digest, base64url without padding."""
    signature = key.sign(SIGNED_PREFIX + bytes.fromhex(digest_hex))
    return base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def verify_digest(digest_hex: str, signature: str, key: Ed25519PublicKey) -> None:
    """Raise FeedFileError unless ``signature`` is the hub's signature of this digest."""
    try:
        raw = base64.urlsafe_b64decode(signature.encode() + b"==")
        key.verify(raw, SIGNED_PREFIX + bytes.fromhex(digest_hex))
    except (InvalidSignature, binascii.Error, ValueError):
        raise FeedFileError("the feed file's signature does not verify with the hub's key") from None
