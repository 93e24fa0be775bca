"""The feed file: the whole field feed at one version, compact and byte-identical wherever it is built.

An edge that is behind fetches this file (``GET /api/v1/feed/file``) instead of the JSON snapshot,
then the deltas since its version. Layout::

    MAGIC (12 bytes) | zlib stream (level 6) of one msgpack array: FeedColumns

``FeedColumns`` holds the lists and permit rules as they are, and the entries column by column,
sorted by ``entry_id``: repeated strings (list ids, colours, vehicle types, reasons, authors) are
stored once in a table and referenced by number; an ``entry_id`` equal to ``"{list_id}:{plate}"``
(the usual form) is stored as an empty string; validity bounds are sparse (row, value) columns.
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
import zlib
from collections.abc import Iterable, Iterator

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .feed import FeedSnapshot
from .matching import Entry, PermitRule, Watchlist

__all__ = [
    "MAGIC",
    "FeedFileError",
    "build",
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


class FeedFileError(ValueError):
    """A feed file that is not one, is damaged, or whose signature does not verify."""


class FeedColumns(msgspec.Struct, array_like=True, kw_only=True):
    version: int
    watchlists: list[Watchlist]
    permit_rules: list[PermitRule]
    strings: list[str]
    """The table that ``list_code``, ``colour``, ``vehicle_type``, ``reason`` and ``created_by``
    point into; 0 is the empty string (None for colour and vehicle type)."""
    entry_id: list[str]
    list_code: list[int]
    plate: list[str]
    colour: list[int]
    vehicle_type: list[int]
    reason: list[int]
    case_ref: list[str]
    created_by: list[int]
    from_rows: list[int]
    """Rows with a ``valid_from``, as gaps from the previous such row (small numbers compress well)."""
    from_values: list[float]
    until_rows: list[int]
    until_values: list[float]


_enc = msgspec.msgpack.Encoder(order="deterministic")
_dec = msgspec.msgpack.Decoder(type=FeedColumns)


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

    cols = FeedColumns(
        version=version,
        watchlists=sorted(watchlists, key=lambda wl: wl.list_id),
        permit_rules=sorted(permit_rules, key=lambda r: r.rule_id),
        strings=[],
        entry_id=[],
        list_code=[],
        plate=[],
        colour=[],
        vehicle_type=[],
        reason=[],
        case_ref=[],
        created_by=[],
        from_rows=[],
        from_values=[],
        until_rows=[],
        until_values=[],
    )
    last_from = last_until = -1
    ordered = sorted(entries, key=lambda e: e.entry_id)
    for row, e in enumerate(ordered):
        cols.entry_id.append("" if e.entry_id == f"{e.list_id}:{e.plate}" else e.entry_id)
        cols.list_code.append(s(e.list_id))
        cols.plate.append(e.plate)
        cols.colour.append(s(e.colour))
        cols.vehicle_type.append(s(e.vehicle_type))
        cols.reason.append(s(e.reason))
        cols.case_ref.append(e.case_ref)
        cols.created_by.append(s(e.created_by))
        if e.valid_from is not None:
            cols.from_rows.append(row - last_from)
            cols.from_values.append(e.valid_from)
            last_from = row
        if e.valid_until is not None:
            cols.until_rows.append(row - last_until)
            cols.until_values.append(e.valid_until)
            last_until = row
    del ordered
    cols.strings = list(strings)
    return MAGIC + zlib.compress(_enc.encode(cols), ZLIB_LEVEL)


def _columns(data: bytes) -> FeedColumns:
    if not data.startswith(MAGIC):
        raise FeedFileError("not a Cordon feed file")
    try:
        return _dec.decode(zlib.decompress(memoryview(data)[len(MAGIC) :]))
    except (zlib.error, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FeedFileError(f"damaged feed file: {exc}") from None


def iter_entries(cols: FeedColumns) -> Iterator[Entry]:
    """The entries of decoded columns, in ``entry_id`` order."""
    strings = cols.strings
    n = len(cols.plate)
    columns = (cols.list_code, cols.colour, cols.vehicle_type, cols.reason, cols.case_ref, cols.created_by)
    if any(len(c) != n for c in (cols.entry_id, *columns)):
        raise FeedFileError("damaged feed file: columns of different lengths")
    if len(cols.from_rows) != len(cols.from_values) or len(cols.until_rows) != len(cols.until_values):
        raise FeedFileError("damaged feed file: validity columns of different lengths")
    vfrom: dict[int, float] = {}
    at = -1
    for gap, value in zip(cols.from_rows, cols.from_values, strict=True):
        at += gap
        vfrom[at] = value
    vuntil: dict[int, float] = {}
    at = -1
    for gap, value in zip(cols.until_rows, cols.until_values, strict=True):
        at += gap
        vuntil[at] = value
    try:
        for row in range(n):
            list_id = strings[cols.list_code[row]]
            plate = cols.plate[row]
            yield Entry(
                entry_id=cols.entry_id[row] or f"{list_id}:{plate}",
                list_id=list_id,
                plate=plate,
                colour=strings[cols.colour[row]] or None,
                vehicle_type=strings[cols.vehicle_type[row]] or None,
                reason=strings[cols.reason[row]],
                case_ref=cols.case_ref[row],
                valid_from=vfrom.get(row),
                valid_until=vuntil.get(row),
                created_by=strings[cols.created_by[row]],
            )
    except IndexError:
        raise FeedFileError("damaged feed file: a string code out of range") from None


def decode(data: bytes) -> FeedSnapshot:
    """The feed a file holds (raises FeedFileError when it is damaged)."""
    cols = _columns(data)
    entries = list(iter_entries(cols))
    return FeedSnapshot(
        version=cols.version,
        watchlists=cols.watchlists,
        entries=entries,
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
