"""The audit trail: who looked at or changed what, when and why; append-only and hash-chained.

Every record carries the SHA-256 of its own content and of the record before it, so editing or
removing a record anywhere in the middle breaks the chain at that point, and ``cordon audit verify``
says where. SQLite triggers refuse UPDATE and DELETE, which stops mistakes, not an attacker with the
file: against one, the chain is the evidence. Cutting records off the end leaves a shorter valid
chain, so the head (last id and hash, ``cordon audit head``) should also be written down somewhere
else, for example in the daily log or a ticket, and checked with ``verify --head ID:HASH``.

Records are appended inside the caller's writer transaction (the audit store of
``central.record.stores``, ``AuditStore.append``), so an audited change and its audit record commit together
or not at all. This module holds the chain's rule (a record's link, a walk over the chain); the store keeps
the records.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
COLUMNS = ("id", "at", "actor", "role", "action", "target", "reason", "detail", "prev_hash", "hash")


@dataclass(frozen=True, slots=True)
class Record:
    id: int
    at: float
    actor: str
    role: str
    action: str
    target: str
    reason: str
    detail: str
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in COLUMNS}


def record_hash(
    prev_hash: str,
    id_: int,
    at: float,
    actor: str,
    role: str,
    action: str,
    target: str,
    reason: str,
    detail: str,
) -> str:
    """The chain link: canonical JSON of the record's content and the previous hash."""
    canonical = json.dumps(
        [prev_hash, id_, repr(at), actor, role, action, target, reason, detail],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def next_record(
    last: tuple[int, str] | None,
    actor: str,
    role: str,
    action: str,
    target: str = "",
    reason: str = "",
    detail: dict[str, Any] | None = None,
    at: float | None = None,
) -> Record:
    """The record that follows ``last`` (its id and hash; None for an empty trail), fields cut to size."""
    id_, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    at = time.time() if at is None else at
    text = json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    fields = (actor[:128], role[:32], action[:64], target[:500], reason[:1000], text[:8000])
    return Record(id_, at, *fields, prev, record_hash(prev, id_, at, *fields))


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    head_id: int
    head_hash: str
    problem: str | None = None


def check_chain(
    chain: Iterable[Record], hash_of: Callable[[int], str | None], head: tuple[int, str] | None = None
) -> Verdict:
    """Walk the whole chain, oldest first (``hash_of``: a stored record's hash by id); the first broken link, missing id or unknown head is the problem."""
    prev, expected_id, count, last = GENESIS, 1, 0, None
    for rec in chain:
        if rec.id != expected_id:
            return Verdict(
                False,
                count,
                expected_id - 1,
                prev,
                f"record {expected_id} is missing (the next one is {rec.id})",
            )
        if rec.prev_hash != prev:
            return Verdict(False, count, rec.id, prev, f"record {rec.id} does not follow record {rec.id - 1}")
        if (
            record_hash(
                prev, rec.id, rec.at, rec.actor, rec.role, rec.action, rec.target, rec.reason, rec.detail
            )
            != rec.hash
        ):
            return Verdict(False, count, rec.id, prev, f"record {rec.id} was changed after it was written")
        prev, expected_id, count, last = rec.hash, rec.id + 1, count + 1, rec
    head_id, head_hash = (last.id, last.hash) if last else (0, GENESIS)
    if head is not None:
        want_id, want_hash = head
        if head_id < want_id:
            return Verdict(
                False,
                count,
                head_id,
                head_hash,
                f"the trail ends at record {head_id}, but record {want_id} was written down as its head",
            )
        if hash_of(want_id) != want_hash:
            return Verdict(False, count, head_id, head_hash, f"record {want_id} is not the head written down")
    return Verdict(True, count, head_id, head_hash)
