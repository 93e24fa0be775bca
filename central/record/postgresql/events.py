"""Events from the edges on PostgreSQL, alerts and quick-test results: the part of ``AlertStore`` that
statistics, webhooks and ``KitResultStore`` stand on (``insert_event`` for every kind, ``insert_alert``,
``kit_results``). Folding, receipts, escalations, dead letters, checkpoints and the console's reads of
alerts are not on PostgreSQL yet (docs/architecture.md).

Every event is inserted idempotently by its identity (checkpoint, epoch, seq) as on SQLite: the same
content again is a resend (nothing new), other content under a taken identity is a dead letter. What
an edge sent as free text (an officer's note and name, a hit's explanation, a gap's reason) is kept as
bytes: PostgreSQL's ``text`` cannot hold a NUL. Ids that are joined and looked up are ``text``, with a
NUL as U+FFFD (:func:`key`); the alert's body keeps the exact id.
"""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg

from central.record.days import digest
from central.record.postgresql.reads import PgReadStore
from central.record.stores import Outcome
from protocols.kits import KitResult, overall_call
from protocols.messages import (
    Alert,
    AlertOutcome,
    AuditEvent,
    EdgeHit,
    Event,
    Gap,
    KitResultEvent,
    Passage,
    PlateRead,
    event_kind,
)

_encoder = msgspec.json.Encoder()


def key(text: str) -> str:
    """An id as ``text`` can hold it (NUL and lone surrogates as U+FFFD)."""
    text = text.replace("\0", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def b(text: str | None) -> bytes | None:
    """Free text kept exactly, as bytes."""
    return None if text is None else text.encode("utf-8", "surrogatepass")


def s(raw: bytes | None) -> str | None:
    return None if raw is None else bytes(raw).decode("utf-8", "surrogatepass")


def made_at(event: Event) -> float:
    """When the edge made an event (for the record's day of a read that may hold its identity)."""
    if isinstance(event, EdgeHit):
        return event.raised_at
    if isinstance(event, Gap):
        return event.dropped_at
    if isinstance(event, AlertOutcome):
        return event.acknowledged_at
    if isinstance(event, AuditEvent):
        return event.at
    if isinstance(event, KitResultEvent):
        return event.recorded_at
    raise TypeError(type(event).__name__)


class PgEvents:
    """Events, alerts and quick-test results on PostgreSQL; the ``tx`` methods run inside the store's
    write transaction (a psycopg connection)."""

    def __init__(self, record: PgReadStore) -> None:
        self.record = record

    def insert_event(
        self,
        tx: psycopg.Connection,
        checkpoint: str,
        epoch: int,
        event: Event,
        edge_sent_at: float,
        received_at: float,
    ) -> Outcome:
        """Insert idempotently; a reused identity with other content comes back as a dead letter."""
        if isinstance(event, PlateRead | Passage):
            stored = self.record.insert(tx, checkpoint, epoch, event, edge_sent_at, received_at)
            return Outcome(
                inserted=stored.inserted, dead_letter=stored.conflict, seen_before=stored.seen_before
            )
        d = digest(event)
        taken = f"event {checkpoint}/{epoch}/{event.seq} was already stored with different content"
        cp = key(checkpoint)
        row = tx.execute(
            "SELECT digest FROM events WHERE checkpoint = %s AND epoch = %s AND seq = %s",
            (cp, epoch, event.seq),
        ).fetchone()
        if row is not None:
            return (
                Outcome(inserted=False) if bytes(row[0]) == d else Outcome(inserted=False, dead_letter=taken)
            )
        if self.record.identity_taken(tx, checkpoint, epoch, event.seq, near=made_at(event)):
            return Outcome(inserted=False, dead_letter=taken)
        tx.execute(
            "INSERT INTO events (checkpoint, epoch, seq, kind, digest, received_at) VALUES (%s,%s,%s,%s,%s,%s)",
            (cp, epoch, event.seq, event_kind(event), d, received_at),
        )
        if isinstance(event, EdgeHit):
            tx.execute(
                "INSERT INTO edge_hits (checkpoint, epoch, seq, read_seq, alert_id, entry_id, list_id, kind, score, "
                "explanation, feed_version, matcher_version, raised_at, thumbnail) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    cp,
                    epoch,
                    event.seq,
                    event.read_seq,
                    key(event.alert_id),
                    key(event.entry_id),
                    key(event.list_id),
                    key(event.kind),
                    event.score,
                    b(event.explanation),
                    event.feed_version,
                    b(event.matcher_version),
                    event.raised_at,
                    b(event.thumbnail),
                ),
            )
        elif isinstance(event, Gap):
            for lo, hi in event.ranges:
                tx.execute(
                    "INSERT INTO gaps (checkpoint, epoch, seq, lo, hi, count, reason, dropped_at, received_at) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        cp,
                        epoch,
                        event.seq,
                        lo,
                        hi,
                        hi - lo + 1,
                        b(event.reason),
                        event.dropped_at,
                        received_at,
                    ),
                )
            tx.execute(
                "INSERT INTO checkpoints (checkpoint, dropped_reads) VALUES (%s, %s) ON CONFLICT (checkpoint) "
                "DO UPDATE SET dropped_reads = checkpoints.dropped_reads + excluded.dropped_reads",
                (cp, event.count),
            )
        elif isinstance(event, AlertOutcome):
            tx.execute(
                "INSERT INTO alert_outcomes (checkpoint, epoch, seq, alert_id, outcome, note, officer, "
                "acknowledged_at, alert_raised_at, received_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    cp,
                    epoch,
                    event.seq,
                    key(event.alert_id),
                    event.outcome,
                    b(event.note),
                    b(event.officer),
                    event.acknowledged_at,
                    event.alert_raised_at,
                    received_at,
                ),
            )
        elif isinstance(event, KitResultEvent):
            r = event.result
            tx.execute(
                "INSERT INTO kit_results (checkpoint, epoch, seq, result_id, id_hash, id_last4, kit_model, result, "
                "officer, sampled_at, read_at, kit_expired, outside_read_window, person_hits, body, received_at) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    cp,
                    epoch,
                    event.seq,
                    b(r.result_id),
                    key(r.subject.id_hash),
                    b(r.subject.id_last4),
                    b(r.kit_model),
                    overall_call(r.panels),
                    b(event.checkpoint_officer),
                    r.sampled_at,
                    r.read_at,
                    r.kit_expired,
                    r.outside_read_window,
                    _encoder.encode(event.person_hits),
                    _encoder.encode(r),
                    received_at,
                ),
            )
        return Outcome(inserted=True)

    @staticmethod
    def insert_alert(tx: psycopg.Connection, alert: Alert) -> bool:
        """Store an alert once (its id decides); True when it is new."""
        return (
            tx.execute(
                "INSERT INTO alerts (alert_id, checkpoint, epoch, seq, entry_id, list_id, action, priority, "
                "raised_at, body) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (alert_id) DO NOTHING",
                (
                    key(alert.alert_id),
                    key(alert.checkpoint),
                    alert.epoch,
                    alert.seq,
                    key(alert.hit.entry_id),
                    key(alert.hit.list_id),
                    str(alert.hit.action),
                    alert.hit.priority,
                    alert.raised_at,
                    _encoder.encode(alert),
                ),
            ).rowcount
            == 1
        )

    @staticmethod
    def kit_results(
        tx: psycopg.Connection,
        checkpoint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        result: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Quick-test results, newest first (the subject only as hash and last four)."""
        where, args = [], []
        for cond, value in (
            ("checkpoint = %s", None if checkpoint is None else key(checkpoint)),
            ("sampled_at >= %s", since),
            ("sampled_at < %s", until),
            ("result = %s", result),
        ):
            if value is not None:
                where.append(cond)
                args.append(value)
        sql = (
            "SELECT checkpoint, epoch, seq, officer, person_hits, body, received_at FROM kit_results"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY sampled_at DESC LIMIT %s"
        )
        out = []
        for cp, epoch, seq, officer, hits, body, received in tx.execute(sql, (*args, limit)):  # type: ignore[arg-type]
            record = msgspec.json.decode(bytes(body))
            record.update(
                checkpoint=cp,
                epoch=epoch,
                seq=seq,
                recorded_by=s(officer),
                received_at=received,
                person_hits=msgspec.json.decode(bytes(hits)),
                result=overall_call(msgspec.json.decode(bytes(body), type=KitResult).panels),
            )
            out.append(record)
        return out
